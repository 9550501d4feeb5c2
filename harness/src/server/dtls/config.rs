//! How to run the DTLS listener, and its translation into the `dtls` crate's per-session `Config`, checked
//! once at start so that a bad key or CA list is an error naming what is wrong, not a failed handshake later.

use crate::server::ServerError;
use ::dtls::cipher_suite::CipherSuiteId;
use ::dtls::config::{ClientAuthType, Config};
use ::dtls::crypto::{Certificate, CryptoPrivateKeyKind};
use rustls::pki_types::CertificateDer;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

pub use crate::client_auth::ClientAuth;

impl ClientAuth {
    fn to_dtls(self) -> ClientAuthType {
        match self {
            ClientAuth::None => ClientAuthType::NoClientCert,
            ClientAuth::Want => ClientAuthType::VerifyClientCertIfGiven,
            ClientAuth::Require => ClientAuthType::RequireAndVerifyClientCert,
            // Asked for, never chain-verified by the crate: `validity_only` is the whole handshake check.
            ClientAuth::Thingsboard => ClientAuthType::RequestClientCert,
        }
    }
}

/// ThingsBoard's handshake check of a client certificate: its validity dates, nothing else (any issuer
/// passes). The crate answers an error here with a fatal `bad_certificate` alert; the error is rustls' typed
/// certificate error, which the server's statistics count as a refused client certificate.
pub(crate) fn validity_only(
    certs: &[Vec<u8>],
    now: std::time::SystemTime,
) -> Result<(), rustls::Error> {
    use rustls::CertificateError as C;
    let Some(leaf) = certs.first() else {
        return Ok(());
    };
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|_| rustls::Error::InvalidCertificate(C::BadEncoding))?;
    let now = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let v = cert.validity();
    if now > v.not_after.timestamp() {
        return Err(rustls::Error::InvalidCertificate(C::Expired));
    }
    if now < v.not_before.timestamp() {
        return Err(rustls::Error::InvalidCertificate(C::NotValidYet));
    }
    Ok(())
}

/// How to run the CoAP-over-DTLS (coaps) listener of the embedded server.
#[derive(Clone)]
pub struct DtlsServerConfig {
    /// Address to listen on; port 0 picks a free port (see `ServerHandle::dtls_addr`).
    pub bind: SocketAddr,
    /// The server's certificate chain (leaf first) and private key: ECDSA P-256 or P-384, Ed25519 or RSA
    /// (the in-tree `dtls` fork signs with each; it offers only the suites the key can sign).
    pub certificate: Certificate,
    /// Whether to ask for, or insist on, a client certificate.
    pub client_auth: ClientAuth,
    /// DER certificates of the CAs whose client certificates are accepted; needed for `Want` and `Require`.
    pub client_ca: Vec<CertificateDer<'static>>,
    /// Cipher suites offered, in no particular order (the client's preference wins); empty means
    /// [`DtlsServerConfig::DEFAULT_CIPHER_SUITES`] (with an RSA key, [`DtlsServerConfig::DEFAULT_RSA_CIPHER_SUITES`]).
    pub cipher_suites: Vec<CipherSuiteId>,
    /// How long a handshake may take from the first ClientHello; an abandoned one is dropped after this.
    pub handshake_timeout: Duration,
    /// An established session that receives nothing for this long is evicted (with a close_notify).
    pub idle_timeout: Duration,
    /// Most sessions (handshaking and established) at once; ClientHellos from new peers beyond it are dropped.
    pub max_sessions: usize,
    /// Most handshakes in progress at once; further ClientHellos are dropped (the client retransmits).
    pub max_handshakes: usize,
    /// Registered device certificates, ThingsBoard's X.509 credentials: the SHA-256 of a client's DER leaf
    /// certificate and the device it names. A session whose certificate is listed posts as that device on
    /// `/api/v1/{feature}`; another certificate gets 4.01 there (see [`DtlsServerConfig::device_cert`]).
    pub device_certs: Vec<([u8; 32], String)>,
    /// Pre-shared keys by client identity. When any is given the listener speaks PSK (the DTLS stack cannot
    /// offer a certificate and PSKs on one listener): each client's key is looked up by the identity it sends;
    /// an unknown identity fails the handshake. `certificate` is then not presented.
    pub psk: Vec<crate::transport::dtls::Psk>,
    /// Most sessions kept for resumption by session ID (one cache for the listener, issue #15): a client
    /// that offers one of them gets the abbreviated handshake. 0: no resumption, every handshake is full.
    /// A restart ([`crate::server::ServerHandle::restart_dtls_at`]) empties it, as a restarted process
    /// loses its memory.
    pub session_cache: usize,
    /// Connection ID (RFC 9146): each session asks its client for one of this many bytes (1 to 255; a
    /// client that does not offer the extension goes without), so that the session survives the client's
    /// address changing (NAT rebinding). `None` (the default): no connection IDs, sessions keyed by address
    /// only. ThingsBoard's CoAP-DTLS transport defaults to 8.
    pub connection_id_length: Option<usize>,
}

impl DtlsServerConfig {
    /// The cipher suites offered by default: AES-128-CCM-8, the one RFC 7252 §9.1.3.3 makes mandatory for
    /// CoAP certificate mode, plus AES-128-GCM and AES-256-CBC, which general-purpose DTLS stacks offer.
    pub const DEFAULT_CIPHER_SUITES: [CipherSuiteId; 3] = [
        CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm_8,
        CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256,
        CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_256_Cbc_Sha,
    ];
    /// The cipher suites offered by default with an RSA key (the DTLS stack picks only suites its key can
    /// sign): AES-128-GCM and AES-256-CBC with ECDHE_RSA.
    pub const DEFAULT_RSA_CIPHER_SUITES: [CipherSuiteId; 2] = [
        CipherSuiteId::Tls_Ecdhe_Rsa_With_Aes_128_Gcm_Sha256,
        CipherSuiteId::Tls_Ecdhe_Rsa_With_Aes_256_Cbc_Sha,
    ];
    /// Default for [`DtlsServerConfig::session_cache`]: as many as [`Self::DEFAULT_MAX_SESSIONS`].
    pub const DEFAULT_SESSION_CACHE: usize = 20_000;
    /// How long a cached session may be resumed: two hours, OpenSSL's default session timeout.
    pub const SESSION_LIFETIME: Duration = Duration::from_secs(2 * 3600);
    /// Default for [`DtlsServerConfig::handshake_timeout`].
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default for [`DtlsServerConfig::idle_timeout`].
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    /// Default for [`DtlsServerConfig::max_sessions`].
    pub const DEFAULT_MAX_SESSIONS: usize = 20_000;
    /// Default for [`DtlsServerConfig::max_handshakes`].
    pub const DEFAULT_MAX_HANDSHAKES: usize = 512;

    /// A listener on `bind` with this identity, no client authentication and the defaults above.
    pub fn new(bind: SocketAddr, certificate: Certificate) -> Self {
        DtlsServerConfig {
            bind,
            certificate,
            client_auth: ClientAuth::None,
            client_ca: Vec::new(),
            cipher_suites: Vec::new(),
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_sessions: Self::DEFAULT_MAX_SESSIONS,
            max_handshakes: Self::DEFAULT_MAX_HANDSHAKES,
            device_certs: Vec::new(),
            psk: Vec::new(),
            session_cache: Self::DEFAULT_SESSION_CACHE,
            connection_id_length: None,
        }
    }

    /// A listener on `bind` that speaks only PSK, knowing these identities (no certificate is presented).
    pub fn psk_only(
        bind: SocketAddr,
        psk: Vec<crate::transport::dtls::Psk>,
    ) -> Result<Self, ServerError> {
        // The crate's config needs no certificate in PSK mode; this one is never presented.
        let placeholder = rcgen::KeyPair::generate()
            .ok()
            .and_then(|k| ::dtls::crypto::CryptoPrivateKey::from_key_pair(&k).ok())
            .ok_or_else(|| ServerError::DtlsConfig {
                addr: bind,
                reason: "cannot make a key pair".into(),
            })?;
        let mut cfg = Self::new(
            bind,
            Certificate {
                certificate: Vec::new(),
                private_key: placeholder,
            },
        );
        cfg.psk = psk;
        Ok(cfg)
    }

    /// The PSK suites a PSK listener offers by default: AES-128-CCM-8 (RFC 7252 §9.1.3.1's mandatory one)
    /// and AES-128-GCM.
    pub const DEFAULT_PSK_CIPHER_SUITES: [CipherSuiteId; 2] = [
        CipherSuiteId::Tls_Psk_With_Aes_128_Ccm_8,
        CipherSuiteId::Tls_Psk_With_Aes_128_Gcm_Sha256,
    ];

    /// The crate's configuration of a PSK listener: many identities, each with its own key.
    fn psk_config(&self) -> Result<Config, ServerError> {
        let mut keys = std::collections::HashMap::with_capacity(self.psk.len());
        for p in &self.psk {
            if p.key.is_empty() {
                return Err(ServerError::DtlsConfig {
                    addr: self.bind,
                    reason: format!(
                        "PSK identity `{}` has an empty key",
                        String::from_utf8_lossy(&p.identity)
                    ),
                });
            }
            keys.insert(p.identity.clone(), p.key.clone());
        }
        let keys = std::sync::Arc::new(keys);
        let cipher_suites = if self.cipher_suites.is_empty() {
            Self::DEFAULT_PSK_CIPHER_SUITES.to_vec()
        } else {
            self.cipher_suites.clone()
        };
        Ok(Config {
            cipher_suites,
            psk: Some(std::sync::Arc::new(move |identity: &[u8]| {
                let key = keys.get(identity).cloned();
                let identity = String::from_utf8_lossy(identity).into_owned();
                Box::pin(async move {
                    key.ok_or_else(|| {
                        ::dtls::Error::Other(format!("unknown PSK identity `{identity}`"))
                    })
                })
            })),
            ..Config::default()
        })
    }

    /// The entry of [`DtlsServerConfig::device_certs`] registering the DER certificate `der` as `device`.
    pub fn device_cert(der: &[u8], device: impl Into<String>) -> ([u8; 32], String) {
        (super::session::cert_hash(der), device.into())
    }

    /// The listener's session cache for resumption, shared by all its sessions; `None` when
    /// [`Self::session_cache`] is 0.
    pub(crate) fn session_store(
        &self,
    ) -> Option<std::sync::Arc<::dtls::session::MemorySessionStore>> {
        (self.session_cache > 0).then(|| {
            std::sync::Arc::new(::dtls::session::MemorySessionStore::new(
                self.session_cache,
                Some(Self::SESSION_LIFETIME),
            ))
        })
    }

    /// The `dtls` crate's server configuration, cloned for each session; every problem it could only
    /// report at the first handshake is reported here instead.
    pub(crate) fn dtls_config(&self) -> Result<Config, ServerError> {
        let invalid = |reason: String| ServerError::DtlsConfig {
            addr: self.bind,
            reason,
        };
        if let Some(len) = self.connection_id_length {
            if !(1..=255).contains(&len) {
                return Err(invalid(format!(
                    "connection ID length {len}: must be 1 to 255 bytes"
                )));
            }
        }
        if !self.psk.is_empty() {
            return self.psk_config();
        }
        if self.certificate.certificate.is_empty() {
            return Err(invalid("the certificate chain is empty".into()));
        }
        for (what, value) in [
            ("max_sessions", self.max_sessions),
            ("max_handshakes", self.max_handshakes),
        ] {
            if value == 0 {
                return Err(invalid(format!("{what} is 0: no client could connect")));
            }
        }
        for (what, value) in [
            ("handshake_timeout", self.handshake_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(format!("{what} is 0")));
            }
        }
        let mut client_cas = rustls::RootCertStore::empty();
        for (i, der) in self.client_ca.iter().enumerate() {
            client_cas.add(der.clone()).map_err(|e| {
                invalid(format!(
                    "client CA certificate #{} is not a usable trust anchor: {e}",
                    i + 1
                ))
            })?;
        }
        if matches!(self.client_auth, ClientAuth::Want | ClientAuth::Require)
            && client_cas.is_empty()
        {
            return Err(invalid(format!(
                "client authentication `{:?}` needs at least one client CA certificate",
                self.client_auth
            )));
        }
        let rsa_key = matches!(
            self.certificate.private_key.kind,
            CryptoPrivateKeyKind::Rsa256(_)
        );
        let cipher_suites = if self.cipher_suites.is_empty() && rsa_key {
            Self::DEFAULT_RSA_CIPHER_SUITES.to_vec()
        } else if self.cipher_suites.is_empty() {
            Self::DEFAULT_CIPHER_SUITES.to_vec()
        } else {
            self.cipher_suites.clone()
        };
        for suite in &cipher_suites {
            use CipherSuiteId::*;
            match suite {
                Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm
                | Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm_8
                | Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256
                | Tls_Ecdhe_Ecdsa_With_Aes_256_Cbc_Sha
                | Tls_Ecdhe_Ecdsa_With_ChaCha20_Poly1305_Sha256
                | Tls_Ecdhe_Rsa_With_Aes_128_Gcm_Sha256
                | Tls_Ecdhe_Rsa_With_Aes_256_Cbc_Sha
                | Tls_Ecdhe_Rsa_With_ChaCha20_Poly1305_Sha256 => {}
                other => {
                    return Err(invalid(format!(
                        "cipher suite {other} cannot be used with a certificate (PSK suites need a PSK)"
                    )))
                }
            }
        }
        Ok(Config {
            certificates: vec![self.certificate.clone()],
            cipher_suites,
            client_auth: self.client_auth.to_dtls(),
            client_cas,
            verify_peer_certificate: (self.client_auth == ClientAuth::Thingsboard).then(|| {
                type Check = dyn Fn(&[Vec<u8>], &[CertificateDer<'static>]) -> Result<(), ::dtls::Error>
                    + Send
                    + Sync;
                let check: std::sync::Arc<Check> = std::sync::Arc::new(|certs, _| {
                    validity_only(certs, std::time::SystemTime::now())
                        .map_err(::dtls::Error::ErrPeerCertificate)
                });
                check
            }),
            // An established session reads datagrams no bigger than a CoAP message the session can take
            // (`session::READ_BUFFER`), not the 8 KB the handshake needs (issue #15: memory per session).
            inbound_buffer_after_handshake: super::session::DATAGRAM_AFTER_HANDSHAKE,
            ..Config::default()
        })
    }
}

impl fmt::Debug for DtlsServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The private key stays out of logs.
        f.debug_struct("DtlsServerConfig")
            .field("bind", &self.bind)
            .field("certificates", &self.certificate.certificate.len())
            .field("client_auth", &self.client_auth)
            .field("client_ca", &self.client_ca.len())
            .field("cipher_suites", &self.cipher_suites)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_sessions", &self.max_sessions)
            .field("max_handshakes", &self.max_handshakes)
            .field("device_certs", &self.device_certs.len())
            .field("psk_identities", &self.psk.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DtlsServerConfig {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let certificate = Certificate {
            certificate: vec![cert.der().clone()],
            private_key: ::dtls::crypto::CryptoPrivateKey::from_key_pair(&key).unwrap(),
        };
        DtlsServerConfig::new("127.0.0.1:0".parse().unwrap(), certificate)
    }

    /// Why `cfg` is refused (the crate's `Config` is not `Debug`, so no `unwrap_err`).
    fn refusal(cfg: &DtlsServerConfig) -> String {
        match cfg.dtls_config() {
            Ok(_) => panic!("{cfg:?} accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_translate_to_a_server_config() {
        let c = config().dtls_config().unwrap();
        assert_eq!(c.cipher_suites, DtlsServerConfig::DEFAULT_CIPHER_SUITES);
        assert!(c.client_auth == ClientAuthType::NoClientCert);
        assert_eq!(c.certificates.len(), 1);
    }

    #[test]
    fn client_auth_maps_to_the_crate_policy() {
        let mut cfg = config();
        cfg.client_ca = cfg.certificate.certificate.clone();
        for (auth, want) in [
            (ClientAuth::Want, ClientAuthType::VerifyClientCertIfGiven),
            (
                ClientAuth::Require,
                ClientAuthType::RequireAndVerifyClientCert,
            ),
        ] {
            cfg.client_auth = auth;
            let c = cfg.dtls_config().unwrap();
            assert!(c.client_auth == want, "{auth:?}");
            assert_eq!(c.client_cas.len(), 1);
        }
    }

    /// ThingsBoard's mode: asked for, not chain-verified, no client CA needed; only the dates are checked.
    #[test]
    fn thingsboard_mode_checks_validity_only() {
        let mut cfg = config();
        cfg.client_auth = ClientAuth::Thingsboard;
        let c = cfg.dtls_config().unwrap();
        assert!(c.client_auth == ClientAuthType::RequestClientCert);
        assert!(c.client_cas.is_empty() && c.verify_peer_certificate.is_some());

        let cert = |from: (i32, u8, u8), to: (i32, u8, u8)| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(vec!["device".into()]).unwrap();
            p.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
            p.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
            p.self_signed(&key).unwrap().der().to_vec()
        };
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000); // 2027-01-15
                                                                              // Any issuer (here: self-signed) passes when in date; no certificate at all passes too.
        assert_eq!(
            validity_only(&[cert((2026, 1, 1), (2028, 1, 1))], now),
            Ok(())
        );
        assert_eq!(validity_only(&[], now), Ok(()));
        let expired = validity_only(&[cert((2020, 1, 1), (2021, 1, 1))], now).unwrap_err();
        assert_eq!(
            expired,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
        );
        let early = validity_only(&[cert((2030, 1, 1), (2031, 1, 1))], now).unwrap_err();
        assert_eq!(
            early,
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidYet)
        );
        assert!(validity_only(&[vec![1, 2, 3]], now).is_err());
        // The server's statistics count these as refused client certificates.
        assert_eq!(
            super::super::stats::HandshakeFailure::from_error(&::dtls::Error::ErrPeerCertificate(
                expired
            )),
            super::super::stats::HandshakeFailure::ClientCertRejected
        );
    }

    #[test]
    fn connection_id_length_is_1_to_255() {
        let mut cfg = config();
        for ok in [1, 8, 255] {
            cfg.connection_id_length = Some(ok);
            assert!(cfg.dtls_config().is_ok(), "{ok}");
        }
        for bad in [0, 256] {
            cfg.connection_id_length = Some(bad);
            assert!(
                refusal(&cfg).contains(&format!("connection ID length {bad}: must be 1 to 255")),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_client_auth_without_ca() {
        let mut cfg = config();
        cfg.client_auth = ClientAuth::Require;
        let err = refusal(&cfg);
        assert!(err.contains("needs at least one client CA"), "{err}");
    }

    #[test]
    fn rejects_unusable_client_ca() {
        let mut cfg = config();
        cfg.client_auth = ClientAuth::Want;
        cfg.client_ca = vec![CertificateDer::from(vec![1, 2, 3])];
        let err = refusal(&cfg);
        assert!(err.contains("client CA certificate #1"), "{err}");
    }

    #[test]
    fn rejects_psk_suite_and_zero_limits() {
        let mut cfg = config();
        cfg.cipher_suites = vec![CipherSuiteId::Tls_Psk_With_Aes_128_Ccm_8];
        let err = refusal(&cfg);
        assert!(err.contains("PSK"), "{err}");
        let mut cfg = config();
        cfg.max_handshakes = 0;
        let err = refusal(&cfg);
        assert!(err.contains("max_handshakes is 0"), "{err}");
        assert!(err.contains("127.0.0.1:0"), "{err}");
    }

    #[test]
    fn rejects_empty_chain() {
        let mut cfg = config();
        cfg.certificate.certificate.clear();
        let err = refusal(&cfg);
        assert!(err.contains("chain is empty"), "{err}");
    }
}
