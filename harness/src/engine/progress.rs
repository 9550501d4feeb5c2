//! Live progress while a run goes: a bar on a terminal, a plain line every few seconds otherwise (CI logs).

use crate::checks::human_us;
use crate::metrics::{Live, Outcome};
use crate::scenario::RunPlan;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// Nothing (library use, tests).
    Off,
    /// A bar when stderr is a terminal, plain lines otherwise.
    Auto,
}

/// The live line: the phase under way, the rate over the last display interval (not the last closed second,
/// so it moves from the first tick), corrected p50/p99 of every response so far, active devices (and DTLS
/// sessions), and errors by kind.
fn line(live: &Live, now: Progress, prev: Progress, plan: &RunPlan) -> String {
    let total = plan.total_duration();
    let phase = if now.elapsed < total {
        plan.phases
            .get(plan.phase_at(now.elapsed))
            .map_or("-", |p| p.name.as_str())
    } else {
        "drain"
    };
    let window = now.elapsed.saturating_sub(prev.elapsed).as_secs_f64();
    let rate = if window > 0.0 {
        now.completed.saturating_sub(prev.completed) as f64 / window
    } else {
        0.0
    };
    let mut text = format!(
        "{:>5.1}s/{:.0}s  {phase}  {:.0} req/s  p50 {} p99 {} so far  devices {}",
        now.elapsed.as_secs_f64(),
        total.as_secs_f64(),
        rate,
        human_us(live.p50_us),
        human_us(live.p99_us),
        live.active_devices,
    );
    if plan.dtls.is_some() {
        text.push_str(&format!(" (sessions {})", live.dtls_sessions));
    }
    text.push_str(&format!(
        "  completed {}  ok {}  errors {}",
        live.completed, live.ok, live.errors
    ));
    let kinds: Vec<String> = Outcome::ALL
        .iter()
        .filter(|o| **o != Outcome::Ok)
        .filter_map(|o| {
            let n = live.outcomes.get(*o);
            (n > 0).then(|| format!("{} {n}", o.name()))
        })
        .collect();
    if !kinds.is_empty() {
        text.push_str(&format!(" ({})", kinds.join(", ")));
    }
    text
}

/// Where the run was at one display tick.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    elapsed: Duration,
    completed: u64,
}

/// Starts the display; it stops when `stop` is cancelled.
pub fn spawn(
    mode: ProgressMode,
    live: Arc<Mutex<Live>>,
    plan: Arc<RunPlan>,
    stop: CancellationToken,
) -> Option<JoinHandle<()>> {
    let total = plan.total_duration();
    if mode == ProgressMode::Off {
        return None;
    }
    let start = Instant::now();
    let tty = std::io::stderr().is_terminal();
    Some(tokio::spawn(async move {
        let bar = tty.then(|| {
            let bar = indicatif::ProgressBar::new(total.as_millis() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        let every = if tty {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(5)
        };
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        let mut prev = Progress::default();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let live = live.lock().expect("live lock").clone();
            let now = Progress {
                elapsed: start.elapsed(),
                completed: live.completed,
            };
            let text = line(&live, now, prev, &plan);
            prev = now;
            match &bar {
                Some(b) => {
                    b.set_position(
                        (start.elapsed().as_millis() as u64).min(total.as_millis() as u64),
                    );
                    b.set_message(text);
                }
                None => eprintln!("{text}"),
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{parse, Overrides};
    use std::path::Path;

    #[test]
    fn line_shows_phase_current_rate_percentiles_devices_and_errors_by_kind() {
        let plan = parse(
            "target: embedded\ndevices:\n  count: 10\nphases:\n  - name: warm\n    duration: 2s\n    interval: 1s\n  \
             - name: steady\n    duration: 8s\n    interval: 1s\n",
            Path::new("t.yaml"),
            Path::new("."),
            "t",
            &Overrides::default(),
        )
        .unwrap();
        let mut live = Live {
            completed: 1500,
            ok: 1497,
            errors: 3,
            p50_us: 70,
            p99_us: 1200,
            active_devices: 10,
            ..Default::default()
        };
        live.outcomes.add(Outcome::Ok, 1497);
        live.outcomes.add(Outcome::Timeout, 2);
        live.outcomes.add(Outcome::Reset, 1);
        let at = |ms: u64, completed: u64| Progress {
            elapsed: Duration::from_millis(ms),
            completed,
        };
        assert_eq!(
            line(&live, at(3000, 1500), at(2500, 1000), &plan),
            "  3.0s/10s  steady  1000 req/s  p50 70µs p99 1.20ms so far  devices 10  completed 1500  ok 1497  \
             errors 3 (timeout 2, reset 1)"
        );
        // Before any second has closed, the rate is already the one since the start.
        assert!(
            line(&live, at(500, 100), Progress::default(), &plan).contains("  warm  200 req/s  ")
        );
        assert!(
            line(&live, at(10_500, 1500), at(10_000, 1500), &plan).contains("  drain  0 req/s  ")
        );
    }
}
