//! Live progress while a run goes: on a terminal, a bar with a few lines under it redrawn twice a second; a
//! plain line every few seconds otherwise (CI logs). What is shown is worked out by pure functions
//! ([`Frame::of`], [`line`], [`view`]) from the collector's [`Live`] counters, tested without a terminal.

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

/// What a display tick shows, worked out from the live counters (pure: the tests build it by hand).
struct Frame<'a> {
    elapsed: Duration,
    total: Duration,
    phase: &'a str,
    /// Completions per second over the last display interval (it moves from the first tick).
    rate: f64,
    /// The current second's corrected p50/p99 so far, when it has responses (not the last closed second).
    now: Option<(u64, u64)>,
    dtls: bool,
}

impl<'a> Frame<'a> {
    fn of(live: &Live, now: Progress, prev: Progress, plan: &'a RunPlan) -> Frame<'a> {
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
        // The newest second with responses, if it is this second or the one before (batches arrive up to a
        // quarter second late); an older one is no longer "now".
        let second = now.elapsed.as_secs();
        let current = live
            .current
            .filter(|c| c.t + 1 >= second && c.requests > c.errors)
            .map(|c| (c.p50_us, c.p99_us));
        Frame {
            elapsed: now.elapsed,
            total,
            phase,
            rate,
            now: current,
            dtls: plan.dtls.is_some(),
        }
    }
}

/// `p50 70µs p99 1.20ms`, or dashes before any response.
fn percentiles(p: Option<(u64, u64)>) -> String {
    match p {
        Some((p50, p99)) => format!("p50 {} p99 {}", human_us(p50), human_us(p99)),
        None => "p50 – p99 –".into(),
    }
}

/// Errors by kind, `timeout 2, reset 1`, or empty when there are none.
fn error_kinds(live: &Live) -> String {
    Outcome::ALL
        .iter()
        .filter(|o| **o != Outcome::Ok)
        .filter_map(|o| {
            let n = live.outcomes.get(*o);
            (n > 0).then(|| format!("{} {n}", o.name()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The run's p50/p99 so far, or none before its first response.
fn run_percentiles(live: &Live) -> Option<(u64, u64)> {
    (live.completed > live.errors).then_some((live.p50_us, live.p99_us))
}

/// The plain line (not a terminal, CI logs): the phase, the current rate and the current second's p50/p99,
/// the run's p99 so far, active devices (and DTLS sessions), and errors by kind.
fn line(live: &Live, f: &Frame) -> String {
    let mut text = format!(
        "{:>5.1}s/{:.0}s  {}  {:.0} req/s  {} this second  (run {})  devices {}",
        f.elapsed.as_secs_f64(),
        f.total.as_secs_f64(),
        f.phase,
        f.rate,
        percentiles(f.now),
        percentiles(run_percentiles(live)),
        live.active_devices,
    );
    if f.dtls {
        text.push_str(&format!(" (sessions {})", live.dtls_sessions));
    }
    text.push_str(&format!(
        "  completed {}  ok {}  errors {}",
        live.completed, live.ok, live.errors
    ));
    let kinds = error_kinds(live);
    if !kinds.is_empty() {
        text.push_str(&format!(" ({kinds})"));
    }
    text
}

/// The terminal view, a few lines under the progress bar (in the spirit of oha): where the run is, this
/// second, the run so far, devices and sessions, errors by kind.
fn view(live: &Live, f: &Frame) -> String {
    let mut lines = vec![
        format!(
            "{:.1}s of {:.0}s  phase {}",
            f.elapsed.as_secs_f64(),
            f.total.as_secs_f64(),
            f.phase
        ),
        format!("now      {:>9.0} req/s  {}", f.rate, percentiles(f.now)),
        format!(
            "run      {:>9} done   {}  max {}",
            live.completed,
            percentiles(run_percentiles(live)),
            if live.completed > live.errors {
                human_us(live.max_us)
            } else {
                "–".into()
            }
        ),
    ];
    let mut devices = format!("devices  {:>9} active", live.active_devices);
    if f.dtls {
        devices.push_str(&format!("  {} DTLS sessions", live.dtls_sessions));
    }
    lines.push(devices);
    let kinds = error_kinds(live);
    lines.push(if kinds.is_empty() {
        format!("errors   {:>9}", live.errors)
    } else {
        format!("errors   {:>9}  {kinds}", live.errors)
    });
    lines.join("\n")
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
                indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}%\n{msg}")
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
            let frame = Frame::of(&live, now, prev, &plan);
            prev = now;
            match &bar {
                Some(b) => {
                    b.set_position(
                        (start.elapsed().as_millis() as u64).min(total.as_millis() as u64),
                    );
                    b.set_message(view(&live, &frame));
                }
                None => eprintln!("{}", line(&live, &frame)),
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
    use crate::metrics::SecondSoFar;
    use crate::scenario::{parse, Overrides};
    use std::path::Path;

    fn plan() -> RunPlan {
        parse(
            "target: embedded\ndevices:\n  count: 10\nphases:\n  - name: warm\n    duration: 2s\n    interval: 1s\n  \
             - name: steady\n    duration: 8s\n    interval: 1s\n",
            Path::new("t.yaml"),
            Path::new("."),
            "t",
            &Overrides::default(),
        )
        .unwrap()
    }

    fn live() -> Live {
        let mut live = Live {
            completed: 1500,
            ok: 1497,
            errors: 3,
            p50_us: 70,
            p99_us: 1200,
            max_us: 4_000,
            active_devices: 10,
            current: Some(SecondSoFar {
                t: 2,
                requests: 400,
                errors: 1,
                p50_us: 65,
                p99_us: 900,
            }),
            ..Default::default()
        };
        live.outcomes.add(Outcome::Ok, 1497);
        live.outcomes.add(Outcome::Timeout, 2);
        live.outcomes.add(Outcome::Reset, 1);
        live
    }

    fn at(ms: u64, completed: u64) -> Progress {
        Progress {
            elapsed: Duration::from_millis(ms),
            completed,
        }
    }

    #[test]
    fn line_shows_phase_current_rate_this_seconds_percentiles_devices_and_errors_by_kind() {
        let (plan, live) = (plan(), live());
        let frame = |now, prev| Frame::of(&live, now, prev, &plan);
        assert_eq!(
            line(&live, &frame(at(2600, 1500), at(2100, 1000))),
            "  2.6s/10s  steady  1000 req/s  p50 65µs p99 900µs this second  (run p50 70µs p99 1.20ms)  \
             devices 10  completed 1500  ok 1497  errors 3 (timeout 2, reset 1)"
        );
        // Before any second has closed, the rate is already the one since the start.
        assert!(
            line(&live, &frame(at(500, 100), Progress::default())).contains("  warm  200 req/s  ")
        );
        // Second 2 is still "now" early in second 3 (batches arrive late); not in second 4.
        assert!(line(&live, &frame(at(3200, 1500), at(2700, 1500)))
            .contains("p50 65µs p99 900µs this second"));
        let later = line(&live, &frame(at(10_500, 1500), at(10_000, 1500)));
        assert!(
            later.contains("  drain  0 req/s  p50 – p99 – this second  (run p50 70µs p99 1.20ms)"),
            "{later}"
        );
    }

    #[test]
    fn nothing_measured_yet_shows_dashes_not_zeros() {
        let plan = plan();
        let live = Live::default();
        let f = Frame::of(&live, at(300, 0), Progress::default(), &plan);
        assert_eq!(
            line(&live, &f),
            "  0.3s/10s  warm  0 req/s  p50 – p99 – this second  (run p50 – p99 –)  devices 0  completed 0  ok 0  \
             errors 0"
        );
        assert!(view(&live, &f).contains("max –"));
    }

    #[test]
    fn terminal_view_is_a_few_aligned_lines() {
        let (plan, mut live) = (plan(), live());
        live.dtls_sessions = 9;
        let mut f = Frame::of(&live, at(2600, 1500), at(2100, 1000), &plan);
        assert_eq!(
            view(&live, &f),
            "2.6s of 10s  phase steady\n\
             now           1000 req/s  p50 65µs p99 900µs\n\
             run           1500 done   p50 70µs p99 1.20ms  max 4.00ms\n\
             devices         10 active\n\
             errors           3  timeout 2, reset 1"
        );
        f.dtls = true;
        assert!(view(&live, &f).contains("devices         10 active  9 DTLS sessions\n"));
        assert!(line(&live, &f).contains("devices 10 (sessions 9)"));
    }
}
