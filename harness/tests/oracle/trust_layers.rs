//! The layer that refused: every trust case says whether the DTLS handshake or the CoAP request over the
//! session refused it (or neither), with the alert or the response code, and expectations can name both layers.
//! Against the embedded server over loopback; the CoAP-layer refusals come from a token the server does not know.

use crate::common;

use coap_harness::report::model::{AlertDirection, RefusedBy, TrustCaseResult};
use coap_harness::verdict::{self, Verdict};
use common::*;

const LAYERS: &str = r#"
target: embedded
pki: generate
devices:
  count: 1
request:
  path: /api/v1/no-such-device/telemetry
dtls:
  ca: pki:ca
  server_name: localhost
  handshake_timeout: 5s
trust_cases:
  - name: session up, unknown token
    expect: { handshake: ok, code: "4.01" }
  - name: refused by coap alone
    expect: { refused_by: coap }
  - name: client certificate, no device for it
    server: { client_auth: require }
    client: { client_cert: pki:client }
    expect: { handshake: ok, refused_by: coap, verdict: client_cert_unregistered, code: "4.01" }
  - name: server refuses, no client certificate
    server: { client_auth: require }
    expect: { refused_by: handshake, verdict: client_cert_required }
  - name: we refuse an unknown CA
    server: { cert: pki:unknown_server }
    expect: { refused_by: handshake, verdict: unknown_ca }
  - name: wrongly expected a CoAP refusal
    server: { cert: pki:unknown_server }
    expect: { refused_by: coap }
"#;

fn case<'a>(cases: &'a [TrustCaseResult], name: &str) -> &'a TrustCaseResult {
    cases
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_case_names_the_layer_that_refused() {
    let out = run(plan(LAYERS)).await;
    let r = &out.report;
    let cases = &r.trust_cases;
    for name in ["session up, unknown token", "refused by coap alone"] {
        let c = case(cases, name);
        assert!(c.passed, "{c:?}");
        assert_eq!(c.refused_by, RefusedBy::Coap);
        assert_eq!(c.verdict.name(), "ok");
        assert_eq!(c.code.as_deref(), Some("4.01"));
        assert!(c.alert.is_none());
        assert_eq!(c.request, "CON POST /api/v1/no-such-device/telemetry");
        assert_eq!(c.handshake_layer(), "ok");
        assert_eq!(
            c.coap_layer(),
            "4.01 to CON POST /api/v1/no-such-device/telemetry"
        );
    }
    let c = case(cases, "client certificate, no device for it");
    assert!(c.passed, "{c:?}");
    assert_eq!(
        (c.verdict.name(), c.refused_by),
        ("client_cert_unregistered", RefusedBy::Coap)
    );

    let c = case(cases, "server refuses, no client certificate");
    assert!(c.passed, "{c:?}");
    assert_eq!(c.refused_by, RefusedBy::Handshake);
    assert_eq!(c.code, None);
    let alert = c.alert.as_ref().expect("an alert");
    assert_eq!(alert.direction, AlertDirection::Received);
    assert_eq!(c.coap_layer(), "-");

    let c = case(cases, "we refuse an unknown CA");
    assert!(c.passed, "{c:?}");
    assert_eq!(c.refused_by, RefusedBy::Handshake);
    assert_eq!(
        c.alert.as_ref().map(|a| a.direction),
        Some(AlertDirection::Sent)
    );

    let c = case(cases, "wrongly expected a CoAP refusal");
    assert!(!c.passed);
    assert!(c.expected.contains("refused by coap"), "{}", c.expected);
    assert!(
        c.observed.contains("refused by handshake"),
        "{}",
        c.observed
    );
    assert!(matches!(verdict::of(r), Verdict::Failed(_)));

    // Every format shows both layers.
    let dir = tempfile::tempdir().unwrap();
    coap_harness::report::write_all(r, dir.path()).unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    let md = read("summary.md");
    assert!(
        md.contains("| refused by | DTLS layer | CoAP layer |"),
        "{md}"
    );
    assert!(
        md.contains("| `coap` | ok | 4.01 to CON POST /api/v1/no-such-device/telemetry |"),
        "{md}"
    );
    let html = read("report.html");
    assert_eq!(html.matches("<td data-refused-by>").count(), cases.len());
    assert!(
        html.contains("<td data-refused-by><code>handshake</code></td><td>refused (alert received")
    );
    let junit = read("junit.xml");
    assert!(junit.contains("refused by: coap"), "{junit}");
    assert!(junit.contains("CoAP layer: 4.01 to CON POST"), "{junit}");
    let term = coap_harness::report::terminal::render(r);
    assert!(
        term.contains("refused by coap: DTLS ok, CoAP 4.01"),
        "{term}"
    );
    let json: serde_json::Value = serde_json::from_str(&read("report.json")).unwrap();
    let layers: Vec<&str> = json["trust_cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["refused_by"].as_str().unwrap())
        .collect();
    assert_eq!(
        layers,
        [
            "coap",
            "coap",
            "coap",
            "handshake",
            "handshake",
            "handshake"
        ]
    );
    assert_eq!(json["trust_cases"][3]["alert"]["direction"], "received");
    assert_eq!(json["trust_cases"][4]["alert"]["direction"], "sent");
}

/// `client_auth: thingsboard` (ThingsBoard's X.509 handshake policy): a certificate is wanted, not needed;
/// only an outdated one is refused in the handshake; one from another CA opens the session (no path
/// validation), where `require` refuses it.
const THINGSBOARD: &str = r#"
target: embedded
pki: generate
devices:
  count: 1
dtls:
  ca: pki:ca
  server_name: localhost
  handshake_timeout: 5s
trust_cases:
  - name: no certificate, valid token
    server: { client_auth: thingsboard }
    expect: { refused_by: none, verdict: ok, code: "2.01" }
  - name: device certificate from our CA
    server: { client_auth: thingsboard }
    client: { client_cert: pki:client }
    expect: { handshake: ok, code: "2.01" }
  - name: certificate from another CA
    server: { client_auth: thingsboard }
    client: { client_cert: pki:rogue_client }
    expect: { handshake: ok, code: "2.01" }
  - name: expired device certificate
    server: { client_auth: thingsboard }
    client: { client_cert: pki:expired_client }
    expect: { refused_by: handshake, verdict: client_cert_rejected }
  - name: the same foreign certificate under require
    server: { client_auth: require }
    client: { client_cert: pki:rogue_client }
    expect: { refused_by: handshake, verdict: client_cert_rejected }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thingsboard_mode_refuses_only_outdated_certificates_in_the_handshake() {
    let out = run(plan(THINGSBOARD)).await;
    let r = &out.report;
    for c in &r.trust_cases {
        assert!(
            c.passed,
            "{}: expected {} observed {}",
            c.name, c.expected, c.observed
        );
    }
    let layers: Vec<RefusedBy> = r.trust_cases.iter().map(|c| c.refused_by).collect();
    assert_eq!(
        layers,
        [
            RefusedBy::None,
            RefusedBy::None,
            RefusedBy::None,
            RefusedBy::Handshake,
            RefusedBy::Handshake
        ]
    );
    let expired = case(&r.trust_cases, "expired device certificate");
    assert_eq!(
        expired.alert.as_ref().map(|a| a.direction),
        Some(AlertDirection::Received)
    );
    assert!(
        expired
            .server_saw
            .as_deref()
            .is_some_and(|s| s.contains("client_cert_rejected")),
        "{expired:?}"
    );
    assert_eq!(verdict::of(r), Verdict::Passed);
}

/// An independent peer refuses in the handshake: `openssl s_server -dtls1_2 -Verify 1` insists on a client
/// certificate, our device has none; the case records the handshake layer and the alert it received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_server_refusal_is_recorded_at_the_handshake_layer() {
    use common::openssl::{self, OpensslPki, SServer, SERVER_CERTS};
    if !openssl::available() {
        return;
    }
    let pki = std::sync::Arc::new(OpensslPki::make());
    let p = pki.clone();
    let server = tokio::task::spawn_blocking(move || {
        SServer::start_with(
            &p,
            &SERVER_CERTS[0],
            1,
            &["-Verify", "1", "-CAfile", "ca.pem"],
        )
    })
    .await
    .unwrap();
    let yaml = format!(
        "target: coaps://{}\ndevices:\n  count: 1\ndtls:\n  ca: {}\n  server_name: localhost\n  \
         handshake_timeout: 5s\ntrust_cases:\n  - name: no client certificate for openssl\n    \
         expect: {{ refused_by: handshake }}\n",
        server.addr,
        pki.path("ca.pem").display()
    );
    let out = run(plan(&yaml)).await;
    let c = &out.report.trust_cases[0];
    assert!(c.passed, "{c:?}\nopenssl: {}", server.output());
    assert_eq!(c.refused_by, RefusedBy::Handshake);
    assert_eq!(c.code, None);
    assert_eq!(
        c.alert.as_ref().map(|a| a.direction),
        Some(AlertDirection::Received),
        "{c:?}"
    );
    assert_eq!(c.target.as_deref(), Some(server.addr.to_string().as_str()));
    assert_eq!(out.report.target.address, server.addr.to_string());
}
