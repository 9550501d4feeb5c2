//! The per-peer session table, sans-IO: which peer has which session, routing of each datagram, the session
//! limit, idle eviction with `now` passed in, and generation numbers so that a session that ends late cannot
//! remove its replacement.
//!
//! Only the driver touches the table; sessions report back by message.

use super::record::Datagram;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One peer's session, as the table sees it; `H` is how the driver reaches the session.
#[derive(Debug)]
struct Entry<H> {
    handle: H,
    generation: u64,
    /// The client random of the ClientHello that started the session.
    random: Option<[u8; 32]>,
    established: bool,
    last_seen: Instant,
}

/// Where a datagram goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route<'a, H> {
    /// To this peer's session.
    Session(&'a H),
    /// A ClientHello with a new client random from a peer that has a session: the client restarted on the
    /// same address and port (RFC 6347 §4.2.8). Remove the old session, then admit the new one.
    Restart,
    /// A ClientHello from a peer without a session: admit a new one.
    New,
    /// Anything else from a peer without a session.
    Garbage,
}

/// The table is full.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Full;

/// Sessions by peer address.
#[derive(Debug)]
pub(crate) struct Table<H> {
    peers: HashMap<SocketAddr, Entry<H>>,
    max_sessions: usize,
    next_generation: u64,
    peak: usize,
}

impl<H> Table<H> {
    pub fn new(max_sessions: usize) -> Self {
        Table {
            peers: HashMap::new(),
            max_sessions,
            next_generation: 1,
            peak: 0,
        }
    }

    /// Decides where a datagram from `peer` goes; a datagram for a session counts as activity.
    pub fn route(&mut self, now: Instant, peer: SocketAddr, datagram: Datagram) -> Route<'_, H> {
        match (self.peers.get_mut(&peer), datagram) {
            (Some(e), Datagram::ClientHello { random: Some(r) }) if e.random != Some(r) => {
                Route::Restart
            }
            (Some(e), _) => {
                e.last_seen = now;
                Route::Session(&e.handle)
            }
            (None, Datagram::ClientHello { .. }) => Route::New,
            (None, Datagram::Other) => Route::Garbage,
        }
    }

    /// Adds a session for `peer`, which must have none, and returns its generation.
    pub fn insert(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        random: Option<[u8; 32]>,
        handle: H,
    ) -> Result<u64, Full> {
        debug_assert!(
            !self.peers.contains_key(&peer),
            "{peer} already has a session"
        );
        if self.peers.len() >= self.max_sessions {
            return Err(Full);
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.peers.insert(
            peer,
            Entry {
                handle,
                generation,
                random,
                established: false,
                last_seen: now,
            },
        );
        self.peak = self.peak.max(self.peers.len());
        Ok(generation)
    }

    /// `peer`'s session, if it has one (not counted as activity).
    pub fn get(&self, peer: SocketAddr) -> Option<&H> {
        self.peers.get(&peer).map(|e| &e.handle)
    }

    /// Whether a new session could be added now.
    pub fn has_room(&self) -> bool {
        self.peers.len() < self.max_sessions
    }

    /// Removes `peer`'s session whatever its generation (it is being replaced).
    pub fn remove(&mut self, peer: SocketAddr) -> Option<H> {
        self.peers.remove(&peer).map(|e| e.handle)
    }

    /// Removes `peer`'s session only if it is still generation `generation`: a session that ended after
    /// being replaced must not remove its successor.
    pub fn remove_if(&mut self, peer: SocketAddr, generation: u64) -> Option<H> {
        match self.peers.get(&peer) {
            Some(e) if e.generation == generation => self.remove(peer),
            _ => None,
        }
    }

    /// Marks generation `generation` of `peer`'s session as past its handshake; `false` if it is gone.
    pub fn establish(&mut self, peer: SocketAddr, generation: u64) -> bool {
        match self.peers.get_mut(&peer) {
            Some(e) if e.generation == generation => {
                e.established = true;
                true
            }
            _ => false,
        }
    }

    /// Removes and returns the established sessions that have received nothing for `idle` or longer.
    /// Handshaking sessions are left to their handshake timeout.
    pub fn evict_idle(&mut self, now: Instant, idle: Duration) -> Vec<(SocketAddr, H)> {
        let stale: Vec<SocketAddr> = self
            .peers
            .iter()
            .filter(|(_, e)| e.established && now.saturating_duration_since(e.last_seen) >= idle)
            .map(|(peer, _)| *peer)
            .collect();
        stale
            .into_iter()
            .filter_map(|peer| self.remove(peer).map(|h| (peer, h)))
            .collect()
    }

    /// The peers that have a session.
    pub fn peers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.peers.keys().copied()
    }

    /// Removes every session.
    pub fn drain(&mut self) -> impl Iterator<Item = H> + '_ {
        self.peers.drain().map(|(_, e)| e.handle)
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// The most sessions held at once.
    pub fn peak(&self) -> usize {
        self.peak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    fn hello(r: u8) -> Datagram {
        Datagram::ClientHello {
            random: Some([r; 32]),
        }
    }

    #[test]
    fn routes_by_peer_and_hello() {
        let mut t = Table::new(10);
        let now = Instant::now();
        assert_eq!(t.route(now, peer(1), Datagram::Other), Route::Garbage);
        assert_eq!(t.route(now, peer(1), hello(1)), Route::New);
        assert_eq!(
            t.route(now, peer(1), Datagram::ClientHello { random: None }),
            Route::New
        );
        t.insert(now, peer(1), Some([1; 32]), "a").unwrap();
        assert_eq!(t.route(now, peer(1), Datagram::Other), Route::Session(&"a"));
        // The hello that started the session, retransmitted (or sent again with the cookie): same session.
        assert_eq!(t.route(now, peer(1), hello(1)), Route::Session(&"a"));
        // A hello whose random cannot be read is not proof of a restart.
        assert_eq!(
            t.route(now, peer(1), Datagram::ClientHello { random: None }),
            Route::Session(&"a")
        );
        // A new random: the client restarted on the same port.
        assert_eq!(t.route(now, peer(1), hello(2)), Route::Restart);
        // Another port of the same host is another peer.
        assert_eq!(t.route(now, peer(2), Datagram::Other), Route::Garbage);
    }

    #[test]
    fn enforces_max_sessions_and_tracks_peak() {
        let mut t = Table::new(2);
        let now = Instant::now();
        t.insert(now, peer(1), None, 1).unwrap();
        t.insert(now, peer(2), None, 2).unwrap();
        assert!(!t.has_room());
        assert_eq!(t.insert(now, peer(3), None, 3), Err(Full));
        assert_eq!(t.len(), 2);
        assert_eq!(t.remove(peer(1)), Some(1));
        assert!(t.has_room());
        t.insert(now, peer(3), None, 3).unwrap();
        assert_eq!((t.len(), t.peak()), (2, 2));
        assert_eq!(t.drain().count(), 2);
        assert_eq!((t.len(), t.peak()), (0, 2));
    }

    #[test]
    fn late_end_of_a_replaced_session_keeps_the_replacement() {
        let mut t = Table::new(10);
        let now = Instant::now();
        let old = t.insert(now, peer(1), Some([1; 32]), "old").unwrap();
        assert_eq!(t.route(now, peer(1), hello(2)), Route::Restart);
        assert_eq!(t.remove(peer(1)), Some("old"));
        let new = t.insert(now, peer(1), Some([2; 32]), "new").unwrap();
        assert_ne!(old, new);
        // The old session's end (and its handshake completing late) arrive after the replacement.
        assert!(!t.establish(peer(1), old));
        assert_eq!(t.remove_if(peer(1), old), None);
        assert_eq!(
            t.route(now, peer(1), Datagram::Other),
            Route::Session(&"new")
        );
        assert!(t.establish(peer(1), new));
        assert_eq!(t.remove_if(peer(1), new), Some("new"));
        assert_eq!(t.remove_if(peer(1), new), None);
    }

    #[test]
    fn evicts_only_idle_established_sessions() {
        let mut t = Table::new(10);
        let idle = Duration::from_secs(60);
        let t0 = Instant::now();
        let a = t.insert(t0, peer(1), None, "a").unwrap();
        let b = t.insert(t0, peer(2), None, "b").unwrap();
        t.insert(t0, peer(3), None, "handshaking").unwrap();
        t.establish(peer(1), a);
        t.establish(peer(2), b);
        // b hears from its client half-way.
        assert_eq!(
            t.route(t0 + idle / 2, peer(2), Datagram::Other),
            Route::Session(&"b")
        );
        assert!(t
            .evict_idle(t0 + idle - Duration::from_millis(1), idle)
            .is_empty());
        assert_eq!(t.evict_idle(t0 + idle, idle), vec![(peer(1), "a")]);
        assert_eq!(t.evict_idle(t0 + idle * 3 / 2, idle), vec![(peer(2), "b")]);
        // The handshaking session is never idle-evicted, and a clock that went backwards evicts nothing.
        assert!(t.evict_idle(t0 + idle * 10, idle).is_empty());
        assert_eq!(t.len(), 1);
        let mut t = Table::new(10);
        let c = t.insert(t0 + idle, peer(4), None, "c").unwrap();
        t.establish(peer(4), c);
        assert!(t.evict_idle(t0, idle).is_empty());
    }
}
