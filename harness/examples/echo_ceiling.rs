//! The loopback ceiling for `ci/bench.sh` (issue #5, item a): a minimal tokio UDP echo pair with as many client
//! sockets as the harness has devices. Each client socket does closed-loop ping-pong of one small datagram with
//! one server socket; the server echoes. Prints one JSON line: round trips/s and CPU microseconds per round trip
//! (getrusage RUSAGE_SELF, user + system, over the measured window only).
//!
//!     cargo run --release --example echo_ceiling -- --sockets 1000 --secs 5
//!     cargo run --release --example echo_ceiling -- --mode server --addr 127.0.0.1:47000 --secs 8 &
//!     cargo run --release --example echo_ceiling -- --mode client --addr 127.0.0.1:47000 --sockets 1000 --secs 5
//!
//! `both` runs server and clients in one process on a tokio multi-thread runtime, as the harness runs with its
//! embedded server; `server` and `client` split them so the client's CPU per round trip can be compared with the
//! harness's CPU per request. Every loop is bounded by `--secs` and by `--max` round trips per socket.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

const USAGE: &str =
    "usage: echo_ceiling [--mode both|server|client] [--addr 127.0.0.1:PORT] [--sockets N] \
[--secs S] [--payload BYTES] [--threads T] [--max ROUND_TRIPS_PER_SOCKET]";

struct Opts {
    mode: String,
    addr: SocketAddr,
    sockets: usize,
    secs: f64,
    payload: usize,
    threads: Option<usize>,
    max: u64,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        mode: "both".into(),
        addr: "127.0.0.1:0".parse().unwrap(),
        sockets: 1000,
        secs: 5.0,
        payload: 60,
        threads: None,
        max: 100_000_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let value = args
            .next()
            .ok_or(format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--mode" => o.mode = value.clone(),
            "--addr" => o.addr = value.parse().map_err(|e| bad(&e))?,
            "--sockets" => o.sockets = value.parse().map_err(|e| bad(&e))?,
            "--secs" => o.secs = value.parse().map_err(|e| bad(&e))?,
            "--payload" => o.payload = value.parse().map_err(|e| bad(&e))?,
            "--threads" => o.threads = Some(value.parse().map_err(|e| bad(&e))?),
            "--max" => o.max = value.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if !["both", "server", "client"].contains(&o.mode.as_str()) {
        return Err(format!(
            "--mode {}: expected both, server or client",
            o.mode
        ));
    }
    if !(o.secs > 0.0 && o.secs <= 600.0) || o.sockets == 0 || o.payload == 0 {
        return Err("--secs must be in (0, 600], --sockets and --payload above 0".into());
    }
    Ok(o)
}

/// User + system CPU of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn udp(bind: SocketAddr, buffer: usize) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    // Capped by net.core.rmem_max / wmem_max; enough that a burst from every client is not dropped.
    s.set_recv_buffer_size(buffer)?;
    s.set_send_buffer_size(buffer)?;
    s.set_nonblocking(true)?;
    s.bind(&bind.into())?;
    UdpSocket::from_std(s.into())
}

async fn serve(sock: UdpSocket, stop: Arc<AtomicBool>, echoed: Arc<AtomicU64>) {
    let mut buf = [0u8; 2048];
    let mut n_echoed = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Wake up now and then to notice `stop` even when no client is left.
        let Ok(Ok((n, from))) =
            tokio::time::timeout(Duration::from_millis(200), sock.recv_from(&mut buf)).await
        else {
            continue;
        };
        if sock.send_to(&buf[..n], from).await.is_ok() {
            n_echoed += 1;
            if n_echoed % 1024 == 0 {
                echoed.store(n_echoed, Ordering::Relaxed);
            }
        }
    }
    echoed.store(n_echoed, Ordering::Relaxed);
}

async fn ping(
    sock: UdpSocket,
    payload: Vec<u8>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    max: u64,
) {
    let mut buf = [0u8; 2048];
    let mut n = 0u64;
    while n < max && !stop.load(Ordering::Relaxed) {
        if sock.send(&payload).await.is_err() {
            break;
        }
        // No timer on the hot path: a lost datagram stalls this socket, which the report counts.
        if sock.recv(&mut buf).await.is_err() {
            break;
        }
        n += 1;
        done.store(n, Ordering::Relaxed);
    }
}

fn total(counters: &[Arc<AtomicU64>]) -> u64 {
    counters.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}

async fn run(o: Opts) -> Result<String, String> {
    let io = |what: &'static str| move |e: std::io::Error| format!("{what}: {e}");
    let stop = Arc::new(AtomicBool::new(false));
    let window = Duration::from_secs_f64(o.secs);
    let echoed = Arc::new(AtomicU64::new(0));
    let mut server_addr = o.addr;
    if o.mode != "client" {
        let sock = udp(o.addr, 4 << 20).map_err(io("binding the server socket"))?;
        server_addr = sock.local_addr().map_err(io("server address"))?;
        tokio::spawn(serve(sock, stop.clone(), echoed.clone()));
    }
    if o.mode == "server" {
        eprintln!("echo_ceiling: serving on {server_addr} for {:.1}s", o.secs);
        let (c0, t0) = (cpu_time(), Instant::now());
        tokio::time::sleep(window).await;
        stop.store(true, Ordering::Relaxed);
        let (cpu, wall) = (cpu_time() - c0, t0.elapsed());
        let n = echoed.load(Ordering::Relaxed);
        return Ok(format!(
            r#"{{"mode":"server","addr":"{server_addr}","secs":{:.3},"echoed":{n},"cpu_s":{:.3},"cpu_us_per_echo":{:.2}}}"#,
            wall.as_secs_f64(),
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
        ));
    }
    let payload: Vec<u8> = (0..o.payload).map(|i| b'a' + (i % 26) as u8).collect();
    let mut counters = Vec::with_capacity(o.sockets);
    let mut socks = Vec::with_capacity(o.sockets);
    let local: SocketAddr = (server_addr.ip(), 0).into();
    for _ in 0..o.sockets {
        let s = udp(local, 256 << 10).map_err(io("binding a client socket"))?;
        s.connect(server_addr).await.map_err(io("connecting"))?;
        socks.push(s);
    }
    let (c0, t0) = (cpu_time(), Instant::now());
    let mut tasks = Vec::with_capacity(o.sockets);
    for s in socks {
        let done = Arc::new(AtomicU64::new(0));
        counters.push(done.clone());
        tasks.push(tokio::spawn(ping(
            s,
            payload.clone(),
            stop.clone(),
            done,
            o.max,
        )));
    }
    // Bounded: the window, then a snapshot one second (or a fifth of the window) before its end to spot stalls.
    let tail = Duration::from_secs_f64((o.secs / 5.0).min(1.0));
    tokio::time::sleep(window - tail).await;
    let before: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    tokio::time::sleep(tail).await;
    let (n, cpu, wall) = (total(&counters), cpu_time() - c0, t0.elapsed());
    stop.store(true, Ordering::Relaxed);
    let stalled = counters
        .iter()
        .zip(&before)
        .filter(|(c, b)| c.load(Ordering::Relaxed) == **b)
        .count();
    for t in tasks {
        t.abort();
    }
    let secs = wall.as_secs_f64();
    Ok(format!(
        r#"{{"mode":"{}","sockets":{},"payload":{},"threads":{},"secs":{secs:.3},"round_trips":{n},"rt_per_s":{:.0},"cpu_s":{:.3},"cpu_us_per_rt":{:.2},"stalled_sockets":{stalled}}}"#,
        o.mode,
        o.sockets,
        o.payload,
        o.threads.map_or("null".into(), |t| t.to_string()),
        n as f64 / secs,
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
    ))
}

fn main() -> std::process::ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = o.threads {
        rt.worker_threads(t);
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("echo_ceiling: cannot build the runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let out = rt.block_on(run(o));
    // Tasks blocked in recv are dropped with the runtime.
    rt.shutdown_timeout(Duration::from_millis(200));
    match out {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo_ceiling: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
