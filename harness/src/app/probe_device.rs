//! `coap-harness device`: our own DTLS client (`transport::dtls`, rustls/webpki verification) as a
//! well-behaved device for `device_trust:` runs. It verifies the server against a CA file and the host name
//! and sends one telemetry POST. Exit 0 when the server answered, 1 when the handshake failed (it prints
//! why), 2 when it could not try.

use crate::coap::{Code, Message, MessageType, Token};
use crate::transport::dtls::{handshake, ClientSettings};
use crate::trust::ServerTrust;
use std::net::ToSocketAddrs;
use std::path::Path;
use std::time::Duration;

/// Connects to `host:port` trusting only the CA certificates in `ca` (presenting the certificate `client`,
/// file and key, when given), and sends one POST.
pub async fn run(ca: &Path, host: &str, port: u16, client: Option<(&Path, &Path)>) -> u8 {
    let client_certificate = match client {
        None => None,
        Some((cert, key)) => {
            let id = match crate::pki::read_identity(cert, key) {
                Ok(id) => id,
                Err(e) => return super::commands::fail(e),
            };
            match crate::transport::dtls::signing_key(&id.key) {
                Ok(private_key) => Some(dtls::crypto::Certificate {
                    certificate: id.chain,
                    private_key,
                }),
                Err(e) => return super::commands::fail(format!("{}: {e}", key.display())),
            }
        }
    };
    let certs = match crate::pki::read_certs(ca) {
        Ok(c) => c,
        Err(e) => return super::commands::fail(e),
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        if let Err(e) = roots.add(rustls::pki_types::CertificateDer::from(c)) {
            return super::commands::fail(format!("{}: {e}", ca.display()));
        }
    }
    let trust = match ServerTrust::verify(roots, host) {
        Ok(t) => t,
        Err(e) => return super::commands::fail(e),
    };
    let settings = ClientSettings {
        trust,
        server_name: host.to_string(),
        client_certificate,
        psk: None,
        cipher_suites: Vec::new(),
        curves: Vec::new(),
        handshake_timeout: Duration::from_secs(5),
        connection_id: None,
    };
    let addr = match (host, port)
        .to_socket_addrs()
        .map(|mut a| a.find(|a| a.is_ipv4()))
    {
        Ok(Some(a)) => a,
        Ok(None) => return super::commands::fail(format!("{host}: no IPv4 address")),
        Err(e) => return super::commands::fail(format!("{host}: {e}")),
    };
    let sock = match crate::engine::session::connect(None, addr).await {
        Ok(s) => s,
        Err(e) => return super::commands::fail(format!("cannot open a UDP socket: {e}")),
    };
    match handshake(sock, &settings).await {
        Ok(session) => {
            let mut msg = Message::new(MessageType::Con, Code::POST, 1, Token::from_u64(1));
            msg.set_path(&format!("api/v1/{}/telemetry", super::device_trust::TOKEN));
            msg.payload = br#"{"t":1}"#.to_vec();
            let conn = session.conn;
            if let Err(e) = conn.write(&msg.to_bytes(), None).await {
                return super::commands::fail(format!("send: {e}"));
            }
            let mut buf = vec![0u8; 2048];
            match tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf, None)).await {
                Ok(Ok(n)) => match Message::decode(&buf[..n]) {
                    Ok(m) => println!("connected (verified {host}); response {}", m.code),
                    Err(e) => println!("connected; undecodable response: {e}"),
                },
                _ => println!("connected; no response"),
            }
            let _ = conn.close().await;
            0
        }
        Err(failed) => {
            eprintln!(
                "handshake failed: {} ({})",
                failed.judgement.verdict, failed.judgement.detail
            );
            1
        }
    }
}
