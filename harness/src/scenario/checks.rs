//! What a run must show: per-request expectations (`expect:`) and thresholds on named metrics
//! (`thresholds:`, for the run and per phase). A misspelled metric, unit or operator is a validation error
//! naming the line, never a threshold that silently passes.

use super::locate::Step;
use super::validate::Invalid;
use crate::coap::Code;
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

// ---- raw ----

/// `expect:` — checked on every response.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    /// One acceptable response code, e.g. `2.01`.
    pub code: Option<String>,
    /// Several acceptable codes.
    #[serde(default)]
    pub codes: Vec<String>,
    /// Required Content-Format of responses (number or json/text/cbor).
    #[serde(default, deserialize_with = "super::raw::opt_content_format")]
    pub content_format: Option<u16>,
    /// JSON fields (dotted paths) that must equal these values.
    #[serde(default)]
    pub json: serde_json::Map<String, serde_json::Value>,
    /// JSON fields (dotted paths) that must exist.
    #[serde(default)]
    pub json_exists: Vec<String>,
    /// Each request must complete within this (from its intended send time).
    #[serde(default, deserialize_with = "super::raw::opt_duration")]
    pub latency: Option<Duration>,
}

/// A threshold: `"p99 < 50ms"`, or `{ threshold: "p99 < 50ms", abort_on_fail: true }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawThreshold {
    Text(String),
    Full {
        threshold: String,
        #[serde(default)]
        abort_on_fail: bool,
        /// Any other key: a misspelling (`abort_on_fial`), reported by validation with its place. (An
        /// untagged enum cannot deny unknown fields and still say which one.)
        #[serde(flatten)]
        unknown: std::collections::BTreeMap<String, serde_yaml::Value>,
    },
}

// ---- plan ----

/// Per-request expectations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResponseExpect {
    /// Acceptable codes; empty means any.
    pub codes: Vec<Code>,
    pub content_format: Option<u16>,
    pub json_equals: Vec<(String, serde_json::Value)>,
    pub json_exists: Vec<String>,
    pub max_latency: Option<Duration>,
}

impl ResponseExpect {
    pub fn is_empty(&self) -> bool {
        *self == ResponseExpect::default()
    }

    /// The bits of every expectation set (what a request without a response breaks), without building text.
    pub fn mask(&self) -> u8 {
        let mut m = 0;
        if !self.codes.is_empty() {
            m |= ExpectKind::Code.bit();
        }
        if self.content_format.is_some() {
            m |= ExpectKind::ContentFormat.bit();
        }
        if !self.json_equals.is_empty() || !self.json_exists.is_empty() {
            m |= ExpectKind::Payload.bit();
        }
        if self.max_latency.is_some() {
            m |= ExpectKind::Latency.bit();
        }
        m
    }

    /// Names each expectation for reports.
    pub fn describe(&self) -> Vec<(ExpectKind, String)> {
        let mut out = Vec::new();
        if !self.codes.is_empty() {
            let codes: Vec<String> = self.codes.iter().map(Code::to_string).collect();
            out.push((
                ExpectKind::Code,
                format!("response code {}", codes.join(" or ")),
            ));
        }
        if let Some(cf) = self.content_format {
            out.push((ExpectKind::ContentFormat, format!("content-format {cf}")));
        }
        if !self.json_equals.is_empty() || !self.json_exists.is_empty() {
            let mut parts: Vec<String> = self
                .json_equals
                .iter()
                .map(|(k, v)| format!("{k} == {v}"))
                .collect();
            parts.extend(self.json_exists.iter().map(|k| format!("{k} exists")));
            out.push((
                ExpectKind::Payload,
                format!("JSON payload: {}", parts.join(", ")),
            ));
        }
        if let Some(l) = self.max_latency {
            out.push((
                ExpectKind::Latency,
                format!("latency <= {}", humantime::format_duration(l)),
            ));
        }
        out
    }
}

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
    /// Completed requests per second.
    Throughput,
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
            Metric::Throughput => Unit::PerSecond,
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

// ---- validation ----

const METRICS: &str = "p50, p90, p95, p99, p99.9 (any pNN), max, mean, error_rate, throughput, timeouts, \
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
        Unit::PerSecond => super::raw::parse_rate(value).map_err(|e| format!("in `{t}`: {e}"))?,
        Unit::Count => value
            .parse::<u64>()
            .map(|n| n as f64)
            .map_err(|_| format!("`{value}` in `{t}` is not a count: write a whole number"))?,
    };
    Ok((m, op, bound))
}

pub fn thresholds(raw: &[RawThreshold], path: &[Step]) -> Result<Vec<Threshold>, Invalid> {
    raw.iter()
        .enumerate()
        .map(|(i, r)| {
            let (text, abort_on_fail) = match r {
                RawThreshold::Text(t) => (t.clone(), false),
                RawThreshold::Full {
                    threshold,
                    abort_on_fail,
                    unknown,
                } => {
                    if let Some(key) = unknown.keys().next() {
                        let mut at = path.to_vec();
                        at.extend([Step::Index(i), Step::Key(key.clone())]);
                        return Err(Invalid {
                            path: at,
                            message: format!(
                                "unknown field `{key}`, expected `threshold` or `abort_on_fail`"
                            ),
                        });
                    }
                    (threshold.clone(), *abort_on_fail)
                }
            };
            let mut at = path.to_vec();
            at.push(Step::Index(i));
            let (metric, op, bound) =
                parse_threshold(&text).map_err(|message| Invalid { path: at, message })?;
            Ok(Threshold {
                text: text.trim().to_string(),
                metric,
                op,
                bound,
                abort_on_fail,
            })
        })
        .collect()
}

pub fn expect(raw: &RawExpect, path: &[Step]) -> Result<ResponseExpect, Invalid> {
    let at = |k: &str| {
        let mut p = path.to_vec();
        p.push(Step::Key(k.into()));
        p
    };
    let mut codes = Vec::new();
    for (field, text) in raw
        .code
        .iter()
        .map(|c| ("code", c))
        .chain(raw.codes.iter().map(|c| ("codes", c)))
    {
        codes.push(text.parse::<Code>().map_err(|e| Invalid {
            path: at(field),
            message: e.to_string(),
        })?);
    }
    if let Some(d) = raw.latency.filter(|d| d.is_zero()) {
        return Err(Invalid {
            path: at("latency"),
            message: format!("{d:?} leaves no time to answer"),
        });
    }
    Ok(ResponseExpect {
        codes,
        content_format: raw.content_format,
        json_equals: raw
            .json
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        json_exists: raw.json_exists.clone(),
        max_latency: raw.latency,
    })
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

    #[test]
    fn expectations_describe_themselves() {
        let e = expect(
            &RawExpect {
                code: Some("2.01".into()),
                codes: vec!["2.04".into()],
                latency: Some(Duration::from_millis(500)),
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(e.codes, vec![Code::CREATED, Code::CHANGED]);
        let d = e.describe();
        assert_eq!(d[0].1, "response code 2.01 or 2.04");
        assert_eq!(d[1].1, "latency <= 500ms");
        assert!(expect(
            &RawExpect {
                code: Some("201".into()),
                ..Default::default()
            },
            &[]
        )
        .is_err());
    }
}
