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
    /// Requests that ended in this second, by outcome (errors by kind).
    pub outcomes: OutcomeCounts,
    /// Of `outcomes.coap_error`: the 4.xx responses and the 5.xx ones.
    pub coap_4xx: u64,
    pub coap_5xx: u64,
    /// Send lag of the requests that ended in this second.
    pub send_lag_p50_us: u64,
    pub send_lag_p99_us: u64,
    /// The most devices with an open socket at once in this second, and the most established DTLS sessions.
    pub active_devices: u64,
    pub dtls_sessions: u64,
}

/// Active devices and DTLS sessions: the most at once in a second, and the counts when it was sampled.
type GaugeSample = ((u64, u64), (u64, u64));

/// A second still open to late batches.
struct OpenSecond {
    requests: u64,
    errors: u64,
    outcomes: OutcomeCounts,
    coap_4xx: u64,
    coap_5xx: u64,
    latency: Histogram<u64>,
    send_lag: Histogram<u64>,
}

impl Default for OpenSecond {
    fn default() -> Self {
        OpenSecond {
            requests: 0,
            errors: 0,
            outcomes: OutcomeCounts::default(),
            coap_4xx: 0,
            coap_5xx: 0,
            latency: second_histogram(),
            send_lag: second_histogram(),
        }
    }
}

/// Counts `s` into a second's request, error and error-kind counters (not its percentiles).
fn count_into(
    s: &Sample,
    requests: &mut u64,
    errors: &mut u64,
    outcomes: &mut OutcomeCounts,
    c4: &mut u64,
    c5: &mut u64,
) {
    *requests += 1;
    outcomes.add(s.outcome, 1);
    if s.outcome != Outcome::Ok {
        *errors += 1;
    }
    if s.outcome == Outcome::CoapError {
        if s.code.is_some_and(|c| c.class() == 5) {
            *c5 += 1;
        } else {
            *c4 += 1;
        }
    }
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
    /// The newest second with a completion, still open: what it holds so far.
    pub current: Option<SecondSoFar>,
    /// Requests ended so far, by outcome (errors by kind).
    pub outcomes: OutcomeCounts,
    /// Corrected latency percentiles of every response so far (2 significant digits), refreshed at most
    /// every [`LIVE_PERCENTILES_EVERY`].
    pub p50_us: u64,
    pub p99_us: u64,
    /// Devices with an open socket, and those with an established DTLS session (the devices move these).
    pub active_devices: i64,
    pub dtls_sessions: i64,
    /// The most of each at once since the collector last took a per-second sample (the devices raise these
    /// with the counts; [`Collector::sample_gauges`] takes them).
    pub peak_devices: i64,
    pub peak_sessions: i64,
}

impl Live {
    /// Moves the active-device count by `by` (+1 a device came up, -1 it ended).
    pub fn devices_by(&mut self, by: i64) {
        self.active_devices += by;
        self.peak_devices = self.peak_devices.max(self.active_devices);
    }

    /// Moves the established-DTLS-session count by `by`.
    pub fn sessions_by(&mut self, by: i64) {
        self.dtls_sessions += by;
        self.peak_sessions = self.peak_sessions.max(self.dtls_sessions);
    }
}

/// The newest second of the run with completions, as far as batches have arrived.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecondSoFar {
    /// Seconds since the run started.
    pub t: u64,
    pub requests: u64,
    pub errors: u64,
    /// Corrected latency percentiles of its responses so far (2 significant digits), refreshed at most every
    /// [`LIVE_PERCENTILES_EVERY`]; 0 before its first response.
    pub p50_us: u64,
    pub p99_us: u64,
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
pub fn second_histogram() -> Histogram<u64> {
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
    open: BTreeMap<u64, OpenSecond>,
    /// Active devices and DTLS sessions sampled as each second ended (by second): the most at once in the
    /// second, and the counts at the sample. See [`Self::sample_gauges`].
    gauges: BTreeMap<u64, GaugeSample>,
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
            gauges: BTreeMap::new(),
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
            if s.outcome == Outcome::Ok {
                ok += 1;
            } else {
                errors += 1;
            }
            if sec < self.closed_before {
                // A straggler for a second already closed: count it; its percentiles stay as they were.
                let p = &mut self.series[sec as usize];
                count_into(
                    s,
                    &mut p.requests,
                    &mut p.errors,
                    &mut p.outcomes,
                    &mut p.coap_4xx,
                    &mut p.coap_5xx,
                );
                continue;
            }
            let o = self.open.entry(sec).or_default();
            count_into(
                s,
                &mut o.requests,
                &mut o.errors,
                &mut o.outcomes,
                &mut o.coap_4xx,
                &mut o.coap_5xx,
            );
            if s.outcome.has_latency() {
                o.latency.saturating_record(s.corrected_us.max(1));
            }
            o.send_lag.saturating_record(s.send_lag_us.max(1));
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
        let refresh = self
            .percentiles_at
            .is_none_or(|at| now.duration_since(at) >= LIVE_PERCENTILES_EVERY);
        if refresh {
            self.percentiles_at = Some(now);
            live.p50_us = self.so_far.value_at_quantile(0.5);
            live.p99_us = self.so_far.value_at_quantile(0.99);
        }
        if let Some((&t, o)) = self.open.iter().next_back() {
            let same = live.current.filter(|c| c.t == t);
            let fresh = refresh || same.is_none();
            live.current = Some(SecondSoFar {
                t,
                requests: o.requests,
                errors: o.errors,
                p50_us: if fresh {
                    o.latency.value_at_quantile(0.5)
                } else {
                    same.map_or(0, |c| c.p50_us)
                },
                p99_us: if fresh {
                    o.latency.value_at_quantile(0.99)
                } else {
                    same.map_or(0, |c| c.p99_us)
                },
            });
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
            let (t, o) = entry.remove_entry();
            self.closed_before = t + 1;
            // Fill silent seconds so the series has one point per second.
            let next = self.series.last().map_or(0, |p| p.t + 1);
            for gap in next..t {
                self.push_empty(gap);
            }
            let (active_devices, dtls_sessions) = self.gauges_at(t);
            let point = SecondPoint {
                t,
                requests: o.requests,
                errors: o.errors,
                p50_us: o.latency.value_at_quantile(0.5),
                p99_us: o.latency.value_at_quantile(0.99),
                outcomes: o.outcomes,
                coap_4xx: o.coap_4xx,
                coap_5xx: o.coap_5xx,
                send_lag_p50_us: o.send_lag.value_at_quantile(0.5),
                send_lag_p99_us: o.send_lag.value_at_quantile(0.99),
                active_devices,
                dtls_sessions,
            };
            self.live.lock().expect("live lock").last = Some(point.clone());
            self.series.push(point);
            self.intervals.push(encode(&o.latency));
        }
    }

    /// Records the most active devices and DTLS sessions at once (which the devices count) since the last
    /// sample as second `t`'s. The load calls it as each second ends; seconds it missed carry the previous
    /// second's counts.
    pub fn sample_gauges(&mut self, t: u64) {
        let mut live = self.live.lock().expect("live lock");
        let n = |v: i64| v.max(0) as u64;
        let at = (n(live.peak_devices), n(live.peak_sessions));
        let then = (n(live.active_devices), n(live.dtls_sessions));
        live.peak_devices = live.active_devices;
        live.peak_sessions = live.dtls_sessions;
        drop(live);
        self.gauges.insert(t, (at, then));
        // A second closed before its sample arrived (late tick): it takes the sample now.
        if let Some(p) = self.series.get_mut(t as usize) {
            (p.active_devices, p.dtls_sessions) = at;
        }
        // Seconds closed after it without a sample of their own carry what it left.
        for p in self.series.iter_mut().skip(t as usize + 1) {
            if self.gauges.contains_key(&p.t) {
                break;
            }
            (p.active_devices, p.dtls_sessions) = then;
        }
    }

    /// Second `t`'s gauges: its own sample (the most at once), else the counts as the latest sample before it
    /// left them (none yet: zero).
    fn gauges_at(&self, t: u64) -> (u64, u64) {
        match self.gauges.range(..=t).next_back() {
            Some((at, (peak, _))) if *at == t => *peak,
            Some((_, (_, then))) => *then,
            None => (0, 0),
        }
    }

    /// A second without completions.
    fn push_empty(&mut self, t: u64) {
        let (active_devices, dtls_sessions) = self.gauges_at(t);
        self.series.push(SecondPoint {
            t,
            active_devices,
            dtls_sessions,
            ..Default::default()
        });
        self.intervals.push(encode(&second_histogram()));
    }

    /// Closes every second up to `run_secs` (exclusive) and returns the totals.
    pub fn finish(mut self, run_secs: u64) -> Aggregate {
        // The last second (cut short by the end of the run) gets the counts since the last sample.
        let last = run_secs.saturating_sub(1);
        if self.gauges.keys().next_back().is_none_or(|t| *t < last) {
            self.sample_gauges(last);
        }
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
    fn each_second_carries_errors_by_kind_send_lag_and_the_gauges() {
        let mut c = Collector::new(1);
        let at = |outcome, code: Option<Code>, lag_us, ms| Sample {
            code,
            send_lag_us: lag_us,
            ..sample(0, outcome, 500, ms)
        };
        // Second 0: devices come up; two ok, a timeout, a 4.04 and a 5.03; lags 10..50 µs.
        c.live().lock().unwrap().devices_by(3);
        c.live().lock().unwrap().sessions_by(2);
        c.record_batch(&vec![
            at(Outcome::Ok, Some(Code::CREATED), 10, 100),
            at(Outcome::Ok, Some(Code::CREATED), 20, 200),
            at(Outcome::Timeout, None, 30, 300),
            at(Outcome::CoapError, Some(Code::NOT_FOUND), 40, 400),
            at(
                Outcome::CoapError,
                Some(Code::SERVICE_UNAVAILABLE),
                50_000,
                500,
            ),
        ]);
        c.sample_gauges(0);
        // Second 1 gets no sample (a missed tick): it carries the counts second 0 left.
        c.record_batch(&vec![at(Outcome::Reset, None, 5, 1_500)]);
        // Second 2: a device comes and goes (the peak counts), then two end and every session closes.
        c.live().lock().unwrap().devices_by(1);
        c.live().lock().unwrap().devices_by(-1);
        c.live().lock().unwrap().devices_by(-2);
        c.live().lock().unwrap().sessions_by(-2);
        c.sample_gauges(2);
        c.record_batch(&vec![at(Outcome::SessionClosed, None, 7, 2_100)]);
        // A straggler for second 0, after second 0 has closed: counted by kind too.
        c.record_batch(&vec![at(Outcome::Ok, Some(Code::CREATED), 1, 6_000)]);
        c.record_batch(&vec![at(Outcome::Timeout, None, 1, 900)]);
        let agg = c.finish(7);
        let s = &agg.series;
        assert_eq!(s.len(), 7);
        let p = &s[0];
        assert_eq!((p.requests, p.errors), (6, 4));
        assert_eq!(p.outcomes.timeout, 2, "the straggler is counted");
        assert_eq!((p.outcomes.ok, p.outcomes.coap_error), (2, 2));
        assert_eq!((p.coap_4xx, p.coap_5xx), (1, 1));
        assert_eq!(p.send_lag_p50_us, 30);
        assert!(
            (49_700..=50_300).contains(&p.send_lag_p99_us),
            "{}",
            p.send_lag_p99_us
        );
        assert_eq!((p.active_devices, p.dtls_sessions), (3, 2));
        assert_eq!((s[1].outcomes.reset, s[1].errors), (1, 1));
        assert_eq!(s[1].send_lag_p50_us, 5);
        assert_eq!((s[1].active_devices, s[1].dtls_sessions), (3, 2), "carried");
        assert_eq!(s[2].outcomes.session_closed, 1);
        assert_eq!(
            (s[2].active_devices, s[2].dtls_sessions),
            (4, 2),
            "the most at once"
        );
        // Silent seconds keep the counts the last sample left and have no send lag; the last second (not
        // sampled before the run ended) gets the counts since.
        assert_eq!(
            (s[4].requests, s[4].send_lag_p50_us, s[4].active_devices),
            (0, 0, 1)
        );
        assert_eq!((s[6].active_devices, s[6].dtls_sessions), (1, 0));
        // Every request is in exactly one second, by kind.
        let kinds: u64 = s.iter().map(|p| p.outcomes.total()).sum();
        assert_eq!(kinds, agg.total.sent());
    }

    #[test]
    fn live_shows_the_newest_second_so_far() {
        let mut c = Collector::new(1);
        let live = c.live();
        c.record_batch(&vec![
            sample(0, Outcome::Ok, 1000, 100),
            sample(0, Outcome::Ok, 2000, 1100),
            sample(0, Outcome::Ok, 4000, 1200),
            sample(0, Outcome::Timeout, 0, 1300),
        ]);
        let now = live.lock().unwrap().current.unwrap();
        assert_eq!((now.t, now.requests, now.errors), (1, 3, 1));
        assert!((1990..=2020).contains(&now.p50_us), "{now:?}");
        assert!((3990..=4040).contains(&now.p99_us), "{now:?}");
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
