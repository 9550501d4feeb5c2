//! Thresholds judged on a report's figures: pure functions of the report, so a merged report can be judged
//! the same way as a single run. Per-request expectations are judged here too, on the totals.

pub use crate::checks::show;
use crate::checks::{Health, Metric, Threshold};
use crate::report::model::{HandshakeStats, RequestStats};
use crate::report::Check;

/// The metric's value, or why it has none.
pub fn observe(m: Metric, q: &RequestStats, h: Option<&HandshakeStats>) -> Result<f64, String> {
    let quantile = |l: &crate::report::model::Latency, x: f64, what: &str| -> Result<f64, String> {
        if l.count == 0 {
            return Err(format!("no {what} measured"));
        }
        let hist = l.histogram()?;
        Ok(hist.value_at_quantile(x) as f64)
    };
    let handshakes = || h.ok_or_else(|| "no DTLS handshakes in this run".to_string());
    Ok(match m {
        Metric::Latency(x) => quantile(&q.latency, x, "responses")?,
        Metric::LatencyMax if q.latency.count == 0 => return Err("no responses measured".into()),
        Metric::LatencyMax => q.latency.max_us as f64,
        Metric::LatencyMean if q.latency.count == 0 => return Err("no responses measured".into()),
        Metric::LatencyMean => q.latency.mean_us,
        Metric::ErrorRate if q.sent == 0 => return Err("no requests sent".into()),
        Metric::ErrorRate => q.error_rate,
        Metric::Throughput => q.ok_rps,
        Metric::SendRate => q.throughput_rps,
        Metric::Timeouts => (q.outcomes.timeout + q.outcomes.response_timeout) as f64,
        Metric::RetransmissionRate if q.sent == 0 => return Err("no requests sent".into()),
        Metric::RetransmissionRate => q.retransmissions as f64 / q.sent as f64,
        Metric::HandshakeLatency(x) => quantile(&handshakes()?.latency, x, "completed handshakes")?,
        Metric::HandshakeMax => handshakes()?.latency.max_us as f64,
        Metric::HandshakeFailures => handshakes()?.failed as f64,
        Metric::ExpectationFailures => q.expectation_failures as f64,
    })
}

/// Judges one threshold; `scope` names where it applies (`run`, `phase steady`).
pub fn judge(t: &Threshold, scope: &str, q: &RequestStats, h: Option<&HandshakeStats>) -> Check {
    let (passed, observed) = match observe(t.metric, q, h) {
        Ok(v) => (t.op.holds(v, t.bound), show(t.metric, v)),
        Err(why) => (false, why),
    };
    Check {
        name: format!("threshold ({scope}): {}", t.text),
        passed,
        expected: format!("{} {}", t.op, show(t.metric, t.bound)),
        observed,
    }
}

/// Judges the run's health check: at least one request succeeded (outcome `ok`) and the error rate is under
/// the bound. A run where every request got 4.01 or 5.03 fails it.
pub fn judge_health(h: &Health, q: &RequestStats) -> Check {
    let ok = q.outcomes.ok;
    let rate = q.error_rate;
    let passed = ok > 0 && rate < h.max_error_rate;
    let mut codes: Vec<String> = q
        .codes
        .iter()
        .filter(|(c, _)| !c.starts_with('2'))
        .map(|(c, n)| format!("{c} x{n}"))
        .collect();
    codes.truncate(5);
    Check {
        name: h.name(),
        passed,
        expected: format!(
            "ok > 0, error rate < {}",
            crate::checks::percent(h.max_error_rate)
        ),
        observed: format!(
            "{ok} of {} requests ok, error rate {}{}",
            q.sent,
            show(Metric::ErrorRate, rate),
            if codes.is_empty() {
                String::new()
            } else {
                format!(" (error codes: {})", codes.join(", "))
            }
        ),
    }
}

/// Judges one per-request expectation (`kind` as in [`crate::checks::ExpectKind::name`]) on the
/// totals: every request must have held it. `examples` are a few broken responses, when known.
pub fn judge_expectation(kind: &str, text: &str, total: &RequestStats, examples: &[&str]) -> Check {
    let broken = total.expectations_broken.get(kind).copied().unwrap_or(0);
    let mut observed = format!(
        "{} of {} requests held, {broken} did not",
        total.sent - broken,
        total.sent
    );
    if broken > 0 {
        let mut seen: Vec<String> = total
            .codes
            .iter()
            .map(|(c, n)| format!("{c} x{n}"))
            .collect();
        seen.extend(
            crate::metrics::Outcome::ALL
                .iter()
                .filter(|o| !o.has_latency() && total.outcomes.get(**o) > 0)
                .map(|o| format!("{} x{}", o.name(), total.outcomes.get(*o))),
        );
        observed.push_str(&format!("; seen: {}", seen.join(", ")));
        if !examples.is_empty() {
            observed.push_str(&format!("; e.g. {}", examples.join(" | ")));
        }
    }
    Check {
        name: format!("expect {text}"),
        passed: broken == 0 && total.sent > 0,
        expected: format!("every request: {text}"),
        observed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::parse_threshold;
    use crate::metrics::PhaseAgg;

    fn stats() -> RequestStats {
        let mut agg = PhaseAgg::default();
        for v in 1..=100u64 {
            agg.corrected.record(v * 1000).unwrap();
        }
        agg.outcomes.ok = 98;
        agg.outcomes.timeout = 2;
        agg.retransmissions = 10;
        RequestStats::from_agg(&agg, 10.0)
    }

    fn t(text: &str) -> Threshold {
        let (metric, op, bound) = parse_threshold(text).unwrap();
        Threshold {
            text: text.into(),
            metric,
            op,
            bound,
            abort_on_fail: false,
        }
    }

    #[test]
    fn each_metric_passes_and_fails() {
        let q = stats();
        for (pass, fail) in [
            ("p99 < 100ms", "p99 < 90ms"),
            ("p50 <= 51ms", "p50 < 40ms"),
            // HDR reports the top of the value's bucket: 100 ms is held as 100.03 ms.
            ("max <= 101ms", "max < 99ms"),
            ("mean < 60ms", "mean > 60ms"),
            ("error_rate <= 2%", "error_rate < 2%"),
            // 98 ok of 100 in 10 s: throughput counts the successes, send_rate every request.
            ("throughput >= 9.8/s", "throughput > 9.8/s"),
            ("send_rate >= 10/s", "send_rate > 10/s"),
            ("timeouts <= 2", "timeouts < 2"),
            ("retransmission_rate <= 0.1", "retransmission_rate < 5%"),
            ("expectation_failures < 1", "expectation_failures > 0"),
        ] {
            let c = judge(&t(pass), "run", &q, None);
            assert!(c.passed, "{pass}: {c:?}");
            let c = judge(&t(fail), "run", &q, None);
            assert!(!c.passed, "{fail}: {c:?}");
        }
        let c = judge(&t("handshake_p99 < 1s"), "run", &q, None);
        assert!(
            !c.passed && c.observed.contains("no DTLS handshakes"),
            "{c:?}"
        );
        let c = judge(&t("p99 < 90ms"), "run", &q, None);
        assert_eq!(c.expected, "< 90.00ms");
        // HDR keeps 99 ms within its 3 significant digits.
        assert!(c.observed.starts_with("99.0"), "{}", c.observed);
    }
}
