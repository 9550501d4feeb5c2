//! Duplicate detection for confirmable requests (RFC 7252 §4.5), sans-IO: the reply sent to each (peer,
//! message ID) is remembered for EXCHANGE_LIFETIME so a retransmitted CON gets the same reply again without
//! being processed twice. The cache is bounded: when full, the oldest entries go first.
//!
//! No insert rehashes the cache as it grows. Entries live in generations: hash tables allocated at a fixed
//! size that are filled in insertion order and never grow. (The one exception: when the newest generation is
//! also the oldest, entries removed from it leave tombstones, and hashbrown may then rehash it in place,
//! without allocating; that happens only under light load, after everything older has expired.) When the newest is full a new one opens, sized
//! like everything the cache holds then (so the total still doubles while the cache grows, from
//! [`MIN_BUCKETS`] up to [`MAX_BUCKETS`] per table); a generation is dropped once all its entries have
//! expired or been evicted. A single growing table instead copied every entry each time it doubled (1–2 ms
//! at 28,672 entries with warm memory, up to tens of ms on fresh memory under load) and stopped the worker
//! that ran it, and with it the timer that wakes open-loop sends (BENCHMARKS.md, "Send lag").

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hashbrown::hash_table::{Entry as TableEntry, HashTable};

/// EXCHANGE_LIFETIME with the default transmission parameters (RFC 7252 §4.8.2): 247 s.
pub(crate) const EXCHANGE_LIFETIME: Duration = Duration::from_secs(247);

/// Default bound on remembered replies: about 9 s of 30,000 CON requests/s, enough to cover a client's
/// first retransmissions (2 to 9 s) under full load, and the whole lifetime under light load. About 40 MB
/// when full (five generations of 8.5 MB: 80-byte entries in 2^16 buckets, 56-byte order records).
pub(crate) const DEFAULT_CAPACITY: usize = 1 << 18;

/// Buckets of the first generation's table (7/8 of them usable: 896 entries, about 70 KiB).
const MIN_BUCKETS: usize = 1 << 10;
/// Buckets of the largest generation's table (57,344 entries, about 5 MiB of table and 3 MiB of order):
/// a full default cache spans five or six generations, so a lookup probes at most a handful of tables
/// (with one hash), and a new generation costs a few MiB of address space touched as it fills.
const MAX_BUCKETS: usize = 1 << 16;

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
    key: Key,
    expires: Instant,
    reply: Cached,
}

/// One fixed-size table and its keys in insertion order.
#[derive(Debug)]
struct Generation {
    table: HashTable<Entry>,
    /// Keys in insertion order, which is also expiry order (the lifetime is fixed); `head` is the first
    /// not yet expired or evicted. Never longer than `limit`, so neither it nor the table reallocates.
    order: Vec<(Instant, Key)>,
    head: usize,
    /// Inserts this generation takes: its table's capacity when allocated.
    limit: usize,
}

impl Generation {
    fn new(buckets: usize) -> Self {
        // A capacity of 7/8 of a power of two allocates exactly that many buckets.
        let table = HashTable::with_capacity(buckets / 8 * 7);
        let limit = table.capacity();
        Generation {
            table,
            order: Vec::with_capacity(limit),
            head: 0,
            limit,
        }
    }

    fn is_full(&self) -> bool {
        self.order.len() >= self.limit
    }

    fn is_drained(&self) -> bool {
        self.head == self.order.len()
    }
}

/// Replies to recent CON requests, by (peer, message ID).
#[derive(Debug)]
pub(crate) struct Dedup {
    lifetime: Duration,
    capacity: usize,
    hasher: RandomState,
    /// Oldest first; only the last one takes inserts.
    generations: VecDeque<Generation>,
    /// Entries held, over all generations.
    len: usize,
    evictions: u64,
}

impl Dedup {
    pub fn new(lifetime: Duration, capacity: usize) -> Self {
        Dedup {
            lifetime,
            capacity: capacity.max(1),
            hasher: RandomState::new(),
            generations: VecDeque::new(),
            len: 0,
            evictions: 0,
        }
    }

    /// The reply already sent to this (peer, message ID), if it is still within its lifetime.
    pub fn lookup(&self, now: Instant, peer: SocketAddr, mid: u16) -> Option<&[u8]> {
        let key = (peer, mid);
        let hash = self.hasher.hash_one(key);
        // Newest first: a key inserted again lives in a later generation than its expired predecessor.
        self.generations
            .iter()
            .rev()
            .find_map(|g| g.table.find(hash, |e| e.key == key))
            .filter(|e| e.expires > now)
            .map(|e| e.reply.as_bytes())
    }

    /// Remembers the reply sent to a newly processed CON (replacing an expired entry for the same key).
    pub fn insert(&mut self, now: Instant, peer: SocketAddr, mid: u16, reply: &[u8]) {
        self.expire(now);
        while self.len >= self.capacity {
            match self.pop_oldest(None) {
                Some(true) => self.evictions += 1,
                Some(false) => {}
                None => break,
            }
        }
        if self.generations.back().is_none_or(Generation::is_full) {
            self.open_generation();
        }
        let key = (peer, mid);
        let hash = self.hasher.hash_one(key);
        let expires = now + self.lifetime;
        let entry = Entry {
            key,
            expires,
            reply: Cached::new(reply),
        };
        let hasher = &self.hasher;
        let g = self
            .generations
            .back_mut()
            .expect("a generation was opened");
        // The table has room for every insert this generation takes, so this never rehashes.
        match g
            .table
            .entry(hash, |e| e.key == key, |e| hasher.hash_one(e.key))
        {
            TableEntry::Occupied(mut o) => *o.get_mut() = entry,
            TableEntry::Vacant(v) => {
                v.insert(entry);
                self.len += 1;
            }
        }
        g.order.push((expires, key));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Entries dropped early because the cache was full.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// A new generation sized like everything the cache holds now, between the bounds.
    fn open_generation(&mut self) {
        let buckets = (self.len * 8 / 7 + 1)
            .next_power_of_two()
            .clamp(MIN_BUCKETS, MAX_BUCKETS);
        self.generations.push_back(Generation::new(buckets));
    }

    fn expire(&mut self, now: Instant) {
        while self.pop_oldest(Some(now)).is_some() {}
    }

    /// Takes the oldest queued key off its generation (only if it expired by `due`, when given) and
    /// removes its entry unless that key was inserted again since. `None` when nothing was taken; else
    /// whether an entry was removed. Drops generations left with nothing in them and no room.
    fn pop_oldest(&mut self, due: Option<Instant>) -> Option<bool> {
        loop {
            let only = self.generations.len() == 1;
            let g = self.generations.front_mut()?;
            if g.is_drained() {
                if !only || g.is_full() {
                    self.generations.pop_front();
                    continue;
                }
                return None;
            }
            let (expires, key) = g.order[g.head];
            if due.is_some_and(|now| expires > now) {
                return None;
            }
            g.head += 1;
            let hash = self.hasher.hash_one(key);
            let removed = match g
                .table
                .find_entry(hash, |e| e.key == key && e.expires == expires)
            {
                Ok(o) => {
                    o.remove();
                    self.len -= 1;
                    true
                }
                Err(_) => false,
            };
            return Some(removed);
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

    /// Inserts `n` distinct keys at 1 µs intervals from `t0`; key `i` is (port 1 + i / 65536, mid i).
    fn fill(d: &mut Dedup, t0: Instant, range: std::ops::Range<u32>) {
        for i in range {
            let at = t0 + Duration::from_micros(u64::from(i));
            d.insert(at, peer(1 + (i >> 16) as u16), i as u16, &i.to_be_bytes());
        }
    }

    fn holds(d: &Dedup, now: Instant, i: u32) -> bool {
        d.lookup(now, peer(1 + (i >> 16) as u16), i as u16) == Some(&i.to_be_bytes()[..])
    }

    #[test]
    fn no_lookup_misses_and_no_table_growth_across_generations() {
        let t0 = Instant::now();
        let mut d = Dedup::new(EXCHANGE_LIFETIME, DEFAULT_CAPACITY);
        let mut sizes: Vec<(usize, usize)> = Vec::new();
        for i in 0..150_000u32 {
            fill(&mut d, t0, i..i + 1);
            // Every table keeps the allocation it was made with: no insert rehashed or grew one.
            let g = d.generations.back().unwrap();
            match sizes.get(d.generations.len() - 1) {
                Some(&(limit, bytes)) => {
                    assert_eq!(
                        (g.limit, g.table.allocation_size()),
                        (limit, bytes),
                        "insert {i}"
                    )
                }
                None => sizes.push((g.limit, g.table.allocation_size())),
            }
            assert!(g.table.len() <= g.limit);
        }
        let now = t0 + Duration::from_secs(1);
        let missing: Vec<u32> = (0..150_000).filter(|&i| !holds(&d, now, i)).collect();
        assert_eq!(missing, [] as [u32; 0]);
        assert_eq!((d.len(), d.evictions()), (150_000, 0));
        // Sizes double while the cache grows, up to the largest table.
        let limits: Vec<usize> = sizes.iter().map(|s| s.0).collect();
        assert_eq!(
            limits,
            [896, 1792, 3584, 7168, 14336, 28672, 57344, 57344],
            "generation sizes"
        );
    }

    #[test]
    fn bound_is_respected_and_eviction_goes_oldest_first_across_generations() {
        let t0 = Instant::now();
        let cap = 5_000;
        let mut d = Dedup::new(EXCHANGE_LIFETIME, cap);
        for i in 0..20_000u32 {
            fill(&mut d, t0, i..i + 1);
            assert!(d.len() <= cap, "{} entries after insert {i}", d.len());
            assert!(
                d.generations.len() <= 4,
                "{} generations",
                d.generations.len()
            );
        }
        assert_eq!((d.len(), d.evictions()), (cap, 15_000));
        let now = t0 + Duration::from_secs(1);
        assert!(
            (0..15_000).all(|i| !holds(&d, now, i)),
            "the oldest went first"
        );
        assert!(
            (15_000..20_000).all(|i| holds(&d, now, i)),
            "the newest stayed"
        );
    }

    #[test]
    fn expired_generations_are_dropped() {
        let t0 = Instant::now();
        let life = Duration::from_secs(10);
        let mut d = Dedup::new(life, DEFAULT_CAPACITY);
        fill(&mut d, t0, 0..10_000);
        assert!(d.generations.len() > 1);
        let later = t0 + Duration::from_secs(11);
        d.insert(later, peer(7), 7, b"x");
        assert_eq!((d.len(), d.generations.len()), (1, 1));
        assert!(!holds(&d, later, 9_999));
        assert_eq!(d.lookup(later, peer(7), 7), Some(&b"x"[..]));
        assert_eq!(d.evictions(), 0);
    }

    #[test]
    fn a_key_reused_after_expiry_in_a_later_generation_finds_the_new_reply() {
        let t0 = Instant::now();
        let life = Duration::from_secs(10);
        let mut d = Dedup::new(life, DEFAULT_CAPACITY);
        d.insert(t0, peer(9), 1, b"old");
        fill(&mut d, t0, 0..2_000);
        assert!(d.generations.len() > 1);
        let later = t0 + life;
        d.insert(later, peer(9), 1, b"new");
        assert_eq!(d.lookup(later, peer(9), 1), Some(&b"new"[..]));
        assert_eq!(
            d.lookup(later + life - Duration::from_millis(1), peer(9), 1),
            Some(&b"new"[..])
        );
    }
}
