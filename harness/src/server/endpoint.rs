//! The server's message layer (RFC 7252 §4), sans-IO: decodes each datagram, rejects what is not a request,
//! replays replies to duplicate CONs, asks the device API for the answer and frames it (piggybacked on the
//! ACK, as a NON, or, with a response delay, as a separate response after an empty ACK), and tracks separate
//! CON responses until the client acknowledges them. The caller passes `now` in and does the sending and the
//! waiting.

use super::api;
use super::dedup::{Dedup, DEFAULT_CAPACITY, EXCHANGE_LIFETIME};
use super::store::{DeviceSnapshot, ServerStats, Store};
use super::tokens::TokenPolicy;
use crate::coap::{content_format, option, Message, MessageType, TransmissionParams};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A response to send after the response delay.
#[derive(Debug)]
pub(crate) struct Deferred {
    pub peer: SocketAddr,
    confirmable: bool,
    response: Message,
}

/// A separate CON response awaiting the client's ACK.
#[derive(Debug)]
struct Outstanding {
    wire: Vec<u8>,
    retransmissions: u32,
    timeout: Duration,
}

/// What to do when a separate CON response's retransmission timer fires.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SeparateStep {
    /// Acknowledged or reset meanwhile: nothing more to do.
    Done,
    /// Send the bytes written to `out` again and wait this long.
    Resend(Duration),
    /// MAX_RETRANSMIT reached without an ACK: forgotten.
    GaveUp,
}

/// The server's protocol state: token policy, devices, deduplication cache, separate responses in flight.
#[derive(Debug)]
pub(crate) struct Endpoint {
    tokens: TokenPolicy,
    delayed: bool,
    params: TransmissionParams,
    store: Store,
    dedup: Dedup,
    separate: HashMap<(SocketAddr, u16), Outstanding>,
    next_mid: u16,
    rng: fastrand::Rng,
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
            separate: HashMap::new(),
            next_mid: rng.u16(..),
            rng,
        }
    }

    /// Processes one datagram from `peer`, writing the immediate reply (if any) to `out` (cleared first).
    /// Returns the response to send later when responses are delayed.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        peer: SocketAddr,
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
                self.request(now, peer, msg, out)
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
                match self.separate.remove(&(peer, msg.message_id)) {
                    Some(_) if msg.mtype == MessageType::Ack => stats.separate_acked += 1,
                    Some(_) => stats.separate_resets += 1,
                    None => stats.ignored += 1,
                }
                None
            }
        }
    }

    fn request(
        &mut self,
        now: Instant,
        peer: SocketAddr,
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
        let answer = api::handle(&msg, &self.tokens, &mut self.store);
        let stats = &mut self.store.stats;
        stats.requests += 1;
        stats.responses_by_code.add(answer.code);
        let mut response = Message::new(MessageType::Ack, answer.code, msg.message_id, msg.token);
        let format = msg.content_format().unwrap_or(content_format::JSON);
        response.add_uint_option(option::CONTENT_FORMAT, u32::from(format));
        response.payload = answer.payload;
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
        let factor = 1.0 + self.rng.f64() * (self.params.ack_random_factor - 1.0);
        let timeout = self.params.ack_timeout.mul_f64(factor);
        self.separate.insert(
            (peer, response.message_id),
            Outstanding {
                wire: out.clone(),
                retransmissions: 0,
                timeout,
            },
        );
        Some((response.message_id, timeout))
    }

    /// The retransmission timer of the separate CON response `mid` to `peer` fired (§4.2): retransmit with a
    /// doubled timeout (bytes in `out`), or give up after MAX_RETRANSMIT, or nothing if it was answered.
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
        if o.retransmissions >= self.params.max_retransmit {
            self.separate.remove(&key);
            self.store.stats.separate_timeouts += 1;
            return SeparateStep::GaveUp;
        }
        o.retransmissions += 1;
        o.timeout *= 2;
        out.clear();
        out.extend_from_slice(&o.wire);
        self.store.stats.separate_retransmissions += 1;
        SeparateStep::Resend(o.timeout)
    }

    pub fn note_send_error(&mut self) {
        self.store.stats.send_errors += 1;
    }

    pub fn note_recv_error(&mut self) {
        self.store.stats.recv_errors += 1;
    }

    pub fn stats(&self) -> ServerStats {
        self.store.stats()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coap::{Code, Token};

    const TOKEN: &str = "dev-1";

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    fn endpoint(delayed: bool) -> Endpoint {
        Endpoint::new(TokenPolicy::List([TOKEN.to_string()].into()), delayed, 7)
    }

    fn telemetry(mtype: MessageType, mid: u16, token: &str) -> Message {
        let mut m = Message::new(mtype, Code::POST, mid, Token::from_u64(0xbeef));
        m.set_path(&format!("/api/v1/{token}/telemetry"));
        m.payload = br#"{"t":1}"#.to_vec();
        m
    }

    /// Feeds one message; returns the decoded immediate reply and the deferred response.
    fn feed(
        ep: &mut Endpoint,
        now: Instant,
        from: SocketAddr,
        msg: &Message,
    ) -> (Option<Message>, Option<Deferred>) {
        let mut out = Vec::new();
        let deferred = ep.handle_datagram(now, from, &msg.to_bytes(), &mut out);
        let reply = (!out.is_empty()).then(|| Message::decode(&out).unwrap());
        (reply, deferred)
    }

    #[test]
    fn con_request_gets_piggybacked_ack() {
        let mut ep = endpoint(false);
        let now = Instant::now();
        for (token, code) in [(TOKEN, Code::CREATED), ("nobody", Code::UNAUTHORIZED)] {
            let req = telemetry(MessageType::Con, 0x1234, token);
            let (reply, deferred) = feed(&mut ep, now, peer(1 + code.0 as u16), &req);
            let reply = reply.unwrap();
            assert!(deferred.is_none());
            assert_eq!(
                (reply.mtype, reply.code, reply.message_id, reply.token),
                (MessageType::Ack, code, 0x1234, req.token)
            );
            assert_eq!(reply.content_format(), Some(content_format::JSON));
            assert!(reply.payload.is_empty());
        }
        let s = ep.stats();
        assert_eq!(
            (s.datagrams_received, s.requests, s.unknown_token),
            (2, 2, 1)
        );
        assert_eq!(s.responses_by_code.get(Code::CREATED), 1);
        assert_eq!(s.responses_by_code.total(), s.requests);
        assert_eq!(ep.device(TOKEN).unwrap().messages, 1);
    }

    #[test]
    fn response_echoes_request_content_format() {
        let mut ep = endpoint(false);
        let mut req = telemetry(MessageType::Con, 1, TOKEN);
        req.add_uint_option(
            option::CONTENT_FORMAT,
            u32::from(content_format::TEXT_PLAIN),
        );
        let (reply, _) = feed(&mut ep, Instant::now(), peer(1), &req);
        assert_eq!(
            reply.unwrap().content_format(),
            Some(content_format::TEXT_PLAIN)
        );
    }

    #[test]
    fn non_request_gets_non_response_with_fresh_mid() {
        let mut ep = endpoint(false);
        let now = Instant::now();
        let a = feed(
            &mut ep,
            now,
            peer(1),
            &telemetry(MessageType::Non, 5, TOKEN),
        )
        .0
        .unwrap();
        let b = feed(
            &mut ep,
            now,
            peer(1),
            &telemetry(MessageType::Non, 6, TOKEN),
        )
        .0
        .unwrap();
        assert_eq!(
            (a.mtype, a.code, a.token),
            (MessageType::Non, Code::CREATED, Token::from_u64(0xbeef))
        );
        assert_eq!(b.message_id, a.message_id.wrapping_add(1));
        assert_eq!(ep.device(TOKEN).unwrap().messages, 2);
    }

    #[test]
    fn duplicate_con_is_replayed_not_processed() {
        let mut ep = endpoint(false);
        let t0 = Instant::now();
        let req = telemetry(MessageType::Con, 9, TOKEN);
        let (first, _) = feed(&mut ep, t0, peer(1), &req);
        let (again, _) = feed(&mut ep, t0 + Duration::from_secs(3), peer(1), &req);
        assert_eq!(first, again);
        // Same message ID from another peer is a different exchange.
        feed(&mut ep, t0, peer(2), &req);
        // After EXCHANGE_LIFETIME the ID may be reused.
        feed(&mut ep, t0 + EXCHANGE_LIFETIME, peer(1), &req);
        let s = ep.stats();
        assert_eq!((s.requests, s.duplicates, s.datagrams_received), (3, 1, 4));
        assert_eq!(ep.device(TOKEN).unwrap().messages, 3);
    }

    #[test]
    fn delayed_con_gets_empty_ack_then_separate_con() {
        let mut ep = endpoint(true);
        let t0 = Instant::now();
        let req = telemetry(MessageType::Con, 77, TOKEN);
        let (ack, deferred) = feed(&mut ep, t0, peer(1), &req);
        assert_eq!(ack.unwrap(), Message::empty_ack(77));
        // A duplicate before the response is due gets the empty ACK again.
        let (dup, none) = feed(&mut ep, t0, peer(1), &req);
        assert_eq!(dup.unwrap(), Message::empty_ack(77));
        assert!(none.is_none());
        let mut out = Vec::new();
        let (mid, timeout) = ep.separate_due(deferred.unwrap(), &mut out).unwrap();
        assert!(
            timeout >= Duration::from_secs(2) && timeout <= Duration::from_secs(3),
            "{timeout:?}"
        );
        let sep = Message::decode(&out).unwrap();
        assert_eq!(
            (sep.mtype, sep.code, sep.message_id, sep.token),
            (MessageType::Con, Code::CREATED, mid, req.token)
        );
        let (nothing, _) = feed(&mut ep, t0, peer(1), &Message::empty_ack(mid));
        assert!(nothing.is_none());
        assert_eq!(
            ep.separate_timer(peer(1), mid, &mut out),
            SeparateStep::Done
        );
        let s = ep.stats();
        assert_eq!(
            (s.requests, s.duplicates, s.separate_sent, s.separate_acked),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn unacknowledged_separate_con_is_retransmitted_then_dropped() {
        let mut ep = endpoint(true);
        let (_, deferred) = feed(
            &mut ep,
            Instant::now(),
            peer(1),
            &telemetry(MessageType::Con, 1, TOKEN),
        );
        let mut out = Vec::new();
        let (mid, first) = ep.separate_due(deferred.unwrap(), &mut out).unwrap();
        let wire = out.clone();
        let mut wait = first;
        for _ in 0..4 {
            let step = ep.separate_timer(peer(1), mid, &mut out);
            assert_eq!(step, SeparateStep::Resend(wait * 2));
            assert_eq!(out, wire, "the same message again");
            wait *= 2;
        }
        assert_eq!(
            ep.separate_timer(peer(1), mid, &mut out),
            SeparateStep::GaveUp
        );
        assert_eq!(
            ep.separate_timer(peer(1), mid, &mut out),
            SeparateStep::Done
        );
        let s = ep.stats();
        assert_eq!((s.separate_retransmissions, s.separate_timeouts), (4, 1));
    }

    #[test]
    fn reset_cancels_separate_con() {
        let mut ep = endpoint(true);
        let (_, deferred) = feed(
            &mut ep,
            Instant::now(),
            peer(1),
            &telemetry(MessageType::Con, 1, TOKEN),
        );
        let mut out = Vec::new();
        let (mid, _) = ep.separate_due(deferred.unwrap(), &mut out).unwrap();
        // An ACK from another peer does not count.
        feed(&mut ep, Instant::now(), peer(2), &Message::empty_ack(mid));
        feed(&mut ep, Instant::now(), peer(1), &Message::reset(mid));
        assert_eq!(
            ep.separate_timer(peer(1), mid, &mut out),
            SeparateStep::Done
        );
        let s = ep.stats();
        assert_eq!((s.separate_resets, s.separate_acked, s.ignored), (1, 0, 1));
    }

    #[test]
    fn delayed_non_is_deferred_without_reply() {
        let mut ep = endpoint(true);
        let req = telemetry(MessageType::Non, 3, TOKEN);
        let (reply, deferred) = feed(&mut ep, Instant::now(), peer(1), &req);
        assert!(reply.is_none());
        let mut out = Vec::new();
        assert_eq!(ep.separate_due(deferred.unwrap(), &mut out), None);
        let sep = Message::decode(&out).unwrap();
        assert_eq!(
            (sep.mtype, sep.code, sep.token),
            (MessageType::Non, Code::CREATED, req.token)
        );
    }

    #[test]
    fn rejects_con_that_is_no_request_and_ignores_stray_messages() {
        let mut ep = endpoint(false);
        let now = Instant::now();
        let tok = Token::from_u64(1);
        for (msg, reply) in [
            (
                Message::new(MessageType::Con, Code::EMPTY, 10, Token::default()),
                Some(Message::reset(10)),
            ),
            (
                Message::new(MessageType::Con, Code::CONTENT, 11, tok),
                Some(Message::reset(11)),
            ),
            (Message::new(MessageType::Non, Code::CONTENT, 12, tok), None),
            (
                Message::new(MessageType::Non, Code::EMPTY, 13, Token::default()),
                None,
            ),
            (Message::empty_ack(14), None),
            (Message::new(MessageType::Ack, Code::CREATED, 15, tok), None),
            (Message::reset(16), None),
        ] {
            assert_eq!(feed(&mut ep, now, peer(1), &msg).0, reply, "{msg}");
        }
        let s = ep.stats();
        assert_eq!(
            (s.resets_sent, s.ignored, s.requests, s.datagrams_received),
            (2, 5, 0, 7)
        );
    }

    #[test]
    fn malformed_datagrams_are_counted_and_cons_rejected() {
        let mut ep = endpoint(false);
        let now = Instant::now();
        let mut out = Vec::new();
        for (datagram, reply) in [
            (&b""[..], None),
            (b"\x40\x02", None),
            (b"\x00\x02\x12\x34", None), // version 0: silently ignored
            (b"\x49\x02\x12\x34", Some(Message::reset(0x1234))), // CON, token length 9
            (b"\x40\x00\x00\x05\xff", Some(Message::reset(5))), // empty CON with bytes after the header
            (b"\x50\x02\x00\x06\xff", None), // NON, payload marker without payload
            (b"\x60\x45\x00\x07\xff", None), // ACK, payload marker without payload
        ] {
            ep.handle_datagram(now, peer(1), datagram, &mut out);
            let got = (!out.is_empty()).then(|| Message::decode(&out).unwrap());
            assert_eq!(got, reply, "{datagram:02x?}");
        }
        let s = ep.stats();
        assert_eq!(
            (s.malformed, s.resets_sent, s.requests, s.datagrams_received),
            (7, 0, 0, 7)
        );
    }
}
