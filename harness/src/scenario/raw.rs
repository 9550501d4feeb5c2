//! The scenario file as written: serde types that mirror the YAML, strict about unknown fields. Values that
//! have a type (durations, rates, codes, token patterns) are parsed here, so a bad one is reported with the
//! line and column serde_yaml knows. Cross-field rules live in `validate`.

pub use crate::checks::parse_rate;
use crate::coap::{Code, MessageType};
use crate::token::TokenPattern;
use serde::{Deserialize, Deserializer};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    /// Name used for the report folder; defaults to the file's stem.
    pub name: Option<String>,
    /// `embedded`, or `coap://host[:port]`.
    pub target: String,
    /// Settings for the embedded target server (ignored for other targets).
    #[serde(default)]
    pub embedded: RawEmbedded,
    /// Seed for every random choice (message IDs, tokens, payload generators, jitter).
    pub seed: Option<u64>,
    pub devices: RawDevices,
    #[serde(default)]
    pub request: RawRequest,
    #[serde(default)]
    pub coap: RawCoap,
    /// Load phases; may be left out when the scenario only has trust cases.
    #[serde(default)]
    pub phases: Vec<RawPhase>,
    /// Devices speak CoAP over DTLS with these settings (the target must then be `coaps://` or `embedded`).
    pub dtls: Option<super::dtls::RawDtls>,
    /// Where `pki:ROLE` certificates come from: `generate` (a fresh PKI for the run) or a folder made by
    /// `coap-harness certs`.
    pub pki: Option<String>,
    /// DTLS handshakes with expectations, run one at a time before any load phase.
    #[serde(default)]
    pub trust_cases: Vec<super::dtls::RawTrustCase>,
    /// The harness as a rogue DTLS server: which bad certificates the device under test accepts.
    pub device_trust: Option<super::device_trust::RawDeviceTrust>,
    /// Device-API conformance cases, run one at a time before any load phase.
    #[serde(default)]
    pub conformance: Vec<super::conformance::RawCase>,
    /// Checked on every response.
    #[serde(default)]
    pub expect: super::checks::RawExpect,
    /// Thresholds on the whole run, e.g. `p99 < 50ms`, `error_rate < 0.1%`.
    #[serde(default)]
    pub thresholds: Vec<super::checks::RawThreshold>,
    /// How long to wait for answers to requests still in flight after the last phase.
    #[serde(default, deserialize_with = "opt_duration")]
    pub drain: Option<Duration>,
    /// The default health check: `off`, or `{ max_error_rate: 20% }` to change its bound.
    pub health: Option<super::checks::RawHealth>,
    /// Network faults injected between the devices and the target.
    pub faults: Option<super::faults::RawFaults>,
    /// The load must run over DTLS with the server verified: a plain-CoAP run (e.g. with `--target coap://`)
    /// or one with verification disabled fails the check `security: DTLS required`.
    #[serde(default)]
    pub require_dtls: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmbedded {
    /// Answer CON requests with an empty ACK at once and the response this much later (ThingsBoard's
    /// behaviour when slow).
    #[serde(default, deserialize_with = "opt_duration")]
    pub response_delay: Option<Duration>,
    /// Accept any token instead of only the scenario's devices' tokens.
    #[serde(default)]
    pub any_token: bool,
    /// Testing aid: the server stops reading this long after the run starts...
    #[serde(default, deserialize_with = "opt_duration")]
    pub stall_at: Option<Duration>,
    /// ...for this long (a stalled server, to see coordinated-omission correction at work).
    #[serde(default, deserialize_with = "opt_duration")]
    pub stall_for: Option<Duration>,
    /// Reconnect storms: this long after the load starts, the embedded server behaves like a restarted one
    /// (every DTLS session forgotten at once, without a close_notify; the device store survives)...
    #[serde(default, deserialize_with = "opt_duration")]
    pub restart_at: Option<Duration>,
    /// ...and answers nothing for this long afterwards (default 0s: back at once, but knowing no session).
    #[serde(default, deserialize_with = "opt_duration")]
    pub restart_down: Option<Duration>,
    /// The DTLS identity the embedded server presents when the scenario has `dtls:`.
    #[serde(default)]
    pub server: super::dtls::RawServerIdentity,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevices {
    pub count: u32,
    /// Token pattern such as `dev-{index:05}`, or one literal token (a real device's access token) when
    /// `count` is 1.
    #[serde(default, deserialize_with = "opt_token")]
    pub token: Option<RawToken>,
    /// File with one token per line, or a CSV file with the header `token,psk_identity,psk_key,cert,key`
    /// giving each device its own credentials (instead of `token`).
    pub token_file: Option<PathBuf>,
    /// Local addresses to bind device sockets to, spread round-robin.
    #[serde(default)]
    pub bind: Vec<std::net::IpAddr>,
    /// New device sessions per second across the fleet (socket opened and, over DTLS, the handshake), in
    /// device order: paces a handshake storm. A device the phases would start earlier waits for its turn,
    /// and its schedule begins when it connects. Written `500` or `500/s`.
    #[serde(default, deserialize_with = "opt_rate")]
    pub connect_rate: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequest {
    #[serde(default = "default_method", deserialize_with = "method")]
    pub method: Code,
    /// URI path; `{token}` is replaced by the device's token.
    #[serde(default = "default_path")]
    pub path: String,
    /// Query options, `key=value` each.
    #[serde(default)]
    pub query: Vec<String>,
    /// `con` or `non`.
    #[serde(default = "default_type", rename = "type", deserialize_with = "mtype")]
    pub mtype: MessageType,
    /// Content-Format number, or `json`, `text`, `cbor`, `octet-stream`.
    #[serde(default = "default_cf", deserialize_with = "content_format")]
    pub content_format: Option<u16>,
    /// Payload template with `{{generator}}` fields.
    #[serde(default = "default_payload")]
    pub payload: String,
}

impl Default for RawRequest {
    fn default() -> Self {
        RawRequest {
            method: default_method(),
            path: default_path(),
            query: Vec::new(),
            mtype: default_type(),
            content_format: default_cf(),
            payload: default_payload(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCoap {
    #[serde(default, deserialize_with = "opt_duration")]
    pub ack_timeout: Option<Duration>,
    pub ack_random_factor: Option<f64>,
    pub max_retransmit: Option<u32>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub response_timeout: Option<Duration>,
    /// NSTART: requests each device may keep in flight at once (RFC 7252 default 1). Only open-loop
    /// pacing can use more than one; a closed loop waits for each completion.
    pub nstart: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPhase {
    pub name: Option<String>,
    #[serde(deserialize_with = "duration")]
    pub duration: Duration,
    /// Devices active at the end of the phase; defaults to `devices.count`.
    pub devices: Option<u32>,
    /// `linear` ramps the device count from the previous phase's over the phase; `instant` (default) does
    /// not.
    #[serde(default)]
    pub ramp: Ramp,
    /// Open loop: each device sends every `interval`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub interval: Option<Duration>,
    /// Open loop: requests per second across all the phase's devices, written `2000` or `2000/s`.
    #[serde(default, deserialize_with = "opt_rate")]
    pub rate: Option<f64>,
    /// Closed loop: each device sends its next request this long after the last one completed.
    #[serde(default, deserialize_with = "opt_duration")]
    pub think: Option<Duration>,
    /// Thresholds on this phase's figures.
    #[serde(default)]
    pub thresholds: Vec<super::checks::RawThreshold>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ramp {
    #[default]
    Instant,
    Linear,
}

pub(crate) fn default_method() -> Code {
    Code::POST
}
fn default_path() -> String {
    "/api/v1/{token}/telemetry".into()
}
pub(crate) fn default_type() -> MessageType {
    MessageType::Con
}
fn default_cf() -> Option<u16> {
    Some(crate::coap::content_format::JSON)
}
fn default_payload() -> String {
    r#"{"temperature":{{random:15..30}},"seq":{{counter}}}"#.into()
}

/// Parses `30s`, `1m 30s`, `250ms` (humantime).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. 500ms, 10s, 2m"))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Num(f64),
    Str(String),
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

pub(crate) fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn opt_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match NumOrStr::deserialize(d)? {
        NumOrStr::Num(n) if n > 0.0 && n.is_finite() => Ok(Some(n)),
        NumOrStr::Num(n) => Err(serde::de::Error::custom(format!(
            "rate {n} must be positive"
        ))),
        NumOrStr::Str(s) => parse_rate(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

/// `devices.token`: a pattern with an `{index}` placeholder, or one literal token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawToken {
    Pattern(TokenPattern),
    /// A token without a placeholder: only one device can have it (checked in `validate`).
    Literal(String),
}

impl RawToken {
    /// A pattern, or a literal (text without `{index}`); characters that cannot stand in a path are refused.
    pub fn parse(s: &str) -> Result<Self, crate::token::TokenPatternError> {
        match TokenPattern::parse(s) {
            Ok(p) => Ok(RawToken::Pattern(p)),
            Err(crate::token::TokenPatternError::NoPlaceholder(_)) if !s.is_empty() => {
                Ok(RawToken::Literal(s.to_string()))
            }
            Err(e) => Err(e),
        }
    }
}

fn opt_token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RawToken>, D::Error> {
    let s = String::deserialize(d)?;
    RawToken::parse(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

pub(crate) fn method<'de, D: Deserializer<'de>>(d: D) -> Result<Code, D::Error> {
    let s = String::deserialize(d)?;
    Ok(match s.to_ascii_uppercase().as_str() {
        "GET" => Code::GET,
        "POST" => Code::POST,
        "PUT" => Code::PUT,
        "DELETE" => Code::DELETE,
        "FETCH" => Code::FETCH,
        "PATCH" => Code::PATCH,
        "IPATCH" => Code::IPATCH,
        _ => {
            return Err(serde::de::Error::custom(format!(
                "`{s}` is not a method: expected GET, POST, PUT, DELETE, FETCH, PATCH or iPATCH"
            )))
        }
    })
}

pub(crate) fn mtype<'de, D: Deserializer<'de>>(d: D) -> Result<MessageType, D::Error> {
    let s = String::deserialize(d)?;
    match s.parse::<MessageType>() {
        Ok(t @ (MessageType::Con | MessageType::Non)) => Ok(t),
        _ => Err(serde::de::Error::custom(format!(
            "`{s}` is not a request type: expected con or non"
        ))),
    }
}

pub(crate) fn opt_content_format<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    content_format(d)
}

fn content_format<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    use crate::coap::content_format as cf;
    match NumOrStr::deserialize(d)? {
        NumOrStr::Num(n) if (0.0..=65535.0).contains(&n) && n.fract() == 0.0 => Ok(Some(n as u16)),
        NumOrStr::Num(n) => Err(serde::de::Error::custom(format!(
            "content format {n} is out of range 0-65535"
        ))),
        NumOrStr::Str(s) => match s.as_str() {
            "json" | "application/json" => Ok(Some(cf::JSON)),
            "text" | "text/plain" => Ok(Some(cf::TEXT_PLAIN)),
            "cbor" | "application/cbor" => Ok(Some(cf::CBOR)),
            "octet-stream" | "application/octet-stream" => Ok(Some(cf::OCTET_STREAM)),
            "none" => Ok(None),
            _ => Err(serde::de::Error::custom(format!(
                "`{s}` is not a content format: expected a number, json, text, cbor, octet-stream or none"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("5000").unwrap(), 5000.0);
        assert_eq!(parse_rate("5000/s").unwrap(), 5000.0);
        assert_eq!(parse_rate("10k/s").unwrap(), 10000.0);
        assert_eq!(parse_rate("300/min").unwrap(), 5.0);
        for bad in ["", "x/s", "10/fortnight", "0/s", "-5"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("ten").is_err());
    }
}
