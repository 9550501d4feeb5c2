//! The load generator end to end, in one test binary (one link instead of five): the plain-CoAP fleet
//! (`fleet_plain`), the DTLS fleet and trust cases (`dtls_fleet`), open-loop pacing (`pacing`), the device-API
//! conformance suite (`conformance`), thousands of devices (`scale`), per-device credentials from a CSV
//! token file (`credentials`), and DTLS session resumption on new sessions (`resumption`).

#[path = "../common/mod.rs"]
mod common;

mod conformance;
mod credentials;
mod dtls_fleet;
mod fleet_plain;
mod pacing;
mod resumption;
mod scale;
