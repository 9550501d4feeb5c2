//! The load phases: one task per device, one collector, live progress.

use super::device::{self, DeviceTally};
use super::progress::{self, ProgressMode};
use crate::metrics::export::RunMetrics;
use crate::metrics::{Aggregate, Collector};
use crate::scenario::RunPlan;
use crate::transport::dtls::ClientSettings;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What the load phases measured.
pub struct Measured {
    pub agg: Aggregate,
    pub devices: Vec<DeviceTally>,
    pub elapsed: Duration,
    /// The threshold that stopped the run early (`abort_on_fail`), and what was observed.
    pub aborted: Option<String>,
}

/// What the devices present over DTLS: the fleet's settings, and each device's own client certificate when
/// devices have their own (by this run's device index).
#[derive(Default)]
pub struct DeviceTls {
    pub settings: Option<Arc<ClientSettings>>,
    pub client_certs: Option<Arc<[Option<dtls::crypto::Certificate>]>>,
}

const SECOND: Duration = Duration::from_secs(1);

pub async fn run(
    plan: Arc<RunPlan>,
    target: SocketAddr,
    tls: DeviceTls,
    progress_mode: ProgressMode,
    cancel: CancellationToken,
    t0: Instant,
    live_metrics: Option<Arc<RunMetrics>>,
) -> Measured {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut collector = Collector::new(plan.phases.len());
    let phase_marker = live_metrics.clone().map(|m| {
        collector.export_to(m.clone());
        tokio::spawn(mark_phases(plan.clone(), t0, m))
    });
    let live = collector.live();
    let collector_task = tokio::spawn(async move {
        // Once a second, on the second: the active devices and sessions as that second ended.
        let mut tick = tokio::time::interval_at((t0 + SECOND).into(), SECOND);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                batch = rx.recv() => match batch {
                    Some(batch) => collector.record_batch(&batch),
                    None => break,
                },
                at = tick.tick() => {
                    let ended = at.into_std().saturating_duration_since(t0).as_millis() as u64;
                    collector.sample_gauges(((ended + 500) / 1000).saturating_sub(1));
                }
            }
        }
        collector
    });

    let cancel_for_abort = cancel.clone();
    let DeviceTls {
        settings: dtls,
        client_certs,
    } = tls;
    let shared = Arc::new(device::Shared {
        plan: plan.clone(),
        target,
        t0,
        hard_end: t0 + plan.total_duration() + plan.drain,
        tx,
        cancel,
        reconnects: plan
            .devices
            .connect_rate
            .map(super::reconnect::ReconnectPacer::new),
        churn: dtls
            .is_some()
            .then(|| plan.dtls.as_ref().and_then(|d| d.client.rehandshake_every))
            .flatten(),
        dtls,
        client_certs,
        alarms: super::alarm::Alarms::start(),
        live_metrics: live_metrics.clone(),
        live: live.clone(),
    });
    let stop_progress = CancellationToken::new();
    let watch = super::abort::spawn(
        plan.clone(),
        live.clone(),
        cancel_for_abort,
        stop_progress.clone(),
    );
    let progress = progress::spawn(progress_mode, live, plan.clone(), stop_progress.clone());
    let handles: Vec<_> = (0..plan.devices.count)
        .map(|i| tokio::spawn(device::run(shared.clone(), i)))
        .collect();
    drop(shared);
    let mut devices = Vec::with_capacity(handles.len());
    for h in handles {
        devices.push(h.await.expect("device task panicked"));
    }
    let elapsed = t0.elapsed();
    let collector = collector_task.await.expect("collector task panicked");
    stop_progress.cancel();
    if let Some(p) = progress {
        let _ = p.await;
    }
    let aborted = watch.await.unwrap_or(None);
    if let (Some(task), Some(m)) = (phase_marker, &live_metrics) {
        task.abort();
        m.set_phase(&phase_names(&plan), None);
    }
    Measured {
        agg: collector.finish(elapsed.as_secs_f64().ceil() as u64),
        devices,
        elapsed,
        aborted,
    }
}

fn phase_names(plan: &RunPlan) -> Vec<String> {
    plan.phases.iter().map(|p| p.name.clone()).collect()
}

/// Sets the live `phase` gauge as each phase begins (none once the last has ended).
async fn mark_phases(plan: Arc<RunPlan>, t0: Instant, m: Arc<RunMetrics>) {
    let names = phase_names(&plan);
    for (i, phase) in plan.phases.iter().enumerate() {
        tokio::time::sleep_until((t0 + phase.start).into()).await;
        m.set_phase(&names, Some(i));
    }
    tokio::time::sleep_until((t0 + plan.total_duration()).into()).await;
    m.set_phase(&names, None);
}
