//! The fleet over DTLS: every device opens its own DTLS session to the embedded server (each handshake a
//! verdict, each request accounted for), and trust cases against the embedded server (the whole trust matrix,
//! case by case, is checked in `tests/report/trust_matrix.rs`, from the run the format tests share).

use crate::common;

use coap_harness::trust::TrustVerdict;
use coap_harness::verdict::{self, Verdict};
use common::*;

/// Plain CoAP verifies nothing, and the reports say so; `require_dtls: true` fails such a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_coap_is_named_as_such_and_require_dtls_fails_it() {
    let yaml = "target: embedded\ndevices:\n  count: 2\nphases:\n  - duration: 500ms\n    interval: 250ms\n";
    let out = run(plan(yaml)).await;
    let r = &out.report;
    assert!(r.security.plain());
    let junit = coap_harness::report::junit::render(r);
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let names: Vec<&str> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "testcase")
        .filter_map(|n| n.attribute("name"))
        .filter(|n| n.starts_with("security"))
        .collect();
    assert_eq!(names, vec!["security: no transport security (plain CoAP)"]);
    assert!(!junit.contains("verification enabled"), "{junit}");
    assert!(coap_harness::report::markdown::render(r)
        .contains("| security | no transport security (plain CoAP) |"));
    assert!(coap_harness::report::html::render(r).contains("no transport security (plain CoAP)"));
    assert!(!r.checks.iter().any(|c| c.name.starts_with("security")));
    assert_eq!(verdict::of(r), Verdict::Passed);

    let out = run(plan(&format!("{yaml}require_dtls: true\n"))).await;
    let r = &out.report;
    let check = r
        .checks
        .iter()
        .find(|c| c.name == "security: DTLS required")
        .expect("the requirement is a check");
    assert!(!check.passed);
    assert_eq!(check.observed, "no transport security (plain CoAP)");
    assert!(matches!(verdict::of(r), Verdict::Failed(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_expectation_fails_the_run_naming_expected_and_observed() {
    let mut plan = common::matrix_plan();
    plan.trust_cases.truncate(2);
    // Claim the unknown-CA server would be accepted.
    plan.trust_cases[1].expect.connect = true;
    plan.trust_cases[1].expect.verdict = Some(coap_harness::trust::TrustVerdict::Ok);
    let out = run(plan).await;
    let r = &out.report;
    let bad = &r.trust_cases[1];
    assert!(!bad.passed);
    assert!(
        bad.expected.contains("verdict ok") && bad.observed.contains("unknown_ca"),
        "{bad:?}"
    );
    assert!(
        matches!(verdict::of(r), Verdict::Failed(why) if why.contains("trust case: server certificate from an unknown CA"))
    );
}

const DTLS_FLEET: &str = r#"
target: embedded
pki: generate
devices:
  count: 120
dtls:
  ca: pki:ca
phases:
  - name: connect
    duration: 2s
    ramp: linear
    interval: 500ms
  - name: steady
    duration: 1s
    interval: 250ms
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_over_dtls_each_device_its_own_session() {
    let out = run(plan(DTLS_FLEET)).await;
    let r = &out.report;
    assert_accounted(r);
    let h = r.handshakes.as_ref().expect("handshakes recorded");
    assert_eq!((h.attempted, h.ok, h.failed), (120, 120, 0), "{h:?}");
    assert_eq!(h.verdicts.get(&TrustVerdict::Ok), Some(&120));
    assert_eq!(h.latency.count, 120);
    assert!(r.total.sent >= 120 * 4, "{}", r.total.sent);
    assert_eq!(r.total.outcomes.ok, r.total.sent, "{:?}", r.total.outcomes);
    assert_eq!(r.target.transport, "dtls");
    assert!(!r.security.insecure);
    assert_eq!(r.security.verification, "certificate");
    let dtls = r.server.as_ref().unwrap().dtls.as_ref().unwrap();
    assert_eq!(dtls.handshakes_ok, 120, "{dtls:?}");
    assert!(r.checks.iter().all(|c| c.passed), "{:?}", r.checks);
    for d in &out.devices {
        assert_eq!(
            d.handshake.as_ref().unwrap().verdict,
            coap_harness::trust::TrustVerdict::Ok
        );
        assert_eq!(d.ok, d.sent);
    }
    assert_eq!(verdict::of(r), Verdict::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_offering_only_p384_completes_against_the_embedded_server() {
    let yaml = DTLS_FLEET
        .replace("count: 120", "count: 5")
        .replace("ca: pki:ca", "ca: pki:ca\n  curves: [p384]");
    let p = plan(&yaml);
    assert_eq!(
        p.dtls.as_ref().unwrap().client.curves,
        vec![coap_harness::transport::dtls::NamedCurve::P384]
    );
    let out = run(p).await;
    let h = out.report.handshakes.as_ref().expect("handshakes recorded");
    assert_eq!((h.attempted, h.ok, h.failed), (5, 5, 0), "{h:?}");
    assert_accounted(&out.report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_without_ca_is_flagged_insecure() {
    let yaml = DTLS_FLEET
        .replace("count: 120", "count: 5")
        .replace("ca: pki:ca", "ca: none");
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    assert_eq!(
        r.handshakes
            .as_ref()
            .unwrap()
            .verdicts
            .get(&TrustVerdict::OkInsecure),
        Some(&5)
    );
    assert!(r.security.insecure);
    assert_eq!(r.security.verification, "disabled");
    assert!(coap_harness::report::terminal::render(r).contains("INSECURE RUN"));
    assert_eq!(r.total.outcomes.ok, r.total.sent);
    // Load without verification is what makes a run insecure: banner, warning, skipped JUnit case.
    assert!(r.warnings.iter().any(|w| w.starts_with("INSECURE")));
    let junit = coap_harness::report::junit::render(r);
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let security = doc
        .descendants()
        .find(|n| n.attribute("name") == Some(coap_harness::report::junit::SECURITY_VERIFIED))
        .expect("a security case");
    assert!(
        security
            .children()
            .any(|c| c.tag_name().name() == "skipped"),
        "{junit}"
    );
    // A trust-gate scenario that requires DTLS fails an unverified load.
    let out = run(plan(&format!("{yaml}require_dtls: true\n"))).await;
    let check = out
        .report
        .checks
        .iter()
        .find(|c| c.name == "security: DTLS required")
        .unwrap();
    assert!(
        !check.passed && check.observed.contains("INSECURE"),
        "{check:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_with_the_wrong_ca_opens_no_session_and_says_why() {
    let yaml = DTLS_FLEET
        .replace("count: 120", "count: 4")
        .replace("ca: pki:ca", "ca: pki:unknown_ca");
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    let h = r.handshakes.as_ref().unwrap();
    assert_eq!((h.ok, h.failed), (0, 4));
    assert_eq!(h.verdicts.get(&TrustVerdict::UnknownCa), Some(&4));
    assert_eq!(r.total.sent, 0);
    match verdict::of(r) {
        Verdict::Fault(why) => assert!(
            why.contains("no DTLS session") && why.contains("unknown_ca"),
            "{why}"
        ),
        v => panic!("{v:?}"),
    }
}
