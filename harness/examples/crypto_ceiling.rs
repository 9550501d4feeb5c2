//! The DTLS crypto ceiling for `ci/bench.sh` (issue #5, item d): times the public-key work of one full
//! ECDHE-ECDSA handshake with the primitives webrtc-rs `dtls` 0.17 uses, and turns it into a handshakes/s
//! bound for the machine's cores when client and server both run on it.
//!
//!     cargo run --release --example crypto_ceiling -- --secs 1
//!
//! Per handshake without client certificates (what the harness's DTLS scenarios do):
//! - server: ECDSA P-256 sign of ServerKeyExchange (ring `EcdsaKeyPair`), ephemeral P-256 key generation and
//!   agreement (RustCrypto `p256::ecdh::EphemeralSecret`, the curve the dtls client offers first);
//! - client: two ECDSA P-256 verifies, the server certificate's signature by the CA (webpki, ring) and the
//!   ServerKeyExchange signature (ring), plus its own ephemeral key generation and agreement.
//!
//! For comparison it also times the X25519 exchange (`x25519-dalek`, which dtls uses when X25519 is
//! negotiated) and prints the bound with X25519 in place of P-256 ECDH.
//!
//! Hashing, the PRF, record encryption, certificate parsing and I/O are left out: this is a bound, not an
//! estimate. Each operation runs for `--secs` (bounded also by `--max` iterations); the figure printed is the
//! median of three such batches. Output: one JSON line.

use p256::ecdh::EphemeralSecret;
use p256::elliptic_curve::rand_core::OsRng;
use p256::{EncodedPoint, PublicKey};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use ring::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Median microseconds per call of `f` over three batches of `secs` each (at most `max` calls a batch).
fn time_us(secs: f64, max: u64, mut f: impl FnMut()) -> f64 {
    let budget = Duration::from_secs_f64(secs);
    let mut batches: Vec<f64> = (0..3)
        .map(|_| {
            let t0 = Instant::now();
            let mut n = 0u64;
            while n < max && t0.elapsed() < budget {
                for _ in 0..8 {
                    f();
                }
                n += 8;
            }
            t0.elapsed().as_secs_f64() * 1e6 / n as f64
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[1]
}

fn main() -> std::process::ExitCode {
    let mut secs = 1.0f64;
    let mut max = 1_000_000u64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<f64>().ok());
        match (flag.as_str(), value) {
            ("--secs", Some(v)) if v > 0.0 && v <= 60.0 => secs = v,
            ("--max", Some(v)) if v >= 8.0 => max = v as u64,
            _ => {
                eprintln!("usage: crypto_ceiling [--secs S (0-60)] [--max ITERATIONS]");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("keygen");
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .expect("key from pkcs8");
    // ServerKeyExchange signs client_random | server_random | curve params | 65-byte point: about 133 bytes.
    let msg = [0x5au8; 133];
    let sig = key.sign(&rng, &msg).expect("sign");
    let public =
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key().as_ref().to_vec());
    public.verify(&msg, sig.as_ref()).expect("verify");

    let sign_us = time_us(secs, max, || {
        black_box(key.sign(&rng, black_box(&msg)).expect("sign"));
    });
    let verify_us = time_us(secs, max, || {
        public
            .verify(black_box(&msg), black_box(sig.as_ref()))
            .expect("verify");
    });
    // Key generation and encoding of the public point, as dtls's `NamedCurve::generate_keypair` does.
    let keygen_us = time_us(secs, max, || {
        let secret = EphemeralSecret::random(&mut OsRng);
        black_box(EncodedPoint::from(secret.public_key()));
    });
    let peer = EncodedPoint::from(EphemeralSecret::random(&mut OsRng).public_key());
    let secret = EphemeralSecret::random(&mut OsRng);
    // Agreement: decode the peer's point and multiply, as dtls's `prf_pre_master_secret` does.
    let agree_us = time_us(secs, max, || {
        let peer = PublicKey::from_sec1_bytes(black_box(peer.as_bytes())).expect("point");
        black_box(secret.diffie_hellman(&peer));
    });
    let x_keygen_us = time_us(secs, max, || {
        let secret = x25519_dalek::StaticSecret::random_from_rng(OsRng);
        black_box(x25519_dalek::PublicKey::from(&secret));
    });
    let x_peer = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::random_from_rng(OsRng));
    let x_secret = x25519_dalek::StaticSecret::random_from_rng(OsRng);
    let x_agree_us = time_us(secs, max, || {
        black_box(x_secret.diffie_hellman(black_box(&x_peer)));
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server_us = sign_us + keygen_us + agree_us;
    let client_us = 2.0 * verify_us + keygen_us + agree_us;
    let per_handshake_us = server_us + client_us;
    let bound = cores as f64 * 1e6 / per_handshake_us;
    let x_per_handshake_us = sign_us + 2.0 * verify_us + 2.0 * (x_keygen_us + x_agree_us);
    let x_bound = cores as f64 * 1e6 / x_per_handshake_us;
    println!(
        r#"{{"sign_us":{sign_us:.2},"verify_us":{verify_us:.2},"ecdh_keygen_us":{keygen_us:.2},"ecdh_agree_us":{agree_us:.2},"server_us":{server_us:.2},"client_us":{client_us:.2},"per_handshake_us":{per_handshake_us:.2},"cores":{cores},"handshakes_per_s_bound":{bound:.0},"server_only_bound_1core":{:.0},"x25519_keygen_us":{x_keygen_us:.2},"x25519_agree_us":{x_agree_us:.2},"x25519_per_handshake_us":{x_per_handshake_us:.2},"x25519_handshakes_per_s_bound":{x_bound:.0}}}"#,
        1e6 / server_us
    );
    std::process::ExitCode::SUCCESS
}
