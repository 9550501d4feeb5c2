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
//! | GET telemetry, claim, provision           | 4.00                             |
//! | GET rpc without Observe                   | 4.00                             |
//! | unknown token                             | 4.01                             |
//! | POST telemetry, valid JSON shape          | 2.01, empty body                 |
//! | POST attributes, JSON object              | 2.01, attributes merged          |
//! | GET attributes                            | 2.05 JSON, 4.04 when none        |
//! | GET attributes, Observe=0                 | 2.05 shared attributes (`{}`), registers an observer |
//! | GET rpc, Observe=0                        | 2.03, registers an observer      |
//! | GET attributes or rpc, Observe=1          | 2.02, deregisters                |
//! | POST rpc/{id}, JSON object                | 2.01, reply recorded if `id` is pending |
//! | POST rpc, JSON object with `"method"`     | 2.05 `{}`                        |
//! | POST claim, empty or JSON object          | 2.01                             |
//! | POST provision                            | 4.00 with a failure body         |
//! | bad payload                               | 4.00                             |
//!
//! Features are checked before the token and the token before the payload, in ThingsBoard's order.
//!
//! Observe (RFC 7641): the API only decides; it hands the endpoint an [`ObserveIntent`] to register or
//! deregister the requesting peer, since relations belong to the message layer (peer, token, transport).
//! Where ThingsBoard's behaviour is murky or needs its rule engine, we choose:
//! - Observe values other than 1 register, as in ThingsBoard (`getObserve() == 1` deregisters).
//! - A deregistration is answered 2.02 Deleted, whether or not a relation existed. ThingsBoard acknowledges
//!   it with an empty ACK and answers 2.02 on the relation's exchange, which carries the same token.
//! - The first response to an attribute registration is ThingsBoard's shared-attribute snapshot, a flat
//!   `{"key":value}` object, `{}` when there are none.
//! - A reply to an RPC (`POST rpc/{id}`, `id` a 32-bit integer as Java's `Integer.valueOf` reads it) is
//!   answered 2.01 whether or not `id` is pending: ThingsBoard forwards it and its device actor drops an
//!   unknown one. Non-numeric `{id}` makes the request a device-originated RPC, as in ThingsBoard.
//! - A device-originated RPC is answered at once with 2.05 `{}` (ThingsBoard answers what its rule chain
//!   replies, or nothing after its timeout).

use super::observe::Kind;
use super::store::{DeviceState, Store};
use super::tokens::TokenPolicy;
use crate::coap::{option, Code, Message};
use serde_json::{Map, Value};

/// What the API answers to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiResponse {
    pub code: Code,
    pub payload: Vec<u8>,
    /// For an Observe request the API accepted: what the endpoint should do with the requesting peer.
    pub observe: Option<ObserveIntent>,
}

impl ApiResponse {
    fn code(code: Code) -> Self {
        ApiResponse {
            code,
            payload: Vec::new(),
            observe: None,
        }
    }
}

/// An accepted Observe request (RFC 7641 §3.1, §3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObserveIntent {
    /// The device's access token.
    pub device: String,
    pub kind: Kind,
    /// Register (Observe other than 1) or deregister (Observe=1).
    pub register: bool,
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
    // ThingsBoard's GET: telemetry never, attributes and rpc with Observe, attributes without.
    let observe = req
        .option(option::OBSERVE)
        .map(|_| req.uint_option(option::OBSERVE) != Some(1));
    let observed = match (feature, observe) {
        (Feature::Attributes, Some(_)) => Some(Kind::Attributes),
        (Feature::Rpc, Some(_)) => Some(Kind::Rpc),
        _ => None,
    };
    if req.code == Code::GET && feature != Feature::Attributes && observed.is_none() {
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
    if let (Code::GET, Some(kind), Some(register)) = (req.code, observed, observe) {
        let token = std::str::from_utf8(segs[2]).expect("checked above");
        return observe_request(device, token, kind, register);
    }
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
        (_, Feature::Rpc) => match request_id(&segs[..n.min(SEGMENTS)]) {
            Some(id) => {
                let Some(reply) = json_object(&req.payload) else {
                    return ApiResponse::code(Code::BAD_REQUEST);
                };
                device.rpc_posts += 1;
                let matched =
                    u64::try_from(id).is_ok_and(|id| device.rpc.reply(id, Value::Object(reply)));
                if matched {
                    store.stats.rpc_replies += 1;
                } else {
                    store.stats.rpc_replies_unmatched += 1;
                }
                ApiResponse::code(Code::CREATED)
            }
            None => {
                let ok = json_object(&req.payload)
                    .is_some_and(|o| o.get("method").is_some_and(Value::is_string));
                if !ok {
                    return ApiResponse::code(Code::BAD_REQUEST);
                }
                device.rpc_posts += 1;
                ApiResponse {
                    code: Code::CONTENT,
                    payload: b"{}".to_vec(),
                    observe: None,
                }
            }
        },
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
        observe: None,
    }
}

/// An Observe GET on attributes or rpc from an accepted device.
fn observe_request(device: &DeviceState, token: &str, kind: Kind, register: bool) -> ApiResponse {
    let intent = Some(ObserveIntent {
        device: token.to_string(),
        kind,
        register,
    });
    let (code, payload) = match (register, kind) {
        (false, _) => (Code::DELETED, Vec::new()),
        (true, Kind::Attributes) => (
            Code::CONTENT,
            serde_json::to_vec(&device.shared).expect("a JSON map serialises"),
        ),
        (true, Kind::Rpc) => (Code::VALID, Vec::new()),
    };
    ApiResponse {
        code,
        payload,
        observe: intent,
    }
}

/// The request ID of `/api/v1/{token}/rpc/{id}`, read as ThingsBoard reads it (`Integer.valueOf`); `None`
/// without one, or when it is not a 32-bit integer, which makes the request a device-originated RPC.
fn request_id(segs: &[&[u8]]) -> Option<i32> {
    let id = segs.get(4)?;
    std::str::from_utf8(id).ok()?.parse().ok()
}

/// A JSON object payload (an RPC reply or request).
fn json_object(payload: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(o)) => Some(o),
        _ => None,
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
            observe: None,
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
            let r = handle(&observe_request(path, observe), &policy(), &mut store);
            assert_eq!(
                (r.code, r.payload.as_slice(), r.observe),
                (code, payload, want),
                "{path} Observe={observe}"
            );
        }
        // Observe on a POST is not a registration.
        let mut post = request(Code::POST, attrs, &[], br#"{"a":1}"#);
        post.add_uint_option(option::OBSERVE, 0);
        let r = handle(&post, &policy(), &mut store);
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
            handle(&m, &TokenPolicy::Any, &mut store).code,
            Code::UNAUTHORIZED
        );
        assert_eq!(store.stats().unknown_token, 1);
    }
}
