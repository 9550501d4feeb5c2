//! The tokio driver of the fault model: a UDP proxy devices send to in place of the target. Each device
//! (source address) gets its own upstream socket, so the target sees one peer per device, as without the
//! proxy; every datagram, each way, goes through that direction's [`FaultModel`]. With `rebind_every`, a
//! device's upstream socket is replaced by a new one (a new source port) when it is that old: what a NAT
//! rebinding looks like to the server. Replies still in flight to the old port are lost with it.

use super::model::{FaultModel, FaultStats};
use super::FaultPlan;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the proxy did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProxyStats {
    pub to_target: FaultStats,
    pub to_devices: FaultStats,
    /// Upstream sockets replaced (NAT rebindings).
    pub rebinds: u64,
    /// Devices (source addresses) seen.
    pub devices: u64,
}

impl std::fmt::Display for ProxyStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "to target {}; to devices {}; {} source-port rebindings",
            self.to_target, self.to_devices, self.rebinds
        )
    }
}

struct Shared {
    up: Mutex<FaultModel>,
    down: Mutex<FaultModel>,
    rebinds: Mutex<u64>,
}

/// A running proxy; [`FaultProxy::stop`] ends it and returns its counters.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: JoinHandle<u64>,
}

struct Session {
    upstream: Arc<UdpSocket>,
    since: Instant,
    reader: JoinHandle<()>,
}

impl FaultProxy {
    /// Binds the proxy on the loopback (or unspecified) address of `target`'s family and starts forwarding.
    pub async fn start(target: SocketAddr, plan: &FaultPlan) -> std::io::Result<FaultProxy> {
        let bind_ip = local_ip(target);
        let front = Arc::new(UdpSocket::bind((bind_ip, 0)).await?);
        let addr = front.local_addr()?;
        let shared = Arc::new(Shared {
            up: Mutex::new(FaultModel::new(plan.to_target, plan.seed)),
            down: Mutex::new(FaultModel::new(
                plan.to_devices,
                plan.seed ^ 0x9e37_79b9_7f4a_7c15,
            )),
            rebinds: Mutex::new(0),
        });
        let cancel = CancellationToken::new();
        let task = tokio::spawn(forward(
            front,
            target,
            bind_ip,
            plan.rebind_every,
            shared.clone(),
            cancel.clone(),
        ));
        Ok(FaultProxy {
            addr,
            shared,
            cancel,
            task,
        })
    }

    /// Where devices send instead of the target.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Counters so far.
    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            to_target: self.shared.up.lock().expect("model").stats(),
            to_devices: self.shared.down.lock().expect("model").stats(),
            rebinds: *self.shared.rebinds.lock().expect("rebinds"),
            devices: 0,
        }
    }

    /// Stops forwarding and returns the final counters.
    pub async fn stop(self) -> ProxyStats {
        self.cancel.cancel();
        let stats = self.stats();
        let devices = self.task.await.unwrap_or(0);
        ProxyStats { devices, ..stats }
    }
}

fn local_ip(target: SocketAddr) -> IpAddr {
    match target.ip() {
        ip if ip.is_loopback() => ip,
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// Where a datagram goes: the target (through a device's upstream socket) or a device (from the front).
#[derive(Clone)]
enum Dest {
    Target(Arc<UdpSocket>),
    Device(Arc<UdpSocket>, SocketAddr),
}

impl Dest {
    fn try_send(&self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Dest::Target(s) => s.try_send(data),
            Dest::Device(s, to) => s.try_send_to(data, *to),
        }
    }

    async fn send(&self, data: &[u8]) {
        let _ = match self {
            Dest::Target(s) => s.send(data).await,
            Dest::Device(s, to) => s.send_to(data, *to).await,
        };
    }
}

/// Sends one copy of `data` after each delay the model decided: at once when the delay is zero (so order is
/// kept), otherwise from a task that waits.
fn deliver(delays: Vec<Duration>, data: &[u8], dest: &Dest) {
    for d in delays {
        if d.is_zero() && dest.try_send(data).is_ok() {
            continue;
        }
        let (data, dest) = (data.to_vec(), dest.clone());
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            dest.send(&data).await;
        });
    }
}

/// A new upstream socket (a new source port, as the target sees it) connected to `target`.
async fn bind_upstream(ip: IpAddr, target: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
    let s = UdpSocket::bind((ip, 0)).await?;
    s.connect(target).await?;
    Ok(Arc::new(s))
}

async fn forward(
    front: Arc<UdpSocket>,
    target: SocketAddr,
    bind_ip: IpAddr,
    rebind_every: Option<Duration>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> u64 {
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let mut seen = 0u64;
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, device) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = front.recv_from(&mut buf) => match r {
                Ok(x) => x,
                // ICMP errors from a device that went away surface here on Linux; keep serving the others.
                Err(_) => continue,
            },
        };
        let stale = match (sessions.get(&device), rebind_every) {
            (Some(s), Some(every)) => s.since.elapsed() >= every,
            _ => false,
        };
        if stale {
            if let Some(old) = sessions.remove(&device) {
                old.reader.abort();
                *shared.rebinds.lock().expect("rebinds") += 1;
            }
        }
        let upstream = match sessions.get(&device) {
            Some(s) => s.upstream.clone(),
            None => {
                let Ok(upstream) = bind_upstream(bind_ip, target).await else {
                    continue;
                };
                if !stale {
                    seen += 1;
                }
                let reader = tokio::spawn(backward(
                    upstream.clone(),
                    front.clone(),
                    device,
                    shared.clone(),
                    cancel.clone(),
                ));
                sessions.insert(
                    device,
                    Session {
                        upstream: upstream.clone(),
                        since: Instant::now(),
                        reader,
                    },
                );
                upstream
            }
        };
        let delays = shared.up.lock().expect("model").decide();
        deliver(delays, &buf[..n], &Dest::Target(upstream));
    }
    for (_, s) in sessions {
        s.reader.abort();
    }
    seen
}

/// Replies from the target to one device's upstream socket, through the to-devices model.
async fn backward(
    upstream: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    device: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = tokio::select! {
            _ = cancel.cancelled() => return,
            r = upstream.recv(&mut buf) => match r {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        let delays = shared.down.lock().expect("model").decide();
        deliver(delays, &buf[..n], &Dest::Device(front.clone(), device));
    }
}
