//! `run`'s scenario overrides (`--target --ca --insecure --token --rate --duration --total-duration --seed
//! -e ...`, each also from its `COAP_HARNESS_*` environment variable), ad-hoc mode (no scenario file: the
//! built-in telemetry scenario) and `--print-scenario`, through the binary, against the embedded target and
//! against `coap-harness serve` / `serve --coaps` on loopback.

use crate::common;

use coap_harness::report::Report;
use common::Peer;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The binary with no COAP_HARNESS_* variable inherited from whoever runs the tests.
fn cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_coap-harness"));
    for (k, _) in std::env::vars() {
        if k.starts_with("COAP_HARNESS_") {
            c.env_remove(k);
        }
    }
    c
}

fn harness(args: &[&str], env: &[(&str, &str)]) -> Output {
    cmd()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run coap-harness")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn read_report(dir: &Path) -> Report {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report.json written");
    serde_json::from_str(&text).expect("report.json parses as a Report")
}

/// `run --quiet` with these flags and their values (in order), its reports in `out`.
fn run_quiet(flags: &[(&str, &str)], out: &Path, env: &[(&str, &str)]) -> Output {
    let mut args = vec!["run", "--quiet"];
    for (flag, value) in flags {
        args.extend([*flag, *value]);
    }
    args.extend(["--out", out.to_str().unwrap()]);
    harness(&args, env)
}

/// Ramp up, steady, ramp down: 12 s as written.
const THREE_PHASES: &str = "target: embedded\ndevices:\n  count: 6\nphases:\n  - name: up\n    duration: 2s\n    ramp: linear\n    interval: 500ms\n  - name: steady\n    duration: 8s\n    interval: 500ms\n  - name: down\n    duration: 2s\n    ramp: linear\n    devices: 0\n    interval: 500ms\n";

/// The harness's own `serve`: plain CoAP, and CoAP over DTLS with the PKI in `pki` when given; accepting the
/// tokens in `tokens` (a file), stopped when dropped.
struct Served {
    _peer: Peer,
    plain: u16,
    secure: Option<u16>,
}

fn serve(tokens: &Path, pki: Option<&coap_harness::pki::Manifest>) -> Served {
    serve_with(tokens, pki, &[])
}

fn serve_with(
    tokens: &Path,
    pki: Option<&coap_harness::pki::Manifest>,
    extra: &[&std::ffi::OsStr],
) -> Served {
    use coap_harness::pki::Role;
    let plain = common::free_udp_port();
    let mut c = cmd();
    c.args(["serve", "--coap", &format!("127.0.0.1:{plain}")])
        .arg("--tokens")
        .arg(tokens)
        .args(extra);
    let secure = pki.map(|m| {
        let port = common::free_udp_port();
        c.args(["--coaps", &format!("127.0.0.1:{port}")])
            .arg("--cert")
            .arg(m.cert_path(Role::Server))
            .arg("--key")
            .arg(m.key_path(Role::Server));
        port
    });
    let peer = Peer::new(
        c.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::wait_for_coap(
        format!("127.0.0.1:{plain}").parse().unwrap(),
        Duration::from_secs(10),
    );
    Served {
        _peer: peer,
        plain,
        secure,
    }
}

fn pki(dir: &Path) -> coap_harness::pki::Manifest {
    coap_harness::pki::generate(&coap_harness::pki::PkiOptions {
        out: dir.to_path_buf(),
        hosts: vec![],
        force: false,
    })
    .unwrap()
    .manifest
}

#[test]
fn duration_changes_the_steady_phase_and_total_duration_scales_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "three.yaml", THREE_PHASES);
    let out = dir.path().join("a");
    let o = harness(
        &[
            "run",
            &file,
            "--quiet",
            "--total-duration",
            "1500ms",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = read_report(&out);
    let durations: Vec<f64> = r.phases.iter().map(|p| p.duration_s).collect();
    assert_eq!(durations, [0.25, 1.0, 0.25]);

    // --duration from the environment, --rate on the command line: both change `steady` only.
    let out = dir.path().join("b");
    let o = harness(
        &[
            "run",
            &file,
            "--quiet",
            "--rate",
            "40/s",
            "--out",
            out.to_str().unwrap(),
        ],
        &[("COAP_HARNESS_DURATION", "1s"), ("COAP_HARNESS_SEED", "77")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = read_report(&out);
    let durations: Vec<f64> = r.phases.iter().map(|p| p.duration_s).collect();
    assert_eq!(durations, [2.0, 1.0, 2.0]);
    assert_eq!(r.scenario.seed, 77);
    assert!(r.phases[1].pacing.contains("40"), "{}", r.phases[1].pacing);
    assert!(
        r.phases[0].pacing.contains("500ms"),
        "{}",
        r.phases[0].pacing
    );
}

/// Every override error exits 2 before any load, as one line naming the flag, or the environment variable
/// when the value came from there.
#[test]
fn override_errors_name_the_flag_or_the_environment_variable() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "three.yaml", THREE_PHASES);
    let out = dir.path().join("out");
    // (flags, environment, the error's start)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["--duration", "0s"], &[], "error: --duration: phases[1].duration: must be more than 0"),
        (&[], &[("COAP_HARNESS_DURATION", "0s")], "error: COAP_HARNESS_DURATION: phases[1].duration: must be more than 0"),
        (&[], &[("COAP_HARNESS_DEVICES", "0")], "error: COAP_HARNESS_DEVICES: devices.count: must be at least 1"),
        (&["--token", "A1b2"], &[], "error: --token: devices.token: token pattern `A1b2` has no {index} placeholder, so the 6 devices would share one token"),
        (&["--token", "a/b"], &[], "error: --token: token pattern `a/b` contains `/`"),
        (&["--insecure"], &[], "error: --insecure: the target `embedded` is not CoAP over DTLS"),
        (&["--target", "coaps://127.0.0.1:5684"], &[], "error: --target: `coaps://127.0.0.1:5684` is CoAP over DTLS: say how to trust the server with --ca FILE"),
        (&["--target", "coaps://127.0.0.1:5684", "--ca", "/nonexistent/ca.pem"], &[], "error: --ca: dtls.ca: "),
        (&[], &[("COAP_HARNESS_TARGET", "coaps://127.0.0.1:5684"), ("COAP_HARNESS_CA", "/nonexistent/ca.pem")], "error: COAP_HARNESS_CA: dtls.ca: "),
        (&["--token-file", "/nonexistent/tokens.txt"], &[], "error: --token-file: devices.token_file: cannot read /nonexistent/tokens.txt"),
        (&["--rate", "1000000000/s"], &[], "error: --rate: phases[1].rate: "),
    ];
    for (flags, env, want) in cases {
        let mut args = vec![
            "run",
            file.as_str(),
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        let o = harness(&args, env);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flags:?} {env:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{flags:?} {env:?}: one line: {err}");
        assert!(
            err.starts_with(want),
            "{flags:?} {env:?}:\n{err}\nwanted: {want}"
        );
        assert!(!out.join("report.json").exists(), "nothing ran");
    }
    // clap refuses what it can parse itself, also with exit 2.
    let o = harness(&["run", &file, "--rate", "fast"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--rate"), "{}", stderr(&o));
    let o = harness(&["run", &file, "--ca", "ca.pem", "--insecure"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}

/// `${KEY}` from `-e KEY=VALUE` and `${ENV:NAME}` from the environment; an undefined one is an error at its
/// line and column, and an invalid value names the variable it came from.
#[test]
fn variables_from_the_command_line_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let text = "target: embedded\nseed: ${SEED}\ndevices:\n  count: ${ENV:FLEET_SIZE}\n  token: \"${PREFIX}-{index}\"\nphases:\n  - duration: ${LEN}\n    interval: 200ms\n";
    let file = write(dir.path(), "vars.yaml", text);
    let out = dir.path().join("out");
    let o = harness(
        &[
            "run",
            &file,
            "--quiet",
            "-e",
            "SEED=5",
            "-e",
            "PREFIX=meter",
            "--var",
            "LEN=600ms",
            "--out",
            out.to_str().unwrap(),
        ],
        &[("FLEET_SIZE", "3")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = read_report(&out);
    assert_eq!((r.devices.count, r.scenario.seed), (3, 5));
    assert_eq!(r.phases[0].duration_s, 0.6);
    assert!(r.total.outcomes.ok > 0 && r.total.sent == r.total.outcomes.ok);

    // Each a validation error (exit 2) naming the file, line and column, and where a bad value came from.
    for (vars, fleet_size, starts, says) in [
        (
            &["SEED=5", "PREFIX=m", "LEN=1s"][..],
            None,
            format!(
                "error: {file}:4:10: `${{ENV:FLEET_SIZE}}`: the environment variable FLEET_SIZE is not set"
            ),
            &[][..],
        ),
        (
            &["SEED=5", "LEN=1s"][..],
            Some("3"),
            format!("error: {file}:5:11: `${{PREFIX}}` is not defined: pass -e PREFIX=VALUE"),
            &[][..],
        ),
        (
            &["SEED=5", "PREFIX=m", "LEN=soon"][..],
            Some("3"),
            format!("error: {file}:7:"),
            &["`soon` is not a duration", "(the value came from -e LEN)"][..],
        ),
        (
            &["SEED=5", "PREFIX=m", "LEN=1s"][..],
            Some("0"),
            format!("error: {file}:4:3: devices.count: must be at least 1"),
            &["(the value came from ${ENV:FLEET_SIZE})"][..],
        ),
    ] {
        let mut args = vec!["run", file.as_str()];
        for v in vars {
            args.extend(["-e", v]);
        }
        let env: Vec<(&str, &str)> = fleet_size.map(|n| ("FLEET_SIZE", n)).into_iter().collect();
        let o = harness(&args, &env);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{vars:?}: {err}");
        assert!(err.starts_with(&starts), "{err}");
        for s in says {
            assert!(err.contains(s), "{s}: {err}");
        }
    }
}

/// A real device's access token is one literal: with one device it is used as it is, end to end.
#[test]
fn one_literal_token_for_one_device_against_serve() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.txt");
    std::fs::write(&tokens, "A1b2C3d4\n").unwrap();
    let served = serve(&tokens, None);
    let out = dir.path().join("out");
    let target = format!("coap://127.0.0.1:{}", served.plain);
    let o = run_quiet(
        &[
            ("--target", &target),
            ("--devices", "1"),
            ("--rate", "10"),
            ("--duration", "1s"),
        ],
        &out,
        &[("COAP_HARNESS_TOKEN", "A1b2C3d4")],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let r = read_report(&out);
    assert_eq!(r.scenario.name, "adhoc-telemetry");
    assert_eq!(r.target.url, format!("coap://127.0.0.1:{}", served.plain));
    assert!(r.total.sent >= 5, "{}", r.total.sent);
    assert_eq!(
        r.total.sent, r.total.outcomes.ok,
        "every request 2.01 for the known token"
    );

    // Another token is refused by the server: the run fails its expectation (exit 1), it still runs.
    let out = dir.path().join("wrong");
    let o = run_quiet(
        &[
            ("--target", &target),
            ("--token", "Zz99"),
            ("--devices", "1"),
            ("--rate", "10"),
            ("--duration", "500ms"),
        ],
        &out,
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(read_report(&out).total.outcomes.ok, 0);
}

/// Ad-hoc mode over DTLS against `serve --coaps`: `--ca` verifies the server; `--insecure` runs unverified
/// and the report says so.
#[test]
fn adhoc_over_dtls_against_serve_coaps_with_ca_and_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let m = pki(&dir.path().join("pki"));
    let tokens = dir.path().join("tokens.txt");
    std::fs::write(&tokens, "t-0\nt-1\nt-2\n").unwrap();
    let served = serve(&tokens, Some(&m));
    let target = format!("coaps://127.0.0.1:{}", served.secure.unwrap());
    let ca = m.cert_path(coap_harness::pki::Role::CaRoot);
    let out = dir.path().join("verified");
    let o = run_quiet(
        &[
            ("--target", &target),
            ("--ca", ca.to_str().unwrap()),
            ("--token", "t-{index}"),
            ("--devices", "3"),
            ("--rate", "12"),
            ("--duration", "1s"),
        ],
        &out,
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let r = read_report(&out);
    assert_eq!(r.security.verification, "certificate");
    assert!(!r.security.insecure);
    assert!(
        r.total.sent >= 6 && r.total.sent == r.total.outcomes.ok,
        "{:?}",
        r.total
    );

    let out = dir.path().join("insecure");
    let o = run_quiet(
        &[
            ("--token", "t-{index}"),
            ("--devices", "3"),
            ("--duration", "500ms"),
        ],
        &out,
        &[
            ("COAP_HARNESS_TARGET", &target),
            ("COAP_HARNESS_INSECURE", "true"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let r = read_report(&out);
    assert!(r.security.insecure);
    assert_eq!(r.security.verification, "disabled");
    assert!(
        stdout(&o).to_lowercase().contains("insecure")
            || stderr(&o).to_lowercase().contains("insecure"),
        "the terminal says so: {}{}",
        stdout(&o),
        stderr(&o)
    );
}

/// `--print-scenario` prints YAML that, saved and run with no flags, is the same run; without a scenario
/// file or a target, `run` says what to give.
#[test]
fn print_scenario_saves_an_adhoc_run_as_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--target",
        "embedded",
        "--devices",
        "4",
        "--rate",
        "20",
        "--duration",
        "700ms",
        "--seed",
        "3",
    ];
    let mut print = vec!["run", "--print-scenario"];
    print.extend_from_slice(&flags);
    let o = harness(&print, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let yaml = stdout(&o);
    assert!(
        yaml.starts_with("# effective scenario: <built-in telemetry scenario>"),
        "{yaml}"
    );
    let file = write(dir.path(), "saved.yaml", &yaml);
    let v = harness(&["validate", &file], &[]);
    assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));
    assert!(
        stdout(&v).contains("`adhoc-telemetry`, target embedded, 4 devices, 1 phases, 700ms"),
        "{}",
        stdout(&v)
    );

    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let mut adhoc = vec!["run", "--quiet", "--out", a.to_str().unwrap()];
    adhoc.extend_from_slice(&flags);
    let o = harness(&adhoc, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = harness(
        &["run", &file, "--quiet", "--out", b.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (ra, rb) = (read_report(&a), read_report(&b));
    assert_eq!(ra.scenario.name, rb.scenario.name);
    assert_eq!(ra.scenario.seed, rb.scenario.seed);
    assert_eq!(ra.scenario.request, rb.scenario.request);
    assert_eq!(ra.phases.len(), rb.phases.len());
    for (x, y) in ra.phases.iter().zip(&rb.phases) {
        assert_eq!(
            (&x.name, x.duration_s, x.devices, &x.pacing),
            (&y.name, y.duration_s, y.devices, &y.pacing)
        );
    }
    assert_eq!(ra.devices.count, rb.devices.count);

    let o = harness(&["run", "--quiet"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("give a scenario file, or --target"),
        "{}",
        stderr(&o)
    );
}

/// Paths on the command line are relative to the working folder, not to the scenario's.
#[test]
fn command_line_paths_are_relative_to_the_working_folder() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("scenarios");
    std::fs::create_dir(&sub).unwrap();
    let file = write(&sub, "s.yaml", "target: embedded\ndevices:\n  count: 2\nphases:\n  - duration: 400ms\n    interval: 100ms\n");
    std::fs::write(dir.path().join("tokens.txt"), "x1\nx2\n").unwrap();
    let out = dir.path().join("out");
    let o = cmd()
        .current_dir(dir.path())
        .args([
            "run",
            &file,
            "--quiet",
            "--token-file",
            "tokens.txt",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = read_report(&out);
    assert_eq!(r.total.sent, r.total.outcomes.ok);
    let _: PathBuf = out;
}

/// `--client-cert/--client-key` for two-way DTLS against `serve --coaps --client-auth require`; without them
/// the server refuses the handshake.
#[test]
fn client_certificate_flags_for_two_way_dtls() {
    use coap_harness::pki::Role;
    let dir = tempfile::tempdir().unwrap();
    let m = pki(&dir.path().join("pki"));
    let tokens = dir.path().join("tokens.txt");
    std::fs::write(&tokens, "t-0\nt-1\n").unwrap();
    let ca = m.cert_path(Role::CaRoot);
    let served = serve_with(
        &tokens,
        Some(&m),
        &[
            "--client-auth".as_ref(),
            "require".as_ref(),
            "--client-ca".as_ref(),
            ca.as_os_str(),
        ],
    );
    let target = format!("coaps://127.0.0.1:{}", served.secure.unwrap());
    let out = dir.path().join("two-way");
    let client = m.cert_path(Role::Client);
    let key = m.key_path(Role::Client);
    let o = run_quiet(
        &[
            ("--target", &target),
            ("--ca", ca.to_str().unwrap()),
            ("--client-cert", client.to_str().unwrap()),
            ("--token", "t-{index}"),
            ("--devices", "2"),
            ("--rate", "8"),
            ("--duration", "1s"),
        ],
        &out,
        &[("COAP_HARNESS_CLIENT_KEY", key.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let r = read_report(&out);
    assert!(
        r.security
            .client_cert
            .as_deref()
            .is_some_and(|c| c.ends_with("client.pem")),
        "{:?}",
        r.security
    );
    assert!(
        r.total.sent >= 4 && r.total.sent == r.total.outcomes.ok,
        "{:?}",
        r.total
    );

    let out = dir.path().join("one-way");
    let o = run_quiet(
        &[
            ("--target", &target),
            ("--ca", ca.to_str().unwrap()),
            ("--token", "t-{index}"),
            ("--devices", "2"),
            ("--duration", "500ms"),
        ],
        &out,
        &[],
    );
    assert_ne!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let hs = read_report(&out).handshakes.expect("handshakes");
    assert_eq!(hs.ok, 0, "{hs:?}");
    // A key without its certificate is refused by clap, exit 2.
    let o = harness(
        &[
            "run",
            "--target",
            &target,
            "--client-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
}

/// `--psk-identity/--psk-key` (the key from COAP_HARNESS_PSK_KEY) against `serve --coaps` with a CSV of PSK
/// identities; the wrong key is refused in the handshake.
#[test]
fn psk_flags_against_a_psk_listener() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("psk.csv");
    std::fs::write(
        &csv,
        "token,psk_identity,psk_key\nA1b2,meter-1,hex:00112233445566778899aabbccddeeff\n",
    )
    .unwrap();
    let secure = common::free_udp_port();
    let served = serve_with(
        &csv,
        None,
        &["--coaps".as_ref(), format!("127.0.0.1:{secure}").as_ref()],
    );
    let _ = served.plain;
    let target = format!("coaps://127.0.0.1:{secure}");
    let out = dir.path().join("psk");
    let o = run_quiet(
        &[
            ("--target", &target),
            ("--psk-identity", "meter-1"),
            ("--token", "A1b2"),
            ("--devices", "1"),
            ("--rate", "5"),
            ("--duration", "1s"),
        ],
        &out,
        &[(
            "COAP_HARNESS_PSK_KEY",
            "hex:00112233445566778899aabbccddeeff",
        )],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let r = read_report(&out);
    assert_eq!(r.security.verification, "psk");
    assert!(
        r.total.sent >= 3 && r.total.sent == r.total.outcomes.ok,
        "{:?}",
        r.total
    );
    // The printed scenario keeps the key out: a reference to the variable it came from.
    let o = harness(
        &[
            "run",
            "--print-scenario",
            "--target",
            &target,
            "--psk-identity",
            "meter-1",
            "--token",
            "A1b2",
            "--devices",
            "1",
        ],
        &[(
            "COAP_HARNESS_PSK_KEY",
            "hex:00112233445566778899aabbccddeeff",
        )],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("${ENV:COAP_HARNESS_PSK_KEY}") && !stdout(&o).contains("aabbcc"),
        "{}",
        stdout(&o)
    );

    let out = dir.path().join("wrong");
    let o = run_quiet(
        &[
            ("--target", &target),
            ("--psk-identity", "meter-1"),
            ("--psk-key", "not-the-key"),
            ("--token", "A1b2"),
            ("--devices", "1"),
            ("--duration", "500ms"),
        ],
        &out,
        &[],
    );
    assert_ne!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(read_report(&out).handshakes.expect("handshakes").ok, 0);
}
