//! `faults:`: network faults the harness injects between its devices and the target (a UDP proxy, see
//! [`crate::faults`]). Written as
//! `faults: { loss: 5%, duplicate: 1%, reorder: 1%, delay: 20ms±10ms, rebind_every: 2s }`, applying both
//! ways; `to_target:` and `to_devices:` (same keys) override one direction.

use super::locate::Step;
use super::validate::Invalid;
use crate::faults::{Direction, FaultPlan};
use serde::Deserialize;
use std::time::Duration;

/// One direction's faults as written; every value is text, parsed in [`plan`] so errors carry their field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirection {
    pub loss: Option<String>,
    pub duplicate: Option<String>,
    pub reorder: Option<String>,
    pub delay: Option<String>,
}

/// The `faults:` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFaults {
    pub loss: Option<String>,
    pub duplicate: Option<String>,
    pub reorder: Option<String>,
    pub delay: Option<String>,
    pub to_target: Option<RawDirection>,
    pub to_devices: Option<RawDirection>,
    /// A device's source port changes this often (NAT rebinding).
    #[serde(default, deserialize_with = "super::raw::opt_duration")]
    pub rebind_every: Option<Duration>,
    /// Seeds the fault decisions; the scenario's seed by default.
    pub seed: Option<u64>,
}

fn at(path: &[&str]) -> Vec<Step> {
    path.iter().map(|k| Step::Key((*k).into())).collect()
}

/// `5%` (or `0.5%`, `100%`) as a fraction.
fn percent(text: &str) -> Result<f64, String> {
    let n: f64 = text
        .trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("`{text}` is not a percentage; write e.g. 5% or 0.5%"))?;
    if !(0.0..=100.0).contains(&n) {
        return Err(format!("`{text}` must be between 0% and 100%"));
    }
    Ok(n / 100.0)
}

/// `20ms`, `20ms±10ms` or `20ms+-10ms`: the delay and its jitter.
fn delay(text: &str) -> Result<(Duration, Duration), String> {
    let (base, jitter) = match text.split_once('±').or_else(|| text.split_once("+-")) {
        Some((b, j)) => (b, Some(j)),
        None => (text, None),
    };
    let parse = |s: &str| {
        humantime::parse_duration(s.trim())
            .map_err(|_| format!("`{text}` is not a delay; write e.g. 20ms or 20ms±10ms"))
    };
    let base = parse(base)?;
    let jitter = jitter.map(parse).transpose()?.unwrap_or_default();
    Ok((base, jitter))
}

fn direction(raw: &RawDirection, over: &Direction, path: &[&str]) -> Result<Direction, Invalid> {
    let field = |k: &str| {
        let mut p = path.to_vec();
        p.push(k);
        at(&p)
    };
    let pct = |v: &Option<String>, k: &str, default: f64| match v {
        Some(t) => percent(t).map_err(|message| Invalid {
            path: field(k),
            message,
        }),
        None => Ok(default),
    };
    let (delay, jitter) = match &raw.delay {
        Some(t) => delay(t).map_err(|message| Invalid {
            path: field("delay"),
            message,
        })?,
        None => (over.delay, over.jitter),
    };
    let d = Direction {
        loss: pct(&raw.loss, "loss", over.loss)?,
        duplicate: pct(&raw.duplicate, "duplicate", over.duplicate)?,
        reorder: pct(&raw.reorder, "reorder", over.reorder)?,
        delay,
        jitter,
    };
    if d.loss >= 1.0 {
        return Err(Invalid {
            path: field("loss"),
            message: "100% loss leaves nothing to measure".into(),
        });
    }
    Ok(d)
}

/// Validates `faults:`; `seed` is the scenario's.
pub fn plan(raw: &RawFaults, seed: u64) -> Result<FaultPlan, Invalid> {
    let shared = RawDirection {
        loss: raw.loss.clone(),
        duplicate: raw.duplicate.clone(),
        reorder: raw.reorder.clone(),
        delay: raw.delay.clone(),
    };
    let both = direction(&shared, &Direction::default(), &["faults"])?;
    let to_target = match &raw.to_target {
        Some(d) => direction(d, &both, &["faults", "to_target"])?,
        None => both,
    };
    let to_devices = match &raw.to_devices {
        Some(d) => direction(d, &both, &["faults", "to_devices"])?,
        None => both,
    };
    if raw.rebind_every.is_some_and(|d| d.is_zero()) {
        return Err(Invalid {
            path: at(&["faults", "rebind_every"]),
            message: "must be more than 0".into(),
        });
    }
    Ok(FaultPlan {
        to_target,
        to_devices,
        rebind_every: raw.rebind_every,
        seed: raw.seed.unwrap_or(seed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_percentages_and_delays() {
        assert_eq!(percent("5%"), Ok(0.05));
        assert_eq!(percent("0.5 %"), Ok(0.005));
        assert!(percent("5").is_err());
        assert!(percent("101%").is_err());
        assert_eq!(
            delay("20ms±10ms"),
            Ok((Duration::from_millis(20), Duration::from_millis(10)))
        );
        assert_eq!(
            delay("20ms+-5ms"),
            Ok((Duration::from_millis(20), Duration::from_millis(5)))
        );
        assert_eq!(delay("1s"), Ok((Duration::from_secs(1), Duration::ZERO)));
        assert!(delay("soon").is_err());
    }

    #[test]
    fn a_direction_overrides_the_shared_settings() {
        let raw = RawFaults {
            loss: Some("5%".into()),
            delay: Some("20ms±10ms".into()),
            to_devices: Some(RawDirection {
                loss: Some("0%".into()),
                ..RawDirection::default()
            }),
            ..RawFaults::default()
        };
        let p = plan(&raw, 9).unwrap();
        assert_eq!(p.to_target.loss, 0.05);
        assert_eq!(p.to_devices.loss, 0.0);
        assert_eq!(p.to_devices.delay, Duration::from_millis(20));
        assert_eq!(p.seed, 9);
        let bad = RawFaults {
            to_target: Some(RawDirection {
                duplicate: Some("lots".into()),
                ..RawDirection::default()
            }),
            ..RawFaults::default()
        };
        let e = plan(&bad, 0).unwrap_err();
        assert_eq!(
            super::super::locate::render(&e.path),
            "faults.to_target.duplicate"
        );
    }
}
