//! Certificate-trust verdicts: every DTLS handshake ends in exactly one named verdict, decided in one place.
//!
//! The client side verifies the server's certificate itself (webrtc-rs DTLS's own check only reports
//! strings, and silently checks against "localhost" when no name is set): [`ServerCertCheck`] runs rustls'
//! WebPKI verifier against the configured CA and server name and classifies the typed error. Failures that
//! arrive from the DTLS crate instead (alerts from the peer, timeouts, errors in other steps) are mapped
//! from its error values by [`classify_dtls_error`].

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::{Arc, Mutex};

/// How a handshake ended, as the client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TrustVerdict {
    /// Handshake completed; the server's certificate chains to the given CA and names the server.
    Ok,
    /// Handshake completed with verification disabled (`ca: none`): nothing about the server was checked.
    OkInsecure,
    /// The server's certificate does not chain to the given CA.
    UnknownCa,
    /// The server's certificate has expired.
    Expired,
    /// The server's certificate is not valid yet.
    NotYetValid,
    /// The server's certificate is valid but not for the name (or address) we connected to.
    HostnameMismatch,
    /// The server presented a self-signed certificate that is not the trusted CA.
    SelfSigned,
    /// The server demanded a client certificate and we had none.
    ClientCertRequired,
    /// The server refused the client certificate we presented.
    ClientCertRejected,
    /// The server ended the handshake with a fatal alert for another reason.
    PeerAlert,
    /// No handshake within the time allowed.
    HandshakeTimeout,
    /// Anything else (the detail says what).
    Other,
}

impl TrustVerdict {
    pub const ALL: [TrustVerdict; 12] = [
        TrustVerdict::Ok,
        TrustVerdict::OkInsecure,
        TrustVerdict::UnknownCa,
        TrustVerdict::Expired,
        TrustVerdict::NotYetValid,
        TrustVerdict::HostnameMismatch,
        TrustVerdict::SelfSigned,
        TrustVerdict::ClientCertRequired,
        TrustVerdict::ClientCertRejected,
        TrustVerdict::PeerAlert,
        TrustVerdict::HandshakeTimeout,
        TrustVerdict::Other,
    ];

    /// The snake_case name used in scenarios and reports.
    pub fn name(self) -> &'static str {
        match self {
            TrustVerdict::Ok => "ok",
            TrustVerdict::OkInsecure => "ok_insecure",
            TrustVerdict::UnknownCa => "unknown_ca",
            TrustVerdict::Expired => "expired",
            TrustVerdict::NotYetValid => "not_yet_valid",
            TrustVerdict::HostnameMismatch => "hostname_mismatch",
            TrustVerdict::SelfSigned => "self_signed",
            TrustVerdict::ClientCertRequired => "client_cert_required",
            TrustVerdict::ClientCertRejected => "client_cert_rejected",
            TrustVerdict::PeerAlert => "peer_alert",
            TrustVerdict::HandshakeTimeout => "handshake_timeout",
            TrustVerdict::Other => "other",
        }
    }

    /// Whether the handshake completed.
    pub fn connected(self) -> bool {
        matches!(self, TrustVerdict::Ok | TrustVerdict::OkInsecure)
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == s)
    }
}

impl fmt::Display for TrustVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A verdict with the words that explain it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: TrustVerdict,
    pub detail: String,
}

/// What the server presented, for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PresentedCert {
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
}

impl PresentedCert {
    pub fn parse(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        Some(PresentedCert {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: cert.validity().not_before.to_string(),
            not_after: cert.validity().not_after.to_string(),
        })
    }

    fn self_signed(der: &[u8]) -> bool {
        x509_parser::parse_x509_certificate(der)
            .map(|(_, c)| c.subject() == c.issuer())
            .unwrap_or(false)
    }
}

/// The rustls crypto provider this crate uses (ring, as webrtc-rs DTLS does).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// How the client checks the server's certificate.
#[derive(Clone)]
pub enum ServerTrust {
    /// Chain to these roots and match `server_name`.
    Verify {
        verifier: Arc<dyn ServerCertVerifier>,
        server_name: ServerName<'static>,
    },
    /// No verification: the run is flagged insecure.
    Insecure,
}

impl fmt::Debug for ServerTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerTrust::Verify { server_name, .. } => write!(f, "Verify({server_name:?})"),
            ServerTrust::Insecure => f.write_str("Insecure"),
        }
    }
}

impl ServerTrust {
    /// Verification against `roots` for `server_name` (a DNS name or an IP address literal).
    pub fn verify(roots: RootCertStore, server_name: &str) -> Result<Self, String> {
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| format!("`{server_name}` is not a valid server name: {e}"))?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .map_err(|e| format!("cannot build a certificate verifier: {e}"))?;
        Ok(ServerTrust::Verify {
            verifier,
            server_name,
        })
    }
}

/// One handshake's certificate check: classifies the outcome and remembers it for [`classify`].
#[derive(Clone, Default)]
pub struct ServerCertCheck {
    pub slot: Arc<Mutex<Option<Judgement>>>,
    pub presented: Arc<Mutex<Option<PresentedCert>>>,
}

impl ServerCertCheck {
    /// Checks the chain the server presented (leaf first). `Err` carries the verdict's text.
    pub fn check(&self, trust: &ServerTrust, chain: &[Vec<u8>]) -> Result<(), String> {
        let Some(leaf) = chain.first() else {
            return self.fail(
                TrustVerdict::Other,
                "the server presented no certificate".into(),
            );
        };
        *self.presented.lock().expect("lock") = PresentedCert::parse(leaf);
        let ServerTrust::Verify {
            verifier,
            server_name,
        } = trust
        else {
            return Ok(());
        };
        let end_entity = CertificateDer::from(leaf.as_slice());
        let intermediates: Vec<CertificateDer<'_>> = chain[1..]
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        match verifier.verify_server_cert(
            &end_entity,
            &intermediates,
            server_name,
            &[],
            UnixTime::now(),
        ) {
            Ok(_) => Ok(()),
            Err(e) => {
                let verdict = match &e {
                    rustls::Error::InvalidCertificate(ce) => match ce {
                        CertificateError::UnknownIssuer if PresentedCert::self_signed(leaf) => {
                            TrustVerdict::SelfSigned
                        }
                        CertificateError::UnknownIssuer => TrustVerdict::UnknownCa,
                        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                            TrustVerdict::Expired
                        }
                        CertificateError::NotValidYet
                        | CertificateError::NotValidYetContext { .. } => TrustVerdict::NotYetValid,
                        CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. } => {
                            TrustVerdict::HostnameMismatch
                        }
                        _ => TrustVerdict::Other,
                    },
                    _ => TrustVerdict::Other,
                };
                self.fail(verdict, e.to_string())
            }
        }
    }

    fn fail(&self, verdict: TrustVerdict, detail: String) -> Result<(), String> {
        let text = format!("{verdict}: {detail}");
        *self.slot.lock().expect("lock") = Some(Judgement { verdict, detail });
        Err(text)
    }

    /// The judgement the check made, if it failed.
    pub fn judgement(&self) -> Option<Judgement> {
        self.slot.lock().expect("lock").clone()
    }
}

/// Maps a failed handshake to a verdict: first what our own certificate check decided, then the DTLS
/// crate's error. `offered_client_cert` tells a refused client certificate from a missing one.
pub fn classify(
    check: &ServerCertCheck,
    err: &dtls::Error,
    offered_client_cert: bool,
) -> Judgement {
    if let Some(j) = check.judgement() {
        return j;
    }
    classify_dtls_error(err, offered_client_cert)
}

/// The crate's errors, by variant where it has one and by its rustls message where it only has a string.
pub fn classify_dtls_error(err: &dtls::Error, offered_client_cert: bool) -> Judgement {
    use dtls::Error as E;
    let detail = err.to_string();
    let verdict = match err {
        E::ErrClientCertificateRequired => TrustVerdict::ClientCertRequired,
        E::ErrAlertFatalOrClose => peer_refusal(offered_client_cert),
        _ => {
            let d = detail.as_str();
            if d.contains("UnknownIssuer") || d.contains("unknown issuer") {
                TrustVerdict::UnknownCa
            } else if d.contains("expired") || d.contains("Expired") {
                TrustVerdict::Expired
            } else if d.contains("not valid yet") || d.contains("NotValidYet") {
                TrustVerdict::NotYetValid
            } else if d.contains("not valid for name") || d.contains("NotValidForName") {
                TrustVerdict::HostnameMismatch
            } else if d.contains("lert") {
                peer_refusal(offered_client_cert)
            } else {
                TrustVerdict::Other
            }
        }
    };
    Judgement { verdict, detail }
}

/// A fatal alert during the handshake. When the server asked for client authentication, a refusal after we
/// sent a certificate means it rejected it; with none sent, it required one.
fn peer_refusal(offered_client_cert: bool) -> TrustVerdict {
    if offered_client_cert {
        TrustVerdict::ClientCertRejected
    } else {
        TrustVerdict::PeerAlert
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for v in TrustVerdict::ALL {
            assert_eq!(TrustVerdict::parse(v.name()), Some(v));
            assert_eq!(serde_json::to_value(v).unwrap(), v.name());
        }
        assert!(TrustVerdict::OkInsecure.connected());
        assert!(!TrustVerdict::UnknownCa.connected());
    }

    #[test]
    fn maps_crate_errors() {
        let c = |e: dtls::Error, offered| classify_dtls_error(&e, offered).verdict;
        assert_eq!(
            c(dtls::Error::ErrClientCertificateRequired, false),
            TrustVerdict::ClientCertRequired
        );
        assert_eq!(
            c(dtls::Error::ErrAlertFatalOrClose, true),
            TrustVerdict::ClientCertRejected
        );
        assert_eq!(
            c(dtls::Error::ErrAlertFatalOrClose, false),
            TrustVerdict::PeerAlert
        );
        assert_eq!(
            c(
                dtls::Error::Other("invalid peer certificate: UnknownIssuer".into()),
                false
            ),
            TrustVerdict::UnknownCa
        );
        assert_eq!(
            c(
                dtls::Error::Other("invalid peer certificate: certificate expired: verification time 1 (UNIX), but certificate is not valid after 0 (1 seconds ago)".into()),
                false
            ),
            TrustVerdict::Expired
        );
        assert_eq!(
            c(dtls::Error::Other("invalid peer certificate: certificate not valid for name \"x\"; certificate is only valid for DnsName(\"y\")".into()), false),
            TrustVerdict::HostnameMismatch
        );
        assert_eq!(
            c(dtls::Error::Other("something else".into()), false),
            TrustVerdict::Other
        );
    }
}
