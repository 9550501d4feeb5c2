//! The timer side of delayed (separate) responses and of notifications, shared by the plain UDP and the DTLS
//! drivers: wait the response delay, send, and retransmit a CON as the endpoint decides (RFC 7252 §4.2)
//! through whichever transport the request (or the Observe registration) came in on.

use super::endpoint::{lock, Deferred, Endpoint, Notification, SeparateStep};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where a separate response or notification goes: the peer's plain address or its DTLS session.
pub(crate) trait Outbound: Send + Sync + 'static {
    /// Sends one datagram (or DTLS record) to the peer; `false` if it could not be sent.
    fn send(&self, bytes: &[u8]) -> impl Future<Output = bool> + Send;
}

/// Sends a deferred response after `delay`, then, for a CON, retransmits it until acknowledged or given up.
pub(crate) async fn respond_later<O: Outbound>(
    out: O,
    shared: Arc<Mutex<Endpoint>>,
    deferred: Deferred,
    delay: Duration,
) {
    tokio::time::sleep(delay).await;
    let peer = deferred.peer;
    let mut bytes = Vec::new();
    let pending = lock(&shared).separate_due(deferred, &mut bytes);
    send(&out, &shared, &bytes).await;
    if let Some((mid, wait)) = pending {
        retransmit(&out, &shared, peer, mid, wait, bytes).await;
    }
}

/// Sends a notification, then, for a CON, retransmits it until acknowledged or given up.
pub(crate) async fn deliver<O: Outbound>(
    out: O,
    shared: Arc<Mutex<Endpoint>>,
    notification: Notification,
) {
    let Notification {
        peer,
        bytes,
        retransmit: pending,
        ..
    } = notification;
    send(&out, &shared, &bytes).await;
    if let Some((mid, wait)) = pending {
        retransmit(&out, &shared, peer, mid, wait, bytes).await;
    }
}

/// Waits for the ACK of CON `mid` to `peer`, resending as the endpoint says.
async fn retransmit<O: Outbound>(
    out: &O,
    shared: &Mutex<Endpoint>,
    peer: SocketAddr,
    mid: u16,
    mut wait: Duration,
    mut bytes: Vec<u8>,
) {
    loop {
        tokio::time::sleep(wait).await;
        let step = lock(shared).separate_timer(peer, mid, &mut bytes);
        match step {
            SeparateStep::Resend(next) => {
                send(out, shared, &bytes).await;
                wait = next;
            }
            SeparateStep::Done | SeparateStep::GaveUp => return,
        }
    }
}

async fn send<O: Outbound>(out: &O, shared: &Mutex<Endpoint>, bytes: &[u8]) {
    if !out.send(bytes).await {
        lock(shared).note_send_error();
    }
}
