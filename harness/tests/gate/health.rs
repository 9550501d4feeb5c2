//! The default health check: a run where every request failed must not pass. A server that answers 4.01 or
//! 5.03 to everything fails a scenario with no `expect:` and no thresholds; `health: off` turns the check off
//! explicitly; `throughput` counts successful requests while `send_rate` is the raw rate.

use crate::common;

use coap_harness::report::verdict::{self, Verdict};
use common::{assert_accounted, plan};
use std::path::Path;

use common::refuser::{Refuser, UNAUTHORIZED, UNAVAILABLE};

fn yaml(addr: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "target: coap://{addr}\ndevices:\n  count: 4\nphases:\n  - duration: 500ms\n    interval: 100ms\n{extra}"
    )
}

/// Before: with no `expect:` and no thresholds there was no check at all, so verdict::of said Passed (exit 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_refused_fails_the_default_health_check() {
    for (code, name) in [(UNAUTHORIZED, "4.01"), (UNAVAILABLE, "5.03")] {
        let server = Refuser::start(code);
        let out = common::run(plan(&yaml(server.addr, ""))).await;
        let r = &out.report;
        assert_accounted(r);
        assert!(r.total.sent > 0);
        assert_eq!(r.total.outcomes.ok, 0, "{name}: {:?}", r.total.outcomes);
        assert_eq!(r.total.codes.get(name).copied(), Some(r.total.sent));
        let health = r
            .checks
            .iter()
            .find(|c| c.name.starts_with("health: "))
            .expect("a health check in every run");
        assert_eq!(
            health.name,
            "health: at least one request succeeded and error rate < 5%"
        );
        assert!(!health.passed, "{health:?}");
        assert!(health.observed.contains(&format!("{name} x")), "{health:?}");
        let v = verdict::of(r);
        assert!(
            matches!(&v, Verdict::Failed(why) if why.contains("health")),
            "{name}: {v:?}"
        );
        assert_eq!(v.code(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_off_turns_the_check_off_explicitly() {
    let server = Refuser::start(UNAVAILABLE);
    let out = common::run(plan(&yaml(server.addr, "health: off\n"))).await;
    let r = &out.report;
    assert_accounted(r);
    assert!(r.checks.iter().all(|c| !c.name.starts_with("health")));
    assert_eq!(verdict::of(r), Verdict::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_run_passes_and_the_bound_can_be_changed() {
    let out = common::run(plan(
        "target: embedded\ndevices:\n  count: 4\nphases:\n  - duration: 500ms\n    interval: 100ms\nhealth: { max_error_rate: 20% }\n",
    ))
    .await;
    let r = &out.report;
    assert_accounted(r);
    let health = r
        .checks
        .iter()
        .find(|c| c.name.starts_with("health: "))
        .unwrap();
    assert_eq!(
        health.name,
        "health: at least one request succeeded and error rate < 20%"
    );
    assert!(health.passed, "{health:?}");
    assert_eq!(verdict::of(r), Verdict::Passed);
}

/// Before: `throughput` counted every request that ended, so 5.03s at full speed met `throughput > 1/s`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_counts_successes_and_send_rate_is_the_raw_rate() {
    let server = Refuser::start(UNAVAILABLE);
    let out = common::run(plan(&yaml(
        server.addr,
        "health: off\nthresholds:\n  - throughput > 1/s\n  - send_rate > 1/s\n",
    )))
    .await;
    let r = &out.report;
    assert_accounted(r);
    assert_eq!(r.total.ok_rps, 0.0);
    assert!(r.total.throughput_rps > 1.0);
    let by = |prefix: &str| {
        r.checks
            .iter()
            .find(|c| c.name.contains(prefix))
            .unwrap_or_else(|| panic!("{prefix} in {:?}", r.checks))
    };
    assert!(!by("throughput > 1/s").passed);
    assert!(by("send_rate > 1/s").passed);
}

#[test]
fn a_misspelled_health_setting_is_a_located_error() {
    for (text, want) in [
        ("health: of\n", "health"),
        ("health: { max_error_rat: 5% }\n", "max_error_rat"),
        ("health: { max_error_rate: 150% }\n", "max_error_rate"),
    ] {
        let y = yaml("127.0.0.1:5683".parse().unwrap(), text);
        let e = coap_harness::scenario::parse(
            &y,
            Path::new("t.yaml"),
            Path::new("."),
            "t",
            &Default::default(),
        )
        .expect_err(text)
        .to_string();
        assert!(e.contains("t.yaml:7:") && e.contains(want), "{text}: {e}");
    }
}
