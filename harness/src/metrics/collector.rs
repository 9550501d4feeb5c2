//! The one collector: receives batches from every device and aggregates them into per-phase HDR histograms,
//! outcome counters and a per-second time series. Devices never share a histogram or a lock on their hot
//! path; the collector is the only writer.

use super::outcome::{Outcome, OutcomeCounts};
use super::sample::{Batch, Sample};
use crate::coap::Code;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Highest latency a histogram holds (one hour in microseconds); larger values are clamped to it.
pub const MAX_US: u64 = 3_600_000_000;
/// Significant digits of the run's histograms.
pub const SIGFIG: u8 = 3;

/// A latency histogram in microseconds with the run's bounds.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, SIGFIG).expect("valid bounds")
}

/// Everything measured for one phase (or the whole run).
#[derive(Clone, Debug)]
pub struct PhaseAgg {
    pub outcomes: OutcomeCounts,
    pub codes: BTreeMap<Code, u64>,
    pub retransmissions: u64,
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    pub send_lag: Histogram<u64>,
    /// Requests that broke at least one per-request expectation, and counts per kind (by bit index).
    pub expectation_failures: u64,
    pub broken_by_kind: [u64; 8],
    /// First and last completion, ms since the run started.
    pub first_ms: Option<u64>,
    pub last_ms: u64,
}

impl Default for PhaseAgg {
    fn default() -> Self {
        PhaseAgg {
            outcomes: OutcomeCounts::default(),
            codes: BTreeMap::new(),
            retransmissions: 0,
            corrected: latency_histogram(),
            uncorrected: latency_histogram(),
            send_lag: latency_histogram(),
            expectation_failures: 0,
            broken_by_kind: [0; 8],
            first_ms: None,
            last_ms: 0,
        }
    }
}

impl PhaseAgg {
    fn record(&mut self, s: &Sample) {
        self.outcomes.add(s.outcome, 1);
        if let Some(code) = s.code {
            *self.codes.entry(code).or_default() += 1;
        }
        self.retransmissions += u64::from(s.retransmissions);
        if s.outcome.has_latency() {
            self.corrected.saturating_record(s.corrected_us.max(1));
            self.uncorrected.saturating_record(s.uncorrected_us.max(1));
        }
        self.send_lag.saturating_record(s.send_lag_us.max(1));
        if s.broken != 0 {
            self.expectation_failures += 1;
            for (bit, n) in self.broken_by_kind.iter_mut().enumerate() {
                if s.broken & (1 << bit) != 0 {
                    *n += 1;
                }
            }
        }
        self.first_ms = Some(
            self.first_ms
                .map_or(s.completed_ms, |f| f.min(s.completed_ms)),
        );
        self.last_ms = self.last_ms.max(s.completed_ms);
    }

    /// Requests sent (every one has exactly one outcome).
    pub fn sent(&self) -> u64 {
        self.outcomes.total()
    }
}

/// One second of the run, by completion time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SecondPoint {
    /// Seconds since the run started.
    pub t: u64,
    pub requests: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

/// What the live progress display reads.
#[derive(Clone, Debug, Default)]
pub struct Live {
    pub completed: u64,
    pub ok: u64,
    pub errors: u64,
    /// Timeouts of either kind so far.
    pub timeouts: u64,
    pub expectation_failures: u64,
    /// Largest latency (from intended send) of any response so far, in microseconds.
    pub max_us: u64,
    /// The last finished second.
    pub last: Option<SecondPoint>,
    /// Requests ended so far, by outcome (errors by kind).
    pub outcomes: OutcomeCounts,
    /// Corrected latency percentiles of every response so far (2 significant digits), refreshed at most
    /// every [`LIVE_PERCENTILES_EVERY`].
    pub p50_us: u64,
    pub p99_us: u64,
    /// Devices with an open socket, and those with an established DTLS session (the devices move these).
    pub active_devices: i64,
    pub dtls_sessions: i64,
}

/// How often the live percentiles are computed again.
pub const LIVE_PERCENTILES_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// The collector's result.
#[derive(Clone, Debug)]
pub struct Aggregate {
    pub phases: Vec<PhaseAgg>,
    pub total: PhaseAgg,
    pub series: Vec<SecondPoint>,
    /// Each second's corrected latency histogram (2 significant digits), HdrHistogram V2 + DEFLATE: one per
    /// point of `series`, empty seconds included. Responses that completed after their second was closed
    /// are counted in `series` but not in these.
    pub intervals: Vec<Vec<u8>>,
}

/// A second's histogram: 2 significant digits keep an hour-long run's intervals small.
fn second_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 2).expect("valid bounds")
}

fn encode(h: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut out)
        .expect("serializing into memory does not fail");
    out
}

/// Seconds still open to late batches before they are finalised into the series.
const OPEN_SECONDS: u64 = 2;

/// Aggregates batches; owned by one task.
pub struct Collector {
    phases: Vec<PhaseAgg>,
    open: BTreeMap<u64, (u64, u64, Histogram<u64>)>,
    series: Vec<SecondPoint>,
    intervals: Vec<Vec<u8>>,
    /// Seconds below this are closed: `series[t]` exists for each.
    closed_before: u64,
    live: Arc<Mutex<Live>>,
    /// Live metrics for scrapers (`run --metrics`), fed with every sample.
    export: Option<Arc<super::export::RunMetrics>>,
    /// Every response's corrected latency so far, for the live percentiles, and when they were last computed.
    so_far: Histogram<u64>,
    percentiles_at: Option<std::time::Instant>,
}

impl Collector {
    pub fn new(phases: usize) -> Self {
        Collector {
            phases: vec![PhaseAgg::default(); phases.max(1)],
            open: BTreeMap::new(),
            series: Vec::new(),
            intervals: Vec::new(),
            closed_before: 0,
            live: Arc::default(),
            export: None,
            so_far: second_histogram(),
            percentiles_at: None,
        }
    }

    /// Also feeds every sample to these live metrics.
    pub fn export_to(&mut self, metrics: Arc<super::export::RunMetrics>) {
        self.export = Some(metrics);
    }

    /// A handle the progress display reads.
    pub fn live(&self) -> Arc<Mutex<Live>> {
        self.live.clone()
    }

    pub fn record_batch(&mut self, batch: &Batch) {
        let (mut ok, mut errors, mut timeouts, mut broken, mut max_us) = (0, 0, 0, 0, 0);
        let mut outcomes = OutcomeCounts::default();
        for s in batch {
            outcomes.add(s.outcome, 1);
            if let Some(m) = &self.export {
                m.record(s);
            }
            if matches!(s.outcome, Outcome::Timeout | Outcome::ResponseTimeout) {
                timeouts += 1;
            }
            if s.broken != 0 {
                broken += 1;
            }
            if s.outcome.has_latency() {
                max_us = max_us.max(s.corrected_us);
                self.so_far.saturating_record(s.corrected_us.max(1));
            }
            let phase = (s.phase as usize).min(self.phases.len() - 1);
            self.phases[phase].record(s);
            let sec = s.completed_ms / 1000;
            if sec < self.closed_before {
                // A straggler for a second already closed: count it; its percentiles stay as they were.
                let point = &mut self.series[sec as usize];
                point.requests += 1;
                if s.outcome == Outcome::Ok {
                    ok += 1;
                } else {
                    errors += 1;
                    point.errors += 1;
                }
                continue;
            }
            let slot = self
                .open
                .entry(sec)
                .or_insert_with(|| (0, 0, second_histogram()));
            slot.0 += 1;
            if s.outcome == Outcome::Ok {
                ok += 1;
            } else {
                errors += 1;
                slot.1 += 1;
            }
            if s.outcome.has_latency() {
                slot.2.saturating_record(s.corrected_us.max(1));
            }
        }
        let mut live = self.live.lock().expect("live lock");
        live.completed += batch.len() as u64;
        live.ok += ok;
        live.errors += errors;
        live.timeouts += timeouts;
        live.expectation_failures += broken;
        live.max_us = live.max_us.max(max_us);
        live.outcomes.merge(&outcomes);
        let now = std::time::Instant::now();
        if self
            .percentiles_at
            .is_none_or(|at| now.duration_since(at) >= LIVE_PERCENTILES_EVERY)
        {
            self.percentiles_at = Some(now);
            live.p50_us = self.so_far.value_at_quantile(0.5);
            live.p99_us = self.so_far.value_at_quantile(0.99);
        }
        drop(live);
        if let Some(&newest) = self.open.keys().next_back() {
            self.close_seconds_before(newest.saturating_sub(OPEN_SECONDS));
        }
    }

    fn close_seconds_before(&mut self, limit: u64) {
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() >= limit {
                break;
            }
            let (t, (requests, errors, h)) = entry.remove_entry();
            self.closed_before = t + 1;
            // Fill silent seconds so the series has one point per second.
            let next = self.series.last().map_or(0, |p| p.t + 1);
            for gap in next..t {
                self.push_empty(gap);
            }
            let point = SecondPoint {
                t,
                requests,
                errors,
                p50_us: h.value_at_quantile(0.5),
                p99_us: h.value_at_quantile(0.99),
            };
            self.live.lock().expect("live lock").last = Some(point.clone());
            self.series.push(point);
            self.intervals.push(encode(&h));
        }
    }

    /// A second without completions.
    fn push_empty(&mut self, t: u64) {
        self.series.push(SecondPoint {
            t,
            ..Default::default()
        });
        self.intervals.push(encode(&second_histogram()));
    }

    /// Closes every second up to `run_secs` (exclusive) and returns the totals.
    pub fn finish(mut self, run_secs: u64) -> Aggregate {
        self.close_seconds_before(u64::MAX);
        let next = self.series.last().map_or(0, |p| p.t + 1);
        for t in next..run_secs {
            self.closed_before = t + 1;
            self.push_empty(t);
        }
        let mut total = PhaseAgg::default();
        for p in &self.phases {
            total.outcomes.merge(&p.outcomes);
            for (c, n) in &p.codes {
                *total.codes.entry(*c).or_default() += n;
            }
            total.retransmissions += p.retransmissions;
            total.expectation_failures += p.expectation_failures;
            for (t, n) in total.broken_by_kind.iter_mut().zip(p.broken_by_kind) {
                *t += n;
            }
            total.corrected.add(&p.corrected).expect("same bounds");
            total.uncorrected.add(&p.uncorrected).expect("same bounds");
            total.send_lag.add(&p.send_lag).expect("same bounds");
            if let Some(f) = p.first_ms {
                total.first_ms = Some(total.first_ms.map_or(f, |t| t.min(f)));
            }
            total.last_ms = total.last_ms.max(p.last_ms);
        }
        Aggregate {
            phases: self.phases,
            total,
            series: self.series,
            intervals: self.intervals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(phase: u16, outcome: Outcome, us: u64, ms: u64) -> Sample {
        Sample {
            phase,
            outcome,
            code: outcome.has_latency().then_some(Code::CREATED),
            corrected_us: us,
            uncorrected_us: us / 2,
            send_lag_us: 0,
            completed_ms: ms,
            retransmissions: 1,
            broken: 0,
        }
    }

    #[test]
    fn aggregates_by_phase_and_second() {
        let mut c = Collector::new(2);
        c.record_batch(&vec![
            sample(0, Outcome::Ok, 1000, 100),
            sample(0, Outcome::Timeout, 0, 900),
            sample(1, Outcome::Ok, 3000, 2500),
        ]);
        c.record_batch(&vec![sample(1, Outcome::Ok, 5000, 2600)]);
        let agg = c.finish(4);
        assert_eq!(agg.phases[0].sent(), 2);
        assert_eq!(agg.phases[0].outcomes.timeout, 1);
        assert_eq!(agg.phases[1].corrected.len(), 2);
        assert_eq!(agg.total.sent(), 4);
        assert_eq!(agg.total.corrected.len(), 3, "timeouts carry no latency");
        assert_eq!(agg.total.retransmissions, 4);
        assert_eq!(agg.total.codes[&Code::CREATED], 3);
        let ts: Vec<(u64, u64, u64)> = agg
            .series
            .iter()
            .map(|p| (p.t, p.requests, p.errors))
            .collect();
        assert_eq!(ts, vec![(0, 2, 1), (1, 0, 0), (2, 2, 0), (3, 0, 0)]);
        assert!(agg.series[2].p99_us >= 4990 && agg.series[2].p99_us <= 5050);
        // One histogram per second, holding that second's latencies (timeouts have none).
        let counts: Vec<u64> = agg
            .intervals
            .iter()
            .map(|bytes| {
                let h: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
                    .deserialize(&mut bytes.as_slice())
                    .unwrap();
                h.len()
            })
            .collect();
        assert_eq!(counts, vec![1, 0, 2, 0]);
    }

    #[test]
    fn stragglers_for_closed_seconds_are_counted_in_place() {
        let mut c = Collector::new(1);
        c.record_batch(&vec![
            sample(0, Outcome::Ok, 1000, 100),
            sample(0, Outcome::Ok, 1000, 5100),
        ]);
        // Second 0 is closed now; a late sample for it must not open it again.
        c.record_batch(&vec![sample(0, Outcome::Reset, 0, 900)]);
        let agg = c.finish(6);
        let ts: Vec<(u64, u64, u64)> = agg
            .series
            .iter()
            .map(|p| (p.t, p.requests, p.errors))
            .collect();
        assert_eq!(
            ts,
            vec![
                (0, 2, 1),
                (1, 0, 0),
                (2, 0, 0),
                (3, 0, 0),
                (4, 0, 0),
                (5, 1, 0)
            ]
        );
        assert_eq!(agg.total.sent(), 3);
    }
}
