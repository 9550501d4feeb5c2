//! The command line (clap derive): `run`, `serve`, `certs`, `validate`, `compare`,
//! `report`, `merge`. Each command returns its
//! exit code; errors are printed as one line.

use crate::engine::{self, ProgressMode, RunOptions};
use crate::scenario::{self, Overrides};
use crate::server::{self, ServerConfig, TokenPolicy};
use crate::token::TokenPattern;
use crate::{report, verdict};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Load-testing and conformance harness for CoAP and CoAP-over-DTLS IoT servers (ThingsBoard device API).
///
/// Exit codes: 0 every check held, 1 a check failed, 2 the harness could not run (bad input, bad
/// configuration, unreachable or garbling target).
#[derive(Debug, Parser)]
#[command(name = "coap-harness", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario and write its report.
    Run(RunArgs),
    /// Serve the ThingsBoard CoAP device API (the embedded target) until Ctrl-C.
    Serve(ServeArgs),
    /// Generate the test PKI: a root CA, server and client certificates, and the negative material for
    /// trust cases (unknown CA, expired, not yet valid, wrong host, self-signed, rogue and expired clients).
    Certs(CertsArgs),
    /// Check a scenario file without running it.
    Validate {
        /// The scenario YAML file.
        scenario: PathBuf,
    },
    /// Compare a run's report.json with a baseline's and print a Markdown table; exit 1 when a figure
    /// regressed past the bound, 2 when a file is not a readable report.
    Compare(CompareArgs),
    /// Render a report.json again: every report file into --out, or single files with --html / --md / --junit
    /// (with none of them, the Markdown summary goes to stdout); or, with --compare A.json B.json..., one HTML
    /// page drawing the runs over each other. Exit 2 when a file is not a report.
    Report(ReportArgs),
    /// Merge shard reports (`run --shard K/N`) into one report, as if one process had run the scenario:
    /// histograms added exactly, counters summed, time series aligned by wall-clock second, thresholds and
    /// expectations judged again. Exit as `run` does; 2 when the reports do not belong together (different
    /// scenarios, a shard missing or given twice, different N, a report that is not a shard's).
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Shard report.json files, or folders whose subfolders hold them (e.g. results/shard-0/report.json).
    #[arg(required = true, value_name = "REPORT")]
    pub reports: Vec<PathBuf>,
    /// Write the merged report files here.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Merge even when shards are missing; the result is marked partial (and its verdict fails).
    #[arg(long)]
    pub allow_partial: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The report.json to render.
    #[arg(required_unless_present = "compare", conflicts_with = "compare")]
    pub report: Option<PathBuf>,
    /// Draw these runs (report.json files, the first the reference) over each other in one HTML page:
    /// into --html FILE and/or --out DIR as compare.html; with neither, to stdout.
    #[arg(long, value_name = "REPORT", num_args = 2.., conflicts_with_all = ["md", "junit"])]
    pub compare: Option<Vec<PathBuf>>,
    /// Write report.html here (with --compare: the comparison page).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write the Markdown summary here.
    #[arg(long, value_name = "FILE")]
    pub md: Option<PathBuf>,
    /// Write the JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write every report file (as `run` does) into this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario YAML file.
    pub scenario: PathBuf,
    /// Replace the scenario's target (`embedded` or coap://host:port).
    #[arg(long)]
    pub target: Option<String>,
    /// Replace the number of devices.
    #[arg(long)]
    pub devices: Option<u32>,
    /// Replace the last phase's duration (e.g. 30s, 2m).
    #[arg(long, value_parser = scenario::raw::parse_duration)]
    pub duration: Option<Duration>,
    /// Report folder (default: reports/<scenario>-<UTC timestamp>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No live progress.
    #[arg(long, short)]
    pub quiet: bool,
    /// Also write the JUnit XML here (it is always in the report folder as junit.xml).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Run only shard K of N, K 0-based (0 <= K < N, a Kubernetes JOB_COMPLETION_INDEX): the scenario's
    /// devices K, K+N, K+2N, ..., total rates divided in proportion, its own seed. Thresholds are judged by
    /// `merge`; the shard exits 0 once its report is written (2 when it could not measure).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<scenario::shard::Shard>,
    /// Begin the first phase at this time, RFC 3339 UTC (e.g. 2026-11-25T21:30:00Z), so shards on many
    /// machines start together. At most 5s in the past and 24h ahead.
    #[arg(long, value_name = "TIME", value_parser = scenario::shard::parse_start_at)]
    pub start_at: Option<std::time::SystemTime>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline report.json.
    pub baseline: PathBuf,
    /// The report.json to judge against it.
    pub current: PathBuf,
    /// How much worse a figure may get before it counts as a regression: `10%` or the fraction `0.1`.
    #[arg(long, default_value = "10%", value_parser = report::compare::parse_bound)]
    pub max_regression: f64,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Folder to write into.
    #[arg(long, default_value = "certs")]
    pub out: PathBuf,
    /// Extra names or addresses for the server certificates (besides localhost, 127.0.0.1, ::1).
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Regenerate even if a complete set exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// UDP address to serve plain CoAP on.
    #[arg(long, default_value = "127.0.0.1:5683")]
    pub coap: SocketAddr,
    /// Also serve CoAP over DTLS on this address (needs --cert and --key).
    #[arg(long, requires_all = ["cert", "key"])]
    pub coaps: Option<SocketAddr>,
    /// Server certificate (PEM, leaf first) for --coaps.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Its private key (PKCS#8 PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// CA that client certificates must chain to.
    #[arg(long)]
    pub client_ca: Option<PathBuf>,
    /// Ask for client certificates: none, want, or require (require needs --client-ca).
    #[arg(long, value_enum, default_value = "none")]
    pub client_auth: ClientAuthArg,
    /// File of accepted access tokens, one per line.
    #[arg(long, conflicts_with_all = ["any_token", "token_pattern"])]
    pub tokens: Option<PathBuf>,
    /// Accept every access token.
    #[arg(long, conflicts_with = "token_pattern")]
    pub any_token: bool,
    /// Accept the tokens this pattern gives for indexes below --token-count.
    #[arg(long, default_value = "dev-{index:05}")]
    pub token_pattern: String,
    /// How many pattern tokens are devices.
    #[arg(long, default_value_t = 1000)]
    pub token_count: u64,
    /// Answer CON requests with an empty ACK and the response this much later (ThingsBoard when slow).
    #[arg(long, value_parser = scenario::raw::parse_duration)]
    pub response_delay: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAuthArg {
    None,
    Want,
    Require,
}

/// Runs the parsed command on the current runtime and returns the process exit code.
pub async fn execute(cli: Cli) -> u8 {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Serve(args) => serve(args).await,
        Command::Certs(args) => certs(args),
        Command::Validate { scenario } => validate(&scenario),
        Command::Compare(args) => compare(&args),
        Command::Report(args) => rerender(&args),
        Command::Merge(args) => merge(&args),
    }
}

fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    2
}

fn validate(file: &Path) -> u8 {
    match scenario::load(file, &Overrides::default()) {
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
    match crate::pki::generate(&opts) {
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

fn dtls_listener(args: &ServeArgs) -> Result<Option<crate::server::DtlsServerConfig>, String> {
    use crate::engine::prepare;
    use crate::scenario::plan::CertRef;
    let Some(addr) = args.coaps else {
        return Ok(None);
    };
    let (Some(cert), Some(key)) = (&args.cert, &args.key) else {
        return Err("--coaps needs --cert and --key".into());
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
    cfg.client_auth = match args.client_auth {
        ClientAuthArg::None => crate::server::ClientAuth::None,
        ClientAuthArg::Want => crate::server::ClientAuth::Want,
        ClientAuthArg::Require => crate::server::ClientAuth::Require,
    };
    match (&args.client_ca, args.client_auth) {
        (Some(ca), _) => {
            cfg.client_ca =
                prepare::certs(&CertRef::File(ca.clone()), None).map_err(|e| e.to_string())?
        }
        (None, ClientAuthArg::None) => {}
        (None, _) => return Err("--client-auth want|require needs --client-ca".into()),
    }
    Ok(Some(cfg))
}

fn default_out(name: &str) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    PathBuf::from("reports").join(format!("{name}-{stamp}"))
}

async fn run(args: RunArgs) -> u8 {
    // SIGINT, SIGTERM, SIGHUP: stop the load and report what was measured (from here on, planning included).
    let cancel = CancellationToken::new();
    crate::signals::stop_run_on_signal(cancel.clone());
    let overrides = Overrides {
        target: args.target,
        devices: args.devices,
        duration: args.duration,
        shard: args.shard,
        start_at: args.start_at,
    };
    let plan = match scenario::load(&args.scenario, &overrides) {
        Ok(p) => Arc::new(p),
        Err(e) => return fail(e),
    };
    let out = args.out.unwrap_or_else(|| default_out(&plan.name));
    if let Err(e) = std::fs::create_dir_all(&out) {
        return fail(format_args!(
            "cannot create report folder {}: {e}",
            out.display()
        ));
    }
    eprintln!(
        "running `{}` against {} with {} devices for {}",
        plan.name,
        plan.target.describe(),
        plan.devices.count,
        humantime::format_duration(plan.total_duration())
    );
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
    let opts = RunOptions {
        progress: if args.quiet {
            ProgressMode::Off
        } else {
            ProgressMode::Auto
        },
        cancel,
    };
    let output = match engine::run(plan, opts).await {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    print!("{}", report::terminal::render(&output.report));
    match report::write_all(&output.report, &out) {
        Ok(paths) => {
            for p in paths {
                println!("  wrote {}", p.display());
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
        println!("  wrote {}", file.display());
    }
    let v = verdict::of(&output.report);
    if let (Some(s), verdict::Verdict::Failed(why)) = (shard, &v) {
        // The run's verdict belongs to the merged result; a shard only says whether it measured.
        eprintln!("shard {s}: {why} (judged again by coap-harness merge)");
        return 0;
    }
    match &v {
        verdict::Verdict::Passed => println!("  PASSED"),
        verdict::Verdict::Failed(why) => eprintln!("FAILED: {why}"),
        verdict::Verdict::Fault(why) => eprintln!("error: {why}"),
    }
    v.code()
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
    match &v {
        verdict::Verdict::Passed => println!("  PASSED"),
        verdict::Verdict::Failed(why) => eprintln!("FAILED: {why}"),
        verdict::Verdict::Fault(why) => eprintln!("error: {why}"),
    }
    v.code()
}

async fn serve(args: ServeArgs) -> u8 {
    let mut stop = match crate::signals::Listener::install() {
        Ok(l) => l,
        Err(e) => return fail(format_args!("cannot handle stop signals: {e}")),
    };
    let tokens = if let Some(file) = &args.tokens {
        match TokenPolicy::from_file(file) {
            Ok(t) => t,
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
    let dtls = match dtls_listener(&args) {
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
    stop.next().await;
    let stats = handle.stats();
    handle.shutdown().await;
    println!(
        "stopped: {} datagrams, {} requests, {} devices, {} malformed",
        stats.datagrams_received, stats.requests, stats.devices, stats.malformed
    );
    0
}
