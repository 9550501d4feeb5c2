//! Live progress while a run goes: a bar on a terminal, a plain line every few seconds otherwise (CI logs).

use crate::checks::human_us;
use crate::metrics::Live;
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

fn line(live: &Live, elapsed: Duration, total: Duration) -> String {
    let (rps, p99) = live
        .last
        .as_ref()
        .map_or((0, 0), |p| (p.requests, p.p99_us));
    format!(
        "{:>5.1}s/{:.0}s  completed {}  ok {}  errors {}  last second: {} req/s, p99 {}",
        elapsed.as_secs_f64(),
        total.as_secs_f64(),
        live.completed,
        live.ok,
        live.errors,
        rps,
        human_us(p99)
    )
}

/// Starts the display; it stops when `stop` is cancelled.
pub fn spawn(
    mode: ProgressMode,
    live: Arc<Mutex<Live>>,
    total: Duration,
    stop: CancellationToken,
) -> Option<JoinHandle<()>> {
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
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let text = line(&live.lock().expect("live lock"), start.elapsed(), total);
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
