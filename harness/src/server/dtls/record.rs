//! The little the demultiplexer reads of a datagram before any session sees it: whether it opens with a
//! DTLS ClientHello (RFC 6347 §4.1 record header, §4.2.2 handshake header), and that hello's client random,
//! which tells a retransmitted hello from a new one.

/// Length of the DTLS record header: type, version, epoch, sequence number, length.
const RECORD_HEADER: usize = 13;
/// Length of the DTLS handshake header: type, length, message_seq, fragment_offset, fragment_length.
const HANDSHAKE_HEADER: usize = 12;
const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const DTLS_1_0: [u8; 2] = [0xfe, 0xff];
const DTLS_1_2: [u8; 2] = [0xfe, 0xfd];
/// Where the client random starts: after both headers and the 2-byte client_version.
const RANDOM_AT: usize = RECORD_HEADER + HANDSHAKE_HEADER + 2;

/// What a datagram is, as far as routing it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Datagram {
    /// Its first record is a plaintext (epoch 0) ClientHello. `random` is the client random when the
    /// record holds the start of the message (it does unless the hello is fragmented oddly).
    ClientHello { random: Option<[u8; 32]> },
    /// Anything else: a record of an existing session, or garbage from a stranger.
    Other,
}

/// Classifies a received datagram.
pub(crate) fn classify(d: &[u8]) -> Datagram {
    if d.len() < RECORD_HEADER + HANDSHAKE_HEADER
        || d[0] != CONTENT_HANDSHAKE
        || (d[1..3] != DTLS_1_0 && d[1..3] != DTLS_1_2)
        || d[3..5] != [0, 0]
        || d[RECORD_HEADER] != HANDSHAKE_CLIENT_HELLO
    {
        return Datagram::Other;
    }
    let record_len = usize::from(u16::from_be_bytes([d[11], d[12]]));
    let fragment_offset = &d[RECORD_HEADER + 6..RECORD_HEADER + 9];
    let random = (fragment_offset == [0, 0, 0]
        && record_len >= RANDOM_AT + 32 - RECORD_HEADER
        && d.len() >= RANDOM_AT + 32)
        .then(|| d[RANDOM_AT..RANDOM_AT + 32].try_into().expect("32 bytes"));
    Datagram::ClientHello { random }
}

/// RFC 9146 §4: a protected record carrying a connection ID (`tls12_cid`).
const CONTENT_TLS12_CID: u8 = 25;

/// The connection ID of a datagram whose first record is a `tls12_cid` record (RFC 9146 §4), when the
/// server's connection IDs are `len` bytes: they sit between the sequence number and the length. Not proof
/// of anything: the session that owns the ID authenticates the record (see `table.rs`).
pub(crate) fn connection_id(d: &[u8], len: usize) -> Option<&[u8]> {
    (len > 0
        && d.len() >= RECORD_HEADER + len
        && d[0] == CONTENT_TLS12_CID
        && (d[1..3] == DTLS_1_2 || d[1..3] == DTLS_1_0))
        .then(|| &d[11..11 + len])
}

const CONTENT_ALERT: u8 = 21;

/// The first plaintext (epoch 0) alert record in a datagram, as `level description` in RFC 5246 §7.2
/// words (`fatal unknown_ca (48)`): a client refusing our certificate sends it before its ChangeCipherSpec.
pub(crate) fn plaintext_alert(d: &[u8]) -> Option<String> {
    let mut at = 0;
    while d.len() >= at + RECORD_HEADER {
        let r = &d[at..];
        let len = usize::from(u16::from_be_bytes([r[11], r[12]]));
        if r[0] == CONTENT_ALERT && r[3..5] == [0, 0] && len == 2 && r.len() >= RECORD_HEADER + 2 {
            let level = match r[RECORD_HEADER] {
                1 => "warning",
                2 => "fatal",
                _ => "level?",
            };
            let code = r[RECORD_HEADER + 1];
            return Some(format!("{level} {} ({code})", alert_name(code)));
        }
        at += RECORD_HEADER + len;
    }
    None
}

fn alert_name(code: u8) -> &'static str {
    match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        90 => "user_canceled",
        112 => "unrecognized_name",
        _ => "unknown alert",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello record header and handshake header followed by client_version and a random of `r`.
    fn hello(version: [u8; 2], epoch: u16, offset: u8, r: u8) -> Vec<u8> {
        let mut d = vec![CONTENT_HANDSHAKE, version[0], version[1]];
        d.extend_from_slice(&epoch.to_be_bytes());
        d.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // sequence number
        d.extend_from_slice(&(12 + 2 + 32 + 1u16).to_be_bytes());
        d.extend_from_slice(&[
            HANDSHAKE_CLIENT_HELLO,
            0,
            0,
            35,
            0,
            0,
            0,
            0,
            offset,
            0,
            0,
            35,
        ]);
        d.extend_from_slice(&DTLS_1_2);
        d.extend_from_slice(&[r; 32]);
        d.push(0); // session id length
        d
    }

    #[test]
    fn recognises_client_hello_and_its_random() {
        for version in [DTLS_1_0, DTLS_1_2] {
            assert_eq!(
                classify(&hello(version, 0, 0, 7)),
                Datagram::ClientHello {
                    random: Some([7; 32])
                }
            );
        }
        // A later fragment carries no random; it is still a hello.
        assert_eq!(
            classify(&hello(DTLS_1_2, 0, 9, 7)),
            Datagram::ClientHello { random: None }
        );
        // Too short to hold the random.
        assert_eq!(
            classify(&hello(DTLS_1_2, 0, 0, 7)[..40]),
            Datagram::ClientHello { random: None }
        );
    }

    #[test]
    fn rejects_everything_else() {
        let ok = hello(DTLS_1_2, 0, 0, 1);
        let mut wrong_type = ok.clone();
        wrong_type[0] = 23; // application data
        let mut wrong_version = ok.clone();
        wrong_version[1..3].copy_from_slice(&[3, 3]); // TLS 1.2
        let mut wrong_msg = ok.clone();
        wrong_msg[RECORD_HEADER] = 2; // ServerHello
        for d in [
            &b""[..],
            b"\x40\x01\x12\x34", // a CoAP ping
            &ok[..RECORD_HEADER + HANDSHAKE_HEADER - 1],
            &wrong_type,
            &wrong_version,
            &wrong_msg,
            &hello(DTLS_1_2, 1, 0, 1), // an encrypted epoch
            &[0xff; 200],
        ] {
            assert_eq!(classify(d), Datagram::Other, "{d:02x?}");
        }
    }

    #[test]
    fn reads_the_connection_id_of_a_tls12_cid_record() {
        let mut d = vec![CONTENT_TLS12_CID, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 7];
        d.extend_from_slice(&[0xc1, 0xc2, 0xc3, 0xc4]);
        d.extend_from_slice(&[0, 30]);
        d.extend_from_slice(&[0u8; 30]);
        assert_eq!(connection_id(&d, 4), Some(&[0xc1, 0xc2, 0xc3, 0xc4][..]));
        assert_eq!(connection_id(&d, 2), Some(&[0xc1, 0xc2][..]));
        // No CIDs configured, too short for the CID, another record type, another version.
        assert_eq!(connection_id(&d, 0), None);
        assert_eq!(connection_id(&d[..14], 4), None);
        let mut app = d.clone();
        app[0] = 23;
        assert_eq!(connection_id(&app, 4), None);
        let mut tls = d.clone();
        tls[1..3].copy_from_slice(&[3, 3]);
        assert_eq!(connection_id(&tls, 4), None);
        assert_eq!(classify(&d), Datagram::Other);
    }

    #[test]
    fn reads_a_plaintext_alert_after_another_record() {
        let mut d = hello(DTLS_1_2, 0, 0, 7);
        d.extend_from_slice(&[
            CONTENT_ALERT,
            0xfe,
            0xfd,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            9,
            0,
            2,
            2,
            48,
        ]);
        assert_eq!(
            plaintext_alert(&d).as_deref(),
            Some("fatal unknown_ca (48)")
        );
        let encrypted = [
            CONTENT_ALERT,
            0xfe,
            0xfd,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            9,
            0,
            2,
            2,
            48,
        ];
        assert_eq!(plaintext_alert(&encrypted), None);
        assert_eq!(plaintext_alert(&hello(DTLS_1_2, 0, 0, 7)), None);
    }
}
