//! `device_trust:`: the harness as a rogue DTLS server. For each case it presents one certificate (good or
//! deliberately bad) and runs (or waits for) the device under test, then records what the device did. Raw
//! serde types mirror the YAML; [`plan`] turns them into a typed [`DeviceTrustPlan`].

use super::locate::Step;
use super::raw::opt_duration;
use super::validate::Invalid;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeviceTrust {
    /// One device under test...
    pub device: Option<RawDevice>,
    /// ...or several, each run through every case.
    #[serde(default)]
    pub devices: Vec<RawDevice>,
    /// The host name the device is told to connect to (`{host}`); the good certificates name it.
    pub host: Option<String>,
    /// Case names, or `{name: expected}` to override a case's expected outcome.
    pub cases: Vec<RawCaseEntry>,
    /// `require`: the rogue server also demands a client certificate and judges what the device presents
    /// (the two-way variant, with the `client_*` cases); `none` (default): it asks for none.
    pub client_auth: Option<String>,
    /// The user's own CA (already flashed into a real device) instead of a generated one.
    pub pki: Option<RawPki>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPki {
    /// The CA certificate the device trusts (PEM or DER).
    pub ca_cert: PathBuf,
    /// Its private key (PEM or DER: PKCS#8, SEC1 or PKCS#1): every negative certificate that should chain
    /// to the trusted CA is signed with it.
    pub ca_key: PathBuf,
    /// With `client_auth: require`: further CA certificates whose device certificates the harness accepts
    /// (the CA that issued a real device's own certificate), beside `ca_cert`.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevice {
    /// Names the device in the report; defaults to the command's first word.
    pub name: Option<String>,
    /// A command template run per case with `sh -c`: `{ca}` `{host}` `{port}` `{uri}` are filled in, and
    /// `{client_cert}` (two-way runs) with the `client_cert` fragment.
    pub command: Option<String>,
    /// How long the command may run per case (default 10s); it is killed after.
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// A real device: no command; the harness listens and waits this long per case for it to connect.
    #[serde(default, deserialize_with = "opt_duration")]
    pub wait: Option<Duration>,
    /// Where to listen (default 127.0.0.1:0; a real device needs a reachable address and a fixed port).
    pub listen: Option<String>,
    /// Expected outcomes for this device only, by case name (a known exception, documented).
    #[serde(default)]
    pub expect: BTreeMap<String, String>,
    /// With `client_auth: require`: the command-line fragment that gives the device its certificate, with
    /// `{cert}` and `{key}` (e.g. `-c {cert} -j {key}`). It fills `{client_cert}` in `command`, and is left
    /// out (empty) in `client_no_cert`.
    pub client_cert: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawCaseEntry {
    Name(String),
    Override(BTreeMap<String, String>),
}

/// A certificate the rogue server presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceCase {
    /// The good certificate, signed by the CA the device trusts, for its host.
    Valid,
    Expired,
    NotYetValid,
    WrongHost,
    SelfSigned,
    UnknownCa,
    /// Signed by the right CA, for the right host, but for client authentication only (EKU clientAuth).
    WrongKeyUsage,
    /// A CA certificate (basicConstraints CA:TRUE, keyCertSign) used as the server's own certificate.
    CaAsLeaf,
    /// A leaf under an intermediate CA, with the intermediate not sent.
    IncompleteChain,
    /// Signed by the right CA, for the right host, with ECDSA-with-SHA1 (a collision-prone hash).
    WeakSignature,
    /// Two-way: the server (valid certificate) demands a client certificate; the device is given none.
    ClientNoCert,
    /// Two-way: the device is given an expired certificate from the CA the harness trusts.
    ClientExpired,
    /// Two-way: the device is given a certificate from a CA the harness does not trust.
    ClientOtherCa,
    /// Two-way: the device presents its valid certificate (a real device: its own).
    ClientValid,
}

impl DeviceCase {
    /// The cases that judge the device's own certificate (need `client_auth: require`).
    pub const CLIENT: [DeviceCase; 4] = [
        DeviceCase::ClientNoCert,
        DeviceCase::ClientExpired,
        DeviceCase::ClientOtherCa,
        DeviceCase::ClientValid,
    ];

    pub const ALL: [DeviceCase; 14] = [
        DeviceCase::Valid,
        DeviceCase::Expired,
        DeviceCase::NotYetValid,
        DeviceCase::WrongHost,
        DeviceCase::SelfSigned,
        DeviceCase::UnknownCa,
        DeviceCase::WrongKeyUsage,
        DeviceCase::CaAsLeaf,
        DeviceCase::IncompleteChain,
        DeviceCase::WeakSignature,
        DeviceCase::ClientNoCert,
        DeviceCase::ClientExpired,
        DeviceCase::ClientOtherCa,
        DeviceCase::ClientValid,
    ];

    /// A two-way case (the device's certificate is judged; the server presents the valid one).
    pub fn is_client(self) -> bool {
        Self::CLIENT.contains(&self)
    }

    pub fn name(self) -> &'static str {
        match self {
            DeviceCase::Valid => "valid",
            DeviceCase::Expired => "expired",
            DeviceCase::NotYetValid => "not_yet_valid",
            DeviceCase::WrongHost => "wrong_host",
            DeviceCase::SelfSigned => "self_signed",
            DeviceCase::UnknownCa => "unknown_ca",
            DeviceCase::WrongKeyUsage => "wrong_key_usage",
            DeviceCase::CaAsLeaf => "ca_as_leaf",
            DeviceCase::IncompleteChain => "incomplete_chain",
            DeviceCase::WeakSignature => "weak_signature",
            DeviceCase::ClientNoCert => "client_no_cert",
            DeviceCase::ClientExpired => "client_expired",
            DeviceCase::ClientOtherCa => "client_other_ca",
            DeviceCase::ClientValid => "client_valid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }

    /// What a correct device does (two-way cases: what the harness does with the device's certificate).
    pub fn default_expect(self) -> DeviceVerdict {
        match self {
            DeviceCase::Valid | DeviceCase::ClientValid => DeviceVerdict::Accepted,
            DeviceCase::ClientNoCert => DeviceVerdict::ClientCertMissing,
            DeviceCase::ClientExpired | DeviceCase::ClientOtherCa => {
                DeviceVerdict::ClientCertRejected
            }
            _ => DeviceVerdict::Refused,
        }
    }

    /// The certificate, in one line.
    pub fn presents(self) -> &'static str {
        match self {
            DeviceCase::Valid => "the good server certificate, signed by the CA the device trusts",
            DeviceCase::Expired => "signed by the trusted CA, validity ended yesterday",
            DeviceCase::NotYetValid => "signed by the trusted CA, validity starts in 30 days",
            DeviceCase::WrongHost => "signed by the trusted CA, for wrong.example only",
            DeviceCase::SelfSigned => "a certificate for the host that signs itself",
            DeviceCase::UnknownCa => "for the host, signed by a CA the device was not told to trust",
            DeviceCase::WrongKeyUsage => {
                "signed by the trusted CA, for the host, but for client authentication only (EKU clientAuth)"
            }
            DeviceCase::CaAsLeaf => {
                "an intermediate CA certificate (CA:TRUE, keyCertSign) for the host, signed by the trusted CA, used as the server's own"
            }
            DeviceCase::IncompleteChain => {
                "a leaf for the host under an intermediate CA, the intermediate not sent"
            }
            DeviceCase::WeakSignature => {
                "signed by the trusted CA, for the host, with ECDSA-with-SHA1 (SHA-1 signatures are forgeable by collision)"
            }
            DeviceCase::ClientNoCert => {
                "the good server certificate; the server demands a client certificate and the device has none"
            }
            DeviceCase::ClientExpired => {
                "the good server certificate; the device presents a client certificate from the trusted CA that expired yesterday"
            }
            DeviceCase::ClientOtherCa => {
                "the good server certificate; the device presents a client certificate from a CA the server does not trust"
            }
            DeviceCase::ClientValid => {
                "the good server certificate; the device presents its valid client certificate"
            }
        }
    }

    /// What an attacker could do against a device that accepts this certificate, in plain words.
    pub fn attack(self) -> &'static str {
        match self {
            DeviceCase::Valid => "nothing: this is the real server's certificate",
            DeviceCase::Expired => {
                "anyone holding the key of a retired or leaked server certificate can impersonate the server long after it expired, read the device's data and send it commands"
            }
            DeviceCase::NotYetValid => {
                "a certificate issued for later (or a device with a wrong clock) is honoured now: the device does not check validity dates at all, so expired ones likely pass too"
            }
            DeviceCase::WrongHost => {
                "anyone with any certificate from the same CA, for any other host (another service, another customer), can impersonate this server"
            }
            DeviceCase::SelfSigned => {
                "anyone on the network path can make a certificate on the spot and read or change all traffic: the server is not authenticated at all"
            }
            DeviceCase::UnknownCa => {
                "a certificate from any CA, including one the attacker runs, is accepted: a full man-in-the-middle with no key theft needed"
            }
            DeviceCase::WrongKeyUsage => {
                "a certificate issued to a device for client authentication (extractable from any device in the fleet) can impersonate the server"
            }
            DeviceCase::CaAsLeaf => {
                "a CA certificate is honoured as a server identity: the device does not check what a certificate is for, so certificates meant for other purposes pass too"
            }
            DeviceCase::IncompleteChain => {
                "the device did not build a path to its trust anchor (or has the intermediate installed): it may not check the issuer at all"
            }
            DeviceCase::WeakSignature => {
                "whoever can forge a SHA-1 collision (demonstrated publicly since 2017, SHAttered and Shambles) can get a certificate the device trusts for any name, from an innocent-looking one the CA signed"
            }
            DeviceCase::ClientNoCert
            | DeviceCase::ClientExpired
            | DeviceCase::ClientOtherCa
            | DeviceCase::ClientValid => {
                "nothing against the device: this case checks the device's own certificate, and a server accepting a bad one is the server's fault"
            }
        }
    }
}

impl fmt::Display for DeviceCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub use crate::trust::DeviceVerdict;

/// How the device under test is started.
#[derive(Clone, Debug, PartialEq)]
pub enum Launch {
    /// A command template run with `sh -c`, killed after `timeout`.
    Command { template: String, timeout: Duration },
    /// A real device: wait this long per case for it to connect.
    Wait(Duration),
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeviceSpec {
    pub name: String,
    pub launch: Launch,
    /// Two-way: the fragment for `{client_cert}`, with `{cert}` and `{key}`.
    pub client_cert: Option<String>,
    pub listen: SocketAddr,
    /// Expected outcome per case (defaults filled in).
    pub expect: BTreeMap<DeviceCase, DeviceVerdict>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeviceTrustPlan {
    pub host: String,
    pub devices: Vec<DeviceSpec>,
    pub cases: Vec<DeviceCase>,
    /// The two-way variant: every case demands a client certificate.
    pub require_client_cert: bool,
    /// The user's CA instead of a generated one.
    pub pki: Option<UserPki>,
}

/// `device_trust.pki`: files, read when the run starts.
#[derive(Clone, Debug, PartialEq)]
pub struct UserPki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// Default for a command's `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

fn key(k: &str) -> Step {
    Step::Key(k.into())
}

fn at(path: &[&str], index: Option<usize>, tail: &[&str]) -> Vec<Step> {
    let mut p: Vec<Step> = path.iter().map(|k| key(k)).collect();
    if let Some(i) = index {
        p.push(Step::Index(i));
    }
    p.extend(tail.iter().map(|k| key(k)));
    p
}

fn bad(path: Vec<Step>, message: impl Into<String>) -> Invalid {
    Invalid {
        path,
        message: message.into(),
    }
}

fn case_name(s: &str, path: Vec<Step>) -> Result<DeviceCase, Invalid> {
    DeviceCase::parse(s).ok_or_else(|| {
        bad(
            path,
            format!(
                "unknown case `{s}`; known: {}",
                DeviceCase::ALL.map(DeviceCase::name).join(", ")
            ),
        )
    })
}

fn verdict_name(s: &str, path: Vec<Step>) -> Result<DeviceVerdict, Invalid> {
    match DeviceVerdict::parse(s) {
        Some(DeviceVerdict::NoConnection) | None => Err(bad(
            path,
            format!(
                "unknown expected outcome `{s}`; use refused, accepted, connected_no_request, \
                 client_cert_missing, client_cert_rejected or not_run"
            ),
        )),
        Some(v) => Ok(v),
    }
}

/// Validates `device_trust:`; relative `pki` paths are taken from `base` (the scenario's folder).
pub fn plan(raw: &RawDeviceTrust, base: &std::path::Path) -> Result<DeviceTrustPlan, Invalid> {
    const ROOT: &str = "device_trust";
    let mut cases = Vec::new();
    let mut overrides = BTreeMap::new();
    if raw.cases.is_empty() {
        return Err(bad(
            at(&[ROOT, "cases"], None, &[]),
            format!(
                "no cases: list some of {}",
                DeviceCase::ALL.map(DeviceCase::name).join(", ")
            ),
        ));
    }
    let require_client_cert = match raw.client_auth.as_deref() {
        None | Some("none") => false,
        Some("require") => true,
        Some(other) => {
            return Err(bad(
                at(&[ROOT, "client_auth"], None, &[]),
                format!("`{other}`: use `require` (judge the device's certificate) or `none`"),
            ))
        }
    };
    for (i, c) in raw.cases.iter().enumerate() {
        let here = || at(&[ROOT, "cases"], Some(i), &[]);
        let case = match c {
            RawCaseEntry::Name(n) => case_name(n, here())?,
            RawCaseEntry::Override(m) => {
                let [(n, v)] = m.iter().collect::<Vec<_>>()[..] else {
                    return Err(bad(
                        here(),
                        "a case is a name, or one `name: expected` pair",
                    ));
                };
                let case = case_name(n, here())?;
                overrides.insert(case, verdict_name(v, at(&[ROOT, "cases"], Some(i), &[n]))?);
                case
            }
        };
        if cases.contains(&case) {
            return Err(bad(here(), format!("case `{case}` is listed twice")));
        }
        if case.is_client() && !require_client_cert {
            return Err(bad(
                here(),
                format!("case `{case}` judges the device's certificate: it needs `client_auth: require`"),
            ));
        }
        cases.push(case);
    }
    let raw_devices: Vec<(&RawDevice, Vec<Step>)> =
        match (&raw.device, raw.devices.is_empty()) {
            (Some(d), true) => vec![(d, at(&[ROOT, "device"], None, &[]))],
            (None, false) => raw
                .devices
                .iter()
                .enumerate()
                .map(|(i, d)| (d, at(&[ROOT, "devices"], Some(i), &[])))
                .collect(),
            (Some(_), false) => {
                return Err(bad(
                    at(&[ROOT], None, &[]),
                    "`device` and `devices` together: use one",
                ))
            }
            (None, true) => return Err(bad(
                at(&[ROOT], None, &[]),
                "no device: add `device: { command: \"...\" }` (or `wait: 60s` for a real device)",
            )),
        };
    let mut devices = Vec::new();
    for (d, path) in raw_devices {
        let with = |k: &str| {
            let mut p = path.clone();
            p.push(key(k));
            p
        };
        let launch =
            match (&d.command, d.wait) {
                (Some(c), None) => {
                    if c.trim().is_empty() {
                        return Err(bad(with("command"), "empty command"));
                    }
                    Launch::Command {
                        template: c.clone(),
                        timeout: d.timeout.unwrap_or(DEFAULT_TIMEOUT),
                    }
                }
                (None, Some(w)) => {
                    if d.timeout.is_some() {
                        return Err(bad(
                            with("timeout"),
                            "`timeout` bounds a command; a real device's wait is `wait`",
                        ));
                    }
                    Launch::Wait(w)
                }
                (Some(_), Some(_)) => return Err(bad(
                    with("wait"),
                    "`command` and `wait` together: a command is run, a real device is waited for",
                )),
                (None, None) => return Err(bad(
                    path.clone(),
                    "needs `command` (a device simulator or test client) or `wait` (a real device)",
                )),
            };
        for (what, v) in [("timeout", d.timeout), ("wait", d.wait)] {
            if v.is_some_and(|v| v.is_zero()) {
                return Err(bad(with(what), "must be more than 0s"));
            }
        }
        let listen = match &d.listen {
            None => SocketAddr::from(([127, 0, 0, 1], 0)),
            Some(l) => l.parse().map_err(|_| {
                bad(
                    with("listen"),
                    format!("`{l}` is not an address:port, e.g. 0.0.0.0:5684"),
                )
            })?,
        };
        let name = match &d.name {
            Some(n) => n.clone(),
            None => match &launch {
                Launch::Command { template, .. } => template
                    .split_whitespace()
                    .next()
                    .unwrap_or("device")
                    .to_string(),
                Launch::Wait(_) => "device".into(),
            },
        };
        if devices.iter().any(|x: &DeviceSpec| x.name == name) {
            return Err(bad(
                with("name"),
                format!("two devices are named `{name}`: give each a `name`"),
            ));
        }
        let mut expect: BTreeMap<DeviceCase, DeviceVerdict> = cases
            .iter()
            .map(|c| (*c, overrides.get(c).copied().unwrap_or(c.default_expect())))
            .collect();
        for (n, v) in &d.expect {
            let p = with("expect");
            let case = case_name(n, p.clone())?;
            if !cases.contains(&case) {
                return Err(bad(p, format!("`{n}` is not among the cases")));
            }
            expect.insert(case, verdict_name(v, p)?);
        }
        let client_cert = match (&launch, &d.client_cert, require_client_cert) {
            (_, Some(_), false) => {
                return Err(bad(
                    with("client_cert"),
                    "`client_cert` gives the device a certificate for `client_auth: require`, which is not set",
                ))
            }
            (Launch::Command { template, .. }, Some(f), true) => {
                if !(f.contains("{cert}") && f.contains("{key}")) {
                    return Err(bad(
                        with("client_cert"),
                        "must name `{cert}` and `{key}`, e.g. \"-c {cert} -j {key}\"",
                    ));
                }
                if !template.contains("{client_cert}") {
                    return Err(bad(
                        with("command"),
                        "with `client_cert`, the command must place it: add `{client_cert}`",
                    ));
                }
                Some(f.clone())
            }
            (Launch::Command { .. }, None, true) => {
                return Err(bad(
                    path.clone(),
                    "`client_auth: require` needs `client_cert`, the fragment that gives the device its \
                     certificate (e.g. \"-c {cert} -j {key}\"), placed in the command as `{client_cert}`",
                ))
            }
            (Launch::Wait(_), Some(_), true) => {
                return Err(bad(
                    with("client_cert"),
                    "a real device (`wait`) presents its own certificate; `client_cert` is for commands",
                ))
            }
            (Launch::Wait(_), None, _) | (Launch::Command { .. }, None, false) => None,
        };
        if matches!(launch, Launch::Wait(_)) {
            if let Some(c) = cases
                .iter()
                .find(|c| c.is_client() && **c != DeviceCase::ClientValid)
            {
                return Err(bad(
                    at(&[ROOT, "cases"], None, &[]),
                    format!(
                        "case `{c}` hands the device a certificate, which a real device (`wait`) cannot take; \
                         with a real device use `client_valid` (it checks the device's own certificate)"
                    ),
                ));
            }
        }
        devices.push(DeviceSpec {
            name,
            launch,
            client_cert,
            listen,
            expect,
        });
    }
    if raw.pki.as_ref().is_some_and(|p| p.client_ca.is_some()) && !require_client_cert {
        return Err(bad(
            at(&[ROOT, "pki", "client_ca"], None, &[]),
            "`client_ca` is for `client_auth: require`, which is not set",
        ));
    }
    Ok(DeviceTrustPlan {
        host: raw.host.clone().unwrap_or_else(|| "localhost".into()),
        devices,
        cases,
        require_client_cert,
        pki: raw.pki.as_ref().map(|p| UserPki {
            ca_cert: base.join(&p.ca_cert),
            ca_key: base.join(&p.ca_key),
            client_ca: p.client_ca.as_ref().map(|c| base.join(c)),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<DeviceTrustPlan, String> {
        let raw: RawDeviceTrust = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        plan(&raw, std::path::Path::new("/s")).map_err(|e| e.message)
    }

    #[test]
    fn two_way_and_user_pki() {
        let p = parse(
            "client_auth: require\n\
             pki: { ca_cert: ca.pem, ca_key: ca.key }\n\
             devices:\n\
             - { name: a, command: 'c {client_cert} {uri}', client_cert: '-c {cert} -j {key}' }\n\
             - { name: b, wait: 5s, listen: '127.0.0.1:5684' }\n\
             cases: [valid, weak_signature, client_valid]\n",
        )
        .unwrap();
        assert!(p.require_client_cert);
        let pki = p.pki.unwrap();
        assert_eq!(pki.ca_cert, PathBuf::from("/s/ca.pem"));
        assert_eq!(pki.ca_key, PathBuf::from("/s/ca.key"));
        assert_eq!(pki.client_ca, None);
        assert_eq!(
            p.devices[0].client_cert.as_deref(),
            Some("-c {cert} -j {key}")
        );
        assert_eq!(p.devices[1].client_cert, None);
        assert_eq!(
            p.devices[1].listen,
            "127.0.0.1:5684".parse::<SocketAddr>().unwrap()
        );
        let d = &p.devices[0];
        assert_eq!(d.expect[&DeviceCase::WeakSignature], DeviceVerdict::Refused);
        assert_eq!(d.expect[&DeviceCase::ClientValid], DeviceVerdict::Accepted);
        let p = parse(
            "client_auth: require\n\
             device: { command: 'c {client_cert}', client_cert: '-c {cert} -j {key}' }\n\
             cases: [client_no_cert, client_expired, { client_other_ca: accepted }]\n",
        )
        .unwrap();
        let e = &p.devices[0].expect;
        assert_eq!(
            e[&DeviceCase::ClientNoCert],
            DeviceVerdict::ClientCertMissing
        );
        assert_eq!(
            e[&DeviceCase::ClientExpired],
            DeviceVerdict::ClientCertRejected
        );
        assert_eq!(e[&DeviceCase::ClientOtherCa], DeviceVerdict::Accepted);
    }

    #[test]
    fn defaults_and_overrides() {
        let p = parse(
            "device: { command: 'true {ca}', timeout: 3s, expect: { expired: accepted } }\n\
             cases: [valid, expired, { self_signed: accepted }, unknown_ca]\n",
        )
        .unwrap();
        let d = &p.devices[0];
        assert_eq!(d.name, "true");
        assert_eq!(
            d.launch,
            Launch::Command {
                template: "true {ca}".into(),
                timeout: Duration::from_secs(3)
            }
        );
        assert_eq!(d.expect[&DeviceCase::Valid], DeviceVerdict::Accepted);
        assert_eq!(d.expect[&DeviceCase::Expired], DeviceVerdict::Accepted);
        assert_eq!(d.expect[&DeviceCase::SelfSigned], DeviceVerdict::Accepted);
        assert_eq!(d.expect[&DeviceCase::UnknownCa], DeviceVerdict::Refused);
        assert_eq!(p.host, "localhost");
    }

    #[test]
    fn rejects_bad_sections() {
        for (yaml, want) in [
            ("cases: [valid]\n", "no device"),
            (
                "device: { command: x }\ncases: [nope]\n",
                "unknown case `nope`",
            ),
            (
                "device: { command: x }\ncases: [client_valid]\n",
                "needs `client_auth: require`",
            ),
            (
                "client_auth: require\ndevice: { command: x }\ncases: [valid]\n",
                "needs `client_cert`",
            ),
            (
                "client_auth: require\ndevice: { command: x, client_cert: '-c {cert}' }\ncases: [valid]\n",
                "must name `{cert}` and `{key}`",
            ),
            (
                "client_auth: require\ndevice: { command: x, client_cert: '-c {cert} -j {key}' }\ncases: [valid]\n",
                "add `{client_cert}`",
            ),
            (
                "client_auth: require\ndevice: { wait: 5s }\ncases: [client_valid, client_expired]\n",
                "real device",
            ),
            (
                "client_auth: maybe\ndevice: { command: x }\ncases: [valid]\n",
                "use `require`",
            ),
            (
                "device: { command: x }\ncases: [valid]\npki: { ca_cert: a, ca_key: b, client_ca: c }\n",
                "`client_ca` is for",
            ),
            (
                "device: { command: x }\ncases: [valid, valid]\n",
                "listed twice",
            ),
            (
                "device: { command: x, wait: 5s }\ncases: [valid]\n",
                "together",
            ),
            ("device: { }\ncases: [valid]\n", "needs `command`"),
            (
                "device: { command: x }\ncases: [{ expired: maybe }]\n",
                "unknown expected outcome",
            ),
            (
                "device: { command: x, listen: here }\ncases: [valid]\n",
                "not an address",
            ),
            (
                "devices: [{ command: x }, { command: x }]\ncases: [valid]\n",
                "named `x`",
            ),
            (
                "device: { command: x, expect: { expired: refused } }\ncases: [valid]\n",
                "not among",
            ),
        ] {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }
}
