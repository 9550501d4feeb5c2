//! The engine: turns a [`RunPlan`] into a measured run. Starts the embedded target when asked, spawns one
//! task per device (each its own socket), feeds their batches to one collector, and builds the [`Report`].

pub mod device;
pub mod limits;
pub mod pacer;
pub mod progress;

pub use device::DeviceTally;
pub use progress::ProgressMode;

use crate::metrics::Collector;
use crate::report::model::{
    DeviceInfo, PhaseReport, ProtocolCounters, RequestStats, ScenarioInfo, TargetInfo,
    SCHEMA_VERSION,
};
use crate::report::{Check, Report};
use crate::scenario::plan::TokenSource;
use crate::scenario::{Pacing, RunPlan, Target};
use crate::server::{self, ServerConfig, ServerHandle, TokenPolicy};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

/// Why a run could not start. Once devices run, problems become outcomes in the report instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// More sockets than the open-files limit allows.
    #[error(
        "{devices} devices need {needed} open files, but the limit is {limit} (ulimit -n; the hard limit \
         cannot be raised by this process): lower devices.count"
    )]
    TooManyDevices {
        devices: u32,
        needed: u64,
        limit: u64,
    },
    /// The embedded target server did not start.
    #[error("embedded server: {0}")]
    Server(#[from] server::ServerError),
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub progress: ProgressMode,
    /// Cancel to stop the run early; what was measured is still reported.
    pub cancel: CancellationToken,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            progress: ProgressMode::Off,
            cancel: CancellationToken::new(),
        }
    }
}

/// A finished run.
#[derive(Debug)]
pub struct RunOutput {
    pub report: Report,
    /// Each device's own tally, by index.
    pub devices: Vec<DeviceTally>,
    /// The embedded server's per-device state, when the target was embedded.
    pub server_devices: Option<Vec<server::DeviceSnapshot>>,
}

/// Runs a plan to completion (or cancellation).
pub async fn run(plan: Arc<RunPlan>, opts: RunOptions) -> Result<RunOutput, EngineError> {
    let limit = limits::raise_nofile();
    let peak = plan.peak_devices();
    let embedded = matches!(plan.target, Target::Embedded { .. });
    if let Err((needed, limit)) = limits::check(u64::from(peak), u64::from(embedded), limit) {
        return Err(EngineError::TooManyDevices {
            devices: peak,
            needed,
            limit,
        });
    }

    let server = match &plan.target {
        Target::Embedded {
            response_delay,
            any_token,
        } => Some(
            server::start(ServerConfig {
                bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                tokens: token_policy(&plan, *any_token),
                response_delay: *response_delay,
            })
            .await?,
        ),
        Target::Remote { .. } => None,
    };
    let target = match (&plan.target, &server) {
        (Target::Remote { addr, .. }, _) => *addr,
        (_, Some(s)) => s.local_addr(),
        _ => unreachable!("embedded target has a server"),
    };

    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut collector = Collector::new(plan.phases.len());
    let live = collector.live();
    let collector_task = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            collector.record_batch(&batch);
        }
        collector
    });

    let t0 = Instant::now() + Duration::from_millis(50);
    let shared = Arc::new(device::Shared {
        plan: plan.clone(),
        target,
        t0,
        hard_end: t0 + plan.total_duration() + plan.drain,
        tx,
        cancel: opts.cancel.clone(),
    });
    let stop_progress = CancellationToken::new();
    let progress = progress::spawn(
        opts.progress,
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
    let agg = collector.finish(elapsed.as_secs_f64().ceil() as u64);

    let server_devices = server.as_ref().map(ServerHandle::devices);
    let server_stats = server.as_ref().map(ServerHandle::stats);
    if let Some(s) = server {
        s.shutdown().await;
    }

    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        harness_version: env!("CARGO_PKG_VERSION").into(),
        scenario: ScenarioInfo {
            name: plan.name.clone(),
            file: plan.source.as_ref().map(|p| p.display().to_string()),
            seed: plan.seed,
            request: describe_request(&plan),
        },
        target: TargetInfo {
            url: plan.target.describe(),
            address: target.to_string(),
            transport: "coap".into(),
        },
        started_at,
        duration_s: round3(elapsed.as_secs_f64()),
        interrupted: opts.cancel.is_cancelled(),
        devices: DeviceInfo {
            count: plan.devices.count,
            started: devices.iter().filter(|d| d.started).count() as u32,
            failed: devices.iter().filter(|d| d.socket_error.is_some()).count() as u32,
            first_failure: devices.iter().find_map(|d| d.socket_error.clone()),
        },
        phases: plan
            .phases
            .iter()
            .zip(&agg.phases)
            .map(|(p, a)| PhaseReport {
                name: p.name.clone(),
                start_s: p.start.as_secs_f64(),
                duration_s: p.duration.as_secs_f64(),
                devices: p.devices_to,
                pacing: describe_pacing(p.pacing),
                requests: RequestStats::from_agg(a, p.duration.as_secs_f64()),
            })
            .collect(),
        total: RequestStats::from_agg(&agg.total, plan.total_duration().as_secs_f64()),
        timeseries: Report::series(&agg),
        checks: Vec::new(),
        warnings: Vec::new(),
        protocol: ProtocolCounters {
            malformed_datagrams: devices.iter().map(|d| d.malformed).sum(),
            unmatched: devices.iter().map(|d| d.unmatched).sum(),
            duplicates: devices.iter().map(|d| d.duplicates).sum(),
            first_malformed: devices.iter().find_map(|d| d.first_malformed.clone()),
        },
        server: server_stats.map(|s| serde_json::to_value(s).unwrap_or_default()),
    };
    if report.devices.failed > 0 {
        report.warnings.push(format!(
            "{} devices could not open a socket (first: {})",
            report.devices.failed,
            report.devices.first_failure.as_deref().unwrap_or("?")
        ));
    }
    if let Some(sd) = &server_devices {
        if let Some(check) = accounting_check(&plan, &devices, sd) {
            report.checks.push(check);
        }
    }
    Ok(RunOutput {
        report,
        devices,
        server_devices,
    })
}

fn token_policy(plan: &RunPlan, any: bool) -> TokenPolicy {
    if any {
        return TokenPolicy::Any;
    }
    match &plan.devices.tokens {
        TokenSource::Pattern(p) => TokenPolicy::Pattern {
            pattern: p.clone(),
            count: u64::from(plan.devices.count),
        },
        TokenSource::List(l) => TokenPolicy::List(l.iter().cloned().collect()),
    }
}

/// For telemetry posts to the embedded server: every acknowledged message arrived, device by device.
fn accounting_check(
    plan: &RunPlan,
    devices: &[DeviceTally],
    server: &[server::DeviceSnapshot],
) -> Option<Check> {
    if plan.request.method != crate::coap::Code::POST || plan.request.operation != "telemetry" {
        return None;
    }
    let seen: std::collections::HashMap<&str, u64> = server
        .iter()
        .map(|d| (d.token.as_str(), d.messages))
        .collect();
    let mut mismatched = 0u64;
    let mut first = None;
    for d in devices.iter().filter(|d| d.started) {
        let got = seen.get(d.token.as_str()).copied().unwrap_or(0);
        // The server may count a message whose response was lost; it may never count fewer.
        if got < d.ok || got > d.sent {
            mismatched += 1;
            first.get_or_insert_with(|| {
                format!(
                    "{}: {} acknowledged, {} sent, server counted {got}",
                    d.token, d.ok, d.sent
                )
            });
        }
    }
    let started = devices.iter().filter(|d| d.started).count();
    Some(Check {
        name: "embedded server received every acknowledged message".into(),
        passed: mismatched == 0,
        expected: format!("for each of {started} devices: acknowledged <= server count <= sent"),
        observed: match first {
            None => format!("{started} devices consistent"),
            Some(f) => format!("{mismatched} devices inconsistent, first {f}"),
        },
    })
}

fn describe_request(plan: &RunPlan) -> String {
    let r = &plan.request;
    let path: Vec<&str> = r
        .path
        .iter()
        .map(|s| s.as_deref().unwrap_or("{token}"))
        .collect();
    format!(
        "{} {} /{}",
        r.mtype,
        r.method.method_name().unwrap_or("?"),
        path.join("/")
    )
}

fn describe_pacing(p: Pacing) -> String {
    match p {
        Pacing::Interval(d) => format!("every {} per device", humantime::format_duration(d)),
        Pacing::Rate(r) => format!("{r}/s total"),
        Pacing::Closed { think } => {
            format!("closed loop, think {}", humantime::format_duration(think))
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
