//! Duplicate detection for confirmable requests (RFC 7252 §4.5), sans-IO: the reply sent to each (peer,
//! message ID) is remembered for EXCHANGE_LIFETIME so a retransmitted CON gets the same reply again without
//! being processed twice. The cache is bounded: when full, the oldest entries go first.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// EXCHANGE_LIFETIME with the default transmission parameters (RFC 7252 §4.8.2): 247 s.
pub(crate) const EXCHANGE_LIFETIME: Duration = Duration::from_secs(247);

/// Default bound on remembered replies: about 9 s of 30,000 CON requests/s, enough to cover a client's
/// first retransmissions (2 to 9 s) under full load, and the whole lifetime under light load. About 35 MiB
/// when full.
pub(crate) const DEFAULT_CAPACITY: usize = 1 << 18;

type Key = (SocketAddr, u16);

/// A reply's wire form, stored without a heap allocation when short (every reply without a body is).
#[derive(Clone, Debug)]
enum Cached {
    Inline { len: u8, bytes: [u8; 22] },
    Heap(Box<[u8]>),
}

impl Cached {
    fn new(wire: &[u8]) -> Self {
        if wire.len() <= 22 {
            let mut bytes = [0; 22];
            bytes[..wire.len()].copy_from_slice(wire);
            Cached::Inline {
                len: wire.len() as u8,
                bytes,
            }
        } else {
            Cached::Heap(wire.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Cached::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Cached::Heap(b) => b,
        }
    }
}

#[derive(Debug)]
struct Entry {
    expires: Instant,
    reply: Cached,
}

/// Replies to recent CON requests, by (peer, message ID).
#[derive(Debug)]
pub(crate) struct Dedup {
    lifetime: Duration,
    capacity: usize,
    entries: HashMap<Key, Entry>,
    /// Keys in insertion order, which is also expiry order (the lifetime is fixed).
    order: VecDeque<(Instant, Key)>,
    evictions: u64,
}

impl Dedup {
    pub fn new(lifetime: Duration, capacity: usize) -> Self {
        Dedup {
            lifetime,
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
            evictions: 0,
        }
    }

    /// The reply already sent to this (peer, message ID), if it is still within its lifetime.
    pub fn lookup(&self, now: Instant, peer: SocketAddr, mid: u16) -> Option<&[u8]> {
        self.entries
            .get(&(peer, mid))
            .filter(|e| e.expires > now)
            .map(|e| e.reply.as_bytes())
    }

    /// Remembers the reply sent to a newly processed CON (replacing an expired entry for the same key).
    pub fn insert(&mut self, now: Instant, peer: SocketAddr, mid: u16, reply: &[u8]) {
        self.expire(now);
        while self.entries.len() >= self.capacity {
            let Some((expires, key)) = self.order.pop_front() else {
                break;
            };
            if self.remove_if(key, expires) {
                self.evictions += 1;
            }
        }
        let expires = now + self.lifetime;
        let key = (peer, mid);
        self.entries.insert(
            key,
            Entry {
                expires,
                reply: Cached::new(reply),
            },
        );
        self.order.push_back((expires, key));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries dropped early because the cache was full.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(expires, key)) = self.order.front() {
            if expires > now {
                break;
            }
            self.order.pop_front();
            self.remove_if(key, expires);
        }
    }

    /// Removes `key` if its entry is the one queued with `expires` (not a later re-insertion).
    fn remove_if(&mut self, key: Key, expires: Instant) -> bool {
        if self.entries.get(&key).is_some_and(|e| e.expires == expires) {
            self.entries.remove(&key);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn replays_within_lifetime_only() {
        let t0 = Instant::now();
        let life = Duration::from_secs(10);
        let mut d = Dedup::new(life, 100);
        assert_eq!(d.lookup(t0, peer(1), 7), None);
        d.insert(t0, peer(1), 7, b"\x60\x41\x00\x07");
        for (at, key, want) in [
            (t0, (peer(1), 7), Some(&b"\x60\x41\x00\x07"[..])),
            (
                t0 + life - Duration::from_millis(1),
                (peer(1), 7),
                Some(&b"\x60\x41\x00\x07"[..]),
            ),
            (t0, (peer(1), 8), None),
            (t0, (peer(2), 7), None),
            (t0 + life, (peer(1), 7), None),
        ] {
            assert_eq!(d.lookup(at, key.0, key.1), want, "{at:?} {key:?}");
        }
    }

    #[test]
    fn expired_entries_are_dropped_and_keys_reusable() {
        let t0 = Instant::now();
        let life = Duration::from_secs(10);
        let mut d = Dedup::new(life, 100);
        d.insert(t0, peer(1), 1, b"old");
        d.insert(t0 + Duration::from_secs(1), peer(1), 2, b"two");
        let later = t0 + life;
        assert_eq!(d.lookup(later, peer(1), 1), None);
        d.insert(later, peer(1), 1, b"new");
        assert_eq!(d.len(), 2, "the expired entry made room");
        assert_eq!(d.lookup(later, peer(1), 1), Some(&b"new"[..]));
        assert_eq!(d.lookup(later, peer(1), 2), Some(&b"two"[..]));
        assert_eq!(d.evictions(), 0);
    }

    #[test]
    fn bounded_capacity_evicts_oldest_first() {
        let t0 = Instant::now();
        let mut d = Dedup::new(EXCHANGE_LIFETIME, 3);
        for mid in 0..5u16 {
            d.insert(
                t0 + Duration::from_millis(u64::from(mid)),
                peer(9),
                mid,
                &[mid as u8],
            );
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.evictions(), 2);
        let now = t0 + Duration::from_secs(1);
        assert_eq!(d.lookup(now, peer(9), 0), None);
        assert_eq!(d.lookup(now, peer(9), 1), None);
        for mid in 2..5u16 {
            assert_eq!(d.lookup(now, peer(9), mid), Some(&[mid as u8][..]));
        }
    }

    #[test]
    fn long_replies_are_kept_whole() {
        let t0 = Instant::now();
        let mut d = Dedup::new(EXCHANGE_LIFETIME, 10);
        let long: Vec<u8> = (0..200u8).collect();
        d.insert(t0, peer(1), 1, &long);
        d.insert(t0, peer(1), 2, &long[..22]);
        d.insert(t0, peer(1), 3, b"");
        assert_eq!(d.lookup(t0, peer(1), 1), Some(&long[..]));
        assert_eq!(d.lookup(t0, peer(1), 2), Some(&long[..22]));
        assert_eq!(d.lookup(t0, peer(1), 3), Some(&b""[..]));
    }
}
