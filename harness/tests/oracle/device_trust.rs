//! `device_trust:`: the harness as a rogue DTLS server, judged against real devices: libcoap's example
//! clients (both TLS builds), our own DTLS client (`coap-harness device`), and devices that never connect.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn harness() -> &'static str {
    env!("CARGO_BIN_EXE_coap-harness")
}

fn run(scenario: &Path, out: &Path) -> Output {
    Command::new(harness())
        .args(["run", "-q", "--out"])
        .arg(out)
        .arg(scenario)
        .output()
        .expect("coap-harness runs")
}

fn write_scenario(dir: &Path, body: &str) -> PathBuf {
    let file = dir.join("device-trust.yaml");
    std::fs::write(
        &file,
        format!("target: embedded\ndevices: {{ count: 1 }}\n{body}"),
    )
    .unwrap();
    file
}

/// (device, case, verdict, alert) rows of a report.
fn table(out: &Path) -> Vec<(String, String, String, Option<String>)> {
    let text = std::fs::read_to_string(out.join("report.json")).expect("report.json written");
    let r: coap_harness::report::Report = serde_json::from_str(&text).unwrap();
    r.device_trust
        .into_iter()
        .map(|c| (c.device, c.case, c.verdict, c.alert))
        .collect()
}

/// What libcoap 4.3.1 (Debian bookworm's libcoap3-bin) clients do with `-R ca.pem`, measured by running them:
/// both set allow_expired_certs and allow_self_signed and check no host name, so expired, not-yet-valid,
/// wrong-host and self-signed certificates pass; the GnuTLS build also ignores the extended key usage.
const LIBCOAP: [(&str, &str, &str, Option<&str>); 18] = [
    ("coap-client-openssl", "valid", "accepted", None),
    ("coap-client-openssl", "expired", "accepted", None),
    ("coap-client-openssl", "not_yet_valid", "accepted", None),
    ("coap-client-openssl", "wrong_host", "accepted", None),
    ("coap-client-openssl", "self_signed", "accepted", None),
    (
        "coap-client-openssl",
        "unknown_ca",
        "refused",
        Some("fatal unknown_ca (48)"),
    ),
    (
        "coap-client-openssl",
        "wrong_key_usage",
        "refused",
        Some("fatal unsupported_certificate (43)"),
    ),
    (
        "coap-client-openssl",
        "ca_as_leaf",
        "refused",
        Some("fatal unsupported_certificate (43)"),
    ),
    (
        "coap-client-openssl",
        "incomplete_chain",
        "refused",
        Some("fatal unknown_ca (48)"),
    ),
    ("coap-client-gnutls", "valid", "accepted", None),
    ("coap-client-gnutls", "expired", "accepted", None),
    ("coap-client-gnutls", "not_yet_valid", "accepted", None),
    ("coap-client-gnutls", "wrong_host", "accepted", None),
    ("coap-client-gnutls", "self_signed", "accepted", None),
    (
        "coap-client-gnutls",
        "unknown_ca",
        "refused",
        Some("fatal unknown_ca (48)"),
    ),
    ("coap-client-gnutls", "wrong_key_usage", "accepted", None),
    (
        "coap-client-gnutls",
        "ca_as_leaf",
        "refused",
        Some("fatal handshake_failure (40)"),
    ),
    (
        "coap-client-gnutls",
        "incomplete_chain",
        "refused",
        Some("fatal unknown_ca (48)"),
    ),
];

#[test]
fn libcoap_clients_accept_what_they_were_measured_to_accept() {
    if !(common::require("coap-client-openssl") && common::require("coap-client-gnutls")) {
        return;
    }
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/device-trust-libcoap.yaml");
    let out = tempfile::tempdir().unwrap();
    let o = run(&scenario, out.path());
    let stderr = String::from_utf8_lossy(&o.stderr);
    // They accept certificates they should refuse: the run fails (exit 1), it does not error (exit 2).
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let want: Vec<_> = LIBCOAP
        .iter()
        .map(|(d, c, v, a)| {
            (
                d.to_string(),
                c.to_string(),
                v.to_string(),
                a.map(String::from),
            )
        })
        .collect();
    assert_eq!(table(out.path()), want);
    let md = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(md.contains("## Device trust"), "{md}");
    assert!(
        md.contains("anyone on the network path can make a certificate"),
        "{md}"
    );
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite") && n.attribute("name") == Some("device_trust"))
        .expect("a device_trust suite");
    assert_eq!(suite.attribute("tests"), Some("18"));
    assert_eq!(suite.attribute("failures"), Some("9"));
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert_eq!(html.matches("<tr data-device-trust>").count(), 18);
    // The device-trust table is part of the report contract.
    let schema: serde_json::Value =
        serde_json::from_str(&coap_harness::report::schema::schema_json()).unwrap();
    let instance: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    assert!(instance["device_trust"].is_array());
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn our_dtls_client_refuses_every_bad_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        dir.path(),
        &format!(
            "device_trust:\n  device: {{ name: ours, command: \"{} device {{ca}} {{host}} {{port}}\", timeout: 10s }}\n  \
             cases: [valid, expired, not_yet_valid, wrong_host, self_signed, unknown_ca, wrong_key_usage, ca_as_leaf, incomplete_chain]\n",
            harness()
        ),
    );
    let out = dir.path().join("out");
    let o = run(&scenario, &out);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rows = table(&out);
    assert_eq!(rows.len(), 9);
    for (_, case, verdict, alert) in rows {
        if case == "valid" {
            assert_eq!(verdict, "accepted");
        } else {
            // rustls' DTLS client answers every certificate it rejects with bad_certificate.
            assert_eq!(
                (verdict.as_str(), alert.as_deref()),
                ("refused", Some("fatal bad_certificate (42)")),
                "{case}"
            );
        }
    }
}

#[test]
fn a_device_that_cannot_start_is_an_error_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        dir.path(),
        "device_trust:\n  device: { command: \"/nonexistent/device-under-test {uri}\" }\n  cases: [expired]\n",
    );
    let o = run(&scenario, &dir.path().join("out"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("never connected in case `expired` (exit 127)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("/nonexistent/device-under-test"),
        "{stderr}"
    );
}

#[test]
fn a_device_that_never_connects_is_killed_and_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        dir.path(),
        "device_trust:\n  device: { command: \"sleep 30\", timeout: 1s }\n  cases: [unknown_ca]\n",
    );
    let o = run(&scenario, &dir.path().join("out"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("still running after 1s: killed"),
        "{stderr}"
    );
    let rows = table(&dir.path().join("out"));
    assert_eq!(rows[0].2, "no_connection");
}

#[test]
fn a_real_device_is_waited_for_on_the_address_printed() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        dir.path(),
        "device_trust:\n  device: { name: real, wait: 30s }\n  cases: [valid, wrong_host]\n",
    );
    let out = dir.path().join("out");
    let mut child = Command::new(harness())
        .args(["run", "-q", "--out"])
        .arg(&out)
        .arg(&scenario)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut codes = Vec::new();
    for _ in 0..2 {
        // "... point the device at coaps://localhost:PORT/api/v1/<token>/telemetry (CA file PATH); waiting ..."
        let line = lines
            .by_ref()
            .map(Result::unwrap)
            .find(|l| l.contains("point the device at"))
            .expect("the harness says where to connect");
        let port = line.split("coaps://localhost:").nth(1).unwrap();
        let port = &port[..port.find('/').unwrap()];
        let ca = line.split("(CA file ").nth(1).unwrap();
        let ca = &ca[..ca.find(')').unwrap()];
        let o = Command::new(harness())
            .args(["device", ca, "localhost", port])
            .output()
            .unwrap();
        codes.push(o.status.code());
    }
    assert_eq!(codes, [Some(0), Some(1)]);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let rows = table(&out);
    assert_eq!(
        rows.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(),
        ["accepted", "refused"]
    );
}
