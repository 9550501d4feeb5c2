//! Figures of a run stopped early (a signal, or an `abort_on_fail` threshold): rates are over the time the load
//! ran, not the planned duration, and the abort message states the figure that tripped it without blaming
//! NSTART or the generator for the requests that were never due.

use crate::common;

use common::refuser::{Refuser, UNAVAILABLE};
use common::{assert_accounted, plan};
use std::time::Duration;

/// Before: rates were divided by the planned 60 s, so an interrupted ~1 s run reported a sixtieth of its rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_reports_rates_over_the_time_it_ran() {
    let out = common::run_stopped_after(
        plan("target: embedded\ndevices:\n  count: 4\nphases:\n  - name: a\n    duration: 30s\n    interval: 20ms\n  - name: b\n    duration: 30s\n    interval: 20ms\n"),
        Duration::from_millis(1000),
    )
    .await;
    let r = &out.report;
    assert!(r.interrupted);
    assert_accounted(r);
    assert!(r.total.sent > 0);
    let real = r.total.sent as f64 / r.duration_s;
    let t = &r.total;
    assert!(
        (t.throughput_rps - real).abs() <= 0.05 * real + 0.1,
        "send rate {} over {} s of load, {} sent: real rate {real:.1}/s",
        t.throughput_rps,
        r.duration_s,
        t.sent
    );
    assert!(t.throughput_rps > 5.0 * t.sent as f64 / 60.0);
    // The phase that never began has no rate; the one that ran has the run's.
    assert_eq!(r.phases[1].requests.sent, 0);
    assert_eq!(r.phases[1].requests.throughput_rps, 0.0);
    assert_eq!(r.phases[0].requests.throughput_rps, t.throughput_rps);
    assert!(
        r.warnings.iter().all(|w| !w.contains("NSTART")),
        "{:?}",
        r.warnings
    );
}

/// Before: the message said "observed 5.000% so far" although every request had failed, and the report
/// blamed NSTART or the generator for sending fewer requests than scheduled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_states_the_figure_that_tripped_it() {
    let server = Refuser::start(UNAVAILABLE);
    let p = plan(&format!(
        "target: coap://{}\ndevices:\n  count: 4\nphases:\n  - duration: 30s\n    interval: 100ms\nhealth: off\n\
         thresholds:\n  - {{ threshold: \"error_rate < 5%\", abort_on_fail: true }}\n",
        server.addr
    ));
    let out = common::run(p).await;
    let r = &out.report;
    assert_accounted(r);
    let why = r
        .warnings
        .iter()
        .find(|w| w.starts_with("run aborted early"))
        .unwrap_or_else(|| panic!("{:?}", r.warnings));
    // Every request so far failed: the message says so, with the floor the schedule puts on the final rate.
    let (n, m) = {
        let at = why
            .find(" requests completed so far failed (100.000%)")
            .expect(why);
        let head = &why[..at];
        let mut words = head.rsplit(' ');
        let m: u64 = words.next().unwrap().parse().unwrap();
        assert_eq!(words.next(), Some("of"));
        let n: u64 = words.next().unwrap().parse().unwrap();
        (n, m)
    };
    assert_eq!(n, m, "{why}");
    assert!(
        why.contains("of the 1200 requests the schedule sends at most"),
        "{why}"
    );
    assert!(
        r.warnings.iter().all(|w| !w.contains("NSTART")),
        "{:?}",
        r.warnings
    );
    let real = r.total.sent as f64 / r.duration_s;
    assert!(
        (r.total.throughput_rps - real).abs() <= 0.05 * real + 0.1,
        "{} vs {real}",
        r.total.throughput_rps
    );
}
