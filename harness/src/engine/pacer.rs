//! When one device sends, as pure logic over the plan: open-loop slots at a fixed interval (jittered per
//! device so a fleet does not fire in lock-step), or closed-loop after each completion plus think time.
//! Offsets are durations since the run started; no clock is read here.

use crate::scenario::RunPlan;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// The next request is intended at this offset.
    Due(Duration),
    /// Closed loop: waiting for the request in flight to complete.
    Awaiting,
    /// No more requests.
    Done,
}

/// One device's schedule.
#[derive(Clone, Debug)]
pub struct Pacer<'a> {
    plan: &'a RunPlan,
    windows: Vec<(Duration, Duration)>,
    window: usize,
    /// Fraction of an interval this device's open-loop slots are offset by.
    jitter: f64,
    state: State,
}

impl<'a> Pacer<'a> {
    pub fn new(plan: &'a RunPlan, index: u32) -> Self {
        let windows = plan.device_windows(index);
        // Golden-ratio spacing spreads any number of devices evenly over an interval; by the scenario's
        // device index, so shards together send at the same offsets as one whole run.
        let jitter = (plan.devices.global(index) as f64 * 0.618_033_988_749_895).fract();
        let mut p = Pacer {
            plan,
            windows,
            window: 0,
            jitter,
            state: State::Done,
        };
        if let Some(&(start, _)) = p.windows.first() {
            p.state = State::Due(p.first_slot(start));
            p.settle();
        }
        p
    }

    /// When this device first becomes active, if ever.
    pub fn first_active(&self) -> Option<Duration> {
        self.windows.first().map(|w| w.0)
    }

    /// The next intended send offset; `None` while waiting for a completion or when done.
    pub fn next(&self) -> Option<Duration> {
        match self.state {
            State::Due(t) => Some(t),
            _ => None,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// A request intended at `intended` has been sent.
    pub fn on_sent(&mut self, intended: Duration) {
        let phase = &self.plan.phases[self.plan.phase_at(intended)];
        self.state = match phase.interval() {
            // A slot past the phase's end restarts the schedule with the next phase's pacing.
            Some(d) if intended + d >= phase.end() => State::Due(self.first_slot(phase.end())),
            Some(d) => State::Due(intended + d),
            None => State::Awaiting,
        };
        self.settle();
    }

    /// Adds the open-loop sends left in this schedule to `per` (by phase) without walking them: within one
    /// phase and one active window the slots are arithmetic, so each stretch is one division, and the cost
    /// is bounded by the number of phases and windows, whatever the rate or duration. Stops at a closed-loop
    /// phase (whose sends depend on the server).
    pub fn count_by_phase(mut self, per: &mut [u64]) {
        while let State::Due(t) = self.state {
            let index = self.plan.phase_at(t);
            let phase = &self.plan.phases[index];
            let Some(d) = phase.interval() else {
                return;
            };
            let window_end = self.windows.get(self.window).map_or(t, |w| w.1);
            let end = phase.end().min(window_end);
            if t >= end {
                return; // not reached: settle keeps a due time inside its window and phase
            }
            let step = d.as_nanos().max(1);
            let n = (end - t).as_nanos().div_ceil(step);
            per[index] = per[index].saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
            if d.is_zero() {
                return; // not reached: validation rejects intervals under MIN_INTERVAL
            }
            let last = u64::try_from(step * (n - 1)).unwrap_or(u64::MAX);
            self.on_sent(t + Duration::from_nanos(last));
        }
    }

    /// The request in flight completed at offset `at`.
    pub fn on_completed(&mut self, at: Duration) {
        if self.state == State::Awaiting {
            let phase = &self.plan.phases[self.plan.phase_at(at)];
            let think = match phase.pacing {
                crate::scenario::Pacing::Closed { think } => think,
                _ => Duration::ZERO,
            };
            self.state = State::Due(at + think);
            self.settle();
        }
    }

    /// This device's first slot at or after `start`: jittered into the interval of the phase `start` is
    /// in, or at the next phase's start when the jitter would carry it past this one.
    fn first_slot(&self, mut start: Duration) -> Duration {
        loop {
            if start >= self.plan.total_duration() {
                return start;
            }
            let phase = &self.plan.phases[self.plan.phase_at(start)];
            let slot = match phase.interval() {
                Some(d) => start + d.mul_f64(self.jitter),
                None => start,
            };
            if slot < phase.end() {
                return slot;
            }
            start = phase.end();
        }
    }

    /// Moves a due time that fell outside the device's active windows into the next one, or ends.
    fn settle(&mut self) {
        let State::Due(mut t) = self.state else {
            return;
        };
        loop {
            let Some(&(start, end)) = self.windows.get(self.window) else {
                self.state = State::Done;
                return;
            };
            if t < start {
                t = self.first_slot(start);
            }
            if t < end {
                self.state = State::Due(t);
                return;
            }
            self.window += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{parse, Overrides};
    use std::path::Path;

    fn plan(phases: &str, count: u32) -> RunPlan {
        let text = format!("target: embedded\ndevices:\n  count: {count}\nphases:\n{phases}");
        parse(
            &text,
            Path::new("t.yaml"),
            Path::new("."),
            "t",
            &Overrides::default(),
        )
        .unwrap()
    }

    fn slots(p: &mut Pacer<'_>) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(t) = p.next() {
            out.push(t.as_millis() as u64);
            p.on_sent(t);
        }
        out
    }

    #[test]
    fn open_loop_sends_every_interval_within_the_run() {
        let plan = plan("  - duration: 3s\n    interval: 1s\n", 10);
        let mut p0 = Pacer::new(&plan, 0);
        assert_eq!(slots(&mut p0), vec![0, 1000, 2000]);
        assert!(p0.is_done());
        let mut p1 = Pacer::new(&plan, 1);
        assert_eq!(slots(&mut p1), vec![618, 1618, 2618]);
    }

    #[test]
    fn total_rate_divides_over_devices() {
        let plan = plan("  - duration: 1s\n    rate: 100/s\n", 10);
        let total: usize = (0..10)
            .map(|i| slots(&mut Pacer::new(&plan, i)).len())
            .sum();
        assert_eq!(total, 100);
    }

    #[test]
    fn ramp_up_starts_devices_late() {
        let plan = plan(
            "  - duration: 10s\n    ramp: linear\n    interval: 1s\n",
            10,
        );
        let mut p = Pacer::new(&plan, 5);
        assert_eq!(p.first_active(), Some(Duration::from_secs(5)));
        assert_eq!(slots(&mut p).len(), 5);
    }

    #[test]
    fn closed_loop_waits_for_completion() {
        let plan = plan("  - duration: 1s\n    think: 100ms\n", 1);
        let mut p = Pacer::new(&plan, 0);
        assert_eq!(p.next(), Some(Duration::ZERO));
        p.on_sent(Duration::ZERO);
        assert_eq!(p.next(), None);
        assert!(!p.is_done());
        p.on_completed(Duration::from_millis(250));
        assert_eq!(p.next(), Some(Duration::from_millis(350)));
        p.on_sent(Duration::from_millis(350));
        p.on_completed(Duration::from_millis(950));
        assert!(p.is_done(), "1050 ms is past the run");
    }

    #[test]
    fn a_long_interval_does_not_skip_the_next_phase() {
        let plan = plan(
            "  - duration: 1s\n    interval: 10s\n  - duration: 1s\n    interval: 250ms\n",
            2,
        );
        // Device 1's jittered slot in phase 1 would be at 6.18 s: it starts in phase 2 instead.
        assert_eq!(
            slots(&mut Pacer::new(&plan, 1)),
            vec![1154, 1404, 1654, 1904]
        );
        // Device 0 sends at 0, and its next 10 s slot restarts at phase 2.
        assert_eq!(
            slots(&mut Pacer::new(&plan, 0)),
            vec![0, 1000, 1250, 1500, 1750]
        );
    }

    /// The closed-form count equals walking every slot, over ramps, long intervals, phase changes, paced
    /// connections and rates that do not divide evenly.
    #[test]
    fn counting_by_phase_equals_walking_every_slot() {
        let cases = [
            ("  - duration: 3s\n    interval: 1s\n", 10),
            ("  - duration: 1s\n    rate: 100/s\n", 7),
            ("  - duration: 10s\n    ramp: linear\n    interval: 300ms\n", 13),
            ("  - duration: 1s\n    interval: 10s\n  - duration: 1s\n    interval: 250ms\n", 5),
            (
                "  - duration: 2s\n    devices: 3\n    rate: 33/s\n  - duration: 5s\n    ramp: linear\n    \
                 interval: 70ms\n  - duration: 3s\n    ramp: linear\n    devices: 2\n    interval: 1s\n",
                9,
            ),
        ];
        for (phases, count) in cases {
            for connect in ["", "  connect_rate: 3/s\n"] {
                let text = format!(
                    "target: embedded\ndevices:\n  count: {count}\n{connect}phases:\n{phases}"
                );
                let Ok(plan) = parse(
                    &text,
                    Path::new("t.yaml"),
                    Path::new("."),
                    "t",
                    &Overrides::default(),
                ) else {
                    continue; // connect_rate too slow for the phases: rejected by validation
                };
                let mut walked = vec![0u64; plan.phases.len()];
                let mut counted = vec![0u64; plan.phases.len()];
                for i in 0..count {
                    let mut p = Pacer::new(&plan, i);
                    while let Some(t) = p.next() {
                        walked[plan.phase_at(t)] += 1;
                        p.on_sent(t);
                    }
                    Pacer::new(&plan, i).count_by_phase(&mut counted);
                }
                assert_eq!(counted, walked, "{text}");
                assert!(walked.iter().sum::<u64>() > 0, "{text}");
            }
        }
    }

    /// A year at 10 µs per device: thousands of billions of slots, counted without visiting them.
    #[test]
    fn counting_a_huge_schedule_is_arithmetic() {
        let plan = plan("  - duration: 8760h\n    interval: 10us\n", 1000);
        let mut per = vec![0u64];
        for i in 0..1000 {
            Pacer::new(&plan, i).count_by_phase(&mut per);
        }
        // 8760 h / 10 µs = 3,153,600,000,000 slots per device.
        assert_eq!(per[0], 1000 * 3_153_600_000_000);
    }

    #[test]
    fn pacing_changes_with_the_phase() {
        let plan = plan(
            "  - duration: 2s\n    interval: 1s\n  - duration: 1s\n    interval: 250ms\n",
            1,
        );
        assert_eq!(
            slots(&mut Pacer::new(&plan, 0)),
            vec![0, 1000, 2000, 2250, 2500, 2750]
        );
    }
}
