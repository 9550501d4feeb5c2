//! One peer's view of the shared socket, as the `dtls` crate wants a connection: it receives what the
//! driver routes to this peer through a bounded channel, and sends with `send_to` on the shared socket.
//! It also keeps the server's last handshake flight: once the handshake is done the crate no longer answers
//! a client that retransmits its flight 5 because our ChangeCipherSpec + Finished were lost, so this
//! connection replays that flight itself (RFC 6347 §4.2.4), or the client would time out.
//!
//! With a connection ID (RFC 9146) the driver may hand over a record from another address than the peer's:
//! the connection sends to that address only after the DTLS stack has authenticated that record as the
//! newest so far ([`PeerConn::follow`], called from the stack's reader right after it opened the datagram
//! this connection handed over last).

use super::driver::Inbound;
use async_trait::async_trait;
use std::any::Any;
use std::net::SocketAddr;
use std::sync::Weak;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Mutex};
use webrtc_util::conn::Conn;

type UtilResult<T> = Result<T, webrtc_util::Error>;

/// A virtual connected socket for one peer.
pub(crate) struct PeerConn {
    /// Weak, so the socket closes when the driver ends even while the crate's own tasks linger.
    socket: Weak<UdpSocket>,
    local: SocketAddr,
    /// Where the peer is now: where the session started, until it follows the client to a new address.
    peer: std::sync::Mutex<SocketAddr>,
    /// The source of the datagram handed to the DTLS stack last.
    last_from: std::sync::Mutex<SocketAddr>,
    inbound: Mutex<mpsc::Receiver<Inbound>>,
    flight: std::sync::Mutex<Flight>,
}

/// The datagrams of the flight being sent (those sent since the peer last sent something).
#[derive(Default)]
struct Flight {
    datagrams: Vec<Vec<u8>>,
    received_since_send: bool,
    /// The handshake is done: `datagrams` is the last flight, kept for replay.
    done: bool,
}

/// Whether `d` starts with an epoch-0 handshake record: after the handshake, a retransmitted flight.
fn is_epoch0_handshake(d: &[u8]) -> bool {
    d.len() >= 13 && d[0] == 22 && d[3] == 0 && d[4] == 0
}

impl PeerConn {
    pub fn new(
        socket: Weak<UdpSocket>,
        local: SocketAddr,
        peer: SocketAddr,
        inbound: mpsc::Receiver<Inbound>,
    ) -> Self {
        PeerConn {
            socket,
            local,
            peer: std::sync::Mutex::new(peer),
            last_from: std::sync::Mutex::new(peer),
            inbound: Mutex::new(inbound),
            flight: std::sync::Mutex::new(Flight::default()),
        }
    }

    /// Where the peer is now.
    pub fn peer(&self) -> SocketAddr {
        *self.peer.lock().expect("peer")
    }

    /// The DTLS stack authenticated the newest record so far, from the datagram handed over last: if that
    /// came from another address, the peer is there now. Returns `(from, to)` when it moved.
    pub fn follow(&self) -> Option<(SocketAddr, SocketAddr)> {
        let to = *self.last_from.lock().expect("last_from");
        let mut peer = self.peer.lock().expect("peer");
        let from = std::mem::replace(&mut *peer, to);
        (from != to).then_some((from, to))
    }

    /// The handshake completed: what was sent last is the flight to replay.
    pub fn handshake_done(&self) {
        self.flight.lock().expect("flight").done = true;
    }

    fn log_sent(&self, d: &[u8]) {
        let mut f = self.flight.lock().expect("flight");
        if f.done {
            return;
        }
        if std::mem::take(&mut f.received_since_send) {
            f.datagrams.clear();
        }
        f.datagrams.push(d.to_vec());
    }

    /// On a datagram from the peer: the last flight to send again, if this is a retransmitted one.
    fn on_received(&self, d: &[u8]) -> Option<Vec<Vec<u8>>> {
        let mut f = self.flight.lock().expect("flight");
        if !f.done {
            f.received_since_send = true;
            return None;
        }
        is_epoch0_handshake(d).then(|| f.datagrams.clone())
    }
}

fn closed() -> webrtc_util::Error {
    webrtc_util::Error::from(std::io::Error::from(std::io::ErrorKind::NotConnected))
}

#[async_trait]
impl Conn for PeerConn {
    async fn connect(&self, _addr: SocketAddr) -> UtilResult<()> {
        Err(webrtc_util::Error::Other(
            "a peer connection is already connected".into(),
        ))
    }

    /// The next datagram routed to this peer, truncated to `buf`. Once the driver has dropped the session
    /// this never returns: the crate's reader loops on receive errors, so an error would spin it until the
    /// session drops the `DTLSConn`, which ends that reader.
    async fn recv(&self, buf: &mut [u8]) -> UtilResult<usize> {
        let next = self.inbound.lock().await.recv().await;
        match next.map(|datagram| *datagram) {
            Some((from, d)) => {
                *self.last_from.lock().expect("last_from") = from;
                if let Some(replay) = self.on_received(&d) {
                    if let Some(socket) = self.socket.upgrade() {
                        let peer = self.peer();
                        for datagram in replay {
                            let _ = socket.send_to(&datagram, peer).await;
                        }
                    }
                }
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Ok(n)
            }
            None => std::future::pending().await,
        }
    }

    async fn recv_from(&self, buf: &mut [u8]) -> UtilResult<(usize, SocketAddr)> {
        Ok((self.recv(buf).await?, self.peer()))
    }

    async fn send(&self, buf: &[u8]) -> UtilResult<usize> {
        let socket = self.socket.upgrade().ok_or_else(closed)?;
        self.log_sent(buf);
        Ok(socket.send_to(buf, self.peer()).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> UtilResult<usize> {
        let peer = self.peer();
        if target != peer {
            return Err(webrtc_util::Error::Other(format!(
                "a connection to {peer} cannot send to {target}"
            )));
        }
        self.send(buf).await
    }

    fn local_addr(&self) -> UtilResult<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.peer())
    }

    /// Nothing to close: the socket is shared and the driver forgets the peer.
    async fn close(&self) -> UtilResult<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}
