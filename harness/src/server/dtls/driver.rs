//! The DTLS socket's receive loop: classifies each datagram, routes it through the session [`Table`] to its
//! session's queue, admits ClientHellos from new peers within the limits, applies the sessions' reports,
//! routes notifications to their observers' sessions, evicts idle sessions on a tick, and on shutdown stops
//! every session before the socket closes. A peer whose session goes ends its Observe relations.

use super::record::{self, Datagram};
use super::session::{self, Event, Session, Shared, Stop};
use super::stats::{bump, Counters};
use super::table::{Route, Table};
use crate::server::endpoint::Notification;
use crate::server::observe::Link;
use crate::server::udp::lock;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;

/// Datagrams drained per readiness event before other work gets a turn.
const BATCH: usize = 256;
/// Datagrams queued per session before further ones are dropped (a handshake flight is a few records;
/// a CoAP client has one request in flight per NSTART).
const QUEUE: usize = 64;

/// One datagram routed to a session, with its source address. Boxed: a channel allocates its first 32
/// slots up front, 56 bytes each inline (1.8 KB per session, issue #15: memory per session).
pub(crate) type Inbound = Box<(SocketAddr, Vec<u8>)>;

/// How the driver reaches one session.
#[derive(Debug)]
pub(crate) struct Handle {
    inbound: mpsc::Sender<Inbound>,
    /// Boxed: a channel allocates its first 32 slots up front, and a session rarely carries a notification
    /// (32 inline `Notification`s were 2.8 KB per session; issue #15: memory per session).
    outbound: mpsc::Sender<Box<Notification>>,
    stop: oneshot::Sender<Stop>,
}

/// What the server's handle asks of the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    /// Behave like a restarted server: forget every session at once, silently (no close_notify: a crashed
    /// or restarted process sends none), then read nothing for `down` (datagrams are dropped unread).
    /// Devices find out when their records go unanswered, as they would.
    Restart { down: Duration },
}

/// The limits the driver enforces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_sessions: usize,
    pub max_handshakes: usize,
    pub idle_timeout: Duration,
    /// The length of the connection IDs sessions ask their clients for (RFC 9146); `None`: none.
    pub connection_id_length: Option<usize>,
}

struct Driver {
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    table: Table<Handle>,
    handshakes: Arc<Semaphore>,
    sessions: JoinSet<()>,
    /// After a [`Control::Restart`], datagrams are dropped unread until then.
    down_until: Option<Instant>,
    connection_id_length: Option<usize>,
}

/// Serves until `shutdown` fires or its sender is dropped.
pub(crate) async fn run(
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
    mut events: mpsc::UnboundedReceiver<Event>,
    mut outbox: mpsc::UnboundedReceiver<Notification>,
    mut control: mpsc::UnboundedReceiver<Control>,
    limits: Limits,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut d = Driver {
        socket,
        counters: shared.counters.clone(),
        shared,
        table: Table::new(limits.max_sessions),
        handshakes: Arc::new(Semaphore::new(limits.max_handshakes)),
        sessions: JoinSet::new(),
        down_until: None,
        connection_id_length: limits.connection_id_length,
    };
    let period = (limits.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            Some(event) = events.recv() => d.event(event),
            Some(n) = outbox.recv() => d.notify(n),
            Some(c) = control.recv() => d.control(Instant::now(), c),
            Some(_) = d.sessions.join_next(), if !d.sessions.is_empty() => {}
            _ = tick.tick() => d.evict_idle(Instant::now(), limits.idle_timeout),
            ready = d.socket.readable() => {
                if ready.is_ok() {
                    d.receive(&mut buf);
                }
            }
        }
        d.counters.sessions(d.table.len(), d.table.peak());
    }
    // Dropping the handles tells every session to stop; aborting and awaiting them leaves the socket ours
    // alone, so it closes when this returns.
    d.table.drain().for_each(drop);
    d.counters.sessions(0, d.table.peak());
    d.sessions.shutdown().await;
}

impl Driver {
    /// Drains the socket, up to [`BATCH`] datagrams.
    fn receive(&mut self, buf: &mut [u8]) {
        for _ in 0..BATCH {
            let (n, peer) = match self.socket.try_recv_from(buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // ICMP errors reported on the socket (port unreachable...) name no datagram: skip them.
                Err(_) => continue,
            };
            self.datagram(Instant::now(), peer, &buf[..n]);
        }
    }

    fn datagram(&mut self, now: Instant, peer: SocketAddr, bytes: &[u8]) {
        bump(&self.counters.datagrams);
        if self.down_until.is_some_and(|t| now < t) {
            bump(&self.counters.dropped_while_down);
            return;
        }
        let kind = record::classify(bytes);
        if let Some(alert) = record::plaintext_alert(bytes) {
            self.counters.alert(alert);
        }
        let cid = self
            .connection_id_length
            .and_then(|len| record::connection_id(bytes, len));
        match self.table.route(now, peer, kind, cid) {
            Route::Session(handle) => {
                match handle.inbound.try_send(Box::new((peer, bytes.to_vec()))) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => bump(&self.counters.queue_drops),
                    // The session is ending; its report is on the way.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
            Route::Garbage => bump(&self.counters.garbage),
            Route::Restart => {
                let origin = self.table.origin(peer).unwrap_or(peer);
                if let Some(old) = self.table.remove(peer) {
                    // A session whose task already ended (a failed handshake, say) is not replaced, only
                    // forgotten a little earlier than its report would have.
                    if !old.inbound.is_closed() {
                        bump(&self.counters.replaced);
                    }
                    let _ = old.stop.send(Stop::Replaced);
                    self.forget(origin);
                }
                self.admit(now, peer, kind, bytes);
            }
            Route::New => self.admit(now, peer, kind, bytes),
        }
    }

    /// Starts a session for a ClientHello from a peer without one, if the limits allow.
    fn admit(&mut self, now: Instant, peer: SocketAddr, kind: Datagram, hello: &[u8]) {
        let random = match kind {
            Datagram::ClientHello { random } => random,
            Datagram::Other => None,
        };
        if !self.table.has_room() {
            bump(&self.counters.dropped_handshakes);
            return;
        }
        let Ok(permit) = self.handshakes.clone().try_acquire_owned() else {
            bump(&self.counters.dropped_handshakes);
            return;
        };
        let (inbound, queue) = mpsc::channel(QUEUE);
        let (outbound, notifications) = mpsc::channel(QUEUE);
        let (stop, stopped) = oneshot::channel();
        inbound
            .try_send(Box::new((peer, hello.to_vec())))
            .expect("a new queue has room");
        let generation = self
            .table
            .insert(
                now,
                peer,
                random,
                Handle {
                    inbound,
                    outbound,
                    stop,
                },
            )
            .expect("checked for room");
        let connection_id = self.connection_id_length.and_then(|len| self.new_cid(len));
        if let Some(cid) = &connection_id {
            self.table.set_cid(peer, cid.clone());
        }
        bump(&self.counters.handshakes_started);
        let session = Session {
            peer,
            generation,
            inbound: queue,
            connection_id,
            notifications,
            stop: stopped,
            permit,
        };
        self.sessions
            .spawn(session::run(self.shared.clone(), session));
    }

    /// A random connection ID of `len` bytes no session uses; `None` (the session goes without) when a few
    /// tries all collide, as short IDs in a full table can. Not secret: it is on the wire in every record,
    /// and it proves nothing (the session authenticates each record).
    fn new_cid(&self, len: usize) -> Option<Vec<u8>> {
        (0..8)
            .map(|_| {
                std::iter::repeat_with(|| fastrand::u8(..))
                    .take(len)
                    .collect::<Vec<u8>>()
            })
            .find(|cid| !self.table.has_cid(cid))
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Moved {
                peer,
                generation,
                to,
            } => {
                // The session follows its client whether or not the table can re-key it (another session
                // may hold `to`): records with its CID reach it either way.
                bump(&self.counters.cid_address_changes);
                self.table.move_peer(peer, generation, to);
            }
            Event::Established { peer, generation } => {
                self.table.establish(peer, generation);
            }
            Event::Ended { peer, generation } => {
                if self.table.remove_if(peer, generation).is_some() {
                    self.forget(peer);
                }
            }
        }
    }

    fn control(&mut self, now: Instant, c: Control) {
        match c {
            Control::Restart { down } => {
                let peers: Vec<SocketAddr> = self.table.peers().collect();
                // Dropping a handle stops its session without a word (see `Stop`).
                let dropped = self.table.drain().count();
                for peer in peers {
                    self.forget(peer);
                }
                // A restarted process has lost its session cache too: clients that offer a session get a
                // full handshake.
                if let Some(sessions) = &self.shared.sessions {
                    sessions.clear();
                }
                bump(&self.counters.restarts);
                self.counters
                    .sessions_dropped_by_restart
                    .fetch_add(dropped as u64, std::sync::atomic::Ordering::Relaxed);
                self.down_until = (!down.is_zero()).then(|| now + down);
            }
        }
    }

    /// Hands a notification to its observer's session; without one (or with its queue full) it is lost,
    /// and without one the peer's relations end.
    fn notify(&mut self, n: Notification) {
        let (n, session_gone) = match self.table.get(n.peer) {
            Some(handle) => match handle.outbound.try_send(Box::new(n)) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(n)) => (*n, false),
                Err(mpsc::error::TrySendError::Closed(n)) => (*n, true),
            },
            None => (n, true),
        };
        lock(&self.shared.endpoint).notification_undeliverable(&n, session_gone);
    }

    /// `peer`'s session is gone: so are its Observe relations (a new session is a new client).
    fn forget(&self, peer: SocketAddr) {
        lock(&self.shared.endpoint).forget_peer(Link::Dtls, peer);
    }

    fn evict_idle(&mut self, now: Instant, idle: Duration) {
        for (peer, handle) in self.table.evict_idle(now, idle) {
            let _ = handle.stop.send(Stop::Evicted);
            bump(&self.counters.evicted_idle);
            self.forget(peer);
        }
    }
}
