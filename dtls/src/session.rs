//! TLS session resumption by session ID (RFC 5246 §7.3, abbreviated handshake; coap-harness fork, FORK.md
//! change 15).
//!
//! A server given a [`SessionStore`] names every new session with a random 32-byte id (in its
//! ServerHello) and stores it under that id once its Finished is sent; a ClientHello offering a stored id
//! (with the session's cipher suite and extended-master-secret choice) gets the abbreviated handshake:
//! ServerHello echoing the id, ChangeCipherSpec, Finished; the client answers ChangeCipherSpec, Finished.
//! A client given a store keeps its session under the server's address and name, offers it on its next
//! handshake and stores the new one when the server starts a new session instead.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cipher_suite::CipherSuiteId;

/// What resuming a session needs: the master secret and the parameters it was made with.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// The id the server gave the session (1 to 32 bytes).
    pub id: Vec<u8>,
    /// The session's master secret (48 bytes).
    pub master_secret: Vec<u8>,
    /// The cipher suite the session was made with; a resumption uses it again.
    pub cipher_suite: CipherSuiteId,
    /// Whether the master secret is an extended one (RFC 7627); a resumption must agree.
    pub extended_master_secret: bool,
    /// The peer's certificate chain from the full handshake, given back by a resumed connection.
    pub peer_certificates: Vec<Vec<u8>>,
    /// The PSK identity (hint) from the full handshake, given back by a resumed connection.
    pub identity_hint: Vec<u8>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("cipher_suite", &self.cipher_suite)
            .field("extended_master_secret", &self.extended_master_secret)
            .field("peer_certificates", &self.peer_certificates.len())
            .finish_non_exhaustive()
    }
}

/// Where sessions are kept between connections. A server keys them by session id; a client by the
/// server it talks to (its address and server name), one session per server.
pub trait SessionStore: Send + Sync {
    /// The session stored under `key`, if any (and not expired).
    fn get(&self, key: &[u8]) -> Option<Session>;
    /// Stores `session` under `key`, replacing any other.
    fn set(&self, key: &[u8], session: Session);
    /// Forgets the session under `key`.
    fn del(&self, key: &[u8]);
}

/// A [`SessionStore`] in memory, with an optional lifetime and a capacity (the oldest entry goes first).
pub struct MemorySessionStore {
    lifetime: Option<Duration>,
    capacity: usize,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    sessions: HashMap<Vec<u8>, (Instant, Session)>,
    order: VecDeque<Vec<u8>>,
}

impl MemorySessionStore {
    /// A store that keeps at most `capacity` sessions (0: no limit), each for `lifetime` (`None`: until
    /// evicted). A session older than its lifetime is not found, as if never stored.
    pub fn new(capacity: usize, lifetime: Option<Duration>) -> Self {
        MemorySessionStore {
            lifetime,
            capacity,
            inner: Mutex::new(Entries::default()),
        }
    }

    /// How many sessions are stored (expired ones included until they are looked up or evicted).
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// The stored sessions, expired ones included, in no particular order.
    pub fn sessions(&self) -> Vec<Session> {
        self.lock()
            .sessions
            .values()
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Forgets every session (as a restarted server that kept them in memory would).
    pub fn clear(&self) {
        *self.lock() = Entries::default();
    }

    /// Whether no session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        MemorySessionStore::new(0, None)
    }
}

impl SessionStore for MemorySessionStore {
    fn get(&self, key: &[u8]) -> Option<Session> {
        let mut entries = self.lock();
        let (stored, session) = entries.sessions.get(key)?;
        if self.lifetime.is_some_and(|l| stored.elapsed() >= l) {
            entries.sessions.remove(key);
            return None;
        }
        Some(session.clone())
    }

    fn set(&self, key: &[u8], session: Session) {
        let mut entries = self.lock();
        if entries
            .sessions
            .insert(key.to_vec(), (Instant::now(), session))
            .is_none()
        {
            entries.order.push_back(key.to_vec());
        }
        while self.capacity > 0 && entries.sessions.len() > self.capacity {
            let Some(oldest) = entries.order.pop_front() else {
                break;
            };
            entries.sessions.remove(&oldest);
        }
        // Keys deleted or expired since leave stale entries in `order`; trim them when they pile up.
        if entries.order.len() > 2 * entries.sessions.len() + 16 {
            let Entries { sessions, order } = &mut *entries;
            order.retain(|k| sessions.contains_key(k));
        }
    }

    fn del(&self, key: &[u8]) {
        self.lock().sessions.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: u8) -> Session {
        Session {
            id: vec![id; 32],
            master_secret: vec![7; 48],
            cipher_suite: CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256,
            extended_master_secret: true,
            peer_certificates: vec![],
            identity_hint: vec![],
        }
    }

    #[test]
    fn stores_finds_and_forgets() {
        let store = MemorySessionStore::default();
        assert_eq!(store.get(b"a"), None);
        store.set(b"a", session(1));
        assert_eq!(store.get(b"a"), Some(session(1)));
        store.set(b"a", session(2));
        assert_eq!(store.get(b"a"), Some(session(2)));
        store.del(b"a");
        assert_eq!(store.get(b"a"), None);
    }

    #[test]
    fn an_expired_session_is_not_found() {
        let store = MemorySessionStore::new(0, Some(Duration::ZERO));
        store.set(b"a", session(1));
        assert_eq!(store.get(b"a"), None);
        assert!(store.is_empty());
    }

    #[test]
    fn capacity_evicts_the_oldest() {
        let store = MemorySessionStore::new(2, None);
        store.set(b"a", session(1));
        store.set(b"b", session(2));
        store.set(b"c", session(3));
        assert_eq!(store.get(b"a"), None);
        assert_eq!(store.get(b"b"), Some(session(2)));
        assert_eq!(store.get(b"c"), Some(session(3)));
        assert_eq!(store.len(), 2);
    }
}
