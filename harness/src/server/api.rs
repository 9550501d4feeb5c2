//! The ThingsBoard CoAP device API, sans-IO: a request in, a response code and body out, with the device's
//! state updated. Paths are `/api/v1/{token}/{feature}[/{id}]`; the codes are those ThingsBoard's
//! `CoapTransportResource` answers (see `shared/reference/thingsboard-coap.md`):
//!
//! | request                                   | response                         |
//! |-------------------------------------------|----------------------------------|
//! | outside `/api/v1`                         | 4.04                             |
//! | PUT, DELETE, FETCH, PATCH, iPATCH         | 4.05                             |
//! | `/api`, `/api/v1`                         | 4.01 (no token)                  |
//! | `/api/v1/{feature}`, no certificate       | 4.01 (no token; X.509 needs DTLS)|
//! | `/api/v1/{feature}`, unregistered cert    | 4.01                             |
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
use super::store::{DeviceState, Route, Store};
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

/// The route `req` is for, read off its path alone (sans-IO): the feature of `/api/v1/{token}/{feature}` or
/// of ThingsBoard's X.509 form `/api/v1/{feature}`, `firmware` for the OTA paths `/fw/...` and `/sw/...`,
/// `other` for the rest. It labels metrics; the router decides the answer.
pub(crate) fn route(req: &Message) -> Route {
    let mut segs = req.option_values(option::URI_PATH);
    let first = segs.next().unwrap_or(&[]);
    if first.eq_ignore_ascii_case(b"fw") || first.eq_ignore_ascii_case(b"sw") {
        return Route::Firmware;
    }
    if first != b"api" || segs.next() != Some(b"v1".as_slice()) {
        return Route::Other;
    }
    let (third, fourth) = (segs.next(), segs.next());
    // The token form's feature is the fourth segment; the X.509 form's is the third (then an RPC id).
    let feature = fourth
        .and_then(Feature::parse)
        .or_else(|| third.and_then(Feature::parse));
    match feature {
        Some(Feature::Telemetry) => Route::Telemetry,
        Some(Feature::Attributes) => Route::Attributes,
        Some(Feature::Rpc) => Route::Rpc,
        Some(Feature::Claim) => Route::Claim,
        Some(Feature::Provision) => Route::Provision,
        None => Route::Other,
    }
}

/// Path segments looked at: api, v1, token, feature, id.
const SEGMENTS: usize = 5;

/// Who the DTLS layer says the requester is: nothing (plain CoAP, or a session without a client
/// certificate), or the session's client certificate (the SHA-256 of its DER leaf), registered as a device
/// (its name) or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Identity<'a> {
    None,
    Certificate(&'a [u8; 32], Option<&'a str>),
}

/// Answers one request (class 0.xx code) on behalf of the device its path (or, for ThingsBoard's X.509
/// form `/api/v1/{feature}[/{id}]`, its session's certificate) names: the router, checking path, method,
/// device and Observe, then one function per route.
pub(crate) fn handle(
    req: &Message,
    identity: Identity<'_>,
    tokens: &TokenPolicy,
    store: &mut Store,
) -> ApiResponse {
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
    // A session with a certificate names its device by it, as ThingsBoard's X.509 credentials do, when the
    // third segment is a feature; token paths keep working in the same session.
    let x509 = matches!(identity, Identity::Certificate(..)) && Feature::parse(segs[2]).is_some();
    if n == 3 && !x509 {
        // `/api/v1/{feature}` without a client certificate: a request without a token.
        return match Feature::parse(segs[2]) {
            Some(Feature::Provision) => provision_unsupported(),
            Some(_) => {
                store.stats.unknown_token += 1;
                ApiResponse::code(Code::UNAUTHORIZED)
            }
            None => ApiResponse::code(Code::BAD_REQUEST),
        };
    }
    let at = if x509 { 2 } else { 3 };
    let Some(feature) = Feature::parse(segs[at]) else {
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
    // The device's key in the store: its token, or its registered certificate's device name.
    let key = match (x509, identity) {
        (true, Identity::Certificate(_, Some(name))) => Some(name),
        (false, _) => std::str::from_utf8(segs[2]).ok(),
        (true, _) => None,
    };
    let Some(key) = key else {
        store.stats.unknown_token += 1;
        return ApiResponse::code(Code::UNAUTHORIZED);
    };
    let device = if x509 {
        store.device_registered(key)
    } else {
        match store.device(key, tokens) {
            Some(device) => device,
            None => return ApiResponse::code(Code::UNAUTHORIZED),
        }
    };
    if let (Code::GET, Some(kind), Some(register)) = (req.code, observed, observe) {
        return observe_request(device, key, kind, register);
    }
    match (req.code, feature) {
        (Code::GET, _) => read_attributes(req, device),
        (_, Feature::Telemetry) => {
            let response = post_telemetry(req, device);
            // Which certificate posted as this device: the evidence the load's accounting keys X.509
            // devices by.
            if let (true, Code::CREATED, Identity::Certificate(hash, _)) =
                (x509, response.code, identity)
            {
                *device.certificates.entry(*hash).or_default() += 1;
            }
            response
        }
        (_, Feature::Attributes) => post_attributes(req, device),
        (_, Feature::Rpc) => {
            let id = request_id(segs.get(at + 1).filter(|_| n > at + 1).copied());
            let (response, matched) = post_rpc(req, device, id);
            match matched {
                Some(true) => store.stats.rpc_replies += 1,
                Some(false) => store.stats.rpc_replies_unmatched += 1,
                None => {}
            }
            response
        }
        (_, Feature::Claim) => post_claim(req, device),
        (_, Feature::Provision) => provision_unsupported(),
    }
}

/// POST telemetry: a JSON object, an array of them, or `{ts, values}`.
fn post_telemetry(req: &Message, device: &mut DeviceState) -> ApiResponse {
    if !telemetry_ok(&req.payload) {
        return ApiResponse::code(Code::BAD_REQUEST);
    }
    device.record_telemetry(&req.payload);
    ApiResponse::code(Code::CREATED)
}

/// POST client attributes: a JSON object merged into the device's.
fn post_attributes(req: &Message, device: &mut DeviceState) -> ApiResponse {
    match attributes(&req.payload) {
        Some(map) => {
            device.merge_client_attributes(map);
            ApiResponse::code(Code::CREATED)
        }
        None => ApiResponse::code(Code::BAD_REQUEST),
    }
}

/// POST rpc: with an id, the device's reply to a server-side RPC (and whether it matched one the server
/// sent, `None` when the payload was refused); without, a client-side RPC request.
fn post_rpc(
    req: &Message,
    device: &mut DeviceState,
    id: Option<i32>,
) -> (ApiResponse, Option<bool>) {
    match id {
        Some(id) => {
            let Some(reply) = json_object(&req.payload) else {
                return (ApiResponse::code(Code::BAD_REQUEST), None);
            };
            device.rpc_posts += 1;
            let matched =
                u64::try_from(id).is_ok_and(|id| device.rpc.reply(id, Value::Object(reply)));
            (ApiResponse::code(Code::CREATED), Some(matched))
        }
        None => {
            let ok = json_object(&req.payload)
                .is_some_and(|o| o.get("method").is_some_and(Value::is_string));
            if !ok {
                return (ApiResponse::code(Code::BAD_REQUEST), None);
            }
            device.rpc_posts += 1;
            let response = ApiResponse {
                code: Code::CONTENT,
                payload: b"{}".to_vec(),
                observe: None,
            };
            (response, None)
        }
    }
}

/// POST claim: an empty payload or a JSON object.
fn post_claim(req: &Message, device: &mut DeviceState) -> ApiResponse {
    let ok = req.payload.is_empty()
        || matches!(serde_json::from_slice(&req.payload), Ok(Value::Object(_)));
    if !ok {
        return ApiResponse::code(Code::BAD_REQUEST);
    }
    device.claims += 1;
    ApiResponse::code(Code::CREATED)
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

/// The request ID of `/api/v1/{token}/rpc/{id}` (or `/api/v1/rpc/{id}`), read as ThingsBoard reads it
/// (`Integer.valueOf`); `None` without one, or when it is not a 32-bit integer, which makes the request a
/// device-originated RPC.
fn request_id(id: Option<&[u8]>) -> Option<i32> {
    std::str::from_utf8(id?).ok()?.parse().ok()
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
#[path = "api_tests.rs"]
mod tests;
