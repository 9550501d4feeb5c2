//! The validated run plan: everything the engine needs, typed, with no option left to interpret. Built only
//! by `validate`; the engine never sees YAML.

use super::template::PayloadTemplate;
use crate::coap::{Code, MessageType, TransmissionParams};
use crate::token::TokenPattern;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use super::checks::ResponseExpect;
pub use super::dtls::{
    CertRef, ClientAuthMode, ClientTrust, DtlsPlan, Expect, PkiPlan, ServerIdentity, TrustCase,
};
pub use super::raw::Ramp;
pub use crate::checks::{ExpectKind, Metric, Op, Threshold, Unit};

#[derive(Clone, Debug)]
pub struct RunPlan {
    pub name: String,
    /// The scenario file, when the plan came from one.
    pub source: Option<PathBuf>,
    pub target: Target,
    pub seed: u64,
    pub devices: DevicePlan,
    pub request: RequestPlan,
    pub transmission: TransmissionParams,
    pub phases: Vec<Phase>,
    /// Grace period after the last phase for requests still in flight.
    pub drain: Duration,
    /// Devices speak DTLS with these settings.
    pub dtls: Option<DtlsPlan>,
    /// Where `pki:ROLE` references are resolved.
    pub pki: Option<PkiPlan>,
    pub trust_cases: Vec<TrustCase>,
    /// `device_trust:`: the device under test against a rogue DTLS server.
    pub device_trust: Option<super::device_trust::DeviceTrustPlan>,
    pub conformance: Vec<super::conformance::Case>,
    /// Checked on every response.
    pub expect: ResponseExpect,
    /// Thresholds on the whole run.
    pub thresholds: Vec<Threshold>,
    /// The default health check (`health:`), `None` when the scenario turned it off.
    pub health: Option<crate::checks::Health>,
    /// Set when this plan is one shard of the scenario (`--shard K/N`).
    pub shard: Option<super::shard::ShardPlan>,
    /// The load phases begin at this wall-clock time (`--start-at`) instead of at once.
    pub start_at: Option<std::time::SystemTime>,
    /// Network faults injected between the devices and the target (`faults:`).
    pub faults: Option<crate::faults::FaultPlan>,
    /// `require_dtls: true`: the load must run over DTLS with the server verified, or the run fails.
    pub require_dtls: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// The built-in ThingsBoard-compatible server, started in-process on an ephemeral loopback port.
    Embedded {
        response_delay: Option<Duration>,
        any_token: bool,
        /// (when, how long) after the run's start the server stops reading.
        stall: Option<(Duration, Duration)>,
        /// (when, how long down) after the run's start the server behaves like a restarted one: every DTLS
        /// session forgotten at once, silently, and nothing answered while down (`embedded.restart_at`).
        restart: Option<(Duration, Duration)>,
    },
    /// A server elsewhere.
    Remote {
        url: String,
        /// The host as written (the default name its certificate must carry).
        host: String,
        addr: SocketAddr,
        /// `coaps://`.
        secure: bool,
    },
}

impl Target {
    /// How the target is named in reports.
    pub fn describe(&self) -> String {
        match self {
            Target::Embedded { .. } => "embedded".into(),
            Target::Remote { url, .. } => url.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct DevicePlan {
    pub count: u32,
    pub tokens: TokenSource,
    /// Local addresses for device sockets, used round-robin; empty means the unspecified address.
    pub bind: Vec<IpAddr>,
    /// This run's device `i` is the scenario's device `offset + i * stride`: 0 and 1 unless the plan is a
    /// shard (see `shard`).
    pub offset: u32,
    pub stride: u32,
    /// New sessions per second in this run (devices connect in index order), when paced.
    pub connect_rate: Option<f64>,
    /// Each scenario device's own DTLS credentials, by scenario index, when a CSV token file gives them.
    pub credentials: Option<Arc<[DeviceCredentials]>>,
}

/// One device's own DTLS credentials (a CSV token file's `psk_identity,psk_key,cert,key` columns; its `token`
/// column is in [`DevicePlan::tokens`]). What a device has replaces the scenario's `dtls:` PSK or client
/// certificate for that device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceCredentials {
    pub psk: Option<crate::transport::dtls::Psk>,
    /// Client certificate file (PEM or DER, leaf first) and its key file.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl DevicePlan {
    /// The scenario's index of this run's device `index`.
    pub fn global(&self, index: u32) -> u64 {
        u64::from(self.offset) + u64::from(index) * u64::from(self.stride)
    }

    /// The token of this run's device `index`.
    pub fn token(&self, index: u32) -> String {
        self.tokens.token(self.global(index))
    }

    /// The own credentials of this run's device `index`, when the token file gives them.
    pub fn credentials(&self, index: u32) -> Option<&DeviceCredentials> {
        self.credentials.as_ref()?.get(self.global(index) as usize)
    }

    /// Every PSK identity and key the token file gives (for a server that must know them all).
    pub fn psks(&self) -> Vec<crate::transport::dtls::Psk> {
        self.credentials
            .iter()
            .flat_map(|c| c.iter())
            .filter_map(|c| c.psk.clone())
            .collect()
    }
}

/// Where device tokens come from.
#[derive(Clone, Debug)]
pub enum TokenSource {
    Pattern(TokenPattern),
    List(Arc<[String]>),
}

impl TokenSource {
    pub fn token(&self, index: u64) -> String {
        match self {
            TokenSource::Pattern(p) => p.token(index),
            TokenSource::List(l) => l[index as usize].clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RequestPlan {
    pub method: Code,
    pub mtype: MessageType,
    /// Path segments; `None` stands for the device token.
    pub path: Vec<Option<String>>,
    pub query: Vec<String>,
    pub content_format: Option<u16>,
    pub payload: PayloadTemplate,
    /// A short name for the operation in reports (the path's last literal segment, e.g. `telemetry`).
    pub operation: String,
}

impl RequestPlan {
    /// The request as reports name it, sent as `mtype`: `CON POST /api/v1/{token}/telemetry`.
    pub fn describe(&self, mtype: MessageType) -> String {
        let path: Vec<&str> = self
            .path
            .iter()
            .map(|s| s.as_deref().unwrap_or("{token}"))
            .collect();
        format!(
            "{mtype} {} /{}",
            self.method.method_name().unwrap_or("?"),
            path.join("/")
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    pub name: String,
    /// Offset of the phase's start from the run's start.
    pub start: Duration,
    pub duration: Duration,
    /// Devices active when the phase begins (the previous phase's end count; 0 for the first).
    pub devices_from: u32,
    /// Devices active at the end of the phase.
    pub devices_to: u32,
    pub ramp: Ramp,
    pub pacing: Pacing,
    pub thresholds: Vec<Threshold>,
}

/// How a device decides when to send (the load shape is data; one worker loop reads it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pacing {
    /// Open loop: every device sends every `interval`.
    Interval(Duration),
    /// Open loop: this many requests per second across the phase's devices.
    Rate(f64),
    /// Closed loop: next request `think` after the last one completed.
    Closed { think: Duration },
}

impl Phase {
    pub fn end(&self) -> Duration {
        self.start + self.duration
    }

    /// The per-device send interval under open-loop pacing; `None` for closed loop.
    pub fn interval(&self) -> Option<Duration> {
        match self.pacing {
            Pacing::Interval(d) => Some(d),
            Pacing::Rate(r) => {
                let n = self.devices_from.max(self.devices_to).max(1);
                Some(Duration::from_secs_f64(f64::from(n) / r))
            }
            Pacing::Closed { .. } => None,
        }
    }

    /// The part of this phase during which device `index` is active, if any.
    fn window(&self, index: u32) -> Option<(Duration, Duration)> {
        let (a, b, i) = (
            f64::from(self.devices_from),
            f64::from(self.devices_to),
            f64::from(index),
        );
        let at = |x: f64| self.start + self.duration.mul_f64(x.clamp(0.0, 1.0));
        match self.ramp {
            Ramp::Instant => (index < self.devices_to).then(|| (self.start, self.end())),
            Ramp::Linear if b >= a => {
                if index < self.devices_from {
                    Some((self.start, self.end()))
                } else if index < self.devices_to {
                    Some((at((i - a) / (b - a)), self.end()))
                } else {
                    None
                }
            }
            Ramp::Linear => {
                if index < self.devices_to {
                    Some((self.start, self.end()))
                } else if index < self.devices_from {
                    Some((self.start, at((a - i) / (a - b))))
                } else {
                    None
                }
            }
        }
        .filter(|(s, e)| s < e)
    }
}

impl RunPlan {
    /// When the last phase ends.
    pub fn total_duration(&self) -> Duration {
        self.phases.last().map_or(Duration::ZERO, Phase::end)
    }

    /// The most devices active at any time: how many sockets the run needs.
    pub fn peak_devices(&self) -> u32 {
        self.phases
            .iter()
            .map(|p| p.devices_from.max(p.devices_to))
            .max()
            .unwrap_or(0)
            .min(self.devices.count)
    }

    /// The index of the phase an offset falls in (the last phase for offsets past the end).
    pub fn phase_at(&self, offset: Duration) -> usize {
        self.phases
            .iter()
            .position(|p| offset < p.end())
            .unwrap_or(self.phases.len().saturating_sub(1))
    }

    /// When device `index` is active, as merged `[start, end)` offsets from the run's start.
    pub fn device_windows(&self, index: u32) -> Vec<(Duration, Duration)> {
        let mut out: Vec<(Duration, Duration)> = Vec::new();
        for w in self.phases.iter().filter_map(|p| p.window(index)) {
            match out.last_mut() {
                Some(last) if last.1 >= w.0 => last.1 = last.1.max(w.1),
                _ => out.push(w),
            }
        }
        // With paced connections a device is active only from its turn on.
        let turn = self.connect_turn(index);
        out.retain_mut(|w| {
            w.0 = w.0.max(turn);
            w.0 < w.1
        });
        out
    }

    /// The earliest offset at which device `index` may connect: `index / connect_rate`, or zero.
    pub fn connect_turn(&self, index: u32) -> Duration {
        self.devices.connect_rate.map_or(Duration::ZERO, |r| {
            Duration::from_secs_f64(f64::from(index) / r)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(start: u64, dur: u64, from: u32, to: u32, ramp: Ramp) -> Phase {
        Phase {
            name: "p".into(),
            start: Duration::from_secs(start),
            duration: Duration::from_secs(dur),
            devices_from: from,
            devices_to: to,
            ramp,
            pacing: Pacing::Interval(Duration::from_secs(1)),
            thresholds: Vec::new(),
        }
    }

    #[test]
    fn linear_ramp_up_staggers_starts() {
        let p = phase(0, 10, 0, 10, Ramp::Linear);
        assert_eq!(p.window(0), Some((Duration::ZERO, Duration::from_secs(10))));
        assert_eq!(
            p.window(5),
            Some((Duration::from_secs(5), Duration::from_secs(10)))
        );
        assert_eq!(
            p.window(9),
            Some((Duration::from_secs(9), Duration::from_secs(10)))
        );
        assert_eq!(p.window(10), None);
    }

    #[test]
    fn linear_ramp_down_staggers_stops() {
        let p = phase(10, 10, 10, 0, Ramp::Linear);
        assert_eq!(
            p.window(9),
            Some((Duration::from_secs(10), Duration::from_secs(11)))
        );
        assert_eq!(
            p.window(0),
            Some((Duration::from_secs(10), Duration::from_secs(20)))
        );
        assert_eq!(p.window(10), None);
    }

    #[test]
    fn windows_merge_across_phases() {
        let plan_phases = [
            phase(0, 10, 0, 4, Ramp::Linear),
            phase(10, 10, 4, 4, Ramp::Instant),
            phase(20, 4, 4, 2, Ramp::Instant),
        ];
        let windows = |i| {
            let mut out: Vec<(Duration, Duration)> = Vec::new();
            for w in plan_phases.iter().filter_map(|p| p.window(i)) {
                match out.last_mut() {
                    Some(last) if last.1 >= w.0 => last.1 = w.1,
                    _ => out.push(w),
                }
            }
            out
        };
        assert_eq!(windows(0), vec![(Duration::ZERO, Duration::from_secs(24))]);
        assert_eq!(
            windows(3),
            vec![(Duration::from_millis(7500), Duration::from_secs(20))]
        );
    }

    #[test]
    fn rate_becomes_a_per_device_interval() {
        let mut p = phase(0, 10, 0, 1000, Ramp::Instant);
        p.pacing = Pacing::Rate(500.0);
        assert_eq!(p.interval(), Some(Duration::from_secs(2)));
        p.pacing = Pacing::Closed {
            think: Duration::ZERO,
        };
        assert_eq!(p.interval(), None);
    }
}
