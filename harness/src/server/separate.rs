//! The timer side of delayed (separate) responses, shared by the plain UDP and the DTLS drivers: wait the
//! response delay, send, and retransmit a CON as the endpoint decides (RFC 7252 §4.2) through whichever
//! transport the request came in on.

use super::endpoint::{Deferred, Endpoint, SeparateStep};
use super::udp::lock;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where a separate response goes: the peer's plain address or its DTLS session.
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
    let Some((mid, mut wait)) = pending else {
        return;
    };
    loop {
        tokio::time::sleep(wait).await;
        let step = lock(&shared).separate_timer(peer, mid, &mut bytes);
        match step {
            SeparateStep::Resend(next) => {
                send(&out, &shared, &bytes).await;
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
