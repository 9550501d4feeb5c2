//! A well-behaved device for `device_trust:` runs: our own DTLS client (`transport::dtls`, rustls/webpki
//! verification) connects, verifies the server against the CA file and the host name, and sends one
//! telemetry POST. Exit 0 when the server answered, 1 when the handshake failed (it prints why).
//!
//! ```text
//! device_trust:
//!   device: { command: "target/debug/examples/dtls_device {ca} {host} {port}" }
//! ```

use coap_harness::coap::{Code, Message, MessageType, Token};
use coap_harness::transport::dtls::{handshake, ClientSettings};
use coap_harness::trust::ServerTrust;
use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, ca, host, port] = &args[..] else {
        eprintln!("usage: dtls_device CA_FILE HOST PORT");
        return ExitCode::from(2);
    };
    let certs = match coap_harness::pki::read_certs(std::path::Path::new(ca)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots
            .add(rustls::pki_types::CertificateDer::from(c))
            .expect("a CA certificate");
    }
    let trust = ServerTrust::verify(roots, host).expect("a server name");
    let settings = ClientSettings {
        trust,
        server_name: host.clone(),
        client_certificate: None,
        psk: None,
        cipher_suites: Vec::new(),
        handshake_timeout: Duration::from_secs(5),
    };
    let Some(addr) = (host.as_str(), port.parse::<u16>().expect("a port"))
        .to_socket_addrs()
        .expect("a resolvable host")
        .find(|a| a.is_ipv4())
    else {
        eprintln!("{host}: no IPv4 address");
        return ExitCode::from(2);
    };
    let sock = coap_harness::engine::session::connect(None, addr)
        .await
        .expect("a UDP socket");
    match handshake(sock, &settings).await {
        Ok(session) => {
            let mut msg = Message::new(MessageType::Con, Code::POST, 1, Token::from_u64(1));
            msg.set_path("api/v1/device-trust/telemetry");
            msg.payload = br#"{"t":1}"#.to_vec();
            let conn = session.conn;
            conn.write(&msg.to_bytes(), None).await.expect("send");
            let mut buf = vec![0u8; 2048];
            match tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf, None)).await {
                Ok(Ok(n)) => match Message::decode(&buf[..n]) {
                    Ok(m) => println!("response {}", m.code),
                    Err(e) => println!("undecodable response: {e}"),
                },
                _ => println!("no response"),
            }
            let _ = conn.close().await;
            ExitCode::SUCCESS
        }
        Err(failed) => {
            eprintln!(
                "refused the server: {} ({})",
                failed.judgement.verdict, failed.judgement.detail
            );
            ExitCode::from(1)
        }
    }
}
