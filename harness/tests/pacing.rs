//! Open-loop pacing is honest: a server that stalls for a second shows up in the latency measured from the
//! intended send time (corrected), while the latency from the actual send (uncorrected) hides it, as
//! closed-loop tools do; and when the server keeps up, the achieved rate is the requested one.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_shows_in_corrected_latency_only() {
    let yaml = "target: embedded\nembedded:\n  stall_at: 2s\n  stall_for: 1s\ndevices:\n  count: 10\nphases:\n  - duration: 5s\n    interval: 20ms\n";
    let out = run(plan(yaml)).await;
    let r = &out.report;
    assert_accounted(r);
    assert_eq!(r.total.outcomes.ok, r.total.sent, "{:?}", r.total.outcomes);
    let (c, u) = (&r.total.latency, &r.total.latency_uncorrected);
    // About a fifth of the intended sends fell in the stall: the corrected p99 is most of the second.
    assert!(c.p99_us > 500_000, "corrected p99 {} µs", c.p99_us);
    // One request per device was in flight when it began: 10 of ~2,500, under 1%, so the uncorrected p99
    // does not see the stall at all; only its maximum does.
    assert!(u.p99_us < 200_000, "uncorrected p99 {} µs", u.p99_us);
    assert!(
        u.max_us > 800_000 && c.max_us > 800_000,
        "max {} / {}",
        u.max_us,
        c.max_us
    );
    assert!(
        c.p90_us > u.p90_us * 10,
        "corrected p90 {} vs uncorrected {}",
        c.p90_us,
        u.p90_us
    );
    // The requests left late, and the report says so plainly.
    assert!(
        r.total.send_lag.p99_us > 500_000,
        "send lag p99 {}",
        r.total.send_lag.p99_us
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("requests left late")),
        "{:?}",
        r.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_achieved_rate_is_the_requested_rate_when_the_server_keeps_up() {
    let yaml =
        "target: embedded\ndevices:\n  count: 20\nphases:\n  - duration: 3s\n    rate: 400/s\n";
    let out = run(plan(yaml)).await;
    let r = &out.report;
    assert_accounted(r);
    let sent = r.total.sent as f64;
    assert!(
        (sent - 1200.0).abs() / 1200.0 < 0.03,
        "sent {sent} of 1200 scheduled"
    );
    let rps = r.phases[0].requests.throughput_rps;
    assert!(
        (rps - 400.0).abs() / 400.0 < 0.03,
        "achieved {rps}/s of 400/s"
    );
    assert_eq!(r.total.outcomes.ok, r.total.sent);
    assert!(r.warnings.is_empty(), "kept the schedule: {:?}", r.warnings);
}
