//! `serve --coaps` with keys and certificates as OpenSSL writes them (SEC1 with and without the EC PARAMETERS
//! block, PKCS#1 and PKCS#8 RSA, PKCS#8 EC, DER), checked by libcoap's OpenSSL and GnuTLS clients: trusted
//! CA -> 2.01; an unrelated CA -> "unknown CA"; no CA -> success with "overridden" warnings. And the load-time
//! checks: a key that is not the certificate's, or that cannot be used, stops `serve` with exit 2 before it
//! listens, naming the file.

use crate::common;

use common::openssl::{self, OpensslPki};
use common::Peer;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// (case, certificate, key) as the openssl CLI made them.
const KEYS: &[(&str, &str, &str)] = &[
    ("p256_pkcs8", "p256.pem", "p256.key"),
    ("p256_sec1_with_params", "p256-sec1.pem", "p256-sec1.key"),
    (
        "p256_sec1_no_params",
        "p256-sec1-noparams.pem",
        "p256-sec1-noparams.key",
    ),
    ("p256_der", "p256.der", "p256.key.der"),
    ("rsa2048_pkcs1", "rsa2048.pem", "rsa2048.key"),
    ("rsa2048_pkcs8", "rsa2048-pkcs8.pem", "rsa2048-pkcs8.key"),
    ("p384_sec1", "p384.pem", "p384.key"),
];

fn harness(args: &[&str], pki: &OpensslPki) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coap-harness"));
    cmd.args(args).current_dir(pki.dir());
    cmd
}

/// `serve` on free ports with this identity: the running server and its coaps port, or how it exited.
fn serve(pki: &OpensslPki, cert: &str, key: &str) -> Result<(Peer, u16), Output> {
    serve_with(pki, cert, key, &[])
}

/// `serve` with `extra` arguments after the usual ones.
fn serve_with(
    pki: &OpensslPki,
    cert: &str,
    key: &str,
    extra: &[&str],
) -> Result<(Peer, u16), Output> {
    let plain = common::free_udp_port();
    let secure = common::free_udp_port();
    let (plain_addr, secure_addr) = (format!("127.0.0.1:{plain}"), format!("127.0.0.1:{secure}"));
    let mut args = vec![
        "serve",
        "--any-token",
        "--coap",
        &plain_addr,
        "--coaps",
        &secure_addr,
        "--cert",
        cert,
        "--key",
        key,
    ];
    args.extend_from_slice(extra);
    let mut child = harness(&args, pki)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Either it exits (refused the material) or it answers on the plain port.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = [0u8; 1500];
    loop {
        if child.try_wait().unwrap().is_some() {
            return Err(child.wait_with_output().unwrap());
        }
        let _ = sock.send_to(&[0x40, 0x01, 0x12, 0x34], ("127.0.0.1", plain));
        if sock.recv_from(&mut buf).is_ok() {
            return Ok((Peer::new(child), secure));
        }
        assert!(Instant::now() < deadline, "serve neither ran nor exited");
    }
}

/// A libcoap client POSTing telemetry (its response line reads `... c:2.01 ...`; a bare "2.01" also matches
/// its log timestamps) to `coaps://127.0.0.1:PORT`, bounded; its stdout and stderr.
fn coap_client(bin: &str, port: u16, ca: Option<&std::path::Path>) -> String {
    let mut cmd = Command::new("timeout");
    cmd.args(["20", bin, "-v", "6", "-B", "5", "-m", "POST"]);
    if let Some(ca) = ca {
        cmd.arg("-R").arg(ca);
    }
    let out = cmd
        .args(["-t", "application/json", "-e", r#"{"temperature":42}"#])
        .arg(format!(
            "coaps://127.0.0.1:{port}/api/v1/any-device/telemetry"
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn serve_coaps_with_openssl_keys_answers_libcoap_clients() {
    if !openssl::available()
        || !common::require("coap-client-openssl")
        || !common::require("coap-client-gnutls")
    {
        return;
    }
    let pki = OpensslPki::make();
    pki.openssl(&[
        "x509", "-in", "p256.pem", "-outform", "DER", "-out", "p256.der",
    ]);
    pki.openssl(&[
        "pkey",
        "-in",
        "p256.key",
        "-outform",
        "DER",
        "-out",
        "p256.key.der",
    ]);
    let (ca, other) = (pki.path("ca.pem"), pki.path("other-ca.pem"));
    let mut failures = Vec::new();
    for (case, cert, key) in KEYS {
        let (server, port) = match serve(&pki, cert, key) {
            Err(o) => {
                failures.push(format!(
                    "{case}: serve exited {:?}: {}",
                    o.status,
                    stderr(&o)
                ));
                continue;
            }
            Ok(running) => running,
        };
        let mut seen = Vec::new();
        for (bin, ca_file, want, refuse) in [
            ("coap-client-openssl", Some(&ca), "c:2.01", None),
            (
                "coap-client-openssl",
                Some(&other),
                "unknown CA",
                Some("c:2.01"),
            ),
            (
                "coap-client-openssl",
                None,
                "unable to get local issuer certificate: overridden",
                None,
            ),
            ("coap-client-gnutls", Some(&ca), "c:2.01", None),
            (
                "coap-client-gnutls",
                Some(&other),
                "CA is unknown",
                Some("c:2.01"),
            ),
        ] {
            let out = coap_client(bin, port, ca_file.map(|p| p.as_path()));
            let ok = out.contains(want) && refuse.is_none_or(|r| !out.contains(r));
            let no_ca_posted = ca_file.is_some() || out.contains("c:2.01");
            if !(ok && no_ca_posted) {
                failures.push(format!(
                    "{case}: {bin} with CA {ca_file:?}: expected {want:?}: {out}"
                ));
            }
            seen.push(if ok && no_ca_posted { "yes" } else { "NO" });
        }
        println!("| `{case}` | openssl: trusted 2.01 {}, other CA refused {}, no CA overridden {}; gnutls: trusted 2.01 {}, other CA refused {} |",
            seen[0], seen[1], seen[2], seen[3], seen[4]);
        drop(server);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn serve_refuses_unusable_keys_before_listening() {
    if !openssl::available() {
        return;
    }
    let pki = OpensslPki::make();
    pki.openssl(&[
        "pkey",
        "-in",
        "p256.key",
        "-aes256",
        "-passout",
        "pass:secret",
        "-out",
        "encrypted.key",
    ]);
    for (cert, key, says) in [
        // Another certificate's key: caught at load, not as failed handshakes later.
        (
            "p256.pem",
            "p256-sec1.key",
            "does not belong to the certificate",
        ),
        (
            "rsa2048.pem",
            "p256.key",
            "does not belong to the certificate",
        ),
        ("p256.pem", "encrypted.key", "encrypted"),
        ("p256.pem", "p256.pem", "no PRIVATE KEY block"),
        ("p256.key", "p256.key", "no CERTIFICATE block"),
        // ring refuses RSA keys under 2048 bits.
        (
            "rsa1024.pem",
            "rsa1024.key",
            "PKCS#1 private key not usable",
        ),
    ] {
        let o = harness(
            &[
                "serve",
                "--coap",
                "127.0.0.1:0",
                "--coaps",
                "127.0.0.1:0",
                "--cert",
                cert,
                "--key",
                key,
            ],
            &pki,
        )
        .output()
        .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{cert} {key}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(key) && err.contains(says),
            "{cert} {key}: {err}"
        );
    }
}

/// An Ed25519 server certificate (OpenSSL's DTLS cannot serve one, so our own server does, with the
/// openssl-made key and certificate) is accepted by our client with the default suites.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_server_certificate_accepted_by_our_client() {
    use coap_harness::transport::dtls::{handshake, ClientSettings};
    use coap_harness::trust::{ServerTrust, TrustVerdict};
    if !openssl::available() {
        return;
    }
    let pki = tokio::task::spawn_blocking(OpensslPki::make).await.unwrap();
    let (server, port) = serve(&pki, "ed25519.pem", "ed25519.key")
        .unwrap_or_else(|o| panic!("serve refused Ed25519: {}", stderr(&o)));
    let mut roots = rustls::RootCertStore::empty();
    for der in coap_harness::pki::read_certs(&pki.path("ca.pem")).unwrap() {
        roots
            .add(rustls::pki_types::CertificateDer::from(der))
            .unwrap();
    }
    let settings = ClientSettings {
        trust: ServerTrust::verify(roots, "localhost").unwrap(),
        server_name: "localhost".into(),
        client_certificate: None,
        psk: None,
        cipher_suites: Vec::new(),
        curves: Vec::new(),
        handshake_timeout: Duration::from_secs(10),
        connection_id: None,
    };
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(("127.0.0.1", port)).await.unwrap();
    match handshake(std::sync::Arc::new(socket), &settings).await {
        Ok(session) => {
            assert_eq!(session.verdict, TrustVerdict::Ok);
            let _ = session.conn.close().await;
        }
        Err(f) => panic!("Ed25519 server refused: {:?}", f.judgement),
    }
    drop(server);
}

/// A device key the DTLS stack cannot use, or one that is not the certificate's, stops `run` with exit 2
/// before any device starts (not as failed handshakes blamed on the server).
#[test]
fn run_refuses_unusable_client_keys_before_the_run() {
    if !openssl::available() {
        return;
    }
    let pki = OpensslPki::make();
    let cases = [(
        "mismatch",
        "p256.pem",
        "p256-sec1.key",
        "does not belong to the certificate",
    )];
    for (_, cert, key, says) in cases {
        let scenario = pki.path("s.yaml");
        std::fs::write(
            &scenario,
            format!(
                "name: keys\ntarget: coaps://127.0.0.1:9\ndevices:\n  count: 1\n\
                 dtls:\n  ca: ca.pem\n  client_cert: {cert}\n  client_key: {key}\n  handshake_timeout: 1s\n\
                 phases:\n  - duration: 1s\n    interval: 1s\n"
            ),
        )
        .unwrap();
        let o = harness(&["run", "s.yaml", "--out", "out"], &pki)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{cert} {key}: {err}");
        assert!(
            err.contains(key) && err.contains(says),
            "{cert} {key}: {err}"
        );
        assert!(!pki.path("out/report.json").exists(), "no run happened");
    }
}

/// `serve --client-auth thingsboard --device-certs DIR` as ThingsBoard's X.509 device authentication, judged by
/// libcoap's OpenSSL client presenting openssl-made certificates on the token-less device path: a registered
/// certificate -> 2.01; an unregistered one (same CA) -> handshake ok, 4.01; no certificate -> 4.01. The token
/// path keeps working on the same port.
#[test]
fn serve_thingsboard_mode_maps_certificates_to_devices() {
    if !openssl::available() || !common::require("coap-client-openssl") {
        return;
    }
    let pki = OpensslPki::make();
    std::fs::create_dir_all(pki.path("devices")).unwrap();
    std::fs::copy(pki.path("p256.pem"), pki.path("devices/meter-1.pem")).unwrap();
    let (_server, port) = serve_with(
        &pki,
        "p384.pem",
        "p384.key",
        &["--client-auth", "thingsboard", "--device-certs", "devices"],
    )
    .unwrap_or_else(|o| panic!("serve exited {:?}: {}", o.status, stderr(&o)));
    let post = |path: &str, cert: Option<(&str, &str)>| {
        let mut cmd = Command::new("timeout");
        cmd.args([
            "20",
            "coap-client-openssl",
            "-v",
            "6",
            "-B",
            "5",
            "-m",
            "POST",
        ])
        .arg("-R")
        .arg(pki.path("ca.pem"));
        if let Some((c, k)) = cert {
            cmd.arg("-c").arg(pki.path(c)).arg("-j").arg(pki.path(k));
        }
        let out = cmd
            .args(["-t", "application/json", "-e", r#"{"temperature":42}"#])
            .arg(format!("coaps://127.0.0.1:{port}{path}"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let registered = post("/api/v1/telemetry", Some(("p256.pem", "p256.key")));
    assert!(registered.contains("c:2.01"), "registered: {registered}");
    let unregistered = post("/api/v1/telemetry", Some(("rsa2048.pem", "rsa2048.key")));
    assert!(
        unregistered.contains("c:4.01"),
        "unregistered: {unregistered}"
    );
    let none = post("/api/v1/telemetry", None);
    assert!(none.contains("c:4.01"), "no certificate: {none}");
    let token = post(
        "/api/v1/any-device/telemetry",
        Some(("rsa2048.pem", "rsa2048.key")),
    );
    assert!(token.contains("c:2.01"), "token path: {token}");
}
