//! coap-harness: load-testing and conformance harness for CoAP and CoAP-over-DTLS servers.
pub mod coap;
pub mod token;
