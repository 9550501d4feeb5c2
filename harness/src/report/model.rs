//! The report: one value every renderer reads. Serialized as report.json, it is the contract other tools
//! (and later versions of this one) consume, so fields are only ever added.

pub use crate::checks::human_us;
pub use crate::metrics::records::{ConformanceResult, GeneratorStats, KernelUdp};
use crate::metrics::{Aggregate, OutcomeCounts, PhaseAgg, SecondPoint};
use base64::Engine as _;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped when a field changes meaning or is removed.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Report {
    pub schema_version: u32,
    pub harness_version: String,
    pub scenario: ScenarioInfo,
    pub target: TargetInfo,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// Wall-clock length of the run, drain included.
    pub duration_s: f64,
    /// Stopped early (Ctrl-C): the figures cover what was measured until then.
    pub interrupted: bool,
    pub devices: DeviceInfo,
    pub phases: Vec<PhaseReport>,
    pub total: RequestStats,
    /// One point per second of the run, by completion time.
    pub timeseries: Vec<SeriesPoint>,
    pub checks: Vec<Check>,
    /// Things a reader must know that are not a check (a saturated generator, garbage from the server...).
    pub warnings: Vec<String>,
    /// What the devices saw besides request outcomes.
    pub protocol: ProtocolCounters,
    /// Transport security of the run: what was verified, and whether verification was disabled.
    #[serde(default)]
    pub security: Security,
    /// DTLS handshakes of the load devices, when the run used DTLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshakes: Option<HandshakeStats>,
    /// Trust cases: one DTLS handshake each, with its expectation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_cases: Vec<TrustCaseResult>,
    /// Device-side trust cases: which certificates the device under test accepted from a rogue server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_trust: Vec<DeviceTrustResult>,
    /// Device-API conformance cases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conformance: Vec<ConformanceResult>,
    /// When the load phases began (the instant `timeseries` counts from), in milliseconds since the Unix
    /// epoch; `merge` aligns shards' series by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_started_at_ms: Option<u64>,
    /// This run was one shard of a sharded scenario (`run --shard K/N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// This report was made by `coap-harness merge` from shard reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergeInfo>,
    /// Shards were missing from the merge (`--allow-partial`): the figures cover only part of the load.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// The embedded server's own counters, when the target was embedded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // The schema stays an open object, as it was when this field was untyped.
    #[schemars(with = "Option<serde_json::Value>")]
    pub server: Option<ServerCounters>,
    /// The generator watching itself during the load phases: its CPU and the host's UDP drops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<GeneratorStats>,
    /// The machine the generator ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<MachineInfo>,
    /// The run's verdict (the exit code's meaning), from [`crate::report::verdict::of`]: the same one every
    /// other output states. Written with every report.json; absent only in reports of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::report::verdict::RunVerdict>,
    /// The first window of errors in `timeseries` and when the devices got out of it (a server restart, a
    /// network cut), from [`crate::report::recovery::of`]; absent when no second had an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<crate::report::recovery::Recovery>,
    /// Each second's corrected request latency, one per point of `timeseries` (HdrHistogram V2 + DEFLATE,
    /// base64, 2 significant digits): the per-second intervals of `latency.hlog`. Responses that completed
    /// after their second was closed are counted in `timeseries` but not here. `merge` adds the shards'
    /// seconds together (aligned as `timeseries` is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_per_second: Vec<String>,
}

/// The machine a run's generator ran on.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct MachineInfo {
    pub hostname: String,
    /// Kernel name, release and architecture, e.g. `Linux 6.1.0 x86_64`.
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// CPUs this process could use.
    pub cores: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
}

impl MachineInfo {
    /// One line for people.
    pub fn describe(&self) -> String {
        let mut s = format!("{} ({}", self.hostname, self.os);
        if let Some(cpu) = &self.cpu {
            s.push_str(&format!(", {cpu}"));
        }
        s.push_str(&format!(", {} cores", self.cores));
        if let Some(m) = self.memory_mib {
            s.push_str(&format!(", {:.1} GiB", m as f64 / 1024.0));
        }
        s.push(')');
        s
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ScenarioInfo {
    pub name: String,
    pub file: Option<String>,
    pub seed: u64,
    pub request: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct TargetInfo {
    /// `embedded` or the URL.
    pub url: String,
    /// The address requests went to.
    pub address: String,
    /// `coap` (plain UDP).
    pub transport: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct DeviceInfo {
    /// Devices in the scenario.
    pub count: u32,
    /// Devices whose socket opened and that took part.
    pub started: u32,
    /// Devices that could not open a socket (with the first reason).
    pub failed: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
}

/// Transport security of the load traffic: `insecure` is true when the load devices ran with certificate
/// verification disabled (`ca: none`). A trust case that probes `ca: none` says so in its own row, not here.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Security {
    /// `coap` (plain UDP, no security), `dtls`, or `none` (no load or conformance traffic: see `no_load`).
    pub transport: String,
    /// `certificate` (server verified against a CA), `disabled` (no verification), `psk`, or `none` (plain,
    /// or no load traffic).
    pub verification: String,
    /// The load traffic ran with certificate verification disabled: nothing proved who the server was.
    pub insecure: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    /// With transport `none`: what the run did instead of load traffic, such as `10 device-trust cases over
    /// DTLS, the harness as the server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_load: Option<String>,
}

impl Security {
    /// Plain CoAP: no transport security at all (nothing encrypted, nothing verified).
    pub fn plain(&self) -> bool {
        self.transport == "coap"
    }

    /// No load or conformance traffic ran: the run's cases (each judged in its own row) were all it did.
    pub fn no_load(&self) -> bool {
        self.transport == "none"
    }

    /// One line for the security row: `no transport security (plain CoAP)`, the DTLS verification, or,
    /// without load traffic, what the run did instead.
    pub fn describe(&self) -> String {
        if self.plain() {
            return PLAIN_COAP.into();
        }
        if self.no_load() {
            return match &self.no_load {
                Some(what) => format!("{NO_LOAD}: {what}"),
                None => NO_LOAD.into(),
            };
        }
        let t = if self.transport.is_empty() {
            "?"
        } else {
            &self.transport
        };
        let v = if self.verification.is_empty() {
            "?"
        } else {
            &self.verification
        };
        format!("{t} transport, verification {v}")
    }
}

/// How reports name a run over plain CoAP, wherever they would otherwise speak of verification.
pub const PLAIN_COAP: &str = "no transport security (plain CoAP)";

/// How reports begin the security row of a run without load or conformance traffic.
pub const NO_LOAD: &str = "no load traffic";

/// The embedded server's own counters, as report.json carries them (`server`): the server's `ServerStats`
/// and, when it listened for DTLS, its listener's `DtlsStats` under `dtls`. Fields are listed alphabetically,
/// the order report.json has always had them in (they were written through a JSON map).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default)]
pub struct ServerCounters {
    /// UDP datagrams received.
    pub datagrams_received: u64,
    /// Deduplication entries dropped before their lifetime ended because the cache was full.
    pub dedup_evictions: u64,
    /// Devices seen (tokens accepted at least once).
    pub devices: u64,
    /// The DTLS listener's counters, when the server listened for DTLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtls: Option<DtlsCounters>,
    /// Duplicate CON requests answered from the deduplication cache without being processed again.
    pub duplicates: u64,
    /// Well-formed datagrams needing no reply: stray ACKs and RSTs, NON responses and empty NONs.
    pub ignored: u64,
    /// Datagrams that are not CoAP messages (RFC 7252 message format errors). A malformed CON whose header is
    /// readable is also answered with RST (§4.2) but counted here, not in `resets_sent`.
    pub malformed: u64,
    /// Retransmissions of CON notifications.
    pub notification_retransmissions: u64,
    /// CON notifications given up after every retransmission went unacknowledged (each ends its relation).
    pub notification_timeouts: u64,
    /// CON notifications the client acknowledged.
    pub notifications_acked: u64,
    /// CON notifications the client rejected with RST (each also ends its relation).
    pub notifications_reset: u64,
    /// Notifications sent (shared-attribute updates and RPC commands), CON or NON.
    pub notifications_sent: u64,
    /// Relations ended: deregistered (GET with Observe=1), rejected with RST, timed out, or their DTLS
    /// session ended. Current observers = registrations - replaced - cancellations.
    pub observe_cancellations: u64,
    /// Registrations refused because the observer table was full (answered without an Observe option).
    pub observe_refused: u64,
    /// Observe registrations accepted (GET attributes or rpc with Observe=0), re-registrations included.
    pub observe_registrations: u64,
    /// Registrations that replaced the same peer's relation for the same device and feature.
    pub observe_replaced: u64,
    /// Current observers.
    pub observers: u64,
    /// Failed receive calls (other than "would block").
    pub recv_errors: u64,
    /// Requests processed, each once (duplicates excluded).
    pub requests: u64,
    /// RSTs sent for well-formed CON messages that are not requests (pings, stray responses).
    pub resets_sent: u64,
    /// The response code of each processed request.
    pub responses_by_code: BTreeMap<String, u64>,
    /// Device replies (`POST rpc/{id}`) matched to an RPC command and recorded.
    pub rpc_replies: u64,
    /// Device replies to an unknown or already answered request ID: answered 2.01 and dropped, as
    /// ThingsBoard does.
    pub rpc_replies_unmatched: u64,
    /// RPC commands sent to devices (request IDs issued).
    pub rpc_sent: u64,
    /// Failed `send_to` calls, and notifications that could not be handed to their transport.
    pub send_errors: u64,
    /// Separate CON responses the client acknowledged.
    pub separate_acked: u64,
    /// Separate CON responses the client rejected with RST.
    pub separate_resets: u64,
    /// Retransmissions of separate CON responses.
    pub separate_retransmissions: u64,
    /// Separate responses sent (after `response_delay`), CON or NON.
    pub separate_sent: u64,
    /// Separate CON responses given up after every retransmission went unacknowledged.
    pub separate_timeouts: u64,
    /// Requests answered 4.01 because their token is unknown or missing (a subset of `requests`).
    pub unknown_token: u64,
    /// Counters this version does not know (written by a newer harness): kept, after the known ones.
    #[serde(flatten)]
    pub newer: BTreeMap<String, serde_json::Value>,
}

/// The embedded server's DTLS listener counters (report.json's `server.dtls`), listed alphabetically.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default)]
pub struct DtlsCounters {
    /// Times a session with a connection ID moved to its client's new address (NAT rebinding), after it
    /// had authenticated the newest record from there.
    pub cid_address_changes: u64,
    /// Established sessions that negotiated a connection ID (RFC 9146).
    pub cid_sessions: u64,
    /// Established sessions ended by the client (close_notify, fatal alert) or a read error.
    pub closed: u64,
    /// Datagrams received on the DTLS socket.
    pub datagrams: u64,
    /// ClientHellos from new peers dropped because `max_handshakes` handshakes were in progress or
    /// `max_sessions` sessions existed (the client retransmits).
    pub dropped_handshakes: u64,
    /// Datagrams that arrived while the listener was down after a simulated restart: dropped unread.
    pub dropped_while_down: u64,
    /// Established sessions evicted for idleness.
    pub evicted_idle: u64,
    /// Datagrams from peers without a session that were not a ClientHello: dropped.
    pub garbage: u64,
    /// Failed handshakes by reason (every `HandshakeFailure` name, zeros included).
    pub handshake_failures: BTreeMap<String, u64>,
    /// Handshakes completed.
    pub handshakes_ok: u64,
    /// Of those, abbreviated handshakes that resumed a cached session (`dtls.resume` on the devices).
    pub handshakes_resumed: u64,
    /// Sessions started by a ClientHello.
    pub handshakes_started: u64,
    /// The last plaintext alert a client sent (`fatal unknown_ca (48)`), read off the wire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_alert: Option<String>,
    /// The last failed handshake's error, in the DTLS stack's words (the alert a client sent, when one did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    /// Datagrams dropped because their session's queue was full.
    pub queue_drops: u64,
    /// Sessions replaced by a new ClientHello from the same address and port.
    pub replaced: u64,
    /// Simulated restarts (`embedded.restart_at`): every session forgotten at once.
    pub restarts: u64,
    /// Sessions now in the table, handshaking or established.
    pub sessions_active: u64,
    /// Sessions forgotten by those restarts.
    pub sessions_dropped_by_restart: u64,
    /// The most sessions at once.
    pub sessions_peak: u64,
    /// Counters this version does not know (written by a newer harness): kept, after the known ones.
    #[serde(flatten)]
    pub newer: BTreeMap<String, serde_json::Value>,
}

/// DTLS handshakes of the load devices.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct HandshakeStats {
    pub attempted: u64,
    pub ok: u64,
    pub failed: u64,
    /// Count by verdict (`ok`, `ok_insecure`, `unknown_ca`, `handshake_timeout`...).
    #[schemars(with = "BTreeMap<String, u64>")]
    pub verdicts: BTreeMap<TrustVerdict, u64>,
    /// Time to complete a handshake, successful ones only.
    pub latency: Latency,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
    /// Attempts after a lost session (the server closed it, or stopped answering: a restart), included in
    /// `attempted`.
    #[serde(default)]
    pub reconnects: u64,
    /// Attempts made for handshake churn (`dtls.rehandshake_every`), included in `attempted`.
    #[serde(default)]
    pub churn: u64,
    /// The successful full handshakes (certificates or PSK and key exchange) and their time; with `resumed`,
    /// they add up to `ok` and `latency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<Latency>,
    /// The successful abbreviated handshakes that resumed a device's previous session (`dtls.resume`) and
    /// their time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed: Option<Latency>,
    /// Sessions that negotiated a connection ID (RFC 9146, `dtls.connection_id`), of the `ok` ones.
    #[serde(default)]
    pub connection_id: u64,
    /// Handshakes by the second of the load in which they ended (seconds without any are left out): the
    /// handshake rate and the failures over time, e.g. through a reconnect storm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_second: Vec<HandshakePoint>,
}

/// The handshakes that ended in one second of the load.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct HandshakePoint {
    /// Second from the start of the load, as in [`SeriesPoint::t`].
    pub t: u64,
    pub ok: u64,
    pub failed: u64,
    /// `ok + failed` by verdict name (`ok`, `ok_insecure`, `unknown_ca`, `handshake_timeout`...); absent in
    /// reports of older versions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub verdicts: BTreeMap<String, u64>,
}

pub use crate::trust::{DeviceVerdict, RefusedBy, TrustVerdict};

/// One trust case: expected and observed side by side.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct TrustCaseResult {
    pub name: String,
    pub passed: bool,
    pub expected: String,
    pub observed: String,
    /// The verdict name (`ok`, `unknown_ca`, ...).
    #[schemars(with = "String")]
    pub verdict: TrustVerdict,
    /// Why the handshake failed, in the words of the check or the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Verification was disabled for this case.
    pub insecure: bool,
    /// The response code of the request sent over the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub handshake_us: u64,
    /// What the server presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presented: Option<crate::trust::PresentedCert>,
    /// What the embedded server recorded about the handshake, when it failed there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_saw: Option<String>,
    /// The address this case connected to (each case against the embedded target has its own server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The layer that refused: the DTLS handshake, the CoAP request over the session, or neither.
    #[serde(default)]
    pub refused_by: RefusedBy,
    /// The fatal alert that ended a refused handshake, and who sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<TrustAlert>,
    /// The request sent over the session (or that would have been), e.g. `CON POST /api/v1/{token}/telemetry`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request: String,
}

/// A fatal alert in a refused handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrustAlert {
    /// `sent` (the harness refused the server) or `received` (the server refused the harness).
    pub direction: AlertDirection,
    /// What is known of it: the alert description when the DTLS layer names it, else the handshake's error.
    pub description: String,
}

/// Which side sent a fatal alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertDirection {
    /// The harness (the client) refused the server and ended the handshake.
    Sent,
    /// The server refused the client.
    Received,
}

impl TrustCaseResult {
    /// The DTLS layer in a few words: `ok`, or `refused (alert received: ...)`.
    pub fn handshake_layer(&self) -> String {
        match (&self.alert, self.refused_by) {
            (Some(a), _) => format!(
                "refused (alert {}: {})",
                match a.direction {
                    AlertDirection::Sent => "sent",
                    AlertDirection::Received => "received",
                },
                a.description
            ),
            (None, RefusedBy::Handshake) => format!("refused ({})", self.verdict),
            (None, _) => "ok".into(),
        }
    }

    /// The CoAP layer in a few words: the response code to the request, `no response`, or `-` (no session).
    pub fn coap_layer(&self) -> String {
        match (&self.code, self.refused_by) {
            (_, RefusedBy::Handshake) => "-".into(),
            (Some(c), _) => format!("{c} to {}", self.request),
            (None, _) => format!("no response to {}", self.request),
        }
    }
}

/// One device-side trust case: the certificate a rogue server presented and what the device did with it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct DeviceTrustResult {
    /// The device under test.
    pub device: String,
    /// The case (`valid`, `expired`, `wrong_host`...).
    pub case: String,
    /// The verdict is the expected one.
    pub passed: bool,
    /// The expected verdict.
    #[schemars(with = "String")]
    pub expected: DeviceVerdict,
    /// `refused`, `accepted`, `connected_no_request`, `no_connection`, `client_cert_missing`,
    /// `client_cert_rejected` (two-way cases: what the harness made of the device's certificate) or `not_run`.
    #[schemars(with = "String")]
    pub verdict: DeviceVerdict,
    /// How the device refused, as the server saw it (the alert it sent, when one arrived); for
    /// `client_cert_*` the harness's reason; for `not_run` why the case could not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// The certificate presented, in one line.
    pub presented: String,
    /// When the device accepted a bad certificate: what an attacker could do with that, in plain words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack: Option<String>,
    /// How the device command ended (`exit 0`, `still running after 10s: killed`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<String>,
    /// The tail of the device command's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    pub elapsed_ms: u64,
}

/// One shard of a sharded run: which part of the scenario it ran, and what `merge` needs to judge the
/// whole again.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ShardInfo {
    /// 0-based: `0 <= index < count` (a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`).
    pub index: u32,
    /// How many shards the scenario was split into.
    pub count: u32,
    /// SHA-256 (hex) of the scenario file's bytes followed by the overrides given (`--target`, `--devices`,
    /// `--duration`): the shards of one run share it.
    pub scenario_sha256: String,
    /// The scenario's seed; the shard's own (`scenario.seed`) is derived from it and `index`.
    pub scenario_seed: u64,
    /// Devices in the whole scenario. This shard ran `devices.count` of them: the scenario's device
    /// indexes `index`, `index + count`, `index + 2 * count`, ... (strided).
    pub scenario_devices: u32,
    /// The scenario's checks as written, judged again by `merge` on the merged figures.
    pub checks: ShardChecks,
}

/// The scenario's thresholds and per-request expectations, as written.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ShardChecks {
    /// Thresholds on the whole run (`p99 < 50ms`).
    pub thresholds: Vec<String>,
    /// Each phase's thresholds, in phase order.
    pub phase_thresholds: Vec<Vec<String>>,
    /// Per-request expectations: the kind (`code`, `content_format`, `payload`, `latency`) and its text.
    pub expectations: Vec<ExpectationSpec>,
    /// The health check's error-rate bound (a fraction); absent when the scenario turned it off (`health: off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_max_error_rate: Option<f64>,
}

/// One per-request expectation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ExpectationSpec {
    pub kind: String,
    pub text: String,
}

/// Which shards a merged report holds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct MergeInfo {
    /// How many shards the scenario was split into.
    pub count: u32,
    /// The shard indexes merged, ascending.
    pub shards: Vec<u32>,
    /// The shard indexes missing (only with `--allow-partial`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<u32>,
    /// The scenario hash every shard carried.
    pub scenario_sha256: String,
}

/// Datagrams that did not fit an exchange.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ProtocolCounters {
    /// Datagrams from the target that are not valid CoAP.
    pub malformed_datagrams: u64,
    /// The first decode error, naming the RFC 7252 rule broken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_malformed: Option<String>,
    /// Well-formed messages that matched no open request (late ACKs, stray responses).
    pub unmatched: u64,
    /// Repeated separate responses, acknowledged again.
    pub duplicates: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct PhaseReport {
    pub name: String,
    pub start_s: f64,
    pub duration_s: f64,
    pub devices: u32,
    pub pacing: String,
    pub requests: RequestStats,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct RequestStats {
    /// Requests sent; always equals the sum of `outcomes`.
    pub sent: u64,
    pub outcomes: OutcomeCounts,
    /// Responses by code, `2.01` etc.
    pub codes: BTreeMap<String, u64>,
    pub retransmissions: u64,
    /// Requests per second that ended, whatever their outcome, over the phase (or run): the raw send rate
    /// (threshold metric `send_rate`).
    pub throughput_rps: f64,
    /// Successful requests (outcome `ok`) per second over the same span (threshold metric `throughput`).
    #[serde(default)]
    pub ok_rps: f64,
    /// Failures (all but ok) over sent.
    pub error_rate: f64,
    /// From the intended send time (free of coordinated omission). Responses of any code.
    pub latency: Latency,
    /// From the actual first transmission.
    pub latency_uncorrected: Latency,
    /// How late sends went out versus their schedule.
    pub send_lag: Latency,
    /// Requests that broke a per-request expectation (`expect:`), and counts per kind.
    #[serde(default)]
    pub expectation_failures: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub expectations_broken: BTreeMap<String, u64>,
}

/// A latency distribution in microseconds, with the histogram itself so runs can be merged.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Latency {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// HdrHistogram V2 + DEFLATE, base64: `Histogram::deserialize` restores it.
    pub histogram: String,
}

/// One second of the run, by completion time. The fields after `p99_us` were added later: reports of older
/// versions lack them (`None`), and renderers say so instead of drawing zeros.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct SeriesPoint {
    /// Seconds from the start of the load.
    pub t: u64,
    /// Requests that ended in this second, whatever their outcome.
    pub requests: u64,
    /// Of those, the ones not `ok`.
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// `errors` by kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors_by_kind: Option<ErrorKinds>,
    /// Send lag (actual minus intended send time) of the requests that ended in this second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag_p50_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag_p99_us: Option<u64>,
    /// The most devices with an open socket at once in this second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_devices: Option<u64>,
    /// The most established DTLS sessions at once in this second (0 over plain CoAP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtls_sessions: Option<u64>,
}

/// The failed requests of one second by kind: every outcome but `ok`, with CoAP error responses split into
/// 4.xx and 5.xx. Kinds with no request are left out of report.json.
#[derive(
    Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(default)]
pub struct ErrorKinds {
    /// No ACK after every retransmission (CON), or no response in time (NON).
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: u64,
    /// Acknowledged, but the separate response never came.
    #[serde(skip_serializing_if = "is_zero")]
    pub response_timeout: u64,
    /// Answered with RST.
    #[serde(skip_serializing_if = "is_zero")]
    pub reset: u64,
    /// 4.xx responses.
    #[serde(skip_serializing_if = "is_zero")]
    pub coap_4xx: u64,
    /// 5.xx responses.
    #[serde(skip_serializing_if = "is_zero")]
    pub coap_5xx: u64,
    /// ICMP unreachable.
    #[serde(skip_serializing_if = "is_zero")]
    pub unreachable: u64,
    /// Only datagrams that are not CoAP came back.
    #[serde(skip_serializing_if = "is_zero")]
    pub malformed: u64,
    /// The local socket refused to send.
    #[serde(skip_serializing_if = "is_zero")]
    pub send_failed: u64,
    /// The DTLS session ended while the request was in flight.
    #[serde(skip_serializing_if = "is_zero")]
    pub session_closed: u64,
    /// Still in flight when the run ended.
    #[serde(skip_serializing_if = "is_zero")]
    pub unfinished: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ErrorKinds {
    /// Every kind: its key in report.json and a label for people.
    pub const KINDS: [(&'static str, &'static str); 10] = [
        ("timeout", "timeouts"),
        ("response_timeout", "response timeouts"),
        ("reset", "resets"),
        ("coap_4xx", "4.xx"),
        ("coap_5xx", "5.xx"),
        ("unreachable", "unreachable"),
        ("malformed", "malformed"),
        ("send_failed", "send failed"),
        ("session_closed", "DTLS session closed"),
        ("unfinished", "unfinished"),
    ];

    /// The count of the kind keyed `key` (one of [`Self::KINDS`]).
    pub fn get(&self, key: &str) -> u64 {
        match key {
            "timeout" => self.timeout,
            "response_timeout" => self.response_timeout,
            "reset" => self.reset,
            "coap_4xx" => self.coap_4xx,
            "coap_5xx" => self.coap_5xx,
            "unreachable" => self.unreachable,
            "malformed" => self.malformed,
            "send_failed" => self.send_failed,
            "session_closed" => self.session_closed,
            "unfinished" => self.unfinished,
            _ => 0,
        }
    }

    /// Adds `other` kind by kind.
    pub fn add(&mut self, other: &ErrorKinds) {
        self.timeout += other.timeout;
        self.response_timeout += other.response_timeout;
        self.reset += other.reset;
        self.coap_4xx += other.coap_4xx;
        self.coap_5xx += other.coap_5xx;
        self.unreachable += other.unreachable;
        self.malformed += other.malformed;
        self.send_failed += other.send_failed;
        self.session_closed += other.session_closed;
        self.unfinished += other.unfinished;
    }

    pub fn total(&self) -> u64 {
        Self::KINDS.iter().map(|(k, _)| self.get(k)).sum()
    }
}

/// One verdict: what was expected, what was seen.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub expected: String,
    pub observed: String,
}

impl HandshakeStats {
    /// `N attempted, N ok, N failed (verdict n, ...)`, each verdict name passed through `name` (the HTML page
    /// escapes it): the sentence the terminal, Markdown and HTML summaries share.
    pub fn counts(&self, name: impl Fn(&str) -> String) -> String {
        let verdicts: Vec<String> = self
            .verdicts
            .iter()
            .map(|(v, n)| format!("{} {n}", name(v.name())))
            .collect();
        let mut text = format!(
            "{} attempted, {} ok, {} failed ({})",
            self.attempted,
            self.ok,
            self.failed,
            verdicts.join(", ")
        );
        if self.reconnects > 0 || self.churn > 0 {
            text += &format!(
                "; {} after a lost session, {} for churn",
                self.reconnects, self.churn
            );
        }
        if let Some(resumed) = self.resumed.as_ref().filter(|r| r.count > 0) {
            text += &format!("; {} resumed a session", resumed.count);
        }
        if self.connection_id > 0 {
            text += &format!("; {} with a connection ID", self.connection_id);
        }
        text
    }

    /// Full and resumed handshakes side by side, when any resumed: "full 40: p50 2.10ms, p99 5.00ms;
    /// resumed 60: p50 900µs, p99 2.00ms".
    pub fn kinds_summary(&self) -> Option<String> {
        let resumed = self.resumed.as_ref().filter(|r| r.count > 0)?;
        let kind = |name: &str, l: &Latency| {
            format!(
                "{name} {}: p50 {}, p99 {}",
                l.count,
                human_us(l.p50_us),
                human_us(l.p99_us)
            )
        };
        let full = self.full.as_ref().map(|f| kind("full", f));
        Some(
            full.into_iter()
                .chain([kind("resumed", resumed)])
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    /// The busiest second: (second, handshakes ended in it, of which failed).
    pub fn peak_second(&self) -> Option<(u64, u64, u64)> {
        self.per_second
            .iter()
            .max_by_key(|p| (p.ok + p.failed, std::cmp::Reverse(p.t)))
            .map(|p| (p.t, p.ok + p.failed, p.failed))
    }

    /// One sentence on the handshake rate over time, when handshakes happened in more than one second:
    /// "busiest second 3 s: 412 handshakes (2 failed); failures in 2 seconds (first at 3 s)".
    pub fn rate_summary(&self) -> Option<String> {
        if self.per_second.len() < 2 {
            return None;
        }
        let (t, n, failed) = self.peak_second()?;
        let mut text = format!("busiest second {t} s: {n} handshakes ({failed} failed)");
        let failing: Vec<u64> = self
            .per_second
            .iter()
            .filter(|p| p.failed > 0)
            .map(|p| p.t)
            .collect();
        if let Some(first) = failing.iter().min() {
            text += &format!(
                "; failures in {} second{} (first at {first} s)",
                failing.len(),
                if failing.len() == 1 { "" } else { "s" }
            );
        }
        Some(text)
    }
}

/// What a table shows for a latency of a distribution with no sample: a dash, not `0µs`.
pub const NO_SAMPLE: &str = "–";

impl Latency {
    /// `v` (one of this distribution's figures) for people; [`NO_SAMPLE`] when nothing was measured.
    pub fn show(&self, v: u64) -> String {
        if self.count == 0 {
            NO_SAMPLE.into()
        } else {
            human_us(v)
        }
    }

    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        let mut buf = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut buf)
            .expect("serializing to memory");
        let empty = h.is_empty();
        let q = |x: f64| if empty { 0 } else { h.value_at_quantile(x) };
        Latency {
            count: h.len(),
            min_us: if empty { 0 } else { h.min() },
            mean_us: if empty {
                0.0
            } else {
                (h.mean() * 10.0).round() / 10.0
            },
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if empty { 0 } else { h.max() },
            histogram: base64::engine::general_purpose::STANDARD.encode(buf),
        }
    }

    /// Restores the histogram serialized in [`Self::histogram`].
    pub fn histogram(&self) -> Result<Histogram<u64>, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.histogram)
            .map_err(|e| format!("histogram is not base64: {e}"))?;
        hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format!("histogram does not decode: {e:?}"))
    }
}

impl RequestStats {
    /// The figures of one table row, in the order every tabular renderer shows them: sent, ok, errors,
    /// req/s, p50, p90, p99, p99.9, max, retransmissions.
    pub fn row_cells(&self) -> [String; 10] {
        let l = &self.latency;
        [
            self.sent.to_string(),
            self.outcomes.ok.to_string(),
            self.outcomes.failures().to_string(),
            format!("{:.1}", self.throughput_rps),
            l.show(l.p50_us),
            l.show(l.p90_us),
            l.show(l.p99_us),
            l.show(l.p999_us),
            l.show(l.max_us),
            self.retransmissions.to_string(),
        ]
    }

    /// `seconds` is the span the throughput is computed over.
    pub fn from_agg(agg: &PhaseAgg, seconds: f64) -> Self {
        let sent = agg.sent();
        RequestStats {
            sent,
            outcomes: agg.outcomes,
            codes: agg.codes.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
            retransmissions: agg.retransmissions,
            throughput_rps: per_second(agg.outcomes.total(), seconds),
            ok_rps: per_second(agg.outcomes.ok, seconds),
            error_rate: if sent > 0 {
                agg.outcomes.failures() as f64 / sent as f64
            } else {
                0.0
            },
            latency: Latency::from_histogram(&agg.corrected),
            latency_uncorrected: Latency::from_histogram(&agg.uncorrected),
            send_lag: Latency::from_histogram(&agg.send_lag),
            expectation_failures: agg.expectation_failures,
            expectations_broken: crate::checks::ExpectKind::ALL
                .iter()
                .filter(|k| agg.broken_by_kind[**k as usize] > 0)
                .map(|k| (k.name().to_string(), agg.broken_by_kind[*k as usize]))
                .collect(),
        }
    }
}

/// `n` over `seconds`, to one decimal; 0 for an empty span.
pub fn per_second(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        ((n as f64 / seconds) * 10.0).round() / 10.0
    } else {
        0.0
    }
}

impl From<&SecondPoint> for SeriesPoint {
    fn from(p: &SecondPoint) -> Self {
        let o = &p.outcomes;
        SeriesPoint {
            t: p.t,
            requests: p.requests,
            errors: p.errors,
            p50_us: p.p50_us,
            p99_us: p.p99_us,
            errors_by_kind: Some(ErrorKinds {
                timeout: o.timeout,
                response_timeout: o.response_timeout,
                reset: o.reset,
                coap_4xx: p.coap_4xx,
                coap_5xx: p.coap_5xx,
                unreachable: o.unreachable,
                malformed: o.malformed,
                send_failed: o.send_failed,
                session_closed: o.session_closed,
                unfinished: o.unfinished,
            }),
            // A second without requests has no send lag to show.
            send_lag_p50_us: (p.requests > 0).then_some(p.send_lag_p50_us),
            send_lag_p99_us: (p.requests > 0).then_some(p.send_lag_p99_us),
            active_devices: Some(p.active_devices),
            dtls_sessions: Some(p.dtls_sessions),
        }
    }
}

impl Report {
    /// No load phases ran (trust or conformance cases only): no devices, duration or latency to show.
    pub fn no_load(&self) -> bool {
        self.phases.is_empty()
    }

    /// What a run without load ran, for its header: `12 trust cases, 0 conformance cases`, and the
    /// device-trust cases when it had any.
    pub fn cases_run(&self) -> String {
        let mut s = format!(
            "{} trust cases, {} conformance cases",
            self.trust_cases.len(),
            self.conformance.len()
        );
        if !self.device_trust.is_empty() {
            s.push_str(&format!(", {} device-trust cases", self.device_trust.len()));
        }
        s
    }

    /// Whether every check passed (not the run's verdict: see [`crate::report::verdict::of`]).
    pub fn checks_passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The series of an aggregate, for building a report.
    pub fn series(agg: &Aggregate) -> Vec<SeriesPoint> {
        agg.series.iter().map(SeriesPoint::from).collect()
    }

    /// The per-second histograms of an aggregate, base64, for [`Report::latency_per_second`].
    pub fn latency_per_second(agg: &Aggregate) -> Vec<String> {
        agg.intervals
            .iter()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_round_trips_through_its_encoding() {
        let mut h = crate::metrics::collector::latency_histogram();
        for v in [100u64, 200, 300, 5000, 1_000_000] {
            h.record(v).unwrap();
        }
        let l = Latency::from_histogram(&h);
        assert_eq!(l.count, 5);
        assert_eq!(l.p50_us, 300);
        let back = l.histogram().unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
        assert_eq!(human_us(850), "850µs");
        assert_eq!(human_us(12_345), "12.35ms");
        assert_eq!(human_us(2_050_000), "2.05s");
    }
}
