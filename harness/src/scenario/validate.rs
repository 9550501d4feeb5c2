//! Turns a [`RawScenario`] into a [`RunPlan`], checking every rule that spans fields. Reads token files
//! but opens no socket.

use super::dtls;
use super::locate::Step;
use super::plan::{
    CertRef, DevicePlan, DtlsPlan, Pacing, Phase, PkiPlan, RequestPlan, RunPlan, Target,
    TokenSource, TrustCase,
};
use super::raw::{Ramp, RawScenario, RawToken};
use super::template::PayloadTemplate;
use crate::coap::{MessageType, TransmissionParams};
use crate::token::TokenPattern;
use std::net::ToSocketAddrs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A rule broken: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub path: Vec<Step>,
    pub message: String,
}

fn key(k: &str) -> Step {
    Step::Key(k.into())
}

fn invalid(path: Vec<Step>, message: impl Into<String>) -> Invalid {
    Invalid {
        path,
        message: message.into(),
    }
}

/// Validates a parsed scenario. `base` is the folder relative paths (token files) are taken from;
/// `default_name` names the scenario when it has no `name`.
pub fn validate(raw: RawScenario, base: &Path, default_name: &str) -> Result<RunPlan, Invalid> {
    let name = raw.name.clone().unwrap_or_else(|| default_name.to_string());
    if name.is_empty() || name.contains(['/', '\\']) {
        return Err(invalid(
            vec![key("name")],
            format!("`{name}` cannot name a report folder"),
        ));
    }
    let target =
        parse_target(&raw.target, &raw.embedded).map_err(|m| invalid(vec![key("target")], m))?;

    let d = &raw.devices;
    if d.count == 0 {
        return Err(invalid(
            vec![key("devices"), key("count")],
            "must be at least 1 (got 0)",
        ));
    }
    let mut credentials: Option<Arc<[super::plan::DeviceCredentials]>> = None;
    let tokens = match (&d.token, &d.token_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                vec![key("devices"), key("token_file")],
                "give either `token` or `token_file`, not both",
            ))
        }
        (Some(RawToken::Pattern(p)), None) => TokenSource::Pattern(p.clone()),
        (Some(RawToken::Literal(t)), None) if d.count == 1 => {
            TokenSource::List(Arc::from(vec![t.clone()]))
        }
        (Some(RawToken::Literal(t)), None) => {
            return Err(invalid(
                vec![key("devices"), key("token")],
                format!(
                    "token pattern `{t}` has no {{index}} placeholder, so the {} devices would share one token: \
                     write a pattern such as `{t}-{{index}}`, list the tokens in token_file, or run 1 device",
                    d.count
                ),
            ))
        }
        (None, None) => TokenSource::Pattern(TokenPattern::parse("dev-{index:05}").expect("valid")),
        (None, Some(file)) => {
            let path = base.join(file);
            let at = || vec![key("devices"), key("token_file")];
            let text = std::fs::read_to_string(&path)
                .map_err(|e| invalid(at(), format!("cannot read {}: {e}", path.display())))?;
            let dir = path.parent().unwrap_or(Path::new("."));
            let read = super::credentials::parse(&text, dir)
                .map_err(|e| invalid(at(), format!("{}: {e}", path.display())))?;
            let list = read.tokens;
            let mut seen = std::collections::HashMap::with_capacity(list.len());
            for (i, t) in list.iter().enumerate().filter(|(_, t)| !t.is_empty()) {
                if let Some(first) = seen.insert(t.as_str(), i) {
                    return Err(invalid(
                        at(),
                        format!(
                            "{}: token `{t}` is listed twice (tokens {} and {}): each device needs its own",
                            path.display(),
                            first + 1,
                            i + 1
                        ),
                    ));
                }
            }
            if list.len() < d.count as usize {
                return Err(invalid(
                    at(),
                    format!(
                        "{} holds {} tokens but devices.count is {}",
                        path.display(),
                        list.len(),
                        d.count
                    ),
                ));
            }
            credentials = read.credentials.map(Arc::from);
            TokenSource::List(Arc::from(list))
        }
    };

    if let Some(rate) = d.connect_rate {
        let at = || vec![key("devices"), key("connect_rate")];
        if !(rate.is_finite() && rate > 0.0) {
            return Err(invalid(
                at(),
                format!("`{rate}` must be a positive rate, e.g. 500/s"),
            ));
        }
    }
    let request = request_plan(&raw)?;
    let transmission = transmission(&raw)?;
    let conformance = super::conformance::cases(&raw.conformance)?;
    let phases = if raw.phases.is_empty()
        && !(raw.trust_cases.is_empty() && raw.conformance.is_empty() && raw.device_trust.is_none())
    {
        Vec::new()
    } else {
        phases(&raw)?
    };
    let (dtls, pki, trust_cases) = security(&raw, &target, base, credentials.as_deref())?;
    let device_trust = match &raw.device_trust {
        Some(d) => Some(super::device_trust::plan(d, base)?),
        None => None,
    };
    if !phases.is_empty() {
        super::size::check(&request, &tokens, d.count, dtls.is_some())?;
    }
    let drain = raw.drain.unwrap_or_else(|| {
        let bound = match request.mtype {
            MessageType::Con => transmission.max_transmit_wait(),
            _ => transmission.response_timeout,
        };
        bound.min(Duration::from_secs(10))
    });

    if let (Some(rate), Some(last)) = (d.connect_rate, phases.last()) {
        let turn = f64::from(d.count.saturating_sub(1)) / rate;
        if turn >= last.end().as_secs_f64() {
            return Err(invalid(
                vec![key("devices"), key("connect_rate")],
                format!(
                    "at {rate}/s the last of {} devices connects {turn:.1}s into the run, after the phases end \
                     ({:.1}s): raise connect_rate or lengthen the phases",
                    d.count,
                    last.end().as_secs_f64()
                ),
            ));
        }
    }
    Ok(RunPlan {
        name,
        source: None,
        target,
        seed: raw.seed.unwrap_or(0x5eed),
        devices: DevicePlan {
            count: d.count,
            tokens,
            bind: d.bind.clone(),
            offset: 0,
            stride: 1,
            connect_rate: d.connect_rate,
            credentials,
        },
        request,
        transmission,
        phases,
        drain,
        dtls,
        pki,
        trust_cases,
        device_trust,
        conformance,
        expect: super::checks::expect(&raw.expect, &[key("expect")])?,
        thresholds: run_thresholds(&raw)?,
        health: super::checks::health(raw.health.as_ref(), &[key("health")])?,
        shard: None,
        start_at: None,
        faults: raw
            .faults
            .as_ref()
            .map(|f| super::faults::plan(f, raw.seed.unwrap_or(0x5eed)))
            .transpose()?,
        require_dtls: raw.require_dtls,
    })
}

fn run_thresholds(raw: &RawScenario) -> Result<Vec<super::plan::Threshold>, Invalid> {
    let list = super::checks::thresholds(&raw.thresholds, &[key("thresholds")])?;
    if let Some(i) = list
        .iter()
        .position(|t| t.abort_on_fail && !crate::checks::watchable(t))
    {
        return Err(invalid(
            vec![key("thresholds"), Step::Index(i)],
            format!(
                "`{}`: abort_on_fail watches only bounds that can only be lost (timeouts, expectation_failures, max, error_rate with < or <=); this one is judged at the end",
                list[i].text
            ),
        ));
    }
    Ok(list)
}

fn phase_thresholds(
    p: &super::raw::RawPhase,
    i: usize,
) -> Result<Vec<super::plan::Threshold>, Invalid> {
    use super::plan::Metric;
    let at = [key("phases"), Step::Index(i), key("thresholds")];
    let list = super::checks::thresholds(&p.thresholds, &at)?;
    if let Some(j) = list.iter().position(|t| {
        matches!(
            t.metric,
            Metric::HandshakeLatency(_) | Metric::HandshakeMax | Metric::HandshakeFailures
        )
    }) {
        let mut path = at.to_vec();
        path.push(Step::Index(j));
        return Err(invalid(
            path,
            format!("`{}`: handshake metrics apply to the whole run; put it under the top-level thresholds", list[j].text),
        ));
    }
    Ok(list)
}

type Security = (Option<DtlsPlan>, Option<PkiPlan>, Vec<TrustCase>);

/// `dtls:`, `pki:`, `embedded.server` and `trust_cases:`, and how they fit the target and the devices' own
/// credentials (a CSV token file's).
fn security(
    raw: &RawScenario,
    target: &Target,
    base: &Path,
    devices: Option<&[super::plan::DeviceCredentials]>,
) -> Result<Security, Invalid> {
    let own = devices.unwrap_or_default();
    let own_psk = own.iter().any(|c| c.psk.is_some());
    let own_certs = own.iter().any(|c| c.cert.is_some());
    if (own_psk || own_certs) && raw.dtls.is_none() {
        return Err(invalid(
            vec![key("devices"), key("token_file")],
            "gives devices DTLS credentials (psk_identity/psk_key or cert/key), but the scenario has no `dtls:` \
             section: add one (and a coaps:// or embedded target)",
        ));
    }
    for c in own {
        let at = || vec![key("devices"), key("token_file")];
        if let (Some(cert), Some(k)) = (&c.cert, &c.key) {
            crate::pki::read_certs(cert).map_err(|e| invalid(at(), e.to_string()))?;
            crate::pki::read_key(k).map_err(|e| invalid(at(), e.to_string()))?;
        }
    }
    let secure_target = matches!(target, Target::Remote { secure: true, .. });
    let dtls_plan = match &raw.dtls {
        None if secure_target => {
            return Err(invalid(
                vec![key("target")],
                "a coaps:// target needs a `dtls:` section (at least `ca:`: a CA file, pki:ca, or none)",
            ))
        }
        None => None,
        Some(_) if matches!(target, Target::Remote { secure: false, .. }) => {
            return Err(invalid(
                vec![key("dtls")],
                "DTLS settings with a coap:// target: use coaps://host:port (5684 by default)",
            ))
        }
        Some(d) => {
            // Every device with its own PSK: no certificate to verify, so no CA is needed.
            let all_psk = !own.is_empty() && own.iter().all(|c| c.psk.is_some());
            let mut d = d.clone();
            if all_psk && d.ca.is_none() && d.psk_identity.is_none() {
                d.ca = Some("none".into());
            }
            let client = dtls::client_trust(&d, None, base, &[key("dtls")])?;
            let server = dtls::server_identity(
                &raw.embedded.server,
                None,
                base,
                &[key("embedded"), key("server")],
            )?;
            Some(DtlsPlan { client, server })
        }
    };
    if !raw.trust_cases.is_empty() && dtls_plan.is_none() {
        return Err(invalid(
            vec![key("trust_cases")],
            "trust cases are DTLS handshakes: add a `dtls:` section (and a coaps:// or embedded target)",
        ));
    }
    let mut cases = Vec::with_capacity(raw.trust_cases.len());
    let mut names = std::collections::HashSet::new();
    for (i, c) in raw.trust_cases.iter().enumerate() {
        let at = vec![key("trust_cases"), Step::Index(i)];
        let d = dtls_plan.as_ref().expect("checked above");
        let with = |k: &str| {
            let mut p = at.clone();
            p.push(key(k));
            p
        };
        if !names.insert(c.name.as_str()) {
            return Err(invalid(with("name"), format!("`{}` is used twice", c.name)));
        }
        let server_changes = c.server.cert.is_some()
            || c.server.key.is_some()
            || c.server.client_auth.is_some()
            || c.server.client_ca.is_some()
            || c.server.device_certs.is_some();
        if server_changes && !matches!(target, Target::Embedded { .. }) {
            return Err(invalid(
                with("server"),
                "server identity can only be changed for the embedded target; a remote server presents what it presents",
            ));
        }
        cases.push(TrustCase {
            name: c.name.clone(),
            client: dtls::client_trust(&c.client, Some(&d.client), base, &with("client"))?,
            server: dtls::server_identity(&c.server, Some(&d.server), base, &with("server"))?,
            path: c
                .path
                .as_deref()
                .map(parse_path)
                .transpose()
                .map_err(|m| invalid(with("path"), m))?,
            expect: dtls::expect(&c.expect, &with("expect"))?,
        });
    }
    let pki = match raw.pki.as_deref() {
        None => None,
        Some("generate") => Some(PkiPlan::Generate),
        Some(dir) => {
            let dir = base.join(dir);
            // What `run` loads first: the folder's manifest (and through it, its files).
            crate::pki::load_manifest(&dir)
                .map_err(|e| invalid(vec![key("pki")], e.to_string()))?;
            Some(PkiPlan::Dir(dir))
        }
    };
    let embedded = matches!(target, Target::Embedded { .. });
    let mut refs: Vec<&CertRef> = Vec::new();
    if let Some(d) = &dtls_plan {
        refs.extend(d.client.ca.iter());
        refs.extend(d.client.client_cert.iter().flat_map(|(c, k)| [c, k]));
        if embedded {
            refs.extend([&d.server.cert, &d.server.key, &d.server.client_ca]);
            refs.extend(d.server.device_certs.iter());
        }
    }
    for c in &cases {
        refs.extend(c.client.ca.iter());
        refs.extend(c.client.client_cert.iter().flat_map(|(c, k)| [c, k]));
        if embedded {
            refs.extend([&c.server.cert, &c.server.key, &c.server.client_ca]);
            refs.extend(c.server.device_certs.iter());
        }
    }
    if pki.is_none() {
        if let Some(r) = refs.iter().find(|r| r.needs_pki()) {
            return Err(invalid(
                vec![key("pki")],
                format!("{r} is used, so the scenario needs `pki: generate` (a fresh PKI for the run) or `pki: DIR` (made by coap-harness certs)"),
            ));
        }
    }
    // A fleet with a certificate per device from a PKI folder: that folder must hold one for the last device.
    if let (Some(PkiPlan::Dir(dir)), Some((cert, _))) = (
        &pki,
        dtls_plan
            .as_ref()
            .and_then(|d| d.client.client_cert.as_ref()),
    ) {
        if let CertRef::PkiFile(p) = cert.for_device(u64::from(raw.devices.count) - 1) {
            if cert.per_device() && !dir.join(&p).exists() {
                return Err(invalid(
                    vec![key("dtls"), key("client_cert")],
                    format!(
                        "{} does not exist: {} holds fewer device certificates than devices.count ({}); \
                         make them with coap-harness certs --out {} --devices {} --force",
                        dir.join(&p).display(),
                        dir.display(),
                        raw.devices.count,
                        dir.display(),
                        raw.devices.count
                    ),
                ));
            }
        }
    }
    Ok((dtls_plan, pki, cases))
}

/// Parses `embedded`, `coap://host[:port]` or `coaps://host[:port]`.
pub fn parse_target(text: &str, embedded: &super::raw::RawEmbedded) -> Result<Target, String> {
    if text == "embedded" {
        let stall = match (embedded.stall_at, embedded.stall_for) {
            (None, None) => None,
            (Some(at), Some(len)) if !len.is_zero() => Some((at, len)),
            _ => {
                return Err(
                    "embedded.stall_at and embedded.stall_for go together (and stall_for > 0)"
                        .into(),
                )
            }
        };
        let restart = match (embedded.restart_at, embedded.restart_down) {
            (None, None) => None,
            (Some(at), down) => Some((at, down.unwrap_or_default())),
            (None, Some(_)) => return Err("embedded.restart_down needs embedded.restart_at".into()),
        };
        return Ok(Target::Embedded {
            response_delay: embedded.response_delay,
            any_token: embedded.any_token,
            stall,
            restart,
        });
    }
    let (scheme, rest) = text.split_once("://").ok_or_else(|| {
        format!(
            "`{text}` is not a target: expected `embedded`, coap://host:port or coaps://host:port"
        )
    })?;
    let (default_port, secure) = match scheme {
        "coap" => (5683, false),
        "coaps" => (5684, true),
        _ => {
            return Err(format!(
                "`{text}`: unknown scheme `{scheme}`, expected coap:// or coaps://"
            ))
        }
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        return Err(format!("`{text}` has no host"));
    }
    if !path.is_empty() {
        return Err(format!(
            "`{text}` has a path (/{path}): a target is only {scheme}://host:port; the path each request \
             goes to is the scenario's request.path"
        ));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default().to_string(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_string(),
    };
    let with_port = if authority.starts_with('[') {
        if authority.contains("]:") {
            authority.to_string()
        } else {
            format!("{authority}:{default_port}")
        }
    } else if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("`{text}`: cannot resolve `{with_port}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{text}`: `{with_port}` resolves to no address"))?;
    if addr.port() == 0 {
        return Err(format!(
            "`{text}`: port 0 is not a port a server listens on"
        ));
    }
    Ok(Target::Remote {
        url: format!("{scheme}://{with_port}"),
        host,
        addr,
        secure,
    })
}

fn request_plan(raw: &RawScenario) -> Result<RequestPlan, Invalid> {
    let r = &raw.request;
    let at = |k: &str| vec![key("request"), key(k)];
    let path = parse_path(&r.path).map_err(|m| invalid(at("path"), m))?;
    if let Some(q) = r.query.iter().find(|q| q.is_empty()) {
        return Err(invalid(at("query"), format!("empty query option `{q}`")));
    }
    let payload = PayloadTemplate::parse(&r.payload).map_err(|m| invalid(at("payload"), m))?;
    let operation = path
        .iter()
        .rev()
        .flatten()
        .next()
        .cloned()
        .unwrap_or_else(|| "request".into());
    Ok(RequestPlan {
        method: r.method,
        mtype: r.mtype,
        path,
        query: r.query.clone(),
        content_format: r.content_format,
        payload,
        operation,
    })
}

/// A request path as Uri-Path segments, `None` standing for the device's token (`{token}`).
fn parse_path(text: &str) -> Result<Vec<Option<String>>, String> {
    if !text.starts_with('/') {
        return Err(format!("`{text}` must start with /"));
    }
    let path: Vec<Option<String>> = text
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| (s != "{token}").then(|| s.to_string()))
        .collect();
    if let Some(seg) = path.iter().flatten().find(|s| s.contains(['{', '}'])) {
        return Err(format!(
            "segment `{seg}`: only a whole `{{token}}` segment is replaced"
        ));
    }
    Ok(path)
}

fn transmission(raw: &RawScenario) -> Result<TransmissionParams, Invalid> {
    let c = &raw.coap;
    let at = |k: &str| vec![key("coap"), key(k)];
    let mut t = TransmissionParams::default();
    if let Some(v) = c.ack_timeout {
        if v.is_zero() {
            return Err(invalid(at("ack_timeout"), "must be more than 0"));
        }
        t.ack_timeout = v;
    }
    if let Some(v) = c.ack_random_factor {
        if !(1.0..=10.0).contains(&v) {
            return Err(invalid(
                at("ack_random_factor"),
                format!("{v} is outside 1.0 to 10.0 (RFC 7252 requires at least 1.0)"),
            ));
        }
        t.ack_random_factor = v;
    }
    if let Some(v) = c.max_retransmit {
        if v > 20 {
            return Err(invalid(
                at("max_retransmit"),
                format!("{v} is more than 20"),
            ));
        }
        t.max_retransmit = v;
    }
    if let Some(v) = c.nstart {
        if !(1..=64).contains(&v) {
            return Err(invalid(
                at("nstart"),
                format!("{v} is outside 1 to 64 (RFC 7252's default is 1)"),
            ));
        }
        t.nstart = v;
    }
    if let Some(v) = c.response_timeout {
        if v.is_zero() {
            return Err(invalid(at("response_timeout"), "must be more than 0"));
        }
        t.response_timeout = v;
    }
    Ok(t)
}

/// The shortest per-device send interval the engine can keep: one device is one task and one socket, woken
/// by tokio's timer; below this the schedule could not be honoured (and `rate: 1e12/s` would round to 0 ns).
pub const MIN_INTERVAL: Duration = Duration::from_micros(10);

/// Whether the engine can keep `phase`'s pacing; the field to blame and why not.
fn honourable(phase: &Phase) -> Result<(), (&'static str, String)> {
    let Some(d) = phase.interval() else {
        return Ok(());
    };
    if d >= MIN_INTERVAL {
        return Ok(());
    }
    let most = 1.0 / MIN_INTERVAL.as_secs_f64();
    match phase.pacing {
        Pacing::Rate(r) => {
            let n = phase.devices_from.max(phase.devices_to).max(1);
            Err((
                "rate",
                format!(
                    "{r}/s over {n} devices is one request every {} per device, but one device sends at most \
                     {most:.0}/s (every {}): add devices or lower the rate",
                    humantime::format_duration(d),
                    humantime::format_duration(MIN_INTERVAL),
                ),
            ))
        }
        _ => Err((
            "interval",
            format!(
                "{} is shorter than the {} a device can keep (at most {most:.0} requests/s per device): \
                 use a longer interval, or more devices",
                humantime::format_duration(d),
                humantime::format_duration(MIN_INTERVAL),
            ),
        )),
    }
}

fn phases(raw: &RawScenario) -> Result<Vec<Phase>, Invalid> {
    if raw.phases.is_empty() {
        return Err(invalid(vec![key("phases")], "at least one phase is needed"));
    }
    let mut out = Vec::with_capacity(raw.phases.len());
    let mut start = Duration::ZERO;
    let mut previous = 0u32;
    for (i, p) in raw.phases.iter().enumerate() {
        let at = |k: &str| vec![key("phases"), Step::Index(i), key(k)];
        if p.duration.is_zero() {
            return Err(invalid(at("duration"), "must be more than 0"));
        }
        let devices = p.devices.unwrap_or(raw.devices.count);
        if devices > raw.devices.count {
            return Err(invalid(
                at("devices"),
                format!(
                    "{devices} is more than devices.count ({})",
                    raw.devices.count
                ),
            ));
        }
        let pacing =
            match (p.interval, p.rate, p.think) {
                (Some(d), None, None) if d.is_zero() => {
                    return Err(invalid(at("interval"), "must be more than 0"))
                }
                (Some(d), None, None) => Pacing::Interval(d),
                (None, Some(r), None) => Pacing::Rate(r),
                (None, None, Some(think)) => Pacing::Closed { think },
                (None, None, None) => return Err(invalid(
                    vec![key("phases"), Step::Index(i)],
                    "needs one of `interval` (per device), `rate` (total) or `think` (closed loop)",
                )),
                _ => {
                    return Err(invalid(
                        vec![key("phases"), Step::Index(i)],
                        "give only one of `interval`, `rate` and `think`",
                    ))
                }
            };
        let from = if p.ramp == Ramp::Linear {
            previous
        } else {
            devices
        };
        let phase = Phase {
            name: p.name.clone().unwrap_or_else(|| format!("phase-{}", i + 1)),
            start,
            duration: p.duration,
            devices_from: from,
            devices_to: devices,
            ramp: p.ramp,
            pacing,
            thresholds: phase_thresholds(p, i)?,
        };
        honourable(&phase).map_err(|(field, why)| invalid(at(field), why))?;
        out.push(phase);
        start += p.duration;
        previous = devices;
    }
    let mut names = std::collections::HashSet::new();
    for (i, p) in out.iter().enumerate() {
        if !names.insert(p.name.as_str()) {
            return Err(invalid(
                vec![key("phases"), Step::Index(i), key("name")],
                format!("phase name `{}` is used twice", p.name),
            ));
        }
    }
    Ok(out)
}
