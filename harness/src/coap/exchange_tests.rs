use super::*;
use crate::coap::code::Code;

fn params(factor: f64) -> TransmissionParams {
    TransmissionParams {
        ack_timeout: Duration::from_secs(2),
        ack_random_factor: factor,
        max_retransmit: 4,
        response_timeout: Duration::from_secs(10),
        nstart: 1,
    }
}

fn post(mtype: MessageType) -> Message {
    let mut m = Message::new(mtype, Code::POST, 0, Token::default());
    m.set_path("/api/v1/t/telemetry");
    m.payload = b"{\"a\":1}".to_vec();
    m
}

/// Starts one request and returns the decoded request as sent.
fn sent(ep: &mut ClientEndpoint, now: Instant, mtype: MessageType) -> Message {
    ep.start(now, post(mtype));
    Message::decode(&ep.poll_transmit().expect("request sent")).unwrap()
}

fn reply(req: &Message, mtype: MessageType, code: Code, mid: u16) -> Vec<u8> {
    Message::new(mtype, code, mid, req.token).to_bytes()
}

#[test]
fn piggybacked_response_completes() {
    let t0 = Instant::now();
    let mut ep = ClientEndpoint::new(params(1.5), 1);
    let req = sent(&mut ep, t0, MessageType::Con);
    assert_eq!(req.mtype, MessageType::Con);
    assert_eq!(req.token.as_bytes().len(), 4);
    let t1 = t0 + Duration::from_millis(3);
    ep.handle_datagram(
        t1,
        &reply(&req, MessageType::Ack, Code::CREATED, req.message_id),
    );
    let done = ep.poll_event().unwrap();
    assert_eq!(done.completed, t1);
    assert_eq!(done.retransmissions, 0);
    match done.outcome {
        ExchangeOutcome::Response { response, separate } => {
            assert_eq!(response.code, Code::CREATED);
            assert!(!separate);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ep.in_flight(), 0);
    assert!(
        ep.poll_transmit().is_none(),
        "nothing to ACK for a piggybacked response"
    );
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn message_ids_and_tokens_advance() {
    let t0 = Instant::now();
    let mut ep = ClientEndpoint::new(params(1.5), 9);
    let a = sent(&mut ep, t0, MessageType::Non);
    let b = sent(&mut ep, t0, MessageType::Non);
    assert_eq!(b.message_id, a.message_id.wrapping_add(1));
    assert_ne!(a.token, b.token);
}

/// With ACK_RANDOM_FACTOR 1 the schedule is exact: 2, 4, 8, 16, 32 s between transmissions.
#[test]
fn con_retransmits_with_exponential_backoff_then_times_out() {
    let t0 = Instant::now();
    let mut ep = ClientEndpoint::new(params(1.0), 2);
    let req = sent(&mut ep, t0, MessageType::Con);
    let mut at = t0;
    for (n, gap) in [2u64, 4, 8, 16].into_iter().enumerate() {
        at += Duration::from_secs(gap);
        assert_eq!(ep.poll_timeout(), Some(at), "retransmission {}", n + 1);
        ep.handle_timeout(at - Duration::from_millis(1));
        assert!(ep.poll_transmit().is_none(), "not before the deadline");
        ep.handle_timeout(at);
        let again = Message::decode(&ep.poll_transmit().unwrap()).unwrap();
        assert_eq!(again, req, "retransmission is the same message");
        assert!(ep.poll_event().is_none());
    }
    at += Duration::from_secs(32);
    assert_eq!(ep.poll_timeout(), Some(at));
    ep.handle_timeout(at);
    let done = ep.poll_event().unwrap();
    assert_eq!(done.outcome, ExchangeOutcome::Timeout { acked: false });
    assert_eq!(done.retransmissions, 4);
    assert_eq!(at - t0, Duration::from_secs(62));
    assert_eq!(ep.stats().retransmissions, 4);
    assert_eq!(params(1.0).max_transmit_wait(), Duration::from_secs(62));
    assert_eq!(params(1.5).max_transmit_wait(), Duration::from_secs(93));
}

#[test]
fn initial_timeout_is_randomised_within_the_factor() {
    let t0 = Instant::now();
    let mut seen = std::collections::HashSet::new();
    for seed in 0..50 {
        let mut ep = ClientEndpoint::new(params(1.5), seed);
        ep.start(t0, post(MessageType::Con));
        let d = ep.poll_timeout().unwrap() - t0;
        assert!(
            d >= Duration::from_secs(2) && d <= Duration::from_secs(3),
            "{d:?}"
        );
        seen.insert(d.as_millis());
    }
    assert!(seen.len() > 10, "timeouts should vary: {seen:?}");
}

#[test]
fn retransmission_answered_late_counts_retransmissions() {
    let t0 = Instant::now();
    let mut ep = ClientEndpoint::new(params(1.0), 3);
    let req = sent(&mut ep, t0, MessageType::Con);
    ep.handle_timeout(t0 + Duration::from_secs(2));
    ep.poll_transmit().unwrap();
    let t = t0 + Duration::from_millis(2100);
    ep.handle_datagram(
        t,
        &reply(&req, MessageType::Ack, Code::CREATED, req.message_id),
    );
    let done = ep.poll_event().unwrap();
    assert_eq!(done.retransmissions, 1);
    assert_eq!(
        done.completed - done.first_sent,
        Duration::from_millis(2100)
    );
}

/// ThingsBoard's pattern: an empty ACK when slow, then the response as its own CON, which we ACK.
#[test]
fn separate_response_after_empty_ack() {
    let t0 = Instant::now();
    let mut ep = ClientEndpoint::new(params(1.0), 4);
    let req = sent(&mut ep, t0, MessageType::Con);
    ep.handle_datagram(
        t0 + Duration::from_millis(500),
        &Message::empty_ack(req.message_id).to_bytes(),
    );
    assert!(
        ep.poll_event().is_none(),
        "an empty ACK is not the response"
    );
    assert_eq!(
        ep.poll_timeout(),
        Some(t0 + Duration::from_millis(500) + Duration::from_secs(10))
    );
    // No retransmission once acknowledged.
    ep.handle_timeout(t0 + Duration::from_secs(3));
    assert!(ep.poll_transmit().is_none());

    let t1 = t0 + Duration::from_millis(800);
    ep.handle_datagram(t1, &reply(&req, MessageType::Con, Code::CREATED, 0x5555));
    let ack = Message::decode(&ep.poll_transmit().expect("we ACK the CON response")).unwrap();
    assert_eq!(ack, Message::empty_ack(0x5555));
    let done = ep.poll_event().unwrap();
    assert_eq!(
        done.completed, t1,
        "latency runs to the response, not the empty ACK"
    );
    assert!(matches!(
        done.outcome,
        ExchangeOutcome::Response { separate: true, .. }
    ));

    // The server did not get our ACK and sends the response again: ACK it again, no new event.
    ep.handle_datagram(
        t1 + Duration::from_secs(2),
        &reply(&req, MessageType::Con, Code::CREATED, 0x5555),
    );
    assert_eq!(
        Message::decode(&ep.poll_transmit().unwrap()).unwrap(),
        Message::empty_ack(0x5555)
    );
    assert!(ep.poll_event().is_none());
    assert_eq!(ep.stats().duplicates, 1);
}

#[test]
fn separate_non_response_is_not_acked() {
    let t0 = Instant::now();
    let mut ep = ClientEndpoint::new(params(1.0), 5);
    let req = sent(&mut ep, t0, MessageType::Con);
    ep.handle_datagram(t0, &Message::empty_ack(req.message_id).to_bytes());
    ep.handle_datagram(t0, &reply(&req, MessageType::Non, Code::CREATED, 7));
    assert!(ep.poll_transmit().is_none());
    assert!(matches!(
        ep.poll_event().unwrap().outcome,
        ExchangeOutcome::Response { separate: true, .. }
    ));
}

/// If the empty ACK is lost, the separate response still completes the exchange (§5.2.2).
#[test]
fn separate_response_before_ack_completes() {
    let t0 = Instant::now();
    let mut ep = ClientEndpoint::new(params(1.0), 6);
    let req = sent(&mut ep, t0, MessageType::Con);
    ep.handle_datagram(t0, &reply(&req, MessageType::Con, Code::CREATED, 9));
    assert!(ep.poll_event().is_some());
    assert_eq!(ep.poll_timeout(), None, "no more retransmissions");
}

#[test]
fn acked_but_no_response_times_out() {
    let t0 = Instant::now();
    let mut ep = ClientEndpoint::new(params(1.0), 7);
    let req = sent(&mut ep, t0, MessageType::Con);
    ep.handle_datagram(t0, &Message::empty_ack(req.message_id).to_bytes());
    ep.handle_timeout(t0 + Duration::from_secs(10));
    assert_eq!(
        ep.poll_event().unwrap().outcome,
        ExchangeOutcome::Timeout { acked: true }
    );
}

#[test]
fn non_request_matched_by_token() {
    let t0 = Instant::now();
    let mut ep = ClientEndpoint::new(params(1.0), 8);
    let req = sent(&mut ep, t0, MessageType::Non);
    assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    // A response with another token is not ours.
    let mut other = Message::new(
        MessageType::Non,
        Code::CREATED,
        1,
        Token::new(b"zz").unwrap(),
    );
    other.payload = b"x".to_vec();
    ep.handle_datagram(t0, &other.to_bytes());
    assert!(ep.poll_event().is_none());
    assert_eq!(ep.stats().unmatched, 1);
    ep.handle_datagram(t0, &reply(&req, MessageType::Non, Code::CREATED, 2));
    assert!(matches!(
        ep.poll_event().unwrap().outcome,
        ExchangeOutcome::Response { .. }
    ));
}

#[test]
fn non_request_times_out_without_retransmission() {
    let t0 = Instant::now();
    let mut ep = ClientEndpoint::new(params(1.0), 8);
    sent(&mut ep, t0, MessageType::Non);
    ep.handle_timeout(t0 + Duration::from_secs(10));
    assert!(ep.poll_transmit().is_none());
    assert_eq!(
        ep.poll_event().unwrap().outcome,
        ExchangeOutcome::Timeout { acked: false }
    );
}

#[test]
fn reset_completes() {
    let t0 = Instant::now();
    let mut ep = ClientEndpoint::new(params(1.0), 10);
    let req = sent(&mut ep, t0, MessageType::Con);
    ep.handle_datagram(t0, &Message::reset(req.message_id).to_bytes());
    assert_eq!(ep.poll_event().unwrap().outcome, ExchangeOutcome::Reset);
}

#[test]
fn stray_con_response_is_reset() {
    let t0 = Instant::now();
    let mut ep = ClientEndpoint::new(params(1.0), 11);
    let stray = Message::new(
        MessageType::Con,
        Code::CONTENT,
        42,
        Token::new(b"no").unwrap(),
    );
    ep.handle_datagram(t0, &stray.to_bytes());
    assert_eq!(
        Message::decode(&ep.poll_transmit().unwrap()).unwrap(),
        Message::reset(42)
    );
    assert_eq!(ep.stats().resets_sent, 1);
}

#[test]
fn piggybacked_response_with_wrong_token_is_ignored() {
    let t0 = Instant::now();
    let mut ep = ClientEndpoint::new(params(1.0), 12);
    let req = sent(&mut ep, t0, MessageType::Con);
    let bad = Message::new(
        MessageType::Ack,
        Code::CREATED,
        req.message_id,
        Token::new(b"x").unwrap(),
    );
    ep.handle_datagram(t0, &bad.to_bytes());
    assert!(ep.poll_event().is_none());
    assert_eq!(ep.stats().unmatched, 1);
}

#[test]
fn garbage_is_counted_and_attached_to_the_exchange() {
    let t0 = Instant::now();
    let mut ep = ClientEndpoint::new(params(1.0), 13);
    ep.start(t0, post(MessageType::Non));
    ep.poll_transmit();
    ep.handle_datagram(t0, b"\xffgarbage");
    ep.handle_timeout(t0 + Duration::from_secs(10));
    let done = ep.poll_event().unwrap();
    assert_eq!(done.outcome, ExchangeOutcome::Timeout { acked: false });
    assert_eq!(done.malformed, Some(DecodeError::UnsupportedVersion(3)));
    assert_eq!(ep.stats().malformed, 1);
}

#[test]
fn abort_all_ends_every_exchange() {
    let t0 = Instant::now();
    let mut ep = ClientEndpoint::new(params(1.0), 14);
    ep.start(t0, post(MessageType::Con));
    ep.start(t0, post(MessageType::Non));
    ep.abort_all(t0);
    assert_eq!(ep.poll_event().unwrap().outcome, ExchangeOutcome::Aborted);
    assert_eq!(ep.poll_event().unwrap().outcome, ExchangeOutcome::Aborted);
    assert_eq!(ep.in_flight(), 0);
}

/// RFC 7641: after registering, notifications with the token are accepted (CON ones ACKed); once the
/// observation is forgotten, a notification is answered with RST, which cancels it on the server.
#[test]
fn observe_notifications_then_reset_after_forgetting() {
    let t0 = Instant::now();
    let mut ep = ClientEndpoint::new(params(1.0), 15);
    let mut get = Message::new(MessageType::Con, Code::GET, 0, Token::default());
    get.add_uint_option(crate::coap::option::OBSERVE, 0);
    ep.start(t0, get);
    let req = Message::decode(&ep.poll_transmit().unwrap()).unwrap();
    let mut first = Message::new(MessageType::Ack, Code::CONTENT, req.message_id, req.token);
    first.add_uint_option(crate::coap::option::OBSERVE, 7);
    ep.handle_datagram(t0, &first.to_bytes());
    assert!(ep.poll_event().is_some());
    ep.observe(req.token);
    let mut note = Message::new(MessageType::Con, Code::CONTENT, 900, req.token);
    note.add_uint_option(crate::coap::option::OBSERVE, 8);
    ep.handle_datagram(t0, &note.to_bytes());
    assert_eq!(
        Message::decode(&ep.poll_transmit().unwrap()).unwrap(),
        Message::empty_ack(900)
    );
    assert_eq!(
        ep.poll_notification()
            .unwrap()
            .uint_option(crate::coap::option::OBSERVE),
        Some(8)
    );
    ep.forget(req.token);
    let again = Message::new(MessageType::Con, Code::CONTENT, 901, req.token);
    ep.handle_datagram(t0, &again.to_bytes());
    assert_eq!(
        Message::decode(&ep.poll_transmit().unwrap()).unwrap(),
        Message::reset(901)
    );
    assert!(ep.poll_notification().is_none());
    // A deregistration reuses the token.
    let mut cancel = Message::new(MessageType::Con, Code::GET, 0, Token::default());
    cancel.add_uint_option(crate::coap::option::OBSERVE, 1);
    ep.start_with_token(t0, cancel, req.token);
    assert_eq!(
        Message::decode(&ep.poll_transmit().unwrap()).unwrap().token,
        req.token
    );
}
