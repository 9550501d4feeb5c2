//! What a handshake got to before it ended (coap-harness fork, FORK.md change 3).
//!
//! A caller that wants to know *why* a handshake failed (which side ended it, with which alert, in which
//! flight, and whether client authentication was involved) hands a [`HandshakeRecorder`] to
//! [`crate::config::Config::handshake_recorder`] and reads [`HandshakeRecorder::evidence`] afterwards.
//! The record is observed by the state machine, never inferred from error text.

use std::sync::{Arc, Mutex};

use crate::alert::{AlertDescription, AlertLevel};

/// Which end of the connection sent an alert.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// This end (we sent the alert).
    Local,
    /// The other end (we received the alert).
    Peer,
}

/// An alert that was sent or received during the handshake.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct AlertRecord {
    /// Who sent it.
    pub side: Side,
    pub level: AlertLevel,
    pub description: AlertDescription,
    /// The flight (RFC 6347 §4.2.4 numbering, 0..=6) this end was in when the alert was sent or received.
    pub flight: u8,
}

/// What a handshake got to. For a client, flights 1, 3 and 5 are ours, 2, 4 and 6 the server's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandshakeEvidence {
    /// The flight this end was last in (preparing, sending or waiting for a reply to).
    pub flight: u8,
    /// (client) The server sent a CertificateRequest in its flight 4.
    pub certificate_requested: bool,
    /// (client) We sent a Certificate message in flight 5: `Some(n)` with the number of certificates in it
    /// (`Some(0)`: the empty Certificate a client without one must send); `None`: no Certificate sent.
    pub certificate_sent: Option<usize>,
    /// (client) The server's flight 4 arrived complete, up to ServerHelloDone.
    pub server_hello_done: bool,
    /// The handshake completed (the peer's Finished was received and verified).
    pub finished: bool,
    /// The first fatal alert (or close_notify) sent or received, if any.
    pub alert: Option<AlertRecord>,
}

impl HandshakeEvidence {
    /// The alert we received from the peer, if the peer ended the handshake.
    pub fn received_alert(&self) -> Option<AlertDescription> {
        self.alert
            .filter(|a| a.side == Side::Peer)
            .map(|a| a.description)
    }

    /// The alert we sent, if we ended the handshake.
    pub fn sent_alert(&self) -> Option<AlertDescription> {
        self.alert
            .filter(|a| a.side == Side::Local)
            .map(|a| a.description)
    }
}

/// A shared slot the handshake writes its [`HandshakeEvidence`] into; clone it into the `Config` and keep a
/// copy. Use a fresh recorder for each connection.
#[derive(Clone, Debug, Default)]
pub struct HandshakeRecorder(Arc<Mutex<HandshakeEvidence>>);

impl HandshakeRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of what has been recorded so far.
    pub fn evidence(&self) -> HandshakeEvidence {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HandshakeEvidence> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut HandshakeEvidence)) {
        f(&mut self.lock())
    }

    /// Records the first fatal alert or close_notify; later ones (e.g. our close after theirs) are ignored.
    pub(crate) fn alert(&self, side: Side, level: AlertLevel, description: AlertDescription) {
        if level != AlertLevel::Fatal && description != AlertDescription::CloseNotify {
            return;
        }
        self.update(|e| {
            if e.alert.is_none() {
                e.alert = Some(AlertRecord {
                    side,
                    level,
                    description,
                    flight: e.flight,
                });
            }
        })
    }
}
