//! Trust verdicts checked against independent peers, in one test binary: the openssl-CLI PKI judged by
//! `openssl s_client` and by our client (`trust_oracle`), refusals observed against `openssl s_server`
//! (`dtls_openssl_refusals`), `serve --coaps` with openssl-made keys judged by libcoap's clients
//! (`serve_openssl_keys`), and the layer that refused (`trust_layers`).

#[path = "../common/mod.rs"]
mod common;

mod dtls_openssl_refusals;
mod serve_openssl_keys;
mod trust_layers;
mod trust_oracle;
