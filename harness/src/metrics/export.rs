//! Live metrics of a run for Prometheus / OpenMetrics scrapers (`run --metrics ADDR`), kept with
//! `prometheus-client`. The collector feeds request outcomes and latencies as it aggregates batches (so the
//! counters end equal to report.json's totals); devices move the gauges (requests in flight, active devices,
//! DTLS sessions) and count handshakes. Label values are bounded: outcome names, CoAP response codes,
//! handshake verdict names and phase names, never a device.

use super::sample::Sample;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Histogram buckets for CoAP, in seconds: 100 µs (a loopback round trip) to 60 s (past the 45 s a CON
/// takes to time out with RFC 7252's defaults).
pub const BUCKETS_S: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The outcome class (`ok`, `coap_error`, `timeout`...).
    pub outcome: String,
    /// The response code (`2.01`), or `none` when no response arrived.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    pub verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: String,
}

/// Every metric of a run, registered once.
#[derive(Debug)]
pub struct RunMetrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub retransmissions: Counter,
    pub in_flight: Gauge,
    pub active_devices: Gauge,
    pub dtls_sessions: Gauge,
    pub handshakes: Family<VerdictLabels, Counter>,
    pub latency: Histogram,
    pub uncorrected: Histogram,
    pub send_lag: Histogram,
    pub handshake_latency: Histogram,
    /// 1 for the phase under way, 0 for the others.
    pub phase: Family<PhaseLabels, Gauge>,
    pub cpu_seconds: Counter<f64, AtomicU64>,
    pub resident_bytes: Gauge,
    pub udp_rcvbuf_errors: Counter,
    pub udp_sndbuf_errors: Counter,
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS_S)
}

impl RunMetrics {
    pub fn new(phases: &[String]) -> RunMetrics {
        let mut registry = Registry::with_prefix("coap_harness");
        let m = RunMetrics {
            requests: Family::default(),
            retransmissions: Counter::default(),
            in_flight: Gauge::default(),
            active_devices: Gauge::default(),
            dtls_sessions: Gauge::default(),
            handshakes: Family::default(),
            latency: histogram(),
            uncorrected: histogram(),
            send_lag: histogram(),
            handshake_latency: histogram(),
            phase: Family::default(),
            cpu_seconds: Counter::default(),
            resident_bytes: Gauge::default(),
            udp_rcvbuf_errors: Counter::default(),
            udp_sndbuf_errors: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests that ended, by outcome and response code (every request ends in one outcome)",
            m.requests.clone(),
        );
        registry.register(
            "retransmissions",
            "CON retransmissions of requests that ended",
            m.retransmissions.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests sent and not yet ended",
            m.in_flight.clone(),
        );
        registry.register(
            "active_devices",
            "Devices with an open socket",
            m.active_devices.clone(),
        );
        registry.register(
            "dtls_sessions",
            "Devices with an established DTLS session",
            m.dtls_sessions.clone(),
        );
        registry.register(
            "handshakes",
            "DTLS handshakes by verdict (ok, or the named trust failure)",
            m.handshakes.clone(),
        );
        registry.register_with_unit(
            "request_latency",
            "Request latency from the intended send time (free of coordinated omission), responses of any code",
            Unit::Seconds,
            m.latency.clone(),
        );
        registry.register_with_unit(
            "request_latency_uncorrected",
            "Request latency from the actual first transmission",
            Unit::Seconds,
            m.uncorrected.clone(),
        );
        registry.register_with_unit(
            "send_lag",
            "How late requests left versus their schedule",
            Unit::Seconds,
            m.send_lag.clone(),
        );
        registry.register_with_unit(
            "handshake_latency",
            "DTLS handshake duration",
            Unit::Seconds,
            m.handshake_latency.clone(),
        );
        registry.register(
            "phase",
            "1 for the load phase under way, 0 for the others",
            m.phase.clone(),
        );
        registry.register_with_unit(
            "generator_cpu",
            "CPU time the generator process used (user + system), the embedded server included",
            Unit::Seconds,
            m.cpu_seconds.clone(),
        );
        registry.register_with_unit(
            "generator_resident_memory",
            "Resident memory of the generator process",
            Unit::Bytes,
            m.resident_bytes.clone(),
        );
        registry.register(
            "kernel_udp_rcvbuf_errors",
            "UDP datagrams the host's kernel dropped for want of receive-buffer space since the run started (host-wide)",
            m.udp_rcvbuf_errors.clone(),
        );
        registry.register(
            "kernel_udp_sndbuf_errors",
            "UDP datagrams the host's kernel dropped for want of send-buffer space since the run started (host-wide)",
            m.udp_sndbuf_errors.clone(),
        );
        for name in phases {
            m.phase
                .get_or_create(&PhaseLabels {
                    phase: name.clone(),
                })
                .set(0);
        }
        RunMetrics { registry, ..m }
    }

    /// A finished request, as the collector records it.
    pub fn record(&self, s: &Sample) {
        self.requests
            .get_or_create(&RequestLabels {
                outcome: s.outcome.name().to_string(),
                code: s.code.map_or_else(|| "none".to_string(), |c| c.to_string()),
            })
            .inc();
        self.retransmissions.inc_by(u64::from(s.retransmissions));
        if s.outcome.has_latency() {
            self.latency.observe(s.corrected_us as f64 / 1e6);
            self.uncorrected.observe(s.uncorrected_us as f64 / 1e6);
        }
        // Every request, as report.json's send lag counts them.
        self.send_lag.observe(s.send_lag_us as f64 / 1e6);
    }

    /// A DTLS handshake ended with `verdict` (`ok` or a trust verdict's name) after `elapsed`.
    pub fn handshake(&self, verdict: &str, elapsed: Duration) {
        self.handshakes
            .get_or_create(&VerdictLabels {
                verdict: verdict.to_string(),
            })
            .inc();
        self.handshake_latency.observe(elapsed.as_secs_f64());
    }

    /// Marks `current` as the phase under way (`None`: none is, before the first or after the last).
    pub fn set_phase(&self, phases: &[String], current: Option<usize>) {
        for (i, name) in phases.iter().enumerate() {
            self.phase
                .get_or_create(&PhaseLabels {
                    phase: name.clone(),
                })
                .set(i64::from(Some(i) == current));
        }
    }

    /// The exposition: OpenMetrics text, ending in `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing into a String does not fail");
        out
    }
}

/// What `serve --metrics` reports: the embedded server's counters at scrape time (the caller reads them from
/// the server; this module knows no server).
#[derive(Clone, Debug, Default)]
pub struct ServeSnapshot {
    pub datagrams: u64,
    pub malformed: u64,
    /// Requests processed by route (`telemetry`, `attributes`, `rpc`, `claim`, `provision`, `firmware`,
    /// `other`) and response code (`2.01`...).
    pub responses: Vec<(&'static str, String, u64)>,
    /// Duplicate CON requests answered from the deduplication cache.
    pub duplicates: u64,
    pub observe_registrations: u64,
    pub observers: u64,
    pub devices: u64,
    /// DTLS, when served.
    pub dtls: Option<ServeDtls>,
}

/// The DTLS listener's part of a [`ServeSnapshot`].
#[derive(Clone, Debug, Default)]
pub struct ServeDtls {
    /// Sessions in the table, handshaking or established.
    pub sessions: u64,
    pub handshakes_ok: u64,
    /// Failed handshakes by reason.
    pub failures: Vec<(String, u64)>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The API route, one of a fixed few.
    pub route: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

/// The embedded server's metrics (`serve --metrics`), set from a [`ServeSnapshot`] at each scrape.
#[derive(Debug)]
pub struct ServeMetrics {
    registry: Registry,
    datagrams: Counter,
    malformed: Counter,
    requests: Family<RouteLabels, Counter>,
    duplicates: Counter,
    observe_registrations: Counter,
    observers: Gauge,
    devices: Gauge,
    sessions: Gauge,
    handshakes: Family<ResultLabels, Counter>,
}

/// Moves a counter up to `to` (counters never go down; a server's counters do not either).
fn counter_to(c: &Counter, to: u64) {
    c.inc_by(to.saturating_sub(c.get()));
}

impl Default for ServeMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("coap_harness_server");
        let m = ServeMetrics {
            registry: Registry::default(),
            datagrams: Counter::default(),
            malformed: Counter::default(),
            requests: Family::default(),
            duplicates: Counter::default(),
            observe_registrations: Counter::default(),
            observers: Gauge::default(),
            devices: Gauge::default(),
            sessions: Gauge::default(),
            handshakes: Family::default(),
        };
        registry.register("datagrams", "UDP datagrams received", m.datagrams.clone());
        registry.register(
            "malformed_datagrams",
            "Datagrams that are not CoAP messages",
            m.malformed.clone(),
        );
        registry.register(
            "requests",
            "Requests processed (duplicates excluded), by API route and response code",
            m.requests.clone(),
        );
        registry.register(
            "deduplicated",
            "Duplicate CON requests answered from the deduplication cache",
            m.duplicates.clone(),
        );
        registry.register(
            "observe_registrations",
            "Observe registrations accepted",
            m.observe_registrations.clone(),
        );
        registry.register(
            "observers",
            "Current Observe relations",
            m.observers.clone(),
        );
        registry.register(
            "devices",
            "Devices seen (tokens accepted at least once)",
            m.devices.clone(),
        );
        registry.register(
            "dtls_sessions",
            "DTLS sessions in the table, handshaking or established",
            m.sessions.clone(),
        );
        registry.register(
            "dtls_handshakes",
            "DTLS handshakes ended, by result (ok or the failure's reason)",
            m.handshakes.clone(),
        );
        ServeMetrics { registry, ..m }
    }
}

impl ServeMetrics {
    /// Sets every metric from `s` and encodes them (OpenMetrics text).
    pub fn render(&self, s: &ServeSnapshot) -> String {
        counter_to(&self.datagrams, s.datagrams);
        counter_to(&self.malformed, s.malformed);
        for (route, code, n) in &s.responses {
            counter_to(
                &self.requests.get_or_create(&RouteLabels {
                    route: route.to_string(),
                    code: code.clone(),
                }),
                *n,
            );
        }
        counter_to(&self.duplicates, s.duplicates);
        counter_to(&self.observe_registrations, s.observe_registrations);
        self.observers.set(s.observers as i64);
        self.devices.set(s.devices as i64);
        if let Some(d) = &s.dtls {
            self.sessions.set(d.sessions as i64);
            counter_to(
                &self.handshakes.get_or_create(&ResultLabels {
                    result: "ok".into(),
                }),
                d.handshakes_ok,
            );
            for (reason, n) in &d.failures {
                counter_to(
                    &self.handshakes.get_or_create(&ResultLabels {
                        result: reason.clone(),
                    }),
                    *n,
                );
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing into a String does not fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coap::Code;
    use crate::metrics::Outcome;

    #[test]
    fn records_outcomes_codes_and_latency() {
        let m = RunMetrics::new(&["warm".into(), "steady".into()]);
        let s = Sample {
            phase: 0,
            outcome: Outcome::Ok,
            code: Some(Code::CREATED),
            corrected_us: 150,
            uncorrected_us: 100,
            send_lag_us: 50,
            completed_ms: 1,
            retransmissions: 1,
            broken: 0,
        };
        m.record(&s);
        m.record(&Sample {
            outcome: Outcome::Timeout,
            code: None,
            ..s
        });
        m.set_phase(&["warm".into(), "steady".into()], Some(1));
        let text = m.encode();
        assert!(
            text.contains("coap_harness_requests_total{outcome=\"ok\",code=\"2.01\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("coap_harness_requests_total{outcome=\"timeout\",code=\"none\"} 1\n"));
        assert!(text.contains("coap_harness_retransmissions_total 2\n"));
        assert!(text.contains("coap_harness_request_latency_seconds_count 1\n"));
        assert!(text.contains("coap_harness_request_latency_seconds_bucket{le=\"0.00025\"} 1\n"));
        assert!(text.contains("coap_harness_request_latency_seconds_bucket{le=\"0.0001\"} 0\n"));
        assert!(text.contains("coap_harness_phase{phase=\"steady\"} 1\n"));
        assert!(text.contains("coap_harness_phase{phase=\"warm\"} 0\n"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn serve_metrics_follow_the_server_counters() {
        let m = ServeMetrics::default();
        let mut s = ServeSnapshot {
            datagrams: 10,
            responses: vec![("telemetry", "2.01".into(), 7), ("other", "4.01".into(), 1)],
            duplicates: 2,
            observers: 3,
            dtls: Some(ServeDtls {
                sessions: 4,
                handshakes_ok: 5,
                failures: vec![("unknown_ca".into(), 1)],
            }),
            ..Default::default()
        };
        m.render(&s);
        s.datagrams = 25;
        s.responses[0].2 = 20;
        let text = m.render(&s);
        assert!(
            text.contains("coap_harness_server_datagrams_total 25\n"),
            "{text}"
        );
        assert!(text.contains(
            "coap_harness_server_requests_total{route=\"telemetry\",code=\"2.01\"} 20\n"
        ));
        assert!(
            text.contains("coap_harness_server_requests_total{route=\"other\",code=\"4.01\"} 1\n")
        );
        assert!(text.contains("coap_harness_server_deduplicated_total 2\n"));
        assert!(text.contains("coap_harness_server_observers 3\n"));
        assert!(text.contains("coap_harness_server_dtls_sessions 4\n"));
        assert!(
            text.contains("coap_harness_server_dtls_handshakes_total{result=\"unknown_ca\"} 1\n")
        );
    }
}
