//! The ThingsBoard device-API conformance suite: it passes against the embedded server, Observe and RPC
//! included, and it catches a server that is not ThingsBoard (libcoap's, which does not enforce tokens).

use crate::common;

use coap_harness::verdict::{self, Verdict};
use common::*;
use std::path::Path;

fn suite(overrides: coap_harness::scenario::Overrides) -> coap_harness::scenario::RunPlan {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/thingsboard-api.yaml");
    coap_harness::scenario::load(&file, &overrides).unwrap()
}

/// Every conformance case ran (none skipped) and passed; else the first that did not.
fn assert_every_case_passed(r: &coap_harness::report::Report) {
    for c in &r.conformance {
        assert!(
            c.passed && c.skipped.is_none(),
            "{}: expected {} observed {}",
            c.name,
            c.expected,
            c.observed
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thingsboard_suite_passes_against_the_embedded_server() {
    let out = run(suite(Default::default())).await;
    let r = &out.report;
    assert_eq!(r.conformance.len(), 13);
    assert_every_case_passed(r);
    let by_name = |n: &str| r.conformance.iter().find(|c| c.name == n).unwrap();
    assert_eq!(
        by_name("attribute subscription with Observe").notifications,
        2
    );
    assert_eq!(by_name("RPC subscription and reply").notifications, 1);
    assert_eq!(
        by_name("RPC subscription and reply").code.as_deref(),
        Some("2.03")
    );
    assert_eq!(
        by_name("unknown token is refused").code.as_deref(),
        Some("4.01")
    );
    let stats = r.server.as_ref().unwrap();
    assert_eq!(stats.rpc_replies, 1, "{stats:?}");
    assert!(stats.notifications_acked >= 3, "{stats:?}");
    assert_eq!(verdict::of(r), Verdict::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_expectation_in_a_case_fails_naming_expected_and_observed() {
    let mut plan = suite(Default::default());
    plan.conformance.truncate(1);
    plan.conformance[0].expect.codes = vec![coap_harness::coap::Code::CHANGED];
    let out = run(plan).await;
    let c = &out.report.conformance[0];
    assert!(!c.passed);
    assert_eq!(
        c.observed,
        "response: response code 2.04, observed 2.01 cf=50"
    );
    assert!(matches!(verdict::of(&out.report), Verdict::Failed(_)));
}

/// libcoap's server with dynamic resources is no ThingsBoard: it accepts any token (2.01, then 2.04).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_detects_a_server_that_does_not_enforce_tokens() {
    if !require("coap-server-notls") {
        return;
    }
    let (_server, addr) = libcoap_server();
    let out = run(suite(coap_harness::scenario::Overrides {
        target: Some(format!("coap://{addr}")),
        ..Default::default()
    }))
    .await;
    let r = &out.report;
    let unknown = r
        .conformance
        .iter()
        .find(|c| c.name == "unknown token is refused")
        .unwrap();
    assert!(!unknown.passed);
    assert!(
        matches!(unknown.code.as_deref(), Some("2.01") | Some("2.04")),
        "{unknown:?}"
    );
    assert!(
        unknown
            .observed
            .contains("response code 4.01, observed 2.0"),
        "{}",
        unknown.observed
    );
    // Cases that need the embedded server to push are skipped, and say so.
    let skipped: Vec<&str> = r
        .conformance
        .iter()
        .filter(|c| c.skipped.is_some())
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        skipped,
        vec![
            "attribute subscription with Observe",
            "RPC subscription and reply"
        ]
    );
    assert!(r.warnings.iter().any(|w| w.contains("skipped")));
    assert!(matches!(verdict::of(r), Verdict::Failed(_)));
}

/// The same suite over DTLS: every case through its own DTLS session, Observe notifications and RPC
/// included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thingsboard_suite_passes_over_dtls() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/thingsboard-api.yaml");
    let text = std::fs::read_to_string(file).unwrap();
    let text = text.replace(
        "conformance:\n",
        "pki: generate\ndtls:\n  ca: pki:ca\nconformance:\n",
    );
    let out = run(plan(&text)).await;
    let r = &out.report;
    assert_eq!(r.target.transport, "dtls");
    assert_eq!(r.conformance.len(), 13);
    assert_every_case_passed(r);
    let dtls = r.server.as_ref().unwrap().dtls.as_ref().unwrap();
    assert_eq!(dtls.handshakes_ok, 13, "one session per case: {dtls:?}");
    assert_eq!(verdict::of(r), Verdict::Passed);
}

/// Each case seeds its own message IDs and tokens (the fix of a flake: a case's new socket may get the
/// previous case's port). Here every case reaches the server from the same endpoint, through a relay: with
/// one seed for all cases, the Observe GET repeated the attributes POST's message ID and token, the server's
/// deduplication answered it with the POST's cached 2.01, and the client took that for its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_from_one_endpoint_are_not_answered_from_each_others_exchanges() {
    use coap_harness::server::{self, ServerConfig, TokenPolicy};
    let server = server::start(ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        tokens: TokenPolicy::Any,
        response_delay: None,
        plain: true,
        dtls: None,
    })
    .await
    .unwrap();
    let relay = common::relay::OnePortRelay::start(server.local_addr()).await;
    let yaml = format!(
        "target: coap://{}\nseed: 7\ndevices:\n  count: 1\n  token: relayed\nconformance:\n  \
         - name: client attributes posted\n    path: /api/v1/{{token}}/attributes\n    \
         payload: '{{\"fw\":\"1\"}}'\n    expect: {{ code: \"2.01\" }}\n  \
         - name: attribute subscription\n    method: GET\n    path: /api/v1/{{token}}/attributes\n    \
         observe: true\n    expect: {{ code: \"2.05\" }}\n",
        relay.addr
    );
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    assert_every_case_passed(r);
    assert_eq!(r.conformance[1].code.as_deref(), Some("2.05"));
    // The server processed both requests; none was answered as a duplicate.
    let stats = server.stats();
    assert_eq!(stats.duplicates, 0, "{stats:?}");
    assert_eq!(stats.observe_registrations, 1, "{stats:?}");
}
