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

/// Asserts the run exited with `code` (else fails with its stderr); its stderr.
fn exited(o: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "{stderr}");
    stderr
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
        .map(|c| (c.device, c.case, c.verdict.name().to_string(), c.alert))
        .collect()
}

/// What libcoap 4.3.1 (Debian bookworm's libcoap3-bin) clients do with `-R ca.pem`, measured by running them:
/// both set allow_expired_certs and allow_self_signed and check no host name, so expired, not-yet-valid,
/// wrong-host and self-signed certificates pass; the GnuTLS build also ignores the extended key usage. Both
/// refuse a SHA-1 signature (OpenSSL: "CA signature digest algorithm too weak"; GnuTLS: status 0x100,
/// GNUTLS_CERT_INSECURE_ALGORITHM).
const LIBCOAP: [(&str, &str, &str, Option<&str>); 20] = [
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
    (
        "coap-client-openssl",
        "weak_signature",
        "refused",
        Some("fatal bad_certificate (42)"),
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
    (
        "coap-client-gnutls",
        "weak_signature",
        "refused",
        Some("fatal bad_certificate (42)"),
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
    // They accept certificates they should refuse: the run fails (exit 1), it does not error (exit 2).
    exited(&o, 1);
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
    // They refuse the SHA-1 certificate for its signature, not as malformed: their own words.
    let text = std::fs::read_to_string(out.path().join("report.json")).unwrap();
    let r: coap_harness::report::Report = serde_json::from_str(&text).unwrap();
    let output = |device: &str| {
        r.device_trust
            .iter()
            .find(|c| c.device == device && c.case == "weak_signature")
            .and_then(|c| c.output.clone())
            .unwrap_or_default()
    };
    let openssl = output("coap-client-openssl");
    assert!(
        openssl.contains("CA signature digest algorithm too weak"),
        "{openssl}"
    );
    let gnutls = output("coap-client-gnutls");
    assert!(gnutls.contains("status 0x100"), "{gnutls}");
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
    assert_eq!(suite.attribute("tests"), Some("20"));
    assert_eq!(suite.attribute("failures"), Some("9"));
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert_eq!(html.matches("<tr data-device-trust>").count(), 20);
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
            "device_trust:\n  device: {{ name: \"ours|<b>x</b>*\", command: \"{} device {{ca}} {{host}} {{port}}\", timeout: 10s }}\n  \
             cases: [valid, expired, not_yet_valid, wrong_host, self_signed, unknown_ca, wrong_key_usage, ca_as_leaf, incomplete_chain, weak_signature]\n",
            harness()
        ),
    );
    let out = dir.path().join("out");
    let o = run(&scenario, &out);
    exited(&o, 0);
    let rows = table(&out);
    assert_eq!(rows.len(), 10);
    // summary.md: the device's name (with `|`, HTML and `*`) stays one cell of each row, shown as itself.
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        md.contains("| load | none: 0 trust cases, 0 conformance cases, 10 device-trust cases |"),
        "{md}"
    );
    // No load ran, and nothing over plain CoAP: the security row says what the run did instead.
    assert!(
        md.contains(
            "| security | no load traffic: 10 device-trust cases over DTLS, the harness as the server |"
        ),
        "{md}"
    );
    assert!(!md.contains("plain CoAP"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        json["security"],
        serde_json::json!({
            "transport": "none",
            "verification": "none",
            "insecure": false,
            "no_load": "10 device-trust cases over DTLS, the harness as the server"
        })
    );
    let table_rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| ours")).collect();
    assert_eq!(table_rows.len(), 10, "{md}");
    for row in table_rows {
        let unescaped = row
            .char_indices()
            .filter(|&(i, c)| c == '|' && (i == 0 || row.as_bytes()[i - 1] != b'\\'))
            .count();
        assert_eq!(unescaped, 7, "six cells: {row}");
        assert!(
            row.starts_with("| ours\\|&lt;b&gt;x&lt;/b&gt;\\* |"),
            "{row}"
        );
    }
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

/// Runs `device` in `case`, which it never connects in: an error (exit 2) whose message says each of
/// `said`, never a pass. The folder (reports in `out/`).
fn never_connected(device: &str, case: &str, said: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        dir.path(),
        &format!("device_trust:\n  device: {device}\n  cases: [{case}]\n"),
    );
    let o = run(&scenario, &dir.path().join("out"));
    let stderr = exited(&o, 2);
    for s in said {
        assert!(stderr.contains(s), "{s}: {stderr}");
    }
    dir
}

#[test]
fn a_device_that_cannot_start_is_an_error_not_a_pass() {
    never_connected(
        r#"{ command: "/nonexistent/device-under-test {uri}" }"#,
        "expired",
        &[
            "never connected in case `expired` (exit 127)",
            "/nonexistent/device-under-test",
        ],
    );
}

#[test]
fn a_device_that_never_connects_is_killed_and_an_error() {
    let dir = never_connected(
        r#"{ command: "sleep 30", timeout: 1s }"#,
        "unknown_ca",
        &["still running after 1s: killed"],
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

/// The two-way rows every device must produce: what the harness made of the certificate it was given.
const TWO_WAY: [(&str, &str, Option<&str>); 6] = [
    ("valid", "accepted", None),
    ("unknown_ca", "refused", Some("fatal unknown_ca (48)")),
    (
        "client_no_cert",
        "client_cert_missing",
        Some("the harness demanded a client certificate; the device sent none"),
    ),
    (
        "client_expired",
        "client_cert_rejected",
        Some("the harness refused the device's certificate: expired"),
    ),
    (
        "client_other_ca",
        "client_cert_rejected",
        Some(
            "the harness refused the device's certificate: unknown issuer (not signed by a CA the harness trusts for devices)",
        ),
    ),
    ("client_valid", "accepted", None),
];

/// `client_auth: require`: libcoap's clients given `-c/-j` (or not) and judged on what they present; every
/// row is the expected one, so the run passes, and the verdicts are in every output.
#[test]
fn libcoap_clients_present_what_they_are_given_two_way() {
    if !(common::require("coap-client-openssl") && common::require("coap-client-gnutls")) {
        return;
    }
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/device-trust-libcoap-two-way.yaml");
    let out = tempfile::tempdir().unwrap();
    let o = run(&scenario, out.path());
    exited(&o, 0);
    let mut want = Vec::new();
    for device in ["coap-client-openssl", "coap-client-gnutls"] {
        for (case, verdict, alert) in TWO_WAY {
            want.push((
                device.to_string(),
                case.to_string(),
                verdict.to_string(),
                alert.map(String::from),
            ));
        }
    }
    assert_eq!(table(out.path()), want);
    let md = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(
        md.contains("| coap-client-gnutls | client\\_expired | pass | `client_cert_rejected` | client\\_cert\\_rejected |"),
        "{md}"
    );
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let names: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .filter(|n| n.attribute("classname") == Some("device_trust.coap-client-openssl"))
        .filter_map(|n| n.attribute("name"))
        .collect();
    assert_eq!(names, TWO_WAY.map(|r| r.0));
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(
        html.contains("<td><code>client_cert_missing</code></td>"),
        "{html}"
    );
}

/// Our own device with `--cert/--key`: the same two-way rows, and it refuses the SHA-1 certificate too.
#[test]
fn our_dtls_client_presents_its_certificate_two_way() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        dir.path(),
        &format!(
            "device_trust:\n  client_auth: require\n  device: {{ name: ours, command: \"{} device {{ca}} {{host}} {{port}} {{client_cert}}\", \
             client_cert: \"--cert {{cert}} --key {{key}}\" }}\n  \
             cases: [valid, unknown_ca, client_no_cert, client_expired, client_other_ca, client_valid, weak_signature]\n",
            harness()
        ),
    );
    let out = dir.path().join("out");
    let o = run(&scenario, &out);
    exited(&o, 0);
    let rows = table(&out);
    let got: Vec<(&str, &str)> = rows.iter().map(|r| (r.1.as_str(), r.2.as_str())).collect();
    let mut want: Vec<(&str, &str)> = TWO_WAY.iter().map(|r| (r.0, r.1)).collect();
    want.push(("weak_signature", "refused"));
    assert_eq!(got, want);
}

/// A user CA whose key cannot sign SHA-1 (Ed25519): `weak_signature` is `not_run` with the reason, an
/// error (exit 2) unless the scenario expects it; then it is a skipped JUnit case, never a pass.
#[test]
fn weak_signature_that_cannot_be_made_is_not_run_never_a_pass() {
    if !common::openssl::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    openssl(
        dir.path(),
        "req -x509 -new -newkey ed25519 -nodes -keyout ca.key -out ca.pem -subj /CN=Ed25519-Device-CA -days 3650 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign",
    );
    let body = |case: &str| {
        format!(
            "device_trust:\n  pki: {{ ca_cert: ca.pem, ca_key: ca.key }}\n  device: {{ command: \"false {{uri}}\" }}\n  cases: [{case}]\n"
        )
    };
    let scenario = write_scenario(dir.path(), &body("weak_signature"));
    let o = run(&scenario, &dir.path().join("out"));
    let stderr = exited(&o, 2);
    assert!(
        stderr.contains("`weak_signature` for `false` was not run"),
        "{stderr}"
    );
    assert!(stderr.contains("not ECDSA P-256 or P-384"), "{stderr}");
    let rows = table(&dir.path().join("out"));
    assert_eq!(rows[0].2, "not_run");

    let scenario = write_scenario(dir.path(), &body("{ weak_signature: not_run }"));
    let out = dir.path().join("out2");
    let o = run(&scenario, &out);
    exited(&o, 0);
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite") && n.attribute("name") == Some("device_trust"))
        .unwrap();
    assert_eq!(suite.attribute("skipped"), Some("1"), "{junit}");
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("not run (expected)"), "{md}");
}

/// Runs `openssl ARGS` (split at spaces) in `dir`; panics with its output if it fails.
fn openssl(dir: &Path, args: &str) {
    let args: Vec<&str> = args.split_whitespace().collect();
    let o = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        o.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A real device on a test network, with a CA already flashed into it: the user's CA (made here by the
/// openssl CLI, never by the harness) signs the negative certificates, the harness listens on a fixed
/// address, and the "device" (libcoap's OpenSSL client, started only after the harness says where to
/// connect) trusts the user's CA file and presents its own certificate, issued by that CA.
#[test]
fn a_real_device_with_its_own_ca_and_certificate_on_a_fixed_address() {
    use std::io::{BufRead, BufReader};
    if !(common::openssl::available() && common::require("coap-client-openssl")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        "req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -subj /O=Acme/CN=Flashed-Device-CA -days 3650 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
    );
    openssl(
        d,
        "req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout device.key -out device.csr -subj /CN=device-0001",
    );
    std::fs::write(
        d.join("device.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(
        d,
        "x509 -req -in device.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile device.ext -out device.pem",
    );
    // A fixed port, as a real device needs: one the kernel just handed out.
    let port = common::free_udp_port();
    let scenario = write_scenario(
        d,
        &format!(
            "device_trust:\n  client_auth: require\n  pki: {{ ca_cert: ca.pem, ca_key: ca.key }}\n  \
             device: {{ name: flashed, wait: 30s, listen: \"127.0.0.1:{port}\" }}\n  \
             cases: [valid, {{ expired: accepted }}, unknown_ca, weak_signature, client_valid]\n"
        ),
    );
    let out = d.join("out");
    let mut child = Command::new(harness())
        .args(["run", "-q", "--out"])
        .arg(&out)
        .arg(&scenario)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let uri = format!("coaps://localhost:{port}/api/v1/device-trust/telemetry");
    for _ in 0..5 {
        let line = lines
            .by_ref()
            .map(Result::unwrap)
            .find(|l| l.contains("point the device at"))
            .expect("the harness says where to connect");
        assert!(
            line.contains(&format!("coaps://localhost:{port}/")),
            "{line}"
        );
        assert!(
            line.contains("the device must present its certificate"),
            "{line}"
        );
        let o = Command::new("coap-client-openssl")
            .args(["-B", "3", "-m", "POST", "-e", "{\"t\":1}", "-R"])
            .arg(d.join("ca.pem"))
            .arg("-c")
            .arg(d.join("device.pem"))
            .arg("-j")
            .arg(d.join("device.key"))
            .arg(&uri)
            .output()
            .unwrap();
        assert!(o.status.code().is_some());
    }
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{rest:#?}");
    let rows = table(&out);
    assert_eq!(
        rows.iter()
            .map(|r| (r.1.as_str(), r.2.as_str()))
            .collect::<Vec<_>>(),
        [
            ("valid", "accepted"),
            ("expired", "accepted"),
            ("unknown_ca", "refused"),
            ("weak_signature", "refused"),
            ("client_valid", "accepted"),
        ]
    );
}
