//! A UDP server that refuses everything: each CON is answered with a piggybacked ACK carrying one error code.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// 4.01 Unauthorized (ThingsBoard's answer to an unknown token).
pub const UNAUTHORIZED: u8 = 0x81;
/// 5.03 Service Unavailable.
pub const UNAVAILABLE: u8 = 0xa3;

/// A UDP server that answers every CON with a piggybacked ACK carrying `code` (class << 5 | detail).
pub struct Refuser {
    pub addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Refuser {
    pub fn start(code: u8) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if n < 4 {
                    continue;
                }
                let tkl = (buf[0] & 0x0f) as usize;
                if n < 4 + tkl {
                    continue;
                }
                // ACK (type 2), version 1, same token length, message ID and token.
                let mut reply = vec![0x60 | tkl as u8, code, buf[2], buf[3]];
                reply.extend_from_slice(&buf[4..4 + tkl]);
                let _ = sock.send_to(&reply, from);
            }
        });
        Refuser {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Refuser {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
