//! The check vocabulary, shared by scenarios, the engine, reports and merge: per-request expectation kinds,
//! threshold metrics, operators and units, and the parsing of thresholds and rates. A leaf: it imports no other
//! module of the crate.

use std::fmt;

/// One kind of per-request expectation (a bit in the sample's mismatch mask).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExpectKind {
    Code = 0,
    ContentFormat = 1,
    Payload = 2,
    Latency = 3,
}

impl ExpectKind {
    pub const ALL: [ExpectKind; 4] = [
        ExpectKind::Code,
        ExpectKind::ContentFormat,
        ExpectKind::Payload,
        ExpectKind::Latency,
    ];

    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    pub fn name(self) -> &'static str {
        match self {
            ExpectKind::Code => "code",
            ExpectKind::ContentFormat => "content_format",
            ExpectKind::Payload => "payload",
            ExpectKind::Latency => "latency",
        }
    }
}

/// A metric a threshold can name.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// Request latency at a quantile (0.99 for p99), from the intended send time.
    Latency(f64),
    LatencyMax,
    LatencyMean,
    /// Failures over sent.
    ErrorRate,
    /// Successful requests (outcome `ok`) per second: a server that answers 5.03 to everything has none.
    Throughput,
    /// Requests per second that ended, whatever their outcome: the raw send rate.
    SendRate,
    /// Requests that timed out (either kind).
    Timeouts,
    /// Retransmissions over sent.
    RetransmissionRate,
    /// DTLS handshake time at a quantile.
    HandshakeLatency(f64),
    HandshakeMax,
    /// Failed DTLS handshakes.
    HandshakeFailures,
    /// Requests that broke a per-request expectation.
    ExpectationFailures,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        })
    }
}

impl Op {
    pub fn holds(self, observed: f64, bound: f64) -> bool {
        match self {
            Op::Lt => observed < bound,
            Op::Le => observed <= bound,
            Op::Gt => observed > bound,
            Op::Ge => observed >= bound,
        }
    }
}

/// The unit a metric's value is in (latencies in microseconds, rates as fractions, throughput per second).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Micros,
    Fraction,
    PerSecond,
    Count,
}

impl Metric {
    pub fn unit(self) -> Unit {
        match self {
            Metric::Latency(_)
            | Metric::LatencyMax
            | Metric::LatencyMean
            | Metric::HandshakeLatency(_)
            | Metric::HandshakeMax => Unit::Micros,
            Metric::ErrorRate | Metric::RetransmissionRate => Unit::Fraction,
            Metric::Throughput | Metric::SendRate => Unit::PerSecond,
            Metric::Timeouts | Metric::HandshakeFailures | Metric::ExpectationFailures => {
                Unit::Count
            }
        }
    }
}

/// A validated threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// As written, for reports.
    pub text: String,
    pub metric: Metric,
    pub op: Op,
    /// In the metric's unit.
    pub bound: f64,
    pub abort_on_fail: bool,
}

// ---- health ----

/// The run's health check: at least one request succeeded and the error rate stays under `max_error_rate`.
/// Every run with load phases has one unless the scenario says `health: off`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Health {
    /// A fraction: 0.05 for 5%.
    pub max_error_rate: f64,
}

impl Health {
    /// The default bound: under 5% of requests may fail.
    pub const DEFAULT: Health = Health {
        max_error_rate: 0.05,
    };

    /// The check's name, with its bound: `health: at least one request succeeded and error rate < 5%`.
    pub fn name(&self) -> String {
        format!(
            "health: at least one request succeeded and error rate < {}",
            percent(self.max_error_rate)
        )
    }
}

/// A fraction as a percentage without trailing zeros: 0.05 is `5%`, 0.025 is `2.5%`.
pub fn percent(x: f64) -> String {
    format!("{}%", (x * 100.0 * 1000.0).round() / 1000.0)
}

// ---- parsing ----

const METRICS: &str = "p50, p90, p95, p99, p99.9 (any pNN), max, mean, error_rate, throughput, send_rate, timeouts, \
retransmission_rate, handshake_p50..handshake_p99.9, handshake_max, handshake_failures, expectation_failures";

fn quantile(s: &str) -> Option<f64> {
    let q: f64 = s.strip_prefix('p')?.parse().ok()?;
    (q > 0.0 && q < 100.0).then_some(q / 100.0)
}

fn metric(name: &str) -> Option<Metric> {
    Some(match name {
        "max" => Metric::LatencyMax,
        "mean" => Metric::LatencyMean,
        "error_rate" => Metric::ErrorRate,
        "throughput" => Metric::Throughput,
        "send_rate" => Metric::SendRate,
        "timeouts" => Metric::Timeouts,
        "retransmission_rate" => Metric::RetransmissionRate,
        "handshake_max" => Metric::HandshakeMax,
        "handshake_failures" => Metric::HandshakeFailures,
        "expectation_failures" => Metric::ExpectationFailures,
        _ => match name.strip_prefix("handshake_") {
            Some(q) => Metric::HandshakeLatency(quantile(q)?),
            None => Metric::Latency(quantile(name)?),
        },
    })
}

/// Parses `METRIC OP VALUE`, e.g. `p99 < 50ms`, `error_rate < 0.1%`, `throughput > 5000/s`.
pub fn parse_threshold(text: &str) -> Result<(Metric, Op, f64), String> {
    let t = text.trim();
    let at = t.find(['<', '>', '=', '!']).ok_or_else(|| {
        format!("`{t}` has no operator: write METRIC < VALUE (operators <, <=, >, >=)")
    })?;
    let name = t[..at].trim();
    let rest = &t[at..];
    let (op, value) = if let Some(v) = rest.strip_prefix("<=") {
        (Op::Le, v)
    } else if let Some(v) = rest.strip_prefix(">=") {
        (Op::Ge, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Op::Lt, v)
    } else if let Some(v) = rest.strip_prefix('>') {
        (Op::Gt, v)
    } else {
        let op: String = rest.chars().take_while(|c| "<>=!".contains(*c)).collect();
        return Err(format!(
            "`{op}` in `{t}` is not an operator: use <, <=, > or >="
        ));
    };
    if value.starts_with(['<', '>', '=', '!']) {
        return Err(format!("`{t}`: unknown operator; use <, <=, > or >="));
    }
    let m = metric(name)
        .ok_or_else(|| format!("unknown metric `{name}` in `{t}`; metrics are {METRICS}"))?;
    let value = value.trim();
    let bound = match m.unit() {
        Unit::Micros => {
            let d = humantime::parse_duration(value).map_err(|_| {
                format!("`{value}` in `{t}` is not a duration: write e.g. 50ms, 1.5s, 800us")
            })?;
            d.as_secs_f64() * 1e6
        }
        Unit::Fraction => match value.strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0).map_err(|_| {
                format!("`{value}` in `{t}` is not a percentage: write e.g. 0.1% or 0.001")
            })?,
            None => value
                .parse::<f64>()
                .ok()
                .filter(|v| (0.0..=1.0).contains(v))
                .ok_or_else(|| {
                    format!("`{value}` in `{t}` is not a rate: write e.g. 0.1% or 0.001")
                })?,
        },
        Unit::PerSecond => parse_rate(value).map_err(|e| format!("in `{t}`: {e}"))?,
        Unit::Count => value
            .parse::<u64>()
            .map(|n| n as f64)
            .map_err(|_| format!("`{value}` in `{t}` is not a count: write a whole number"))?,
    };
    Ok((m, op, bound))
}

/// Parses `5000`, `5000/s`, `300/min`, `10k/s`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let bad = || format!("`{s}` is not a rate; write e.g. 500/s, 10k/s, 300/min");
    let s = s.trim();
    let (num, per) = s.split_once('/').unwrap_or((s, "s"));
    let num = num.trim();
    let (num, mult) = match num.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1000.0),
        None => (num, 1.0),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match per.trim() {
        "s" | "sec" => 1.0,
        "min" | "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let rate = n * mult / secs;
    if !rate.is_finite() || rate <= 0.0 {
        return Err(format!("rate `{s}` must be positive"));
    }
    Ok(rate)
}

/// Whether a threshold can be watched live.
pub fn watchable(t: &Threshold) -> bool {
    matches!(
        (t.metric, t.op),
        (
            Metric::Timeouts | Metric::ExpectationFailures | Metric::LatencyMax | Metric::ErrorRate,
            Op::Lt | Op::Le
        )
    )
}

// ---- display ----

/// Formats a value in the metric's unit.
pub fn show(m: Metric, v: f64) -> String {
    match m.unit() {
        Unit::Micros => human_us(v.round() as u64),
        Unit::Fraction => format!("{:.3}%", v * 100.0),
        Unit::PerSecond => format!("{v:.1}/s"),
        Unit::Count => format!("{v:.0}"),
    }
}

/// Formats microseconds for people: `850µs`, `12.3ms`, `2.05s`.
pub fn human_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_thresholds_with_units() {
        assert_eq!(
            parse_threshold("p99 < 50ms").unwrap(),
            (Metric::Latency(0.99), Op::Lt, 50_000.0)
        );
        match parse_threshold("p99.9<=1s").unwrap() {
            (Metric::Latency(q), Op::Le, b) => assert!((q - 0.999).abs() < 1e-9 && b == 1e6),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_threshold("error_rate < 0.1%").unwrap(),
            (Metric::ErrorRate, Op::Lt, 0.001)
        );
        assert_eq!(
            parse_threshold("error_rate < 0.02").unwrap(),
            (Metric::ErrorRate, Op::Lt, 0.02)
        );
        assert_eq!(
            parse_threshold("throughput > 5k/s").unwrap(),
            (Metric::Throughput, Op::Gt, 5000.0)
        );
        assert_eq!(
            parse_threshold("timeouts <= 0").unwrap(),
            (Metric::Timeouts, Op::Le, 0.0)
        );
        assert_eq!(
            parse_threshold("handshake_p99 < 200ms").unwrap(),
            (Metric::HandshakeLatency(0.99), Op::Lt, 200_000.0)
        );
        assert!(Op::Lt.holds(1.0, 2.0) && !Op::Gt.holds(1.0, 2.0));
    }

    #[test]
    fn rejects_misspelled_metrics_units_and_operators() {
        for (bad, want) in [
            ("p99 < 50 parsecs", "not a duration"),
            ("p999 < 50ms", "unknown metric"),
            ("latency_p99 < 50ms", "unknown metric `latency_p99`"),
            ("p99 =< 50ms", "not an operator"),
            ("p99 << 50ms", "unknown operator"),
            ("p99 50ms", "no operator"),
            ("error_rate < 5", "not a rate"),
            ("throughput > fast", "not a rate"),
            ("timeouts < 1.5", "not a count"),
            ("p99 == 5ms", "not an operator"),
        ] {
            let e = parse_threshold(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
