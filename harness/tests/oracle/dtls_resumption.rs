//! DTLS session resumption by session ID (issue #15 item 4) against OpenSSL, both ways: our client resumes
//! its session with `openssl s_server -dtls1_2` (which prints `Reused session-id` for each abbreviated
//! handshake) and with libcoap's `coap-server-openssl`; `openssl s_client -dtls1_2 -reconnect -no_ticket`
//! resumes its session with our `serve --coaps` (it prints `New` once, then `Reused` with the same
//! Session-ID on each of its five reconnects).
//!
//! The `openssl` CLI is required in CI; elsewhere a missing one skips loudly (libcoap likewise).

use crate::common::{self, Peer};

use coap_harness::transport::dtls::{device_sessions, handshake_resuming, ClientSettings};
use coap_harness::trust::ServerTrust;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A self-signed P-256 certificate for localhost made by the openssl CLI: (`cert.pem`, `key.pem`) in `dir`.
fn self_signed(dir: &Path) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Our client without verification (resumption is the point here, trust is judged elsewhere).
fn settings() -> ClientSettings {
    ClientSettings {
        trust: ServerTrust::Insecure,
        server_name: "localhost".into(),
        client_certificate: None,
        psk: None,
        cipher_suites: Vec::new(),
        curves: Vec::new(),
        connection_id: None,
        handshake_timeout: Duration::from_secs(8),
    }
}

/// `rounds` handshakes from new sockets with one device's session store, each closed with close_notify;
/// whether each resumed, and the session id each ended with.
async fn handshakes(addr: SocketAddr, rounds: usize) -> Vec<(bool, Vec<u8>)> {
    let sessions = device_sessions();
    let mut seen = Vec::new();
    for round in 0..rounds {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(addr).await.unwrap();
        let session = handshake_resuming(Arc::new(socket), &settings(), Some(&sessions))
            .await
            .unwrap_or_else(|f| panic!("round {round}: {:?}", f.judgement));
        seen.push((session.resumed, session.conn.session_id().to_vec()));
        let _ = session.conn.close().await;
    }
    seen
}

/// The first handshake full, the others resumed, all with the first one's session id.
fn assert_resumed_after_the_first(seen: &[(bool, Vec<u8>)]) {
    let resumed: Vec<bool> = seen.iter().map(|(r, _)| *r).collect();
    let mut want = vec![true; seen.len()];
    want[0] = false;
    assert_eq!(resumed, want, "{seen:?}");
    let id = &seen[0].1;
    assert!(!id.is_empty() && id.len() <= 32, "{seen:?}");
    assert!(seen.iter().all(|(_, i)| i == id), "{seen:?}");
}

/// Our client resumes its session with `openssl s_server`: OpenSSL itself says the later handshakes
/// reused the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_resumes_with_openssl_s_server() {
    if !common::require("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path());
    let port = common::free_udp_port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new("timeout")
        .args(["60", "openssl", "s_server", "-dtls1_2", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-cert",
            "cert.pem",
            "-key",
            "key.pem",
            "-naccept",
            "3",
            "-no_ticket",
        ])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(log.reopen().unwrap())
        .stderr(Stdio::from(log.reopen().unwrap()))
        .spawn()
        .expect("start openssl s_server");
    // Its stdin stays open (EOF would end it early) until the test ends.
    let _stdin = child.stdin.take();
    let _server = Peer::new(child);
    let output = || std::fs::read_to_string(log.path()).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !output().contains("ACCEPT") {
        assert!(Instant::now() < deadline, "s_server: {}", output());
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = handshakes(format!("127.0.0.1:{port}").parse().unwrap(), 3).await;
    assert_resumed_after_the_first(&seen);
    let deadline = Instant::now() + Duration::from_secs(5);
    while output().matches("Reused session-id").count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = output();
    eprintln!("openssl s_server:\n{text}");
    assert_eq!(text.matches("Reused session-id").count(), 2, "{text}");
}

/// Our client resumes its session with libcoap's `coap-server-openssl` (Debian's 4.3 build keeps
/// OpenSSL's session cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_resumes_with_libcoap_openssl_server() {
    if !common::require("openssl") || !common::require("coap-server-openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path());
    let (_server, addr) = common::libcoap_dtls_server(
        &dir.path().join("cert.pem"),
        &dir.path().join("key.pem"),
        None,
    );
    let seen = handshakes(addr, 3).await;
    assert_resumed_after_the_first(&seen);
}

/// `openssl s_client -reconnect -no_ticket` (by session ID, not a ticket) against `serve --coaps`: a new
/// session, then five reconnects that each reuse it.
#[test]
fn openssl_s_client_resumes_with_serve_coaps() {
    if !common::require("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path());
    let (plain, secure) = (common::free_udp_port(), common::free_udp_port());
    let child = Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .args(["serve", "--any-token", "--coap"])
        .arg(format!("127.0.0.1:{plain}"))
        .arg("--coaps")
        .arg(format!("127.0.0.1:{secure}"))
        .args(["--cert", "cert.pem", "--key", "key.pem"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start serve");
    let _server = Peer::new(child);
    common::wait_for_coap(
        format!("127.0.0.1:{plain}").parse().unwrap(),
        Duration::from_secs(15),
    );
    let out = Command::new("timeout")
        .args(["30", "openssl", "s_client", "-dtls1_2", "-connect"])
        .arg(format!("127.0.0.1:{secure}"))
        .args(["-reconnect", "-no_ticket"])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("New, ") || l.starts_with("Reused, "))
        .collect();
    eprintln!("{}", lines.join("\n"));
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[0].starts_with("New, TLSv1.2"), "{text}");
    assert!(
        lines[1..].iter().all(|l| l.starts_with("Reused, TLSv1.2")),
        "{text}"
    );
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Session-ID: "))
        .collect();
    assert_eq!(ids.len(), 6, "{text}");
    assert!(ids.iter().all(|i| *i == ids[0] && i.len() == 64), "{ids:?}");
}
