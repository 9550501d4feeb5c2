//! The DTLS part of a scenario: how devices trust the server (`dtls:`), what identity the embedded server
//! presents (`embedded:`), where the PKI comes from (`pki:`), and the trust cases with their expectations
//! (`trust_cases:`). Raw serde types, their validated plan types, and the rules between them.

use super::locate::Step;
use super::validate::Invalid;
use crate::coap::Code;
use crate::pki::Role;
use crate::transport::dtls::{parse_cipher_suite, parse_curve, NamedCurve, Psk, CURVE_NAMES};
use crate::trust::TrustVerdict;
use dtls::cipher_suite::CipherSuiteId;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---- raw ----

/// `dtls:` — the device side of every DTLS session.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDtls {
    /// CA certificate file (PEM or DER, one or a bundle), `pki:ROLE`, or `none` to disable verification (the run is flagged insecure).
    pub ca: Option<String>,
    /// The name (or IP address) the server's certificate must carry; defaults to the target host.
    pub server_name: Option<String>,
    /// Client certificate for two-way DTLS: a PEM or DER file (leaf first), `pki:ROLE`, or a file in the PKI
    /// folder as `{pki}/devices/device-0.pem`. In the top-level `dtls:` a path may hold `{index}`: each device
    /// then presents its own certificate (`{pki}/devices/device-{index}.pem`, made by `certs --devices N`).
    pub client_cert: Option<String>,
    /// Its private key (PEM or DER: PKCS#8, SEC1 or PKCS#1); for `pki:ROLE` certificates the role's key is used,
    /// for `{pki}/NAME.pem` the file `{pki}/NAME.key`.
    pub client_key: Option<String>,
    pub psk_identity: Option<String>,
    /// The pre-shared key: text, or `hex:0a1b...`.
    pub psk_key: Option<String>,
    /// IANA names, e.g. TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8; default `transport::dtls::default_cipher_suites`.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// ECDHE curves offered, most preferred first: `x25519`, `p256`, `p384`; default P-256, X25519, P-384.
    #[serde(default)]
    pub curves: Vec<String>,
    #[serde(default, deserialize_with = "super::raw::opt_duration")]
    pub handshake_timeout: Option<Duration>,
    /// Handshake churn: each device closes its session (close_notify) and opens a new one after this many
    /// requests (`100`, `100 requests`) or this long after the session opened (`30s`). Load devices only.
    #[serde(default, deserialize_with = "opt_churn")]
    pub rehandshake_every: Option<Churn>,
    /// Which load devices resume their DTLS session (abbreviated handshake by session ID) when they make a
    /// new one: `all`, `none` (the default) or a share such as `50%`. Load devices only.
    pub resume: Option<String>,
    /// Connection ID (RFC 9146): `{ length: 8 }` offers the server an ID of this many bytes (0 to 255; 0:
    /// "send me none, I send yours") for the records it sends, and puts the server's ID in ours, so that
    /// the session survives the device's address changing (NAT rebinding). Default: none.
    pub connection_id: Option<RawConnectionId>,
}

/// `connection_id:` on devices (`dtls:`) or on the embedded server (`embedded.server:`).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnectionId {
    /// Bytes of the ID this end asks the other to put in its records.
    pub length: u64,
}

/// `dtls.resume`: which load devices offer their last DTLS session on their next handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resume {
    /// Every handshake is a full one.
    #[default]
    None,
    /// Every device resumes.
    All,
    /// This share of the devices (0 to 100 per cent), spread evenly over the device indexes.
    Percent(u8),
}

impl Resume {
    /// Parses `all`, `none` or `N%` (N from 0 to 100).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("all") {
            return Ok(Resume::All);
        }
        if t.eq_ignore_ascii_case("none") {
            return Ok(Resume::None);
        }
        match t.strip_suffix('%').map(|n| n.trim().parse::<u8>()) {
            Some(Ok(n)) if n <= 100 => Ok(Resume::Percent(n)),
            _ => Err(format!(
                "`{text}` is not `all`, `none` or a share of the devices from `0%` to `100%`"
            )),
        }
    }

    /// Whether device `index` resumes: `Percent(p)` picks p of every 100 consecutive devices, evenly
    /// spread (50%: every other device).
    pub fn device_resumes(self, index: u32) -> bool {
        match self {
            Resume::None => false,
            Resume::All => true,
            Resume::Percent(p) => {
                let (p, i) = (u64::from(p), u64::from(index));
                (i + 1) * p / 100 > i * p / 100
            }
        }
    }
}

impl std::fmt::Display for Resume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resume::None => f.write_str("none"),
            Resume::All => f.write_str("all"),
            Resume::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `dtls.rehandshake_every`: when a device drops its session on purpose and makes a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Churn {
    /// After this many requests on the session (at least 1).
    Requests(u64),
    /// This long after the session opened (more than 0).
    After(Duration),
}

impl std::fmt::Display for Churn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Churn::Requests(n) => write!(f, "every {n} requests"),
            Churn::After(d) => write!(f, "every {}", humantime::format_duration(*d)),
        }
    }
}

/// Parses `rehandshake_every`: a whole number of requests (`100`, `100 requests`) or a duration (`30s`).
pub fn parse_churn(text: &str) -> Result<Churn, String> {
    let t = text.trim();
    let count = t
        .strip_suffix("requests")
        .or_else(|| t.strip_suffix("request"))
        .unwrap_or(t)
        .trim();
    if let Ok(n) = count.parse::<u64>() {
        return match n {
            0 => Err("rehandshake_every: 0 requests; write at least 1".into()),
            n => Ok(Churn::Requests(n)),
        };
    }
    match humantime::parse_duration(t) {
        Ok(d) if d.is_zero() => Err("rehandshake_every: the duration must be more than 0".into()),
        Ok(d) => Ok(Churn::After(d)),
        Err(_) => Err(format!(
            "`{text}` is neither a number of requests (`100`, `100 requests`) nor a duration (`30s`)"
        )),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawChurn {
    Num(u64),
    Str(String),
}

fn opt_churn<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Churn>, D::Error> {
    let text = match RawChurn::deserialize(d)? {
        RawChurn::Num(n) => n.to_string(),
        RawChurn::Str(s) => s,
    };
    parse_churn(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The embedded server's DTLS identity (under `embedded:` or a trust case's `server:`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerIdentity {
    /// Certificate presented: a PEM file or `pki:ROLE` (default `pki:server`).
    pub cert: Option<String>,
    /// Its key; for `pki:ROLE` the role's key.
    pub key: Option<String>,
    /// `none` (default), `want` or `require` a client certificate.
    pub client_auth: Option<String>,
    /// CA that client certificates must chain to (default `pki:ca`). In `thingsboard` mode the handshake does
    /// not check it (as ThingsBoard); a session opened with a certificate that does not chain to it is reported
    /// as a finding.
    pub client_ca: Option<String>,
    /// `thingsboard` mode: the registered device certificates, a PEM file or a folder of them (e.g.
    /// `{pki}/devices`, made by `certs --devices N`); each is the device its file is named after.
    pub device_certs: Option<String>,
    /// Connection ID (RFC 9146): `{ length: 8 }` (1 to 255 bytes; ThingsBoard's default is 8) asks each
    /// client that offers the extension for an ID of this many bytes; the server then finds the session by
    /// it and follows the client to a new address. Default: none (sessions keyed by address).
    pub connection_id: Option<RawConnectionId>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrustCase {
    pub name: String,
    /// Changes to `dtls:` for this case (`client_cert: none` removes the client certificate).
    #[serde(default)]
    pub client: RawDtls,
    /// Changes to the embedded server's identity for this case (embedded target only).
    #[serde(default)]
    pub server: RawServerIdentity,
    /// The request path for this case instead of `request.path`, e.g. `/api/v1/telemetry` (no token: a
    /// device authenticated by its certificate).
    pub path: Option<String>,
    pub expect: RawExpect,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    /// `ok` or `fail`; may be left out when `refused_by` says it (`handshake` means fail, else ok).
    pub handshake: Option<String>,
    /// The layer that must refuse: `handshake`, `coap` (a 4.xx/5.xx response over an open session), or
    /// `none`.
    pub refused_by: Option<String>,
    /// The verdict expected, e.g. `unknown_ca` (with `fail`) or `ok_insecure` (with `ok`).
    pub verdict: Option<String>,
    /// Whether the session must be flagged insecure (verification disabled).
    pub insecure: Option<bool>,
    /// The response code of the request sent over the session, e.g. `2.01`.
    pub code: Option<String>,
    /// The TLS alert that ended a refused handshake (sent or received), e.g. `bad_certificate`.
    pub alert: Option<String>,
}

// ---- plan ----

/// A certificate or key: from the run's PKI by role, a file in the run's PKI folder, or a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertRef {
    Pki(Role),
    /// `{pki}/PATH`: PATH inside the PKI folder (e.g. `devices/device-0.pem`, made by `certs --devices N`).
    PkiFile(PathBuf),
    File(PathBuf),
}

impl std::fmt::Display for CertRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertRef::Pki(r) => write!(f, "pki:{}", r.name()),
            CertRef::PkiFile(p) => write!(f, "{{pki}}/{}", p.display()),
            CertRef::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The placeholder a per-device certificate path holds.
pub const INDEX: &str = "{index}";

impl CertRef {
    /// Whether the path holds `{index}` (one file per device).
    pub fn per_device(&self) -> bool {
        match self {
            CertRef::Pki(_) => false,
            CertRef::PkiFile(p) | CertRef::File(p) => p.to_string_lossy().contains(INDEX),
        }
    }

    /// The reference for the scenario's device `index`: `{index}` replaced by it.
    pub fn for_device(&self, index: u64) -> CertRef {
        let sub = |p: &Path| PathBuf::from(p.to_string_lossy().replace(INDEX, &index.to_string()));
        match self {
            CertRef::Pki(r) => CertRef::Pki(*r),
            CertRef::PkiFile(p) => CertRef::PkiFile(sub(p)),
            CertRef::File(p) => CertRef::File(sub(p)),
        }
    }

    /// Whether it needs the run's PKI (`pki:ROLE` or `{pki}/...`).
    pub fn needs_pki(&self) -> bool {
        !matches!(self, CertRef::File(_))
    }
}

/// Where `pki:ROLE` references come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PkiPlan {
    /// A fresh PKI made for the run (in a temporary folder, removed afterwards).
    Generate,
    /// A folder written by `coap-harness certs`.
    Dir(PathBuf),
}

/// The device side of a DTLS session.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientTrust {
    /// The CA to verify the server against; `None` disables verification (flagged insecure).
    pub ca: Option<CertRef>,
    pub server_name: Option<String>,
    /// Certificate and key for two-way DTLS; paths holding `{index}` ([`CertRef::per_device`]) are each
    /// device's own.
    pub client_cert: Option<(CertRef, CertRef)>,
    pub psk: Option<Psk>,
    pub cipher_suites: Vec<CipherSuiteId>,
    /// ECDHE curves offered, most preferred first; empty: the DTLS crate's default order.
    pub curves: Vec<NamedCurve>,
    pub handshake_timeout: Duration,
    /// Handshake churn of the load devices (`dtls.rehandshake_every`).
    pub rehandshake_every: Option<Churn>,
    /// Which load devices resume their session on a new handshake (`dtls.resume`).
    pub resume: Resume,
    /// The length of the connection ID devices ask the server for (RFC 9146); `None`: no extension.
    pub connection_id: Option<usize>,
}

/// Client authentication the embedded server asks for.
pub use crate::client_auth::ClientAuth as ClientAuthMode;

/// The embedded DTLS server's identity.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerIdentity {
    pub cert: CertRef,
    pub key: CertRef,
    pub client_auth: ClientAuthMode,
    pub client_ca: CertRef,
    /// Registered device certificates (`thingsboard` mode): a PEM file or a folder of them.
    pub device_certs: Option<CertRef>,
    /// The length of the connection IDs the server asks clients for (RFC 9146); `None`: none.
    pub connection_id: Option<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    pub connect: bool,
    /// The layer that must refuse, when the scenario names one.
    pub refused_by: Option<crate::trust::RefusedBy>,
    pub verdict: Option<TrustVerdict>,
    pub insecure: Option<bool>,
    pub code: Option<Code>,
    /// The alert that must end the handshake, by its TLS name.
    pub alert: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrustCase {
    pub name: String,
    pub client: ClientTrust,
    pub server: ServerIdentity,
    /// The case's own request path (segments; `None` is the token), instead of the plan's.
    pub path: Option<Vec<Option<String>>>,
    pub expect: Expect,
}

/// DTLS settings of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct DtlsPlan {
    pub client: ClientTrust,
    /// For the embedded target.
    pub server: ServerIdentity,
}

// ---- validation ----

fn key(k: &str) -> Step {
    Step::Key(k.into())
}

fn bad(path: Vec<Step>, message: impl Into<String>) -> Invalid {
    Invalid {
        path,
        message: message.into(),
    }
}

/// Parses `pki:ROLE`, `{pki}/PATH` or a file path (relative to the scenario's folder). `{index}` is refused
/// here; [`client_trust`] allows it in the fleet's own certificate.
pub fn cert_ref(text: &str, base: &Path, at: Vec<Step>) -> Result<CertRef, Invalid> {
    if text.contains(INDEX) {
        return Err(bad(
            at,
            format!("`{text}`: {INDEX} stands for the device, so it is allowed only in the top-level `dtls:` client_cert and client_key"),
        ));
    }
    any_ref(text, base, at)
}

fn any_ref(text: &str, base: &Path, at: Vec<Step>) -> Result<CertRef, Invalid> {
    if let Some(rest) = text.strip_prefix("{pki}") {
        let rel = rest.trim_start_matches('/');
        if rel.is_empty() || !rest.starts_with('/') {
            return Err(bad(
                at,
                format!("`{text}`: expected {{pki}}/PATH, a file in the PKI folder"),
            ));
        }
        if Path::new(rel)
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(bad(
                at,
                format!("`{text}`: a path inside the PKI folder cannot leave it (no `..`)"),
            ));
        }
        return Ok(CertRef::PkiFile(PathBuf::from(rel)));
    }
    match text.strip_prefix("pki:") {
        Some(name) => Role::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .map(CertRef::Pki)
            .ok_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
                bad(
                    at,
                    format!("`{text}`: unknown PKI role; roles are {}", names.join(", ")),
                )
            }),
        None if text.trim().is_empty() => Err(bad(at, "empty path")),
        None => Ok(CertRef::File(base.join(text))),
    }
}

/// The key that goes with a certificate: given explicitly, or the role's own for `pki:` certificates.
fn key_for(
    cert: &CertRef,
    key_text: Option<&str>,
    base: &Path,
    at: Vec<Step>,
) -> Result<CertRef, Invalid> {
    match (key_text, cert) {
        (Some(k), _) if cert.per_device() => any_ref(k, base, at),
        (Some(k), _) => cert_ref(k, base, at),
        (None, CertRef::Pki(r)) => Ok(CertRef::Pki(*r)),
        (None, CertRef::PkiFile(p)) => Ok(CertRef::PkiFile(crate::pki::fleet::key_of(p))),
        (None, CertRef::File(p)) => Err(bad(
            at,
            format!("a key file is needed for the certificate {}", p.display()),
        )),
    }
}

/// The PSK: identity and key each from the raw settings, or else from `base` (a case changing only the key).
fn psk(
    raw: &RawDtls,
    base: Option<&Psk>,
    at: &dyn Fn(&str) -> Vec<Step>,
) -> Result<Option<Psk>, Invalid> {
    let identity = match (&raw.psk_identity, base) {
        (Some(id), _) => Some(id.as_bytes().to_vec()),
        (None, Some(b)) => Some(b.identity.clone()),
        (None, None) => None,
    };
    let key = match (&raw.psk_key, base) {
        (Some(k), _) => Some(match k.strip_prefix("hex:") {
            Some(hex) => decode_hex(hex).ok_or_else(|| {
                bad(
                    at("psk_key"),
                    "`hex:` is followed by something that is not hex",
                )
            })?,
            None => k.as_bytes().to_vec(),
        }),
        (None, Some(b)) => Some(b.key.clone()),
        (None, None) => None,
    };
    match (identity, key) {
        (None, None) => Ok(None),
        (Some(_), Some(k)) if k.is_empty() => Err(bad(at("psk_key"), "the key is empty")),
        (Some(identity), Some(key)) => Ok(Some(Psk { identity, key })),
        (Some(_), None) => Err(bad(at("psk_key"), "psk_identity needs psk_key")),
        (None, Some(_)) => Err(bad(at("psk_identity"), "psk_key needs psk_identity")),
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Validates `dtls:` (or a case's changes to it, applied over `base_trust`).
pub fn client_trust(
    raw: &RawDtls,
    base_trust: Option<&ClientTrust>,
    base: &Path,
    path: &[Step],
) -> Result<ClientTrust, Invalid> {
    let at = |k: &str| {
        let mut p = path.to_vec();
        p.push(key(k));
        p
    };
    let ca = match (raw.ca.as_deref(), base_trust) {
        (Some("none"), _) => None,
        (Some(t), _) => Some(cert_ref(t, base, at("ca"))?),
        (None, Some(b)) => b.ca.clone(),
        (None, None) if raw.psk_identity.is_some() => None,
        (None, None) => {
            return Err(bad(
                at("ca"),
                "is required: a CA certificate file, pki:ca, or `none` to disable verification (the run is then flagged insecure)",
            ))
        }
    };
    let client_cert = match (raw.client_cert.as_deref(), base_trust) {
        (Some("none"), _) => None,
        (Some(t), None) if t.contains(INDEX) => {
            let cert = any_ref(t, base, at("client_cert"))?;
            let key = key_for(&cert, raw.client_key.as_deref(), base, at("client_key"))?;
            if !key.per_device() {
                return Err(bad(
                    at("client_key"),
                    format!("each device has its own certificate ({INDEX}), so its key path needs {INDEX} too"),
                ));
            }
            Some((cert, key))
        }
        (Some(t), _) => {
            let cert = cert_ref(t, base, at("client_cert"))?;
            let key = key_for(&cert, raw.client_key.as_deref(), base, at("client_key"))?;
            Some((cert, key))
        }
        (None, Some(b)) => b.client_cert.clone(),
        (None, None) => None,
    };
    // `run` reads these files before any socket opens; `validate` reads them too, so it fails the same way.
    if base_trust.is_none() {
        if let Some(CertRef::File(p)) = &ca {
            crate::pki::read_certs(p).map_err(|e| bad(at("ca"), e.to_string()))?;
        }
        if let Some((cert, key)) = &client_cert {
            // Per device: the first device's files stand for all.
            let (cert, key) = &(cert.for_device(0), key.for_device(0));
            if let CertRef::File(p) = cert {
                crate::pki::read_certs(p).map_err(|e| bad(at("client_cert"), e.to_string()))?;
            }
            if let CertRef::File(p) = key {
                let field = if raw.client_key.is_some() {
                    "client_key"
                } else {
                    "client_cert"
                };
                crate::pki::read_key(p).map_err(|e| bad(at(field), e.to_string()))?;
            }
        }
    }
    if raw.handshake_timeout.is_some_and(|t| t.is_zero()) {
        return Err(bad(at("handshake_timeout"), "must be more than 0"));
    }
    if base_trust.is_some() && raw.rehandshake_every.is_some() {
        return Err(bad(
            at("rehandshake_every"),
            "applies to the load devices only: set it under the scenario's `dtls:`",
        ));
    }
    if base_trust.is_some() && raw.resume.is_some() {
        return Err(bad(
            at("resume"),
            "applies to the load devices only: set it under the scenario's `dtls:`",
        ));
    }
    let resume = match raw.resume.as_deref() {
        Some(text) => Resume::parse(text).map_err(|e| bad(at("resume"), e))?,
        None => Resume::None,
    };
    if raw.client_key.is_some() && raw.client_cert.is_none() {
        return Err(bad(at("client_key"), "client_key needs client_cert"));
    }
    let mut suites = Vec::new();
    for name in &raw.cipher_suites {
        suites.push(parse_cipher_suite(name).ok_or_else(|| {
            bad(
                at("cipher_suites"),
                format!("`{name}` is not a cipher suite webrtc-rs DTLS supports"),
            )
        })?);
    }
    let mut curves = Vec::new();
    for (i, name) in raw.curves.iter().enumerate() {
        let curve = parse_curve(name).ok_or_else(|| {
            let mut p = at("curves");
            p.push(Step::Index(i));
            let known: Vec<&str> = CURVE_NAMES.iter().map(|(n, _)| *n).collect();
            bad(
                p,
                format!("unknown curve `{name}` (known: {})", known.join(", ")),
            )
        })?;
        if !curves.contains(&curve) {
            curves.push(curve);
        }
    }
    let psk = psk(raw, base_trust.and_then(|b| b.psk.as_ref()), &at)?;
    if psk.is_some() && client_cert.is_some() {
        return Err(bad(
            at("psk_identity"),
            "a session uses either a PSK or a client certificate, not both",
        ));
    }
    Ok(ClientTrust {
        ca,
        server_name: raw
            .server_name
            .clone()
            .or_else(|| base_trust.and_then(|b| b.server_name.clone())),
        client_cert,
        psk,
        cipher_suites: if suites.is_empty() {
            base_trust
                .map(|b| b.cipher_suites.clone())
                .unwrap_or_default()
        } else {
            suites
        },
        curves: if curves.is_empty() {
            base_trust.map(|b| b.curves.clone()).unwrap_or_default()
        } else {
            curves
        },
        handshake_timeout: raw
            .handshake_timeout
            .or(base_trust.map(|b| b.handshake_timeout))
            .unwrap_or(Duration::from_secs(10)),
        rehandshake_every: raw.rehandshake_every,
        resume,
        connection_id: match raw.connection_id {
            Some(c) => Some(connection_id_length(c, 0, at("connection_id"))?),
            None => base_trust.and_then(|b| b.connection_id),
        },
    })
}

/// A `connection_id: { length: N }`, at least `min` bytes and at most 255 (its length is one byte).
fn connection_id_length(
    raw: RawConnectionId,
    min: u64,
    mut at: Vec<Step>,
) -> Result<usize, Invalid> {
    if raw.length < min || raw.length > 255 {
        at.push(key("length"));
        return Err(bad(
            at,
            format!("{}: a connection ID is {min} to 255 bytes", raw.length),
        ));
    }
    Ok(raw.length as usize)
}

/// Validates the embedded server's identity, over `base_identity` for trust cases.
pub fn server_identity(
    raw: &RawServerIdentity,
    base_identity: Option<&ServerIdentity>,
    base: &Path,
    path: &[Step],
) -> Result<ServerIdentity, Invalid> {
    let at = |k: &str| {
        let mut p = path.to_vec();
        p.push(key(k));
        p
    };
    let (cert, key) = match (raw.cert.as_deref(), base_identity) {
        (Some(t), _) => {
            let cert = cert_ref(t, base, at("cert"))?;
            let key = key_for(&cert, raw.key.as_deref(), base, at("key"))?;
            (cert, key)
        }
        (None, Some(b)) => (b.cert.clone(), b.key.clone()),
        (None, None) => (CertRef::Pki(Role::Server), CertRef::Pki(Role::Server)),
    };
    let client_auth = match raw.client_auth.as_deref() {
        Some("none") => ClientAuthMode::None,
        Some("want") => ClientAuthMode::Want,
        Some("require") => ClientAuthMode::Require,
        Some("thingsboard") => ClientAuthMode::Thingsboard,
        Some(other) => {
            return Err(bad(
                at("client_auth"),
                format!("`{other}`: expected none, want, require or thingsboard"),
            ))
        }
        None => base_identity.map_or(ClientAuthMode::None, |b| b.client_auth),
    };
    let client_ca = match (raw.client_ca.as_deref(), base_identity) {
        (Some(t), _) => cert_ref(t, base, at("client_ca"))?,
        (None, Some(b)) => b.client_ca.clone(),
        (None, None) => CertRef::Pki(Role::CaRoot),
    };
    let device_certs = match (raw.device_certs.as_deref(), base_identity) {
        (Some(t), _) => {
            let r = cert_ref(t, base, at("device_certs"))?;
            if matches!(r, CertRef::Pki(_)) {
                return Err(bad(
                    at("device_certs"),
                    format!("`{t}`: registered devices are a PEM file or a folder, e.g. {{pki}}/devices (certs --devices N)"),
                ));
            }
            Some(r)
        }
        // A case that changes the mode away from thingsboard leaves the registered devices behind.
        (None, Some(b)) => b
            .device_certs
            .clone()
            .filter(|_| client_auth == ClientAuthMode::Thingsboard),
        (None, None) => None,
    };
    if raw.device_certs.is_some() && client_auth != ClientAuthMode::Thingsboard {
        return Err(bad(
            at("device_certs"),
            "registered device certificates need `client_auth: thingsboard`",
        ));
    }
    Ok(ServerIdentity {
        cert,
        key,
        client_auth,
        client_ca,
        device_certs,
        connection_id: match raw.connection_id {
            Some(c) => Some(connection_id_length(c, 1, at("connection_id"))?),
            None => base_identity.and_then(|b| b.connection_id),
        },
    })
}

pub fn expect(raw: &RawExpect, path: &[Step]) -> Result<Expect, Invalid> {
    let at = |k: &str| {
        let mut p = path.to_vec();
        p.push(key(k));
        p
    };
    use crate::trust::RefusedBy;
    let refused_by = match &raw.refused_by {
        None => None,
        Some(r) => Some(RefusedBy::parse(r).ok_or_else(|| {
            bad(
                at("refused_by"),
                format!("`{r}`: expected handshake, coap or none"),
            )
        })?),
    };
    let connect = match (raw.handshake.as_deref(), refused_by) {
        (Some("ok"), Some(RefusedBy::Handshake))
        | (Some("fail"), Some(RefusedBy::Coap | RefusedBy::None)) => {
            return Err(bad(
                at("refused_by"),
                format!(
                    "`{}` contradicts handshake: {}",
                    refused_by.unwrap(),
                    raw.handshake.as_deref().unwrap_or_default()
                ),
            ))
        }
        (Some("ok"), _) => true,
        (Some("fail"), _) => false,
        (Some(other), _) => {
            return Err(bad(
                at("handshake"),
                format!("`{other}`: expected ok or fail"),
            ))
        }
        (None, Some(r)) => r != RefusedBy::Handshake,
        (None, None) => {
            return Err(bad(
                path.to_vec(),
                "needs `handshake: ok|fail` or `refused_by: handshake|coap|none`",
            ))
        }
    };
    let verdict = match &raw.verdict {
        None => None,
        Some(v) => {
            let verdict = TrustVerdict::parse(v).ok_or_else(|| {
                let names: Vec<&str> = TrustVerdict::ALL.iter().map(|v| v.name()).collect();
                bad(
                    at("verdict"),
                    format!("`{v}` is not a verdict; verdicts are {}", names.join(", ")),
                )
            })?;
            if verdict.connected() != connect {
                return Err(bad(
                    at("verdict"),
                    format!(
                        "`{v}` contradicts handshake: {}",
                        if connect { "ok" } else { "fail" }
                    ),
                ));
            }
            Some(verdict)
        }
    };
    let code = match &raw.code {
        None => None,
        Some(c) => Some(
            c.parse::<Code>()
                .map_err(|e| bad(at("code"), e.to_string()))?,
        ),
    };
    if code.is_some() && !connect {
        return Err(bad(at("code"), "a failed handshake has no response code"));
    }
    let alert = match raw.alert.as_deref() {
        None => None,
        Some(_) if connect => {
            return Err(bad(
                at("alert"),
                "an alert ends a refused handshake: it needs handshake: fail (or refused_by: handshake)",
            ))
        }
        Some(a) if a.is_empty() || !a.chars().all(|c| c.is_ascii_lowercase() || c == '_') => {
            return Err(bad(
                at("alert"),
                format!("`{a}`: expected a TLS alert name such as bad_certificate or handshake_failure"),
            ))
        }
        Some(a) => Some(a.to_string()),
    };
    Ok(Expect {
        connect,
        refused_by,
        verdict,
        insecure: raw.insecure,
        code,
        alert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Step {
        Step::Key(s.into())
    }

    #[test]
    fn cert_refs() {
        let base = Path::new("/s");
        assert_eq!(
            cert_ref("pki:ca", base, vec![]).unwrap(),
            CertRef::Pki(Role::CaRoot)
        );
        assert_eq!(
            cert_ref("ca.pem", base, vec![]).unwrap(),
            CertRef::File("/s/ca.pem".into())
        );
        let e = cert_ref("pki:nope", base, vec![k("ca")]).unwrap_err();
        assert!(e.message.contains("unknown PKI role") && e.message.contains("expired_server"));
    }

    #[test]
    fn case_changes_apply_over_the_base() {
        let base = Path::new(".");
        let top = client_trust(
            &RawDtls {
                ca: Some("pki:ca".into()),
                client_cert: Some("pki:client".into()),
                ..Default::default()
            },
            None,
            base,
            &[k("dtls")],
        )
        .unwrap();
        assert_eq!(
            top.client_cert,
            Some((CertRef::Pki(Role::Client), CertRef::Pki(Role::Client)))
        );
        let case = client_trust(
            &RawDtls {
                ca: Some("none".into()),
                client_cert: Some("none".into()),
                ..Default::default()
            },
            Some(&top),
            base,
            &[],
        )
        .unwrap();
        assert_eq!(case.ca, None);
        assert_eq!(case.client_cert, None);
        let inherit = client_trust(&RawDtls::default(), Some(&top), base, &[]).unwrap();
        assert_eq!(inherit, top);
        let p384 = client_trust(
            &RawDtls {
                curves: vec!["P384".into(), "x25519".into(), "p384".into()],
                ..Default::default()
            },
            Some(&top),
            base,
            &[],
        )
        .unwrap();
        assert_eq!(p384.curves, vec![NamedCurve::P384, NamedCurve::X25519]);
        assert_eq!(
            client_trust(&RawDtls::default(), Some(&p384), base, &[])
                .unwrap()
                .curves,
            p384.curves
        );
    }

    #[test]
    fn rejects_bad_dtls_settings() {
        let base = Path::new(".");
        let e = client_trust(&RawDtls::default(), None, base, &[k("dtls")]).unwrap_err();
        assert!(e.message.contains("is required"), "{}", e.message);
        let e = client_trust(
            &RawDtls {
                ca: Some("none".into()),
                cipher_suites: vec!["TLS_RSA_WITH_RC4".into()],
                ..Default::default()
            },
            None,
            base,
            &[],
        )
        .unwrap_err();
        assert!(e.message.contains("TLS_RSA_WITH_RC4"));
        let e = client_trust(
            &RawDtls {
                ca: Some("none".into()),
                curves: vec!["p256".into(), "secp521r1".into()],
                ..Default::default()
            },
            None,
            base,
            &[k("dtls")],
        )
        .unwrap_err();
        assert_eq!(e.path, vec![k("dtls"), k("curves"), Step::Index(1)]);
        assert!(
            e.message.contains("unknown curve `secp521r1`")
                && e.message.contains("x25519, p256, p384"),
            "{}",
            e.message
        );
        let e = client_trust(
            &RawDtls {
                ca: Some("none".into()),
                client_cert: Some("c.pem".into()),
                ..Default::default()
            },
            None,
            base,
            &[],
        )
        .unwrap_err();
        assert!(e.message.contains("key file is needed"));
        let e = expect(
            &RawExpect {
                handshake: Some("fail".into()),
                refused_by: None,
                verdict: Some("ok".into()),
                insecure: None,
                code: None,
                alert: None,
            },
            &[],
        )
        .unwrap_err();
        assert!(e.message.contains("contradicts"));
        // Both layers can be named; `refused_by` alone implies the handshake.
        let raw =
            |handshake: Option<&str>, refused_by: Option<&str>, code: Option<&str>| RawExpect {
                handshake: handshake.map(str::to_string),
                refused_by: refused_by.map(str::to_string),
                verdict: None,
                insecure: None,
                code: code.map(str::to_string),
                alert: None,
            };
        let e = expect(&raw(None, Some("coap"), None), &[]).unwrap();
        assert!(e.connect);
        assert_eq!(e.refused_by, Some(crate::trust::RefusedBy::Coap));
        let e = expect(&raw(Some("ok"), None, Some("4.01")), &[]).unwrap();
        assert!(e.connect && e.refused_by.is_none());
        assert!(
            !expect(&raw(None, Some("handshake"), None), &[])
                .unwrap()
                .connect
        );
        for (h, r) in [
            (Some("ok"), Some("handshake")),
            (Some("fail"), Some("coap")),
        ] {
            let e = expect(&raw(h, r, None), &[]).unwrap_err();
            assert!(e.message.contains("contradicts"), "{}", e.message);
        }
        assert!(expect(&raw(None, Some("tls"), None), &[])
            .unwrap_err()
            .message
            .contains("expected handshake, coap or none"));
        assert!(expect(&raw(None, None, None), &[]).is_err());
        assert_eq!(decode_hex("0a1B"), Some(vec![0x0a, 0x1b]));
        assert_eq!(decode_hex("0g"), None);
    }
}
