//! The summary printed on the terminal at the end of a run.

use super::model::{human_us, Report};
use crate::metrics::Outcome;
use std::fmt::Write;

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    if r.security.insecure {
        let _ = writeln!(s, "\n{}", "!".repeat(78));
        let _ = writeln!(
            s,
            "!! INSECURE RUN: DTLS certificate verification was DISABLED (no CA given).\n\
             !! The sessions were encrypted, but nothing proved the server is who it claims to be."
        );
        let _ = writeln!(s, "{}", "!".repeat(78));
    }
    if r.no_load() {
        // No devices ran and no time was measured: say what did run instead of "(0 devices, 0.0s)".
        let _ = writeln!(
            s,
            "\n{} -> {} ({}) over {}: no load phases; {}{}",
            r.scenario.name,
            r.target.url,
            r.target.address,
            r.target.transport,
            r.cases_run(),
            if r.interrupted { ", INTERRUPTED" } else { "" }
        );
    } else {
        let _ = writeln!(
            s,
            "\n{} -> {} over {} ({} devices, {:.1}s{})",
            r.scenario.name,
            r.target.url,
            r.target.transport,
            r.devices.started,
            r.duration_s,
            if r.interrupted { ", INTERRUPTED" } else { "" }
        );
    }
    if r.security.plain() || r.security.no_load() {
        let _ = writeln!(s, "  security: {}", r.security.describe());
    }
    if !r.phases.is_empty() {
        requests(&mut s, r);
    }
    if let Some(h) = &r.handshakes {
        let _ = writeln!(
            s,
            "  DTLS handshakes: {}; p50 {}, p99 {}, max {}",
            h.counts(str::to_string),
            human_us(h.latency.p50_us),
            human_us(h.latency.p99_us),
            human_us(h.latency.max_us)
        );
        if let Some(kinds) = h.kinds_summary() {
            let _ = writeln!(s, "  handshake kinds: {kinds}");
        }
        if let Some(rate) = h.rate_summary() {
            let _ = writeln!(s, "  handshake rate: {rate}");
        }
    }
    super::device_trust::terminal(&mut s, r);
    if !r.trust_cases.is_empty() {
        let _ = writeln!(s, "  trust cases:");
        for c in &r.trust_cases {
            let _ = writeln!(
                s,
                "    [{}] {:<40} expected {:<22} observed {}{}; refused by {}: DTLS {}, CoAP {}",
                if c.passed { "pass" } else { "FAIL" },
                c.name,
                expected_short(c),
                c.verdict,
                if c.insecure { " (INSECURE)" } else { "" },
                c.refused_by,
                if c.refused_by == super::model::RefusedBy::Handshake {
                    "refused"
                } else {
                    "ok"
                },
                c.code.as_deref().unwrap_or("-")
            );
            if !c.passed {
                let _ = writeln!(
                    s,
                    "           expected: {}\n           observed: {}",
                    c.expected, c.observed
                );
            }
        }
    }
    if !r.conformance.is_empty() {
        let _ = writeln!(s, "  conformance:");
        for c in &r.conformance {
            let _ = writeln!(
                s,
                "    [{}] {:<44} {}",
                if c.skipped.is_some() {
                    "skip"
                } else if c.passed {
                    "pass"
                } else {
                    "FAIL"
                },
                c.name,
                c.code.as_deref().unwrap_or("no response")
            );
            if !c.passed {
                let _ = writeln!(
                    s,
                    "           expected: {}\n           observed: {}",
                    c.expected, c.observed
                );
            }
        }
    }
    if let Some(g) = &r.generator {
        let _ = writeln!(s, "  generator: {}", g.describe());
    }
    for w in &r.warnings {
        let _ = writeln!(s, "  WARNING: {w}");
    }
    for c in r
        .checks
        .iter()
        .filter(|c| !c.name.starts_with("trust case: ") && !c.name.starts_with("conformance: "))
    {
        let _ = writeln!(
            s,
            "  [{}] {}: expected {}, observed {}",
            if c.passed { "pass" } else { "FAIL" },
            c.name,
            c.expected,
            c.observed
        );
    }
    let _ = writeln!(s, "  verdict: {}", super::verdict::of(r).line());
    s
}

fn expected_short(c: &super::model::TrustCaseResult) -> String {
    // "handshake fails, verdict unknown_ca, ..." -> the verdict when one is named.
    c.expected
        .split(", ")
        .find_map(|p| p.strip_prefix("verdict "))
        .map(str::to_string)
        .unwrap_or_else(|| {
            c.expected
                .split(", ")
                .next()
                .unwrap_or_default()
                .to_string()
        })
}

fn requests(s: &mut String, r: &Report) {
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
            l.show(l.p50_us),
            l.show(l.p90_us),
            l.show(l.p99_us),
            l.show(l.max_us)
        );
    }
    let mut outcomes: Vec<String> = Outcome::ALL
        .iter()
        .filter(|o| r.total.outcomes.get(**o) > 0)
        .map(|o| format!("{} {}", o.name(), r.total.outcomes.get(*o)))
        .collect();
    outcomes.extend(r.total.codes.iter().map(|(c, n)| format!("{c}: {n}")));
    let _ = writeln!(s, "  outcomes: {}", outcomes.join(", "));
    if let Some(rec) = super::recovery::of_report(r) {
        let _ = writeln!(s, "  error window: {}", super::recovery::describe(&rec));
    }
    let _ = writeln!(
        s,
        "  latency from intended send time (above); from actual send: p50 {}, p99 {}; send lag p99 {}",
        human_us(r.total.latency_uncorrected.p50_us),
        human_us(r.total.latency_uncorrected.p99_us),
        human_us(r.total.send_lag.p99_us)
    );
}
