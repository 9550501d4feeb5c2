//! The ThingsBoard CoAP device API, sans-IO: a request in, a response code and body out, with the device's
//! state updated. Paths are `/api/v1/{token}/{feature}[/{id}]`; the codes are those ThingsBoard's
//! `CoapTransportResource` answers (see `shared/reference/thingsboard-coap.md`):
//!
//! | request                                   | response                         |
//! |-------------------------------------------|----------------------------------|
//! | outside `/api/v1`                         | 4.04                             |
//! | PUT, DELETE, FETCH, PATCH, iPATCH         | 4.05                             |
//! | `/api`, `/api/v1`, `/api/v1/{feature}`    | 4.01 (no token; X.509 needs DTLS)|
//! | unknown or missing feature                | 4.00                             |
//! | GET telemetry, claim, rpc (no Observe)    | 4.00                             |
//! | unknown token                             | 4.01                             |
//! | POST telemetry, valid JSON shape          | 2.01, empty body                 |
//! | POST attributes, JSON object              | 2.01, attributes merged          |
//! | GET attributes                            | 2.05 JSON, 4.04 when none        |
//! | POST rpc, rpc/{id}                        | 2.01                             |
//! | POST claim, empty or JSON object          | 2.01                             |
//! | POST provision                            | 4.00 with a failure body         |
//! | bad payload                               | 4.00                             |
//!
//! Features are checked before the token and the token before the payload, in ThingsBoard's order. Observe
//! (attribute and RPC subscriptions) is not implemented yet: GET rpc answers 4.00 with or without it, and a
//! GET attributes with Observe is answered once without an Observe option, which RFC 7641 §4.1 allows (the
//! request falls back to a plain GET).

use super::store::{DeviceState, Store};
use super::tokens::TokenPolicy;
use crate::coap::{option, Code, Message};
use serde_json::{Map, Value};

/// What the API answers to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiResponse {
    pub code: Code,
    pub payload: Vec<u8>,
}

impl ApiResponse {
    fn code(code: Code) -> Self {
        ApiResponse {
            code,
            payload: Vec::new(),
        }
    }
}

/// The device API features (ThingsBoard's `FeatureType`), matched case-insensitively as ThingsBoard does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Feature {
    Attributes,
    Telemetry,
    Rpc,
    Claim,
    Provision,
}

impl Feature {
    fn parse(segment: &[u8]) -> Option<Self> {
        const ALL: [(&[u8], Feature); 5] = [
            (b"attributes", Feature::Attributes),
            (b"telemetry", Feature::Telemetry),
            (b"rpc", Feature::Rpc),
            (b"claim", Feature::Claim),
            (b"provision", Feature::Provision),
        ];
        ALL.iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(segment))
            .map(|(_, f)| *f)
    }
}

/// Path segments looked at: api, v1, token, feature, id.
const SEGMENTS: usize = 5;

/// Answers one request (class 0.xx code) on behalf of the device its path names.
pub(crate) fn handle(req: &Message, tokens: &TokenPolicy, store: &mut Store) -> ApiResponse {
    let mut segs: [&[u8]; SEGMENTS] = [&[]; SEGMENTS];
    let mut n = 0;
    for seg in req.option_values(option::URI_PATH) {
        if n < SEGMENTS {
            segs[n] = seg;
        }
        n += 1;
    }
    if n == 0 || segs[0] != b"api" || (n >= 2 && segs[1] != b"v1") {
        return ApiResponse::code(Code::NOT_FOUND);
    }
    if req.code != Code::GET && req.code != Code::POST {
        return ApiResponse::code(Code::METHOD_NOT_ALLOWED);
    }
    if n < 3 {
        store.stats.unknown_token += 1;
        return ApiResponse::code(Code::UNAUTHORIZED);
    }
    if n == 3 {
        // `/api/v1/{feature}` is ThingsBoard's X.509 form; without DTLS there is no certificate to name the
        // device, so it is a request without a token.
        return match Feature::parse(segs[2]) {
            Some(Feature::Provision) => provision_unsupported(),
            Some(_) => {
                store.stats.unknown_token += 1;
                ApiResponse::code(Code::UNAUTHORIZED)
            }
            None => ApiResponse::code(Code::BAD_REQUEST),
        };
    }
    let Some(feature) = Feature::parse(segs[3]) else {
        return ApiResponse::code(Code::BAD_REQUEST);
    };
    if req.code == Code::GET && feature != Feature::Attributes {
        return ApiResponse::code(Code::BAD_REQUEST);
    }
    if feature == Feature::Provision {
        return provision_unsupported();
    }
    let device = match std::str::from_utf8(segs[2]) {
        Ok(token) => store.device(token, tokens),
        Err(_) => {
            store.stats.unknown_token += 1;
            None
        }
    };
    let Some(device) = device else {
        return ApiResponse::code(Code::UNAUTHORIZED);
    };
    match (req.code, feature) {
        (Code::GET, _) => read_attributes(req, device),
        (_, Feature::Telemetry) => {
            if !telemetry_ok(&req.payload) {
                return ApiResponse::code(Code::BAD_REQUEST);
            }
            device.record_telemetry(&req.payload);
            ApiResponse::code(Code::CREATED)
        }
        (_, Feature::Attributes) => match attributes(&req.payload) {
            Some(map) => {
                device.merge_client_attributes(map);
                ApiResponse::code(Code::CREATED)
            }
            None => ApiResponse::code(Code::BAD_REQUEST),
        },
        (_, Feature::Rpc) => {
            device.rpc_posts += 1;
            ApiResponse::code(Code::CREATED)
        }
        (_, Feature::Claim) => {
            let ok = req.payload.is_empty()
                || matches!(serde_json::from_slice(&req.payload), Ok(Value::Object(_)));
            if !ok {
                return ApiResponse::code(Code::BAD_REQUEST);
            }
            device.claims += 1;
            ApiResponse::code(Code::CREATED)
        }
        (_, Feature::Provision) => provision_unsupported(),
    }
}

/// ThingsBoard answers a failed provisioning request 4.00 with a JSON body; we support none.
fn provision_unsupported() -> ApiResponse {
    ApiResponse {
        code: Code::BAD_REQUEST,
        payload: br#"{"status":"FAILURE","errorMsg":"provisioning is not supported by the embedded server"}"#
            .to_vec(),
    }
}

fn read_attributes(req: &Message, device: &mut DeviceState) -> ApiResponse {
    device.attributes_reads += 1;
    let client = keys_param(req, "clientKeys");
    let shared = keys_param(req, "sharedKeys");
    match device.attributes_body(client.as_deref(), shared.as_deref()) {
        Some(payload) => ApiResponse {
            code: Code::CONTENT,
            payload,
        },
        None => ApiResponse::code(Code::NOT_FOUND),
    }
}

/// The keys of a `name=a,b` query option, as ThingsBoard reads them: the last `name=value` option with exactly
/// one `=` wins; an empty value is no filter.
fn keys_param<'a>(req: &'a Message, name: &str) -> Option<Vec<&'a str>> {
    let mut keys = None;
    for q in req.option_values(option::URI_QUERY) {
        let Ok(q) = std::str::from_utf8(q) else {
            continue;
        };
        if let Some((k, v)) = q.split_once('=') {
            if k == name && !v.is_empty() && !v.contains('=') {
                keys = Some(v);
            }
        }
    }
    keys.map(|k| k.split(',').collect())
}

/// A telemetry payload ThingsBoard accepts: `{"k":v,..}`, `[{..},{..}]` or `{"ts":..,"values":{..}}`, where
/// no value is `null`.
fn telemetry_ok(payload: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(o)) => telemetry_object_ok(&o),
        Ok(Value::Array(items)) => items
            .iter()
            .all(|i| matches!(i, Value::Object(o) if telemetry_object_ok(o))),
        _ => false,
    }
}

fn telemetry_object_ok(o: &Map<String, Value>) -> bool {
    match (o.get("ts"), o.get("values")) {
        (Some(ts), Some(values)) => {
            let ts_ok = ts.is_number() || ts.as_str().is_some_and(|s| s.parse::<i64>().is_ok());
            ts_ok && matches!(values, Value::Object(v) if values_ok(v))
        }
        _ => values_ok(o),
    }
}

fn values_ok(o: &Map<String, Value>) -> bool {
    o.values().all(|v| !v.is_null())
}

/// A client-attributes payload: a JSON object without `null` values.
fn attributes(payload: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(o)) if values_ok(&o) => Some(o),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
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
        handle(&request(code, path, &[], payload), &policy(), store).code
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
            (Code::POST, "/api/v1/good-token/rpc", ok, Code::CREATED),
            (Code::POST, "/api/v1/good-token/rpc/17", ok, Code::CREATED),
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
        let post =
            |store: &mut Store, body: &str| answer(store, Code::POST, attrs, body.as_bytes());
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
        answer(&mut store, Code::POST, "/api/v1/good-token/rpc", b"{}");
        answer(&mut store, Code::POST, "/api/v1/good-token/claim", b"");
        let dev = store.device_snapshot(GOOD).unwrap();
        assert_eq!((dev.messages, dev.rpc_posts, dev.claims), (1, 1, 1));
        let stats = store.stats();
        assert_eq!(stats.unknown_token, 2);
        assert_eq!(stats.devices, 1);
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
            handle(&m, &TokenPolicy::Any, &mut store).code,
            Code::UNAUTHORIZED
        );
        assert_eq!(store.stats().unknown_token, 1);
    }
}
