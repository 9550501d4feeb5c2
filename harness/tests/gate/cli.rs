//! The binary's contract: exit codes (0 passed, 1 a check failed, 2 could not run), one-line errors naming
//! the file, line, column and field, and a report written even when the run is cut short.

use crate::common;

use coap_harness::pki::Role;
use coap_harness::report::Report;
use common::Peer;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .args(args)
        .output()
        .expect("run coap-harness")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const SMALL: &str =
    "target: embedded\ndevices:\n  count: 20\nphases:\n  - duration: 1s\n    interval: 200ms\n";

fn read_report(dir: &Path) -> Report {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report.json written");
    serde_json::from_str(&text).expect("report.json parses as a Report")
}

/// A separate `serve --any-token --coaps` with a fresh PKI and `extra` arguments, once its plain port answers:
/// (the PKI's folder, its manifest, the DTLS port, the server).
fn serve_coaps(extra: &[&str]) -> (tempfile::TempDir, coap_harness::pki::Manifest, u16, Peer) {
    let dir = tempfile::tempdir().unwrap();
    let pki = coap_harness::pki::generate(&coap_harness::pki::PkiOptions {
        out: dir.path().to_path_buf(),
        hosts: vec![],
        force: false,
    })
    .unwrap()
    .manifest;
    let plain = common::free_udp_port();
    let secure = common::free_udp_port();
    let child = Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .args([
            "serve",
            "--any-token",
            "--coap",
            &format!("127.0.0.1:{plain}"),
        ])
        .args(["--coaps", &format!("127.0.0.1:{secure}")])
        .arg("--cert")
        .arg(pki.cert_path(Role::Server))
        .arg("--key")
        .arg(pki.key_path(Role::Server))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let server = Peer::new(child);
    common::wait_for_coap(
        format!("127.0.0.1:{plain}").parse().unwrap(),
        Duration::from_secs(10),
    );
    (dir, pki, secure, server)
}

#[test]
fn validate_accepts_the_shipped_scenarios() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for name in [
        "smoke.yaml",
        "telemetry-plain.yaml",
        "thingsboard-x509.yaml",
    ] {
        let o = harness(&["validate", root.join(name).to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains(": ok:"));
    }
}

#[test]
fn bad_scenarios_exit_2_with_a_located_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, want) in [
        (
            "malformed.yaml",
            "target: embedded\ndevices: [count: 1\n",
            "malformed.yaml:",
        ),
        (
            "unknown.yaml",
            &SMALL.replace("  count: 20\n", "  count: 20\n  colour: red\n"),
            "unknown.yaml:4:3: devices: unknown field `colour`",
        ),
        (
            "zero.yaml",
            &SMALL.replace("count: 20", "count: 0"),
            "zero.yaml:3:3: devices.count: must be at least 1 (got 0)",
        ),
    ] {
        let file = write(dir.path(), name, text);
        for cmd in ["validate", "run"] {
            let o = harness(&[cmd, &file]);
            assert_eq!(o.status.code(), Some(2), "{cmd} {name}");
            let err = stderr(&o);
            assert_eq!(err.lines().count(), 1, "one line: {err}");
            assert!(
                err.starts_with(&format!("error: {}", dir.path().join(want).display()))
                    || err.contains(want),
                "{err}"
            );
        }
    }
    let curves = "target: embedded\ndevices:\n  count: 2\ndtls:\n  ca: none\n  curves:\n    - p384\n    - p521\nphases:\n  - duration: 1s\n    interval: 200ms\n";
    let file = write(dir.path(), "curves.yaml", curves);
    for cmd in ["validate", "run"] {
        let o = harness(&[cmd, &file]);
        assert_eq!(o.status.code(), Some(2), "{cmd} curves.yaml");
        let err = stderr(&o);
        assert!(
            err.contains(
                "curves.yaml:8:5: dtls.curves[1]: unknown curve `p521` (known: x25519, p256, p384)"
            ),
            "{err}"
        );
    }
    let o = harness(&["validate", "/nonexistent/scenario.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read scenario /nonexistent/scenario.yaml"));
}

#[test]
fn run_passes_and_writes_json_and_markdown() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "small.yaml", SMALL);
    let out = dir.path().join("out");
    let o = harness(&["run", &file, "--quiet", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = read_report(&out);
    assert_eq!(r.scenario.name, "small");
    assert_eq!(r.total.sent, r.total.outcomes.ok);
    assert!(r.total.sent >= 90, "{}", r.total.sent);
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("PASSED") && md.contains(&r.total.sent.to_string()));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("total") && stdout.contains("PASSED"),
        "{stdout}"
    );
}

#[test]
fn overrides_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "small.yaml", SMALL);
    let out = dir.path().join("out");
    let o = harness(&[
        "run",
        &file,
        "--quiet",
        "--devices",
        "7",
        "--duration",
        "600ms",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = read_report(&out);
    assert_eq!(r.devices.count, 7);
    assert_eq!(r.phases[0].duration_s, 0.6);
}

#[test]
fn unreachable_target_exits_2_and_still_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "small.yaml", SMALL);
    let out = dir.path().join("out");
    let port = common::free_udp_port();
    let target = format!("coap://127.0.0.1:{port}");
    let o = harness(&[
        "run",
        &file,
        "--quiet",
        "--target",
        &target,
        "--devices",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("unreachable") && err.contains(&port.to_string()),
        "{err}"
    );
    let r = read_report(&out);
    assert!(r.total.sent > 0);
    assert_eq!(r.total.outcomes.unreachable, r.total.sent);
}

#[test]
fn too_many_devices_for_the_open_files_limit_exits_2_naming_both_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "small.yaml", SMALL);
    let o = harness(&[
        "run",
        &file,
        "--quiet",
        "--devices",
        "5000000",
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("5000000 devices need 50000") && err.contains("open files, but the limit is"),
        "{err}"
    );
}

#[test]
fn serve_on_a_port_in_use_exits_2_naming_the_address() {
    let busy = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let o = harness(&["serve", "--coap", &addr]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&addr) && err.to_lowercase().contains("in use"),
        "{err}"
    );
}

/// Ctrl-C stops the run; the report of what was measured is still written, and marked interrupted.
#[test]
fn interrupted_run_writes_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "long.yaml",
        &SMALL.replace("duration: 1s", "duration: 60s"),
    );
    let out = dir.path().join("out");
    let child = Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .args(["run", &file, "--quiet", "--out", out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted"));
    let r = read_report(&out);
    assert!(r.interrupted);
    assert!(r.total.sent > 0);
    assert_eq!(r.total.sent, r.total.outcomes.total());
    assert!(r.duration_s < 30.0, "stopped early: {}", r.duration_s);
}

/// `serve --coaps` answers libcoap's DTLS client, and stops cleanly on Ctrl-C.
#[test]
fn serve_coaps_answers_libcoap_client() {
    if !common::require("coap-client-openssl") {
        return;
    }
    let (_dir, pki, secure, server) = serve_coaps(&[]);
    let out = Command::new("timeout")
        .args([
            "20",
            "coap-client-openssl",
            "-v",
            "6",
            "-B",
            "5",
            "-m",
            "POST",
            "-R",
        ])
        .arg(pki.cert_path(Role::CaRoot))
        .args(["-t", "application/json", "-e", r#"{"temperature":42}"#])
        .arg(format!(
            "coaps://127.0.0.1:{secure}/api/v1/any-device/telemetry"
        ))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("2.01"), "{text}");
    let pid = server.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let o = server.take().wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!("coaps://127.0.0.1:{secure}")),
        "{stdout}"
    );
    assert!(stdout.contains("stopped:"), "{stdout}");
}

#[test]
fn serve_coaps_with_a_missing_key_exits_2_naming_the_file() {
    let o = harness(&[
        "serve",
        "--coap",
        "127.0.0.1:0",
        "--coaps",
        "127.0.0.1:0",
        "--cert",
        "/nonexistent/server.pem",
        "--key",
        "/nonexistent/server.key",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/server"), "{err}");
}

/// `serve --connection-id-length 8`: a client offering a connection ID (RFC 9146) gets one of 8 bytes from
/// the server and gives the server its own; a length outside 1-255 is a usage error (exit 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_coaps_answers_a_connection_id_of_the_length_asked() {
    for bad in ["0", "256"] {
        let o = harness(&[
            "serve",
            "--coap",
            "127.0.0.1:0",
            "--coaps",
            "127.0.0.1:0",
            "--connection-id-length",
            bad,
        ]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains("connection-id-length"), "{bad}");
    }
    let (_dir, pki, secure, _server) = serve_coaps(&["--connection-id-length", "8"]);
    let mut roots = rustls::RootCertStore::empty();
    for der in coap_harness::pki::read_certs(&pki.cert_path(Role::CaRoot)).unwrap() {
        roots.add(der.into()).unwrap();
    }
    let settings = coap_harness::transport::dtls::ClientSettings {
        trust: coap_harness::trust::ServerTrust::verify(roots, "localhost").unwrap(),
        server_name: "localhost".into(),
        client_certificate: None,
        psk: None,
        cipher_suites: Vec::new(),
        curves: Vec::new(),
        handshake_timeout: Duration::from_secs(10),
        connection_id: Some(5),
    };
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(("127.0.0.1", secure)).await.unwrap();
    let session = match coap_harness::transport::dtls::handshake(
        std::sync::Arc::new(socket),
        &settings,
    )
    .await
    {
        Ok(s) => s,
        Err(f) => panic!("{:?}: {}", f.judgement.verdict, f.judgement.detail),
    };
    let ids = session.conn.connection_ids().expect("a connection ID");
    assert_eq!((ids.local.len(), ids.remote.len()), (5, 8));
    // A CoAP ping over the CID records: the server answers with a reset.
    session
        .conn
        .write(&[0x40, 0x00, 0x12, 0x34], None)
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = session
        .conn
        .read(&mut buf, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(&buf[..n], &[0x70, 0x00, 0x12, 0x34], "RST to the ping");
    let _ = session.conn.close().await;
}
