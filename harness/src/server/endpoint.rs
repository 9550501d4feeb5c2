//! The server's message layer (RFC 7252 §4), sans-IO: decodes each datagram, rejects what is not a request,
//! replays replies to duplicate CONs, asks the device API for the answer and frames it (piggybacked on the
//! ACK, as a NON, or, with a response delay, as a separate response after an empty ACK), and tracks separate
//! CON responses until the client acknowledges them. It also keeps the Observe relations (RFC 7641): it
//! registers and deregisters observers as the API decides, frames notifications when shared attributes or
//! RPC commands are pushed, and tracks CON notifications like separate responses, ending a relation whose
//! notification is rejected with RST or never acknowledged (§3.6, §4.5). The caller passes `now` in and
//! does the sending and the waiting.

use super::api;
use super::dedup::{Dedup, DEFAULT_CAPACITY, EXCHANGE_LIFETIME};
use super::observe::{Kind, Link, Observers, Registered, RelationId};
use super::store::{DeviceSnapshot, ServerStats, Store};
use super::tokens::TokenPolicy;
use crate::coap::{content_format, option, Code, Message, MessageType, TransmissionParams};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A response to send after the response delay.
#[derive(Debug)]
pub(crate) struct Deferred {
    pub peer: SocketAddr,
    confirmable: bool,
    response: Message,
}

/// A notification to hand to the transport its observer registered over.
#[derive(Debug)]
pub(crate) struct Notification {
    pub link: Link,
    pub peer: SocketAddr,
    pub bytes: Vec<u8>,
    /// For a CON: its message ID and how long to wait for the ACK before calling
    /// [`Endpoint::separate_timer`].
    pub retransmit: Option<(u16, Duration)>,
}

/// A separate CON response or CON notification awaiting the client's ACK.
#[derive(Debug)]
struct Outstanding {
    wire: Vec<u8>,
    retransmissions: u32,
    timeout: Duration,
    /// The relation a notification belongs to; `None` for a separate response.
    relation: Option<RelationId>,
}

/// What to do when a separate CON response's (or CON notification's) retransmission timer fires.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SeparateStep {
    /// Acknowledged or reset meanwhile: nothing more to do.
    Done,
    /// Send the bytes written to `out` again and wait this long.
    Resend(Duration),
    /// MAX_RETRANSMIT reached without an ACK: forgotten.
    GaveUp,
}

/// The server's protocol state: token policy, devices, deduplication cache, separate responses and
/// notifications in flight, observers.
#[derive(Debug)]
pub(crate) struct Endpoint {
    tokens: TokenPolicy,
    delayed: bool,
    params: TransmissionParams,
    store: Store,
    dedup: Dedup,
    observers: Observers,
    separate: HashMap<(SocketAddr, u16), Outstanding>,
    next_mid: u16,
    rng: fastrand::Rng,
    /// Registered client certificates (SHA-256 of the DER leaf) and the device each names.
    device_certs: HashMap<[u8; 32], String>,
}

impl Endpoint {
    /// A new endpoint; `delayed` makes every response a separate one (sent by the caller after its delay).
    pub fn new(tokens: TokenPolicy, delayed: bool, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        Endpoint {
            tokens,
            delayed,
            params: TransmissionParams::default(),
            store: Store::default(),
            dedup: Dedup::new(EXCHANGE_LIFETIME, DEFAULT_CAPACITY),
            observers: Observers::default(),
            separate: HashMap::new(),
            next_mid: rng.u16(..),
            rng,
            device_certs: HashMap::new(),
        }
    }

    /// Registers client certificates (SHA-256 of the DER leaf) as devices, by name.
    pub fn register_certs(&mut self, certs: impl IntoIterator<Item = ([u8; 32], String)>) {
        self.device_certs.extend(certs);
    }

    /// Processes one datagram from `peer`, which reached us over `link`, writing the immediate reply (if any)
    /// to `out` (cleared first). Returns the response to send later when responses are delayed.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        link: Link,
        peer: SocketAddr,
        datagram: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<Deferred> {
        self.handle_datagram_from(now, link, peer, None, datagram, out)
    }

    /// [`Endpoint::handle_datagram`] for a DTLS session whose client presented a certificate (`cert`, the
    /// SHA-256 of its DER leaf): its requests on `/api/v1/{feature}` are the registered device's, or 4.01.
    pub fn handle_datagram_from(
        &mut self,
        now: Instant,
        link: Link,
        peer: SocketAddr,
        cert: Option<&[u8; 32]>,
        datagram: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<Deferred> {
        out.clear();
        let stats = &mut self.store.stats;
        stats.datagrams_received += 1;
        let msg = match Message::decode(datagram) {
            Ok(msg) => msg,
            Err(_) => {
                stats.malformed += 1;
                // §4.2: a CON with a message format error is rejected with RST, when its header can be read;
                // §3: a message of another version is silently ignored.
                if datagram.len() >= 4 && datagram[0] >> 6 == 1 && (datagram[0] >> 4) & 0b11 == 0 {
                    Message::reset(u16::from_be_bytes([datagram[2], datagram[3]])).encode(out);
                }
                return None;
            }
        };
        match msg.mtype {
            MessageType::Con | MessageType::Non if msg.code.is_request() => {
                self.request(now, link, peer, cert, msg, out)
            }
            MessageType::Con => {
                // A ping (empty CON) or a response we did not ask for (§4.2, §4.3).
                stats.resets_sent += 1;
                Message::reset(msg.message_id).encode(out);
                None
            }
            MessageType::Non => {
                stats.ignored += 1;
                None
            }
            MessageType::Ack | MessageType::Rst => {
                let ack = msg.mtype == MessageType::Ack;
                match self.separate.remove(&(peer, msg.message_id)) {
                    Some(Outstanding { relation: None, .. }) if ack => stats.separate_acked += 1,
                    Some(Outstanding { relation: None, .. }) => stats.separate_resets += 1,
                    Some(Outstanding {
                        relation: Some(_), ..
                    }) if ack => stats.notifications_acked += 1,
                    Some(Outstanding {
                        relation: Some(id), ..
                    }) => {
                        // §3.6: a client rejecting a notification is no longer interested.
                        stats.notifications_reset += 1;
                        self.cancel(&id);
                    }
                    None => stats.ignored += 1,
                }
                None
            }
        }
    }

    fn request(
        &mut self,
        now: Instant,
        link: Link,
        peer: SocketAddr,
        cert: Option<&[u8; 32]>,
        msg: Message,
        out: &mut Vec<u8>,
    ) -> Option<Deferred> {
        let confirmable = msg.mtype == MessageType::Con;
        if confirmable {
            if let Some(reply) = self.dedup.lookup(now, peer, msg.message_id) {
                self.store.stats.duplicates += 1;
                out.extend_from_slice(reply);
                return None;
            }
        }
        let identity = match cert {
            None => api::Identity::None,
            Some(hash) => {
                api::Identity::Certificate(hash, self.device_certs.get(hash).map(String::as_str))
            }
        };
        let answer = api::handle(&msg, identity, &self.tokens, &mut self.store);
        let stats = &mut self.store.stats;
        stats.requests += 1;
        stats.responses_by_code.add(answer.code);
        stats.responses_by_route.add(api::route(&msg), answer.code);
        let mut response = Message::new(MessageType::Ack, answer.code, msg.message_id, msg.token);
        let format = msg.content_format().unwrap_or(content_format::JSON);
        response.add_uint_option(option::CONTENT_FORMAT, u32::from(format));
        response.payload = answer.payload;
        if let Some(intent) = answer.observe {
            let id = RelationId {
                device: intent.device.into(),
                link,
                peer,
                kind: intent.kind,
                token: msg.token,
            };
            if let Some(observe) = self.observe(id, intent.register, confirmable, format) {
                response.add_uint_option(option::OBSERVE, observe);
            }
        }
        if self.delayed {
            if confirmable {
                Message::empty_ack(msg.message_id).encode(out);
                self.remember(now, peer, msg.message_id, out);
            }
            return Some(Deferred {
                peer,
                confirmable,
                response,
            });
        }
        if !confirmable {
            response.mtype = MessageType::Non;
            response.message_id = self.fresh_mid();
        }
        response.encode(out);
        if confirmable {
            self.remember(now, peer, msg.message_id, out);
        }
        None
    }

    /// Registers or deregisters the relation `id`; returns the Observe value of the registration response.
    fn observe(
        &mut self,
        id: RelationId,
        register: bool,
        confirmable: bool,
        format: u16,
    ) -> Option<u32> {
        if !register {
            self.cancel(&id);
            return None;
        }
        let stats = &mut self.store.stats;
        let registered = self.observers.register(
            &id.device,
            id.link,
            id.peer,
            id.kind,
            id.token,
            confirmable,
            format,
        );
        match registered {
            Registered::New(observe) => {
                stats.observe_registrations += 1;
                Some(observe)
            }
            Registered::Replaced(observe) => {
                stats.observe_registrations += 1;
                stats.observe_replaced += 1;
                Some(observe)
            }
            Registered::Full => {
                stats.observe_refused += 1;
                None
            }
        }
    }

    /// Ends the relation `id` if it is still registered.
    fn cancel(&mut self, id: &RelationId) {
        if self.observers.remove(id) {
            self.store.stats.observe_cancellations += 1;
        }
    }

    fn remember(&mut self, now: Instant, peer: SocketAddr, mid: u16, reply: &[u8]) {
        self.dedup.insert(now, peer, mid, reply);
        self.store.stats.dedup_evictions = self.dedup.evictions();
    }

    fn fresh_mid(&mut self) -> u16 {
        let mid = self.next_mid;
        self.next_mid = self.next_mid.wrapping_add(1);
        mid
    }

    /// Frames a deferred response (CON or NON, like its request) into `out`. For a CON, returns its message
    /// ID and how long to wait for the ACK before calling [`Self::separate_timer`].
    pub fn separate_due(
        &mut self,
        deferred: Deferred,
        out: &mut Vec<u8>,
    ) -> Option<(u16, Duration)> {
        let Deferred {
            peer,
            confirmable,
            mut response,
        } = deferred;
        response.message_id = self.fresh_mid();
        response.mtype = if confirmable {
            MessageType::Con
        } else {
            MessageType::Non
        };
        out.clear();
        response.encode(out);
        self.store.stats.separate_sent += 1;
        if !confirmable {
            return None;
        }
        let timeout = self.track(peer, response.message_id, out.clone(), None);
        Some((response.message_id, timeout))
    }

    /// Tracks a CON until acknowledged; returns the first retransmission timeout (§4.2: random in
    /// ACK_TIMEOUT to ACK_TIMEOUT * ACK_RANDOM_FACTOR).
    fn track(
        &mut self,
        peer: SocketAddr,
        mid: u16,
        wire: Vec<u8>,
        relation: Option<RelationId>,
    ) -> Duration {
        let timeout = self.params.initial_timeout(&mut self.rng);
        self.separate.insert(
            (peer, mid),
            Outstanding {
                wire,
                retransmissions: 0,
                timeout,
                relation,
            },
        );
        timeout
    }

    /// The retransmission timer of the separate CON response or CON notification `mid` to `peer` fired
    /// (§4.2): retransmit with a doubled timeout (bytes in `out`), or give up after MAX_RETRANSMIT (ending a
    /// notification's relation, RFC 7641 §4.5), or nothing if it was answered.
    pub fn separate_timer(
        &mut self,
        peer: SocketAddr,
        mid: u16,
        out: &mut Vec<u8>,
    ) -> SeparateStep {
        let key = (peer, mid);
        let Some(o) = self.separate.get_mut(&key) else {
            return SeparateStep::Done;
        };
        let stats = &mut self.store.stats;
        let Some(next) = self.params.next_timeout(o.retransmissions, o.timeout) else {
            let relation = self.separate.remove(&key).and_then(|o| o.relation);
            match relation {
                Some(id) => {
                    stats.notification_timeouts += 1;
                    self.cancel(&id);
                }
                None => stats.separate_timeouts += 1,
            }
            return SeparateStep::GaveUp;
        };
        o.retransmissions += 1;
        o.timeout = next;
        out.clear();
        out.extend_from_slice(&o.wire);
        if o.relation.is_some() {
            stats.notification_retransmissions += 1;
        } else {
            stats.separate_retransmissions += 1;
        }
        SeparateStep::Resend(o.timeout)
    }

    /// Merges shared attributes into the device with `token` (created if the token policy accepts it) and
    /// frames one notification, `{"key":value,..}` with the attributes given, per attribute observer.
    /// Nothing when the token is rejected or `attributes` is empty.
    pub fn push_shared_attributes(
        &mut self,
        token: &str,
        attributes: Map<String, Value>,
    ) -> Vec<Notification> {
        if attributes.is_empty() {
            return Vec::new();
        }
        let payload = serde_json::to_vec(&attributes).expect("a JSON map serialises");
        if !self.store.merge_shared(token, attributes, &self.tokens) {
            return Vec::new();
        }
        self.notify(token, Kind::Attributes, &payload)
    }

    /// Issues an RPC command to the device with `token` and frames one notification,
    /// `{"id":N,"method":..,"params":..}`, per RPC observer; `None` when nobody observes its RPC.
    pub fn push_rpc(
        &mut self,
        token: &str,
        method: &str,
        params: Value,
    ) -> Option<(u64, Vec<Notification>)> {
        if !self.observers.observed(token, Kind::Rpc) {
            return None;
        }
        let device = self.store.existing_mut(token)?;
        let id = device.rpc.issue();
        self.store.stats.rpc_sent += 1;
        let command = serde_json::json!({"id": id, "method": method, "params": params});
        let payload = serde_json::to_vec(&command).expect("JSON serialises");
        Some((id, self.notify(token, Kind::Rpc, &payload)))
    }

    /// One 2.05 notification of `payload` per observer of `device`'s `kind`, CON ones tracked.
    fn notify(&mut self, device: &str, kind: Kind, payload: &[u8]) -> Vec<Notification> {
        let targets = self.observers.notify(device, kind);
        let mut notifications = Vec::with_capacity(targets.len());
        for t in targets {
            let mtype = if t.confirmable {
                MessageType::Con
            } else {
                MessageType::Non
            };
            let mid = self.fresh_mid();
            let mut msg = Message::new(mtype, Code::CONTENT, mid, t.id.token);
            msg.add_uint_option(option::OBSERVE, t.observe);
            msg.add_uint_option(option::CONTENT_FORMAT, u32::from(t.content_format));
            msg.payload = payload.to_vec();
            let bytes = msg.to_bytes();
            self.store.stats.notifications_sent += 1;
            let (link, peer) = (t.id.link, t.id.peer);
            let retransmit = t
                .confirmable
                .then(|| (mid, self.track(peer, mid, bytes.clone(), Some(t.id))));
            notifications.push(Notification {
                link,
                peer,
                bytes,
                retransmit,
            });
        }
        notifications
    }

    /// A notification could not be handed to its transport: count it, stop tracking it, and, when the
    /// peer's DTLS session is gone (`session_gone`), end every relation of that peer.
    pub fn notification_undeliverable(&mut self, n: &Notification, session_gone: bool) {
        self.store.stats.send_errors += 1;
        if let Some((mid, _)) = n.retransmit {
            self.separate.remove(&(n.peer, mid));
        }
        if session_gone {
            self.forget_peer(n.link, n.peer);
        }
    }

    /// Ends every relation of `peer` on `link` (its DTLS session ended).
    pub fn forget_peer(&mut self, link: Link, peer: SocketAddr) {
        let ended = self.observers.remove_peer(link, peer);
        self.store.stats.observe_cancellations += ended as u64;
    }

    /// The device's reply to RPC `id`, once it arrived.
    pub fn rpc_reply(&self, token: &str, id: u64) -> Option<Value> {
        self.store.existing(token)?.rpc.reply_of(id).cloned()
    }

    /// Current observers.
    pub fn observers(&self) -> usize {
        self.observers.len()
    }

    pub fn note_send_error(&mut self) {
        self.store.stats.send_errors += 1;
    }

    pub fn note_recv_error(&mut self) {
        self.store.stats.recv_errors += 1;
    }

    pub fn stats(&self) -> ServerStats {
        let mut stats = self.store.stats();
        stats.observers = self.observers.len() as u64;
        stats
    }

    pub fn device(&self, token: &str) -> Option<DeviceSnapshot> {
        self.store.device_snapshot(token)
    }

    pub fn devices(&self) -> Vec<DeviceSnapshot> {
        self.store.devices()
    }

    pub fn set_shared_attribute(&mut self, token: &str, key: &str, value: Value) -> bool {
        self.store.set_shared(token, key, value, &self.tokens)
    }
}

/// Locks the endpoint, ignoring poisoning: the counters stay readable even if a handler panicked.
pub(crate) fn lock(shared: &Mutex<Endpoint>) -> MutexGuard<'_, Endpoint> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
