//! Checked against independent peers, in one test binary: the openssl-CLI PKI judged by `openssl s_client`
//! and by our client (`trust_oracle`), refusals observed against `openssl s_server` (`dtls_openssl_refusals`),
//! `serve --coaps` with openssl-made keys judged by libcoap's clients (`serve_openssl_keys`), the layer that
//! refused (`trust_layers`), our DTLS client against libcoap's OpenSSL server (`libcoap_dtls`), real devices
//! judged by the harness as a rogue server (`device_trust`), and the generated test PKI read back by the
//! openssl CLI (`pki`), ThingsBoard's X.509 device authentication (`thingsboard_x509`), and DTLS session
//! resumption with OpenSSL both ways (`dtls_resumption`).

#[path = "../common/mod.rs"]
mod common;

mod device_trust;
mod dtls_openssl_refusals;
mod dtls_resumption;
mod libcoap_dtls;
mod pki;
mod serve_openssl_keys;
mod thingsboard_x509;
mod trust_layers;
mod trust_oracle;
