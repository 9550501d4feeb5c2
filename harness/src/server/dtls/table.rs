//! The per-peer session table, sans-IO: which peer has which session, routing of each datagram, the session
//! limit, idle eviction with `now` passed in, and generation numbers so that a session that ends late cannot
//! remove its replacement.
//!
//! Only the driver touches the table; sessions report back by message.
//!
//! Connection ID (RFC 9146): a session whose client puts the server's connection ID in its records is found
//! by that ID before its address, so records from a new address (the client's NAT rebound) still reach it.
//! The table never moves a session on such a record alone: anyone can copy a CID off the wire. The session
//! decrypts the record, and only once the DTLS stack has authenticated it as the newest record so far
//! (`Config::on_newest_connection_id_record`, RFC 9146 §6) does the session send to the new address and tell
//! the driver, which then moves the entry ([`Table::move_peer`]). A session keeps the address it started
//! from (its `origin`) as its identity: the endpoint's deduplication and Observe relations, and its reports.

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
    /// The address the session started from (its identity); the entry's key is its current address.
    origin: SocketAddr,
    /// The connection ID its client puts in its records, when the server uses them.
    cid: Option<Vec<u8>>,
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
    /// Connection ID -> the session's current address.
    cids: HashMap<Vec<u8>, SocketAddr>,
    /// Origin -> current address, for the sessions that moved.
    moved: HashMap<SocketAddr, SocketAddr>,
    max_sessions: usize,
    next_generation: u64,
    peak: usize,
}

impl<H> Table<H> {
    pub fn new(max_sessions: usize) -> Self {
        Table {
            peers: HashMap::new(),
            cids: HashMap::new(),
            moved: HashMap::new(),
            max_sessions,
            next_generation: 1,
            peak: 0,
        }
    }

    /// Decides where a datagram from `peer` goes; a datagram for a session counts as activity. A datagram
    /// whose first record carries a known connection ID (`cid`, see `record::connection_id`) goes to that
    /// ID's session whatever its address.
    pub fn route(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        datagram: Datagram,
        cid: Option<&[u8]>,
    ) -> Route<'_, H> {
        if let Some(at) = cid.and_then(|c| self.cids.get(c)) {
            let e = self
                .peers
                .get_mut(at)
                .expect("the CID index follows the table");
            e.last_seen = now;
            return Route::Session(&e.handle);
        }
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
                origin: peer,
                cid: None,
            },
        );
        self.peak = self.peak.max(self.peers.len());
        Ok(generation)
    }

    /// The session that started from `origin` (it may have moved since), if any; not counted as activity.
    pub fn get(&self, origin: SocketAddr) -> Option<&H> {
        self.peers
            .get(&origin)
            .filter(|e| e.origin == origin)
            .or_else(|| {
                let at = self.moved.get(&origin)?;
                self.peers.get(at).filter(|e| e.origin == origin)
            })
            .map(|e| &e.handle)
    }

    /// Whether a session uses connection ID `cid`.
    pub fn has_cid(&self, cid: &[u8]) -> bool {
        self.cids.contains_key(cid)
    }

    /// Gives `peer`'s session (just inserted) the connection ID `cid`, which no other session uses.
    pub fn set_cid(&mut self, peer: SocketAddr, cid: Vec<u8>) {
        if let Some(e) = self.peers.get_mut(&peer) {
            debug_assert!(!self.cids.contains_key(&cid), "CID in use");
            self.cids.insert(cid.clone(), peer);
            e.cid = Some(cid);
        }
    }

    /// Where generation `generation` of the session that started from `origin` is now.
    fn locate(&self, origin: SocketAddr, generation: u64) -> Option<SocketAddr> {
        let here = |at: &SocketAddr| {
            self.peers
                .get(at)
                .is_some_and(|e| e.generation == generation && e.origin == origin)
        };
        if here(&origin) {
            return Some(origin);
        }
        self.moved.get(&origin).copied().filter(here)
    }

    /// Moves generation `generation` of the session that started from `origin` to address `to`, after the
    /// session authenticated its client's newest record from there. `false` (nothing changes) when the
    /// session is gone, is already there, or another session holds `to` (that one is not displaced: a
    /// datagram with the moved session's CID still reaches it by its CID).
    pub fn move_peer(&mut self, origin: SocketAddr, generation: u64, to: SocketAddr) -> bool {
        let Some(from) = self.locate(origin, generation) else {
            return false;
        };
        if from == to || self.peers.contains_key(&to) {
            return false;
        }
        let e = self.peers.remove(&from).expect("located");
        if let Some(cid) = &e.cid {
            self.cids.insert(cid.clone(), to);
        }
        if to == origin {
            self.moved.remove(&origin);
        } else {
            self.moved.insert(origin, to);
        }
        self.peers.insert(to, e);
        true
    }

    /// The origin of the session at `peer`, if there is one.
    pub fn origin(&self, peer: SocketAddr) -> Option<SocketAddr> {
        self.peers.get(&peer).map(|e| e.origin)
    }

    /// Whether a new session could be added now.
    pub fn has_room(&self) -> bool {
        self.peers.len() < self.max_sessions
    }

    /// Removes the session at `peer` whatever its generation (it is being replaced).
    pub fn remove(&mut self, peer: SocketAddr) -> Option<H> {
        let e = self.peers.remove(&peer)?;
        if let Some(cid) = &e.cid {
            self.cids.remove(cid);
        }
        if self.moved.get(&e.origin) == Some(&peer) {
            self.moved.remove(&e.origin);
        }
        Some(e.handle)
    }

    /// Removes the session that started from `origin` only if it is still generation `generation`: a
    /// session that ended after being replaced must not remove its successor.
    pub fn remove_if(&mut self, origin: SocketAddr, generation: u64) -> Option<H> {
        let at = self.locate(origin, generation)?;
        self.remove(at)
    }

    /// Marks generation `generation` of the session that started from `origin` as past its handshake;
    /// `false` if it is gone.
    pub fn establish(&mut self, origin: SocketAddr, generation: u64) -> bool {
        match self.locate(origin, generation) {
            Some(at) => {
                self.peers.get_mut(&at).expect("located").established = true;
                true
            }
            None => false,
        }
    }

    /// Removes and returns the established sessions that have received nothing for `idle` or longer, each
    /// with its origin. Handshaking sessions are left to their handshake timeout.
    pub fn evict_idle(&mut self, now: Instant, idle: Duration) -> Vec<(SocketAddr, H)> {
        let stale: Vec<(SocketAddr, SocketAddr)> = self
            .peers
            .iter()
            .filter(|(_, e)| e.established && now.saturating_duration_since(e.last_seen) >= idle)
            .map(|(peer, e)| (*peer, e.origin))
            .collect();
        stale
            .into_iter()
            .filter_map(|(peer, origin)| self.remove(peer).map(|h| (origin, h)))
            .collect()
    }

    /// The origins of the sessions (the addresses they started from).
    pub fn peers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.peers.values().map(|e| e.origin)
    }

    /// Removes every session.
    pub fn drain(&mut self) -> impl Iterator<Item = H> + '_ {
        self.cids.clear();
        self.moved.clear();
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
        assert_eq!(t.route(now, peer(1), Datagram::Other, None), Route::Garbage);
        assert_eq!(t.route(now, peer(1), hello(1), None), Route::New);
        assert_eq!(
            t.route(now, peer(1), Datagram::ClientHello { random: None }, None),
            Route::New
        );
        t.insert(now, peer(1), Some([1; 32]), "a").unwrap();
        assert_eq!(
            t.route(now, peer(1), Datagram::Other, None),
            Route::Session(&"a")
        );
        // The hello that started the session, retransmitted (or sent again with the cookie): same session.
        assert_eq!(t.route(now, peer(1), hello(1), None), Route::Session(&"a"));
        // A hello whose random cannot be read is not proof of a restart.
        assert_eq!(
            t.route(now, peer(1), Datagram::ClientHello { random: None }, None),
            Route::Session(&"a")
        );
        // A new random: the client restarted on the same port.
        assert_eq!(t.route(now, peer(1), hello(2), None), Route::Restart);
        // Another port of the same host is another peer.
        assert_eq!(t.route(now, peer(2), Datagram::Other, None), Route::Garbage);
    }

    /// RFC 9146: a record with a session's CID reaches it from any address; the session moves only when
    /// told (after it authenticated a record from there), keeps its origin as identity, and a session that
    /// ends after moving is removed by its origin.
    #[test]
    fn routes_by_connection_id_and_moves_only_when_told() {
        let mut t = Table::new(10);
        let now = Instant::now();
        let g = t.insert(now, peer(1), Some([1; 32]), "a").unwrap();
        t.set_cid(peer(1), vec![0xc1; 8]);
        t.insert(now, peer(2), Some([2; 32]), "b").unwrap();
        assert!(t.has_cid(&[0xc1; 8]) && !t.has_cid(&[0xc2; 8]));
        let cid = Some(&[0xc1; 8][..]);
        // From a new address, by CID: routed, not moved.
        assert_eq!(
            t.route(now, peer(9), Datagram::Other, cid),
            Route::Session(&"a")
        );
        assert_eq!(t.route(now, peer(9), Datagram::Other, None), Route::Garbage);
        // An unknown CID from a stranger is garbage; from a known peer its address decides.
        let other = Some(&[0xee; 8][..]);
        assert_eq!(
            t.route(now, peer(9), Datagram::Other, other),
            Route::Garbage
        );
        assert_eq!(
            t.route(now, peer(2), Datagram::Other, other),
            Route::Session(&"b")
        );
        // The session authenticated a record from peer(9): it moves there.
        assert!(t.move_peer(peer(1), g, peer(9)));
        assert_eq!(
            t.route(now, peer(9), Datagram::Other, None),
            Route::Session(&"a")
        );
        assert_eq!(t.route(now, peer(1), Datagram::Other, None), Route::Garbage);
        assert_eq!(t.get(peer(1)), Some(&"a"), "found by its origin");
        assert_eq!(t.origin(peer(9)), Some(peer(1)));
        // Not onto another session's address, not with a stale generation.
        assert!(!t.move_peer(peer(1), g, peer(2)));
        assert!(!t.move_peer(peer(1), g + 100, peer(7)));
        assert!(t.establish(peer(1), g));
        assert_eq!(t.peers().filter(|o| *o == peer(1)).count(), 1);
        // A second move, then the end: removed by origin and generation, CID freed.
        assert!(t.move_peer(peer(1), g, peer(8)));
        assert_eq!(
            t.route(now, peer(5), Datagram::Other, cid),
            Route::Session(&"a")
        );
        assert_eq!(t.remove_if(peer(1), g), Some("a"));
        assert!(!t.has_cid(&[0xc1; 8]));
        assert_eq!(t.route(now, peer(8), Datagram::Other, cid), Route::Garbage);
        assert_eq!(t.get(peer(1)), None);
        assert_eq!(t.len(), 1);
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
        assert_eq!(t.route(now, peer(1), hello(2), None), Route::Restart);
        assert_eq!(t.remove(peer(1)), Some("old"));
        let new = t.insert(now, peer(1), Some([2; 32]), "new").unwrap();
        assert_ne!(old, new);
        // The old session's end (and its handshake completing late) arrive after the replacement.
        assert!(!t.establish(peer(1), old));
        assert_eq!(t.remove_if(peer(1), old), None);
        assert_eq!(
            t.route(now, peer(1), Datagram::Other, None),
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
            t.route(t0 + idle / 2, peer(2), Datagram::Other, None),
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
