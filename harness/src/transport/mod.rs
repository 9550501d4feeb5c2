//! Transports under the CoAP layer: plain UDP and DTLS over UDP, as one small [`Link`] the device loop
//! sends and receives datagrams through.

pub mod dtls;

use ::dtls::conn::DTLSConn;
use std::io;
use std::sync::Arc;
use tokio::net::UdpSocket;

/// A device's connection to the target: datagrams in, datagrams out.
pub enum Link {
    Udp(Arc<UdpSocket>),
    Dtls(Arc<DTLSConn>),
}

impl Link {
    pub async fn send(&self, datagram: &[u8]) -> io::Result<()> {
        match self {
            Link::Udp(s) => s.send(datagram).await.map(|_| ()),
            Link::Dtls(c) => c.write(datagram, None).await.map(|_| ()).map_err(to_io),
        }
    }

    /// Receives one datagram (decrypted for DTLS). Cancel-safe.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Link::Udp(s) => s.recv(buf).await,
            Link::Dtls(c) => c.read(buf, None).await.map_err(to_io),
        }
    }

    /// Ends the session politely (DTLS close_notify); nothing for plain UDP.
    pub async fn close(&self) {
        if let Link::Dtls(c) = self {
            let _ = c.close().await;
        }
    }
}

fn to_io(e: ::dtls::Error) -> io::Error {
    match e {
        ::dtls::Error::Io(io) => io.0,
        other => io::Error::other(other.to_string()),
    }
}
