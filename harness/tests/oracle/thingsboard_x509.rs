//! ThingsBoard's X.509 device authentication (#18): the shipped `scenarios/thingsboard-x509.yaml` against the
//! embedded server in ThingsBoard mode, row by row, with the missing path validation reported as a finding;
//! and the material `certs --devices N` writes, served by `serve --client-auth thingsboard --device-certs`,
//! judged by an independent client (libcoap's OpenSSL client, `-c cert -j key`).

use crate::common;

use coap_harness::report::model::{AlertDirection, RefusedBy};
use coap_harness::scenario::{self, Overrides};
use coap_harness::verdict::{self, Verdict};
use common::Peer;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn shipped() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/thingsboard-x509.yaml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_thingsboard_x509_matrix_passes_with_its_finding() {
    let plan =
        scenario::load(&shipped(), &Overrides::default()).expect("the shipped scenario is valid");
    let out = common::run(plan).await;
    let r = &out.report;
    let rows: Vec<(&str, &str, RefusedBy, Option<&str>)> = r
        .trust_cases
        .iter()
        .map(|c| {
            assert!(
                c.passed,
                "{}: expected {} observed {}",
                c.name, c.expected, c.observed
            );
            (
                c.name.as_str(),
                c.verdict.name(),
                c.refused_by,
                c.code.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "registered device certificate",
                "ok",
                RefusedBy::None,
                Some("2.01")
            ),
            (
                "unregistered certificate from the device CA",
                "client_cert_unregistered",
                RefusedBy::Coap,
                Some("4.01")
            ),
            (
                "certificate from another CA",
                "client_cert_unregistered",
                RefusedBy::Coap,
                Some("4.01")
            ),
            (
                "expired device certificate (registered)",
                "client_cert_rejected",
                RefusedBy::Handshake,
                None
            ),
            (
                "no certificate, valid token",
                "ok",
                RefusedBy::None,
                Some("2.01")
            ),
            (
                "no certificate, no token",
                "ok",
                RefusedBy::Coap,
                Some("4.01")
            ),
        ]
    );
    // The certificate cases used the token-less device API; the token case its token path.
    assert_eq!(r.trust_cases[0].request, "CON POST /api/v1/telemetry");
    assert_eq!(
        r.trust_cases[4].request,
        "CON POST /api/v1/{token}/telemetry"
    );
    let expired = &r.trust_cases[3];
    let alert = expired.alert.as_ref().expect("the refusal's alert");
    assert_eq!(alert.direction, AlertDirection::Received);
    assert_eq!(alert.description, "bad_certificate");
    // The server's missing path validation is a finding, in the case's row and in the warnings, for that
    // case only (the unregistered certificate from the device CA chains, so it is no finding).
    let findings: Vec<&String> = r
        .warnings
        .iter()
        .filter(|w| w.contains("FINDING"))
        .collect();
    assert_eq!(findings.len(), 1, "{:?}", r.warnings);
    assert!(
        findings[0].contains("`certificate from another CA`")
            && findings[0].contains("does not chain to {pki}/device-ca.pem")
            && findings[0].contains("(4.01)"),
        "{}",
        findings[0]
    );
    for (i, c) in r.trust_cases.iter().enumerate() {
        assert_eq!(
            c.observed.contains("FINDING"),
            i == 2,
            "{}: {}",
            c.name,
            c.observed
        );
    }
    assert_eq!(verdict::of(r), Verdict::Passed);
}

/// The same matrix against a server that validates paths and wants every certificate registered
/// (`client_auth: require` with the device CA): the other CA's certificate is refused in the handshake,
/// so the ThingsBoard expectation fails, and there is no finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validating_server_fails_the_thingsboard_row_without_a_finding() {
    let text = std::fs::read_to_string(shipped())
        .unwrap()
        .replace("client_auth: thingsboard ", "client_auth: require     ")
        .replace("    device_certs: \"{pki}/devices\"", "");
    let plan = scenario::parse(
        &text,
        &shipped(),
        shipped().parent().unwrap(),
        "x509-require",
        &Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = common::run(plan).await;
    let r = &out.report;
    let other = r
        .trust_cases
        .iter()
        .find(|c| c.name == "certificate from another CA")
        .unwrap();
    assert!(!other.passed, "{other:?}");
    assert_eq!(other.refused_by, RefusedBy::Handshake);
    assert!(
        !r.warnings.iter().any(|w| w.contains("FINDING")),
        "{:?}",
        r.warnings
    );
    assert!(matches!(verdict::of(r), Verdict::Failed(_)));
}

/// `certs --devices N --out DIR`, then `serve --client-auth thingsboard --device-certs DIR/devices` (token
/// devices `dev-00000`.. too) as a separate process; returns it (stopped when dropped) and its DTLS port.
fn serve_thingsboard(dir: &Path, devices: u32) -> (Peer, u16) {
    let bin = env!("CARGO_BIN_EXE_coap-harness");
    let made = Command::new(bin)
        .args(["certs", "--out"])
        .arg(dir)
        .args(["--devices", &devices.to_string()])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let plain = common::free_udp_port();
    let secure = common::free_udp_port();
    let child = Command::new(bin)
        .current_dir(dir)
        .args(["serve", "--coap", &format!("127.0.0.1:{plain}")])
        .args(["--coaps", &format!("127.0.0.1:{secure}")])
        .args(["--cert", "server.pem", "--key", "server.key"])
        .args(["--client-auth", "thingsboard", "--device-certs", "devices"])
        .args(["--token-pattern", "dev-{index:05}", "--token-count", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Peer::new(child);
    common::wait_for_coap(([127, 0, 0, 1], plain).into(), Duration::from_secs(15));
    (server, secure)
}

/// `certs --devices 2` then `serve --client-auth thingsboard --device-certs OUT/devices`, judged by libcoap's
/// OpenSSL client on the token-less path: device-1's certificate -> 2.01; the unregistered one -> 4.01 over
/// an established session; the expired registered one -> no session (the server refuses it in the handshake).
#[test]
fn certs_devices_served_in_thingsboard_mode_judged_by_libcoap() {
    if !common::require("coap-client-openssl") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_server, secure) = serve_thingsboard(dir, 2);
    let post = |cert: &str| {
        let key = cert.replace(".pem", ".key");
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
            ])
            .arg("-R")
            .arg(dir.join("ca.pem"))
            .arg("-c")
            .arg(dir.join(cert))
            .arg("-j")
            .arg(dir.join(key))
            .args(["-t", "application/json", "-e", r#"{"temperature":42}"#])
            .arg(format!("coaps://127.0.0.1:{secure}/api/v1/telemetry"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let registered = post("devices/device-1.pem");
    assert!(registered.contains("c:2.01"), "registered: {registered}");
    let unregistered = post("device-unregistered.pem");
    assert!(
        unregistered.contains("c:4.01"),
        "unregistered: {unregistered}"
    );
    let expired = post("devices/device-expired.pem");
    assert!(
        !expired.contains("c:2.01") && !expired.contains("c:4.01"),
        "expired: no response expected, got {expired}"
    );
    // OpenSSL's own words for the server's refusal: a fatal bad_certificate alert, read by the client.
    assert!(
        expired.contains("alert read:fatal:bad certificate"),
        "expired: the client reports the server's alert: {expired}"
    );
}

/// The shipped matrix run by the `coap-harness` binary against a separate `serve --client-auth thingsboard`
/// process (`--target coaps://...`, the PKI folder `certs --devices 1` made), as a user runs it against a
/// remote ThingsBoard: every row passes and the other-CA row is reported as a finding.
#[test]
fn shipped_thingsboard_x509_matrix_against_a_separate_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bin = env!("CARGO_BIN_EXE_coap-harness");
    let (_server, secure) = serve_thingsboard(dir, 1);
    let text = std::fs::read_to_string(shipped()).unwrap();
    assert!(text.contains("pki: generate\n"));
    let scenario = dir.join("thingsboard-x509.yaml");
    std::fs::write(
        &scenario,
        text.replace("pki: generate\n", &format!("pki: {}\n", dir.display())),
    )
    .unwrap();
    let out_dir = dir.join("report");
    let run = Command::new(bin)
        .arg("run")
        .arg(&scenario)
        .args(["--target", &format!("coaps://127.0.0.1:{secure}")])
        .arg("--out")
        .arg(&out_dir)
        .args(["--quiet"])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(run.status.code(), Some(0), "{said}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    let cases = report["trust_cases"].as_array().expect("trust cases");
    assert_eq!(cases.len(), 6, "{cases:?}");
    for c in cases {
        assert_eq!(c["passed"], serde_json::Value::Bool(true), "{c}");
    }
    let other_ca = cases
        .iter()
        .find(|c| c["name"] == "certificate from another CA")
        .expect("the other-CA row");
    assert_eq!(
        other_ca["verdict"], "client_cert_unregistered",
        "{other_ca}"
    );
    assert!(
        other_ca["observed"].as_str().unwrap().contains("FINDING"),
        "{other_ca}"
    );
    let expired = cases
        .iter()
        .find(|c| c["name"] == "expired device certificate (registered)")
        .unwrap();
    assert_eq!(expired["refused_by"], "handshake", "{expired}");
}
