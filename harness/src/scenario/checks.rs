//! What a run must show: per-request expectations (`expect:`) and thresholds on named metrics
//! (`thresholds:`, for the run and per phase). A misspelled metric, unit or operator is a validation error
//! naming the line, never a threshold that silently passes.

use super::locate::Step;
use super::validate::Invalid;
use crate::checks::{parse_threshold, ExpectKind, Threshold};
use crate::coap::Code;
use serde::Deserialize;
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

/// `health:`: `off`, or `{ max_error_rate: 20% }` (absent: the default health check).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawHealth {
    Word(String),
    Bounds {
        max_error_rate: Option<serde_yaml::Value>,
        /// Any other key: a misspelling, reported by validation with its place.
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

// ---- validation ----

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

/// Validates `health:`: absent is [`crate::checks::Health::DEFAULT`], `off` is none.
pub fn health(
    raw: Option<&RawHealth>,
    path: &[Step],
) -> Result<Option<crate::checks::Health>, Invalid> {
    let at = |extra: Option<&str>| {
        let mut p = path.to_vec();
        if let Some(k) = extra {
            p.push(Step::Key(k.into()));
        }
        p
    };
    match raw {
        None => Ok(Some(crate::checks::Health::DEFAULT)),
        Some(RawHealth::Word(w)) if w == "off" => Ok(None),
        Some(RawHealth::Word(w)) if w == "on" || w == "default" => {
            Ok(Some(crate::checks::Health::DEFAULT))
        }
        Some(RawHealth::Word(w)) => Err(Invalid {
            path: at(None),
            message: format!("`{w}`: health is `off`, `default` or {{ max_error_rate: 5% }}"),
        }),
        Some(RawHealth::Bounds {
            max_error_rate,
            unknown,
        }) => {
            if let Some(k) = unknown.keys().next() {
                return Err(Invalid {
                    path: at(Some(k)),
                    message: format!("unknown field `{k}`, expected `max_error_rate`"),
                });
            }
            let Some(max_error_rate) = max_error_rate else {
                return Err(Invalid {
                    path: at(None),
                    message: "give `max_error_rate` (e.g. { max_error_rate: 5% }), or write `health: off`".into(),
                });
            };
            let text = match max_error_rate {
                serde_yaml::Value::String(s) => s.clone(),
                serde_yaml::Value::Number(n) => n.to_string(),
                other => format!("{other:?}"),
            };
            match crate::checks::parse_threshold(&format!("error_rate < {text}")) {
                Ok((_, _, bound)) if bound > 0.0 && bound <= 1.0 => {
                    Ok(Some(crate::checks::Health {
                        max_error_rate: bound,
                    }))
                }
                Ok(_) => Err(Invalid {
                    path: at(Some("max_error_rate")),
                    message: format!("`{text}`: a rate above 0 and at most 100%"),
                }),
                Err(why) => Err(Invalid {
                    path: at(Some("max_error_rate")),
                    message: format!("`{text}`: {why}"),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
