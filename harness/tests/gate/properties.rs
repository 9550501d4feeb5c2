//! Property tests of the parsers that read untrusted input: the CoAP decoder (every datagram a server or a
//! middlebox sends) never panics and round-trips what it encodes, and the scenario loader never panics and
//! refuses pathological nesting before serde_yaml sees it.
//!
//! CI runs 20,000 cases per property. For the benchmark-style run (BENCHMARKS.md) set the count:
//! `PROPTEST_CASES=1000000 cargo test --release -p coap-harness --test gate properties::coap_`

use coap_harness::coap::{Code, Message, MessageType, Token};
use coap_harness::scenario::{parse, Overrides, ScenarioError};
use proptest::prelude::*;
use std::path::Path;

/// Cases per property: `PROPTEST_CASES`, or `default` (CI).
fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        // Failure persistence files would land in the source tree; a failure prints its seed instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn mtype() -> impl Strategy<Value = MessageType> {
    prop_oneof![
        Just(MessageType::Con),
        Just(MessageType::Non),
        Just(MessageType::Ack),
        Just(MessageType::Rst),
    ]
}

/// A well-formed message: a code outside the reserved classes (1, 6, 7), and an empty message (0.00) with
/// nothing after its header.
fn message() -> impl Strategy<Value = Message> {
    let code = prop_oneof![
        Just(0u8),
        (0u8..32).prop_map(|d| d), // 0.01..0.31: requests
        (0u8..32).prop_map(|d| 0x40 | d),
        (0u8..32).prop_map(|d| 0x80 | d),
        (0u8..32).prop_map(|d| 0xA0 | d),
    ];
    let options = prop::collection::vec(
        (
            prop_oneof![0u16..300, any::<u16>()],
            prop::collection::vec(any::<u8>(), 0..300),
        ),
        0..8,
    );
    (
        mtype(),
        code,
        any::<u16>(),
        prop::collection::vec(any::<u8>(), 0..=8),
        options,
        prop::collection::vec(any::<u8>(), 0..600),
    )
        .prop_map(|(t, code, mid, token, options, payload)| {
            let code = Code(code);
            if code == Code::EMPTY {
                return Message::new(t, code, mid, Token::default());
            }
            let mut m = Message::new(t, code, mid, Token::new(&token).expect("0 to 8 bytes"));
            for (number, value) in options {
                m.add_option(number, value);
            }
            m.payload = payload;
            m
        })
}

/// Arbitrary datagrams, and ones that start like CoAP (version 1, a short token) so the decoder's deeper
/// paths (options, extended deltas, payload marker) are reached often.
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (
            0u8..4,
            0u8..9,
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..200)
        )
            .prop_map(|(t, tkl, code, rest)| {
                let mut v = vec![0x40 | (t << 4) | tkl, code, 0x12, 0x34];
                v.extend(rest);
                v
            }),
    ]
}

proptest! {
    #![proptest_config(cases(20_000))]

    /// Whatever arrives, decoding returns a message or a named error; what decodes encodes back to the
    /// same bytes (the wire format has one encoding per message) and decodes to the same message.
    #[test]
    fn coap_decode_never_panics_and_what_it_accepts_reencodes_identically(bytes in datagram()) {
        if let Ok(m) = Message::decode(&bytes) {
            let again = m.to_bytes();
            prop_assert_eq!(&again, &bytes);
            prop_assert_eq!(Message::decode(&again), Ok(m));
        }
    }

    /// Every message the encoder writes decodes to itself.
    #[test]
    fn coap_encode_then_decode_round_trips(m in message()) {
        let bytes = m.to_bytes();
        prop_assert_eq!(Message::decode(&bytes), Ok(m));
    }
}

const BASE: &str =
    "target: embedded\ndevices:\n  count: 1\nphases:\n  - duration: 1s\n    interval: 1s\n";

fn load(text: &str) -> Result<coap_harness::scenario::RunPlan, ScenarioError> {
    parse(
        text,
        Path::new("p.yaml"),
        Path::new("."),
        "p",
        &Overrides::default(),
    )
}

/// YAML-ish fragments: brackets, quotes, indentation, keys the scenario knows, block scalars.
fn yamlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just(", ".to_string()),
        Just(": ".to_string()),
        Just("- ".to_string()),
        Just("\n".to_string()),
        Just("\n  ".to_string()),
        Just("\n    ".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("#".to_string()),
        Just("|\n".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("!!str ".to_string()),
        Just("phases".to_string()),
        Just("duration".to_string()),
        Just("1s".to_string()),
        Just("rate".to_string()),
        Just("thresholds".to_string()),
        Just("p99 < 1ms".to_string()),
        Just("\u{feff}".to_string()),
        "[a-z0-9%/.]{1,6}",
    ];
    prop::collection::vec(piece, 0..80).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(cases(2_000))]

    /// The loader returns a plan or an error for any text, never panics.
    #[test]
    fn scenario_loader_never_panics(text in yamlish()) {
        let _ = load(&text);
        let _ = load(&format!("{BASE}{text}"));
    }
}

/// 200 KB of nested brackets (42 s of CPU in serde_yaml before) is refused by the depth pre-scan, with the
/// place it went too deep.
#[test]
fn deeply_nested_yaml_is_refused_with_its_location() {
    for open in ["[", "{a: ", "- "] {
        let text = format!(
            "{BASE}request:\n  payload: {}\n",
            open.repeat(200_000 / open.len())
        );
        let e = load(&text).expect_err("refused");
        let msg = e.to_string();
        assert!(msg.starts_with("p.yaml:8:"), "{msg}");
        assert!(msg.contains("nested deeper than 64 levels"), "{msg}");
    }
}

/// A huge but flat file (20,000 phases, 700 KB) is read in one pass and judged on its content, not refused
/// for its size.
#[test]
fn a_huge_flat_scenario_still_loads() {
    let mut text = String::from("target: embedded\ndevices:\n  count: 1\nphases:\n");
    for _ in 0..20_000 {
        text.push_str("  - duration: 1ms\n    interval: 1s # [[[[[[[[\n");
    }
    let plan = load(&text).expect("many phases are fine");
    assert_eq!(plan.phases.len(), 20_000);
}

/// A byte-order mark at the start (some Windows editors write one) is not an error.
#[test]
fn a_utf8_byte_order_mark_is_accepted() {
    let plan = load(&format!("\u{feff}{BASE}")).expect("BOM accepted");
    assert_eq!(plan.phases.len(), 1);
}
