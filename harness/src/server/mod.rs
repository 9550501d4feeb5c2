//! The embedded target server: a ThingsBoard-compatible CoAP device API over plain UDP, answering with
//! ThingsBoard's own response codes, and counting every message of every device so a load test can prove what
//! arrived.
//!
//! # Layout
//! - `api`: the device API, `/api/v1/{token}/{feature}`: request in, code and body out.
//! - `endpoint`: the message layer (RFC 7252 §4): piggybacked, NON and separate responses, RST, duplicates.
//! - `dedup`: the bounded (peer, message ID) reply cache for duplicate CONs (§4.5).
//! - `store`: per-device counters and attributes, server-wide counters and their snapshots.
//! - `tokens`: which access tokens name devices.
//! - `udp`: the tokio driver (one socket, one receive loop, timers for delayed responses).
//!
//! Everything but `udp` is sans-IO and unit-tested with `now` passed in.
//!
//! ```no_run
//! # async fn demo() -> Result<(), coap_harness::server::ServerError> {
//! use coap_harness::server::{start, ServerConfig, TokenPolicy};
//! let server = start(ServerConfig {
//!     bind: "127.0.0.1:0".parse().unwrap(),
//!     tokens: TokenPolicy::Any,
//!     response_delay: None,
//! })
//! .await?;
//! println!("listening on {}", server.local_addr());
//! // ... run the load ...
//! println!("{} requests", server.stats().requests);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod dedup;
mod endpoint;
mod store;
mod tokens;
mod udp;

pub use store::{DeviceSnapshot, ResponseCounts, ServerStats};
pub use tokens::TokenPolicy;

use endpoint::Endpoint;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How to run the server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port (see [`ServerHandle::local_addr`]).
    pub bind: SocketAddr,
    /// Which access tokens are devices; others get 4.01.
    pub tokens: TokenPolicy,
    /// When set, every response is sent this long after its request, as a separate response: a CON request
    /// is acknowledged at once with an empty ACK and answered later with a CON (retransmitted per RFC 7252
    /// §4.2 until acknowledged, at most MAX_RETRANSMIT = 4 times); a NON request is answered later with a NON.
    /// This is ThingsBoard's behaviour when it takes longer than 500 ms to answer.
    pub response_delay: Option<Duration>,
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
}

/// A running server. Dropping the handle stops it, like [`ServerHandle::shutdown`] without the wait.
pub struct ServerHandle {
    local_addr: SocketAddr,
    shared: Arc<Mutex<Endpoint>>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Binds `config.bind` and serves on the current tokio runtime until the handle is shut down or dropped.
pub async fn start(config: ServerConfig) -> Result<ServerHandle, ServerError> {
    let socket = udp::bind(config.bind)?;
    let local_addr = socket.local_addr().map_err(|source| ServerError::Socket {
        addr: config.bind,
        source,
    })?;
    let shared = Arc::new(Mutex::new(Endpoint::new(
        config.tokens,
        config.response_delay.is_some(),
        fastrand::u64(..),
    )));
    let (shutdown, stop) = oneshot::channel();
    let task = tokio::spawn(udp::run(
        Arc::new(socket),
        shared.clone(),
        config.response_delay,
        stop,
    ));
    Ok(ServerHandle {
        local_addr,
        shared,
        shutdown,
        task,
    })
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The address the server listens on (with the port chosen when binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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

    /// Stops receiving, abandons delayed responses not yet sent, and waits for the receive loop to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}
