//! Adds shard reports into one: HDR histograms added exactly (so merged percentiles are those of all
//! requests), counters summed, rates recomputed from the sums, and time series aligned by wall-clock second
//! (each shard's `load_started_at_ms`). A merged series point's `p50_us` is the request-weighted mean of the
//! shards' and its `p99_us` their maximum: per-second histograms are not kept, so only the series
//! percentiles are approximate; run and phase percentiles are exact.

use crate::metrics::{Outcome, OutcomeCounts};
use crate::report::model::{
    DeviceInfo, ErrorKinds, HandshakePoint, HandshakeStats, Latency, PhaseReport, ProtocolCounters,
    RequestStats, SeriesPoint,
};
use crate::report::{Check, Report};
use std::collections::BTreeMap;

/// Whether `r` has the phases of `first` (same names, starts and lengths).
pub fn same_shape(first: &Report, r: &Report) -> Result<(), String> {
    let shape = |r: &Report| -> Vec<(String, u64, u64)> {
        r.phases
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    (p.start_s * 1000.0).round() as u64,
                    (p.duration_s * 1000.0).round() as u64,
                )
            })
            .collect()
    };
    if shape(first) != shape(r) {
        return Err("its phases differ from the other shards' (names, starts or durations)".into());
    }
    Ok(())
}

/// Adds the shards (in shard order); on failure, the position of the shard at fault and why.
pub fn add_up(shards: &[&Report]) -> Result<Report, (usize, String)> {
    let first = shards[0];
    let base_ms = shards.iter().filter_map(|r| r.load_started_at_ms).min();
    let offset_ms = |r: &Report| match (r.load_started_at_ms, base_ms) {
        (Some(ms), Some(base)) => ms - base,
        _ => 0,
    };
    let mut m = first.clone();
    m.shard = None;
    m.server = None;
    m.generator = None;
    // Shards ran on several machines; each shard's report names its own.
    m.machine = None;
    m.load_started_at_ms = base_ms;
    m.started_at = shards
        .iter()
        .map(|r| r.started_at.clone())
        .min()
        .unwrap_or_default();
    m.duration_s = shards
        .iter()
        .map(|r| offset_ms(r) as f64 / 1000.0 + r.duration_s)
        .fold(0.0, f64::max);
    m.duration_s = (m.duration_s * 1000.0).round() / 1000.0;
    m.interrupted = shards.iter().any(|r| r.interrupted);
    m.devices = DeviceInfo {
        count: shards.iter().map(|r| r.devices.count).sum(),
        started: shards.iter().map(|r| r.devices.started).sum(),
        failed: shards.iter().map(|r| r.devices.failed).sum(),
        first_failure: shards.iter().find_map(|r| r.devices.first_failure.clone()),
    };
    let mut phases = Vec::with_capacity(first.phases.len());
    for (i, p) in first.phases.iter().enumerate() {
        let parts: Vec<&PhaseReport> = shards.iter().map(|r| &r.phases[i]).collect();
        phases.push(PhaseReport {
            name: p.name.clone(),
            start_s: p.start_s,
            duration_s: p.duration_s,
            devices: parts.iter().map(|p| p.devices).sum(),
            pacing: pacing(&parts),
            requests: stats(
                &parts.iter().map(|p| &p.requests).collect::<Vec<_>>(),
                p.duration_s,
            )?,
        });
    }
    m.phases = phases;
    let seconds: f64 = first.phases.iter().map(|p| p.duration_s).sum();
    m.total = stats(
        &shards.iter().map(|r| &r.total).collect::<Vec<_>>(),
        seconds,
    )?;
    m.timeseries = series(
        shards
            .iter()
            .map(|r| (offset_ms(r), r.timeseries.as_slice())),
    );
    // Each merged second's histogram holds every shard's requests of that second: the per-second intervals
    // of latency.hlog survive the merge, and the series' latency percentiles become exact.
    let per_second = per_second_latency(shards, offset_ms, &m.timeseries)?;
    if !per_second.is_empty() {
        for (p, h) in m.timeseries.iter_mut().zip(&per_second) {
            if !h.is_empty() {
                p.p50_us = h.value_at_quantile(0.5);
                p.p99_us = h.value_at_quantile(0.99);
            }
        }
    }
    m.latency_per_second = per_second.iter().map(crate::report::hdr::encode).collect();
    m.protocol = ProtocolCounters {
        malformed_datagrams: shards.iter().map(|r| r.protocol.malformed_datagrams).sum(),
        first_malformed: shards
            .iter()
            .find_map(|r| r.protocol.first_malformed.clone()),
        unmatched: shards.iter().map(|r| r.protocol.unmatched).sum(),
        duplicates: shards.iter().map(|r| r.protocol.duplicates).sum(),
    };
    m.security.insecure = shards.iter().any(|r| r.security.insecure);
    m.handshakes = handshakes(shards, &offset_ms)?;
    m.trust_cases = shards.iter().flat_map(|r| r.trust_cases.clone()).collect();
    m.conformance = shards.iter().flat_map(|r| r.conformance.clone()).collect();
    m.checks = carried_checks(shards);
    m.warnings = warnings(shards, offset_ms);
    Ok(m)
}

/// Checks that cannot be judged again from figures (trust and conformance cases, an abort), each under
/// its shard's name; thresholds and expectations are judged again by `judge`.
fn carried_checks(shards: &[&Report]) -> Vec<Check> {
    let mut out = Vec::new();
    for r in shards {
        let k = r.shard.as_ref().map_or(0, |s| s.index);
        for c in &r.checks {
            if c.name.starts_with("threshold (") || c.name.starts_with("expect ") {
                continue;
            }
            out.push(Check {
                name: format!("shard {k}: {}", c.name),
                ..c.clone()
            });
        }
    }
    out
}

fn warnings(shards: &[&Report], offset_ms: impl Fn(&Report) -> u64) -> Vec<String> {
    let mut out = Vec::new();
    let spread = shards.iter().map(|r| offset_ms(r)).max().unwrap_or(0);
    if spread >= 1000 {
        out.push(format!(
            "the shards began their load up to {:.1}s apart: give every shard the same --start-at so their \
             phases overlap",
            spread as f64 / 1000.0
        ));
    }
    // The same warning from several shards (a host-wide count, say) is listed once, naming them all.
    let mut seen: Vec<(&str, Vec<String>)> = Vec::new();
    for r in shards {
        let k = r.shard.as_ref().map_or(0, |s| s.index).to_string();
        for w in r
            .warnings
            .iter()
            .filter(|w| !w.contains("judged on the merged result"))
        {
            match seen.iter_mut().find(|(text, _)| text == w) {
                Some((_, ks)) => ks.push(k.clone()),
                None => seen.push((w, vec![k.clone()])),
            }
        }
    }
    out.extend(seen.into_iter().map(|(w, ks)| {
        let s = if ks.len() == 1 { "" } else { "s" };
        format!("shard{s} {}: {w}", ks.join(", "))
    }));
    out
}

/// `every 1s per device` and `closed loop, ...` are the same in every shard; `R/s total` rates add up.
fn pacing(parts: &[&PhaseReport]) -> String {
    let rates: Option<Vec<f64>> = parts
        .iter()
        .map(|p| p.pacing.strip_suffix("/s total")?.parse::<f64>().ok())
        .collect();
    match rates {
        Some(r) => {
            let total = (r.iter().sum::<f64>() * 1000.0).round() / 1000.0;
            format!("{total}/s total")
        }
        None => parts[0].pacing.clone(),
    }
}

/// Adds request figures; `seconds` is the span throughput is computed over (as a single run does).
fn stats(parts: &[&RequestStats], seconds: f64) -> Result<RequestStats, (usize, String)> {
    let mut outcomes = OutcomeCounts::default();
    let mut codes = BTreeMap::new();
    let mut broken = BTreeMap::new();
    for p in parts {
        for o in Outcome::ALL {
            outcomes.add(o, p.outcomes.get(o));
        }
        for (c, n) in &p.codes {
            *codes.entry(c.clone()).or_insert(0) += n;
        }
        for (k, n) in &p.expectations_broken {
            *broken.entry(k.clone()).or_insert(0) += n;
        }
    }
    let sent: u64 = parts.iter().map(|p| p.sent).sum();
    Ok(RequestStats {
        sent,
        outcomes,
        codes,
        retransmissions: parts.iter().map(|p| p.retransmissions).sum(),
        throughput_rps: crate::report::model::per_second(outcomes.total(), seconds),
        ok_rps: crate::report::model::per_second(outcomes.ok, seconds),
        error_rate: if sent > 0 {
            outcomes.failures() as f64 / sent as f64
        } else {
            0.0
        },
        latency: latency(parts.iter().map(|p| &p.latency))?,
        latency_uncorrected: latency(parts.iter().map(|p| &p.latency_uncorrected))?,
        send_lag: latency(parts.iter().map(|p| &p.send_lag))?,
        expectation_failures: parts.iter().map(|p| p.expectation_failures).sum(),
        expectations_broken: broken,
    })
}

/// Adds the histograms behind the latencies: the merged percentiles are exact.
pub fn latency<'a>(parts: impl Iterator<Item = &'a Latency>) -> Result<Latency, (usize, String)> {
    let mut sum = crate::metrics::collector::latency_histogram();
    for (i, l) in parts.enumerate() {
        let h = l.histogram().map_err(|e| (i, e))?;
        sum.add(&h)
            .map_err(|e| (i, format!("histogram does not add: {e:?}")))?;
    }
    Ok(Latency::from_histogram(&sum))
}

fn handshakes(
    shards: &[&Report],
    offset_ms: &dyn Fn(&Report) -> u64,
) -> Result<Option<HandshakeStats>, (usize, String)> {
    let all: Vec<&HandshakeStats> = shards
        .iter()
        .filter_map(|r| r.handshakes.as_ref())
        .collect();
    if all.is_empty() {
        return Ok(None);
    }
    let mut verdicts = BTreeMap::new();
    for h in &all {
        for (v, n) in &h.verdicts {
            *verdicts.entry(*v).or_insert(0) += n;
        }
    }
    Ok(Some(HandshakeStats {
        attempted: all.iter().map(|h| h.attempted).sum(),
        ok: all.iter().map(|h| h.ok).sum(),
        failed: all.iter().map(|h| h.failed).sum(),
        verdicts,
        latency: latency(all.iter().map(|h| &h.latency))?,
        first_failure: all.iter().find_map(|h| h.first_failure.clone()),
        reconnects: all.iter().map(|h| h.reconnects).sum(),
        churn: all.iter().map(|h| h.churn).sum(),
        full: kind(all.iter().map(|h| h.full.as_ref()))?,
        resumed: kind(all.iter().map(|h| h.resumed.as_ref()))?,
        connection_id: all.iter().map(|h| h.connection_id).sum(),
        per_second: handshake_series(shards.iter().filter_map(|r| {
            r.handshakes
                .as_ref()
                .map(|h| (offset_ms(r), &h.per_second[..]))
        })),
    }))
}

/// The shards' full (or resumed) handshake latencies together; `None` when no shard has them (reports from
/// before the split).
fn kind<'a>(
    shards: impl Iterator<Item = Option<&'a Latency>>,
) -> Result<Option<Latency>, (usize, String)> {
    let some: Vec<&Latency> = shards.flatten().collect();
    if some.is_empty() {
        return Ok(None);
    }
    latency(some.into_iter()).map(Some)
}

/// Lines the shards' handshake series up by wall-clock second, like [`series`], and adds them.
fn handshake_series<'a>(
    shards: impl Iterator<Item = (u64, &'a [HandshakePoint])>,
) -> Vec<HandshakePoint> {
    let mut by_second: BTreeMap<u64, HandshakePoint> = BTreeMap::new();
    for (offset_ms, points) in shards {
        let shift = (offset_ms + 500) / 1000;
        for p in points {
            let t = p.t + shift;
            let a = by_second.entry(t).or_insert_with(|| HandshakePoint {
                t,
                ..Default::default()
            });
            a.ok += p.ok;
            a.failed += p.failed;
            for (v, n) in &p.verdicts {
                *a.verdicts.entry(v.clone()).or_default() += n;
            }
        }
    }
    by_second.into_values().collect()
}

/// Lines the shards' series up by wall-clock second (offset rounded to the nearest second) and adds them:
/// counts and gauges summed, send lag p50 request-weighted and p99 the largest (like the latency's, which
/// [`per_second_latency`] makes exact when every shard kept its per-second histograms). A figure older shards
/// did not record stays absent unless every shard with that second has it.
fn series<'a>(shards: impl Iterator<Item = (u64, &'a [SeriesPoint])>) -> Vec<SeriesPoint> {
    #[derive(Default)]
    struct Acc {
        requests: u64,
        errors: u64,
        p50_weighted: f64,
        p99: u64,
        kinds: Option<ErrorKinds>,
        lag_p50_weighted: f64,
        lag_requests: u64,
        lag_p99: Option<u64>,
        devices: Option<u64>,
        sessions: Option<u64>,
        /// Shards seen in this second, and how many had each newer figure.
        parts: u32,
        with_kinds: u32,
        with_devices: u32,
        with_sessions: u32,
    }
    let mut by_second: BTreeMap<u64, Acc> = BTreeMap::new();
    for (offset_ms, points) in shards {
        let shift = (offset_ms + 500) / 1000;
        for p in points {
            let a = by_second.entry(p.t + shift).or_default();
            a.parts += 1;
            a.requests += p.requests;
            a.errors += p.errors;
            a.p50_weighted += p.p50_us as f64 * p.requests as f64;
            a.p99 = a.p99.max(p.p99_us);
            if let Some(k) = &p.errors_by_kind {
                a.with_kinds += 1;
                a.kinds.get_or_insert_with(ErrorKinds::default).add(k);
            }
            if let (Some(p50), Some(p99)) = (p.send_lag_p50_us, p.send_lag_p99_us) {
                a.lag_p50_weighted += p50 as f64 * p.requests as f64;
                a.lag_requests += p.requests;
                a.lag_p99 = Some(a.lag_p99.unwrap_or(0).max(p99));
            }
            if let Some(n) = p.active_devices {
                a.with_devices += 1;
                *a.devices.get_or_insert(0) += n;
            }
            if let Some(n) = p.dtls_sessions {
                a.with_sessions += 1;
                *a.sessions.get_or_insert(0) += n;
            }
        }
    }
    let mean = |weighted: f64, n: u64| {
        if n > 0 {
            (weighted / n as f64).round() as u64
        } else {
            0
        }
    };
    by_second
        .into_iter()
        .map(|(t, a)| SeriesPoint {
            t,
            requests: a.requests,
            errors: a.errors,
            p50_us: mean(a.p50_weighted, a.requests),
            p99_us: a.p99,
            errors_by_kind: a.kinds.filter(|_| a.with_kinds == a.parts),
            send_lag_p50_us: a.lag_p99.map(|_| mean(a.lag_p50_weighted, a.lag_requests)),
            send_lag_p99_us: a.lag_p99,
            active_devices: a.devices.filter(|_| a.with_devices == a.parts),
            dtls_sessions: a.sessions.filter(|_| a.with_sessions == a.parts),
        })
        .collect()
}

/// The merged per-second latency histograms, one per point of `merged` (the aligned series): each shard's
/// second added to the merged second it falls in, as [`series`] aligns them. Empty when a shard with a
/// series has no per-second histograms (an older version): then none are kept, rather than some seconds
/// holding only part of the requests.
fn per_second_latency(
    shards: &[&Report],
    offset_ms: impl Fn(&Report) -> u64,
    merged: &[SeriesPoint],
) -> Result<Vec<hdrhistogram::Histogram<u64>>, (usize, String)> {
    if shards
        .iter()
        .any(|r| r.latency_per_second.len() != r.timeseries.len())
    {
        return Ok(Vec::new());
    }
    let index: BTreeMap<u64, usize> = merged.iter().enumerate().map(|(i, p)| (p.t, i)).collect();
    let mut out: Vec<hdrhistogram::Histogram<u64>> = merged
        .iter()
        .map(|_| crate::metrics::collector::second_histogram())
        .collect();
    for (k, r) in shards.iter().enumerate() {
        let shift = (offset_ms(r) + 500) / 1000;
        for (p, encoded) in r.timeseries.iter().zip(&r.latency_per_second) {
            let h = crate::report::hdr::decode(encoded).map_err(|e| {
                (
                    k,
                    format!("its latency of second {} does not decode: {e}", p.t),
                )
            })?;
            if let Some(i) = index.get(&(p.t + shift)) {
                out[*i]
                    .add(&h)
                    .map_err(|e| (k, format!("its latency of second {}: {e:?}", p.t)))?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: u64, requests: u64, p50: u64, p99: u64) -> SeriesPoint {
        SeriesPoint {
            t,
            requests,
            errors: 1,
            p50_us: p50,
            p99_us: p99,
            ..Default::default()
        }
    }

    #[test]
    fn series_align_by_wall_clock_second() {
        let a = [point(0, 10, 100, 900), point(1, 10, 100, 900)];
        let b = [point(0, 30, 200, 500)];
        // b began 1.2 s after a: its second 0 is a's second 1.
        let s = series([(0, &a[..]), (1200, &b[..])].into_iter());
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].t, s[0].requests, s[0].p50_us), (0, 10, 100));
        assert_eq!((s[1].t, s[1].requests, s[1].errors), (1, 40, 2));
        assert_eq!(s[1].p50_us, 175, "request-weighted");
        assert_eq!(s[1].p99_us, 900, "the larger");
    }

    #[test]
    fn newer_series_fields_add_up_and_stay_absent_when_a_shard_lacks_them() {
        let newer = |t, requests, timeouts, lag_p50, lag_p99, devices| SeriesPoint {
            errors_by_kind: Some(ErrorKinds {
                timeout: timeouts,
                ..Default::default()
            }),
            send_lag_p50_us: Some(lag_p50),
            send_lag_p99_us: Some(lag_p99),
            active_devices: Some(devices),
            dtls_sessions: Some(devices / 2),
            ..point(t, requests, 100, 200)
        };
        let a = [newer(0, 10, 1, 100, 900, 4), newer(1, 10, 0, 100, 900, 4)];
        let b = [newer(0, 30, 2, 200, 500, 6)];
        // An older shard: its second 1 has none of the newer figures.
        let c = [point(1, 5, 100, 200)];
        let s = series([(0, &a[..]), (0, &b[..]), (0, &c[..])].into_iter());
        assert_eq!(s[0].errors_by_kind.unwrap().timeout, 3);
        assert_eq!(s[0].send_lag_p50_us, Some(175), "request-weighted");
        assert_eq!(s[0].send_lag_p99_us, Some(900), "the larger");
        assert_eq!(
            (s[0].active_devices, s[0].dtls_sessions),
            (Some(10), Some(5))
        );
        assert_eq!(s[1].requests, 15);
        assert_eq!(s[1].errors_by_kind, None, "part of second 1 has no kinds");
        assert_eq!(s[1].active_devices, None);
        assert_eq!(
            s[1].send_lag_p50_us,
            Some(100),
            "from the shard that has it"
        );
    }

    #[test]
    fn total_rates_add_up_and_others_are_kept() {
        let phase = |pacing: &str| PhaseReport {
            name: "p".into(),
            start_s: 0.0,
            duration_s: 1.0,
            devices: 1,
            pacing: pacing.into(),
            requests: stats(&[], 1.0).unwrap(),
        };
        let (a, b) = (phase("33.333/s total"), phase("66.667/s total"));
        assert_eq!(pacing(&[&a, &b]), "100/s total");
        let (a, b) = (phase("every 1s per device"), phase("every 1s per device"));
        assert_eq!(pacing(&[&a, &b]), "every 1s per device");
    }
}
