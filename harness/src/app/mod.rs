//! The composition root: the one module that knows the scenario, the engine, the embedded server and the
//! report together. It checks limits, prepares credentials, runs the trust cases (one embedded server per case),
//! starts the embedded target, drives the engine, settles, and assembles the [`Report`]. `commands` holds the
//! command-line handlers `cli` calls.

pub mod assemble;
pub mod cases;
pub mod commands;
pub mod device_trust;
pub mod embedded;
pub mod limits;
pub mod machine;
pub mod metrics_http;
pub mod prepare;
pub mod probe_device;

pub use commands::execute;

use crate::engine::conformance::EmbeddedTarget;
use crate::engine::{conformance, load, monitor, start, DeviceTally, ProgressMode};
use crate::report::Report;
use crate::scenario::{RunPlan, Target};
use crate::server::{self, ServerHandle};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::SystemTime;
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
    /// More device sockets per source address than the kernel has ephemeral ports.
    #[error(
        "{per_address} device sockets per source address, but the kernel hands out only {ports} local ports \
         (net.ipv4.ip_local_port_range): spread devices over more addresses with devices.bind \
         (e.g. [127.0.0.2, 127.0.0.3] on loopback), or lower devices.count"
    )]
    TooManyPerAddress { per_address: u64, ports: u64 },
    /// The embedded target server did not start.
    #[error("embedded server: {0}")]
    Server(#[from] server::ServerError),
    /// The run's PKI could not be generated or loaded.
    #[error("{0}")]
    Pki(#[from] crate::pki::PkiError),
    /// A certificate, key or trust setting is not usable.
    #[error("{0}")]
    Credentials(String),
    /// The fault-injection proxy (`faults:`) could not bind its sockets.
    #[error("fault-injection proxy: {0}")]
    Faults(std::io::Error),
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub progress: ProgressMode,
    /// Cancel to stop the run early; what was measured is still reported.
    pub cancel: CancellationToken,
    /// Live metrics the load feeds (`run --metrics`), served by [`metrics_http`].
    pub metrics: Option<Arc<crate::metrics::export::RunMetrics>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            progress: ProgressMode::Off,
            cancel: CancellationToken::new(),
            metrics: None,
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
    /// What the fault-injection proxy did, when the plan has `faults:`.
    pub faults: Option<crate::faults::ProxyStats>,
}

/// Runs a plan to completion (or cancellation).
pub async fn run(plan: Arc<RunPlan>, opts: RunOptions) -> Result<RunOutput, EngineError> {
    let limit = limits::raise_nofile();
    let peak = plan.peak_devices();
    let embedded = matches!(plan.target, Target::Embedded { .. });
    if let Err((needed, limit)) = limits::check(u64::from(peak), 2 * u64::from(embedded), limit) {
        return Err(EngineError::TooManyDevices {
            devices: peak,
            needed,
            limit,
        });
    }
    if let Some(ports) = limits::ephemeral_ports() {
        limits::check_ports(u64::from(peak), plan.devices.bind.len(), ports)
            .map_err(|per_address| EngineError::TooManyPerAddress { per_address, ports })?;
    }
    let run_pki = prepare::pki(&plan)?;
    let default_name = prepare::default_server_name(&plan);
    let dtls = match &plan.dtls {
        Some(d) => Some(Arc::new(prepare::client_settings(
            &d.client,
            run_pki.as_ref(),
            &default_name,
        )?)),
        None => None,
    };
    let client_certs = prepare::device_certificates(&plan, run_pki.as_ref())?.map(Arc::from);
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();

    let device_trust = match &plan.device_trust {
        Some(d) => device_trust::run_all(d).await?,
        None => Vec::new(),
    };
    let cases::CaseResults {
        results: trust_cases,
        findings,
    } = cases::run_all(&plan, run_pki.as_ref()).await?;

    let server: Option<ServerHandle> = match &plan.target {
        Target::Embedded { .. } if !plan.phases.is_empty() || !plan.conformance.is_empty() => {
            let identity = plan.dtls.as_ref().map(|d| &d.server);
            Some(embedded::start(&plan, identity, run_pki.as_ref()).await?)
        }
        _ => None,
    };
    let server_started = server.is_some();
    let target = match (&plan.target, &server) {
        (Target::Remote { addr, .. }, _) => *addr,
        (_, Some(s)) => embedded::device_target(s, dtls.is_some()),
        (_, None) => ([127, 0, 0, 1], 0).into(),
    };
    let conformance = conformance::run_all(
        &plan,
        target,
        dtls.as_deref(),
        server.as_ref().map(|s| s as &dyn EmbeddedTarget),
    )
    .await;
    // What the conformance cases left on the server, so the load's accounting counts only its own.
    let server_before = server.as_ref().map(ServerHandle::devices);
    // Devices start a moment from now (or at --start-at), all measured from the same instant.
    let (t0, load_started_at_ms) = start::wait(&plan, &opts.cancel).await;
    if let (
        Target::Embedded {
            stall: Some((at, length)),
            ..
        },
        Some(s),
    ) = (&plan.target, &server)
    {
        s.stall(t0 + *at, *length);
    }
    // A reconnect storm: every DTLS session dropped at once, as by a server restart.
    if let (
        Target::Embedded {
            restart: Some((at, down)),
            ..
        },
        Some(s),
    ) = (&plan.target, &server)
    {
        s.restart_dtls_at(t0 + *at, *down);
    }
    // With `faults:`, devices send to a proxy that loses, duplicates, reorders and delays on the way.
    let proxy = match &plan.faults {
        Some(f) if !plan.phases.is_empty() => Some(
            crate::faults::FaultProxy::start(target, f)
                .await
                .map_err(EngineError::Faults)?,
        ),
        _ => None,
    };
    let device_target = proxy.as_ref().map_or(target, |p| p.local_addr());
    let monitor = (!plan.phases.is_empty()).then(|| monitor::Monitor::start(server.is_some()));
    // A stop signal cancels the parent; a lost abort_on_fail threshold cancels only this run's child token.
    let measured = load::run(
        plan.clone(),
        device_target,
        load::DeviceTls {
            settings: dtls,
            client_certs,
        },
        opts.progress,
        opts.cancel.child_token(),
        t0,
        opts.metrics.clone(),
    )
    .await;
    let faults = match proxy {
        Some(p) => Some(p.stop().await),
        None => None,
    };
    let generator = monitor.map(monitor::Monitor::finish);

    if let Some(s) = &server {
        settle(s).await;
    }
    let server_devices = server.as_ref().map(ServerHandle::devices);
    let server_stats = server
        .as_ref()
        .map(|s| assemble::server_counters(&s.stats(), s.dtls_stats().as_ref()));
    if let Some(s) = server {
        s.shutdown().await;
    }
    // An embedded target with neither load nor conformance cases started no server: no address to name.
    let target_used =
        (matches!(plan.target, Target::Remote { .. }) || server_started).then_some(target);
    let parts = assemble::Parts {
        started_at,
        target: target_used,
        interrupted: opts.cancel.is_cancelled(),
        measured,
        trust_cases,
        device_trust,
        conformance,
        server_stats,
        server_before,
        server_devices,
        load_started_at_ms,
        generator,
    };
    let mut report = assemble::report(&plan, &parts);
    // What a server accepted that it should not have: shown with the warnings, not only in the case's row.
    report.warnings.extend(findings);
    if let (Some(f), Some(stats)) = (&plan.faults, &faults) {
        report
            .warnings
            .push(format!("faults injected ({}): {stats}", f.describe()));
    }
    Ok(RunOutput {
        report,
        faults,
        devices: parts.measured.devices,
        server_devices: parts.server_devices,
    })
}

/// Waits (at most half a second) until the embedded server has stopped receiving: the devices' last ACKs
/// are still in flight when their tasks end, and the server's counters should include them.
async fn settle(s: &ServerHandle) {
    let mut last = s.stats().datagrams_received;
    for _ in 0..25 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let now = s.stats().datagrams_received;
        if now == last {
            return;
        }
        last = now;
    }
}

/// The engine's conformance cases push updates and read RPC replies through the embedded server's handle.
impl EmbeddedTarget for ServerHandle {
    fn push_shared_attributes(&self, token: &str, attributes: Map<String, Value>) -> usize {
        ServerHandle::push_shared_attributes(self, token, attributes)
    }

    fn push_rpc(&self, token: &str, method: &str, params: Value) -> Option<u64> {
        ServerHandle::push_rpc(self, token, method, params)
    }

    fn rpc_reply(&self, token: &str, id: u64) -> Option<Value> {
        ServerHandle::rpc_reply(self, token, id)
    }
}
