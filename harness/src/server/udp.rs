//! The thin tokio driver: one socket, one receive loop feeding [`Endpoint`], a timer task per delayed
//! response, and a task per notification handed over by the server handle (sent, then retransmitted as
//! the endpoint decides). All protocol decisions are the endpoint's.

pub(crate) use super::endpoint::lock;
use super::endpoint::{Endpoint, Notification};
use super::observe::Link;
use super::separate::{deliver, respond_later, Outbound};
use super::ServerError;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// Socket buffer size asked for; the kernel caps it at `net.core.rmem_max` / `wmem_max`.
const SOCKET_BUFFER: usize = 4 << 20;
/// Datagrams drained per readiness event before other work (timers, shutdown) gets a turn.
const BATCH: usize = 256;

/// Binds a non-blocking UDP socket with large buffers.
pub(crate) fn bind(addr: SocketAddr) -> Result<UdpSocket, ServerError> {
    let setup = |source| ServerError::Socket { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(setup)?;
    // Best effort: a smaller buffer only means drops sooner under load.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true).map_err(setup)?;
    socket
        .bind(&addr.into())
        .map_err(|source| ServerError::Bind { addr, source })?;
    UdpSocket::from_std(socket.into()).map_err(setup)
}

/// A window during which the listener does not read (see `ServerHandle::stall`).
pub(crate) type Stall = Arc<Mutex<Option<(Instant, Instant)>>>;

/// Receives until `shutdown` fires or its sender is dropped, and sends the notifications that arrive on
/// `outbox`; pending delayed responses and notification retransmissions are then abandoned.
pub(crate) async fn run(
    socket: Arc<UdpSocket>,
    shared: Arc<Mutex<Endpoint>>,
    delay: Option<Duration>,
    mut outbox: mpsc::UnboundedReceiver<Notification>,
    mut shutdown: oneshot::Receiver<()>,
    stall: Stall,
) {
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::with_capacity(1500);
    let mut timers = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            Some(_) = timers.join_next(), if !timers.is_empty() => {}
            Some(n) = outbox.recv() => {
                let out = PlainPeer { socket: socket.clone(), peer: n.peer };
                timers.spawn(deliver(out, shared.clone(), n));
            }
            ready = socket.readable() => {
                let window = *stall.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((from, to)) = window {
                    let now = Instant::now();
                    if now >= from && now < to {
                        tokio::select! {
                            _ = &mut shutdown => break,
                            _ = tokio::time::sleep_until(to.into()) => {}
                        }
                    }
                }
                if ready.is_err() {
                    lock(&shared).note_recv_error();
                    continue;
                }
                for _ in 0..BATCH {
                    let (n, peer) = match socket.try_recv_from(&mut buf) {
                        Ok(got) => got,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            lock(&shared).note_recv_error();
                            break;
                        }
                    };
                    let deferred = lock(&shared).handle_datagram(
                        Instant::now(),
                        Link::Plain,
                        peer,
                        &buf[..n],
                        &mut out,
                    );
                    if !out.is_empty() {
                        send(&socket, &shared, &out, peer).await;
                    }
                    if let (Some(d), Some(delay)) = (deferred, delay) {
                        let out = PlainPeer { socket: socket.clone(), peer };
                        timers.spawn(respond_later(out, shared.clone(), d, delay));
                    }
                }
            }
        }
    }
    // Abort the timers and wait for them, so the socket is closed when the caller's shutdown returns.
    timers.shutdown().await;
}

async fn send(socket: &UdpSocket, shared: &Mutex<Endpoint>, bytes: &[u8], peer: SocketAddr) {
    if socket.send_to(bytes, peer).await.is_err() {
        lock(shared).note_send_error();
    }
}

/// A plain peer, for separate responses and notifications.
struct PlainPeer {
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
}

impl Outbound for PlainPeer {
    async fn send(&self, bytes: &[u8]) -> bool {
        self.socket.send_to(bytes, self.peer).await.is_ok()
    }
}
