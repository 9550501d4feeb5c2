//! coap-harness: load-testing and conformance harness for CoAP and CoAP-over-DTLS IoT servers that speak the
//! ThingsBoard device API.
//!
//! # Layout
//! Data flows one way: `cli` -> `scenario` -> `engine` -> `metrics` -> `report`.
//! - [`coap`]: RFC 7252 codec and client exchange state, sans-IO (no sockets, no clock).
//! - [`token`]: device access-token patterns (`dev-{index:05}`), shared by scenarios and the server.
//! - [`scenario`]: YAML scenario files, validated into a typed [`scenario::RunPlan`] before any I/O.
//! - [`engine`]: one task per simulated device (own UDP socket), pacing from the plan, the collector.
//! - [`faults`]: fault injection (loss, duplication, reordering, delay, NAT rebinding): a seeded sans-IO
//!   model and the UDP proxy that applies it between devices and target (`faults:` in a scenario).
//! - [`metrics`]: request outcomes, samples, and HDR-histogram aggregation.
//! - [`merge`]: shard reports (`run --shard K/N`) added into one report, checks judged again.
//! - [`report`]: the [`report::Report`] value and one renderer per output format.
//! - [`server`]: the embedded ThingsBoard-compatible target server (plain CoAP and DTLS, Observe).
//! - [`transport`]: the links under CoAP: plain UDP and the DTLS client driver.
//! - [`trust`]: named certificate-trust verdicts and the server-certificate check.
//! - [`pki`]: test and conformance PKI made with rcgen (CA, server, client, negative certificates).
//! - [`signals`]: SIGINT, SIGTERM and SIGHUP stop a run alike (a second one exits at once).
//! - [`verdict`]: what a finished run means for the exit code.
//! - [`cli`]: the command line.

pub mod cli;
pub mod coap;
pub mod engine;
pub mod faults;
pub mod merge;
pub mod metrics;
pub mod pki;
pub mod report;
pub mod scenario;
pub mod server;
pub mod signals;
pub mod token;
pub mod transport;
pub mod trust;
pub mod verdict;
