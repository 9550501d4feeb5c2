//! Shared helpers for the integration tests: plans from YAML text, free ports, independent peers.
#![allow(dead_code)]

pub mod openssl;
pub mod pki;
pub mod refuser;
pub mod relay;

use coap_harness::app::{self as engine, RunOptions, RunOutput};
use coap_harness::scenario::{self, Overrides, RunPlan};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A validated plan from scenario text.
pub fn plan(yaml: &str) -> RunPlan {
    scenario::parse(
        yaml,
        Path::new("test.yaml"),
        Path::new("."),
        "test",
        &Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("test scenario invalid: {e}"))
}

/// Runs a plan with the library API.
pub async fn run(plan: RunPlan) -> RunOutput {
    engine::run(Arc::new(plan), RunOptions::default())
        .await
        .expect("run starts")
}

/// A UDP port nothing listens on right now (bound, then released).
/// Runs `plan` and stops it after `after`, as a stop signal would (the run's cancellation token).
pub async fn run_stopped_after(plan: RunPlan, after: Duration) -> RunOutput {
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        stop.cancel();
    });
    engine::run(
        Arc::new(plan),
        RunOptions {
            cancel,
            ..Default::default()
        },
    )
    .await
    .expect("run")
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether an executable is on PATH.
pub fn have(bin: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Independent peers are required in CI (`ci/test.sh` installs them); locally a missing one skips loudly.
pub fn require(bin: &str) -> bool {
    if have(bin) {
        return true;
    }
    let from = match bin {
        "chromium" => "apt-get install chromium",
        "kubernetes-validate" => "python3 -m pip install kubernetes-validate",
        "check-jsonschema" => "python3 -m pip install check-jsonschema",
        _ => "apt-get install libcoap3-bin",
    };
    if std::env::var_os("CI").is_some() {
        panic!("{bin} is required in CI ({from}; ci/test.sh installs it)");
    }
    eprintln!("SKIPPED: {bin} not installed ({from})");
    false
}

/// Whether python3 can import `module` (from PyPI package `package`): required in CI (`ci/test.sh` installs
/// it); locally a missing one skips loudly.
pub fn require_python(module: &str, package: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("python3 module {module} is required in CI (python3 -m pip install {package}; ci/test.sh installs it)");
    }
    eprintln!("SKIPPED: python3 module {module} not installed (python3 -m pip install {package})");
    false
}

/// Waits until a CoAP server answers a CON GET on `addr`, or panics after `limit`.
pub fn wait_for_coap(addr: SocketAddr, limit: Duration) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let ping = [0x40, 0x01, 0x12, 0x34]; // CON GET, no path
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        let _ = sock.send_to(&ping, addr);
        if sock.recv_from(&mut buf).is_ok() {
            return;
        }
    }
    panic!("no CoAP server answered on {addr} within {limit:?}");
}

/// A child process killed when dropped (unless taken back with [`Peer::take`]).
pub struct Peer(Option<Child>);

impl Peer {
    pub fn new(child: Child) -> Self {
        Peer(Some(child))
    }

    pub fn id(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }

    /// The child, no longer killed on drop.
    pub fn take(mut self) -> Child {
        self.0.take().expect("running")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts libcoap's plain server with dynamic resources on a free port.
pub fn libcoap_server() -> (Peer, SocketAddr) {
    let port = free_udp_port();
    let child = Command::new("coap-server-notls")
        .args(["-A", "127.0.0.1", "-p", &port.to_string(), "-d", "100000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start coap-server-notls");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let peer = Peer::new(child);
    wait_for_coap(addr, Duration::from_secs(10));
    (peer, addr)
}

/// Asserts `sent == sum of outcomes` for every phase and the total.
pub fn assert_accounted(r: &coap_harness::report::Report) {
    for p in &r.phases {
        assert_eq!(
            p.requests.sent,
            p.requests.outcomes.total(),
            "phase {}",
            p.name
        );
    }
    assert_eq!(r.total.sent, r.total.outcomes.total());
    assert_eq!(
        r.total.sent,
        r.phases.iter().map(|p| p.requests.sent).sum::<u64>()
    );
    let series: u64 = r.timeseries.iter().map(|p| p.requests).sum();
    assert_eq!(series, r.total.sent, "the time series covers every request");
}

/// Two consecutive free UDP ports P, P+1 (libcoap serves DTLS on P+1 when started with -p P).
pub fn free_udp_port_pair() -> u16 {
    for _ in 0..100 {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < 65535 && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no pair of free UDP ports");
}

/// Starts libcoap's OpenSSL server with a certificate; returns it and its DTLS address (port P+1).
pub fn libcoap_dtls_server(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> (Peer, SocketAddr) {
    let port = free_udp_port_pair();
    let mut cmd = Command::new("coap-server-openssl");
    cmd.args(["-A", "127.0.0.1", "-p", &port.to_string(), "-d", "100000"])
        .arg("-c")
        .arg(cert)
        .arg("-j")
        .arg(key);
    if let Some(ca) = client_ca {
        cmd.arg("-C").arg(ca);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start coap-server-openssl");
    let peer = Peer::new(child);
    wait_for_coap(
        format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(10),
    );
    (peer, format!("127.0.0.1:{}", port + 1).parse().unwrap())
}

/// Runs a program to its end or until `limit` (then kills it); returns its stdout and stderr.
pub fn run_bounded(bin: &str, args: &[String], limit: Duration) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("start {bin}: {e}"));
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    format!("{}{}", read(&out), read(&err))
}

/// Runs a command to completion within a bound (panics past it), returning stdout and stderr together.
pub fn run_to_end(cmd: &mut Command, bound: Duration) -> String {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + bound;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} ran past {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The trust-matrix scenario (`scenarios/trust-matrix.yaml`), validated.
pub fn matrix_plan() -> coap_harness::scenario::RunPlan {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/trust-matrix.yaml");
    coap_harness::scenario::load(&file, &Default::default()).unwrap()
}
