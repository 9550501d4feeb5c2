//! The DTLS listener's counters: why handshakes failed, in one flat enum mapped from the `dtls` crate's
//! errors in one place, lock-free counters bumped by the driver and the sessions, and their snapshot.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a server-side handshake did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// Not finished within the handshake timeout (an abandoned or stalled handshake).
    Timeout,
    /// Client authentication is required and the client presented no certificate.
    ClientCertRequired,
    /// The client's certificate was refused: unknown issuer, expired, not yet valid, bad signature, no
    /// CertificateVerify...
    ClientCertRejected,
    /// The client sent a fatal alert or close_notify (it refused our certificate, or gave up).
    PeerAlert,
    /// Cut short by a new ClientHello from the same address and port, or by shutdown.
    Interrupted,
    /// Anything else (no common cipher suite, malformed messages...).
    Other,
}

impl HandshakeFailure {
    /// Every reason, in report order.
    pub const ALL: [HandshakeFailure; 6] = [
        HandshakeFailure::Timeout,
        HandshakeFailure::ClientCertRequired,
        HandshakeFailure::ClientCertRejected,
        HandshakeFailure::PeerAlert,
        HandshakeFailure::Interrupted,
        HandshakeFailure::Other,
    ];

    /// The reason's name in [`DtlsStats::handshake_failures`].
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::ClientCertRequired => "client_cert_required",
            HandshakeFailure::ClientCertRejected => "client_cert_rejected",
            HandshakeFailure::PeerAlert => "peer_alert",
            HandshakeFailure::Interrupted => "interrupted",
            HandshakeFailure::Other => "other",
        }
    }

    /// Classifies the error `DTLSConn::new` returned on the server side, by variant (the in-tree fork
    /// carries rustls' typed certificate error and the alert a client sent).
    pub(crate) fn from_error(err: &::dtls::Error) -> Self {
        use ::dtls::Error as E;
        match err {
            E::ErrClientCertificateRequired => HandshakeFailure::ClientCertRequired,
            E::ErrClientCertificateNotVerified
            | E::ErrCertificateVerifyNoCertificate
            | E::ErrInvalidCertificate => HandshakeFailure::ClientCertRejected,
            E::ErrAlertFatalOrClose | E::ErrAlertReceived { .. } => HandshakeFailure::PeerAlert,
            E::ErrPeerCertificate(rustls::Error::NoCertificatesPresented) => {
                HandshakeFailure::ClientCertRequired
            }
            E::ErrPeerCertificate(_) => HandshakeFailure::ClientCertRejected,
            _ => HandshakeFailure::Other,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A snapshot of the DTLS listener's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DtlsStats {
    /// Datagrams received on the DTLS socket.
    pub datagrams: u64,
    /// Datagrams from peers without a session that were not a ClientHello: dropped.
    pub garbage: u64,
    /// Sessions started by a ClientHello.
    pub handshakes_started: u64,
    /// Handshakes completed.
    pub handshakes_ok: u64,
    /// Of those, abbreviated handshakes that resumed a cached session (issue #15, `session_cache`).
    #[serde(default)]
    pub handshakes_resumed: u64,
    /// Failed handshakes by reason (every [`HandshakeFailure`] name, zeros included).
    pub handshake_failures: BTreeMap<String, u64>,
    /// ClientHellos from new peers dropped because `max_handshakes` handshakes were in progress or
    /// `max_sessions` sessions existed (the client retransmits).
    pub dropped_handshakes: u64,
    /// Sessions now in the table, handshaking or established.
    pub sessions_active: u64,
    /// The most sessions at once.
    pub sessions_peak: u64,
    /// Established sessions evicted for idleness.
    pub evicted_idle: u64,
    /// Established sessions ended by the client (close_notify, fatal alert) or a read error.
    pub closed: u64,
    /// Sessions replaced by a new ClientHello from the same address and port.
    pub replaced: u64,
    /// Datagrams dropped because their session's queue was full.
    pub queue_drops: u64,
    /// Simulated restarts ([`crate::server::ServerHandle::restart_dtls_at`]): every session forgotten at once.
    pub restarts: u64,
    /// Sessions forgotten by those restarts.
    pub sessions_dropped_by_restart: u64,
    /// Datagrams that arrived while the listener was down after a restart: dropped unread.
    pub dropped_while_down: u64,
    /// Established sessions that negotiated a connection ID (RFC 9146; `connection_id_length` set).
    pub cid_sessions: u64,
    /// Times a session with a connection ID moved to its client's new address (NAT rebinding), after it
    /// had authenticated the newest record from there.
    pub cid_address_changes: u64,
    /// The last failed handshake's error, in the DTLS stack's words (the alert a client sent, when one did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    /// The last plaintext alert a client sent (`fatal unknown_ca (48)`), read off the wire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_alert: Option<String>,
}

impl DtlsStats {
    /// Failed handshakes, all reasons together.
    pub fn handshakes_failed(&self) -> u64 {
        self.handshake_failures.values().sum()
    }
}

/// The live counters behind [`DtlsStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub datagrams: AtomicU64,
    pub garbage: AtomicU64,
    pub handshakes_started: AtomicU64,
    pub handshakes_ok: AtomicU64,
    pub handshakes_resumed: AtomicU64,
    failures: [AtomicU64; HandshakeFailure::ALL.len()],
    pub dropped_handshakes: AtomicU64,
    pub sessions_active: AtomicU64,
    pub sessions_peak: AtomicU64,
    pub evicted_idle: AtomicU64,
    pub closed: AtomicU64,
    pub replaced: AtomicU64,
    pub queue_drops: AtomicU64,
    pub restarts: AtomicU64,
    pub sessions_dropped_by_restart: AtomicU64,
    pub dropped_while_down: AtomicU64,
    pub cid_sessions: AtomicU64,
    pub cid_address_changes: AtomicU64,
    last_failure: std::sync::Mutex<Option<String>>,
    last_alert: std::sync::Mutex<Option<String>>,
}

/// Adds one.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub fn failed(&self, why: HandshakeFailure) {
        bump(&self.failures[why.index()]);
    }

    /// Keeps the last plaintext alert a client sent.
    pub fn alert(&self, alert: String) {
        if let Ok(mut last) = self.last_alert.lock() {
            *last = Some(alert);
        }
    }

    /// Like [`Counters::failed`], keeping the error's words.
    pub fn failed_with(&self, why: HandshakeFailure, detail: String) {
        if let Ok(mut last) = self.last_failure.lock() {
            *last = Some(detail);
        }
        self.failed(why);
    }

    /// Publishes the table's size.
    pub fn sessions(&self, active: usize, peak: usize) {
        self.sessions_active.store(active as u64, Ordering::Relaxed);
        self.sessions_peak.store(peak as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> DtlsStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DtlsStats {
            datagrams: get(&self.datagrams),
            garbage: get(&self.garbage),
            handshakes_started: get(&self.handshakes_started),
            handshakes_ok: get(&self.handshakes_ok),
            handshakes_resumed: get(&self.handshakes_resumed),
            handshake_failures: HandshakeFailure::ALL
                .iter()
                .map(|w| (w.as_str().to_string(), get(&self.failures[w.index()])))
                .collect(),
            dropped_handshakes: get(&self.dropped_handshakes),
            sessions_active: get(&self.sessions_active),
            sessions_peak: get(&self.sessions_peak),
            evicted_idle: get(&self.evicted_idle),
            closed: get(&self.closed),
            replaced: get(&self.replaced),
            queue_drops: get(&self.queue_drops),
            restarts: get(&self.restarts),
            sessions_dropped_by_restart: get(&self.sessions_dropped_by_restart),
            dropped_while_down: get(&self.dropped_while_down),
            cid_sessions: get(&self.cid_sessions),
            cid_address_changes: get(&self.cid_address_changes),
            last_failure: self.last_failure.lock().ok().and_then(|l| l.clone()),
            last_alert: self.last_alert.lock().ok().and_then(|l| l.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HandshakeFailure as F;

    #[test]
    fn maps_crate_errors_to_reasons() {
        let other = |s: &str| ::dtls::Error::Other(s.to_string());
        let cert = |e: rustls::CertificateError| {
            ::dtls::Error::ErrPeerCertificate(rustls::Error::InvalidCertificate(e))
        };
        for (err, want) in [
            (
                ::dtls::Error::ErrClientCertificateRequired,
                F::ClientCertRequired,
            ),
            (
                ::dtls::Error::ErrClientCertificateNotVerified,
                F::ClientCertRejected,
            ),
            (
                ::dtls::Error::ErrCertificateVerifyNoCertificate,
                F::ClientCertRejected,
            ),
            (::dtls::Error::ErrInvalidCertificate, F::ClientCertRejected),
            (
                cert(rustls::CertificateError::UnknownIssuer),
                F::ClientCertRejected,
            ),
            (
                cert(rustls::CertificateError::Expired),
                F::ClientCertRejected,
            ),
            (
                cert(rustls::CertificateError::BadSignature),
                F::ClientCertRejected,
            ),
            (
                ::dtls::Error::ErrPeerCertificate(rustls::Error::NoCertificatesPresented),
                F::ClientCertRequired,
            ),
            // Text that merely looks like a verdict is not one.
            (other("invalid peer certificate: UnknownIssuer"), F::Other),
            (::dtls::Error::ErrAlertFatalOrClose, F::PeerAlert),
            (
                ::dtls::Error::ErrAlertReceived {
                    level: ::dtls::alert::AlertLevel::Fatal,
                    description: ::dtls::alert::AlertDescription::BadCertificate,
                },
                F::PeerAlert,
            ),
            (::dtls::Error::ErrCipherSuiteNoIntersection, F::Other),
            (::dtls::Error::ErrCookieMismatch, F::Other),
            (other("something new"), F::Other),
        ] {
            assert_eq!(F::from_error(&err), want, "{err}");
        }
    }

    #[test]
    fn reason_names_are_distinct_and_indexed_in_order() {
        let names: std::collections::BTreeSet<_> = F::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(names.len(), F::ALL.len());
        for (i, f) in F::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
        }
    }

    #[test]
    fn snapshot_lists_every_reason() {
        let c = Counters::default();
        c.failed(F::Timeout);
        c.failed(F::Timeout);
        c.failed(F::PeerAlert);
        bump(&c.handshakes_started);
        c.sessions(3, 5);
        let s = c.snapshot();
        assert_eq!(s.handshake_failures.len(), F::ALL.len());
        assert_eq!(s.handshake_failures["timeout"], 2);
        assert_eq!(s.handshake_failures["peer_alert"], 1);
        assert_eq!(s.handshake_failures["other"], 0);
        assert_eq!(s.handshakes_failed(), 3);
        assert_eq!(
            (s.handshakes_started, s.sessions_active, s.sessions_peak),
            (1, 3, 5)
        );
    }
}
