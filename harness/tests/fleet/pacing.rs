//! Open-loop pacing is honest: a server that stalls for a second shows up in the latency measured from the
//! intended send time (corrected), while the latency from the actual send (uncorrected) hides it, as
//! closed-loop tools do; and when the server keeps up, the achieved rate is the requested one.

use crate::common;

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
    // Whether send lag outweighs the embedded server's tens of microseconds depends on this machine's
    // wake-up latency, not on the schedule: that warning may be there, no other.
    assert!(
        r.warnings
            .iter()
            .all(|w| w.starts_with("send lag dominates the latency")),
        "kept the schedule: {:?}",
        r.warnings
    );
}

/// A server that answers each CON with an empty ACK and the response 300 ms later, and devices that mean
/// to send every 100 ms: with NSTART = 1 (RFC 7252's default) each device waits for its response before the
/// next request, so it falls behind its schedule; with NSTART = 4 it keeps up.
fn slow_server_plan(nstart: u32) -> coap_harness::scenario::RunPlan {
    plan(&format!(
        "target: embedded\nembedded:\n  response_delay: 300ms\ndevices:\n  count: 5\ncoap:\n  nstart: {nstart}\n\
         phases:\n  - duration: 3s\n    interval: 100ms\ndrain: 2s\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nstart_bounds_requests_in_flight_per_device() {
    let one = run(slow_server_plan(1)).await.report;
    let four = run(slow_server_plan(4)).await.report;
    for r in [&one, &four] {
        assert_accounted(r);
        // A device behind its schedule keeps sending its backlog into the drain; the request in flight
        // when the drain ends is unfinished, one per device at most.
        let o = &r.total.outcomes;
        assert_eq!(o.ok + o.unfinished, r.total.sent, "{o:?}");
        assert!(o.unfinished <= 5, "{o:?}");
    }
    // 5 devices x 30 slots = 150 scheduled. One in flight: a request per ~300 ms over the phase and the
    // 2 s drain, about 5 x 17.
    assert!(one.total.sent <= 90, "nstart 1 sent {}", one.total.sent);
    assert!(
        one.warnings
            .iter()
            .any(|w| w.contains("requests left late")),
        "{:?}",
        one.warnings
    );
    // Four in flight cover 300 ms of 100 ms slots: every scheduled request leaves on time.
    assert!(four.total.sent >= 145, "nstart 4 sent {}", four.total.sent);
    assert!(
        four.total.send_lag.p99_us < 100_000,
        "nstart 4 send lag p99 {} µs",
        four.total.send_lag.p99_us
    );
    // The server's 300 ms shows in both; with NSTART 1 the corrected latency also carries the backlog.
    assert!(four.total.latency.p50_us >= 300_000);
    assert!(one.total.latency.p99_us > 2 * four.total.latency.p99_us);
}
