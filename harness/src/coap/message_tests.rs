use super::*;

fn msg(mtype: MessageType, code: Code, mid: u16, token: &[u8]) -> Message {
    Message::new(mtype, code, mid, Token::new(token).unwrap())
}

/// Byte vectors from RFC 7252 Appendix A and hand-checked extensions.
#[test]
fn encodes_and_decodes_rfc_vectors() {
    let mut get = msg(MessageType::Con, Code::GET, 0x7d34, &[]);
    get.set_path("/temperature");
    let mut want = vec![0x40, 0x01, 0x7d, 0x34, 0xbb];
    want.extend_from_slice(b"temperature");

    let mut content = msg(MessageType::Ack, Code::CONTENT, 0x7d34, &[]);
    content.payload = b"22.3 C".to_vec();
    let mut want_content = vec![0x60, 0x45, 0x7d, 0x34, 0xff];
    want_content.extend_from_slice(b"22.3 C");

    let mut with_token = msg(MessageType::Con, Code::GET, 0x7d35, &[0x20]);
    with_token.set_path("temperature");
    let mut want_token = vec![0x41, 0x01, 0x7d, 0x35, 0x20, 0xbb];
    want_token.extend_from_slice(b"temperature");

    let cases: Vec<(Message, Vec<u8>)> = vec![
        (get, want),
        (content, want_content),
        (with_token, want_token),
        (Message::empty_ack(0x7d38), vec![0x60, 0x00, 0x7d, 0x38]),
        (Message::reset(0x0001), vec![0x70, 0x00, 0x00, 0x01]),
    ];
    for (m, bytes) in cases {
        assert_eq!(m.to_bytes(), bytes, "encode {m}");
        assert_eq!(Message::decode(&bytes).unwrap(), m, "decode {bytes:02x?}");
    }
}

#[test]
fn option_delta_and_length_extensions() {
    // Delta 12 (no ext), 13 (1-byte ext), 268, 269 (2-byte ext); lengths likewise.
    for (number, len, head) in [
        (12u16, 12usize, vec![0xcc]),
        (13, 13, vec![0xdd, 0x00, 0x00]),
        (268, 268, vec![0xdd, 0xff, 0xff]),
        (269, 269, vec![0xee, 0x00, 0x00, 0x00, 0x00]),
        (1000, 300, vec![0xee, 0x02, 0xdb, 0x00, 0x1f]),
    ] {
        let mut m = msg(MessageType::Non, Code::POST, 1, &[]);
        m.add_option(number, vec![b'x'; len]);
        let bytes = m.to_bytes();
        assert_eq!(
            &bytes[4..4 + head.len()],
            head.as_slice(),
            "option {number}/{len}"
        );
        assert_eq!(bytes.len(), 4 + head.len() + len);
        assert_eq!(Message::decode(&bytes).unwrap(), m);
    }
}

#[test]
fn options_sorted_and_repeatable() {
    let mut m = msg(MessageType::Con, Code::POST, 9, b"tok");
    m.add_uint_option(option::CONTENT_FORMAT, 50);
    m.set_path("/api/v1/TOKEN/telemetry");
    m.add_option(option::URI_QUERY, "a=1");
    m.add_uint_option(option::OBSERVE, 0);
    let numbers: Vec<u16> = m.options().iter().map(|o| o.number).collect();
    assert_eq!(numbers, vec![6, 11, 11, 11, 11, 12, 15]);
    assert_eq!(m.path_segments(), ["api", "v1", "TOKEN", "telemetry"]);
    assert_eq!(
        m.option(option::OBSERVE),
        Some(&[][..]),
        "uint 0 encodes as empty"
    );
    assert_eq!(m.content_format(), Some(50));
    let back = Message::decode(&m.to_bytes()).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.query(), ["a=1"]);
}

#[test]
fn token_from_u64_is_shortest() {
    assert_eq!(Token::from_u64(0).as_bytes(), &[0]);
    assert_eq!(Token::from_u64(0x1234).as_bytes(), &[0x12, 0x34]);
    assert_eq!(Token::from_u64(u64::MAX).as_bytes().len(), 8);
    assert!(Token::new(&[0; 9]).is_none());
}

#[test]
fn rejects_short_datagram() {
    assert_eq!(
        Message::decode(&[0x40, 0x01, 0x00]),
        Err(DecodeError::TooShort(3))
    );
    assert_eq!(Message::decode(&[]), Err(DecodeError::TooShort(0)));
}

#[test]
fn rejects_wrong_version() {
    assert_eq!(
        Message::decode(&[0x80, 0x01, 0, 1]),
        Err(DecodeError::UnsupportedVersion(2))
    );
}

#[test]
fn rejects_token_length_9_to_15() {
    for tkl in 9u8..=15 {
        let mut b = vec![0x40 | tkl, 0x01, 0, 1];
        b.extend(std::iter::repeat_n(0u8, 15));
        assert_eq!(
            Message::decode(&b),
            Err(DecodeError::ReservedTokenLength(tkl))
        );
    }
}

#[test]
fn rejects_truncated_token() {
    assert_eq!(
        Message::decode(&[0x44, 0x01, 0, 1, 0xaa]),
        Err(DecodeError::TruncatedToken(4))
    );
}

#[test]
fn rejects_reserved_code_class() {
    for class in [1u8, 6, 7] {
        let code = Code::new(class, 0);
        assert_eq!(
            Message::decode(&[0x40, code.0, 0, 1]),
            Err(DecodeError::ReservedCodeClass(code))
        );
    }
}

#[test]
fn rejects_trailing_garbage_after_empty_message() {
    assert_eq!(
        Message::decode(&[0x60, 0x00, 0, 1, 0xde, 0xad]),
        Err(DecodeError::TrailingBytes(2))
    );
    // An empty message may not carry a token either.
    assert_eq!(
        Message::decode(&[0x61, 0x00, 0, 1, 0x01]),
        Err(DecodeError::TrailingBytes(1))
    );
}

#[test]
fn rejects_reserved_option_nibbles() {
    assert_eq!(
        Message::decode(&[0x40, 0x01, 0, 1, 0xf1, b'x']),
        Err(DecodeError::ReservedOptionNibble {
            field: "delta",
            offset: 4
        })
    );
    assert_eq!(
        Message::decode(&[0x40, 0x01, 0, 1, 0x1f]),
        Err(DecodeError::ReservedOptionNibble {
            field: "length",
            offset: 4
        })
    );
}

#[test]
fn rejects_payload_marker_without_payload() {
    assert_eq!(
        Message::decode(&[0x40, 0x02, 0, 1, 0xff]),
        Err(DecodeError::PayloadMarkerWithoutPayload)
    );
}

#[test]
fn rejects_truncated_options() {
    for bytes in [
        vec![0x40, 0x01, 0, 1, 0xd0],       // 1-byte delta extension missing
        vec![0x40, 0x01, 0, 1, 0xe0, 0x01], // 2-byte delta extension cut short
        vec![0x40, 0x01, 0, 1, 0xb5, b'a', b'b'], // value of 5 with 2 bytes left
    ] {
        assert_eq!(
            Message::decode(&bytes),
            Err(DecodeError::TruncatedOption { offset: 4 }),
            "{bytes:02x?}"
        );
    }
}

#[test]
fn rejects_option_number_overflow() {
    // 65000 + 65000 > u16::MAX
    let d = (65000u16 - 269).to_be_bytes();
    let bytes = vec![0x40, 0x01, 0, 1, 0xe0, d[0], d[1], 0xe0, d[0], d[1]];
    assert!(matches!(
        Message::decode(&bytes),
        Err(DecodeError::OptionNumberOverflow { .. })
    ));
    // The 2-byte extension itself overflowing.
    let bytes = vec![0x40, 0x01, 0, 1, 0xe0, 0xff, 0xff];
    assert!(matches!(
        Message::decode(&bytes),
        Err(DecodeError::OptionNumberOverflow { .. })
    ));
}

/// Cross-check against an independent codec (coap-lite) in both directions.
#[test]
fn agrees_with_coap_lite() {
    use coap_lite::Packet;
    let mut rng = fastrand::Rng::with_seed(7);
    for i in 0..500u32 {
        let mut m = msg(
            [
                MessageType::Con,
                MessageType::Non,
                MessageType::Ack,
                MessageType::Rst,
            ][i as usize % 4],
            [Code::POST, Code::GET, Code::CREATED, Code::BAD_REQUEST][rng.usize(..4)],
            rng.u16(..),
            &(0..rng.usize(..=8)).map(|_| rng.u8(..)).collect::<Vec<_>>(),
        );
        for _ in 0..rng.usize(..6) {
            let number = [1u16, 6, 11, 12, 15, 17, 23, 60, 300, 2048][rng.usize(..10)];
            let len = [0usize, 1, 12, 13, 40, 268, 300][rng.usize(..7)];
            // coap-lite refuses to encode packets over 1280 bytes; stay within that.
            if m.to_bytes().len() + len + 3 < 1100 {
                m.add_option(number, (0..len).map(|_| rng.u8(..)).collect::<Vec<_>>());
            }
        }
        if rng.bool() {
            m.payload = (0..rng.usize(1..100)).map(|_| rng.u8(..)).collect();
        }
        let ours = m.to_bytes();
        let theirs = Packet::from_bytes(&ours).expect("coap-lite parses our encoding");
        assert_eq!(theirs.header.message_id, m.message_id);
        assert_eq!(theirs.get_token(), m.token.as_bytes());
        assert_eq!(theirs.payload, m.payload);
        let mut their_opts = Vec::new();
        for (number, values) in theirs.options() {
            for v in values {
                their_opts.push((*number, v.clone()));
            }
        }
        let our_opts: Vec<(u16, Vec<u8>)> = m
            .options()
            .iter()
            .map(|o| (o.number, o.value.clone()))
            .collect();
        assert_eq!(their_opts, our_opts);
        let reencoded = theirs.to_bytes().expect("coap-lite encodes");
        assert_eq!(
            Message::decode(&reencoded).unwrap(),
            m,
            "their encoding decodes to ours"
        );
    }
}

#[test]
fn display_is_libcoap_like() {
    let mut m = msg(MessageType::Ack, Code::CREATED, 0x1234, &[0x0a]);
    m.payload = b"ok".to_vec();
    assert_eq!(m.to_string(), "v:1 t:ACK c:2.01 i:1234 {0a} [ ] :: ok");
}
