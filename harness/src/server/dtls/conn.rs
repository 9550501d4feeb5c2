//! One peer's view of the shared socket, as the `dtls` crate wants a connection: it receives what the
//! driver routes to this peer through a bounded channel, and sends with `send_to` on the shared socket.

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
    peer: SocketAddr,
    inbound: Mutex<mpsc::Receiver<Vec<u8>>>,
}

impl PeerConn {
    pub fn new(
        socket: Weak<UdpSocket>,
        local: SocketAddr,
        peer: SocketAddr,
        inbound: mpsc::Receiver<Vec<u8>>,
    ) -> Self {
        PeerConn {
            socket,
            local,
            peer,
            inbound: Mutex::new(inbound),
        }
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
        match next {
            Some(d) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Ok(n)
            }
            None => std::future::pending().await,
        }
    }

    async fn recv_from(&self, buf: &mut [u8]) -> UtilResult<(usize, SocketAddr)> {
        Ok((self.recv(buf).await?, self.peer))
    }

    async fn send(&self, buf: &[u8]) -> UtilResult<usize> {
        let socket = self.socket.upgrade().ok_or_else(closed)?;
        Ok(socket.send_to(buf, self.peer).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> UtilResult<usize> {
        if target != self.peer {
            return Err(webrtc_util::Error::Other(format!(
                "a connection to {} cannot send to {target}",
                self.peer
            )));
        }
        self.send(buf).await
    }

    fn local_addr(&self) -> UtilResult<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.peer)
    }

    /// Nothing to close: the socket is shared and the driver forgets the peer.
    async fn close(&self) -> UtilResult<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}
