//! The load phases: one task per device, one collector, live progress.

use super::device::{self, DeviceTally};
use super::progress::{self, ProgressMode};
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

pub async fn run(
    plan: Arc<RunPlan>,
    target: SocketAddr,
    dtls: Option<Arc<ClientSettings>>,
    progress_mode: ProgressMode,
    cancel: CancellationToken,
    t0: Instant,
) -> Measured {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut collector = Collector::new(plan.phases.len());
    let live = collector.live();
    let collector_task = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            collector.record_batch(&batch);
        }
        collector
    });

    let cancel_for_abort = cancel.clone();
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
    });
    let stop_progress = CancellationToken::new();
    let watch = super::abort::spawn(
        plan.clone(),
        live.clone(),
        cancel_for_abort,
        stop_progress.clone(),
    );
    let progress = progress::spawn(
        progress_mode,
        live,
        plan.total_duration(),
        stop_progress.clone(),
    );
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
    Measured {
        agg: collector.finish(elapsed.as_secs_f64().ceil() as u64),
        devices,
        elapsed,
        aborted,
    }
}
