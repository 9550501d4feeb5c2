//! The summary printed on the terminal at the end of a run.

use super::model::{human_us, Report};
use crate::metrics::Outcome;
use std::fmt::Write;

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n{} -> {} ({} devices, {:.1}s{})",
        r.scenario.name,
        r.target.url,
        r.devices.started,
        r.duration_s,
        if r.interrupted { ", INTERRUPTED" } else { "" }
    );
    let _ = writeln!(
        s,
        "  {:<12} {:>9} {:>9} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "phase", "sent", "ok", "errors", "req/s", "p50", "p90", "p99", "max"
    );
    let rows = r
        .phases
        .iter()
        .map(|p| (p.name.as_str(), &p.requests))
        .chain(std::iter::once(("total", &r.total)));
    for (name, q) in rows {
        let l = &q.latency;
        let _ = writeln!(
            s,
            "  {:<12} {:>9} {:>9} {:>8} {:>10.1} {:>9} {:>9} {:>9} {:>9}",
            name,
            q.sent,
            q.outcomes.ok,
            q.outcomes.failures(),
            q.throughput_rps,
            human_us(l.p50_us),
            human_us(l.p90_us),
            human_us(l.p99_us),
            human_us(l.max_us)
        );
    }
    let mut outcomes: Vec<String> = Outcome::ALL
        .iter()
        .filter(|o| r.total.outcomes.get(**o) > 0)
        .map(|o| format!("{} {}", o.name(), r.total.outcomes.get(*o)))
        .collect();
    outcomes.extend(r.total.codes.iter().map(|(c, n)| format!("{c}: {n}")));
    let _ = writeln!(s, "  outcomes: {}", outcomes.join(", "));
    let _ = writeln!(
        s,
        "  latency from intended send time (above); from actual send: p50 {}, p99 {}; send lag p99 {}",
        human_us(r.total.latency_uncorrected.p50_us),
        human_us(r.total.latency_uncorrected.p99_us),
        human_us(r.total.send_lag.p99_us)
    );
    for w in &r.warnings {
        let _ = writeln!(s, "  WARNING: {w}");
    }
    for c in &r.checks {
        let _ = writeln!(
            s,
            "  [{}] {}: expected {}, observed {}",
            if c.passed { "pass" } else { "FAIL" },
            c.name,
            c.expected,
            c.observed
        );
    }
    s
}
