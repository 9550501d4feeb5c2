//! Observe relations (RFC 7641), sans-IO: who observes which device's attributes or RPC commands, from which
//! peer and over which transport, and each relation's notification sequence numbers.
//!
//! A relation is identified by (device, transport, peer address, kind): at most one attribute and one RPC
//! relation per device and peer. A registration from a peer that already has one replaces it (RFC 7641 §4.1
//! for the same token; ThingsBoard also replaces one with another token), keeping its sequence running so
//! the numbers a client sees never go back. The table is bounded; a registration beyond the bound is
//! refused, and the request falls back to a plain response (§4.1).

use crate::coap::Token;
use std::collections::HashMap;
use std::net::SocketAddr;

/// Most relations held at once, over all devices and peers.
pub(crate) const MAX_OBSERVERS: usize = 100_000;
/// Observe option values are 24-bit sequence numbers (§3.4, §4.4).
const SEQUENCE_MASK: u32 = 0x00FF_FFFF;

/// Which listener a peer talks to: its notifications must go back the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Link {
    /// The plain CoAP socket.
    Plain,
    /// The peer's DTLS session.
    Dtls,
}

/// What a relation observes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// Shared-attribute updates (`GET /api/v1/{token}/attributes`, Observe=0).
    Attributes,
    /// RPC commands to the device (`GET /api/v1/{token}/rpc`, Observe=0).
    Rpc,
}

/// Where one relation lives: enough to find it again when its notification is acknowledged or rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RelationId {
    pub device: Box<str>,
    pub link: Link,
    pub peer: SocketAddr,
    pub kind: Kind,
    /// The registration's token: a relation re-registered with another token is another relation.
    pub token: Token,
}

/// One notification to build: for whom, with which Observe value, framed how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub id: RelationId,
    /// Send as CON (the registration was a CON, as ThingsBoard does) or NON.
    pub confirmable: bool,
    /// The registration's Content-Format, or JSON.
    pub content_format: u16,
    pub observe: u32,
}

/// One relation, stored under its peer.
#[derive(Debug)]
struct Relation {
    device: Box<str>,
    kind: Kind,
    token: Token,
    confirmable: bool,
    content_format: u16,
    /// The next Observe value to send.
    next: u32,
}

impl Relation {
    fn take_sequence(&mut self) -> u32 {
        let n = self.next;
        self.next = (self.next + 1) & SEQUENCE_MASK;
        n
    }
}

/// How a registration went.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Registered {
    /// A new relation; the registration response carries this Observe value.
    New(u32),
    /// The peer's relation for this device and kind was replaced; the response carries this Observe value.
    Replaced(u32),
    /// The table is full: answer without an Observe option.
    Full,
}

/// The relations, indexed by peer (to find one, or all of a peer's) and by device (to notify).
#[derive(Debug)]
pub(crate) struct Observers {
    by_peer: HashMap<(Link, SocketAddr), Vec<Relation>>,
    by_device: HashMap<Box<str>, Vec<(Link, SocketAddr, Kind)>>,
    len: usize,
    capacity: usize,
}

impl Default for Observers {
    fn default() -> Self {
        Observers::new(MAX_OBSERVERS)
    }
}

impl Observers {
    pub fn new(capacity: usize) -> Self {
        Observers {
            by_peer: HashMap::new(),
            by_device: HashMap::new(),
            len: 0,
            capacity,
        }
    }

    /// Relations held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Registers `peer` (its request `token`, CON or NON, with `content_format`) as an observer of
    /// `device`'s `kind`, replacing the peer's earlier relation for the same device and kind.
    #[allow(clippy::too_many_arguments)]
    pub fn register(
        &mut self,
        device: &str,
        link: Link,
        peer: SocketAddr,
        kind: Kind,
        token: Token,
        confirmable: bool,
        content_format: u16,
    ) -> Registered {
        let relations = self.by_peer.get(&(link, peer));
        let existing = relations.and_then(|r| {
            r.iter()
                .position(|r| r.kind == kind && *r.device == *device)
        });
        if let Some(at) = existing {
            let r = &mut self.by_peer.get_mut(&(link, peer)).expect("found above")[at];
            r.token = token;
            r.confirmable = confirmable;
            r.content_format = content_format;
            return Registered::Replaced(r.take_sequence());
        }
        if self.len >= self.capacity {
            return Registered::Full;
        }
        let mut relation = Relation {
            device: device.into(),
            kind,
            token,
            confirmable,
            content_format,
            next: 0,
        };
        let observe = relation.take_sequence();
        self.by_peer.entry((link, peer)).or_default().push(relation);
        self.by_device
            .entry(device.into())
            .or_default()
            .push((link, peer, kind));
        self.len += 1;
        Registered::New(observe)
    }

    /// Removes the relation `id` names, if it is still registered with `id.token`.
    pub fn remove(&mut self, id: &RelationId) -> bool {
        let Some(relations) = self.by_peer.get_mut(&(id.link, id.peer)) else {
            return false;
        };
        let Some(at) = relations
            .iter()
            .position(|r| r.kind == id.kind && r.token == id.token && *r.device == *id.device)
        else {
            return false;
        };
        relations.swap_remove(at);
        if relations.is_empty() {
            self.by_peer.remove(&(id.link, id.peer));
        }
        self.unindex(&id.device, id.link, id.peer, id.kind);
        self.len -= 1;
        true
    }

    /// Removes every relation of `peer` on `link` (its DTLS session ended); returns how many there were.
    pub fn remove_peer(&mut self, link: Link, peer: SocketAddr) -> usize {
        let Some(relations) = self.by_peer.remove(&(link, peer)) else {
            return 0;
        };
        for r in &relations {
            self.unindex(&r.device, link, peer, r.kind);
        }
        self.len -= relations.len();
        relations.len()
    }

    fn unindex(&mut self, device: &str, link: Link, peer: SocketAddr, kind: Kind) {
        if let Some(entries) = self.by_device.get_mut(device) {
            entries.retain(|e| *e != (link, peer, kind));
            if entries.is_empty() {
                self.by_device.remove(device);
            }
        }
    }

    /// Whether anyone observes `device`'s `kind`.
    pub fn observed(&self, device: &str, kind: Kind) -> bool {
        self.by_device
            .get(device)
            .is_some_and(|e| e.iter().any(|(_, _, k)| *k == kind))
    }

    /// One notification target per observer of `device`'s `kind`, each with its relation's next Observe value.
    pub fn notify(&mut self, device: &str, kind: Kind) -> Vec<Target> {
        let Some(entries) = self.by_device.get(device) else {
            return Vec::new();
        };
        let mut targets = Vec::new();
        for &(link, peer, k) in entries.iter().filter(|(_, _, k)| *k == kind) {
            let relation = self
                .by_peer
                .get_mut(&(link, peer))
                .and_then(|rs| rs.iter_mut().find(|r| r.kind == k && *r.device == *device))
                .expect("the device index names only held relations");
            targets.push(Target {
                id: RelationId {
                    device: relation.device.clone(),
                    link,
                    peer,
                    kind,
                    token: relation.token,
                },
                confirmable: relation.confirmable,
                content_format: relation.content_format,
                observe: relation.take_sequence(),
            });
        }
        targets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    fn id(device: &str, port: u16, kind: Kind, token: u64) -> RelationId {
        RelationId {
            device: device.into(),
            link: Link::Plain,
            peer: peer(port),
            kind,
            token: Token::from_u64(token),
        }
    }

    fn register(o: &mut Observers, device: &str, port: u16, kind: Kind, token: u64) -> Registered {
        o.register(
            device,
            Link::Plain,
            peer(port),
            kind,
            Token::from_u64(token),
            true,
            50,
        )
    }

    #[test]
    fn registration_then_notifications_count_up() {
        let mut o = Observers::default();
        assert_eq!(
            register(&mut o, "d", 1, Kind::Attributes, 7),
            Registered::New(0)
        );
        assert!(o.observed("d", Kind::Attributes));
        assert!(!o.observed("d", Kind::Rpc));
        for want in 1..=3 {
            let t = o.notify("d", Kind::Attributes);
            assert_eq!(t.len(), 1);
            assert_eq!(t[0].observe, want);
            assert_eq!(t[0].id, id("d", 1, Kind::Attributes, 7));
            assert!(t[0].confirmable);
        }
        assert!(o.notify("d", Kind::Rpc).is_empty());
        assert!(o.notify("other", Kind::Attributes).is_empty());
    }

    #[test]
    fn sequence_wraps_at_24_bits() {
        let mut o = Observers::default();
        register(&mut o, "d", 1, Kind::Rpc, 1);
        o.by_peer.get_mut(&(Link::Plain, peer(1))).unwrap()[0].next = SEQUENCE_MASK;
        assert_eq!(o.notify("d", Kind::Rpc)[0].observe, SEQUENCE_MASK);
        assert_eq!(o.notify("d", Kind::Rpc)[0].observe, 0);
    }

    #[test]
    fn reregistration_replaces_and_keeps_counting() {
        let mut o = Observers::default();
        register(&mut o, "d", 1, Kind::Attributes, 7);
        o.notify("d", Kind::Attributes);
        // Same peer, same token (§4.1), then another token: still one relation, numbers still rising.
        assert_eq!(
            register(&mut o, "d", 1, Kind::Attributes, 7),
            Registered::Replaced(2)
        );
        assert_eq!(
            register(&mut o, "d", 1, Kind::Attributes, 8),
            Registered::Replaced(3)
        );
        assert_eq!(o.len(), 1);
        let t = o.notify("d", Kind::Attributes);
        assert_eq!((t.len(), t[0].observe), (1, 4));
        assert_eq!(t[0].id.token, Token::from_u64(8));
        // The old token's relation is gone: removing it by the old token does nothing.
        assert!(!o.remove(&id("d", 1, Kind::Attributes, 7)));
        assert!(o.remove(&id("d", 1, Kind::Attributes, 8)));
        assert_eq!(o.len(), 0);
        assert!(!o.observed("d", Kind::Attributes));
    }

    #[test]
    fn relations_are_per_peer_kind_and_device() {
        let mut o = Observers::default();
        register(&mut o, "d", 1, Kind::Attributes, 1);
        register(&mut o, "d", 1, Kind::Rpc, 2);
        register(&mut o, "d", 2, Kind::Attributes, 1);
        register(&mut o, "e", 1, Kind::Attributes, 1);
        // The same address on the other transport is another peer.
        o.register(
            "d",
            Link::Dtls,
            peer(1),
            Kind::Attributes,
            Token::from_u64(1),
            false,
            0,
        );
        assert_eq!(o.len(), 5);
        let mut t = o.notify("d", Kind::Attributes);
        t.sort_by_key(|t| (t.id.peer.port(), t.id.link == Link::Dtls));
        let who: Vec<_> = t.iter().map(|t| (t.id.link, t.id.peer.port())).collect();
        assert_eq!(who, [(Link::Plain, 1), (Link::Dtls, 1), (Link::Plain, 2)]);
        let dtls = t.iter().find(|t| t.id.link == Link::Dtls).unwrap();
        assert_eq!((dtls.confirmable, dtls.content_format), (false, 0));
        assert_eq!(o.notify("d", Kind::Rpc).len(), 1);
        assert_eq!(o.remove_peer(Link::Plain, peer(1)), 3);
        assert_eq!(o.len(), 2);
        assert!(!o.observed("e", Kind::Attributes));
        assert!(!o.observed("d", Kind::Rpc));
        assert_eq!(o.notify("d", Kind::Attributes).len(), 2);
        assert_eq!(o.remove_peer(Link::Plain, peer(1)), 0);
    }

    #[test]
    fn full_table_refuses_new_relations_but_not_replacements() {
        let mut o = Observers::new(2);
        register(&mut o, "a", 1, Kind::Attributes, 1);
        register(&mut o, "b", 1, Kind::Attributes, 1);
        assert_eq!(
            register(&mut o, "c", 1, Kind::Attributes, 1),
            Registered::Full
        );
        assert_eq!(
            register(&mut o, "a", 1, Kind::Attributes, 9),
            Registered::Replaced(1)
        );
        assert!(o.remove(&id("b", 1, Kind::Attributes, 1)));
        assert_eq!(
            register(&mut o, "c", 1, Kind::Attributes, 1),
            Registered::New(0)
        );
        assert_eq!(o.len(), 2);
    }
}
