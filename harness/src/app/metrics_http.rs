//! `GET /metrics` over HTTP for `run --metrics ADDR` (and `serve --metrics ADDR`): the OpenMetrics text a
//! render function gives, for Prometheus, Grafana Agent or `curl`. A minimal HTTP/1.1 responder (one request
//! per connection, `Connection: close`); the exposition itself is `prometheus-client`'s.

use crate::engine::monitor;
use crate::metrics::export::RunMetrics;
use crate::metrics::records::KernelUdp;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a scrape returns, made at scrape time.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Longest request head read, and how long a client may take to send it.
const MAX_HEAD: usize = 8192;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `addr` (port 0: any free port) and serves `/metrics` until the returned task is aborted or dropped
/// with the runtime. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    render: Render,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let render = render.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(READ_TIMEOUT, answer(stream, &render)).await;
            });
        }
    });
    Ok((bound, task))
}

async fn answer(mut stream: TcpStream, render: &Render) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut words = line.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", CONTENT_TYPE, render()),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "coap-harness serves /metrics only\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "GET /metrics\n".to_string(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// A run's scrape: the process's CPU time, resident memory and the host's UDP drops since the run began are
/// read at scrape time, then every metric is encoded.
pub fn run_render(m: Arc<RunMetrics>) -> Render {
    let read_udp = || {
        std::fs::read_to_string("/proc/net/snmp")
            .ok()
            .and_then(|t| monitor::parse_snmp_udp(&t))
    };
    let last: Mutex<(Duration, Option<KernelUdp>)> = Mutex::new((Duration::ZERO, read_udp()));
    Arc::new(move || {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        let cpu = monitor::cpu_now();
        let used = cpu.user + cpu.system;
        m.cpu_seconds
            .inc_by(used.saturating_sub(last.0).as_secs_f64());
        last.0 = last.0.max(used);
        if let Some(rss) = resident_bytes() {
            m.resident_bytes.set(rss as i64);
        }
        if let (Some(before), Some(now)) = (last.1, read_udp()) {
            m.udp_rcvbuf_errors
                .inc_by(now.rcvbuf_errors.saturating_sub(before.rcvbuf_errors));
            m.udp_sndbuf_errors
                .inc_by(now.sndbuf_errors.saturating_sub(before.sndbuf_errors));
            last.1 = Some(now);
        }
        m.encode()
    })
}

/// This process's resident memory, from `/proc/self/statm`.
fn resident_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// The embedded server's scrape (`serve --metrics`): its counters read at scrape time.
pub fn serve_render(server: Arc<crate::server::ServerHandle>) -> Render {
    let m = crate::metrics::export::ServeMetrics::default();
    Arc::new(move || {
        let st = server.stats();
        let dtls = server
            .dtls_stats()
            .map(|d| crate::metrics::export::ServeDtls {
                sessions: d.sessions_active,
                handshakes_ok: d.handshakes_ok,
                failures: d.handshake_failures.into_iter().collect(),
            });
        m.render(&crate::metrics::export::ServeSnapshot {
            datagrams: st.datagrams_received,
            malformed: st.malformed,
            responses: st
                .responses_by_route
                .iter()
                .map(|(r, c, n)| (r.name(), c.to_string(), n))
                .collect(),
            duplicates: st.duplicates,
            observe_registrations: st.observe_registrations,
            observers: st.observers,
            devices: st.devices,
            dtls,
        })
    })
}
