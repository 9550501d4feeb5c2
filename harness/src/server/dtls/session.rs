//! One DTLS session, as a task: the handshake over a [`PeerConn`] under the handshake timeout, then the CoAP
//! loop, each decrypted datagram through the shared [`Endpoint`] and each reply (and delayed separate
//! response, and notification routed here by the driver) back through the session. It reports to the
//! driver when established and, always, when it ends.

use super::conn::PeerConn;
use super::stats::{bump, Counters, HandshakeFailure};
use crate::server::endpoint::{Endpoint, Notification};
use crate::server::observe::Link;
use crate::server::separate::{deliver, respond_later, Outbound};
use crate::server::udp::lock;
use ::dtls::config::Config;
use ::dtls::conn::DTLSConn;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::task::JoinSet;

/// Largest decrypted CoAP message read, held by every established session: sized to a datagram on a
/// 1,500-byte MTU with room to spare, not to the DTLS record limit (issue #15: memory per session). A CoAP
/// message this large needs block-wise transfer anyway (RFC 7252 §4.6 advises at most 1,152 bytes); a bigger
/// one is dropped and counted in `recv_errors`, and the session goes on.
const READ_BUFFER: usize = 2048;
/// The datagram an established session reads at most: [`READ_BUFFER`] of CoAP plus the DTLS record's own
/// bytes (header, explicit nonce, tag or padding and MAC: under 64).
pub(crate) const DATAGRAM_AFTER_HANDSHAKE: usize = READ_BUFFER + 64;
/// How long an evicted session may take to send its close_notify.
const CLOSE_NOTIFY_WAIT: Duration = Duration::from_millis(200);

/// What every session shares.
pub(crate) struct Shared {
    /// The `dtls` crate's server configuration, cloned for each session.
    pub config: Config,
    /// The session cache `config` resumes from (emptied by a restart).
    pub sessions: Option<Arc<::dtls::session::MemorySessionStore>>,
    pub handshake_timeout: Duration,
    pub endpoint: Arc<Mutex<Endpoint>>,
    pub response_delay: Option<Duration>,
    pub counters: Arc<Counters>,
    pub events: mpsc::UnboundedSender<Event>,
    pub socket: Weak<UdpSocket>,
    pub local: SocketAddr,
}

/// What a session tells the driver.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The handshake completed: the session may now be evicted for idleness.
    Established { peer: SocketAddr, generation: u64 },
    /// The session task ended, for whatever reason (sent on drop, so also on panic or abort).
    Ended { peer: SocketAddr, generation: u64 },
    /// The session (which started from `peer`) authenticated its client's newest record, carrying the
    /// session's connection ID, from address `to`, and now sends there (RFC 9146 §6).
    Moved {
        peer: SocketAddr,
        generation: u64,
        to: SocketAddr,
    },
}

/// Why the driver stops a session; a dropped sender means shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Idle too long: say close_notify.
    Evicted,
    /// The client started over from the same address and port: say nothing (it would reach the new client).
    Replaced,
}

/// What the session task is given.
pub(crate) struct Session {
    pub peer: SocketAddr,
    pub generation: u64,
    /// Datagrams routed to the session, each with its source address.
    pub inbound: mpsc::Receiver<super::driver::Inbound>,
    /// The connection ID the server asks this session's client to use (RFC 9146), when it uses them.
    pub connection_id: Option<Vec<u8>>,
    /// Notifications for this peer's Observe relations, to encrypt and send once established.
    pub notifications: mpsc::Receiver<Box<Notification>>,
    pub stop: oneshot::Receiver<Stop>,
    /// Held for the handshake only: the bound on handshakes in progress.
    pub permit: OwnedSemaphorePermit,
}

/// Sends [`Event::Ended`] when dropped.
struct EndGuard {
    events: mpsc::UnboundedSender<Event>,
    peer: SocketAddr,
    generation: u64,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        let _ = self.events.send(Event::Ended {
            peer: self.peer,
            generation: self.generation,
        });
    }
}

/// Runs one session to its end.
pub(crate) async fn run(shared: Arc<Shared>, session: Session) {
    let Session {
        peer,
        generation,
        inbound,
        connection_id,
        notifications,
        mut stop,
        permit,
    } = session;
    let _end = EndGuard {
        events: shared.events.clone(),
        peer,
        generation,
    };
    let conn = Arc::new(PeerConn::new(
        shared.socket.clone(),
        shared.local,
        peer,
        inbound,
    ));
    let mut config = shared.config.clone();
    if let Some(cid) = connection_id {
        // Records from the client carry the ID (and the real content type) on top of the CoAP message.
        config.inbound_buffer_after_handshake += cid.len() + 1;
        // The ID the driver chose (unique in its table), and the stack's signal that a record with it was
        // authenticated as the newest: the only thing that moves the session to a new address.
        config.connection_id_generator = Some(Arc::new(move || cid.clone()));
        let (weak, events) = (Arc::downgrade(&conn), shared.events.clone());
        config.on_newest_connection_id_record = Some(Arc::new(move || {
            if let Some((_, to)) = weak.upgrade().and_then(|c| c.follow()) {
                let _ = events.send(Event::Moved {
                    peer,
                    generation,
                    to,
                });
            }
        }));
    }
    let handshake = tokio::time::timeout(
        shared.handshake_timeout,
        // Boxed: the handshake's state machine is large, and inline it would stay in this task's future
        // for the session's whole life (issue #15: memory per session).
        Box::pin(DTLSConn::new(conn.clone(), config, false, None)),
    );
    let counters = &shared.counters;
    let dtls = tokio::select! {
        biased;
        _ = &mut stop => {
            counters.failed(HandshakeFailure::Interrupted);
            return;
        }
        done = handshake => match done {
            Ok(Ok(dtls)) => dtls,
            Ok(Err(e)) => {
                counters.failed_with(HandshakeFailure::from_error(&e), e.to_string());
                return;
            }
            Err(_elapsed) => {
                counters.failed(HandshakeFailure::Timeout);
                return;
            }
        },
    };
    conn.handshake_done();
    drop(permit);
    bump(&counters.handshakes_ok);
    if dtls.resumed() {
        bump(&counters.handshakes_resumed);
    }
    if dtls.connection_ids().is_some() {
        bump(&counters.cid_sessions);
    }
    let _ = shared.events.send(Event::Established { peer, generation });
    // The session's identity for the device API: the SHA-256 of the client's leaf certificate, if any.
    let cert = dtls
        .connection_state()
        .await
        .peer_certificates
        .first()
        .map(|leaf| cert_hash(leaf));
    serve(&shared, peer, cert, Arc::new(dtls), notifications, stop).await;
}

/// How the CoAP loop ended.
enum End {
    Stopped(Stop),
    Shutdown,
    Closed,
}

/// The CoAP loop of an established session.
async fn serve(
    shared: &Shared,
    peer: SocketAddr,
    cert: Option<[u8; 32]>,
    conn: Arc<DTLSConn>,
    mut notifications: mpsc::Receiver<Box<Notification>>,
    mut stop: oneshot::Receiver<Stop>,
) {
    let mut buf = vec![0u8; READ_BUFFER];
    // Grows to the largest reply sent, typically tens of bytes (issue #15: memory per session).
    let mut out = Vec::new();
    let mut timers = JoinSet::new();
    let end = loop {
        tokio::select! {
            biased;
            why = &mut stop => break why.map_or(End::Shutdown, End::Stopped),
            Some(_) = timers.join_next(), if !timers.is_empty() => {}
            Some(n) = notifications.recv() => {
                let out = SessionOut(conn.clone());
                timers.spawn(deliver(out, shared.endpoint.clone(), *n));
            }
            read = conn.read(&mut buf, None) => match read {
                Ok(n) => {
                    let deferred = lock(&shared.endpoint).handle_datagram_from(
                        Instant::now(),
                        Link::Dtls,
                        peer,
                        cert.as_ref(),
                        &buf[..n],
                        &mut out,
                    );
                    // Boxed, like the close below, so that the session's future, idle in `read` for the
                    // session's life, does not keep room for them (issue #15: memory per session).
                    if !out.is_empty() && Box::pin(conn.write(&out, None)).await.is_err() {
                        lock(&shared.endpoint).note_send_error();
                    }
                    if let (Some(d), Some(delay)) = (deferred, shared.response_delay) {
                        let out = SessionOut(conn.clone());
                        timers.spawn(respond_later(out, shared.endpoint.clone(), d, delay));
                    }
                }
                // A record bigger than the buffer is lost, not the session.
                Err(::dtls::Error::ErrBufferTooSmall) => lock(&shared.endpoint).note_recv_error(),
                // The crate's reader ended: close_notify or a fatal alert from the client.
                Err(_) => break End::Closed,
            },
        }
    };
    timers.shutdown().await;
    match end {
        End::Closed => bump(&shared.counters.closed),
        End::Stopped(Stop::Evicted) => {
            let _ = tokio::time::timeout(CLOSE_NOTIFY_WAIT, Box::pin(conn.close())).await;
        }
        End::Stopped(Stop::Replaced) | End::Shutdown => {}
    }
}

/// How a client certificate is registered and looked up: the SHA-256 of its DER, as ThingsBoard keys
/// X.509 device credentials.
pub(crate) fn cert_hash(der: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(der).into()
}

/// An established session, for separate responses and notifications.
struct SessionOut(Arc<DTLSConn>);

impl Outbound for SessionOut {
    async fn send(&self, bytes: &[u8]) -> bool {
        self.0.write(bytes, None).await.is_ok()
    }
}
