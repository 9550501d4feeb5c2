//! What the server remembers: each device's counters and attributes, and the server-wide counters, with the
//! serialisable snapshots handed to callers.

use super::tokens::TokenPolicy;
use crate::coap::Code;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// RPC commands remembered per device (with their replies); older ones are forgotten first.
const RPC_KEPT: usize = 1024;

/// The RPC commands sent to one device, by request ID, and the device's replies.
#[derive(Debug, Default)]
pub(crate) struct RpcLog {
    next_id: u64,
    calls: BTreeMap<u64, Option<Value>>,
}

impl RpcLog {
    /// A new request ID (counting from 0, as ThingsBoard's device actor does), awaiting its reply.
    pub fn issue(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.calls.insert(id, None);
        if self.calls.len() > RPC_KEPT {
            self.calls.pop_first();
        }
        id
    }

    /// Records the device's reply to `id`; `false` when `id` was never issued (or forgotten) or already
    /// answered: ThingsBoard drops such a reply.
    pub fn reply(&mut self, id: u64, reply: Value) -> bool {
        match self.calls.get_mut(&id) {
            Some(slot @ None) => {
                *slot = Some(reply);
                true
            }
            _ => false,
        }
    }

    /// The device's reply to `id`, once it arrived.
    pub fn reply_of(&self, id: u64) -> Option<&Value> {
        self.calls.get(&id)?.as_ref()
    }
}

/// One device's state, created on its first accepted request.
#[derive(Debug, Default)]
pub(crate) struct DeviceState {
    pub messages: u64,
    pub attributes_posts: u64,
    pub attributes_reads: u64,
    pub rpc_posts: u64,
    pub claims: u64,
    /// Accepted telemetry posts by the client certificate (SHA-256 of its DER leaf) of the DTLS session
    /// that made them, for a device named by its certificate: the evidence of which certificate the server
    /// took for this device.
    pub certificates: BTreeMap<[u8; 32], u64>,
    /// The last accepted telemetry payload; its buffer is reused.
    pub last_payload: Option<Vec<u8>>,
    pub client: Map<String, Value>,
    pub shared: Map<String, Value>,
    pub rpc: RpcLog,
}

impl DeviceState {
    pub fn record_telemetry(&mut self, payload: &[u8]) {
        self.messages += 1;
        let last = self.last_payload.get_or_insert_with(Vec::new);
        last.clear();
        last.extend_from_slice(payload);
    }

    pub fn merge_client_attributes(&mut self, attributes: Map<String, Value>) {
        self.attributes_posts += 1;
        self.client.extend(attributes);
    }

    /// The body of a GET attributes response, ThingsBoard-style: `{"client":{..},"shared":{..}}` with empty
    /// sections left out; `None` when nothing is left, which ThingsBoard answers 4.04. With no key filter at
    /// all every attribute is returned; with a filter only the named keys of each named scope.
    pub fn attributes_body(
        &self,
        client_keys: Option<&[&str]>,
        shared_keys: Option<&[&str]>,
    ) -> Option<Vec<u8>> {
        let unfiltered = client_keys.is_none() && shared_keys.is_none();
        let pick = |all: &Map<String, Value>, keys: Option<&[&str]>| -> Map<String, Value> {
            match keys {
                _ if unfiltered => all.clone(),
                None => Map::new(),
                Some(keys) => keys
                    .iter()
                    .filter_map(|k| all.get_key_value(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            }
        };
        let mut body = Map::new();
        for (scope, values) in [
            ("client", pick(&self.client, client_keys)),
            ("shared", pick(&self.shared, shared_keys)),
        ] {
            if !values.is_empty() {
                body.insert(scope.to_string(), Value::Object(values));
            }
        }
        if body.is_empty() {
            return None;
        }
        Some(serde_json::to_vec(&body).expect("a JSON map serialises"))
    }

    fn snapshot(&self, token: &str) -> DeviceSnapshot {
        DeviceSnapshot {
            token: token.to_string(),
            messages: self.messages,
            attributes_posts: self.attributes_posts,
            attributes_reads: self.attributes_reads,
            rpc_posts: self.rpc_posts,
            claims: self.claims,
            certificates: self
                .certificates
                .iter()
                .map(|(hash, n)| (cert_hex(hash), *n))
                .collect(),
            last_payload: self
                .last_payload
                .as_deref()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            client_attributes: self.client.clone(),
            shared_attributes: self.shared.clone(),
        }
    }
}

/// A certificate fingerprint (SHA-256) as [`DeviceSnapshot::certificates`] keys it: lower-case hex.
pub fn cert_hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A copy of one device's state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceSnapshot {
    /// The device's access token.
    pub token: String,
    /// Accepted telemetry posts (answered 2.01).
    pub messages: u64,
    /// Accepted client-attribute posts.
    pub attributes_posts: u64,
    /// Attribute reads answered (2.05 or 4.04).
    pub attributes_reads: u64,
    /// Accepted RPC posts.
    pub rpc_posts: u64,
    /// Accepted claim posts.
    pub claims: u64,
    /// For a device named by its client certificate (ThingsBoard's X.509 devices): accepted telemetry posts
    /// by the certificate the posting session presented, keyed by the SHA-256 of its DER leaf in lower-case
    /// hex. Empty for token devices.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub certificates: BTreeMap<String, u64>,
    /// The last accepted telemetry payload (invalid UTF-8 replaced).
    pub last_payload: Option<String>,
    /// Client-side attributes, as merged from every attributes post.
    pub client_attributes: Map<String, Value>,
    /// Shared attributes (set server-side).
    pub shared_attributes: Map<String, Value>,
}

/// Responses sent, by code. Serialises as a map such as `{"2.01": 120, "4.01": 3}` (zero counts left out).
#[derive(Clone, PartialEq, Eq)]
pub struct ResponseCounts([u64; 256]);

impl Default for ResponseCounts {
    fn default() -> Self {
        ResponseCounts([0; 256])
    }
}

impl ResponseCounts {
    /// Responses sent with `code`.
    pub fn get(&self, code: Code) -> u64 {
        self.0[usize::from(code.0)]
    }

    /// Every code sent at least once, with its count, in code order.
    pub fn iter(&self) -> impl Iterator<Item = (Code, u64)> + '_ {
        (0..=255u8)
            .map(|c| (Code(c), self.0[usize::from(c)]))
            .filter(|(_, n)| *n > 0)
    }

    /// All responses.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub(crate) fn add(&mut self, code: Code) {
        self.0[usize::from(code.0)] += 1;
    }
}

impl fmt::Debug for ResponseCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(c, n)| (c.to_string(), n)))
            .finish()
    }
}

impl Serialize for ResponseCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (code, n) in self.iter() {
            map.serialize_entry(&code.to_string(), &n)?;
        }
        map.end()
    }
}

/// The API route a request was for: a bounded set, so it can label metrics (`serve --metrics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Route {
    /// `/api/v1/{token}/telemetry` (or ThingsBoard's X.509 form without the token).
    Telemetry,
    Attributes,
    Rpc,
    Claim,
    Provision,
    /// ThingsBoard's OTA package downloads, `/fw/...` and `/sw/...`.
    Firmware,
    /// Anything else: unknown paths and features, `/api/v1` without a feature.
    Other,
}

impl Route {
    pub const ALL: [Route; 7] = [
        Route::Telemetry,
        Route::Attributes,
        Route::Rpc,
        Route::Claim,
        Route::Provision,
        Route::Firmware,
        Route::Other,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Route::Telemetry => "telemetry",
            Route::Attributes => "attributes",
            Route::Rpc => "rpc",
            Route::Claim => "claim",
            Route::Provision => "provision",
            Route::Firmware => "firmware",
            Route::Other => "other",
        }
    }
}

/// Responses by route and code.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteCounts([ResponseCounts; 7]);

impl RouteCounts {
    pub fn get(&self, route: Route, code: Code) -> u64 {
        self.0[route as usize].get(code)
    }

    /// Every (route, code) sent at least once, with its count, by route then code.
    pub fn iter(&self) -> impl Iterator<Item = (Route, Code, u64)> + '_ {
        Route::ALL
            .into_iter()
            .flat_map(move |r| self.0[r as usize].iter().map(move |(c, n)| (r, c, n)))
    }

    pub(crate) fn add(&mut self, route: Route, code: Code) {
        self.0[route as usize].add(code);
    }
}

/// Server-wide counters. Every datagram received is counted once in `datagrams_received` and ends in exactly
/// one of `malformed`, `requests`, `duplicates`, `ignored`, `resets_sent` (for a well-formed CON we must
/// reject), one of the `separate_acked`/`separate_resets` answers to our separate responses, or one of the
/// `notifications_acked`/`notifications_reset` answers to our notifications.
/// `responses_by_code.total() == requests`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ServerStats {
    /// UDP datagrams received.
    pub datagrams_received: u64,
    /// Datagrams that are not CoAP messages (RFC 7252 message format errors). A malformed CON whose header is
    /// readable is also answered with RST (§4.2) but counted here, not in `resets_sent`.
    pub malformed: u64,
    /// Requests processed, each once (duplicates excluded).
    pub requests: u64,
    /// The response code of each processed request.
    pub responses_by_code: ResponseCounts,
    /// The same responses by route (for `serve --metrics`; not in report.json).
    #[serde(skip)]
    pub responses_by_route: RouteCounts,
    /// Duplicate CON requests answered from the deduplication cache without being processed again.
    pub duplicates: u64,
    /// Requests answered 4.01 because their token is unknown or missing (a subset of `requests`).
    pub unknown_token: u64,
    /// RSTs sent for well-formed CON messages that are not requests (pings, stray responses).
    pub resets_sent: u64,
    /// Well-formed datagrams needing no reply: stray ACKs and RSTs, NON responses and empty NONs.
    pub ignored: u64,
    /// Separate responses sent (after `response_delay`), CON or NON.
    pub separate_sent: u64,
    /// Separate CON responses the client acknowledged.
    pub separate_acked: u64,
    /// Separate CON responses the client rejected with RST.
    pub separate_resets: u64,
    /// Retransmissions of separate CON responses.
    pub separate_retransmissions: u64,
    /// Separate CON responses given up after every retransmission went unacknowledged.
    pub separate_timeouts: u64,
    /// Deduplication entries dropped before their lifetime ended because the cache was full.
    pub dedup_evictions: u64,
    /// Observe registrations accepted (GET attributes or rpc with Observe=0), re-registrations included.
    pub observe_registrations: u64,
    /// Registrations that replaced the same peer's relation for the same device and feature.
    pub observe_replaced: u64,
    /// Registrations refused because the observer table was full (answered without an Observe option).
    pub observe_refused: u64,
    /// Relations ended: deregistered (GET with Observe=1), rejected with RST, timed out, or their DTLS
    /// session ended. Current observers = registrations - replaced - cancellations.
    pub observe_cancellations: u64,
    /// Current observers.
    pub observers: u64,
    /// Notifications sent (shared-attribute updates and RPC commands), CON or NON.
    pub notifications_sent: u64,
    /// CON notifications the client acknowledged.
    pub notifications_acked: u64,
    /// CON notifications the client rejected with RST (each also ends its relation).
    pub notifications_reset: u64,
    /// Retransmissions of CON notifications.
    pub notification_retransmissions: u64,
    /// CON notifications given up after every retransmission went unacknowledged (each ends its relation).
    pub notification_timeouts: u64,
    /// RPC commands sent to devices (request IDs issued).
    pub rpc_sent: u64,
    /// Device replies (`POST rpc/{id}`) matched to an RPC command and recorded.
    pub rpc_replies: u64,
    /// Device replies to an unknown or already answered request ID: answered 2.01 and dropped, as
    /// ThingsBoard does.
    pub rpc_replies_unmatched: u64,
    /// Failed `send_to` calls, and notifications that could not be handed to their transport.
    pub send_errors: u64,
    /// Failed receive calls (other than "would block").
    pub recv_errors: u64,
    /// Devices seen (tokens accepted at least once).
    pub devices: u64,
}

/// Devices and counters.
#[derive(Debug, Default)]
pub(crate) struct Store {
    devices: HashMap<Box<str>, DeviceState>,
    pub stats: ServerStats,
}

impl Store {
    /// The device with `token`, created on first contact if `policy` accepts the token; `None` (and a count
    /// in `unknown_token`) otherwise.
    pub fn device(&mut self, token: &str, policy: &TokenPolicy) -> Option<&mut DeviceState> {
        if !self.devices.contains_key(token) {
            if !policy.accepts(token) {
                self.stats.unknown_token += 1;
                return None;
            }
            self.devices.insert(token.into(), DeviceState::default());
        }
        self.devices.get_mut(token)
    }

    /// The device with this key, created if new: the caller has authenticated it (accepted token,
    /// registered certificate).
    pub fn device_registered(&mut self, key: &str) -> &mut DeviceState {
        self.devices.entry(key.into()).or_default()
    }

    /// Sets a shared attribute of the device with `token`, creating it if `policy` accepts the token;
    /// `false` when it does not.
    pub fn set_shared(
        &mut self,
        token: &str,
        key: &str,
        value: Value,
        policy: &TokenPolicy,
    ) -> bool {
        if !self.devices.contains_key(token) && !policy.accepts(token) {
            return false;
        }
        self.devices
            .entry(token.into())
            .or_default()
            .shared
            .insert(key.to_string(), value);
        true
    }

    /// Merges shared attributes into the device with `token`, creating it if `policy` accepts the token;
    /// `false` when it does not.
    pub fn merge_shared(
        &mut self,
        token: &str,
        attributes: Map<String, Value>,
        policy: &TokenPolicy,
    ) -> bool {
        if !self.devices.contains_key(token) && !policy.accepts(token) {
            return false;
        }
        self.devices
            .entry(token.into())
            .or_default()
            .shared
            .extend(attributes);
        true
    }

    /// The device with `token`, if it was ever accepted.
    pub fn existing(&self, token: &str) -> Option<&DeviceState> {
        self.devices.get(token)
    }

    /// The device with `token`, if it was ever accepted, for updating.
    pub fn existing_mut(&mut self, token: &str) -> Option<&mut DeviceState> {
        self.devices.get_mut(token)
    }

    pub fn stats(&self) -> ServerStats {
        let mut stats = self.stats.clone();
        stats.devices = self.devices.len() as u64;
        stats
    }

    pub fn device_snapshot(&self, token: &str) -> Option<DeviceSnapshot> {
        self.devices.get(token).map(|d| d.snapshot(token))
    }

    /// Every device, sorted by token.
    pub fn devices(&self) -> Vec<DeviceSnapshot> {
        let mut all: Vec<_> = self.devices.iter().map(|(t, d)| d.snapshot(t)).collect();
        all.sort_by(|a, b| a.token.cmp(&b.token));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn device_created_on_first_accepted_contact_only() {
        let policy = TokenPolicy::List(["a".to_string()].into());
        let mut store = Store::default();
        assert!(store.device("b", &policy).is_none());
        assert_eq!(store.stats().unknown_token, 1);
        assert_eq!(store.stats().devices, 0);
        store
            .device("a", &policy)
            .unwrap()
            .record_telemetry(b"{\"x\":1}");
        store
            .device("a", &policy)
            .unwrap()
            .record_telemetry(b"{\"x\":2}");
        let snap = store.device_snapshot("a").unwrap();
        assert_eq!(snap.messages, 2);
        assert_eq!(snap.last_payload.as_deref(), Some("{\"x\":2}"));
        assert_eq!(store.stats().devices, 1);
        assert!(store.device_snapshot("b").is_none());
    }

    #[test]
    fn attributes_merge_and_filter_like_thingsboard() {
        let mut d = DeviceState::default();
        assert_eq!(d.attributes_body(None, None), None, "none yet: 4.04");
        d.merge_client_attributes(obj(json!({"a": 1, "b": "x"})));
        d.merge_client_attributes(obj(json!({"b": "y", "c": true})));
        d.shared.insert("s".into(), json!(5));
        let body = |c: Option<&[&str]>, s: Option<&[&str]>| {
            d.attributes_body(c, s)
                .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
        };
        for (client, shared, want) in [
            (
                None,
                None,
                Some(json!({"client": {"a": 1, "b": "y", "c": true}, "shared": {"s": 5}})),
            ),
            (
                Some(&["a", "zz"][..]),
                None,
                Some(json!({"client": {"a": 1}})),
            ),
            (None, Some(&["s"][..]), Some(json!({"shared": {"s": 5}}))),
            (
                Some(&["c"][..]),
                Some(&["s"][..]),
                Some(json!({"client": {"c": true}, "shared": {"s": 5}})),
            ),
            (Some(&["zz"][..]), None, None),
            (None, Some(&["a"][..]), None),
        ] {
            assert_eq!(body(client, shared), want, "{client:?} {shared:?}");
        }
        assert_eq!(d.attributes_posts, 2);
    }

    #[test]
    fn rpc_log_forgets_the_oldest_commands() {
        let mut log = RpcLog::default();
        for want in 0..=RPC_KEPT as u64 {
            assert_eq!(log.issue(), want);
        }
        assert!(!log.reply(0, json!({})), "forgotten");
        assert!(log.reply(1, json!({"ok": 1})));
        assert!(!log.reply(1, json!({"ok": 2})), "answered already");
        assert_eq!(log.reply_of(1), Some(&json!({"ok": 1})));
        assert_eq!(log.calls.len(), RPC_KEPT);
    }

    #[test]
    fn response_counts_serialise_as_code_map() {
        let mut counts = ResponseCounts::default();
        counts.add(Code::CREATED);
        counts.add(Code::CREATED);
        counts.add(Code::UNAUTHORIZED);
        assert_eq!(counts.get(Code::CREATED), 2);
        assert_eq!(counts.total(), 3);
        assert_eq!(
            serde_json::to_value(&counts).unwrap(),
            json!({"2.01": 2, "4.01": 1})
        );
        assert_eq!(format!("{counts:?}"), r#"{"2.01": 2, "4.01": 1}"#);
    }
}
