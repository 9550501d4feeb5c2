//! One device's link driven step by step, for trust and conformance cases (the load path uses the device
//! loop instead): send a request and wait for its outcome, collect notifications, all bounded in time.

use crate::coap::{ClientEndpoint, Completed, ExchangeOutcome, Message, Token, TransmissionParams};
use crate::transport::Link;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// A UDP socket of a device's own, bound to `local` (or the unspecified address of the target's family,
/// port chosen by the OS) and connected to `target`, so ICMP errors come back to it.
pub async fn connect(local: Option<IpAddr>, target: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
    let ip = local.unwrap_or(match target {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    let sock = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    sock.connect(target).await?;
    Ok(Arc::new(sock))
}

pub struct Driver<'a> {
    link: &'a Link,
    pub ep: ClientEndpoint,
    buf: Vec<u8>,
    /// Notifications received so far, in order.
    pub notifications: Vec<Message>,
}

impl<'a> Driver<'a> {
    pub fn new(link: &'a Link, params: TransmissionParams, seed: u64) -> Self {
        Driver {
            link,
            ep: ClientEndpoint::new(params, seed),
            buf: vec![0u8; 4096],
            notifications: Vec::new(),
        }
    }

    /// Sends `msg` (with `token`, or a fresh one) and waits for its outcome, at most until `limit` passes.
    pub async fn request(
        &mut self,
        msg: Message,
        token: Option<Token>,
        limit: Duration,
    ) -> Option<Completed> {
        let now = Instant::now();
        match token {
            Some(t) => self.ep.start_with_token(now, msg, t),
            None => self.ep.start(now, msg),
        };
        let give_up = now + limit;
        loop {
            if let Some(done) = self.ep.poll_event() {
                return Some(done);
            }
            if !self.step(give_up).await {
                self.ep.abort_all(Instant::now());
                return self.ep.poll_event();
            }
        }
    }

    /// Waits until `count` notifications have arrived in all, or `limit` passes.
    pub async fn notifications(&mut self, count: usize, limit: Duration) {
        let give_up = Instant::now() + limit;
        while self.notifications.len() < count {
            if !self.step(give_up).await {
                return;
            }
        }
    }

    /// Sends what is queued, then waits for one datagram or timer; false once `give_up` has passed or the
    /// link failed.
    async fn step(&mut self, give_up: Instant) -> bool {
        while let Some(d) = self.ep.poll_transmit() {
            if self.link.send(&d).await.is_err() {
                return false;
            }
        }
        while let Some(n) = self.ep.poll_notification() {
            self.notifications.push(n);
        }
        let now = Instant::now();
        if now >= give_up {
            return false;
        }
        let wake = self.ep.poll_timeout().map_or(give_up, |t| t.min(give_up));
        tokio::select! {
            r = self.link.recv(&mut self.buf) => match r {
                Ok(n) => self.ep.handle_datagram(Instant::now(), &self.buf[..n]),
                Err(_) => return false,
            },
            _ = tokio::time::sleep_until(wake.into()) => self.ep.handle_timeout(Instant::now()),
        }
        while let Some(d) = self.ep.poll_transmit() {
            if self.link.send(&d).await.is_err() {
                return false;
            }
        }
        while let Some(n) = self.ep.poll_notification() {
            self.notifications.push(n);
        }
        true
    }
}

/// The response of a completed exchange, if one came.
pub fn response(done: &Option<Completed>) -> Option<&Message> {
    match done.as_ref().map(|d| &d.outcome) {
        Some(ExchangeOutcome::Response { response, .. }) => Some(response),
        _ => None,
    }
}
