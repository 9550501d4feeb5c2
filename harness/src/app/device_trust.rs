//! Device-side trust cases (`device_trust:`): for each device and case, a DTLS-only embedded server on its
//! own port presents the case's certificate, the device command runs (bounded by its timeout, its process
//! group killed after) or a real device is waited for, and what the server saw becomes the verdict.
//! With `client_auth: require` (the two-way variant) the server also demands a client certificate, verified
//! against the device-trust CA (and `pki.client_ca`), and says what it made of the device's certificate.

use super::EngineError;
use crate::pki::device::{ClientCert, DeviceCert, DevicePki};
use crate::report::model::DeviceTrustResult;
use crate::scenario::device_trust::{
    DeviceCase, DeviceSpec, DeviceTrustPlan, DeviceVerdict, Launch,
};
use crate::server::{
    self, DtlsServerConfig, HandshakeFailure, ServerConfig, ServerHandle, TokenPolicy,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// The token in `{uri}`; the rogue server accepts any.
pub const TOKEN: &str = "device-trust";

/// What the server saw and the device did in one case.
struct Observed {
    verdict: DeviceVerdict,
    alert: Option<String>,
    exit: Option<String>,
    output: Option<String>,
    elapsed: Duration,
}

/// The certificate the server presents in `case` (two-way cases: the good one).
fn which(case: DeviceCase) -> DeviceCert {
    match case {
        DeviceCase::Valid
        | DeviceCase::ClientNoCert
        | DeviceCase::ClientExpired
        | DeviceCase::ClientOtherCa
        | DeviceCase::ClientValid => DeviceCert::Valid,
        DeviceCase::Expired => DeviceCert::Expired,
        DeviceCase::NotYetValid => DeviceCert::NotYetValid,
        DeviceCase::WrongHost => DeviceCert::WrongHost,
        DeviceCase::SelfSigned => DeviceCert::SelfSigned,
        DeviceCase::UnknownCa => DeviceCert::UnknownCa,
        DeviceCase::WrongKeyUsage => DeviceCert::WrongKeyUsage,
        DeviceCase::CaAsLeaf => DeviceCert::CaAsLeaf,
        DeviceCase::IncompleteChain => DeviceCert::IncompleteChain,
        DeviceCase::WeakSignature => DeviceCert::WeakSignature,
    }
}

/// The certificate the device is handed in `case` (two-way runs only; `None`: no certificate).
fn client_which(case: DeviceCase) -> Option<ClientCert> {
    match case {
        DeviceCase::ClientNoCert => None,
        DeviceCase::ClientExpired => Some(ClientCert::Expired),
        DeviceCase::ClientOtherCa => Some(ClientCert::OtherCa),
        _ => Some(ClientCert::Valid),
    }
}

/// Everything a run's cases share: the PKI, the files handed to devices, the client CAs.
struct Setup {
    pki: DevicePki,
    /// `{ca}`.
    ca: PathBuf,
    /// Two-way: the device certificate and key files, by kind.
    client_files: Vec<(ClientCert, PathBuf, PathBuf)>,
    /// Two-way: the CAs whose device certificates the server accepts (DER).
    client_cas: Vec<Vec<u8>>,
    /// Keeps the files.
    _dir: tempfile::TempDir,
}

fn credentials(what: String) -> EngineError {
    EngineError::Credentials(what)
}

fn write(path: &Path, text: &str) -> Result<(), EngineError> {
    std::fs::write(path, text)
        .map_err(|e| credentials(format!("cannot write {}: {e}", path.display())))
}

fn setup(plan: &DeviceTrustPlan) -> Result<Setup, EngineError> {
    let mut hosts = vec![plan.host.clone()];
    for h in ["localhost", "127.0.0.1"] {
        if !hosts.iter().any(|x| x == h) {
            hosts.push(h.into());
        }
    }
    let mut client_cas = Vec::new();
    let pki = match &plan.pki {
        None => DevicePki::generate(&hosts)?,
        Some(user) => {
            let id = crate::pki::read_identity(&user.ca_cert, &user.ca_key)?;
            let der = id.chain[0].to_vec();
            let (_, cert) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| credentials(format!("{}: {e}", user.ca_cert.display())))?;
            if !cert.is_ca() {
                return Err(credentials(format!(
                    "{}: not a CA certificate (no basicConstraints CA:TRUE): device_trust.pki.ca_cert must be \
                     the CA the device trusts",
                    user.ca_cert.display()
                )));
            }
            if let Some(c) = &user.client_ca {
                client_cas.extend(crate::pki::read_certs(c)?);
            }
            DevicePki::with_ca(&hosts, &der, id.key.pair)?
        }
    };
    client_cas.insert(0, pki.ca_der.clone());
    let dir = tempfile::Builder::new()
        .prefix("coap-harness-device-trust-")
        .tempdir()
        .map_err(|e| credentials(format!("cannot make a folder for the CA file: {e}")))?;
    let ca = dir.path().join("ca.pem");
    write(&ca, &pki.ca_pem)?;
    let mut client_files = Vec::new();
    if plan.require_client_cert {
        for (kind, stem) in [
            (ClientCert::Valid, "device"),
            (ClientCert::Expired, "device-expired"),
            (ClientCert::OtherCa, "device-other-ca"),
        ] {
            let made = pki.client(kind)?;
            let cert = dir.path().join(format!("{stem}.pem"));
            let key = dir.path().join(format!("{stem}.key"));
            write(&cert, &crate::pki::device::pem(&made.chain[0]))?;
            write(&key, &crate::pki::device::key_pem(&made.key_der))?;
            client_files.push((kind, cert, key));
        }
    }
    Ok(Setup {
        pki,
        ca,
        client_files,
        client_cas,
        _dir: dir,
    })
}

/// Runs every device through every case, in order.
pub async fn run_all(plan: &DeviceTrustPlan) -> Result<Vec<DeviceTrustResult>, EngineError> {
    let setup = setup(plan)?;
    let mut out = Vec::new();
    for device in &plan.devices {
        for case in &plan.cases {
            let o = run_one(plan, device, *case, &setup).await?;
            out.push(judge(device, *case, o));
        }
    }
    Ok(out)
}

async fn start_server(
    plan: &DeviceTrustPlan,
    device: &DeviceSpec,
    setup: &Setup,
    presented: crate::pki::device::Presented,
) -> Result<ServerHandle, EngineError> {
    let pair = rcgen::KeyPair::try_from(presented.key_der.as_slice())
        .map_err(|e| EngineError::Credentials(format!("generated key: {e}")))?;
    let private_key = dtls::crypto::CryptoPrivateKey::from_key_pair(&pair)
        .map_err(|e| EngineError::Credentials(format!("generated key: {e}")))?;
    let certificate = dtls::crypto::Certificate {
        certificate: presented
            .chain
            .into_iter()
            .map(rustls::pki_types::CertificateDer::from)
            .collect(),
        private_key,
    };
    let mut cfg = DtlsServerConfig::new(device.listen, certificate);
    cfg.handshake_timeout = Duration::from_secs(5);
    if plan.require_client_cert {
        cfg.client_auth = crate::server::ClientAuth::Require;
        cfg.client_ca = setup
            .client_cas
            .iter()
            .cloned()
            .map(rustls::pki_types::CertificateDer::from)
            .collect();
    }
    Ok(server::start(ServerConfig {
        bind: device.listen,
        tokens: TokenPolicy::Any,
        response_delay: None,
        plain: false,
        dtls: Some(cfg),
    })
    .await?)
}

/// Fills `{ca}` `{host}` `{port}` `{uri}` in a command template, and `{client_cert}` with `fragment`
/// (its `{cert}` `{key}` filled from `client`), or with nothing when the device gets no certificate.
pub fn fill(
    template: &str,
    ca: &Path,
    host: &str,
    port: u16,
    fragment: Option<&str>,
    client: Option<(&Path, &Path)>,
) -> String {
    let uri = format!("coaps://{host}:{port}/api/v1/{TOKEN}/telemetry");
    let client_cert = match (fragment, client) {
        (Some(f), Some((cert, key))) => f
            .replace("{cert}", &cert.display().to_string())
            .replace("{key}", &key.display().to_string()),
        _ => String::new(),
    };
    template
        .replace("{client_cert}", &client_cert)
        .replace("{ca}", &ca.display().to_string())
        .replace("{host}", host)
        .replace("{port}", &port.to_string())
        .replace("{uri}", &uri)
}

async fn run_one(
    plan: &DeviceTrustPlan,
    device: &DeviceSpec,
    case: DeviceCase,
    setup: &Setup,
) -> Result<Observed, EngineError> {
    let presented = match setup.pki.presented(which(case)) {
        Ok(p) => p,
        // The one certificate that may be impossible to make (a user CA that cannot sign SHA-1): the case
        // is reported as not run, with the reason, instead of stopping the run.
        Err(e) if case == DeviceCase::WeakSignature => {
            return Ok(Observed {
                verdict: DeviceVerdict::NotRun,
                alert: Some(format!("could not make the certificate: {e}")),
                exit: None,
                output: None,
                elapsed: Duration::ZERO,
            })
        }
        Err(e) => return Err(e.into()),
    };
    let ca = setup.ca.as_path();
    let server = start_server(plan, device, setup, presented).await?;
    let addr: SocketAddr = server.dtls_addr().expect("DTLS was configured");
    let started = Instant::now();
    let (exit, output) = match &device.launch {
        Launch::Command { template, timeout } => {
            let files = client_which(case).and_then(|k| {
                setup
                    .client_files
                    .iter()
                    .find(|(kind, _, _)| *kind == k)
                    .map(|(_, c, k)| (c.as_path(), k.as_path()))
            });
            let cmd = fill(
                template,
                ca,
                &plan.host,
                addr.port(),
                device.client_cert.as_deref(),
                files,
            );
            let (exit, output) = run_command(&cmd, *timeout).await;
            (Some(exit), Some(output))
        }
        Launch::Wait(wait) => {
            let client = if plan.require_client_cert {
                "; the device must present its certificate, issued by that CA or pki.client_ca"
            } else {
                ""
            };
            eprintln!(
                "device_trust: case {case} for {}: point the device at coaps://{}:{}/api/v1/<token>/telemetry \
                 (CA file {}{client}); waiting up to {}",
                device.name,
                plan.host,
                addr.port(),
                ca.display(),
                humantime::format_duration(*wait)
            );
            wait_for_device(&server, *wait).await;
            (None, None)
        }
    };
    settle(&server).await;
    let elapsed = started.elapsed();
    let dtls = server.dtls_stats().unwrap_or_default();
    let requests = server.stats().requests;
    let failed = dtls.handshakes_failed();
    let count = |reason: HandshakeFailure| {
        dtls.handshake_failures
            .get(reason.as_str())
            .copied()
            .unwrap_or(0)
    };
    let verdict = if dtls.handshakes_ok > 0 && requests > 0 {
        DeviceVerdict::Accepted
    } else if dtls.handshakes_ok > 0 {
        DeviceVerdict::ConnectedNoRequest
    } else if count(HandshakeFailure::ClientCertRequired) > 0 {
        DeviceVerdict::ClientCertMissing
    } else if count(HandshakeFailure::ClientCertRejected) > 0 {
        DeviceVerdict::ClientCertRejected
    } else if dtls.handshakes_started > 0 {
        DeviceVerdict::Refused
    } else {
        DeviceVerdict::NoConnection
    };
    let alert = match verdict {
        DeviceVerdict::ClientCertMissing => {
            Some("the harness demanded a client certificate; the device sent none".into())
        }
        DeviceVerdict::ClientCertRejected => Some(format!(
            "the harness refused the device's certificate: {}",
            client_cert_reason(dtls.last_failure.as_deref().unwrap_or("no reason recorded"))
        )),
        DeviceVerdict::Refused if dtls.last_alert.is_some() => dtls.last_alert.clone(),
        DeviceVerdict::Refused if failed == 0 => {
            Some("handshake abandoned without an alert".into())
        }
        DeviceVerdict::Refused => dtls.last_failure.clone().map(|f| {
            if dtls.handshake_failures.get("timeout").copied().unwrap_or(0) == failed {
                format!("no alert: the device stopped answering ({f})")
            } else {
                f
            }
        }),
        _ => None,
    };
    server.shutdown().await;
    Ok(Observed {
        verdict,
        alert,
        exit,
        output,
        elapsed,
    })
}

/// Why the server refused a device's certificate, in words that stay the same from run to run (the
/// verifier's own message carries timestamps): the rustls/webpki error is recognised by its wording.
fn client_cert_reason(failure: &str) -> String {
    let f = failure.to_ascii_lowercase();
    if f.contains("expired") {
        "expired".into()
    } else if f.contains("not valid yet") || f.contains("notvalidyet") {
        "not yet valid".into()
    } else if f.contains("unknownissuer") || f.contains("unknown issuer") {
        "unknown issuer (not signed by a CA the harness trusts for devices)".into()
    } else {
        failure.to_string()
    }
}

/// Waits (at most 2 s) until no handshake is in progress on the server.
async fn settle(server: &ServerHandle) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let Some(s) = server.dtls_stats() else { return };
        if s.handshakes_started <= s.handshakes_ok + s.handshakes_failed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A real device: waits until it sent a request, or a handshake failed, or `wait` passed.
async fn wait_for_device(server: &ServerHandle, wait: Duration) {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let s = server.dtls_stats().unwrap_or_default();
        if s.handshakes_failed() > 0 || server.stats().requests > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `cmd` with `sh -c` in its own process group, killing the group after `timeout`. Returns how it
/// ended and the tail of its output (stdout then stderr).
async fn run_command(cmd: &str, timeout: Duration) -> (String, String) {
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return (format!("could not start: {e}"), String::new()),
    };
    let pid = child.id();
    let read = |r: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf).await;
            }
            buf
        })
    };
    let out = read(child.stdout.take().map(|s| Box::new(s) as _));
    let err = read(child.stderr.take().map(|s| Box::new(s) as _));
    let exit = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => match status.code() {
            Some(c) => format!("exit {c}"),
            None => "killed by a signal".into(),
        },
        Ok(Err(e)) => format!("wait failed: {e}"),
        Err(_) => format!(
            "still running after {}: killed",
            humantime::format_duration(timeout)
        ),
    };
    // The whole group: `sh -c` may have left the device's own process behind.
    if let Some(pid) = pid {
        // SAFETY: killpg sends a signal; it touches no memory of ours.
        unsafe {
            libc::killpg(pid as libc::pid_t, libc::SIGKILL);
        }
    }
    let _ = child.wait().await;
    let mut bytes = out.await.unwrap_or_default();
    bytes.extend(err.await.unwrap_or_default());
    let text = String::from_utf8_lossy(&bytes);
    const TAIL: usize = 2000;
    let tail = if text.len() > TAIL {
        let mut start = text.len() - TAIL;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        format!("...{}", &text[start..])
    } else {
        text.into_owned()
    };
    (exit, tail)
}

fn judge(device: &DeviceSpec, case: DeviceCase, o: Observed) -> DeviceTrustResult {
    let expected = device
        .expect
        .get(&case)
        .copied()
        .unwrap_or(case.default_expect());
    let passed = o.verdict == expected;
    let attack = (o.verdict == DeviceVerdict::Accepted
        && case.default_expect() == DeviceVerdict::Refused)
        .then(|| case.attack().to_string());
    DeviceTrustResult {
        device: device.name.clone(),
        case: case.name().into(),
        passed,
        expected,
        verdict: o.verdict,
        alert: o.alert,
        presented: case.presents().into(),
        attack,
        exit: o.exit,
        output: o.output.filter(|s| !s.trim().is_empty()),
        elapsed_ms: o.elapsed.as_millis() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_cert_reasons_are_stable() {
        assert_eq!(
            client_cert_reason("invalid peer certificate: certificate expired: verification time 1796186411 (UNIX), but certificate is not valid after 1796100011 (86400 seconds ago)"),
            "expired"
        );
        assert!(
            client_cert_reason("invalid peer certificate: UnknownIssuer")
                .starts_with("unknown issuer")
        );
        assert_eq!(client_cert_reason("something else"), "something else");
    }

    #[test]
    fn fills_every_placeholder() {
        assert_eq!(
            fill(
                "c -R {ca} {uri} {host}:{port}",
                Path::new("/t/ca.pem"),
                "localhost",
                5684,
                None,
                None
            ),
            "c -R /t/ca.pem coaps://localhost:5684/api/v1/device-trust/telemetry localhost:5684"
        );
        let files = Some((Path::new("/t/d.pem"), Path::new("/t/d.key")));
        let fragment = Some("-c {cert} -j {key}");
        assert_eq!(
            fill(
                "c {client_cert} -R {ca}",
                Path::new("/t/ca.pem"),
                "h",
                1,
                fragment,
                files
            ),
            "c -c /t/d.pem -j /t/d.key -R /t/ca.pem"
        );
        // client_no_cert: the fragment is left out.
        assert_eq!(
            fill(
                "c {client_cert} -R {ca}",
                Path::new("/t/ca.pem"),
                "h",
                1,
                fragment,
                None
            ),
            "c  -R /t/ca.pem"
        );
    }
}
