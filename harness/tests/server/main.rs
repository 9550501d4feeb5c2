//! The embedded server over real loopback sockets, in one test binary (one link instead of three): the
//! ThingsBoard device API over plain CoAP (`server_api`), Observe (`server_observe`), and the CoAP-over-DTLS
//! listener (`dtls_server`).

#[path = "../common/mod.rs"]
mod common;

mod dtls_server;
mod server_api;
mod server_observe;
