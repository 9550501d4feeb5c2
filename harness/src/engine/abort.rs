//! `abort_on_fail`: thresholds watched while the run goes, stopping it as soon as one can no longer be met.
//! Only metrics that can only get worse are watched this way (counts, the maximum latency, and the error
//! rate against the requests the open-loop schedule will send at most); others are judged at the end.

use super::pacer::Pacer;
pub use crate::checks::watchable;
use crate::checks::{Metric, Threshold};
use crate::metrics::Live;
use crate::scenario::{Pacing, RunPlan};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The most requests the plan's open-loop schedule sends; `None` when a phase is closed-loop.
pub fn planned_requests(plan: &RunPlan) -> Option<u64> {
    planned_by_phase(plan).map(|v| v.iter().sum())
}

/// Requests the open-loop schedule intends in each phase; `None` when a phase is closed-loop.
pub fn planned_by_phase(plan: &RunPlan) -> Option<Vec<u64>> {
    if plan
        .phases
        .iter()
        .any(|p| matches!(p.pacing, Pacing::Closed { .. }))
    {
        return None;
    }
    let mut per = vec![0u64; plan.phases.len()];
    for i in 0..plan.devices.count {
        Pacer::new(plan, i).count_by_phase(&mut per);
    }
    Some(per)
}

/// Why `t` is already lost given `live`, if it is.
pub fn lost(t: &Threshold, live: &Live, planned: Option<u64>) -> Option<String> {
    let observed = match t.metric {
        Metric::Timeouts => live.timeouts as f64,
        Metric::ExpectationFailures => live.expectation_failures as f64,
        Metric::LatencyMax => live.max_us as f64,
        // Even if every remaining request succeeded, the rate would stay above the bound.
        Metric::ErrorRate => live.errors as f64 / planned? as f64,
        _ => return None,
    };
    (!t.op.holds(observed, t.bound)).then(|| {
        let show = |v: f64| crate::checks::show(t.metric, v);
        match t.metric {
            // The figure that tripped it is the floor on the final rate, not the rate so far: say both.
            Metric::ErrorRate => format!(
                "threshold `{}` can no longer be met: {} of {} requests completed so far failed ({}); those {}                  failures alone are {} of the {} requests the schedule sends at most",
                t.text,
                live.errors,
                live.completed,
                show(live.errors as f64 / live.completed.max(1) as f64),
                live.errors,
                show(observed),
                planned.unwrap_or(0),
            ),
            _ => format!(
                "threshold `{}` can no longer be met (observed {} so far)",
                t.text,
                show(observed)
            ),
        }
    })
}

/// Watches the run's `abort_on_fail` thresholds; cancels `run` when one is lost and returns why.
pub fn spawn(
    plan: Arc<RunPlan>,
    live: Arc<Mutex<Live>>,
    run: CancellationToken,
    stop: CancellationToken,
) -> JoinHandle<Option<String>> {
    tokio::spawn(async move {
        let watched: Vec<Threshold> = plan
            .thresholds
            .iter()
            .filter(|t| t.abort_on_fail)
            .cloned()
            .collect();
        if watched.is_empty() {
            return None;
        }
        let planned = planned_requests(&plan);
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = run.cancelled() => return None,
                _ = tick.tick() => {}
            }
            let snapshot = live.lock().expect("live lock").clone();
            if let Some(why) = watched.iter().find_map(|t| lost(t, &snapshot, planned)) {
                run.cancel();
                return Some(why);
            }
        }
    })
}
