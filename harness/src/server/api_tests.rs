use super::*;
use crate::coap::{MessageType, Token};
use serde_json::json;

const GOOD: &str = "good-token";

fn policy() -> TokenPolicy {
    TokenPolicy::List([GOOD.to_string()].into())
}

fn request(code: Code, path: &str, query: &[&str], payload: &[u8]) -> Message {
    let mut m = Message::new(MessageType::Con, code, 1, Token::from_u64(1));
    m.set_path(path);
    for q in query {
        m.add_option(option::URI_QUERY, q.as_bytes());
    }
    m.payload = payload.to_vec();
    m
}

fn answer(store: &mut Store, code: Code, path: &str, payload: &[u8]) -> Code {
    handle(
        &request(code, path, &[], payload),
        Identity::None,
        &policy(),
        store,
    )
    .code
}

const TELEMETRY: &str = "/api/v1/good-token/telemetry";

#[test]
fn telemetry_post_accepts_thingsboard_shapes() {
    for payload in [
        r#"{"temperature":25}"#,
        r#"{"a":1,"b":"x","c":true,"d":1.5,"e":{"nested":[1,2]}}"#,
        r#"[{"a":1},{"b":2}]"#,
        r#"[]"#,
        r#"{}"#,
        r#"{"ts":1700000000000,"values":{"a":1}}"#,
        r#"{"ts":"1700000000000","values":{"a":1}}"#,
        r#"[{"ts":1,"values":{"a":1}},{"b":2}]"#,
        r#"{"ts":1}"#,
    ] {
        let mut store = Store::default();
        let code = answer(&mut store, Code::POST, TELEMETRY, payload.as_bytes());
        assert_eq!(code, Code::CREATED, "{payload}");
        let dev = store.device_snapshot(GOOD).unwrap();
        assert_eq!(dev.messages, 1, "{payload}");
        assert_eq!(dev.last_payload.as_deref(), Some(payload));
    }
}

#[test]
fn rejects_bad_telemetry_payloads() {
    for payload in [
        &b""[..],
        b"{\"a\":",
        b"not json",
        b"5",
        b"\"x\"",
        b"null",
        b"true",
        b"[1,2]",
        b"[{\"a\":1},2]",
        b"{\"a\":null}",
        b"{\"ts\":1,\"values\":5}",
        b"{\"ts\":1,\"values\":{\"a\":null}}",
        b"{\"ts\":\"soon\",\"values\":{\"a\":1}}",
        b"{\"a\":1} trailing",
        b"\xff\xfe",
    ] {
        let mut store = Store::default();
        let code = answer(&mut store, Code::POST, TELEMETRY, payload);
        assert_eq!(
            code,
            Code::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(payload)
        );
        assert_eq!(store.device_snapshot(GOOD).unwrap().messages, 0);
    }
}

/// Every routing and method rule, in ThingsBoard's order of checks.
#[test]
fn response_codes_by_path_and_method() {
    let ok = br#"{"a":1}"#;
    for (method, path, payload, want) in [
        // Not the device API.
        (Code::POST, "/", &ok[..], Code::NOT_FOUND),
        (Code::POST, "/other", ok, Code::NOT_FOUND),
        (
            Code::POST,
            "/api/v2/good-token/telemetry",
            ok,
            Code::NOT_FOUND,
        ),
        (Code::PUT, "/other", ok, Code::NOT_FOUND),
        // Methods other than GET and POST.
        (Code::PUT, TELEMETRY, ok, Code::METHOD_NOT_ALLOWED),
        (Code::DELETE, TELEMETRY, ok, Code::METHOD_NOT_ALLOWED),
        (Code::FETCH, TELEMETRY, ok, Code::METHOD_NOT_ALLOWED),
        (Code::PATCH, TELEMETRY, ok, Code::METHOD_NOT_ALLOWED),
        (Code::IPATCH, TELEMETRY, ok, Code::METHOD_NOT_ALLOWED),
        (Code::PUT, "/api/v1", ok, Code::METHOD_NOT_ALLOWED),
        (
            Code::DELETE,
            "/api/v1/good-token/attributes",
            b"",
            Code::METHOD_NOT_ALLOWED,
        ),
        // No token.
        (Code::POST, "/api", ok, Code::UNAUTHORIZED),
        (Code::POST, "/api/v1", ok, Code::UNAUTHORIZED),
        (Code::GET, "/api/v1", b"", Code::UNAUTHORIZED),
        (Code::POST, "/api/v1/telemetry", ok, Code::UNAUTHORIZED),
        (Code::GET, "/api/v1/attributes", b"", Code::UNAUTHORIZED),
        // Missing or unknown feature.
        (Code::POST, "/api/v1/good-token", ok, Code::BAD_REQUEST),
        (
            Code::POST,
            "/api/v1/good-token/bogus",
            ok,
            Code::BAD_REQUEST,
        ),
        (Code::POST, "/api/v1/unknown/bogus", ok, Code::BAD_REQUEST),
        // GET on features that have no GET.
        (Code::GET, TELEMETRY, b"", Code::BAD_REQUEST),
        (
            Code::GET,
            "/api/v1/unknown/telemetry",
            b"",
            Code::BAD_REQUEST,
        ),
        (
            Code::GET,
            "/api/v1/good-token/claim",
            b"",
            Code::BAD_REQUEST,
        ),
        (Code::GET, "/api/v1/good-token/rpc", b"", Code::BAD_REQUEST),
        // Unknown token, checked before the payload.
        (
            Code::POST,
            "/api/v1/unknown/telemetry",
            ok,
            Code::UNAUTHORIZED,
        ),
        (
            Code::POST,
            "/api/v1/unknown/telemetry",
            b"5",
            Code::UNAUTHORIZED,
        ),
        (
            Code::POST,
            "/api/v1/unknown/attributes",
            ok,
            Code::UNAUTHORIZED,
        ),
        (
            Code::GET,
            "/api/v1/unknown/attributes",
            b"",
            Code::UNAUTHORIZED,
        ),
        (Code::POST, "/api/v1/unknown/rpc", ok, Code::UNAUTHORIZED),
        (Code::POST, "/api/v1/unknown/claim", b"", Code::UNAUTHORIZED),
        // Features, case-insensitive as in ThingsBoard.
        (
            Code::POST,
            "/api/v1/good-token/TELEMETRY",
            ok,
            Code::CREATED,
        ),
        (
            Code::POST,
            "/api/v1/good-token/Attributes",
            ok,
            Code::CREATED,
        ),
        // RPC: a device-originated request needs a method; a reply needs a JSON object, and is
        // accepted whether or not its ID is pending, as ThingsBoard does.
        (
            Code::POST,
            "/api/v1/good-token/rpc",
            br#"{"method":"getTime","params":{}}"#,
            Code::CONTENT,
        ),
        (
            Code::POST,
            "/api/v1/good-token/rpc",
            br#"{"method":"getTime"}"#,
            Code::CONTENT,
        ),
        (Code::POST, "/api/v1/good-token/rpc", ok, Code::BAD_REQUEST),
        (
            Code::POST,
            "/api/v1/good-token/rpc",
            br#"{"method":5}"#,
            Code::BAD_REQUEST,
        ),
        (Code::POST, "/api/v1/good-token/rpc", b"", Code::BAD_REQUEST),
        (Code::POST, "/api/v1/good-token/rpc/17", ok, Code::CREATED),
        (Code::POST, "/api/v1/good-token/rpc/-3", ok, Code::CREATED),
        (
            Code::POST,
            "/api/v1/good-token/rpc/17",
            b"",
            Code::BAD_REQUEST,
        ),
        (
            Code::POST,
            "/api/v1/good-token/rpc/17",
            b"[1]",
            Code::BAD_REQUEST,
        ),
        // A request ID that is no 32-bit integer makes a device-originated request.
        (
            Code::POST,
            "/api/v1/good-token/rpc/x",
            br#"{"method":"m"}"#,
            Code::CONTENT,
        ),
        (
            Code::POST,
            "/api/v1/good-token/rpc/99999999999",
            ok,
            Code::BAD_REQUEST,
        ),
        (Code::POST, "/api/v1/good-token/claim", b"", Code::CREATED),
        (
            Code::POST,
            "/api/v1/good-token/claim",
            br#"{"secretKey":"k"}"#,
            Code::CREATED,
        ),
        (
            Code::POST,
            "/api/v1/good-token/claim",
            b"5",
            Code::BAD_REQUEST,
        ),
        (Code::POST, "/api/v1/provision", ok, Code::BAD_REQUEST),
        (
            Code::POST,
            "/api/v1/good-token/provision",
            ok,
            Code::BAD_REQUEST,
        ),
        // Attributes payloads.
        (
            Code::POST,
            "/api/v1/good-token/attributes",
            b"",
            Code::BAD_REQUEST,
        ),
        (
            Code::POST,
            "/api/v1/good-token/attributes",
            b"[1]",
            Code::BAD_REQUEST,
        ),
        (
            Code::POST,
            "/api/v1/good-token/attributes",
            br#"[{"a":1}]"#,
            Code::BAD_REQUEST,
        ),
        (
            Code::POST,
            "/api/v1/good-token/attributes",
            br#"{"a":null}"#,
            Code::BAD_REQUEST,
        ),
        (
            Code::POST,
            "/api/v1/good-token/attributes",
            b"{",
            Code::BAD_REQUEST,
        ),
        // A fresh device has no attributes.
        (
            Code::GET,
            "/api/v1/good-token/attributes",
            b"",
            Code::NOT_FOUND,
        ),
    ] {
        let mut store = Store::default();
        let got = answer(&mut store, method, path, payload);
        assert_eq!(
            got,
            want,
            "{} {path} {}",
            method.method_name().unwrap(),
            String::from_utf8_lossy(payload)
        );
    }
}

#[test]
fn provision_failure_has_a_json_body() {
    let mut store = Store::default();
    let r = handle(
        &request(Code::POST, "/api/v1/provision", &[], b"{}"),
        Identity::None,
        &policy(),
        &mut store,
    );
    assert_eq!(r.code, Code::BAD_REQUEST);
    let body: Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(body["status"], "FAILURE");
}

#[test]
fn attributes_post_then_get_with_filters() {
    let mut store = Store::default();
    let attrs = "/api/v1/good-token/attributes";
    let post = |store: &mut Store, body: &str| answer(store, Code::POST, attrs, body.as_bytes());
    assert_eq!(
        post(&mut store, r#"{"fw":"1.0","model":"x"}"#),
        Code::CREATED
    );
    assert_eq!(post(&mut store, r#"{"fw":"1.1"}"#), Code::CREATED);
    assert!(store.set_shared(GOOD, "interval", json!(30), &policy()));
    assert!(!store.set_shared("unknown", "interval", json!(30), &policy()));
    for (query, want) in [
        (
            &[][..],
            Some(json!({"client": {"fw": "1.1", "model": "x"}, "shared": {"interval": 30}})),
        ),
        (
            &["clientKeys=fw"][..],
            Some(json!({"client": {"fw": "1.1"}})),
        ),
        (
            &["sharedKeys=interval"][..],
            Some(json!({"shared": {"interval": 30}})),
        ),
        (
            &["clientKeys=model,nope", "sharedKeys=interval"][..],
            Some(json!({"client": {"model": "x"}, "shared": {"interval": 30}})),
        ),
        (&["clientKeys=nope"][..], None),
        (
            &["clientKeys=", "other=1"][..],
            Some(json!({"client": {"fw": "1.1", "model": "x"}, "shared": {"interval": 30}})),
        ),
        (
            &["clientKeys=model", "clientKeys=fw"][..],
            Some(json!({"client": {"fw": "1.1"}})),
        ),
    ] {
        let r = handle(
            &request(Code::GET, attrs, query, b""),
            Identity::None,
            &policy(),
            &mut store,
        );
        match want {
            Some(body) => {
                assert_eq!(r.code, Code::CONTENT, "{query:?}");
                assert_eq!(
                    serde_json::from_slice::<Value>(&r.payload).unwrap(),
                    body,
                    "{query:?}"
                );
            }
            None => assert_eq!((r.code, r.payload.len()), (Code::NOT_FOUND, 0), "{query:?}"),
        }
    }
    let dev = store.device_snapshot(GOOD).unwrap();
    assert_eq!(
        (dev.attributes_posts, dev.attributes_reads, dev.messages),
        (2, 7, 0)
    );
}

#[test]
fn counters_follow_outcomes() {
    let mut store = Store::default();
    answer(&mut store, Code::POST, TELEMETRY, b"{\"a\":1}");
    answer(&mut store, Code::POST, TELEMETRY, b"5");
    answer(&mut store, Code::POST, "/api/v1/unknown/telemetry", b"{}");
    answer(&mut store, Code::POST, "/api/v1", b"{}");
    answer(
        &mut store,
        Code::POST,
        "/api/v1/good-token/rpc",
        br#"{"method":"m"}"#,
    );
    answer(&mut store, Code::POST, "/api/v1/good-token/claim", b"");
    let dev = store.device_snapshot(GOOD).unwrap();
    assert_eq!((dev.messages, dev.rpc_posts, dev.claims), (1, 1, 1));
    let stats = store.stats();
    assert_eq!(stats.unknown_token, 2);
    assert_eq!(stats.devices, 1);
}

fn observe_request(path: &str, observe: u32) -> Message {
    let mut m = request(Code::GET, path, &[], b"");
    m.add_uint_option(option::OBSERVE, observe);
    m
}

#[test]
fn observe_requests_register_and_deregister() {
    let mut store = Store::default();
    let intent = |kind, register| {
        Some(ObserveIntent {
            device: GOOD.to_string(),
            kind,
            register,
        })
    };
    let attrs = "/api/v1/good-token/attributes";
    let rpc = "/api/v1/good-token/rpc";
    for (path, observe, code, payload, want) in [
        // No shared attributes yet: `{}`, not 4.04.
        (
            attrs,
            0,
            Code::CONTENT,
            &b"{}"[..],
            intent(Kind::Attributes, true),
        ),
        (
            attrs,
            1,
            Code::DELETED,
            b"",
            intent(Kind::Attributes, false),
        ),
        // Observe values other than 1 register, as in ThingsBoard.
        (
            attrs,
            7,
            Code::CONTENT,
            b"{}",
            intent(Kind::Attributes, true),
        ),
        (rpc, 0, Code::VALID, b"", intent(Kind::Rpc, true)),
        (rpc, 1, Code::DELETED, b"", intent(Kind::Rpc, false)),
        (
            "/api/v1/good-token/RPC",
            0,
            Code::VALID,
            b"",
            intent(Kind::Rpc, true),
        ),
        // Only attributes and rpc can be observed; the token is checked after the feature.
        (
            "/api/v1/good-token/telemetry",
            0,
            Code::BAD_REQUEST,
            b"",
            None,
        ),
        ("/api/v1/unknown/telemetry", 0, Code::BAD_REQUEST, b"", None),
        ("/api/v1/good-token/claim", 0, Code::BAD_REQUEST, b"", None),
        ("/api/v1/good-token/bogus", 0, Code::BAD_REQUEST, b"", None),
        (
            "/api/v1/unknown/attributes",
            0,
            Code::UNAUTHORIZED,
            b"",
            None,
        ),
        ("/api/v1/unknown/rpc", 0, Code::UNAUTHORIZED, b"", None),
        ("/api/v1/attributes", 0, Code::UNAUTHORIZED, b"", None),
    ] {
        let r = handle(
            &observe_request(path, observe),
            Identity::None,
            &policy(),
            &mut store,
        );
        assert_eq!(
            (r.code, r.payload.as_slice(), r.observe),
            (code, payload, want),
            "{path} Observe={observe}"
        );
    }
    // Observe on a POST is not a registration.
    let mut post = request(Code::POST, attrs, &[], br#"{"a":1}"#);
    post.add_uint_option(option::OBSERVE, 0);
    let r = handle(&post, Identity::None, &policy(), &mut store);
    assert_eq!((r.code, r.observe), (Code::CREATED, None));
}

#[test]
fn attribute_registration_answers_the_shared_attributes() {
    let mut store = Store::default();
    assert!(store.set_shared(GOOD, "interval", json!(30), &policy()));
    answer(
        &mut store,
        Code::POST,
        "/api/v1/good-token/attributes",
        br#"{"fw":"1"}"#,
    );
    let r = handle(
        &observe_request("/api/v1/good-token/attributes", 0),
        Identity::None,
        &policy(),
        &mut store,
    );
    assert_eq!(r.code, Code::CONTENT);
    assert_eq!(
        serde_json::from_slice::<Value>(&r.payload).unwrap(),
        json!({"interval": 30}),
        "the shared attributes only, flat, as ThingsBoard's first notification"
    );
}

#[test]
fn rpc_replies_are_recorded_once_for_issued_ids() {
    let mut store = Store::default();
    store.device(GOOD, &policy()).unwrap();
    let first = store.existing_mut(GOOD).unwrap().rpc.issue();
    let second = store.existing_mut(GOOD).unwrap().rpc.issue();
    assert_eq!((first, second), (0, 1));
    let reply = |store: &mut Store, id: &str, body: &str| {
        let path = format!("/api/v1/good-token/rpc/{id}");
        answer(store, Code::POST, &path, body.as_bytes())
    };
    assert_eq!(reply(&mut store, "1", r#"{"ok":true}"#), Code::CREATED);
    assert_eq!(reply(&mut store, "1", r#"{"ok":false}"#), Code::CREATED);
    assert_eq!(reply(&mut store, "42", r#"{"ok":true}"#), Code::CREATED);
    assert_eq!(reply(&mut store, "-1", r#"{"ok":true}"#), Code::CREATED);
    assert_eq!(reply(&mut store, "0", "[]"), Code::BAD_REQUEST);
    let log = &store.existing(GOOD).unwrap().rpc;
    assert_eq!(
        log.reply_of(1),
        Some(&json!({"ok": true})),
        "the first reply"
    );
    assert_eq!(log.reply_of(0), None, "not answered");
    assert_eq!(log.reply_of(42), None);
    let s = store.stats();
    assert_eq!((s.rpc_replies, s.rpc_replies_unmatched), (1, 3));
    assert_eq!(store.device_snapshot(GOOD).unwrap().rpc_posts, 4);
}

#[test]
fn non_utf8_token_is_unknown() {
    let mut store = Store::default();
    let mut m = Message::new(MessageType::Con, Code::POST, 1, Token::default());
    for seg in [&b"api"[..], b"v1", b"\xff\xfe", b"telemetry"] {
        m.add_option(option::URI_PATH, seg);
    }
    m.payload = b"{}".to_vec();
    assert_eq!(
        handle(&m, Identity::None, &TokenPolicy::Any, &mut store).code,
        Code::UNAUTHORIZED
    );
    assert_eq!(store.stats().unknown_token, 1);
}

/// ThingsBoard's X.509 devices: a session with a registered certificate uses `/api/v1/{feature}`; an
/// unregistered certificate gets 4.01; token paths keep working in such a session; without a certificate
/// the token-less path is a request without a token.
#[test]
fn certificate_identity_names_the_device_on_token_less_paths() {
    let mut store = Store::default();
    let telemetry = request(Code::POST, "/api/v1/telemetry", &[], br#"{"t":1}"#);
    let dev = Identity::Certificate(&[7; 32], Some("dev-7"));
    assert_eq!(
        handle(&telemetry, dev, &policy(), &mut store).code,
        Code::CREATED
    );
    assert_eq!(store.device_registered("dev-7").messages, 1);
    // The device records which certificate posted as it: a second one registered under the same name
    // shows as a second entry.
    let other = Identity::Certificate(&[8; 32], Some("dev-7"));
    for _ in 0..2 {
        handle(&telemetry, other, &policy(), &mut store);
    }
    let certs = &store.device_registered("dev-7").certificates;
    assert_eq!(
        certs.iter().collect::<Vec<_>>(),
        [(&[7; 32], &1), (&[8; 32], &2)]
    );
    let unregistered = Identity::Certificate(&[9; 32], None);
    assert_eq!(
        handle(&telemetry, unregistered, &policy(), &mut store).code,
        Code::UNAUTHORIZED
    );
    assert_eq!(
        handle(&telemetry, Identity::None, &policy(), &mut store).code,
        Code::UNAUTHORIZED
    );
    assert_eq!(store.stats.unknown_token, 2);
    // Token paths in a certificate session, registered or not: the token names the device, and no
    // certificate is recorded for it.
    let by_token = request(Code::POST, TELEMETRY, &[], br#"{"t":1}"#);
    for identity in [dev, unregistered] {
        assert_eq!(
            handle(&by_token, identity, &policy(), &mut store).code,
            Code::CREATED
        );
    }
    assert!(store
        .devices()
        .iter()
        .all(|d| d.token == "dev-7" || d.certificates.is_empty()));
    let bad_token = request(Code::POST, "/api/v1/nope/telemetry", &[], br#"{"t":1}"#);
    assert_eq!(
        handle(&bad_token, dev, &policy(), &mut store).code,
        Code::UNAUTHORIZED
    );
    // The other features of the X.509 form: attributes, rpc/{id}, a GET that ThingsBoard refuses.
    let attrs = request(Code::POST, "/api/v1/attributes", &[], br#"{"fw":"2"}"#);
    assert_eq!(
        handle(&attrs, dev, &policy(), &mut store).code,
        Code::CREATED
    );
    let read = request(Code::GET, "/api/v1/attributes", &[], b"");
    let r = handle(&read, dev, &policy(), &mut store);
    assert_eq!(r.code, Code::CONTENT);
    assert!(String::from_utf8_lossy(&r.payload).contains("fw"), "{r:?}");
    let reply = request(Code::POST, "/api/v1/rpc/5", &[], b"{}");
    assert_eq!(
        handle(&reply, dev, &policy(), &mut store).code,
        Code::CREATED
    );
    assert_eq!(store.stats.rpc_replies_unmatched, 1);
    let get_telemetry = request(Code::GET, "/api/v1/telemetry", &[], b"");
    assert_eq!(
        handle(&get_telemetry, dev, &policy(), &mut store).code,
        Code::BAD_REQUEST
    );
}

#[test]
fn routes_are_read_off_the_path_into_a_bounded_set() {
    for (path, want) in [
        ("/api/v1/tok/telemetry", Route::Telemetry),
        ("/api/v1/tok/TELEMETRY", Route::Telemetry),
        ("/api/v1/telemetry", Route::Telemetry),
        ("/api/v1/tok/attributes", Route::Attributes),
        ("/api/v1/attributes", Route::Attributes),
        ("/api/v1/tok/rpc/42", Route::Rpc),
        ("/api/v1/rpc/42", Route::Rpc),
        ("/api/v1/rpc", Route::Rpc),
        ("/api/v1/tok/claim", Route::Claim),
        ("/api/v1/provision", Route::Provision),
        ("/fw/tok", Route::Firmware),
        ("/sw/tok", Route::Firmware),
        ("/api/v1/tok/nope", Route::Other),
        ("/api/v1", Route::Other),
        ("/api/v2/tok/telemetry", Route::Other),
        ("/other", Route::Other),
        ("", Route::Other),
    ] {
        assert_eq!(route(&request(Code::POST, path, &[], b"")), want, "{path}");
    }
    assert_eq!(Route::ALL.map(Route::name).len(), 7);
}
