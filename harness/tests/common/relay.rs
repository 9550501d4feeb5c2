//! A UDP relay that forwards every client's datagrams to one server from one socket of its own: to the
//! server, every client is the same endpoint, as when the OS hands a new socket the port an earlier one
//! used. Replies go to the client that sent last (clients take turns).

use std::net::SocketAddr;
use tokio::net::UdpSocket;

/// The relay; stopped when dropped.
pub struct OnePortRelay {
    /// Where clients send.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl OnePortRelay {
    pub async fn start(server: SocketAddr) -> Self {
        let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        back.connect(server).await.unwrap();
        let addr = front.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut up, mut down) = ([0u8; 2048], [0u8; 2048]);
            let mut client = None;
            loop {
                tokio::select! {
                    Ok((n, from)) = front.recv_from(&mut up) => {
                        client = Some(from);
                        let _ = back.send(&up[..n]).await;
                    }
                    Ok(n) = back.recv(&mut down) => {
                        if let Some(c) = client {
                            let _ = front.send_to(&down[..n], c).await;
                        }
                    }
                }
            }
        });
        OnePortRelay { addr, task }
    }
}

impl Drop for OnePortRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
