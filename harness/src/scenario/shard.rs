//! Sharded runs: `--shard K/N` turns a validated plan into the plan of its K-th of N disjoint parts, and
//! `--start-at` is checked against the clock, both before any socket opens.
//!
//! Partition: strided. Shard `K` runs the scenario's device indexes `K, K + N, K + 2N, ...`; its device
//! `j` is the scenario's device `K + j * N`. Every phase's device count `D` becomes the number of those
//! below `D`, so the union of the shards' active devices is, at every moment, exactly the whole run's
//! (ramps included), with no overlap and no gap. A total `rate` (and `devices.connect_rate`) is split in
//! proportion to the shard's devices (per-device intervals and think times stay as they are). Phases keep their durations. Trust
//! and conformance cases run in shard 0 only, so a merge counts them once.

use super::plan::{Pacing, RunPlan, Target};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// `K/N`: the K-th (0-based) of N shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("`{s}` is not a shard: write K/N with 0 <= K < N, e.g. 0/4 (K is 0-based)");
        let (k, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let index: u32 = k.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A shard's place in its scenario, carried by the plan into the report.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardPlan {
    pub shard: Shard,
    /// SHA-256 (hex) of the scenario text and the overrides: equal for every shard of one run.
    pub scenario_sha256: String,
    /// The scenario's own seed (the plan's `seed` is the shard's, derived from it).
    pub scenario_seed: u64,
    /// Devices in the whole scenario.
    pub scenario_devices: u32,
}

impl Shard {
    /// How many of the first `d` scenario devices fall in this shard.
    pub fn share(self, d: u32) -> u32 {
        ((u64::from(d) + u64::from(self.count) - 1 - u64::from(self.index)) / u64::from(self.count))
            as u32
    }

    /// The scenario's index of this shard's device `local`.
    pub fn global(self, local: u32) -> u64 {
        u64::from(self.index) + u64::from(local) * u64::from(self.count)
    }

    /// The shard's seed: the scenario's, mixed with the shard index (splitmix64), so shards draw
    /// different message IDs and payload values and the same shard draws the same ones every time.
    pub fn seed(self, scenario_seed: u64) -> u64 {
        let mut z = scenario_seed
            ^ u64::from(self.index)
                .wrapping_add(1)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Makes the plan of shard `shard` of `plan`. Fails when the split cannot work.
pub fn split(mut plan: RunPlan, shard: Shard, scenario_sha256: String) -> Result<RunPlan, String> {
    if matches!(plan.target, Target::Embedded { .. }) {
        return Err(
            "a sharded run needs one shared target: `embedded` would start a server in every shard; \
             start one with `coap-harness serve` and pass --target coap://HOST:PORT"
                .into(),
        );
    }
    let total = plan.devices.count;
    if shard.count > total {
        return Err(format!(
            "{} shards for {total} devices would leave shards without devices; use at most {total}",
            shard.count
        ));
    }
    for p in &mut plan.phases {
        let (from, to) = (p.devices_from, p.devices_to);
        let (f, t) = (shard.share(from), shard.share(to));
        if let Pacing::Rate(r) = p.pacing {
            let whole = from.max(to).max(1);
            p.pacing = Pacing::Rate(r * f64::from(f.max(t).max(1)) / f64::from(whole));
        }
        p.devices_from = f;
        p.devices_to = t;
    }
    if shard.index != 0 {
        plan.trust_cases.clear();
        plan.conformance.clear();
    }
    plan.devices.count = shard.share(total);
    // Connections are paced across the fleet: each shard takes its share of the rate.
    plan.devices.connect_rate = plan
        .devices
        .connect_rate
        .map(|r| r * f64::from(plan.devices.count) / f64::from(total));
    plan.devices.offset = shard.index;
    plan.devices.stride = shard.count;
    plan.shard = Some(ShardPlan {
        shard,
        scenario_sha256,
        scenario_seed: plan.seed,
        scenario_devices: total,
    });
    plan.seed = shard.seed(plan.seed);
    Ok(plan)
}

/// How far in the past `--start-at` may be (clocks of different machines disagree a little).
pub const START_AT_PAST: Duration = Duration::from_secs(5);
/// How far in the future `--start-at` may be.
pub const START_AT_FUTURE: Duration = Duration::from_secs(24 * 3600);

/// Parses `--start-at`: RFC 3339 in UTC, e.g. `2026-11-25T21:30:00Z`.
pub fn parse_start_at(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339(s.trim()).map_err(|e| {
        format!("`{s}` is not an RFC 3339 UTC time ({e}); write e.g. 2026-11-25T21:30:00Z")
    })
}

/// Refuses a start time well in the past (a shard that started late would skew the run) or more than a
/// day ahead (a typo).
pub fn check_start_at(at: SystemTime, now: SystemTime) -> Result<(), String> {
    let show = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    if let Ok(late) = now.duration_since(at) {
        if late > START_AT_PAST {
            return Err(format!(
                "{} is {} in the past (now {}): choose a time far enough ahead for every shard to start",
                show(at),
                humantime::format_duration(Duration::from_secs(late.as_secs())),
                show(now)
            ));
        }
    } else if at
        .duration_since(now)
        .is_ok_and(|ahead| ahead > START_AT_FUTURE)
    {
        return Err(format!(
            "{} is more than 24h ahead (now {})",
            show(at),
            show(now)
        ));
    }
    Ok(())
}

/// SHA-256 (hex) of the scenario text followed by the overrides that change it.
pub fn scenario_hash(text: &str, overrides: &super::Overrides) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(text.as_bytes());
    h.update(overrides.fingerprint().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_zero_based() {
        assert_eq!("0/4".parse(), Ok(Shard { index: 0, count: 4 }));
        assert_eq!(" 3/4 ".parse(), Ok(Shard { index: 3, count: 4 }));
        for bad in ["4/4", "1/0", "0", "a/b", "-1/4", "1/4/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn shares_partition_every_count_exactly() {
        for n in 1..=7u32 {
            for d in 0..=50u32 {
                let shards: Vec<Shard> = (0..n).map(|index| Shard { index, count: n }).collect();
                assert_eq!(
                    shards.iter().map(|s| s.share(d)).sum::<u32>(),
                    d,
                    "{d} over {n}"
                );
                let mut seen: Vec<u64> = shards
                    .iter()
                    .flat_map(|s| (0..s.share(d)).map(move |j| s.global(j)))
                    .collect();
                seen.sort_unstable();
                assert_eq!(seen, (0..u64::from(d)).collect::<Vec<_>>(), "{d} over {n}");
            }
        }
    }

    #[test]
    fn seeds_differ_by_shard_and_repeat() {
        let s = |index| Shard { index, count: 4 }.seed(7);
        assert_ne!(s(0), s(1));
        assert_ne!(s(0), 7);
        assert_eq!(s(2), s(2));
    }

    #[test]
    fn start_at_window() {
        let now = humantime::parse_rfc3339("2026-01-01T12:00:00Z").unwrap();
        let at = |s: &str| parse_start_at(s).unwrap();
        assert!(check_start_at(at("2026-01-01T12:00:30Z"), now).is_ok());
        assert!(check_start_at(at("2026-01-01T11:59:58Z"), now).is_ok());
        let e = check_start_at(at("2026-01-01T11:59:00Z"), now).unwrap_err();
        assert!(e.contains("1m in the past"), "{e}");
        let e = check_start_at(at("2026-01-02T12:00:01Z"), now).unwrap_err();
        assert!(e.contains("more than 24h ahead"), "{e}");
        assert!(parse_start_at("tomorrow").is_err());
        assert!(parse_start_at("2026-01-01 12:00").is_err());
    }
}
