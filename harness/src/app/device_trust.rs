//! Device-side trust cases (`device_trust:`): for each device and case, a DTLS-only embedded server on its
//! own port presents the case's certificate, the device command runs (bounded by its timeout, its process
//! group killed after) or a real device is waited for, and what the server saw becomes the verdict.

use super::EngineError;
use crate::pki::device::{DeviceCert, DevicePki};
use crate::report::model::DeviceTrustResult;
use crate::scenario::device_trust::{
    DeviceCase, DeviceSpec, DeviceTrustPlan, DeviceVerdict, Launch,
};
use crate::server::{self, DtlsServerConfig, ServerConfig, ServerHandle, TokenPolicy};
use std::net::SocketAddr;
use std::path::Path;
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

fn which(case: DeviceCase) -> DeviceCert {
    match case {
        DeviceCase::Valid => DeviceCert::Valid,
        DeviceCase::Expired => DeviceCert::Expired,
        DeviceCase::NotYetValid => DeviceCert::NotYetValid,
        DeviceCase::WrongHost => DeviceCert::WrongHost,
        DeviceCase::SelfSigned => DeviceCert::SelfSigned,
        DeviceCase::UnknownCa => DeviceCert::UnknownCa,
        DeviceCase::WrongKeyUsage => DeviceCert::WrongKeyUsage,
        DeviceCase::CaAsLeaf => DeviceCert::CaAsLeaf,
        DeviceCase::IncompleteChain => DeviceCert::IncompleteChain,
    }
}

/// Runs every device through every case, in order.
pub async fn run_all(plan: &DeviceTrustPlan) -> Result<Vec<DeviceTrustResult>, EngineError> {
    let mut hosts = vec![plan.host.clone()];
    for h in ["localhost", "127.0.0.1"] {
        if !hosts.iter().any(|x| x == h) {
            hosts.push(h.into());
        }
    }
    let pki = DevicePki::generate(&hosts)?;
    let dir = tempfile::Builder::new()
        .prefix("coap-harness-device-trust-")
        .tempdir()
        .map_err(|e| {
            EngineError::Credentials(format!("cannot make a folder for the CA file: {e}"))
        })?;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem)
        .map_err(|e| EngineError::Credentials(format!("cannot write {}: {e}", ca.display())))?;
    let mut out = Vec::new();
    for device in &plan.devices {
        for case in &plan.cases {
            let o = run_one(plan, device, *case, &pki, &ca).await?;
            out.push(judge(device, *case, o));
        }
    }
    Ok(out)
}

async fn start_server(
    device: &DeviceSpec,
    pki: &DevicePki,
    case: DeviceCase,
) -> Result<ServerHandle, EngineError> {
    let presented = pki.presented(which(case))?;
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
    Ok(server::start(ServerConfig {
        bind: device.listen,
        tokens: TokenPolicy::Any,
        response_delay: None,
        plain: false,
        dtls: Some(cfg),
    })
    .await?)
}

/// Fills `{ca}` `{host}` `{port}` `{uri}` in a command template.
pub fn fill(template: &str, ca: &Path, host: &str, port: u16) -> String {
    let uri = format!("coaps://{host}:{port}/api/v1/{TOKEN}/telemetry");
    template
        .replace("{ca}", &ca.display().to_string())
        .replace("{host}", host)
        .replace("{port}", &port.to_string())
        .replace("{uri}", &uri)
}

async fn run_one(
    plan: &DeviceTrustPlan,
    device: &DeviceSpec,
    case: DeviceCase,
    pki: &DevicePki,
    ca: &Path,
) -> Result<Observed, EngineError> {
    let server = start_server(device, pki, case).await?;
    let addr: SocketAddr = server.dtls_addr().expect("DTLS was configured");
    let started = Instant::now();
    let (exit, output) = match &device.launch {
        Launch::Command { template, timeout } => {
            let cmd = fill(template, ca, &plan.host, addr.port());
            let (exit, output) = run_command(&cmd, *timeout).await;
            (Some(exit), Some(output))
        }
        Launch::Wait(wait) => {
            eprintln!(
                "device_trust: case {case} for {}: point the device at coaps://{}:{}/api/v1/<token>/telemetry \
                 (CA file {}); waiting up to {}",
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
    let verdict = if dtls.handshakes_ok > 0 && requests > 0 {
        DeviceVerdict::Accepted
    } else if dtls.handshakes_ok > 0 {
        DeviceVerdict::ConnectedNoRequest
    } else if dtls.handshakes_started > 0 {
        DeviceVerdict::Refused
    } else {
        DeviceVerdict::NoConnection
    };
    let alert = match verdict {
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
    let attack = (o.verdict == DeviceVerdict::Accepted && case != DeviceCase::Valid)
        .then(|| case.attack().to_string());
    DeviceTrustResult {
        device: device.name.clone(),
        case: case.name().into(),
        passed,
        expected: expected.name().into(),
        verdict: o.verdict.name().into(),
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
    fn fills_every_placeholder() {
        assert_eq!(
            fill(
                "c -R {ca} {uri} {host}:{port}",
                Path::new("/t/ca.pem"),
                "localhost",
                5684
            ),
            "c -R /t/ca.pem coaps://localhost:5684/api/v1/device-trust/telemetry localhost:5684"
        );
    }
}
