//! coap-harness: load-testing and conformance harness for CoAP and CoAP-over-DTLS IoT servers that speak the
//! ThingsBoard device API.
//!
//! # Layout
//! `main` parses the command line ([`cli`]) and hands it to [`app`], the composition root: the one module that
//! wires scenario, engine, server, report and merge together. Below it, data flows one way and no import circle
//! spans two modules (`layout_tests.rs` checks the rules on every `cargo test`):
//!
//! ```text
//! main -> cli (clap types) -> app (run, settle, embedded server, credentials, trust cases, device trust, limits, report assembly)
//! app -> scenario, engine, server, report, merge, pki, faults, signals
//! scenario -> checks, coap, pki, token, transport, trust, client_auth, faults
//! engine   -> checks, coap, metrics, scenario, transport, trust        (never server, report)
//! server   -> coap, token, client_auth                                 (never engine, report)
//! merge    -> report, metrics, checks          report -> metrics, checks, trust
//! metrics  -> coap                             transport -> trust, pki  coap -> nothing (no tokio, no clock)
//! leaves: checks, client_auth, token, trust, pki, faults, signals, report/escape.rs
//! ```
//!
//! - [`app`]: the composition root and the command handlers; implements the engine's
//!   [`engine::conformance::EmbeddedTarget`] for the embedded server's handle.
//! - [`cli`]: the command line, clap types only.
//! - [`checks`]: the check vocabulary: metrics, operators, units, expectation kinds, threshold and rate parsing.
//! - [`client_auth`]: whether a DTLS server asks for client certificates (command line, scenarios, server).
//! - [`coap`]: RFC 7252 codec and client exchange state, sans-IO (no sockets, no clock).
//! - [`token`]: device access-token patterns (`dev-{index:05}`), shared by scenarios and the server.
//! - [`scenario`]: YAML scenario files, validated into a typed [`scenario::RunPlan`] before any I/O.
//! - [`faults`]: fault injection (loss, duplication, reordering, delay, NAT rebinding): a seeded sans-IO
//!   model and the UDP proxy that applies it between devices and target (`faults:` in a scenario).
//! - [`engine`]: the load generator: one task per simulated device (own UDP socket), pacing from the plan,
//!   expectations, conformance exchanges, the collector and the generator monitor.
//! - [`metrics`]: request outcomes, samples, HDR-histogram aggregation, and the records the engine measures.
//! - [`merge`]: shard reports (`run --shard K/N`) added into one report, checks judged again.
//! - [`report`]: the [`report::Report`] value, judging and the verdict, and one renderer per output format.
//! - [`server`]: the embedded ThingsBoard-compatible target server (plain CoAP and DTLS, Observe).
//! - [`transport`]: the links under CoAP: plain UDP and the DTLS client driver.
//! - [`trust`]: named certificate-trust verdicts and the server-certificate check.
//! - [`signals`]: SIGINT, SIGTERM and SIGHUP stop a run alike (a second one exits at once).
//! - [`pki`]: test and conformance PKI made with rcgen (CA, server, client, negative certificates).

pub mod app;
pub mod checks;
pub mod cli;
pub mod client_auth;
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

#[cfg(test)]
mod layout_tests;

/// Kept at the root for callers of `coap_harness::verdict`; it lives in [`report::verdict`].
pub use report::verdict;
