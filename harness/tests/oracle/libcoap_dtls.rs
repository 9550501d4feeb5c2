//! Our DTLS client against an independent server: libcoap's `coap-server-openssl` (OpenSSL 3), with PKI we
//! generate for the test. Trust verdicts, load over DTLS, and two-way DTLS when it requires a client
//! certificate.

use crate::common;

use coap_harness::pki::{self, PkiOptions};
use coap_harness::verdict::{self, Verdict};
use common::*;

fn make_pki() -> (tempfile::TempDir, pki::Manifest) {
    let dir = tempfile::tempdir().unwrap();
    let g = pki::generate(&PkiOptions {
        out: dir.path().to_path_buf(),
        hosts: vec![],
        force: false,
    })
    .unwrap();
    (dir, g.manifest)
}

/// libcoap's OpenSSL server with the test PKI's server identity, requiring a client certificate from the test
/// CA when `client_ca`: the PKI folder, the server (stopped when dropped) and its DTLS address; `None` when
/// libcoap is not installed.
fn libcoap_with_pki(client_ca: bool) -> Option<(tempfile::TempDir, Peer, std::net::SocketAddr)> {
    if !require("coap-server-openssl") {
        return None;
    }
    let (dir, m) = make_pki();
    let ca = m.cert_path(pki::Role::CaRoot);
    let (server, addr) = libcoap_dtls_server(
        &m.cert_path(pki::Role::Server),
        &m.key_path(pki::Role::Server),
        client_ca.then_some(ca.as_path()),
    );
    Some((dir, server, addr))
}

/// Every trust case of the run passed (else the first that did not, expected and observed).
fn assert_trust_cases_passed(r: &coap_harness::report::Report) {
    for c in &r.trust_cases {
        assert!(
            c.passed,
            "{}: expected {} observed {}",
            c.name, c.expected, c.observed
        );
    }
}

fn scenario(target: std::net::SocketAddr, pki_dir: &std::path::Path, body: &str) -> String {
    format!(
        "target: coaps://{target}\npki: {}\ndevices:\n  count: 1\ndtls:\n  ca: pki:ca\n  handshake_timeout: 5s\n{body}",
        pki_dir.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_verdicts_against_libcoap_openssl_server() {
    let Some((dir, _server, addr)) = libcoap_with_pki(false) else {
        return;
    };
    let yaml = scenario(
        addr,
        dir.path(),
        r#"trust_cases:
  - name: trusted CA
    expect: { handshake: ok, verdict: ok }
  - name: other CA
    client: { ca: pki:unknown_ca }
    expect: { handshake: fail, verdict: unknown_ca }
  - name: no CA
    client: { ca: none }
    expect: { handshake: ok, verdict: ok_insecure, insecure: true }
  - name: wrong name
    client: { server_name: thingsboard.example }
    expect: { handshake: fail, verdict: hostname_mismatch }
"#,
    );
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    assert_trust_cases_passed(r);
    // libcoap's dynamic resources: the first POST on a path creates it.
    assert_eq!(r.trust_cases[0].code.as_deref(), Some("2.01"));
    // The no-CA probe is that case's finding, in its own row; no unverified load ran (issue #18).
    assert!(
        !r.security.insecure,
        "a ca: none trust case does not flag the run"
    );
    assert!(
        r.trust_cases[2].insecure && r.trust_cases[2].observed.contains("verification disabled")
    );
    assert_eq!(verdict::of(r), Verdict::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_over_dtls_against_libcoap_every_outcome_recorded() {
    let Some((dir, _server, addr)) = libcoap_with_pki(false) else {
        return;
    };
    let yaml = scenario(
        addr,
        dir.path(),
        "phases:\n  - duration: 2s\n    ramp: linear\n    interval: 250ms\n",
    )
    .replace("count: 1", "count: 20");
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    assert_accounted(r);
    let h = r.handshakes.as_ref().unwrap();
    assert_eq!((h.ok, h.failed), (20, 0), "{h:?}");
    assert_eq!(
        r.total.outcomes.ok, r.total.sent,
        "{:?} {:?}",
        r.total.outcomes, r.total.codes
    );
    // One resource created per device that sent (a device ramped in last may have had no slot left).
    let senders = out.devices.iter().filter(|d| d.sent > 0).count() as u64;
    assert!(senders >= 18, "{senders}");
    assert_eq!(
        r.total.codes.get("2.01"),
        Some(&senders),
        "{:?}",
        r.total.codes
    );
    assert_eq!(r.total.codes.get("2.04"), Some(&(r.total.sent - senders)));
    assert_eq!(verdict::of(r), Verdict::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_way_dtls_against_libcoap_requiring_client_certificates() {
    let Some((dir, _server, addr)) = libcoap_with_pki(true) else {
        return;
    };
    let yaml = scenario(
        addr,
        dir.path(),
        r#"trust_cases:
  - name: no client certificate
    expect: { handshake: fail }
  - name: rogue client certificate
    client: { client_cert: pki:rogue_client }
    expect: { handshake: fail }
  - name: valid client certificate
    client: { client_cert: pki:client }
    expect: { handshake: ok, verdict: ok, code: "2.01" }
"#,
    );
    let out = run(plan(&yaml)).await;
    assert_trust_cases_passed(&out.report);
    let verdicts: Vec<&str> = out
        .report
        .trust_cases
        .iter()
        .map(|c| c.verdict.name())
        .collect();
    assert!(
        matches!(verdicts[0], "peer_alert" | "client_cert_required"),
        "no certificate: {verdicts:?}"
    );
    assert!(
        matches!(verdicts[1], "client_cert_rejected" | "peer_alert"),
        "{verdicts:?}"
    );
}

/// Pre-shared keys, as libcoap and Californium devices use them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psk_against_libcoap() {
    if !require("coap-server-openssl") {
        return;
    }
    let port = free_udp_port_pair();
    let child = std::process::Command::new("coap-server-openssl")
        .args([
            "-A",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-d",
            "1000",
            "-k",
            "s3cret",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _server = Peer::new(child);
    wait_for_coap(
        format!("127.0.0.1:{port}").parse().unwrap(),
        std::time::Duration::from_secs(10),
    );
    let yaml = format!(
        r#"target: coaps://127.0.0.1:{}
devices:
  count: 1
dtls:
  psk_identity: device-1
  psk_key: s3cret
  handshake_timeout: 2s
trust_cases:
  - name: right key
    expect: {{ handshake: ok, verdict: ok, insecure: false, code: "2.01" }}
  - name: wrong key
    client: {{ psk_key: "hex:00112233" }}
    expect: {{ handshake: fail }}
"#,
        port + 1
    );
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    assert_trust_cases_passed(r);
    assert_eq!(r.security.verification, "psk");
    assert!(!r.security.insecure);
}

/// Many PSK identities on one libcoap server: `coap-server-openssl -i FILE` matches each client identity to
/// its own key (lines `hint,identity,key`, keys as text; `-k` is the key for an identity not listed, here one
/// no device has, so a handshake succeeds only with the identity's own key). A fleet from a CSV token file,
/// five devices each with its own identity and key, posts telemetry: every request is answered, 2.01 for a
/// device's first POST (libcoap creates the resource) and 2.04 after. A sixth device sends a listed identity
/// with the wrong key: OpenSSL drops its Finished, which it cannot decrypt, without an alert (DTLS discards
/// bad records), so the handshake fails as a timeout in flight 5, named so in the report, and that device
/// sends nothing while the others post.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psk_fleet_each_identity_its_own_key_against_libcoap() {
    if !require("coap-server-openssl") {
        return;
    }
    use coap_harness::trust::TrustVerdict;
    let dir = tempfile::tempdir().unwrap();
    let (mut identities, mut csv) = (String::new(), String::from("token,psk_identity,psk_key\n"));
    for i in 0..6 {
        identities.push_str(&format!("CoAP,meter-{i},secret-key-{i}\n"));
        let key = if i == 5 {
            "wrong-key-5".to_string()
        } else {
            format!("secret-key-{i}")
        };
        csv.push_str(&format!("tok-{i},meter-{i},{key}\n"));
    }
    let id_file = dir.path().join("identities.txt");
    std::fs::write(&id_file, identities).unwrap();
    let csv_file = dir.path().join("fleet.csv");
    std::fs::write(&csv_file, csv).unwrap();
    let port = free_udp_port_pair();
    let child = std::process::Command::new("coap-server-openssl")
        .args(["-A", "127.0.0.1", "-p", &port.to_string(), "-d", "100000"])
        .args(["-k", "a-default-key-no-device-has", "-h", "CoAP", "-i"])
        .arg(&id_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _server = Peer::new(child);
    wait_for_coap(
        format!("127.0.0.1:{port}").parse().unwrap(),
        std::time::Duration::from_secs(10),
    );
    let yaml = format!(
        "target: coaps://127.0.0.1:{}\ndevices:\n  count: 6\n  token_file: {}\ndtls:\n  handshake_timeout: 3s\n\
         phases:\n  - duration: 2s\n    interval: 500ms\n",
        port + 1,
        csv_file.display()
    );
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    assert_accounted(r);
    assert_eq!(r.security.verification, "psk");
    for d in &out.devices[..5] {
        let h = d.handshake.as_ref().expect("a DTLS device handshakes");
        assert_eq!(h.verdict, TrustVerdict::Ok, "{}: {h:?}", d.token);
        assert!(d.sent >= 3 && d.ok == d.sent, "{}: {d:?}", d.token);
    }
    // Every request answered: one 2.01 per device (its resource created), 2.04 for the rest.
    assert_eq!(r.total.outcomes.ok, r.total.sent, "{:?}", r.total.outcomes);
    assert_eq!(r.total.codes.get("2.01"), Some(&5), "{:?}", r.total.codes);
    assert_eq!(
        r.total.codes.get("2.04").copied().unwrap_or(0),
        r.total.sent - 5,
        "{:?}",
        r.total.codes
    );
    assert_eq!(r.total.codes.len(), 2, "{:?}", r.total.codes);
    // The wrong key: refused in the DTLS handshake, which the server let time out after our Finished.
    let bad = &out.devices[5];
    let h = bad.handshake.as_ref().expect("the sixth device handshakes");
    assert_eq!(h.verdict, TrustVerdict::HandshakeTimeout, "{h:?}");
    let detail = h.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("flight 5"), "{detail}");
    assert_eq!(bad.sent, 0, "{bad:?}");
    let hs = r.handshakes.as_ref().expect("handshakes reported");
    assert_eq!((hs.attempted, hs.ok, hs.failed), (6, 5, 1), "{hs:?}");
    assert_eq!(hs.verdicts.get(&TrustVerdict::HandshakeTimeout), Some(&1));
    let first = hs.first_failure.as_deref().unwrap_or_default();
    assert!(
        first.starts_with("handshake_timeout") && first.contains("flight 5"),
        "{first}"
    );
}
