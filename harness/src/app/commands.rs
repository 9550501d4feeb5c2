//! The command handlers: what each subcommand of [`crate::cli`] does, printing as it goes and returning the
//! process exit code (errors are printed as one line).

use super::RunOptions;
use crate::cli::{CertsArgs, Cli, Command, CompareArgs, MergeArgs, ReportArgs, RunArgs, ServeArgs};
use crate::client_auth::ClientAuth;
use crate::engine::ProgressMode;
use crate::report;
use crate::report::verdict;
use crate::scenario::{self, Overrides};
use crate::server::{self, ServerConfig, TokenPolicy};
use crate::token::TokenPattern;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Runs the parsed command on the current runtime and returns the process exit code.
pub async fn execute(cli: Cli) -> u8 {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Serve(args) => serve(args).await,
        Command::Certs(args) => certs(args),
        Command::Validate { scenario, vars } => validate(&scenario, vars),
        Command::Compare(args) => compare(&args),
        Command::Report(args) => rerender(&args),
        Command::Merge(args) => merge(&args),
        Command::Device {
            ca,
            host,
            port,
            cert,
            key,
        } => {
            let client = cert.as_deref().zip(key.as_deref());
            super::probe_device::run(&ca, &host, port, client).await
        }
    }
}

pub(super) fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    2
}

fn validate(file: &Path, vars: Vec<(String, String)>) -> u8 {
    let overrides = Overrides {
        vars,
        ..Default::default()
    };
    match scenario::load(file, &overrides) {
        Ok(plan) => {
            println!(
                "{}: ok: scenario `{}`, target {}, {} devices, {} phases, {} ({} in {})",
                file.display(),
                plan.name,
                plan.target.describe(),
                plan.devices.count,
                plan.phases.len(),
                humantime::format_duration(plan.total_duration()),
                plan.request.mtype,
                plan.request.operation,
            );
            0
        }
        Err(e) => fail(e),
    }
}

fn compare(args: &CompareArgs) -> u8 {
    use report::compare;
    let (base, cur) = match (
        compare::read_report(&args.baseline),
        compare::read_report(&args.current),
    ) {
        (Ok(b), Ok(c)) => (b, c),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    let c = compare::compare(&base, &cur, args.max_regression);
    // Before any regression is reported: why the runs may not be comparable (also in the Markdown).
    for w in &c.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", compare::render_markdown(&c));
    u8::from(c.regressed())
}

fn rerender(args: &ReportArgs) -> u8 {
    let (Some(file), None) = (&args.report, &args.compare) else {
        return compare_page(args);
    };
    let r = match report::compare::read_report(file) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let from = file.display();
    if let Some(dir) = &args.out {
        match report::write_all(&r, dir) {
            Ok(paths) => paths
                .iter()
                .for_each(|p| println!("  wrote {}", p.display())),
            Err(e) => {
                return fail(format_args!(
                    "{from}: cannot write to {}: {e}",
                    dir.display()
                ))
            }
        }
    }
    let singles = [
        (
            &args.md,
            report::markdown::render as fn(&report::Report) -> String,
        ),
        (&args.junit, report::junit::render),
        (&args.html, report::html::render),
    ];
    for (file, render) in singles {
        let Some(file) = file else { continue };
        if let Err(e) = std::fs::write(file, render(&r)) {
            return fail(format_args!("{from}: cannot write {}: {e}", file.display()));
        }
        println!("  wrote {}", file.display());
    }
    if args.out.is_none() && args.md.is_none() && args.junit.is_none() && args.html.is_none() {
        print!("{}", report::markdown::render(&r));
    }
    0
}

/// `report --compare A.json B.json...`: the runs over each other, into --html and/or --out DIR/compare.html, or stdout.
fn compare_page(args: &ReportArgs) -> u8 {
    use report::html_compare::{self, Run};
    let files = args.compare.as_deref().unwrap_or_default();
    let mut reports = Vec::with_capacity(files.len());
    for file in files {
        match report::compare::read_report(file) {
            Ok(r) => reports.push(r),
            Err(e) => return fail(e),
        }
    }
    let runs: Vec<Run> = files
        .iter()
        .zip(&reports)
        .map(|(file, report)| Run {
            name: html_compare::run_name(file),
            report,
        })
        .collect();
    let page = html_compare::render(&runs);
    if args.html.is_none() && args.out.is_none() {
        print!("{page}");
        return 0;
    }
    if let Some(dir) = &args.out {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return fail(format_args!("cannot create {}: {e}", dir.display()));
        }
    }
    let targets = args.html.iter().cloned();
    for target in targets.chain(args.out.iter().map(|d| d.join("compare.html"))) {
        if let Err(e) = std::fs::write(&target, &page) {
            return fail(format_args!("cannot write {}: {e}", target.display()));
        }
        println!("  wrote {}", target.display());
    }
    0
}

fn certs(args: CertsArgs) -> u8 {
    let opts = crate::pki::PkiOptions {
        out: args.out,
        hosts: args.hosts,
        force: args.force,
    };
    let code = pki_roles(&opts);
    match args.devices {
        Some(n) if code == 0 => device_certs_out(&opts.out, n, opts.force),
        _ => code,
    }
}

/// `certs --devices N`: the fleet's device certificates beside the PKI.
fn device_certs_out(out: &Path, n: u64, force: bool) -> u8 {
    use crate::pki::fleet;
    if n == 0 {
        return fail("--devices must be at least 1");
    }
    match fleet::generate_devices(out, n, force) {
        Ok(d) => {
            let verb = if d.kept_existing {
                "kept the existing"
            } else {
                "generated"
            };
            println!(
                "{verb} {n} device certificates in {} (signed by {})",
                d.dir.join(fleet::DEVICES_DIR).display(),
                fleet::DEVICE_CA
            );
            println!(
                "  registered devices: serve --client-auth thingsboard --device-certs {}",
                d.dir.join(fleet::DEVICES_DIR).display()
            );
            println!(
                "  credentials: {} ({})",
                d.dir.join(fleet::DEVICES_CSV).display(),
                fleet::CSV_HEADER
            );
            println!(
                "  not registered: {}; expired (registered): {}",
                fleet::UNREGISTERED,
                fleet::EXPIRED
            );
            0
        }
        Err(e) => fail(e),
    }
}

fn pki_roles(opts: &crate::pki::PkiOptions) -> u8 {
    match crate::pki::generate(opts) {
        Ok(g) => {
            let verb = if g.kept_existing {
                "kept the existing PKI (use --force to make a new one)"
            } else {
                "generated"
            };
            println!(
                "{verb} in {} (hosts: {})",
                g.dir.display(),
                g.manifest.hosts.join(", ")
            );
            for e in g.manifest.roles() {
                println!("  {:<22} {:<24} {}", e.role.name(), e.cert, e.description);
            }
            println!(
                "  manifest: {}",
                g.dir.join(crate::pki::MANIFEST_FILE).display()
            );
            0
        }
        Err(e) => fail(e),
    }
}

fn dtls_listener(
    args: &ServeArgs,
    psk: Vec<crate::transport::dtls::Psk>,
) -> Result<Option<crate::server::DtlsServerConfig>, String> {
    use super::prepare;
    use crate::scenario::plan::CertRef;
    let Some(addr) = args.coaps else {
        if !psk.is_empty() {
            eprintln!(
                "warning: --tokens gives PSK identities, but without --coaps nothing speaks DTLS"
            );
        }
        return Ok(None);
    };
    if !psk.is_empty() {
        if args.cert.is_some() || args.client_ca.is_some() || args.device_certs.is_some() {
            return Err(
                "--tokens gives PSK identities: the DTLS listener then speaks PSK, and cannot also present \
                 --cert or ask for client certificates (the DTLS stack does one or the other)"
                    .into(),
            );
        }
        let mut cfg = crate::server::DtlsServerConfig::psk_only(addr, psk)
            .map_err(|e| format!("--coaps: {e}"))?;
        cfg.client_auth = ClientAuth::None;
        cfg.connection_id_length = args.connection_id_length.map(usize::from);
        return Ok(Some(cfg));
    }
    let (Some(cert), Some(key)) = (&args.cert, &args.key) else {
        return Err(
            "--coaps needs --cert and --key (or PSK identities from a --tokens CSV file)".into(),
        );
    };
    let identity = prepare::identity(
        &CertRef::File(cert.clone()),
        &CertRef::File(key.clone()),
        None,
    )
    .map_err(|e| e.to_string())?;
    if let Err(e) = crate::pki::check_key_permissions(key) {
        eprintln!("warning: {e}");
    }
    let mut cfg = crate::server::DtlsServerConfig::new(addr, identity);
    cfg.client_auth = args.client_auth;
    cfg.connection_id_length = args.connection_id_length.map(usize::from);
    match (&args.client_ca, args.client_auth) {
        (Some(ca), _) => {
            cfg.client_ca =
                prepare::certs(&CertRef::File(ca.clone()), None).map_err(|e| e.to_string())?
        }
        // ThingsBoard's mode accepts a certificate from any issuer in the handshake.
        (None, ClientAuth::None | ClientAuth::Thingsboard) => {}
        (None, _) => return Err("--client-auth want|require needs --client-ca".into()),
    }
    if let Some(path) = &args.device_certs {
        cfg.device_certs = device_certs(path)?;
    }
    Ok(Some(cfg))
}

/// The registered device certificates of `--device-certs`: a PEM file or a folder of them.
pub(crate) fn device_certs(path: &std::path::Path) -> Result<Vec<([u8; 32], String)>, String> {
    let fail = |e: &dyn std::fmt::Display| format!("--device-certs {}: {e}", path.display());
    let files = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| fail(&e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pem" || x == "crt"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut registered = Vec::new();
    for file in files {
        let certs = crate::pki::read_certs(&file).map_err(|e| fail(&e))?;
        let stem = file
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let several = certs.len() > 1;
        for (i, der) in certs.iter().enumerate() {
            let name = if several {
                format!("{stem}-{}", i + 1)
            } else {
                stem.clone()
            };
            registered.push(crate::server::DtlsServerConfig::device_cert(der, name));
        }
    }
    if registered.is_empty() {
        return Err(fail(&"no certificate found"));
    }
    Ok(registered)
}

/// Claims the report folder before any load runs: `--out` (created if needed, refused when it already holds a
/// report.json unless `force`), or a new default folder `reports/NAME-STAMP` (`-2`, `-3`... when another run
/// took it in the same second: `create_dir` is atomic, so two runs never share one). Then proves the folder
/// writable by writing a file into it, so a folder that cannot take the report fails now, not after the load.
fn claim_out(given: Option<PathBuf>, name: &str, force: bool) -> Result<PathBuf, String> {
    let dir = match given {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("--out {}: cannot create the folder: {e}", dir.display()))?;
            if dir.join("report.json").exists() && !force {
                return Err(format!(
                    "--out {}: already holds a report (report.json); pass --force to overwrite it, or choose another folder",
                    dir.display()
                ));
            }
            dir
        }
        None => default_out(name)?,
    };
    let probe = dir.join(format!(".coap-harness-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            format!(
                "report folder {} cannot be written ({e}); nothing was run",
                dir.display()
            )
        })?;
    Ok(dir)
}

fn default_out(name: &str) -> Result<PathBuf, String> {
    let stamp: String = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let parent = PathBuf::from("reports");
    std::fs::create_dir_all(&parent)
        .map_err(|e| format!("cannot create report folder {}: {e}", parent.display()))?;
    for n in 1..=1000u32 {
        let dir = match n {
            1 => parent.join(format!("{name}-{stamp}")),
            n => parent.join(format!("{name}-{stamp}-{n}")),
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(format!(
                    "cannot create report folder {}: {e}",
                    dir.display()
                ))
            }
        }
    }
    Err(format!(
        "reports/{name}-{stamp}: a thousand runs already started this second; pass --out"
    ))
}

async fn run(args: RunArgs) -> u8 {
    // SIGINT, SIGTERM, SIGHUP: stop the load and report what was measured (from here on, planning included).
    let cancel = CancellationToken::new();
    crate::signals::stop_run_on_signal(cancel.clone());
    let overrides = overrides(&args);
    let plan = match plan_for(args.scenario.as_deref(), &args.overrides, overrides) {
        Planned::Run(plan) => plan,
        Planned::Printed => return 0,
        Planned::Failed => return 2,
    };
    let out = match claim_out(args.out, &plan.name, args.force) {
        Ok(dir) => dir,
        Err(e) => return fail(e),
    };
    if plan.phases.is_empty() {
        // No load: say what runs instead of "with 1 devices for 0s".
        eprintln!(
            "running `{}` against {}: {} trust cases, {} conformance cases, no load phases",
            plan.name,
            plan.target.describe(),
            plan.trust_cases.len(),
            plan.conformance.len()
        );
    } else {
        eprintln!(
            "running `{}` against {} with {} devices for {}",
            plan.name,
            plan.target.describe(),
            plan.devices.count,
            humantime::format_duration(plan.total_duration())
        );
    }
    let shard = plan.shard.as_ref().map(|s| s.shard);
    if let (Some(s), Some(p)) = (shard, &plan.shard) {
        eprintln!(
            "shard {s}: devices {} of {} (scenario indexes {}, {}, ...)",
            plan.devices.count,
            p.scenario_devices,
            plan.devices.global(0),
            plan.devices.global(1)
        );
    }
    if let Some(at) = plan.start_at {
        eprintln!(
            "waiting to begin at {}",
            humantime::format_rfc3339_millis(at)
        );
    }
    let metrics = plan
        .phases
        .iter()
        .map(|p| p.name.clone())
        .collect::<Vec<_>>();
    let metrics = args
        .metrics
        .map(|_| Arc::new(crate::metrics::export::RunMetrics::new(&metrics)));
    let _metrics_server = match (args.metrics, &metrics) {
        (Some(addr), Some(m)) => {
            match super::metrics_http::serve(addr, super::metrics_http::run_render(m.clone())).await
            {
                Ok((bound, task)) => {
                    eprintln!("metrics: http://{bound}/metrics");
                    Some(AbortOnDrop(task))
                }
                Err(e) => return fail(format_args!("cannot serve metrics on {addr}: {e}")),
            }
        }
        _ => None,
    };
    let opts = RunOptions {
        metrics,
        progress: if args.quiet {
            ProgressMode::Off
        } else {
            ProgressMode::Auto
        },
        cancel,
    };
    let output = match super::run(plan, opts).await {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    // With --json, stdout holds the report alone; what a person reads goes to stderr.
    let say = |text: &str| {
        if args.json {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    };
    say(&report::terminal::render(&output.report));
    match report::write_all(&output.report, &out) {
        Ok(paths) => {
            for p in paths {
                say(&format!("  wrote {}\n", p.display()));
            }
        }
        Err(e) => {
            return fail(format_args!(
                "cannot write report to {}: {e}",
                out.display()
            ))
        }
    }
    if let Some(file) = &args.junit {
        if let Err(e) = std::fs::write(file, report::junit::render(&output.report)) {
            return fail(format_args!(
                "cannot write JUnit XML to {}: {e}",
                file.display()
            ));
        }
        say(&format!("  wrote {}\n", file.display()));
    }
    if args.json {
        match serde_json::to_string_pretty(&verdict::stamped(&output.report)) {
            Ok(text) => println!("{text}"),
            Err(e) => return fail(format_args!("cannot print the report as JSON: {e}")),
        }
    }
    let v = verdict::of(&output.report);
    if let (Some(s), verdict::Verdict::Failed(why)) = (shard, &v) {
        // The run's verdict belongs to the merged result; a shard only says whether it measured.
        eprintln!("shard {s}: {why} (judged again by coap-harness merge)");
        return 0;
    }
    // The terminal summary above ends with the verdict; failures are repeated on stderr for CI logs.
    match &v {
        verdict::Verdict::Passed => {}
        verdict::Verdict::Failed(why) => eprintln!("FAILED: {why}"),
        verdict::Verdict::Fault(why) => eprintln!("error: {why}"),
    }
    v.code()
}

/// The overrides `run` was given, with the flags read from the environment noted.
fn overrides(args: &RunArgs) -> Overrides {
    let a = &args.overrides;
    Overrides {
        target: a.target.clone(),
        ca: a.ca.clone(),
        insecure: a.insecure,
        client_cert: a.client_cert.clone(),
        client_key: a.client_key.clone(),
        psk_identity: a.psk_identity.clone(),
        psk_key: a.psk_key.clone(),
        token: a.token.clone(),
        token_file: a.token_file.clone(),
        rate: a.rate,
        devices: a.devices,
        duration: a.duration,
        total_duration: a.total_duration,
        seed: a.seed,
        vars: a.vars.clone(),
        shard: args.shard,
        start_at: args.start_at,
        from_env: a.from_env.clone(),
    }
}

/// What `run` does after planning.
enum Planned {
    Run(Arc<scenario::RunPlan>),
    /// `--print-scenario`: printed, nothing to run.
    Printed,
    /// An error was printed: exit 2.
    Failed,
}

/// The validated plan of the scenario file, or of the built-in telemetry scenario without one (ad-hoc mode,
/// which needs at least a target); with --print-scenario, the effective scenario printed instead.
fn plan_for(file: Option<&Path>, args: &crate::cli::OverrideArgs, overrides: Overrides) -> Planned {
    if file.is_none() && args.target.is_none() && !args.print_scenario {
        fail(
            "give a scenario file, or --target (e.g. coaps://HOST:5684, or `embedded` for the built-in server) \
             to run the built-in telemetry scenario; --print-scenario shows it",
        );
        return Planned::Failed;
    }
    if args.print_scenario {
        return match scenario::builtin::print(file, &overrides) {
            Ok(yaml) => {
                print!("{yaml}");
                Planned::Printed
            }
            Err(e) => {
                fail(e);
                Planned::Failed
            }
        };
    }
    let plan = match file {
        Some(f) => scenario::load(f, &overrides),
        None => scenario::builtin::load(&overrides),
    };
    match plan {
        Ok(p) => Planned::Run(Arc::new(p)),
        Err(e) => {
            fail(e);
            Planned::Failed
        }
    }
}

fn merge(args: &MergeArgs) -> u8 {
    use crate::merge;
    let merged = match merge::inputs(&args.reports, &args.out)
        .and_then(|files| merge::merge_files(&files, args.allow_partial))
    {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    print!("{}", report::terminal::render(&merged));
    match report::write_all(&merged, &args.out) {
        Ok(paths) => paths
            .iter()
            .for_each(|p| println!("  wrote {}", p.display())),
        Err(e) => {
            return fail(format_args!(
                "cannot write report to {}: {e}",
                args.out.display()
            ))
        }
    }
    let v = verdict::of(&merged);
    // The terminal summary above ends with the verdict; failures are repeated on stderr for CI logs.
    match &v {
        verdict::Verdict::Passed => {}
        verdict::Verdict::Failed(why) => eprintln!("FAILED: {why}"),
        verdict::Verdict::Fault(why) => eprintln!("error: {why}"),
    }
    v.code()
}

/// `serve --tokens FILE`: a plain token list, or a CSV token file (its tokens, and its PSK identities).
fn serve_tokens(file: &Path) -> Result<(TokenPolicy, Vec<crate::transport::dtls::Psk>), String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("--tokens {}: {e}", file.display()))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    match scenario::credentials::parse(&text, dir) {
        Ok(read) if read.credentials.is_some() => {
            let psk = read
                .credentials
                .iter()
                .flatten()
                .filter_map(|c| c.psk.clone())
                .collect();
            let tokens = read.tokens.into_iter().filter(|t| !t.is_empty()).collect();
            Ok((TokenPolicy::List(tokens), psk))
        }
        Ok(_) => TokenPolicy::from_file(file)
            .map(|t| (t, Vec::new()))
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("--tokens {}: {e}", file.display())),
    }
}

async fn serve(args: ServeArgs) -> u8 {
    let mut stop = match crate::signals::Listener::install() {
        Ok(l) => l,
        Err(e) => return fail(format_args!("cannot handle stop signals: {e}")),
    };
    let mut psk = Vec::new();
    let tokens = if let Some(file) = &args.tokens {
        match serve_tokens(file) {
            Ok((t, p)) => {
                psk = p;
                t
            }
            Err(e) => return fail(e),
        }
    } else if args.any_token {
        TokenPolicy::Any
    } else {
        match TokenPattern::parse(&args.token_pattern) {
            Ok(pattern) => TokenPolicy::Pattern {
                pattern,
                count: args.token_count,
            },
            Err(e) => return fail(format_args!("--token-pattern: {e}")),
        }
    };
    let describe = tokens.to_string();
    let dtls = match dtls_listener(&args, psk) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let handle = match server::start(ServerConfig {
        bind: args.coap,
        tokens,
        response_delay: args.response_delay,
        plain: true,
        dtls,
    })
    .await
    {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    match handle.dtls_addr() {
        Some(d) => println!(
            "serving the ThingsBoard CoAP device API on coap://{} and coaps://{d} ({describe}); Ctrl-C or SIGTERM stops",
            handle.local_addr()
        ),
        None => println!(
            "serving the ThingsBoard CoAP device API on coap://{} ({describe}); Ctrl-C or SIGTERM stops",
            handle.local_addr()
        ),
    }
    let handle = Arc::new(handle);
    let metrics_server = match args.metrics {
        Some(addr) => {
            let render = super::metrics_http::serve_render(handle.clone());
            match super::metrics_http::serve(addr, render).await {
                Ok((bound, task)) => {
                    println!("metrics: http://{bound}/metrics");
                    Some(task)
                }
                Err(e) => return fail(format_args!("cannot serve metrics on {addr}: {e}")),
            }
        }
        None => None,
    };
    stop.next().await;
    if let Some(task) = metrics_server {
        task.abort();
        let _ = task.await;
    }
    let stats = handle.stats();
    // A scrape still being answered holds the handle: dropping it stops the server too.
    if let Ok(handle) = Arc::try_unwrap(handle) {
        handle.shutdown().await;
    }
    println!(
        "stopped: {} datagrams, {} requests, {} devices, {} malformed",
        stats.datagrams_received, stats.requests, stats.devices, stats.malformed
    );
    0
}

/// Stops a background task when the command ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod device_certs_tests {
    use super::device_certs;

    fn pem(name: &str) -> (String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), cert.der().to_vec())
    }

    /// `--device-certs`: a folder names each certificate by its file's stem; a file with several numbers
    /// them; other files are skipped; nothing to register is an error naming the path.
    #[test]
    fn reads_a_folder_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, a_der) = pem("a");
        let (b, b_der) = pem("b");
        std::fs::write(dir.path().join("meter-1.pem"), &a).unwrap();
        std::fs::write(dir.path().join("meter-2.crt"), &b).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a certificate").unwrap();
        let hash = |der: &[u8]| crate::server::DtlsServerConfig::device_cert(der, "").0;
        let got = device_certs(dir.path()).unwrap();
        assert_eq!(
            got,
            vec![
                (hash(&a_der), "meter-1".to_string()),
                (hash(&b_der), "meter-2".to_string())
            ]
        );
        let both = dir.path().join("fleet.pem");
        std::fs::write(&both, format!("{a}{b}")).unwrap();
        let got = device_certs(&both).unwrap();
        let names: Vec<_> = got.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["fleet-1", "fleet-2"]);
        let empty = tempfile::tempdir().unwrap();
        let err = device_certs(empty.path()).unwrap_err();
        assert!(err.contains("no certificate found"), "{err}");
    }
}
