//! Payload templates: literal text with `{{generator}}` fields, parsed once and rendered per request without
//! re-parsing. Generators: `counter` (per-device sequence from 0), `random:LO..HI` (integer, inclusive),
//! `random:LO.0..HI.0` (float, two decimals), `timestamp_ms` (Unix epoch ms), `index` (device index),
//! `token` (device token).

use std::io::Write;

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Literal(Vec<u8>),
    Counter,
    RandomInt(i64, i64),
    RandomFloat(f64, f64),
    TimestampMs,
    Index,
    Token,
}

/// A parsed payload template.
#[derive(Clone, Debug, PartialEq)]
pub struct PayloadTemplate {
    parts: Vec<Part>,
}

/// What a template renders from: one device's identity and state.
pub struct RenderContext<'a> {
    pub index: u64,
    pub token: &'a str,
    pub counter: u64,
    pub rng: &'a mut fastrand::Rng,
    /// Unix time in ms, read by the caller (templates read no clock).
    pub unix_ms: u64,
}

impl PayloadTemplate {
    /// Parses a template; the error names the field that is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest.as_bytes()[..open].to_vec()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("payload field `{{{{{after}` is not closed with }}}}"))?;
            parts.push(Self::field(after[..close].trim())?);
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.as_bytes().to_vec()));
        }
        Ok(PayloadTemplate { parts })
    }

    fn field(spec: &str) -> Result<Part, String> {
        let bad_range = || {
            format!("payload field `{{{{{spec}}}}}`: expected random:LO..HI with LO <= HI, e.g. random:15..30")
        };
        Ok(match spec {
            "counter" => Part::Counter,
            "timestamp_ms" => Part::TimestampMs,
            "index" => Part::Index,
            "token" => Part::Token,
            _ => {
                let Some(range) = spec.strip_prefix("random:") else {
                    return Err(format!(
                        "unknown payload field `{{{{{spec}}}}}`: expected counter, random:LO..HI, timestamp_ms, index or token"
                    ));
                };
                let (lo, hi) = range.split_once("..").ok_or_else(bad_range)?;
                if lo.contains('.') || hi.contains('.') {
                    let lo: f64 = lo.trim().parse().map_err(|_| bad_range())?;
                    let hi: f64 = hi.trim().parse().map_err(|_| bad_range())?;
                    if lo.is_nan() || hi.is_nan() || lo > hi {
                        return Err(bad_range());
                    }
                    Part::RandomFloat(lo, hi)
                } else {
                    let lo: i64 = lo.trim().parse().map_err(|_| bad_range())?;
                    let hi: i64 = hi.trim().parse().map_err(|_| bad_range())?;
                    if lo > hi {
                        return Err(bad_range());
                    }
                    Part::RandomInt(lo, hi)
                }
            }
        })
    }

    /// Appends the rendered payload to `out`.
    pub fn render(&self, ctx: &mut RenderContext<'_>, out: &mut Vec<u8>) {
        for part in &self.parts {
            match part {
                Part::Literal(b) => out.extend_from_slice(b),
                Part::Counter => write_num(out, ctx.counter),
                Part::RandomInt(lo, hi) => {
                    let _ = write!(out, "{}", ctx.rng.i64(*lo..=*hi));
                }
                Part::RandomFloat(lo, hi) => {
                    let _ = write!(out, "{:.2}", lo + ctx.rng.f64() * (hi - lo));
                }
                Part::TimestampMs => write_num(out, ctx.unix_ms),
                Part::Index => write_num(out, ctx.index),
                Part::Token => out.extend_from_slice(ctx.token.as_bytes()),
            }
        }
    }

    /// Whether rendering reads the wall clock (so the caller reads it only when needed).
    pub fn needs_time(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::TimestampMs))
    }
}

fn write_num(out: &mut Vec<u8>, n: u64) {
    let mut buf = itoa_buf(n);
    out.append(&mut buf);
}

fn itoa_buf(mut n: u64) -> Vec<u8> {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits[i..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &PayloadTemplate, counter: u64, rng: &mut fastrand::Rng) -> String {
        let mut out = Vec::new();
        t.render(
            &mut RenderContext {
                index: 7,
                token: "dev-7",
                counter,
                rng,
                unix_ms: 1_700_000_000_123,
            },
            &mut out,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn renders_every_generator() {
        let t = PayloadTemplate::parse(
            r#"{"i":{{index}},"t":"{{token}}","n":{{ counter }},"ts":{{timestamp_ms}},"r":{{random:5..5}},"f":{{random:1.5..1.5}}}"#,
        )
        .unwrap();
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(
            render(&t, 42, &mut rng),
            r#"{"i":7,"t":"dev-7","n":42,"ts":1700000000123,"r":5,"f":1.50}"#
        );
        assert!(t.needs_time());
        assert_eq!(
            render(&PayloadTemplate::parse("plain").unwrap(), 0, &mut rng),
            "plain"
        );
        assert_eq!(
            render(&PayloadTemplate::parse("{{counter}}").unwrap(), 0, &mut rng),
            "0"
        );
    }

    #[test]
    fn random_stays_in_range() {
        let t = PayloadTemplate::parse("{{random:-3..3}}").unwrap();
        let mut rng = fastrand::Rng::with_seed(2);
        let seen: std::collections::BTreeSet<i64> = (0..500)
            .map(|_| render(&t, 0, &mut rng).parse().unwrap())
            .collect();
        assert_eq!(seen, (-3..=3).collect());
    }

    #[test]
    fn rejects_bad_fields() {
        for bad in [
            "{{nope}}",
            "{{random:5..1}}",
            "{{random:a..b}}",
            "{{counter",
            "{{random:1}}",
        ] {
            assert!(PayloadTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
