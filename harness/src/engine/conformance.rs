//! Conformance cases: one device, one case at a time, each a request (or an Observe subscription with
//! pushed updates and RPC round trips) judged against its expectations.

use super::expect;
use super::session::{self, Driver};
use crate::coap::{option, Message, MessageType, Token};
use crate::metrics::records::ConformanceResult;
use crate::scenario::conformance::{Case, Push};
use crate::scenario::plan::ResponseExpect;
use crate::scenario::RunPlan;
use crate::transport::dtls::{self as dtls_client, ClientSettings};
use crate::transport::Link;
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What the conformance cases need of an embedded target server: pushing updates to a device and reading the
/// RPC replies it recorded. `app` implements it for the embedded server's handle, so the engine never imports
/// `server`.
pub trait EmbeddedTarget: Sync {
    /// Pushes shared attributes to the device with this token; returns the notifications sent.
    fn push_shared_attributes(&self, token: &str, attributes: Map<String, Value>) -> usize;
    /// Pushes a server-side RPC to the device; returns its id when the device is known.
    fn push_rpc(&self, token: &str, method: &str, params: Value) -> Option<u64>;
    /// The reply the device posted for RPC `id`, if the server recorded one.
    fn rpc_reply(&self, token: &str, id: u64) -> Option<Value>;
}

/// Runs every case of the plan against `target`.
pub async fn run_all(
    plan: &RunPlan,
    target: SocketAddr,
    dtls: Option<&ClientSettings>,
    server: Option<&dyn EmbeddedTarget>,
) -> Vec<ConformanceResult> {
    let mut out = Vec::with_capacity(plan.conformance.len());
    for (index, case) in plan.conformance.iter().enumerate() {
        out.push(run_one(plan, index, case, target, dtls, server).await);
    }
    out
}

/// The seed of case `index`'s message IDs and tokens. Each case opens a new socket, and the OS may hand it
/// the port a previous case used: with one seed for every case, its first request would repeat that case's
/// message ID and token, and a server's deduplication (RFC 7252 §4.5: same endpoint, same message ID)
/// would answer it with the earlier case's cached response, which the client would then match.
fn case_seed(seed: u64, index: usize) -> u64 {
    seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

async fn open(target: SocketAddr, dtls: Option<&ClientSettings>) -> Result<Link, String> {
    let sock = session::connect(None, target)
        .await
        .map_err(|e| format!("cannot open a UDP socket to {target}: {e}"))?;
    match dtls {
        None => Ok(Link::Udp(sock)),
        Some(s) => dtls_client::handshake(sock, s)
            .await
            .map(|session| Link::Dtls(session.conn))
            .map_err(|f| {
                format!(
                    "DTLS handshake failed: {}: {}",
                    f.judgement.verdict, f.judgement.detail
                )
            }),
    }
}

fn request(case: &Case, token: &str) -> Message {
    let mut m = super::device::request_to(
        case.mtype,
        case.method,
        &case.path,
        case.content_format,
        &case.query,
        token,
    );
    if case.observe {
        m.add_uint_option(option::OBSERVE, 0);
    }
    m.payload = case.payload.clone();
    m
}

/// Records one judged step: what was expected and seen, and whether it held.
#[derive(Default)]
struct Verdicts {
    expected: Vec<String>,
    observed: Vec<String>,
    failed: Vec<String>,
}

impl Verdicts {
    fn judge(
        &mut self,
        what: &str,
        e: &ResponseExpect,
        response: Option<&Message>,
        latency: Duration,
    ) {
        let broken = expect::check(e, response, latency);
        let seen = expect::describe_response(response, crate::metrics::Outcome::Timeout);
        for (kind, text) in e.describe() {
            self.expected.push(format!("{what}: {text}"));
            if broken & kind.bit() != 0 {
                self.failed.push(format!("{what}: {text}, observed {seen}"));
            }
        }
        self.observed.push(format!("{what}: {seen}"));
    }

    fn fail(&mut self, why: String) {
        self.observed.push(why.clone());
        self.failed.push(why);
    }
}

async fn run_one(
    plan: &RunPlan,
    index: usize,
    case: &Case,
    target: SocketAddr,
    dtls: Option<&ClientSettings>,
    server: Option<&dyn EmbeddedTarget>,
) -> ConformanceResult {
    let token = case
        .token
        .clone()
        .unwrap_or_else(|| plan.devices.tokens.token(0));
    if !case.push.is_empty() && server.is_none() {
        return ConformanceResult {
            name: case.name.clone(),
            passed: true,
            expected: "server-side pushes".into(),
            observed: "skipped".into(),
            code: None,
            notifications: 0,
            skipped: Some(
                "needs the embedded server to push updates; against this target, trigger them yourself and use `notifications:` without `push:`"
                    .into(),
            ),
        };
    }
    let mut v = Verdicts::default();
    let mut code = None;
    let mut notes = 0usize;
    match open(target, dtls).await {
        Err(why) => v.fail(why),
        Ok(link) => {
            let limit = plan
                .transmission
                .max_transmit_wait()
                .min(Duration::from_secs(10));
            let mut d = Driver::new(
                &link,
                plan.transmission.clone(),
                case_seed(plan.seed, index),
            );
            let sent = Instant::now();
            let done = d.request(request(case, &token), None, limit).await;
            let response = session::response(&done).cloned();
            code = response.as_ref().map(|r| r.code);
            v.judge("response", &case.expect, response.as_ref(), sent.elapsed());
            if case.observe {
                match &response {
                    Some(r) if r.code.is_success() => {
                        observe(plan, case, &token, r, &mut d, server, &mut v).await;
                        notes = d.notifications.len();
                    }
                    _ => v.fail("no observation registered: the request did not succeed".into()),
                }
            }
            link.close().await;
        }
    }
    let passed = v.failed.is_empty();
    ConformanceResult {
        name: case.name.clone(),
        passed,
        expected: if v.expected.is_empty() {
            "an answer".into()
        } else {
            v.expected.join("; ")
        },
        observed: if passed {
            v.observed.join("; ")
        } else {
            v.failed.join("; ")
        },
        code: code.map(|c| c.to_string()),
        notifications: notes as u64,
        skipped: None,
    }
}

/// The observation part of a case: pushes, notifications (each judged, Observe numbers increasing), RPC
/// replies, and deregistration.
async fn observe(
    plan: &RunPlan,
    case: &Case,
    token: &str,
    first: &Message,
    d: &mut Driver<'_>,
    server: Option<&dyn EmbeddedTarget>,
    v: &mut Verdicts,
) {
    if first.uint_option(option::OBSERVE).is_none() && first.code.0 == crate::coap::Code::CONTENT.0
    {
        v.fail(
            "response: the 2.05 carries no Observe option, so no observation was registered".into(),
        );
    }
    let obs_token = first.token;
    d.ep.observe(obs_token);
    if let Some(s) = server {
        for p in &case.push {
            match p {
                Push::SharedAttributes(m) => {
                    s.push_shared_attributes(token, m.clone());
                }
                Push::Rpc { method, params } => {
                    s.push_rpc(token, method, params.clone());
                }
            }
        }
    }
    let want = case.notifications as usize;
    d.notifications(want, case.wait).await;
    let got = d.notifications.clone();
    if got.len() < want {
        v.fail(format!(
            "notifications: expected {want} within {}, observed {}",
            humantime::format_duration(case.wait),
            got.len()
        ));
    }
    // RFC 7641 §3.4: notifications may arrive reordered; each must carry an Observe number newer than the
    // registration's, and no two the same.
    let registered = first.uint_option(option::OBSERVE);
    let mut seen = std::collections::HashSet::new();
    for (i, n) in got.iter().enumerate() {
        v.judge(
            &format!("notification {}", i + 1),
            &case.expect_notification,
            Some(n),
            Duration::ZERO,
        );
        match (registered, n.uint_option(option::OBSERVE)) {
            (_, None) => v.fail(format!("notification {}: no Observe option", i + 1)),
            (_, Some(b)) if !seen.insert(b) => v.fail(format!(
                "notification {}: Observe {b} repeats an earlier one",
                i + 1
            )),
            (Some(a), Some(b)) if !newer(b, a) => v.fail(format!(
                "notification {}: Observe {b} is not newer than the registration's {a}",
                i + 1
            )),
            _ => {}
        }
        if let Some(reply) = &case.rpc_reply {
            rpc_reply(plan, case, token, n, reply, d, server, v, i + 1).await;
        }
    }
    // Deregister (RFC 7641 §3.6): the same request with Observe: 1 and the registration's token.
    let mut cancel = request(case, token);
    cancel.mtype = MessageType::Con;
    let mut opts: Vec<(u16, Vec<u8>)> = cancel
        .options()
        .iter()
        .map(|o| (o.number, o.value.clone()))
        .collect();
    opts.retain(|(n, _)| *n != option::OBSERVE);
    let mut dereg = Message::new(MessageType::Con, cancel.code, 0, Token::default());
    for (n, val) in opts {
        dereg.add_option(n, val);
    }
    dereg.add_uint_option(option::OBSERVE, 1);
    d.ep.forget(obs_token);
    let limit = plan
        .transmission
        .max_transmit_wait()
        .min(Duration::from_secs(10));
    let done = d.request(dereg, Some(obs_token), limit).await;
    if session::response(&done).is_none() {
        v.fail("deregistration (Observe: 1) got no response".into());
    }
}

#[allow(clippy::too_many_arguments)]
async fn rpc_reply(
    plan: &RunPlan,
    case: &Case,
    token: &str,
    note: &Message,
    reply: &[u8],
    d: &mut Driver<'_>,
    server: Option<&dyn EmbeddedTarget>,
    v: &mut Verdicts,
    n: usize,
) {
    let id = serde_json::from_slice::<serde_json::Value>(&note.payload)
        .ok()
        .and_then(|j| j.get("id").and_then(serde_json::Value::as_u64));
    let Some(id) = id else {
        v.fail(format!(
            "notification {n}: no RPC id in {}",
            String::from_utf8_lossy(&note.payload)
        ));
        return;
    };
    let mut m = Message::new(
        MessageType::Con,
        crate::coap::Code::POST,
        0,
        Token::default(),
    );
    for seg in ["api", "v1", token, "rpc", &id.to_string()] {
        m.add_option(option::URI_PATH, seg.as_bytes());
    }
    m.add_uint_option(
        option::CONTENT_FORMAT,
        u32::from(crate::coap::content_format::JSON),
    );
    m.payload = reply.to_vec();
    let limit = plan
        .transmission
        .max_transmit_wait()
        .min(Duration::from_secs(10));
    let sent = Instant::now();
    let done = d.request(m, None, limit).await;
    v.judge(
        &format!("reply to RPC {id}"),
        &case.expect_reply,
        session::response(&done),
        sent.elapsed(),
    );
    if let Some(s) = server {
        if s.rpc_reply(token, id).is_none() {
            v.fail(format!("reply to RPC {id}: the server did not record it"));
        }
    }
}

/// RFC 7641 §3.4: whether 24-bit sequence number `b` is newer than `a` (serial-number arithmetic).
fn newer(b: u32, a: u32) -> bool {
    const HALF: u32 = 1 << 23;
    (a < b && b - a < HALF) || (a > b && a - b > HALF)
}

#[cfg(test)]
mod tests {
    /// The first request of each case (what a server deduplicates by, with the endpoint) carries a message
    /// ID and token of its own: with one seed for every case they were all the same.
    #[test]
    fn each_case_starts_with_its_own_message_id_and_token() {
        use crate::coap::{ClientEndpoint, Code, Message, MessageType, TransmissionParams};
        for seed in [0, 7, u64::MAX] {
            let first: Vec<(u16, Vec<u8>)> = (0..16)
                .map(|i| {
                    let mut ep = ClientEndpoint::new(
                        TransmissionParams::default(),
                        super::case_seed(seed, i),
                    );
                    let now = std::time::Instant::now();
                    ep.start(
                        now,
                        Message::new(MessageType::Con, Code::POST, 0, Default::default()),
                    );
                    let m = Message::decode(&ep.poll_transmit().unwrap()).unwrap();
                    (m.message_id, m.token.as_bytes().to_vec())
                })
                .collect();
            for (i, a) in first.iter().enumerate() {
                for b in &first[i + 1..] {
                    assert!(a.0 != b.0 && a.1 != b.1, "seed {seed}: {first:?}");
                }
            }
        }
    }

    #[test]
    fn every_case_has_its_own_seed() {
        let seeds: std::collections::HashSet<u64> =
            (0..64).map(|i| super::case_seed(7, i)).collect();
        assert_eq!(seeds.len(), 64);
        assert!(!seeds.contains(&7));
    }

    #[test]
    fn observe_numbers_compare_as_serial_numbers() {
        assert!(super::newer(2, 1));
        assert!(!super::newer(1, 2));
        assert!(super::newer(3, (1 << 24) - 2), "wrapped around");
        assert!(!super::newer(5, 5));
    }
}
