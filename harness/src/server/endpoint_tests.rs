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
    let deferred = ep.handle_datagram(now, Link::Plain, from, &msg.to_bytes(), &mut out);
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
        ep.handle_datagram(now, Link::Plain, peer(1), datagram, &mut out);
        let got = (!out.is_empty()).then(|| Message::decode(&out).unwrap());
        assert_eq!(got, reply, "{datagram:02x?}");
    }
    let s = ep.stats();
    assert_eq!(
        (s.malformed, s.resets_sent, s.requests, s.datagrams_received),
        (7, 0, 0, 7)
    );
}

fn observe_get(mtype: MessageType, mid: u16, token: u64, feature: &str, observe: u32) -> Message {
    let mut m = Message::new(mtype, Code::GET, mid, Token::from_u64(token));
    m.set_path(&format!("/api/v1/{TOKEN}/{feature}"));
    m.add_uint_option(option::OBSERVE, observe);
    m
}

fn attrs(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn decode(n: &Notification) -> Message {
    Message::decode(&n.bytes).unwrap()
}

#[test]
fn attribute_observer_gets_numbered_notifications_until_deregistered() {
    let mut ep = endpoint(false);
    let now = Instant::now();
    ep.set_shared_attribute(TOKEN, "interval", serde_json::json!(30));
    let reg = observe_get(MessageType::Con, 1, 0xa1, "attributes", 0);
    let reply = feed(&mut ep, now, peer(1), &reg).0.unwrap();
    assert_eq!(
        (reply.mtype, reply.code, reply.token),
        (MessageType::Ack, Code::CONTENT, reg.token)
    );
    assert_eq!(reply.uint_option(option::OBSERVE), Some(0));
    assert_eq!(reply.payload, br#"{"interval":30}"#);
    assert_eq!(ep.observers(), 1);
    let mut numbers = Vec::new();
    for (i, value) in [1, 2].into_iter().enumerate() {
        let pushed = ep.push_shared_attributes(TOKEN, attrs(serde_json::json!({"v": value})));
        assert_eq!(pushed.len(), 1);
        let n = &pushed[0];
        assert_eq!((n.link, n.peer), (Link::Plain, peer(1)));
        let msg = decode(n);
        assert_eq!(
            (msg.mtype, msg.code, msg.token),
            (MessageType::Con, Code::CONTENT, reg.token),
            "CON like the registration, with its token"
        );
        assert_eq!(n.retransmit.map(|(mid, _)| mid), Some(msg.message_id));
        assert_eq!(msg.content_format(), Some(content_format::JSON));
        assert_eq!(msg.payload, format!(r#"{{"v":{value}}}"#).into_bytes());
        numbers.push(msg.uint_option(option::OBSERVE).unwrap());
        let ack = Message::empty_ack(msg.message_id);
        assert!(feed(&mut ep, now, peer(1), &ack).0.is_none(), "{i}");
    }
    assert_eq!(numbers, [1, 2]);
    assert_eq!(ep.device(TOKEN).unwrap().shared_attributes["v"], 2);
    // Deregistration: same token, Observe=1 (§3.6).
    let dereg = observe_get(MessageType::Con, 2, 0xa1, "attributes", 1);
    let reply = feed(&mut ep, now, peer(1), &dereg).0.unwrap();
    assert_eq!(
        (reply.code, reply.uint_option(option::OBSERVE)),
        (Code::DELETED, None)
    );
    assert_eq!(ep.observers(), 0);
    assert!(ep
        .push_shared_attributes(TOKEN, attrs(serde_json::json!({"v": 3})))
        .is_empty());
    let s = ep.stats();
    assert_eq!(
        (
            s.observe_registrations,
            s.observe_cancellations,
            s.observers
        ),
        (1, 1, 0)
    );
    assert_eq!(
        (
            s.notifications_sent,
            s.notifications_acked,
            s.separate_acked
        ),
        (2, 2, 0)
    );
}

#[test]
fn deregistration_needs_the_registration_token_and_peer() {
    let mut ep = endpoint(false);
    let now = Instant::now();
    feed(
        &mut ep,
        now,
        peer(1),
        &observe_get(MessageType::Con, 1, 5, "attributes", 0),
    );
    for (from, token) in [(peer(2), 5), (peer(1), 6)] {
        let reply = feed(
            &mut ep,
            now,
            from,
            &observe_get(MessageType::Con, 2, token, "attributes", 1),
        );
        assert_eq!(
            reply.0.unwrap().code,
            Code::DELETED,
            "answered all the same"
        );
    }
    assert_eq!(ep.observers(), 1);
    assert_eq!(ep.stats().observe_cancellations, 0);
}

#[test]
fn reset_notification_cancels_the_relation() {
    let mut ep = endpoint(false);
    let now = Instant::now();
    feed(
        &mut ep,
        now,
        peer(1),
        &observe_get(MessageType::Con, 1, 5, "attributes", 0),
    );
    let n = ep.push_shared_attributes(TOKEN, attrs(serde_json::json!({"a": 1})));
    let mid = decode(&n[0]).message_id;
    // An RST from another peer is nobody's business.
    feed(&mut ep, now, peer(2), &Message::reset(mid));
    assert_eq!(ep.observers(), 1);
    feed(&mut ep, now, peer(1), &Message::reset(mid));
    assert_eq!(ep.observers(), 0);
    let mut out = Vec::new();
    assert_eq!(
        ep.separate_timer(peer(1), mid, &mut out),
        SeparateStep::Done
    );
    let s = ep.stats();
    assert_eq!(
        (
            s.notifications_reset,
            s.observe_cancellations,
            s.separate_resets,
            s.ignored
        ),
        (1, 1, 0, 1)
    );
}

#[test]
fn unacknowledged_notification_is_retransmitted_then_ends_the_relation() {
    let mut ep = endpoint(false);
    feed(
        &mut ep,
        Instant::now(),
        peer(1),
        &observe_get(MessageType::Con, 1, 5, "rpc", 0),
    );
    let (_, n) = ep.push_rpc(TOKEN, "reboot", Value::Null).unwrap();
    let (mid, first) = n[0].retransmit.unwrap();
    assert!(first >= Duration::from_secs(2) && first <= Duration::from_secs(3));
    let mut out = Vec::new();
    for _ in 0..4 {
        assert!(matches!(
            ep.separate_timer(peer(1), mid, &mut out),
            SeparateStep::Resend(_)
        ));
        assert_eq!(out, n[0].bytes);
    }
    assert_eq!(
        ep.separate_timer(peer(1), mid, &mut out),
        SeparateStep::GaveUp
    );
    assert_eq!(
        ep.observers(),
        0,
        "RFC 7641 §4.5: a timed-out observer is removed"
    );
    let s = ep.stats();
    assert_eq!(
        (
            s.notification_retransmissions,
            s.notification_timeouts,
            s.separate_timeouts
        ),
        (4, 1, 0)
    );
    assert_eq!(s.observe_cancellations, 1);
}

#[test]
fn reregistration_replaces_and_numbers_keep_rising() {
    let mut ep = endpoint(false);
    let now = Instant::now();
    let first = feed(
        &mut ep,
        now,
        peer(1),
        &observe_get(MessageType::Con, 1, 5, "attributes", 0),
    )
    .0;
    assert_eq!(first.unwrap().uint_option(option::OBSERVE), Some(0));
    ep.push_shared_attributes(TOKEN, attrs(serde_json::json!({"a": 1})));
    // Same peer and token (§4.1), then another token: one relation, the last token, rising numbers.
    let again = feed(
        &mut ep,
        now,
        peer(1),
        &observe_get(MessageType::Con, 2, 5, "attributes", 0),
    )
    .0;
    assert_eq!(again.unwrap().uint_option(option::OBSERVE), Some(2));
    feed(
        &mut ep,
        now,
        peer(1),
        &observe_get(MessageType::Non, 3, 6, "attributes", 0),
    );
    assert_eq!(ep.observers(), 1);
    let n = ep.push_shared_attributes(TOKEN, attrs(serde_json::json!({"a": 2})));
    assert_eq!(n.len(), 1);
    let msg = decode(&n[0]);
    assert_eq!(
        (msg.mtype, msg.token, msg.uint_option(option::OBSERVE)),
        (MessageType::Non, Token::from_u64(6), Some(4)),
        "NON like its registration, untracked"
    );
    assert!(n[0].retransmit.is_none());
    // Another peer observing the same device is another relation.
    feed(
        &mut ep,
        now,
        peer(2),
        &observe_get(MessageType::Con, 4, 5, "attributes", 0),
    );
    assert_eq!(
        ep.push_shared_attributes(TOKEN, attrs(serde_json::json!({"a": 3})))
            .len(),
        2
    );
    let s = ep.stats();
    assert_eq!(
        (s.observe_registrations, s.observe_replaced, s.observers),
        (4, 2, 2)
    );
}

#[test]
fn rpc_observer_gets_commands_and_replies_are_recorded() {
    let mut ep = endpoint(false);
    let now = Instant::now();
    assert!(
        ep.push_rpc(TOKEN, "m", Value::Null).is_none(),
        "nobody observes"
    );
    let reg = observe_get(MessageType::Con, 1, 9, "rpc", 0);
    let reply = feed(&mut ep, now, peer(1), &reg).0.unwrap();
    assert_eq!(
        (
            reply.code,
            reply.uint_option(option::OBSERVE),
            reply.payload.len()
        ),
        (Code::VALID, Some(0), 0)
    );
    let (id, n) = ep
        .push_rpc(TOKEN, "setGpio", serde_json::json!({"pin": 4}))
        .unwrap();
    let (id2, _) = ep.push_rpc(TOKEN, "reboot", serde_json::json!({})).unwrap();
    assert_eq!((id, id2), (0, 1));
    let msg = decode(&n[0]);
    assert_eq!(
        (msg.code, msg.token, msg.uint_option(option::OBSERVE)),
        (Code::CONTENT, reg.token, Some(1))
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&msg.payload).unwrap(),
        serde_json::json!({"id": 0, "method": "setGpio", "params": {"pin": 4}})
    );
    let mut post = Message::new(MessageType::Con, Code::POST, 2, Token::from_u64(10));
    post.set_path(&format!("/api/v1/{TOKEN}/rpc/{id}"));
    post.payload = br#"{"ok":true}"#.to_vec();
    assert_eq!(
        feed(&mut ep, now, peer(1), &post).0.unwrap().code,
        Code::CREATED
    );
    assert_eq!(
        ep.rpc_reply(TOKEN, id),
        Some(serde_json::json!({"ok": true}))
    );
    assert_eq!(ep.rpc_reply(TOKEN, id2), None);
    assert_eq!(ep.rpc_reply("nobody", id), None);
    post.message_id = 3;
    post.set_path(&format!("/api/v1/{TOKEN}/rpc/77"));
    assert_eq!(
        feed(&mut ep, now, peer(1), &post).0.unwrap().code,
        Code::CREATED
    );
    assert_eq!(ep.rpc_reply(TOKEN, 77), None);
    let s = ep.stats();
    assert_eq!(
        (s.rpc_sent, s.rpc_replies, s.rpc_replies_unmatched),
        (2, 1, 1)
    );
    // Deregistered: no more commands.
    feed(
        &mut ep,
        now,
        peer(1),
        &observe_get(MessageType::Con, 4, 9, "rpc", 1),
    );
    assert!(ep.push_rpc(TOKEN, "m", Value::Null).is_none());
}

#[test]
fn rejected_observe_requests_register_nothing() {
    let mut ep = endpoint(false);
    let now = Instant::now();
    for (path, code) in [
        ("/api/v1/nobody/attributes", Code::UNAUTHORIZED),
        ("/api/v1/dev-1/telemetry", Code::BAD_REQUEST),
    ] {
        let mut m = Message::new(MessageType::Con, Code::GET, 1, Token::from_u64(1));
        m.set_path(path);
        m.add_uint_option(option::OBSERVE, 0);
        let reply = feed(&mut ep, now, peer(code.0 as u16), &m).0.unwrap();
        assert_eq!(
            (reply.code, reply.uint_option(option::OBSERVE)),
            (code, None)
        );
    }
    assert_eq!(ep.observers(), 0);
    assert!(ep
        .push_shared_attributes("nobody", attrs(serde_json::json!({"a": 1})))
        .is_empty());
    assert!(ep.device("nobody").is_none());
}

#[test]
fn delayed_registration_response_carries_observe() {
    let mut ep = endpoint(true);
    let (ack, deferred) = feed(
        &mut ep,
        Instant::now(),
        peer(1),
        &observe_get(MessageType::Con, 1, 5, "attributes", 0),
    );
    assert_eq!(ack.unwrap(), Message::empty_ack(1));
    let mut out = Vec::new();
    ep.separate_due(deferred.unwrap(), &mut out);
    let sep = Message::decode(&out).unwrap();
    assert_eq!(
        (sep.code, sep.uint_option(option::OBSERVE)),
        (Code::CONTENT, Some(0))
    );
    assert_eq!(ep.observers(), 1);
}

#[test]
fn dtls_session_end_and_undeliverable_notifications_end_relations() {
    let mut ep = endpoint(false);
    let now = Instant::now();
    let reg = observe_get(MessageType::Con, 1, 5, "attributes", 0);
    let mut out = Vec::new();
    ep.handle_datagram(now, Link::Dtls, peer(1), &reg.to_bytes(), &mut out);
    let plain = observe_get(MessageType::Con, 2, 5, "attributes", 0);
    feed(&mut ep, now, peer(1), &plain);
    assert_eq!(
        ep.observers(),
        2,
        "plain and DTLS from one address are two peers"
    );
    let n = ep.push_shared_attributes(TOKEN, attrs(serde_json::json!({"a": 1})));
    let dtls = n.iter().find(|n| n.link == Link::Dtls).unwrap();
    ep.notification_undeliverable(dtls, true);
    assert_eq!(ep.observers(), 1);
    let (mid, _) = dtls.retransmit.unwrap();
    assert_eq!(
        ep.separate_timer(peer(1), mid, &mut out),
        SeparateStep::Done,
        "untracked"
    );
    ep.forget_peer(Link::Plain, peer(1));
    let s = ep.stats();
    assert_eq!(
        (s.observers, s.observe_cancellations, s.send_errors),
        (0, 2, 1)
    );
}

/// A DTLS session's certificate hash, looked up among the registered ones, names the device of the
/// token-less path; an unknown hash and no certificate get 4.01.
#[test]
fn registered_certificate_names_the_device() {
    let mut ep = endpoint(false);
    let now = Instant::now();
    let (known, unknown) = ([1u8; 32], [2u8; 32]);
    ep.register_certs([(known, "cert-device".to_string())]);
    let mut req = telemetry(MessageType::Con, 1, TOKEN);
    req.set_path("/api/v1/telemetry");
    let mut code = |cert: Option<&[u8; 32]>, mid: u16| {
        req.message_id = mid;
        let mut out = Vec::new();
        ep.handle_datagram_from(now, Link::Dtls, peer(mid), cert, &req.to_bytes(), &mut out);
        Message::decode(&out).unwrap().code
    };
    assert_eq!(code(Some(&known), 1), Code::CREATED);
    assert_eq!(code(Some(&unknown), 2), Code::UNAUTHORIZED);
    assert_eq!(code(None, 3), Code::UNAUTHORIZED);
    let device = ep.device("cert-device").unwrap();
    assert_eq!(device.messages, 1);
    // The snapshot names the certificate that posted, as SHA-256 hex.
    let hex = "01".repeat(32);
    assert_eq!(device.certificates, [(hex, 1)].into());
    assert_eq!(ep.stats().unknown_token, 2);
}
