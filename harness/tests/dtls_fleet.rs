//! The fleet over DTLS: every device opens its own DTLS session to the embedded server (each handshake a
//! verdict, each request accounted for), and the trust matrix, case by case, against the embedded server.

mod common;

use coap_harness::verdict::{self, Verdict};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_matrix_every_case_gets_its_verdict() {
    let out = run(common::matrix_plan()).await;
    let r = &out.report;
    let observed: Vec<(&str, &str)> = r
        .trust_cases
        .iter()
        .map(|c| (c.name.as_str(), c.verdict.as_str()))
        .collect();
    assert_eq!(
        observed,
        vec![
            ("valid CA", "ok"),
            ("server certificate from an unknown CA", "unknown_ca"),
            ("devices trust another CA", "unknown_ca"),
            ("no CA given, verification disabled", "ok_insecure"),
            ("expired server certificate", "expired"),
            ("server certificate not yet valid", "not_yet_valid"),
            ("server certificate for another host", "hostname_mismatch"),
            ("self-signed server certificate", "self_signed"),
            ("two-way, no client certificate", "client_cert_required"),
            ("two-way, rogue client certificate", "client_cert_rejected"),
            (
                "two-way, expired client certificate",
                "client_cert_rejected"
            ),
            ("two-way, valid client certificate", "ok"),
        ]
    );
    for c in &r.trust_cases {
        assert!(
            c.passed,
            "{}: expected {} observed {}",
            c.name, c.expected, c.observed
        );
        if c.verdict == "ok" || c.verdict == "ok_insecure" {
            assert_eq!(c.code.as_deref(), Some("2.01"), "{}", c.name);
        } else {
            assert!(c.detail.is_some(), "{}: a failure says why", c.name);
        }
    }
    // The insecure case flags the whole run, loudly.
    assert!(r.security.insecure);
    assert!(r.warnings.iter().any(|w| w.starts_with("INSECURE")));
    let insecure: Vec<&str> = r
        .trust_cases
        .iter()
        .filter(|c| c.insecure)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(insecure, vec!["no CA given, verification disabled"]);
    let md = coap_harness::report::markdown::render(r);
    assert!(md.contains("INSECURE RUN"));
    assert_eq!(verdict::of(r), Verdict::Passed);
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
    assert_eq!(h.verdicts.get("ok"), Some(&120));
    assert_eq!(h.latency.count, 120);
    assert!(r.total.sent >= 120 * 4, "{}", r.total.sent);
    assert_eq!(r.total.outcomes.ok, r.total.sent, "{:?}", r.total.outcomes);
    assert_eq!(r.target.transport, "dtls");
    assert!(!r.security.insecure);
    assert_eq!(r.security.verification, "certificate");
    let dtls = &r.server.as_ref().unwrap()["dtls"];
    assert_eq!(dtls["handshakes_ok"], 120, "{dtls}");
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
        r.handshakes.as_ref().unwrap().verdicts.get("ok_insecure"),
        Some(&5)
    );
    assert!(r.security.insecure);
    assert_eq!(r.security.verification, "disabled");
    assert!(coap_harness::report::terminal::render(r).contains("INSECURE RUN"));
    assert_eq!(r.total.outcomes.ok, r.total.sent);
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
    assert_eq!(h.verdicts.get("unknown_ca"), Some(&4));
    assert_eq!(r.total.sent, 0);
    match verdict::of(r) {
        Verdict::Fault(why) => assert!(
            why.contains("no DTLS session") && why.contains("unknown_ca"),
            "{why}"
        ),
        v => panic!("{v:?}"),
    }
}
