//! The DTLS client driver: a handshake over a device's own connected UDP socket, under a timeout (the crate
//! has none), with the server's certificate checked by [`crate::trust`].

use crate::pki::{KeyKind, LoadedKey};
use crate::trust::{self, Judgement, PresentedCert, ServerCertCheck, ServerTrust, TrustVerdict};
use dtls::cipher_suite::CipherSuiteId;
use dtls::config::{Config, ExtendedMasterSecretType};
use dtls::conn::DTLSConn;
pub use dtls::curve::named_curve::NamedCurve;
use dtls::evidence::HandshakeRecorder;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// A pre-shared key identity and secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Psk {
    pub identity: Vec<u8>,
    pub key: Vec<u8>,
}

/// Everything a device needs to open a DTLS session; built once per run (or trust case), shared by devices.
#[derive(Clone)]
pub struct ClientSettings {
    pub trust: ServerTrust,
    /// Sent as SNI when it is a DNS name.
    pub server_name: String,
    pub client_certificate: Option<dtls::crypto::Certificate>,
    pub psk: Option<Psk>,
    pub cipher_suites: Vec<CipherSuiteId>,
    /// ECDHE curves offered, most preferred first; empty: the DTLS crate's default (P-256, X25519, P-384).
    pub curves: Vec<NamedCurve>,
    pub handshake_timeout: Duration,
    /// Connection ID (RFC 9146): offer the server an ID of this many bytes for its records, and use the one
    /// it answers with in ours. `None`: no extension.
    pub connection_id: Option<usize>,
}

impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSettings")
            .field("trust", &self.trust)
            .field("server_name", &self.server_name)
            .field("client_certificate", &self.client_certificate.is_some())
            .field(
                "psk",
                &self
                    .psk
                    .as_ref()
                    .map(|p| String::from_utf8_lossy(&p.identity).into_owned()),
            )
            .field("cipher_suites", &self.cipher_suites)
            .field("curves", &self.curves)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("connection_id", &self.connection_id)
            .finish()
    }
}

/// The suites offered when a scenario names none. PSK: the CoAP-mandated CCM_8 (RFC 7252 §9.1.3.2), then GCM.
/// Certificates: ECDHE_ECDSA and ECDHE_RSA, so that RSA server certificates (Let's Encrypt's default, many
/// ThingsBoard deployments) connect where OpenSSL connects: CCM_8 first (RFC 7252 §9.1.3.3, what constrained
/// servers have), then GCM, then CBC for older stacks.
pub fn default_cipher_suites(psk: bool) -> Vec<CipherSuiteId> {
    use CipherSuiteId as C;
    if psk {
        vec![
            C::Tls_Psk_With_Aes_128_Ccm_8,
            C::Tls_Psk_With_Aes_128_Gcm_Sha256,
        ]
    } else {
        vec![
            C::Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm_8,
            C::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256,
            C::Tls_Ecdhe_Rsa_With_Aes_128_Gcm_Sha256,
            C::Tls_Ecdhe_Ecdsa_With_Aes_256_Cbc_Sha,
            C::Tls_Ecdhe_Rsa_With_Aes_256_Cbc_Sha,
        ]
    }
}

/// Whether the DTLS stack can sign handshakes with a key of this kind. dtls 0.17.2 signs with ECDSA P-256 and
/// Ed25519 only (it refuses P-384 keys at load, and RSA keys at the first handshake); the in-tree fork of
/// issue #12 adds P-384 and RSA: list them here when it is merged.
pub fn can_sign(kind: KeyKind) -> bool {
    matches!(
        kind,
        KeyKind::EcdsaP256 | KeyKind::EcdsaP384 | KeyKind::Ed25519 | KeyKind::Rsa { .. }
    )
}

/// A loaded private key as the DTLS crate's signing key, or why it cannot be one.
pub fn signing_key(key: &LoadedKey) -> Result<dtls::crypto::CryptoPrivateKey, String> {
    if !can_sign(key.kind) {
        return Err(format!(
            "{} key ({}): the DTLS stack cannot sign handshakes with it; use an ECDSA P-256/P-384, Ed25519 \
             or RSA key",
            key.kind, key.format
        ));
    }
    dtls::crypto::CryptoPrivateKey::from_key_pair(&key.pair)
        .map_err(|e| format!("{} key not usable by the DTLS stack: {e}", key.kind))
}

/// The curve names a scenario's `dtls.curves` takes, with the curve each means.
pub const CURVE_NAMES: [(&str, NamedCurve); 3] = [
    ("x25519", NamedCurve::X25519),
    ("p256", NamedCurve::P256),
    ("p384", NamedCurve::P384),
];

/// Parses a curve name (`x25519`, `p256`, `p384`; case-insensitive).
pub fn parse_curve(name: &str) -> Option<NamedCurve> {
    CURVE_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        .map(|(_, c)| *c)
}

/// Parses a suite name as IANA writes it (`TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8`).
pub fn parse_cipher_suite(name: &str) -> Option<CipherSuiteId> {
    use CipherSuiteId as C;
    [
        C::Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm,
        C::Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm_8,
        C::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256,
        C::Tls_Ecdhe_Rsa_With_Aes_128_Gcm_Sha256,
        C::Tls_Ecdhe_Ecdsa_With_Aes_256_Cbc_Sha,
        C::Tls_Ecdhe_Rsa_With_Aes_256_Cbc_Sha,
        C::Tls_Psk_With_Aes_128_Ccm,
        C::Tls_Psk_With_Aes_128_Ccm_8,
        C::Tls_Psk_With_Aes_128_Gcm_Sha256,
        C::Tls_Ecdhe_Rsa_With_ChaCha20_Poly1305_Sha256,
        C::Tls_Ecdhe_Ecdsa_With_ChaCha20_Poly1305_Sha256,
    ]
    .into_iter()
    .find(|c| c.to_string().eq_ignore_ascii_case(name.trim()))
}

/// A session that completed its handshake.
pub struct Session {
    pub conn: Arc<DTLSConn>,
    pub verdict: TrustVerdict,
    pub elapsed: Duration,
    pub presented: Option<PresentedCert>,
    /// Whether the handshake resumed the device's previous session (the abbreviated handshake: no
    /// certificates, no key exchange) rather than running a full one.
    pub resumed: bool,
}

/// A device's own DTLS session store (`dtls.resume`): it holds the device's last session with the
/// server, offered on the next handshake, and at most that one.
pub type DeviceSessions = Arc<dtls::session::MemorySessionStore>;

/// A new, empty [`DeviceSessions`].
pub fn device_sessions() -> DeviceSessions {
    Arc::new(dtls::session::MemorySessionStore::new(1, None))
}

/// A handshake that did not complete.
#[derive(Clone, Debug)]
pub struct Failed {
    pub judgement: Judgement,
    pub elapsed: Duration,
    pub presented: Option<PresentedCert>,
    /// The first fatal alert of the handshake as the DTLS stack recorded it, when one was sent or received.
    pub alert: Option<HandshakeAlert>,
}

/// A fatal alert (or close_notify) that ended a handshake, as observed on the wire by the DTLS stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeAlert {
    /// true: the server sent it (it refused us); false: we sent it (we refused the server).
    pub received: bool,
    /// The RFC 5246 name of the alert (`bad_certificate`, `unknown_ca`, `handshake_failure`...).
    pub description: &'static str,
}

impl HandshakeAlert {
    fn of(e: &dtls::evidence::HandshakeEvidence) -> Option<Self> {
        let received = e.received_alert().map(|d| (true, d));
        received
            .or_else(|| e.sent_alert().map(|d| (false, d)))
            .map(|(received, d)| HandshakeAlert {
                received,
                description: d.rfc_name(),
            })
    }
}

fn config(s: &ClientSettings, check: &ServerCertCheck, recorder: &HandshakeRecorder) -> Config {
    let trust = s.trust.clone();
    let check = check.clone();
    let mut cfg = Config {
        // The crate's own verification would only give strings (and default the name to "localhost");
        // ours runs in the callback below, after the crate has checked the key signature.
        insecure_skip_verify: true,
        verify_peer_certificate: Some(Arc::new(move |certs: &[Vec<u8>], _| {
            check.check(&trust, certs).map_err(dtls::Error::Other)
        })),
        server_name: s.server_name.clone(),
        cipher_suites: if s.cipher_suites.is_empty() {
            default_cipher_suites(s.psk.is_some())
        } else {
            s.cipher_suites.clone()
        },
        named_curves: s.curves.clone(),
        extended_master_secret: ExtendedMasterSecretType::Request,
        // Lets the crate accept a ServerKeyExchange signed with an RSA key under 2048 bits, so that the
        // certificate check below sees such a chain and names it `weak_signature` (it refuses every RSA key
        // under 2048 bits in verifying mode); without it the crate fails first with an unnamed ring error.
        insecure_verification: true,
        // The crate records which side ended a failed handshake, with which alert, in which flight.
        handshake_recorder: Some(recorder.clone()),
        // Once the session is open, the crate reads datagrams into a buffer this size instead of 8 KB for
        // the session's life (issue #15: memory per device): the device loop reads at most a 2 KB CoAP
        // message, plus the record's own bytes.
        inbound_buffer_after_handshake: 2048 + 64 + s.connection_id.map_or(0, |len| len + 1),
        connection_id_generator: s
            .connection_id
            .map(dtls::config::random_connection_id_generator),
        ..Default::default()
    };
    if let Some(cert) = &s.client_certificate {
        cfg.certificates = vec![cert.clone()];
    }
    if let Some(psk) = &s.psk {
        let key = psk.key.clone();
        cfg.psk = Some(Arc::new(move |_hint: &[u8]| {
            let key = key.clone();
            Box::pin(async move { Ok::<_, dtls::Error>(key) })
        }));
        cfg.psk_identity_hint = Some(psk.identity.clone());
        cfg.verify_peer_certificate = None;
    }
    cfg
}

/// Runs a DTLS handshake on `socket` (already connected to the server).
pub async fn handshake(socket: Arc<UdpSocket>, s: &ClientSettings) -> Result<Session, Failed> {
    handshake_resuming(socket, s, None).await
}

/// [`handshake`], offering the session `sessions` holds for this server (when the server still knows
/// it, the handshake is an abbreviated one) and keeping the session the handshake ends with there.
pub async fn handshake_resuming(
    socket: Arc<UdpSocket>,
    s: &ClientSettings,
    sessions: Option<&DeviceSessions>,
) -> Result<Session, Failed> {
    let check = ServerCertCheck::default();
    let recorder = HandshakeRecorder::new();
    let mut cfg = config(s, &check, &recorder);
    cfg.session_store = sessions.map(|s| s.clone() as Arc<dyn dtls::session::SessionStore>);
    let start = Instant::now();
    let conn: Arc<dyn webrtc_util::Conn + Send + Sync> = socket;
    // Boxed: the handshake's state machine is large, and inline it would stay in the device task's future
    // for the device's whole life (issue #15: memory per device).
    let result = tokio::time::timeout(
        s.handshake_timeout,
        Box::pin(DTLSConn::new(conn, cfg, true, None)),
    )
    .await;
    let elapsed = start.elapsed();
    let presented = check.presented.lock().expect("lock").clone();
    match result {
        Ok(Ok(conn)) => Ok(Session {
            resumed: conn.resumed(),
            conn: Arc::new(conn),
            verdict: match (&s.trust, &s.psk) {
                (ServerTrust::Insecure, None) => TrustVerdict::OkInsecure,
                _ => TrustVerdict::Ok,
            },
            elapsed,
            presented,
        }),
        Ok(Err(e)) => Err(Failed {
            judgement: trust::classify(&check, &e, &recorder.evidence()),
            elapsed,
            presented,
            alert: HandshakeAlert::of(&recorder.evidence()),
        }),
        // When our certificate check refused the server, that is the verdict even if the crate then stalled
        // instead of failing (dtls 0.17.2 can; the server had answered).
        Err(_) => Err(Failed {
            judgement: check.judgement().unwrap_or_else(|| Judgement {
                verdict: TrustVerdict::HandshakeTimeout,
                detail: format!(
                    "no handshake within {} (the server stopped answering in flight {})",
                    humantime::format_duration(s.handshake_timeout),
                    recorder.evidence().flight
                ),
            }),
            elapsed,
            presented,
            alert: HandshakeAlert::of(&recorder.evidence()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `can_sign` follows the DTLS crate: upstream dtls 0.17.2 refused to load a P-384 key, the in-tree fork
    /// loads and signs with it. If the crate changes again, `can_sign` must follow.
    #[test]
    fn can_sign_follows_the_dtls_crate() {
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        assert_eq!(
            dtls::crypto::CryptoPrivateKey::from_key_pair(&p384).is_ok(),
            can_sign(KeyKind::EcdsaP384),
            "the dtls crate's P-384 support changed: update can_sign"
        );
        assert!(can_sign(KeyKind::EcdsaP256) && can_sign(KeyKind::Ed25519));
        // RSA signing needs an RSA key rcgen cannot generate here: the oracle test
        // `embedded_server_signs_with_p384_and_rsa_keys` covers it with an openssl-made key.
    }

    #[test]
    fn default_suites_offer_rsa_after_ecdsa_ccm8_first() {
        let suites = default_cipher_suites(false);
        assert_eq!(suites[0], CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm_8);
        assert!(suites.contains(&CipherSuiteId::Tls_Ecdhe_Rsa_With_Aes_128_Gcm_Sha256));
        assert!(suites.contains(&CipherSuiteId::Tls_Ecdhe_Rsa_With_Aes_256_Cbc_Sha));
    }

    #[test]
    fn suites_parse_by_iana_name() {
        assert_eq!(
            parse_cipher_suite("TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"),
            Some(CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm_8)
        );
        assert_eq!(
            parse_cipher_suite("tls_psk_with_aes_128_gcm_sha256"),
            Some(CipherSuiteId::Tls_Psk_With_Aes_128_Gcm_Sha256)
        );
        assert_eq!(parse_cipher_suite("TLS_NULL"), None);
    }
}
