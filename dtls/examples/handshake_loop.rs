//! In-memory handshake cost (coap-harness fork, FORK.md): sequential ECDHE-ECDSA P-256 handshakes between a
//! client and a server over an in-memory pipe on one thread, reported as µs per client+server pair.
//!
//! `cargo run -p dtls --example handshake_loop -- [pairs] [p256|x25519|p384|default] [resume]` (default 300
//! pairs, after 20 warm-up pairs; default curve: the crate's default order, P-256 first). With `resume`
//! (FORK.md change 15) both ends keep a session store and every measured pair resumes the warm-up's
//! session: the abbreviated handshake.

use std::sync::Arc;
use std::time::Instant;

use dtls::cipher_suite::CipherSuiteId;
use dtls::config::{Config, ExtendedMasterSecretType};
use dtls::conn::DTLSConn;
use dtls::crypto::Certificate;
use dtls::curve::named_curve::NamedCurve;
use dtls::session::{MemorySessionStore, SessionStore};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let pairs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let resume = std::env::args().any(|a| a == "resume");
    let stores = resume.then(|| {
        let store = || -> Arc<dyn SessionStore> { Arc::new(MemorySessionStore::default()) };
        (store(), store())
    });
    let curves = match std::env::args().nth(2).as_deref() {
        None | Some("default") | Some("resume") => vec![],
        Some("p256") => vec![NamedCurve::P256],
        Some("x25519") => vec![NamedCurve::X25519],
        Some("p384") => vec![NamedCurve::P384],
        Some(other) => panic!("unknown curve {other:?} (p256, x25519, p384)"),
    };
    let cert = Certificate::generate_self_signed(vec!["localhost".to_owned()]).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.certificate[0].clone()).unwrap();
    for _ in 0..20 {
        pair(&cert, &roots, &curves, stores.as_ref()).await;
    }
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    for _ in 0..pairs {
        let resumed = pair(&cert, &roots, &curves, stores.as_ref()).await;
        assert_eq!(
            resumed, resume,
            "every measured pair resumes exactly when asked to"
        );
    }
    let per_pair = start.elapsed().as_secs_f64() * 1e6 / pairs as f64;
    let cpu_per_pair = (cpu_seconds() - cpu_start) * 1e6 / pairs as f64;
    println!(
        "{per_pair:.0} µs wall, {cpu_per_pair:.0} µs CPU per client+server pair ({pairs} pairs, {})",
        if resume { "resumed" } else { "full" }
    );
}

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
    // Fields 14 and 15 of stat(5) (utime, stime) are 11 and 12 after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

/// The client's and the server's session stores, in `resume` mode.
type Stores = (Arc<dyn SessionStore>, Arc<dyn SessionStore>);

/// One handshake pair; whether it resumed a session (both ends agree).
async fn pair(
    cert: &Certificate,
    roots: &rustls::RootCertStore,
    curves: &[NamedCurve],
    stores: Option<&Stores>,
) -> bool {
    let (a, b) = util::conn::conn_pipe::pipe();
    let suites = vec![CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256];
    let client_cfg = Config {
        server_name: "localhost".to_owned(),
        roots_cas: roots.clone(),
        cipher_suites: suites.clone(),
        extended_master_secret: ExtendedMasterSecretType::Request,
        named_curves: curves.to_vec(),
        session_store: stores.map(|s| s.0.clone()),
        ..Default::default()
    };
    let server_cfg = Config {
        certificates: vec![cert.clone()],
        cipher_suites: suites,
        extended_master_secret: ExtendedMasterSecretType::Request,
        session_store: stores.map(|s| s.1.clone()),
        ..Default::default()
    };
    let client = tokio::spawn(DTLSConn::new(Arc::new(a), client_cfg, true, None));
    let server = DTLSConn::new(Arc::new(b), server_cfg, false, None)
        .await
        .expect("server handshake");
    let client = client.await.unwrap().expect("client handshake");
    assert_eq!(client.resumed(), server.resumed());
    let resumed = client.resumed();
    client.close().await.unwrap();
    server.close().await.unwrap();
    resumed
}
