//! The embedded server's CoAP-over-DTLS (coaps) listener: one UDP socket demultiplexed by peer address into
//! sessions of our own, each a `dtls::conn::DTLSConn` over a virtual connection, instead of the crate's
//! `DTLSListener`, which handshakes one peer at a time, never forgets a peer (a client restarting on the same
//! port cannot reconnect) and never times a handshake out.
//!
//! # Layout
//! - `config`: [`DtlsServerConfig`] and its translation into the crate's per-session configuration.
//! - `record`: what the demultiplexer reads of a datagram (is it a ClientHello, with which client random;
//!   the connection ID of a `tls12_cid` record).
//! - `table`: the per-peer session table, sans-IO: routing (by connection ID, then address), limits, idle
//!   eviction, generations, and a session's move to its client's new address (RFC 9146).
//! - `conn`: one peer's virtual connection over the shared socket.
//! - `session`: one session's task: handshake under timeout, then CoAP through the shared endpoint.
//! - `driver`: the socket's receive loop, owner of the table.
//! - `stats`: counters, [`DtlsStats`] and [`HandshakeFailure`].
//!
//! Handshakes run concurrently, each in its own task, at most `max_handshakes` at once; decrypted
//! requests go through the same [`Endpoint`] (one device store) as the plain listener. Notifications for
//! DTLS observers arrive on the driver's outbox and are routed to the observer's session, which encrypts
//! and retransmits them; when a session ends, its peer's Observe relations end with it.

mod config;
mod conn;
mod driver;
mod record;
mod session;
mod stats;
mod table;

pub use config::{ClientAuth, DtlsServerConfig};
pub use stats::{DtlsStats, HandshakeFailure};

use super::endpoint::{Endpoint, Notification};
use super::{udp, ServerError};
use stats::Counters;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// A checked configuration and its bound socket, not yet serving.
pub(crate) struct Bound {
    socket: UdpSocket,
    local_addr: SocketAddr,
    dtls_config: ::dtls::config::Config,
    sessions: Option<Arc<::dtls::session::MemorySessionStore>>,
    handshake_timeout: Duration,
    limits: driver::Limits,
}

/// A serving DTLS listener.
pub(crate) struct Running {
    pub local_addr: SocketAddr,
    counters: Arc<Counters>,
    /// Notifications for DTLS observers, routed by the driver to their sessions.
    pub outbox: mpsc::UnboundedSender<Notification>,
    /// Restarts, for tests and storm scenarios.
    control: mpsc::UnboundedSender<driver::Control>,
    pub shutdown: oneshot::Sender<()>,
    pub task: JoinHandle<()>,
}

/// Checks `config` and binds its socket (with large buffers, like the plain listener's).
pub(crate) fn bind(config: &DtlsServerConfig) -> Result<Bound, ServerError> {
    let mut dtls_config = config.dtls_config()?;
    let sessions = config.session_store();
    dtls_config.session_store = sessions
        .clone()
        .map(|s| s as Arc<dyn ::dtls::session::SessionStore>);
    let socket = udp::bind(config.bind).map_err(|e| match e {
        ServerError::Bind { addr, source } => ServerError::DtlsBind { addr, source },
        other => other,
    })?;
    let local_addr = socket.local_addr().map_err(|source| ServerError::Socket {
        addr: config.bind,
        source,
    })?;
    Ok(Bound {
        socket,
        local_addr,
        dtls_config,
        sessions,
        handshake_timeout: config.handshake_timeout,
        limits: driver::Limits {
            max_sessions: config.max_sessions,
            max_handshakes: config.max_handshakes,
            idle_timeout: config.idle_timeout,
            connection_id_length: config.connection_id_length,
        },
    })
}

impl Bound {
    /// Starts serving on the current tokio runtime, answering through `endpoint`.
    pub fn spawn(
        self,
        endpoint: Arc<Mutex<Endpoint>>,
        response_delay: Option<Duration>,
    ) -> Running {
        let socket = Arc::new(self.socket);
        let counters = Arc::new(Counters::default());
        let (events, events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(session::Shared {
            config: self.dtls_config,
            sessions: self.sessions,
            handshake_timeout: self.handshake_timeout,
            endpoint,
            response_delay,
            counters: counters.clone(),
            events,
            socket: Arc::downgrade(&socket),
            local: self.local_addr,
        });
        let (shutdown, stop) = oneshot::channel();
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        let (control, control_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(driver::run(
            socket,
            shared,
            events_rx,
            outbox_rx,
            control_rx,
            self.limits,
            stop,
        ));
        Running {
            local_addr: self.local_addr,
            counters,
            outbox,
            control,
            shutdown,
            task,
        }
    }
}

impl Running {
    pub fn stats(&self) -> DtlsStats {
        self.counters.snapshot()
    }

    /// At `at`, see [`driver::Control::Restart`].
    pub fn restart_at(&self, at: std::time::Instant, down: Duration) {
        let control = self.control.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let _ = control.send(driver::Control::Restart { down });
        });
    }
}
