//! Our DTLS client against `openssl s_server -dtls1_2`, with a PKI made by the `openssl` CLI at test time:
//! refusals are judged from what the DTLS stack observed (which side ended the handshake, with which alert,
//! in which flight), and server keys other than P-256 (P-384, RSA-2048) complete.
//!
//! The `openssl` CLI is required in CI; elsewhere a missing one skips loudly.

use crate::common;

use coap_harness::transport::dtls::{handshake, ClientSettings};
use coap_harness::trust::{ServerTrust, TrustVerdict};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Long enough that a verdict other than `handshake_timeout` means the server answered.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(8);

fn openssl_available() -> bool {
    common::require("openssl")
}

/// Runs the `openssl` CLI in `dir`; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test PKI made by the openssl CLI: every leaf is `CN=localhost` with SAN localhost and 127.0.0.1.
struct Pki {
    dir: tempfile::TempDir,
}

/// `openssl req -newkey` arguments for P-256 and P-384 keys.
const P256: &[&str] = &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
const P384: &[&str] = &["ec", "-pkeyopt", "ec_paramgen_curve:P-384"];

impl Pki {
    fn new() -> Self {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        pki.ca("ca");
        pki.ca("rogue-ca");
        pki
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn ca(&self, name: &str) {
        openssl(
            self.dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "30",
                "-subj",
                &format!("/CN=coap-harness test {name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        self.protect(name);
    }

    /// A leaf `name` issued by `ca` for `key` (`openssl req -newkey` syntax) signed with `digest`.
    fn leaf(&self, name: &str, ca: &str, key: &[&str], digest: &str) {
        self.leaf_for_days(name, ca, key, digest, "10");
    }

    /// The same, valid for `days` from now (`"-1"`: already expired, notAfter a day ago).
    fn leaf_for_days(&self, name: &str, ca: &str, key: &[&str], digest: &str, days: &str) {
        let d = self.dir.path();
        let mut args = vec!["req", "-new", "-newkey"];
        args.extend_from_slice(key);
        let (keyout, csr) = (format!("{name}.key"), format!("{name}.csr"));
        args.extend_from_slice(&[
            "-nodes",
            "-keyout",
            &keyout,
            "-out",
            &csr,
            "-subj",
            "/CN=localhost",
        ]);
        openssl(d, &args);
        self.protect(name);
        std::fs::write(
            d.join(format!("{name}.ext")),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-days",
                days,
                &format!("-{digest}"),
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }

    /// Private keys are written 0600.
    fn protect(&self, name: &str) {
        let key = self.path(&format!("{name}.key"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn der_certs(&self, name: &str) -> Vec<Vec<u8>> {
        let pem = std::fs::read(self.path(&format!("{name}.pem"))).unwrap();
        x509_parser::pem::Pem::iter_from_buffer(&pem)
            .map(|p| p.unwrap().contents)
            .collect()
    }

    /// `name`'s certificate and key as the DTLS stack takes them.
    fn identity(&self, name: &str) -> dtls::crypto::Certificate {
        let key = std::fs::read_to_string(self.path(&format!("{name}.key"))).unwrap();
        let key = rcgen::KeyPair::from_pem(&key).unwrap();
        dtls::crypto::Certificate {
            certificate: self.der_certs(name).into_iter().map(Into::into).collect(),
            private_key: dtls::crypto::CryptoPrivateKey::from_key_pair(&key).unwrap(),
        }
    }

    fn settings(&self, client: Option<&str>) -> ClientSettings {
        let mut roots = rustls::RootCertStore::empty();
        for der in self.der_certs("ca") {
            roots.add(der.into()).unwrap();
        }
        ClientSettings {
            trust: ServerTrust::verify(roots, "localhost").unwrap(),
            server_name: "localhost".into(),
            client_certificate: client.map(|c| self.identity(c)),
            psk: None,
            cipher_suites: Vec::new(),
            curves: Vec::new(),
            handshake_timeout: HANDSHAKE_TIMEOUT,
            connection_id: None,
        }
    }
}

/// `openssl s_server -dtls1_2` on a free loopback port, killed on drop.
struct Server {
    _peer: common::Peer,
    port: u16,
    /// Every line s_server printed after ACCEPT (what clients sent it, among others).
    lines: std::sync::mpsc::Receiver<String>,
}

impl Server {
    fn start(pki: &Pki, cert: &str, extra: &[&str]) -> Self {
        let port = common::free_udp_port();
        let (cert_file, key_file) = (
            pki.path(&format!("{cert}.pem")),
            pki.path(&format!("{cert}.key")),
        );
        let mut child = Command::new("openssl")
            .args(["s_server", "-dtls1_2", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert_file)
            .arg("-key")
            .arg(&key_file)
            .args(extra)
            .current_dir(pki.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        let stdout = child.stdout.take().unwrap();
        let peer = common::Peer::new(child);
        // s_server prints ACCEPT once it listens; keep draining its output so it never blocks.
        let (tx, rx) = std::sync::mpsc::channel();
        let (lines_tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("ACCEPT") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                } else {
                    let _ = lines_tx.send(line);
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("openssl s_server did not start");
        Server {
            _peer: peer,
            port,
            lines,
        }
    }

    async fn connect(&self, settings: &ClientSettings) -> (TrustVerdict, String) {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(("127.0.0.1", self.port)).await.unwrap();
        match handshake(Arc::new(socket), settings).await {
            Ok(session) => {
                let _ = session.conn.close().await;
                (session.verdict, String::new())
            }
            Err(failed) => (failed.judgement.verdict, failed.judgement.detail),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_verdicts_rest_on_the_servers_alert() {
    if !openssl_available() {
        return;
    }
    let pki = Pki::new();
    pki.leaf("server", "ca", P256, "sha256");
    pki.leaf("client", "ca", P256, "sha256");
    pki.leaf("rogue", "rogue-ca", P256, "sha256");
    // Issued by the trusted CA, but its validity ended a day ago.
    pki.leaf_for_days("expired-client", "ca", P256, "sha256", "-1");
    let server = Server::start(
        &pki,
        "server",
        &["-Verify", "1", "-CAfile", "ca.pem", "-verify_return_error"],
    );

    let (verdict, detail) = server.connect(&pki.settings(None)).await;
    assert_eq!(verdict, TrustVerdict::ClientCertRequired, "{detail}");
    assert!(
        detail.contains("CertificateRequest received; empty Certificate sent"),
        "{detail}"
    );

    let (verdict, detail) = server.connect(&pki.settings(Some("rogue"))).await;
    assert_eq!(verdict, TrustVerdict::ClientCertRejected, "{detail}");
    assert!(detail.contains("our Certificate sent"), "{detail}");

    let (verdict, detail) = server.connect(&pki.settings(Some("expired-client"))).await;
    assert_eq!(verdict, TrustVerdict::ClientCertRejected, "{detail}");
    assert!(detail.contains("certificate_expired"), "{detail}");

    let (verdict, detail) = server.connect(&pki.settings(Some("client"))).await;
    assert_eq!(verdict, TrustVerdict::Ok, "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_shared_cipher_is_not_a_client_certificate_verdict() {
    if !openssl_available() {
        return;
    }
    let pki = Pki::new();
    pki.leaf("server", "ca", P256, "sha256");
    pki.leaf("client", "ca", P256, "sha256");
    // The server does not check client certificates, and offers only a suite our client does not.
    let server = Server::start(
        &pki,
        "server",
        &["-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"],
    );
    for client in [None, Some("client")] {
        let (verdict, detail) = server.connect(&pki.settings(client)).await;
        assert_eq!(
            verdict,
            TrustVerdict::NoSharedCipher,
            "{client:?}: {detail}"
        );
        assert!(detail.contains("handshake_failure"), "{detail}");
    }
}

/// `dtls.curves` reaches the wire: a client offering only P-384 (or X25519 then P-384) completes against a
/// server that takes only P-384, and ECDHE ran on P-384; a client offering only X25519 is refused. (In TLS
/// 1.2 the offered curves also bind the server's ECDSA certificate: OpenSSL refuses a P-384-only client
/// with a P-256 certificate, hence the P-384 leaf.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_offers_only_the_configured_curves() {
    use coap_harness::transport::dtls::NamedCurve;
    if !openssl_available() {
        return;
    }
    let pki = Pki::new();
    pki.leaf("server", "ca", P384, "sha256");
    let server = Server::start(&pki, "server", &["-groups", "P-384"]);
    let mut settings = pki.settings(None);
    for curves in [
        vec![NamedCurve::P384],
        vec![NamedCurve::X25519, NamedCurve::P384],
    ] {
        settings.curves = curves.clone();
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(("127.0.0.1", server.port)).await.unwrap();
        let session = handshake(Arc::new(socket), &settings)
            .await
            .unwrap_or_else(|f| panic!("{curves:?}: {:?}", f.judgement));
        assert_eq!(session.verdict, TrustVerdict::Ok);
        assert_eq!(session.conn.named_curve(), NamedCurve::P384, "{curves:?}");
        let _ = session.conn.close().await;
    }

    settings.curves = vec![NamedCurve::X25519];
    let (verdict, detail) = server.connect(&settings).await;
    assert_ne!(verdict, TrustVerdict::Ok, "X25519-only client: {detail}");
    assert_ne!(
        verdict,
        TrustVerdict::HandshakeTimeout,
        "the server refused: {detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p384_and_rsa_server_certificates_complete() {
    if !openssl_available() {
        return;
    }
    let pki = Pki::new();
    for (name, key) in [
        ("p256", P256),
        ("p384", P384),
        ("rsa2048", &["rsa:2048"][..]),
    ] {
        pki.leaf(name, "ca", key, "sha256");
        let server = Server::start(&pki, name, &[]);
        let (verdict, detail) = server.connect(&pki.settings(None)).await;
        assert_eq!(verdict, TrustVerdict::Ok, "{name}: {detail}");
    }
}

/// A SHA-1-signed leaf and an RSA-1024 leaf. OpenSSL 3.0 refuses to serve either at its default security
/// level ("ca md too weak", "ee key too small": s_server exits, and a client then rightly times out), so
/// the server runs at level 0. Our client must then fail at once with what is wrong with the certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_we_reject_fails_the_handshake_with_our_reason() {
    if !openssl_available() {
        return;
    }
    let pki = Pki::new();
    pki.leaf("sha1", "ca", P256, "sha1");
    pki.leaf("rsa1024", "ca", &["rsa:1024"], "sha256");
    for (name, why) in [
        // webpki's verdict on the chain, from our verification callback.
        ("sha1", "UnsupportedSignatureAlgorithm"),
        // Our check of the leaf's key size (webpki accepts a 1024-bit RSA key).
        ("rsa1024", "1024-bit RSA key"),
    ] {
        let server = Server::start(&pki, name, &["-cipher", "ALL:@SECLEVEL=0"]);
        let (verdict, detail) = server.connect(&pki.settings(None)).await;
        assert_eq!(verdict, TrustVerdict::WeakSignature, "{name}: {detail}");
        assert!(detail.contains(why), "{name}: {detail}");
    }
}

/// The embedded server signs with P-384 and RSA-2048 keys made by openssl, and offers the suites each key
/// can sign: our client and `openssl s_client` (verifying chain and name) both complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_server_signs_with_p384_and_rsa_keys() {
    use coap_harness::server::{self, DtlsServerConfig, ServerConfig, TokenPolicy};
    if !openssl_available() {
        return;
    }
    let pki = Pki::new();
    for (name, key) in [("p384", P384), ("rsa2048", &["rsa:2048"][..])] {
        pki.leaf(name, "ca", key, "sha256");
        let server = server::start(ServerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            tokens: TokenPolicy::Any,
            response_delay: None,
            plain: false,
            dtls: Some(DtlsServerConfig::new(
                "127.0.0.1:0".parse().unwrap(),
                pki.identity(name),
            )),
        })
        .await
        .expect("server starts");
        let addr = server.dtls_addr().unwrap();
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(addr).await.unwrap();
        match handshake(Arc::new(socket), &pki.settings(None)).await {
            Ok(session) => {
                assert_eq!(session.verdict, TrustVerdict::Ok, "{name}");
                let _ = session.conn.close().await;
            }
            Err(failed) => panic!("{name}: {:?}", failed.judgement),
        }
        let out = tokio::task::spawn_blocking({
            let dir = pki.dir.path().to_path_buf();
            move || {
                Command::new("openssl")
                    .args(["s_client", "-dtls1_2", "-connect"])
                    .arg(addr.to_string())
                    .args([
                        "-CAfile",
                        "ca.pem",
                        "-verify_return_error",
                        "-verify_hostname",
                        "localhost",
                    ])
                    .current_dir(dir)
                    .stdin(Stdio::null())
                    .output()
                    .expect("run openssl s_client")
            }
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Verify return code: 0 (ok)"),
            "{name}: {text}"
        );
        let suite = if name == "rsa2048" {
            "ECDHE-RSA-"
        } else {
            "ECDHE-ECDSA-"
        };
        assert!(
            text.contains(&format!("Cipher is {suite}")),
            "{name}: {text}"
        );
        server.shutdown().await;
    }
}

/// Connection ID (RFC 9146) against OpenSSL 3.0, which does not implement it (nor does libcoap 4.3.1 on
/// Debian: there is no independent CID peer here; the CID records themselves are checked between our client
/// and our server, in the fork's tests and the gate's NAT-rebinding test). A client without CID interoperates
/// as before; a client offering CID (extension 54, which s_server ignores) falls back to none, and its
/// records are plain DTLS 1.2 ones OpenSSL decrypts: the line we send is the line s_server prints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_id_offer_falls_back_to_none_against_openssl() {
    if !openssl_available() {
        return;
    }
    let pki = Pki::new();
    pki.leaf(
        "p256",
        "ca",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "sha256",
    );
    for offer in [None, Some(8)] {
        // -msg: s_server dumps every handshake message in hex (-tlsextdebug names only the extensions it
        // knows, so not 54).
        let server = Server::start(&pki, "p256", &["-msg"]);
        let settings = ClientSettings {
            connection_id: offer,
            ..pki.settings(None)
        };
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(("127.0.0.1", server.port)).await.unwrap();
        let session = match handshake(Arc::new(socket), &settings).await {
            Ok(s) => s,
            Err(f) => panic!(
                "offer {offer:?}: {:?} {}",
                f.judgement.verdict, f.judgement.detail
            ),
        };
        assert_eq!(session.verdict, TrustVerdict::Ok, "offer {offer:?}");
        assert_eq!(
            session.conn.connection_ids(),
            None,
            "OpenSSL 3.0 does not answer extension 54 (offer {offer:?})"
        );
        let text = format!("plain records with offer {offer:?}");
        session
            .conn
            .write(format!("{text}\n").as_bytes(), None)
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match server.lines.recv_timeout(left) {
                Ok(line) if line.trim() == text => break,
                Ok(line) => seen.push(line),
                Err(_) => panic!("s_server never printed `{text}`; it printed {seen:#?}"),
            }
        }
        // The hex dump of what s_server received: the ClientHello carries extension 54 (type 00 36, length
        // 00 09, an 8-byte CID) exactly when we offered it.
        let hex: String = seen
            .iter()
            .filter(|l| l.starts_with("    "))
            .flat_map(|l| l.split_whitespace())
            .filter(|w| w.len() == 2 && w.chars().all(|c| c.is_ascii_hexdigit()))
            .collect();
        assert!(hex.len() > 400, "s_server dumped the handshake: {seen:#?}");
        assert_eq!(
            hex.contains("0036000908"),
            offer.is_some(),
            "extension 54 in the ClientHello (offer {offer:?})"
        );
        let _ = session.conn.close().await;
    }
}
