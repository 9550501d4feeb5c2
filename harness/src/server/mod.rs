//! The embedded target server: a ThingsBoard-compatible CoAP device API over plain UDP and, optionally,
//! DTLS (coaps), answering with ThingsBoard's own response codes, and counting every message of every device
//! so a load test can prove what arrived. Both listeners share one endpoint, hence one device store and one
//! table of observers: devices may observe their shared attributes and RPC commands (RFC 7641), which the
//! caller pushes through the [`ServerHandle`].
//!
//! # Layout
//! - `api`: the device API, `/api/v1/{token}/{feature}`: request in, code and body out.
//! - `endpoint`: the message layer (RFC 7252 §4): piggybacked, NON and separate responses, RST, duplicates;
//!   Observe registrations and notifications.
//! - `observe`: the Observe relations (RFC 7641): who observes what, over which transport, sequence numbers.
//! - `dedup`: the bounded (peer, message ID) reply cache for duplicate CONs (§4.5).
//! - `store`: per-device counters and attributes, server-wide counters and their snapshots.
//! - `tokens`: which access tokens name devices.
//! - `udp`: the tokio driver (one socket, one receive loop, timers for delayed responses and notifications).
//! - `separate`: the timer loops of delayed responses and notifications, shared by both transports.
//! - `dtls`: the CoAP-over-DTLS listener (its own demultiplexer of sessions; see its docs).
//!
//! Everything but `udp`, `separate` and the tasks of `dtls` is sans-IO and unit-tested with `now` passed in.
//!
//! ```no_run
//! # async fn demo() -> Result<(), coap_harness::server::ServerError> {
//! use coap_harness::server::{start, ServerConfig, TokenPolicy};
//! let server = start(ServerConfig {
//!     bind: "127.0.0.1:0".parse().unwrap(),
//!     tokens: TokenPolicy::Any,
//!     response_delay: None,
//!     plain: true,
//!     dtls: None,
//! })
//! .await?;
//! println!("listening on {}", server.local_addr());
//! // ... run the load ...
//! println!("{} requests", server.stats().requests);
//! // A device observing its attributes hears about this at once.
//! let mut update = serde_json::Map::new();
//! update.insert("interval".into(), serde_json::json!(30));
//! server.push_shared_attributes("device-token", update);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod dedup;
mod dtls;
mod endpoint;
mod observe;
mod separate;
mod store;
mod tokens;
mod udp;

pub use self::dtls::{ClientAuth, DtlsServerConfig, DtlsStats, HandshakeFailure};
pub use store::{cert_hex, DeviceSnapshot, ResponseCounts, Route, RouteCounts, ServerStats};
pub use tokens::TokenPolicy;

use endpoint::{Endpoint, Notification};
use observe::Link;
use serde_json::{Map, Value};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How to run the server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address of the plain CoAP listener; port 0 picks a free port (see [`ServerHandle::local_addr`]).
    /// Unused when `plain` is false.
    pub bind: SocketAddr,
    /// Which access tokens are devices; others get 4.01.
    pub tokens: TokenPolicy,
    /// When set, every response is sent this long after its request, as a separate response: a CON request
    /// is acknowledged at once with an empty ACK and answered later with a CON (retransmitted per RFC 7252
    /// §4.2 until acknowledged, at most MAX_RETRANSMIT = 4 times); a NON request is answered later with a NON.
    /// This is ThingsBoard's behaviour when it takes longer than 500 ms to answer.
    pub response_delay: Option<Duration>,
    /// Whether to listen for plain CoAP on `bind`; false makes a DTLS-only server.
    pub plain: bool,
    /// The CoAP-over-DTLS listener, if any, answering from the same device store.
    pub dtls: Option<DtlsServerConfig>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The listening address could not be bound (in use, not a local address, permission denied...).
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    /// The UDP socket could not be created or set up (before binding, or when handing it to tokio).
    #[error("cannot create a UDP socket for {addr}: {source}")]
    Socket { addr: SocketAddr, source: io::Error },
    /// The token list file could not be read.
    #[error("cannot read token file {}: {source}", path.display())]
    TokenFile { path: PathBuf, source: io::Error },
    /// A line of the token list file cannot be a token (it holds whitespace, `/` or `?`).
    #[error(
        "token file {}:{line}: `{text}` cannot be a token (whitespace, `/` and `?` cannot stand in a URI path segment)",
        path.display()
    )]
    TokenFileLine {
        path: PathBuf,
        line: usize,
        text: String,
    },
    /// The token list file holds no token, so every request would be rejected.
    #[error("token file {} lists no tokens", path.display())]
    EmptyTokenFile { path: PathBuf },
    /// The DTLS listening address could not be bound.
    #[error("cannot bind the DTLS (coaps) address {addr}: {source}")]
    DtlsBind { addr: SocketAddr, source: io::Error },
    /// The DTLS configuration cannot work: unsupported key, unusable client CA, zero limit...
    #[error("DTLS listener {addr}: {reason}")]
    DtlsConfig { addr: SocketAddr, reason: String },
    /// Neither the plain nor the DTLS listener is enabled.
    #[error("no listener: enable plain CoAP, DTLS, or both")]
    NoListener,
}

/// A running server. Dropping the handle stops it, like [`ServerHandle::shutdown`] without the wait.
pub struct ServerHandle {
    local_addr: SocketAddr,
    shared: Arc<Mutex<Endpoint>>,
    plain: Option<Plain>,
    dtls: Option<self::dtls::Running>,
}

/// The running plain listener.
struct Plain {
    shutdown: oneshot::Sender<()>,
    outbox: mpsc::UnboundedSender<Notification>,
    task: JoinHandle<()>,
    stall: udp::Stall,
}

/// Binds the enabled listeners (plain on `config.bind`, DTLS on its own address) and serves on the current
/// tokio runtime until the handle is shut down or dropped. Nothing is bound if any part of the
/// configuration is wrong.
pub async fn start(config: ServerConfig) -> Result<ServerHandle, ServerError> {
    if !config.plain && config.dtls.is_none() {
        return Err(ServerError::NoListener);
    }
    let dtls = config.dtls.as_ref().map(self::dtls::bind).transpose()?;
    let plain = if config.plain {
        let socket = udp::bind(config.bind)?;
        let local_addr = socket.local_addr().map_err(|source| ServerError::Socket {
            addr: config.bind,
            source,
        })?;
        Some((socket, local_addr))
    } else {
        None
    };
    let mut endpoint = Endpoint::new(
        config.tokens,
        config.response_delay.is_some(),
        fastrand::u64(..),
    );
    if let Some(d) = &config.dtls {
        endpoint.register_certs(d.device_certs.iter().cloned());
    }
    let shared = Arc::new(Mutex::new(endpoint));
    let dtls = dtls.map(|bound| bound.spawn(shared.clone(), config.response_delay));
    let mut local_addr = dtls.as_ref().map(|d| d.local_addr);
    let plain = plain.map(|(socket, addr)| {
        local_addr = Some(addr);
        let (shutdown, stop) = oneshot::channel();
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        let stall = udp::Stall::default();
        let task = tokio::spawn(udp::run(
            Arc::new(socket),
            shared.clone(),
            config.response_delay,
            outbox_rx,
            stop,
            stall.clone(),
        ));
        Plain {
            shutdown,
            outbox,
            task,
            stall,
        }
    });
    Ok(ServerHandle {
        local_addr: local_addr.expect("at least one listener"),
        shared,
        plain,
        dtls,
    })
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("dtls_addr", &self.dtls_addr())
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// Makes the plain listener stop reading for `length` from `at` (a testing aid: a stalled server, to
    /// show what coordinated-omission correction does). Datagrams wait in the socket buffer meanwhile.
    pub fn stall(&self, at: std::time::Instant, length: Duration) {
        if let Some(p) = &self.plain {
            *p.stall.lock().unwrap_or_else(|e| e.into_inner()) = Some((at, at + length));
        }
    }

    /// The plain CoAP address (with the port chosen when binding port 0); for a DTLS-only server, the DTLS
    /// address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The DTLS (coaps) address, when that listener is enabled.
    pub fn dtls_addr(&self) -> Option<SocketAddr> {
        self.dtls.as_ref().map(|d| d.local_addr)
    }

    /// Behaves like a restarted server for DTLS clients: every DTLS session is forgotten at once, without a
    /// close_notify, and the DTLS listener drops what arrives for `down`; the plain listener stops reading
    /// for `down` (its datagrams wait in the socket buffer). The device store (what a ThingsBoard keeps in
    /// its database) survives. Clients find out when their records go unanswered, and must handshake again.
    /// Happens at `at` (now, if that has passed).
    pub fn restart_dtls_at(&self, at: std::time::Instant, down: Duration) {
        if let Some(d) = &self.dtls {
            d.restart_at(at, down);
        }
        if !down.is_zero() {
            self.stall(at, down);
        }
    }

    /// A snapshot of the DTLS listener's counters (handshakes, sessions, drops), when it is enabled.
    pub fn dtls_stats(&self) -> Option<DtlsStats> {
        self.dtls.as_ref().map(|d| d.stats())
    }

    /// A snapshot of the server-wide counters.
    pub fn stats(&self) -> ServerStats {
        udp::lock(&self.shared).stats()
    }

    /// A snapshot of one device, if its token was ever accepted.
    pub fn device(&self, token: &str) -> Option<DeviceSnapshot> {
        udp::lock(&self.shared).device(token)
    }

    /// Snapshots of every device seen, sorted by token.
    pub fn devices(&self) -> Vec<DeviceSnapshot> {
        udp::lock(&self.shared).devices()
    }

    /// Sets a shared (server-side) attribute of a device, as a ThingsBoard user would; GET attributes returns
    /// it under `"shared"`. `false` when the token policy rejects `token`.
    pub fn set_shared_attribute(&self, token: &str, key: &str, value: serde_json::Value) -> bool {
        udp::lock(&self.shared).set_shared_attribute(token, key, value)
    }

    /// Sets shared attributes of a device (merged into those it has; created if the token policy accepts
    /// `token`) and notifies the device's attribute observers: each gets a 2.05 notification with the
    /// attributes given, `{"key":value,..}`, and the next Observe number of its relation, as a CON when it
    /// registered with a CON (retransmitted until acknowledged; an RST or a timeout ends the relation), a
    /// NON otherwise. Returns how many notifications were handed to the transports; 0 when nobody
    /// observes, `attributes` is empty or the token is rejected.
    pub fn push_shared_attributes(&self, token: &str, attributes: Map<String, Value>) -> usize {
        let notifications = udp::lock(&self.shared).push_shared_attributes(token, attributes);
        self.dispatch(notifications)
    }

    /// Sends an RPC command to the device's RPC observers, as a 2.05 notification
    /// `{"id":N,"method":..,"params":..}` (framed like attribute notifications). Returns the request ID
    /// (per device, counting from 0), or `None` if nobody observes the device's RPC. The device answers
    /// with `POST /api/v1/{token}/rpc/{id}`; see [`ServerHandle::rpc_reply`].
    pub fn push_rpc(&self, token: &str, method: &str, params: Value) -> Option<u64> {
        let (id, notifications) = udp::lock(&self.shared).push_rpc(token, method, params)?;
        self.dispatch(notifications);
        Some(id)
    }

    /// The device's reply to RPC `id` (its JSON object body), once it arrived. The last 1,024 RPC
    /// commands of each device are remembered.
    pub fn rpc_reply(&self, token: &str, id: u64) -> Option<Value> {
        udp::lock(&self.shared).rpc_reply(token, id)
    }

    /// Current observers (Observe relations, attribute and RPC, over both transports).
    pub fn observers(&self) -> usize {
        udp::lock(&self.shared).observers()
    }

    /// Hands each notification to the driver of its observer's transport; returns how many were taken.
    fn dispatch(&self, notifications: Vec<Notification>) -> usize {
        let mut sent = 0;
        for n in notifications {
            let outbox = match n.link {
                Link::Plain => self.plain.as_ref().map(|p| &p.outbox),
                Link::Dtls => self.dtls.as_ref().map(|d| &d.outbox),
            };
            let refused = match outbox {
                Some(outbox) => outbox.send(n).err().map(|e| e.0),
                None => Some(n),
            };
            match refused {
                None => sent += 1,
                Some(n) => udp::lock(&self.shared).notification_undeliverable(&n, false),
            }
        }
        sent
    }

    /// Stops receiving, abandons delayed responses and notifications not yet sent, ends every DTLS session
    /// without a close_notify, and waits for the receive loops to end.
    pub async fn shutdown(self) {
        let mut tasks = Vec::new();
        if let Some(p) = self.plain {
            let _ = p.shutdown.send(());
            tasks.push(p.task);
        }
        if let Some(d) = self.dtls {
            let _ = d.shutdown.send(());
            tasks.push(d.task);
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}
