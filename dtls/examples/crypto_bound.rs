//! The crypto-primitive bound of one ECDHE-ECDSA P-256 client+server pair (coap-harness fork, FORK.md): the
//! time of the public-key operations a full handshake cannot avoid, measured here with the libraries the
//! crate uses, to put next to `handshake_loop`'s figure.
//!
//! Per pair: ECDHE keygen and agreement on each side, one ECDSA P-256 sign (ServerKeyExchange), two ECDSA
//! verifies on the client (ServerKeyExchange and the self-signed server certificate).
//!
//! `cargo run -p dtls --example crypto_bound -- [iterations]` (default 3000).

use std::time::Instant;

/// This process's user+system CPU time (Linux `/proc/self/stat`, 100 ticks per second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

use ring::agreement;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let rng = SystemRandom::new();
    let time = |name: &str, f: &mut dyn FnMut()| -> f64 {
        for _ in 0..n / 10 {
            f();
        }
        let (start, cpu_start) = (Instant::now(), cpu_seconds());
        for _ in 0..n {
            f();
        }
        let wall = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        let us = (cpu_seconds() - cpu_start) * 1e6 / n as f64;
        println!("{name:<40} {us:8.1} µs CPU ({wall:.1} µs wall)");
        us
    };

    let agree = |alg: &'static agreement::Algorithm| {
        let peer = agreement::EphemeralPrivateKey::generate(alg, &rng).unwrap();
        let peer_pub = peer.compute_public_key().unwrap();
        move || {
            let k = agreement::EphemeralPrivateKey::generate(alg, &SystemRandom::new()).unwrap();
            let _ = k.compute_public_key().unwrap();
            let peer = agreement::UnparsedPublicKey::new(alg, peer_pub.as_ref().to_vec());
            agreement::agree_ephemeral(k, &peer, |s| s.len()).unwrap();
        }
    };
    let ring_p256 = time(
        "ring P-256 ECDHE keygen+agree",
        &mut agree(&agreement::ECDH_P256),
    );
    time(
        "ring P-384 ECDHE keygen+agree",
        &mut agree(&agreement::ECDH_P384),
    );
    time(
        "ring X25519 ECDHE keygen+agree",
        &mut agree(&agreement::X25519),
    );
    let rc_peer = p256::ecdh::EphemeralSecret::random(&mut rand_core::OsRng).public_key();
    time("RustCrypto p256 ECDHE keygen+agree", &mut || {
        let k = p256::ecdh::EphemeralSecret::random(&mut rand_core::OsRng);
        let _ = p256::EncodedPoint::from(k.public_key());
        let _ = k.diffie_hellman(&rc_peer);
    });
    let x_peer = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::random_from_rng(
        rand_core::OsRng,
    ));
    let dalek_x25519 = time("x25519-dalek ECDHE keygen+agree", &mut || {
        let k = x25519_dalek::StaticSecret::random_from_rng(rand_core::OsRng);
        let _ = x25519_dalek::PublicKey::from(&k);
        let _ = k.diffie_hellman(&x_peer);
    });

    let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let msg = [7u8; 100];
    let sign = time("ring ECDSA P-256 sign", &mut || {
        key.sign(&rng, &msg).unwrap();
    });
    let sig = key.sign(&rng, &msg).unwrap();
    let public = signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        key.public_key().as_ref().to_vec(),
    );
    let verify = time("ring ECDSA P-256 verify", &mut || {
        public.verify(&msg, sig.as_ref()).unwrap();
    });
    println!(
        "bound per ECDHE-ECDSA pair: {:.0} µs with P-256 ECDHE, {:.0} µs with X25519 (2 x ECDHE, 1 sign, 2 verify)",
        2.0 * ring_p256 + sign + 2.0 * verify,
        2.0 * dalek_x25519 + sign + 2.0 * verify
    );
}
