use std::io::{BufReader, BufWriter};
use std::time::{Duration, SystemTime};

use super::*;
use crate::curve::named_curve::*;
use crate::extension::extension_supported_elliptic_curves::*;

#[test]
fn test_handshake_message_client_hello() -> Result<()> {
    let raw_client_hello = vec![
        0xfe, 0xfd, 0xb6, 0x2f, 0xce, 0x5c, 0x42, 0x54, 0xff, 0x86, 0xe1, 0x24, 0x41, 0x91, 0x42,
        0x62, 0x15, 0xad, 0x16, 0xc9, 0x15, 0x8d, 0x95, 0x71, 0x8a, 0xbb, 0x22, 0xd7, 0x47, 0xec,
        0xd8, 0x3d, 0xdc, 0x4b, 0x00, 0x14, 0xe6, 0x14, 0x3a, 0x1b, 0x04, 0xea, 0x9e, 0x7a, 0x14,
        0xd6, 0x6c, 0x57, 0xd0, 0x0e, 0x32, 0x85, 0x76, 0x18, 0xde, 0xd8, 0x00, 0x04, 0xc0, 0x2b,
        0xc0, 0x0a, 0x01, 0x00, 0x00, 0x08, 0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x1d,
    ];

    let gmt_unix_time = if let Some(unix_time) =
        SystemTime::UNIX_EPOCH.checked_add(Duration::new(3056586332u64, 0))
    {
        unix_time
    } else {
        SystemTime::UNIX_EPOCH
    };
    let parsed_client_hello = HandshakeMessageClientHello {
        version: ProtocolVersion {
            major: 0xFE,
            minor: 0xFD,
        },
        random: HandshakeRandom {
            gmt_unix_time,
            random_bytes: [
                0x42, 0x54, 0xff, 0x86, 0xe1, 0x24, 0x41, 0x91, 0x42, 0x62, 0x15, 0xad, 0x16, 0xc9,
                0x15, 0x8d, 0x95, 0x71, 0x8a, 0xbb, 0x22, 0xd7, 0x47, 0xec, 0xd8, 0x3d, 0xdc, 0x4b,
            ],
        },
        session_id: vec![],
        cookie: vec![
            0xe6, 0x14, 0x3a, 0x1b, 0x04, 0xea, 0x9e, 0x7a, 0x14, 0xd6, 0x6c, 0x57, 0xd0, 0x0e,
            0x32, 0x85, 0x76, 0x18, 0xde, 0xd8,
        ],
        cipher_suites: vec![
            CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256,
            CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_256_Cbc_Sha,
            //Box::<CipherSuiteTLSEcdheEcdsaWithAes128GcmSha256>::default(),
            //Box::<CipherSuiteTLSEcdheEcdsaWithAes256CbcSha>::default(),
        ],
        compression_methods: CompressionMethods {
            ids: vec![CompressionMethodId::Null],
        },
        extensions: vec![Extension::SupportedEllipticCurves(
            ExtensionSupportedEllipticCurves {
                elliptic_curves: vec![NamedCurve::X25519],
            },
        )],
    };

    let mut reader = BufReader::new(raw_client_hello.as_slice());
    let c = HandshakeMessageClientHello::unmarshal(&mut reader)?;
    assert_eq!(
        c, parsed_client_hello,
        "handshakeMessageClientHello unmarshal: got {c:?}, want {parsed_client_hello:?}"
    );

    let mut raw = vec![];
    {
        let mut writer = BufWriter::<&mut Vec<u8>>::new(raw.as_mut());
        c.marshal(&mut writer)?;
    }
    assert_eq!(
        raw, raw_client_hello,
        "handshakeMessageClientHello marshal: got {raw:?}, want {raw_client_hello:?}"
    );

    Ok(())
}

/// coap-harness fork (FORK.md change 15): a ClientHello's session_id is read and written (upstream read its
/// length only, so the cookie and everything after it were read from the id's bytes).
#[test]
fn test_handshake_message_client_hello_session_id() -> Result<()> {
    let hello = HandshakeMessageClientHello {
        version: ProtocolVersion {
            major: 0xFE,
            minor: 0xFD,
        },
        random: HandshakeRandom::default(),
        session_id: (1..=32).collect(),
        cookie: vec![0xAA; 20],
        cipher_suites: vec![CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256],
        compression_methods: CompressionMethods {
            ids: vec![CompressionMethodId::Null],
        },
        extensions: vec![],
    };
    let mut raw = vec![];
    {
        let mut writer = BufWriter::<&mut Vec<u8>>::new(raw.as_mut());
        hello.marshal(&mut writer)?;
    }
    assert_eq!(raw.len(), hello.size());
    // version, random, then the id's length and bytes, then the cookie's.
    assert_eq!(raw[34], 32);
    assert_eq!(&raw[35..67], &hello.session_id[..]);
    assert_eq!(raw[67], 20);
    let parsed = HandshakeMessageClientHello::unmarshal(&mut BufReader::new(raw.as_slice()))?;
    assert_eq!(parsed, hello);
    Ok(())
}

#[test]
fn rejects_a_session_id_over_32_bytes() {
    let mut raw = vec![0xFE, 0xFD];
    raw.extend_from_slice(&[0; 32]); // random
    raw.push(33);
    raw.extend_from_slice(&[0; 33]);
    raw.extend_from_slice(&[0, 0, 2, 0xC0, 0x2B, 1, 0, 0, 0]);
    assert_eq!(
        HandshakeMessageClientHello::unmarshal(&mut BufReader::new(raw.as_slice())).err(),
        Some(Error::ErrSessionIdTooLong)
    );
}
