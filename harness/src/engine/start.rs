//! When the load phases begin: a moment from now, or at the plan's `start_at` (`--start-at`), so shards on
//! many machines begin their first phase together.

use crate::scenario::RunPlan;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// How far ahead of the first send devices are scheduled, so every task is ready when t0 comes.
const LEAD: Duration = Duration::from_millis(50);

/// Waits until shortly before `plan.start_at` (if any; cancellation ends the wait) and returns t0, the
/// instant every device is measured from, with its wall-clock time in milliseconds since the Unix epoch.
pub async fn wait(plan: &RunPlan, cancel: &CancellationToken) -> (Instant, u64) {
    if let Some(wait) = plan
        .start_at
        .and_then(|at| at.duration_since(SystemTime::now()).ok())
        .and_then(|w| w.checked_sub(LEAD))
    {
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    let t0 = Instant::now() + LEAD;
    let wall = SystemTime::now() + LEAD;
    (
        t0,
        wall.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    )
}
