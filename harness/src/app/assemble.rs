//! Builds the [`Report`] from what the run measured. The only place that knows both the engine's results and
//! the report's shape.

use crate::engine::device::{DeviceTally, HandshakeCause};
use crate::engine::load::Measured;
use crate::metrics::collector::latency_histogram;
use crate::report::model::{
    ConformanceResult, DeviceInfo, ExpectationSpec, GeneratorStats, HandshakePoint, HandshakeStats,
    Latency, PhaseReport, ProtocolCounters, RequestStats, ScenarioInfo, Security, ServerCounters,
    ShardChecks, ShardInfo, TargetInfo, TrustCaseResult, SCHEMA_VERSION,
};
use crate::report::{Check, Report};
use crate::scenario::{Pacing, RunPlan};
use crate::server::{DeviceSnapshot, DtlsStats, ServerStats};
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub struct Parts {
    pub started_at: String,
    /// Where the load and conformance cases went; `None` when nothing did (trust cases only, each against
    /// its own embedded server: their addresses are in their rows).
    pub target: Option<SocketAddr>,
    pub interrupted: bool,
    pub measured: Measured,
    pub trust_cases: Vec<TrustCaseResult>,
    pub device_trust: Vec<crate::report::model::DeviceTrustResult>,
    pub conformance: Vec<ConformanceResult>,
    pub server_stats: Option<ServerCounters>,
    /// The embedded server's devices before the load phases, and after.
    pub server_before: Option<Vec<DeviceSnapshot>>,
    pub server_devices: Option<Vec<DeviceSnapshot>>,
    /// When the load phases began, in milliseconds since the Unix epoch.
    pub load_started_at_ms: u64,
    /// The generator's own CPU and the host's UDP drops over the load phases.
    pub generator: Option<GeneratorStats>,
}

/// The embedded server's counters as the report carries them: its own, and its DTLS listener's under `dtls`.
pub fn server_counters(stats: &ServerStats, dtls: Option<&DtlsStats>) -> ServerCounters {
    serde_json::from_value(server_json(stats, dtls)).expect("server counters read as the report's")
}

/// The counters as one JSON object (how report.json has always carried them).
fn server_json(stats: &ServerStats, dtls: Option<&DtlsStats>) -> serde_json::Value {
    let mut v = serde_json::to_value(stats).expect("server counters serialize");
    if let (Some(d), Some(obj)) = (dtls, v.as_object_mut()) {
        obj.insert(
            "dtls".into(),
            serde_json::to_value(d).expect("DTLS counters serialize"),
        );
    }
    v
}

pub fn report(plan: &RunPlan, p: &Parts) -> Report {
    let devices = &p.measured.devices;
    let agg = &p.measured.agg;
    // Rates are over the time the load actually ran: a run stopped early (signal or abort_on_fail) did not
    // last its planned duration, and dividing by it would understate every rate.
    let stopped_early = p.interrupted || p.measured.aborted.is_some();
    let ran = p.measured.elapsed.as_secs_f64();
    let span = |start: f64, planned: f64| {
        if stopped_early {
            (ran - start).clamp(0.0, planned)
        } else {
            planned
        }
    };
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        harness_version: env!("CARGO_PKG_VERSION").into(),
        scenario: ScenarioInfo {
            name: plan.name.clone(),
            file: plan.source.as_ref().map(|p| p.display().to_string()),
            seed: plan.seed,
            request: plan.request.describe(plan.request.mtype),
        },
        target: TargetInfo {
            url: plan.target.describe(),
            address: p.target.map_or_else(
                || "one embedded server per trust case".into(),
                |a| a.to_string(),
            ),
            transport: if plan.dtls.is_some() { "dtls" } else { "coap" }.into(),
        },
        started_at: p.started_at.clone(),
        duration_s: round3(p.measured.elapsed.as_secs_f64()),
        interrupted: p.interrupted,
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
            .map(|(ph, a)| PhaseReport {
                name: ph.name.clone(),
                start_s: ph.start.as_secs_f64(),
                duration_s: ph.duration.as_secs_f64(),
                devices: ph.devices_to,
                pacing: describe_pacing(ph.pacing),
                requests: RequestStats::from_agg(
                    a,
                    span(ph.start.as_secs_f64(), ph.duration.as_secs_f64()),
                ),
            })
            .collect(),
        total: RequestStats::from_agg(&agg.total, span(0.0, plan.total_duration().as_secs_f64())),
        timeseries: Report::series(agg),
        checks: Vec::new(),
        warnings: Vec::new(),
        protocol: ProtocolCounters {
            malformed_datagrams: devices.iter().map(|d| d.malformed).sum(),
            unmatched: devices.iter().map(|d| d.unmatched).sum(),
            duplicates: devices.iter().map(|d| d.duplicates).sum(),
            first_malformed: devices.iter().find_map(|d| d.first_malformed.clone()),
        },
        security: security(plan, devices, p.device_trust.len()),
        handshakes: handshakes(devices),
        trust_cases: p.trust_cases.clone(),
        device_trust: p.device_trust.clone(),
        conformance: p.conformance.clone(),
        server: p.server_stats.clone(),
        load_started_at_ms: Some(p.load_started_at_ms),
        shard: plan.shard.as_ref().map(|s| shard_info(plan, s)),
        merged: None,
        partial: false,
        generator: p.generator.clone(),
        machine: Some(super::machine::describe()),
        verdict: None,
        recovery: None,
        latency_per_second: Report::latency_per_second(agg),
    };
    report.recovery = crate::report::recovery::of_report(&report);
    if report.devices.failed > 0 {
        report.warnings.push(format!(
            "{} devices could not open a socket (first: {})",
            report.devices.failed,
            report.devices.first_failure.as_deref().unwrap_or("?")
        ));
    }
    if let Some(why) = &p.measured.aborted {
        report
            .warnings
            .insert(0, format!("run aborted early: {why}"));
        report.checks.push(Check {
            name: "run not aborted by a threshold".into(),
            passed: false,
            expected: "every abort_on_fail threshold holds until the end".into(),
            observed: why.clone(),
        });
    }
    if report.security.insecure {
        report.warnings.insert(
            0,
            "INSECURE: the load devices ran with certificate verification disabled (ca: none); nothing proved \
             the server's identity"
                .into(),
        );
    }
    // A run stopped early sent less than its schedule because it was stopped, not because of NSTART or the
    // generator.
    if !stopped_early {
        report.warnings.extend(generator_warnings(plan, &report));
    }
    report.warnings.extend(resource_warnings(&report));
    report
        .warnings
        .extend(crate::report::lag::send_lag_warning(&report.total));
    if let Some(h) = &report.handshakes {
        if h.failed > 0 {
            report.warnings.push(format!(
                "{} of {} DTLS handshakes failed (first: {})",
                h.failed,
                h.attempted,
                h.first_failure.as_deref().unwrap_or("?")
            ));
        }
    }
    if plan.require_dtls {
        report.checks.push(require_dtls_check(&report.security));
    }
    for case in &p.trust_cases {
        report.checks.push(Check {
            name: format!("trust case: {}", case.name),
            passed: case.passed,
            expected: case.expected.clone(),
            observed: case.observed.clone(),
        });
    }
    for case in &p.device_trust {
        report.checks.push(Check {
            name: crate::report::device_trust::check_name(case),
            passed: case.passed,
            expected: case.expected.to_string(),
            observed: match &case.alert {
                Some(a) => format!("{} ({a})", case.verdict),
                None => case.verdict.to_string(),
            },
        });
    }
    for case in &p.conformance {
        if let Some(why) = &case.skipped {
            report
                .warnings
                .push(format!("conformance case `{}` skipped: {why}", case.name));
            continue;
        }
        report.checks.push(Check {
            name: format!("conformance: {}", case.name),
            passed: case.passed,
            expected: case.expected.clone(),
            observed: case.observed.clone(),
        });
    }
    if let Some(sd) = &p.server_devices {
        if let Some(check) =
            accounting_check(plan, devices, p.server_before.as_deref().unwrap_or(&[]), sd)
        {
            report.checks.push(check);
        }
    }
    if !plan.phases.is_empty() {
        report
            .checks
            .extend(expectation_checks(plan, &report, devices));
    }
    if let Some(s) = &plan.shard {
        // A shard's share of throughput or timeouts says nothing against a bound set for the whole run.
        report.warnings.push(format!(
            "shard {} of {} (devices {} of {}): thresholds are judged on the merged result (coap-harness merge)",
            s.shard,
            s.shard.count,
            plan.devices.count,
            s.scenario_devices
        ));
    }
    // A shard's thresholds are judged by `merge`.
    let judged = plan.shard.is_none();
    if let Some(h) = plan.health.filter(|_| judged && !plan.phases.is_empty()) {
        report
            .checks
            .push(crate::report::thresholds::judge_health(&h, &report.total));
    }
    for t in plan.thresholds.iter().filter(|_| judged) {
        report.checks.push(crate::report::thresholds::judge(
            t,
            "run",
            &report.total,
            report.handshakes.as_ref(),
        ));
    }
    for (phase, pr) in plan.phases.iter().zip(&report.phases) {
        for t in phase.thresholds.iter().filter(|_| judged) {
            let scope = format!("phase {}", phase.name);
            report.checks.push(crate::report::thresholds::judge(
                t,
                &scope,
                &pr.requests,
                None,
            ));
        }
    }
    report
}

/// Says plainly when the schedule was not kept, so nobody mistakes a late generator (or a server that held
/// every device's one request in flight) for a measured rate.
fn generator_warnings(plan: &RunPlan, report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    if report.interrupted {
        return out;
    }
    let Some(planned) = crate::engine::abort::planned_by_phase(plan) else {
        return out;
    };
    for ((phase, pr), want) in plan.phases.iter().zip(&report.phases).zip(planned) {
        let sent = pr.requests.sent;
        let lag = pr.requests.send_lag.p99_us;
        let interval_us = phase.interval().map_or(u64::MAX, |d| d.as_micros() as u64);
        if (sent as f64) < 0.95 * want as f64 || lag > interval_us.max(100_000) {
            let secs = phase.duration.as_secs_f64();
            out.push(format!(
                "phase {}: sent {sent} of {want} scheduled requests ({:.1}/s of {:.1}/s requested), send lag p99 {}: \
                 requests left late, because the server held each device's requests in flight (NSTART = {}) \
                 or because the generator was saturated; latency is still measured from the scheduled time",
                phase.name,
                sent as f64 / secs,
                want as f64 / secs,
                crate::report::model::human_us(lag),
                plan.transmission.nstart,
            ));
        }
    }
    out
}

/// Says when the generator's own machine was the limit: every core busy, or the kernel dropping datagrams.
fn resource_warnings(report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let Some(g) = &report.generator else {
        return out;
    };
    let cores = f64::from(g.cores.max(1));
    if g.cpu_busy_peak >= 0.9 * cores {
        out.push(format!(
            "generator CPU: {:.2} of {} cores busy in the busiest second ({:.2} on average){}: the generator's \
             machine may have limited the rate or added latency; compare achieved with requested rate and the \
             send lag",
            g.cpu_busy_peak,
            g.cores,
            g.cpu_busy_mean,
            if g.includes_embedded_server {
                ", the embedded server included"
            } else {
                ""
            }
        ));
    }
    if let Some(u) = g
        .kernel_udp
        .filter(|u| u.rcvbuf_errors > 0 || u.sndbuf_errors > 0)
    {
        out.push(format!(
            "the kernel dropped {} UDP datagrams for want of receive-buffer space and {} for want of send-buffer \
             space during the load (host-wide count): some timeouts may be this host's, not the server's; pace \
             connections (devices.connect_rate) or lower the rate",
            u.rcvbuf_errors, u.sndbuf_errors
        ));
    }
    out
}

/// One check per per-request expectation: every request is held to it.
fn expectation_checks(plan: &RunPlan, report: &Report, devices: &[DeviceTally]) -> Vec<Check> {
    let examples: Vec<&str> = devices
        .iter()
        .flat_map(|d| d.broken_examples.iter().map(String::as_str))
        .take(5)
        .collect();
    plan.expect
        .describe()
        .into_iter()
        .map(|(kind, text)| {
            crate::report::thresholds::judge_expectation(
                kind.name(),
                &text,
                &report.total,
                &examples,
            )
        })
        .collect()
}

/// What a shard report carries for `merge`: its place in the scenario and the scenario's checks as written.
fn shard_info(plan: &RunPlan, s: &crate::scenario::shard::ShardPlan) -> ShardInfo {
    ShardInfo {
        index: s.shard.index,
        count: s.shard.count,
        scenario_sha256: s.scenario_sha256.clone(),
        scenario_seed: s.scenario_seed,
        scenario_devices: s.scenario_devices,
        checks: ShardChecks {
            thresholds: plan.thresholds.iter().map(|t| t.text.clone()).collect(),
            phase_thresholds: plan
                .phases
                .iter()
                .map(|p| p.thresholds.iter().map(|t| t.text.clone()).collect())
                .collect(),
            expectations: plan
                .expect
                .describe()
                .into_iter()
                .map(|(kind, text)| ExpectationSpec {
                    kind: kind.name().into(),
                    text,
                })
                .collect(),
            health_max_error_rate: plan.health.map(|h| h.max_error_rate),
        },
    }
}

/// What a run without load or conformance traffic did: its cases, and who spoke DTLS to whom.
fn without_load(plan: &RunPlan, device_trust: usize) -> String {
    let mut did = Vec::new();
    if device_trust > 0 {
        did.push(format!(
            "{device_trust} device-trust cases over DTLS, the harness as the server"
        ));
    }
    if !plan.trust_cases.is_empty() {
        did.push(format!(
            "{} trust cases over DTLS, the harness as the client",
            plan.trust_cases.len()
        ));
    }
    if did.is_empty() {
        return "nothing was sent".into();
    }
    did.join("; ")
}

/// `require_dtls: true`: the load ran over DTLS and verified the server (by certificate or PSK).
fn require_dtls_check(sec: &Security) -> Check {
    Check {
        name: "security: DTLS required".into(),
        passed: !sec.plain() && !sec.insecure,
        expected: "the load over DTLS, the server verified".into(),
        observed: if sec.insecure {
            format!("{}: INSECURE, the server was not verified", sec.describe())
        } else {
            sec.describe()
        },
    }
}

/// The load traffic's security. Trust cases are left out on purpose: a case that probes `ca: none` says so in
/// its own row; the run is insecure only when its load ran without verifying the server.
fn security(plan: &RunPlan, devices: &[DeviceTally], device_trust: usize) -> Security {
    let Some(d) = &plan.dtls else {
        if plan.phases.is_empty() && plan.conformance.is_empty() {
            // Nothing went over plain CoAP: the run's cases were all it did, each over its own DTLS.
            return Security {
                transport: "none".into(),
                verification: "none".into(),
                no_load: Some(without_load(plan, device_trust)),
                ..Default::default()
            };
        }
        return Security {
            transport: "coap".into(),
            verification: "none".into(),
            ..Default::default()
        };
    };
    let c = &d.client;
    // Devices with their own PSKs (a CSV token file) verify the server by the key, as a scenario PSK does.
    let own_psk = plan.devices.count > 0
        && (0..plan.devices.count).all(|i| {
            plan.devices
                .credentials(i)
                .is_some_and(|cr| cr.psk.is_some())
        });
    let psk = c.psk.is_some() || own_psk;
    let load_insecure = !plan.phases.is_empty() && c.ca.is_none() && !psk;
    let handshake_insecure = devices.iter().any(|d| {
        d.handshake
            .as_ref()
            .is_some_and(|h| h.verdict == crate::trust::TrustVerdict::OkInsecure)
    });
    Security {
        transport: "dtls".into(),
        verification: match (&c.ca, psk) {
            (_, true) => "psk",
            (Some(_), false) => "certificate",
            (None, false) => "disabled",
        }
        .into(),
        insecure: load_insecure || handshake_insecure,
        ca: c.ca.as_ref().map(|r| r.to_string()),
        server_name: c.server_name.clone(),
        client_cert: c.client_cert.as_ref().map(|(cert, _)| cert.to_string()),
        cipher_suites: if c.cipher_suites.is_empty() {
            crate::transport::dtls::default_cipher_suites(psk)
        } else {
            c.cipher_suites.clone()
        }
        .iter()
        .map(|s| s.to_string())
        .collect(),
        no_load: None,
    }
}

fn handshakes(devices: &[DeviceTally]) -> Option<HandshakeStats> {
    let all: Vec<_> = devices
        .iter()
        .flat_map(|d| d.handshake.iter().chain(&d.rehandshakes))
        .collect();
    if all.is_empty() {
        return None;
    }
    let mut verdicts = BTreeMap::new();
    let mut hist = latency_histogram();
    let (mut full, mut resumed) = (latency_histogram(), latency_histogram());
    for h in &all {
        *verdicts.entry(h.verdict).or_insert(0) += 1;
        if h.verdict.connected() {
            let us = (h.elapsed.as_micros() as u64).max(1);
            hist.saturating_record(us);
            if h.resumed { &mut resumed } else { &mut full }.saturating_record(us);
        }
    }
    let ok = all.iter().filter(|h| h.verdict.connected()).count() as u64;
    let mut per_second: BTreeMap<u64, HandshakePoint> = BTreeMap::new();
    for h in &all {
        let t = h.at.as_secs();
        let second = per_second.entry(t).or_insert_with(|| HandshakePoint {
            t,
            ..Default::default()
        });
        if h.verdict.connected() {
            second.ok += 1;
        } else {
            second.failed += 1;
        }
        *second
            .verdicts
            .entry(h.verdict.name().to_string())
            .or_default() += 1;
    }
    let caused = |c: HandshakeCause| all.iter().filter(|h| h.cause == c).count() as u64;
    Some(HandshakeStats {
        attempted: all.len() as u64,
        ok,
        failed: all.len() as u64 - ok,
        verdicts,
        latency: Latency::from_histogram(&hist),
        first_failure: all
            .iter()
            .find(|h| !h.verdict.connected())
            .map(|h| format!("{}: {}", h.verdict, h.detail.as_deref().unwrap_or(""))),
        reconnects: caused(HandshakeCause::Reconnect),
        churn: caused(HandshakeCause::Churn),
        full: Some(Latency::from_histogram(&full)),
        resumed: Some(Latency::from_histogram(&resumed)),
        connection_id: all.iter().filter(|h| h.connection_id).count() as u64,
        per_second: per_second.into_values().collect(),
    })
}

/// For telemetry posts to the embedded server: every acknowledged message arrived, device by device.
fn accounting_check(
    plan: &RunPlan,
    devices: &[DeviceTally],
    before: &[DeviceSnapshot],
    server: &[DeviceSnapshot],
) -> Option<Check> {
    if plan.phases.is_empty()
        || plan.request.method != crate::coap::Code::POST
        || plan.request.operation != "telemetry"
    {
        return None;
    }
    let started: Vec<&DeviceTally> = devices.iter().filter(|d| d.started).collect();
    // A device that posts without a token (ThingsBoard X.509) is, on the server, whichever device its
    // certificate is registered as. Both sides are keyed by evidence, not by names: the harness by the
    // certificate each device presented, the server by the certificate each accepted post came with.
    // Devices that share one certificate are one device there, and are counted together.
    let tokenless = !plan.request.path.iter().any(Option::is_none);
    let Accounted {
        seen,
        key,
        mut problems,
    } = if tokenless {
        by_certificate(&started, before, server)
    } else {
        by_token(before, server)
    };
    let mut identities: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for d in &started {
        let e = identities.entry(key(d)).or_default();
        e.0 += d.ok;
        e.1 += d.sent;
    }
    let mut mismatched = 0u64;
    for (name, (ok, sent)) in &identities {
        let got = seen.get(name.as_str()).copied().unwrap_or(0);
        // The server may count a message whose response was lost; it may never count fewer.
        if got < *ok || got > *sent {
            mismatched += 1;
            problems.push(format!(
                "{name}: {ok} acknowledged, {sent} sent, server counted {got}"
            ));
        }
    }
    let whom = if identities.len() == started.len() {
        format!("{} devices", started.len())
    } else {
        format!(
            "{} server devices ({} devices)",
            identities.len(),
            started.len()
        )
    };
    let mapping = if tokenless {
        "; each certificate posting as one server device, no two as the same"
    } else {
        ""
    };
    Some(Check {
        name: "embedded server received every acknowledged message".into(),
        passed: problems.is_empty(),
        expected: format!("for each of {whom}: acknowledged <= server count <= sent{mapping}"),
        observed: match problems.first() {
            None => format!("{whom} consistent"),
            Some(f) if mismatched > 0 && mismatched as usize == problems.len() => {
                format!("{mismatched} devices inconsistent, first {f}")
            }
            Some(f) => format!("{} inconsistencies, first {f}", problems.len()),
        },
    })
}

/// What the server counted, keyed as the harness keys its devices.
struct Accounted {
    /// Messages the server counted during the load, by key.
    seen: std::collections::HashMap<String, u64>,
    /// A device's key.
    key: Box<dyn Fn(&DeviceTally) -> String>,
    /// What the server's records contradict beyond counts (a certificate taken for the wrong device).
    problems: Vec<String>,
}

/// Token devices: the server's device is the token in the path.
fn by_token(before: &[DeviceSnapshot], server: &[DeviceSnapshot]) -> Accounted {
    let earlier: std::collections::HashMap<&str, u64> = before
        .iter()
        .map(|d| (d.token.as_str(), d.messages))
        .collect();
    Accounted {
        seen: server
            .iter()
            .map(|d| {
                let t = d.token.as_str();
                (
                    t.to_string(),
                    d.messages - earlier.get(t).copied().unwrap_or(0),
                )
            })
            .collect(),
        key: Box::new(|d: &DeviceTally| d.token.clone()),
        problems: Vec::new(),
    }
}

/// X.509 devices: keyed by the SHA-256 of the certificate each device presented; the server says, per
/// device, which certificates posted as it. Besides the counts, the server's mapping must be one to one on
/// the certificates the harness presented: a certificate counted on two server devices, or two of the
/// harness's certificates on one server device (a device taken for another), is reported.
fn by_certificate(
    started: &[&DeviceTally],
    before: &[DeviceSnapshot],
    server: &[DeviceSnapshot],
) -> Accounted {
    let label = |hex: &str| format!("certificate sha256:{}", &hex[..hex.len().min(16)]);
    let earlier: std::collections::HashMap<(&str, &str), u64> = before
        .iter()
        .flat_map(|d| {
            d.certificates
                .iter()
                .map(move |(c, n)| ((d.token.as_str(), c.as_str()), *n))
        })
        .collect();
    // Certificate -> the server devices it posted as during the load, with their counts.
    let mut posted_as: BTreeMap<&str, Vec<(&str, u64)>> = BTreeMap::new();
    for d in server {
        for (cert, n) in &d.certificates {
            let was = earlier
                .get(&(d.token.as_str(), cert.as_str()))
                .copied()
                .unwrap_or(0);
            if *n > was {
                posted_as
                    .entry(cert.as_str())
                    .or_default()
                    .push((d.token.as_str(), n - was));
            }
        }
    }
    // The harness's certificates, each with the devices that presented it.
    let mut ours: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for d in started {
        if let Some(c) = &d.certificate {
            ours.entry(crate::server::cert_hex(c))
                .or_default()
                .push(d.index);
        }
    }
    let devices_of = |cert: &str| {
        let list: Vec<String> = ours
            .get(cert)
            .map(|v| v.iter().map(u32::to_string).collect())
            .unwrap_or_default();
        match list.len() {
            1 => format!("device {}", list[0]),
            _ => format!("devices {}", list.join(", ")),
        }
    };
    let mut problems = Vec::new();
    let mut certs_on: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (cert, on) in &posted_as {
        if !ours.contains_key(*cert) {
            continue;
        }
        if on.len() > 1 {
            let names: Vec<&str> = on.iter().map(|(n, _)| *n).collect();
            problems.push(format!(
                "the {} of {} posted as {} server devices: {}",
                label(cert),
                devices_of(cert),
                on.len(),
                names.join(", ")
            ));
        }
        for (name, _) in on {
            certs_on.entry(name).or_default().push(cert);
        }
    }
    for (name, certs) in &mut certs_on {
        certs.sort_by_key(|c| ours.get(*c).and_then(|v| v.first()).copied());
        if certs.len() > 1 {
            let whose: Vec<String> = certs
                .iter()
                .map(|c| format!("{} ({})", devices_of(c), label(c)))
                .collect();
            problems.push(format!(
                "server device `{name}` took the certificates of {} for one device",
                whose.join(" and ")
            ));
        }
    }
    let seen = posted_as
        .iter()
        .map(|(cert, on)| (label(cert), on.iter().map(|(_, n)| n).sum::<u64>()))
        .collect();
    Accounted {
        seen,
        key: Box::new(move |d: &DeviceTally| match &d.certificate {
            Some(c) => label(&crate::server::cert_hex(c)),
            None => format!("device {} (no certificate)", d.index),
        }),
        problems,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The report's `ServerCounters` name every counter of the server and of its DTLS listener: a counter
    /// added to one but not the other would vanish from report.json.
    #[test]
    fn server_counters_carry_every_server_counter() {
        let mut stats = ServerStats {
            requests: 7,
            ..Default::default()
        };
        stats.responses_by_code.add(crate::coap::Code::CREATED);
        let dtls = DtlsStats {
            handshakes_ok: 3,
            handshake_failures: [("timeout".to_string(), 1)].into(),
            last_failure: Some("failure".into()),
            last_alert: Some("alert".into()),
            ..Default::default()
        };
        for d in [None, Some(&dtls)] {
            let counters = server_counters(&stats, d);
            assert!(counters.newer.is_empty(), "{:?}", counters.newer);
            if let Some(d) = &counters.dtls {
                assert!(d.newer.is_empty(), "{:?}", d.newer);
            }
            let typed = serde_json::to_value(&counters).unwrap();
            assert_eq!(typed, server_json(&stats, d));
            // Byte for byte as written: the fields in the order report.json has them.
            assert_eq!(
                serde_json::to_string_pretty(&typed).unwrap(),
                serde_json::to_string_pretty(&server_counters(&stats, d)).unwrap()
            );
        }
    }

    /// The server's records contradict the harness's certificates both ways: one certificate counted on
    /// two server devices, and one server device holding two devices' certificates. Counts alone (4 sent,
    /// 4 counted for certificate A; 2 and 2 for B) would pass.
    #[test]
    fn certificate_accounting_flags_a_mapping_that_is_not_one_to_one() {
        let (a, b) = ([0xaa; 32], [0xbb; 32]);
        let device = |index, cert, sent| DeviceTally {
            index,
            started: true,
            sent,
            ok: sent,
            certificate: Some(cert),
            ..Default::default()
        };
        let started = [device(0, a, 4), device(1, b, 2)];
        let started: Vec<&DeviceTally> = started.iter().collect();
        let snapshot = |name: &str, certs: &[([u8; 32], u64)]| DeviceSnapshot {
            token: name.into(),
            messages: certs.iter().map(|(_, n)| n).sum(),
            attributes_posts: 0,
            attributes_reads: 0,
            rpc_posts: 0,
            claims: 0,
            certificates: certs
                .iter()
                .map(|(c, n)| (crate::server::cert_hex(c), *n))
                .collect(),
            last_payload: None,
            client_attributes: Default::default(),
            shared_attributes: Default::default(),
        };
        let server = [snapshot("x", &[(a, 3)]), snapshot("y", &[(a, 1), (b, 2)])];
        let accounted = by_certificate(&started, &[], &server);
        for d in &started {
            let key = (accounted.key)(d);
            assert_eq!(accounted.seen.get(&key), Some(&d.sent), "{key}");
        }
        let problems = accounted.problems.join("\n");
        assert!(
            problems.contains(
                "certificate sha256:aaaaaaaaaaaaaaaa of device 0 posted as 2 server devices: x, y"
            ),
            "{problems}"
        );
        assert!(
            problems.contains("server device `y` took the certificates of device 0 (certificate sha256:aaaaaaaaaaaaaaaa) and device 1 (certificate sha256:bbbbbbbbbbbbbbbb)"),
            "{problems}"
        );
        // The same counts on a one-to-one mapping: nothing to report.
        let server = [snapshot("x", &[(a, 4)]), snapshot("y", &[(b, 2)])];
        assert!(by_certificate(&started, &[], &server).problems.is_empty());
    }
}
