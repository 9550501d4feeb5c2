//! The one worker loop: a simulated device with its own UDP socket, driving a sans-IO
//! [`ClientEndpoint`] on the schedule its [`Pacer`] gives, recording every request into its own batch.

use super::pacer::Pacer;
use crate::coap::{
    option, ClientEndpoint, Code, Completed, ExchangeId, ExchangeOutcome, Message, MessageType,
    Token,
};
use crate::metrics::{Batch, Outcome, Sample};
use crate::scenario::dtls::Churn;
use crate::scenario::template::RenderContext;
use crate::scenario::RunPlan;
use crate::transport::dtls::{self as dtls_client, ClientSettings};
use crate::transport::Link;
use crate::trust::TrustVerdict;
use sha2::Digest;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

/// What every device task shares (read-only).
pub struct Shared {
    pub plan: Arc<RunPlan>,
    pub target: SocketAddr,
    /// The run's start.
    pub t0: Instant,
    /// No exchange outlives this (last phase's end plus the drain).
    pub hard_end: Instant,
    pub tx: UnboundedSender<Batch>,
    pub cancel: CancellationToken,
    /// DTLS settings when devices speak CoAP over DTLS.
    pub dtls: Option<Arc<ClientSettings>>,
    /// Each device's own client certificate (by this run's device index), when the fleet's is per device.
    pub client_certs: Option<Arc<[Option<dtls::crypto::Certificate>]>>,
    /// Wakes devices when a send is due, closer to the slot than tokio's 1 ms timer.
    pub alarms: super::alarm::Alarms,
    /// Live metrics for scrapers (`run --metrics`): devices move the gauges and count handshakes.
    pub live_metrics: Option<Arc<crate::metrics::export::RunMetrics>>,
    /// What the live progress line shows; devices move its active-device and session counts.
    pub live: Arc<std::sync::Mutex<crate::metrics::Live>>,
    /// Paces new sessions after the first (`devices.connect_rate`); `None`: at once.
    pub reconnects: Option<super::reconnect::ReconnectPacer>,
    /// `dtls.rehandshake_every`, for DTLS devices.
    pub churn: Option<Churn>,
}

impl Shared {
    /// Device `index`'s DTLS settings: the fleet's, with the device's own client certificate (per-device
    /// certificates) and its own PSK (a CSV token file) when it has them.
    fn dtls_for(&self, index: u32) -> Option<std::borrow::Cow<'_, ClientSettings>> {
        let settings = self.dtls.as_deref()?;
        let psk = self
            .plan
            .devices
            .credentials(index)
            .and_then(|c| c.psk.as_ref());
        if self.client_certs.is_none() && psk.is_none() {
            return Some(std::borrow::Cow::Borrowed(settings));
        }
        let mut own = settings.clone();
        if let Some(certs) = self.client_certs.as_deref() {
            own.client_certificate = certs.get(index as usize).cloned().flatten();
        }
        if let Some(psk) = psk {
            own.psk = Some(psk.clone());
        }
        Some(std::borrow::Cow::Owned(own))
    }

    /// Device `index`'s own session store, when it resumes its sessions (`dtls.resume`).
    fn sessions_for(&self, index: u32) -> Option<dtls_client::DeviceSessions> {
        self.dtls.as_ref()?;
        let resume = self.plan.dtls.as_ref()?.client.resume;
        resume
            .device_resumes(index)
            .then(dtls_client::device_sessions)
    }

    fn handshake_done(&self, h: &HandshakeTally) {
        if let Some(m) = &self.live_metrics {
            m.handshake(h.verdict.name(), h.elapsed);
        }
    }

    /// A device's link opened (+1) or closed (-1): active devices, and DTLS sessions when it is one.
    fn link_change(&self, link: &Link, by: i64) {
        let dtls = matches!(link, Link::Dtls(_));
        if let Some(m) = self.live_metrics.as_ref().filter(|_| dtls) {
            m.dtls_sessions.inc_by(by);
        }
        if dtls {
            self.live.lock().expect("live lock").sessions_by(by);
        }
    }

    /// A device became active (+1) or ended (-1).
    fn device_change(&self, by: i64) {
        if let Some(m) = &self.live_metrics {
            m.active_devices.inc_by(by);
        }
        self.live.lock().expect("live lock").devices_by(by);
    }
}

/// Why a device made a handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HandshakeCause {
    /// Its first session.
    #[default]
    First,
    /// Its session was lost (closed by the server, or its requests went unanswered: a restarted server).
    Reconnect,
    /// It closed its session on purpose (`dtls.rehandshake_every`).
    Churn,
}

/// How a device's DTLS handshake went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeTally {
    pub verdict: TrustVerdict,
    pub detail: Option<String>,
    pub elapsed: Duration,
    /// When it ended, from the start of the load.
    pub at: Duration,
    pub cause: HandshakeCause,
    /// Whether it resumed the device's previous session (an abbreviated handshake, `dtls.resume`).
    pub resumed: bool,
    /// The session negotiated a connection ID (RFC 9146).
    pub connection_id: bool,
}

/// One device's own account of its run, for cross-checking against the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceTally {
    pub index: u32,
    pub token: String,
    /// Whether the device became active and opened its socket.
    pub started: bool,
    /// Why the socket could not be opened.
    pub socket_error: Option<String>,
    pub sent: u64,
    pub ok: u64,
    /// Datagrams that were not CoAP, and the first decode error seen.
    pub malformed: u64,
    pub first_malformed: Option<String>,
    pub unmatched: u64,
    pub duplicates: u64,
    /// The DTLS handshake, when the device speaks DTLS.
    pub handshake: Option<HandshakeTally>,
    /// Handshakes after the first: made because the session was lost (the server closed it, or it
    /// stopped answering: a restarted server no longer knows it; at most [`MAX_REHANDSHAKES`] in a row
    /// without success), or for handshake churn.
    pub rehandshakes: Vec<HandshakeTally>,
    /// A few responses that broke per-request expectations, as observed.
    pub broken_examples: Vec<String>,
    /// The client certificate the device presents in its DTLS handshakes: the SHA-256 of its DER leaf, as
    /// a ThingsBoard server keys X.509 device credentials (the load's accounting matches it with the
    /// server's record of which certificate posted as which device).
    pub certificate: Option<[u8; 32]>,
}

/// Examples of broken expectations kept per device.
const EXAMPLES: usize = 3;

/// Consecutive requests without an answer (timeout, unreachable) after which a DTLS device takes its
/// session for lost and makes a new handshake.
const LOST_AFTER: u32 = 2;
/// New handshakes a device attempts in a row at most, before it gives up for the rest of the run.
pub const MAX_REHANDSHAKES: usize = 20;
/// Pause after a failed new handshake before the next.
const REHANDSHAKE_BACKOFF: Duration = Duration::from_millis(250);

const BATCH: usize = 128;
const FLUSH_EVERY: Duration = Duration::from_millis(250);

struct Recorder {
    tx: UnboundedSender<Batch>,
    batch: Batch,
    last_flush: Instant,
}

impl Recorder {
    fn record(&mut self, s: Sample, now: Instant) {
        self.batch.push(s);
        if self.batch.len() >= BATCH || now.duration_since(self.last_flush) >= FLUSH_EVERY {
            self.flush(now);
        }
    }

    /// When the batch must go out even if no other request completes (slow devices).
    fn deadline(&self) -> Option<Instant> {
        (!self.batch.is_empty()).then(|| self.last_flush + FLUSH_EVERY)
    }

    fn flush(&mut self, now: Instant) {
        self.last_flush = now;
        if !self.batch.is_empty() {
            // Sized for as many samples as this batch held: a device sending a few a second would otherwise
            // allocate room for BATCH every FLUSH_EVERY, freed on the collector's thread (megabytes a second
            // of fresh pages at 1,000 devices).
            let next = Vec::with_capacity(self.batch.len().next_power_of_two().min(BATCH));
            // The collector outlives every device; a closed channel means the run is being torn down.
            let _ = self.tx.send(std::mem::replace(&mut self.batch, next));
        }
    }
}

/// The request as every send starts from it; the payload is rendered per send.
pub(crate) fn base_request(plan: &RunPlan, token: &str) -> Message {
    let r = &plan.request;
    request_to(
        r.mtype,
        r.method,
        &r.path,
        r.content_format,
        &r.query,
        token,
    )
}

/// A request without payload: Uri-Path segments (`None` is the device's token), Content-Format, Uri-Query.
/// The load's requests and the conformance cases are both built here.
pub(crate) fn request_to(
    mtype: MessageType,
    method: Code,
    path: &[Option<String>],
    content_format: Option<u16>,
    query: &[String],
    token: &str,
) -> Message {
    let mut m = Message::new(mtype, method, 0, Token::default());
    for seg in path {
        m.add_option(option::URI_PATH, seg.as_deref().unwrap_or(token).as_bytes());
    }
    if let Some(cf) = content_format {
        m.add_uint_option(option::CONTENT_FORMAT, u32::from(cf));
    }
    for q in query {
        m.add_option(option::URI_QUERY, q.as_bytes());
    }
    m
}

/// The local address for device `index`: the scenario's `devices.bind` list round-robin, if any.
fn local_ip(plan: &RunPlan, index: u32) -> Option<IpAddr> {
    (!plan.devices.bind.is_empty())
        .then(|| plan.devices.bind[index as usize % plan.devices.bind.len()])
}

fn classify(c: &Completed, aborted_as: Outcome) -> Outcome {
    match &c.outcome {
        ExchangeOutcome::Response { response, .. } if response.code.is_success() => Outcome::Ok,
        ExchangeOutcome::Response { .. } => Outcome::CoapError,
        ExchangeOutcome::Reset => Outcome::Reset,
        ExchangeOutcome::Timeout { .. } if c.malformed.is_some() => Outcome::Malformed,
        ExchangeOutcome::Timeout { acked: false } => Outcome::Timeout,
        ExchangeOutcome::Timeout { acked: true } => Outcome::ResponseTimeout,
        ExchangeOutcome::Aborted => aborted_as,
    }
}

/// Opens the device's link: its own UDP socket, and a DTLS session over it when the run uses DTLS.
async fn open_link(
    sh: &Shared,
    index: u32,
    sessions: Option<&dtls_client::DeviceSessions>,
    tally: &mut DeviceTally,
) -> Option<Link> {
    let sock = match super::session::connect(local_ip(&sh.plan, index), sh.target).await {
        Ok(s) => s,
        Err(e) => {
            tally.socket_error = Some(e.to_string());
            return None;
        }
    };
    tally.started = true;
    let Some(settings) = sh.dtls_for(index) else {
        return Some(Link::Udp(sock));
    };
    tally.certificate = settings
        .client_certificate
        .as_ref()
        .and_then(|c| c.certificate.first())
        .map(|leaf| sha2::Sha256::digest(leaf).into());
    let (link, h) = dtls_handshake(sock, &settings, sessions, sh.t0, HandshakeCause::First).await;
    sh.handshake_done(&h);
    tally.handshake = Some(h);
    link
}

async fn dtls_handshake(
    sock: Arc<tokio::net::UdpSocket>,
    settings: &ClientSettings,
    sessions: Option<&dtls_client::DeviceSessions>,
    t0: Instant,
    cause: HandshakeCause,
) -> (Option<Link>, HandshakeTally) {
    let result = dtls_client::handshake_resuming(sock, settings, sessions).await;
    let at = t0.elapsed();
    match result {
        Ok(session) => (
            Some(Link::Dtls(session.conn.clone())),
            HandshakeTally {
                verdict: session.verdict,
                detail: None,
                elapsed: session.elapsed,
                at,
                cause,
                resumed: session.resumed,
                connection_id: session.conn.connection_ids().is_some(),
            },
        ),
        Err(failed) => (
            None,
            HandshakeTally {
                verdict: failed.judgement.verdict,
                detail: Some(failed.judgement.detail),
                elapsed: failed.elapsed,
                at,
                cause,
                resumed: false,
                connection_id: false,
            },
        ),
    }
}

/// Requests due while a device has no session fail at once as `session_closed`: counted (so every scheduled
/// request is in the tally and the error window shows), never put on the wire.
fn fail_due(
    sh: &Shared,
    pacer: &mut Pacer<'_>,
    rec: &mut Recorder,
    tally: &mut DeviceTally,
    now: Instant,
) {
    while let Some(t) = pacer.next().filter(|t| sh.t0 + *t <= now) {
        let intended_at = sh.t0 + t;
        let corrected = now.saturating_duration_since(intended_at);
        tally.sent += 1;
        rec.record(
            Sample {
                phase: sh.plan.phase_at(t) as u16,
                outcome: Outcome::SessionClosed,
                code: None,
                corrected_us: corrected.as_micros() as u64,
                uncorrected_us: 0,
                send_lag_us: corrected.as_micros() as u64,
                completed_ms: now.saturating_duration_since(sh.t0).as_millis() as u64,
                retransmissions: 0,
                broken: super::expect::check(&sh.plan.expect, None, corrected),
            },
            now,
        );
        pacer.on_sent(t);
        pacer.on_completed(now.saturating_duration_since(sh.t0));
    }
}

/// A new DTLS session for a device that lost its own (or closed it for churn): a fresh socket (a new
/// source port, as a rebooted device would have) and a new handshake, each attempt in its turn when new
/// sessions are paced (`devices.connect_rate`), retried after [`REHANDSHAKE_BACKOFF`] until one
/// completes, the schedule or the run ends, or [`MAX_REHANDSHAKES`] attempts failed. Requests due meanwhile
/// fail as `session_closed`, except while a churning device makes its first attempt: it sends them late
/// over the new session, as a device that queues its messages during a planned re-handshake would (their
/// latency, from the intended send time, includes the wait).
async fn rehandshake(
    sh: &Shared,
    index: u32,
    sessions: Option<&dtls_client::DeviceSessions>,
    cause: HandshakeCause,
    pacer: &mut Pacer<'_>,
    rec: &mut Recorder,
    tally: &mut DeviceTally,
) -> Option<Link> {
    let settings = sh.dtls_for(index)?;
    let settings = &*settings;
    let lost = cause != HandshakeCause::Churn;
    for attempt in 0..MAX_REHANDSHAKES {
        if pacer.is_done() {
            break;
        }
        if let Some(slots) = &sh.reconnects {
            let turn = slots.slot(Instant::now());
            tokio::select! {
                _ = sh.cancel.cancelled() => return None,
                _ = tokio::time::sleep_until(turn.into()) => {}
            }
        }
        let now = Instant::now();
        if lost || attempt > 0 {
            fail_due(sh, pacer, rec, tally, now);
        }
        if now >= sh.hard_end || sh.cancel.is_cancelled() {
            return None;
        }
        let handshake = async {
            let sock = super::session::connect(local_ip(&sh.plan, index), sh.target).await;
            match sock {
                Ok(sock) => dtls_handshake(sock, settings, sessions, sh.t0, cause).await,
                Err(e) => (
                    None,
                    HandshakeTally {
                        verdict: TrustVerdict::Other,
                        detail: Some(e.to_string()),
                        elapsed: Duration::ZERO,
                        at: sh.t0.elapsed(),
                        cause,
                        resumed: false,
                        connection_id: false,
                    },
                ),
            }
        };
        let (link, h) = tokio::select! {
            _ = sh.cancel.cancelled() => return None,
            r = handshake => r,
        };
        sh.handshake_done(&h);
        tally.rehandshakes.push(h);
        if link.is_some() {
            if lost {
                fail_due(sh, pacer, rec, tally, Instant::now());
            }
            return link;
        }
        tokio::select! {
            _ = sh.cancel.cancelled() => return None,
            _ = tokio::time::sleep(REHANDSHAKE_BACKOFF) => {}
        }
    }
    fail_due(sh, pacer, rec, tally, Instant::now());
    None
}

/// Runs device `index` to the end of its schedule (or cancellation) and returns its tally.
pub async fn run(sh: Arc<Shared>, index: u32) -> DeviceTally {
    let plan = sh.plan.clone();
    // The scenario's token and index for this device (they differ from `index` in a shard).
    let token = plan.devices.token(index);
    let mut tally = DeviceTally {
        index,
        token: token.clone(),
        ..Default::default()
    };
    let mut pacer = Pacer::new(&plan, index);
    let Some(first) = pacer.first_active() else {
        return tally;
    };
    tokio::select! {
        _ = sh.cancel.cancelled() => return tally,
        _ = tokio::time::sleep_until((sh.t0 + first).into()) => {}
    }
    let sessions = sh.sessions_for(index);
    let link = tokio::select! {
        _ = sh.cancel.cancelled() => return tally,
        // Boxed, like the new handshakes and closes below: each runs once or rarely, and inline the device
        // task's future would keep room for the largest of them for the device's whole life (issue #15).
        link = Box::pin(open_link(&sh, index, sessions.as_ref(), &mut tally)) => link,
    };
    let Some(mut link) = link else {
        return tally;
    };
    let metrics = sh.live_metrics.clone();
    sh.device_change(1);
    sh.link_change(&link, 1);
    // Whether `link` is counted in the live gauges (not once it was closed for a failed new handshake).
    let mut link_counted = true;
    // The DTLS session is gone (closed by the server, or requests in a row unanswered): make a new one once
    // nothing is in flight.
    let mut lost_session = false;
    let mut unanswered_in_row = 0u32;
    // Handshake churn: requests made on this session, when it opened, and whether it is time for a new one.
    let mut session_requests = 0u64;
    let mut session_opened = Instant::now();
    let mut churn_due = false;

    let seed = plan.seed ^ u64::from(index).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut ep = ClientEndpoint::new(plan.transmission.clone(), seed);
    let mut rng = fastrand::Rng::with_seed(seed.rotate_left(17));
    let base = base_request(&plan, &token);
    let needs_time = plan.request.payload.needs_time();
    let mut rec = Recorder {
        tx: sh.tx.clone(),
        batch: Vec::new(),
        last_flush: Instant::now(),
    };
    // (exchange, intended offset, phase) of each request in flight, at most NSTART of them.
    let nstart = plan.transmission.nstart.max(1) as usize;
    let mut in_flight: Vec<(ExchangeId, Duration, u16)> = Vec::with_capacity(nstart);
    let mut stopping = false;
    let mut aborted_as = Outcome::Unfinished;
    let mut buf = vec![0u8; 2048];
    let mut send_alarm = sh.alarms.alarm();
    // tokio's timer for the rest (retransmissions, hand-overs, the hard end): one entry, moved when needed.
    let sleep = tokio::time::sleep_until(sh.hard_end.into());
    tokio::pin!(sleep);

    loop {
        let now = Instant::now();
        if rec.deadline().is_some_and(|t| t <= now) {
            rec.flush(now);
        }
        if let Some(Churn::After(every)) = sh.churn {
            churn_due |= now >= session_opened + every;
        }
        while in_flight.len() < nstart && !stopping && !lost_session && !churn_due {
            let Some(t) = pacer.next().filter(|t| sh.t0 + *t <= now) else {
                break;
            };
            {
                let mut msg = base.clone();
                let unix_ms = if needs_time {
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64)
                } else {
                    0
                };
                plan.request.payload.render(
                    &mut RenderContext {
                        index: plan.devices.global(index),
                        token: &token,
                        counter: tally.sent,
                        rng: &mut rng,
                        unix_ms,
                    },
                    &mut msg.payload,
                );
                let id = ep.start(now, msg);
                tally.sent += 1;
                session_requests += 1;
                if let Some(Churn::Requests(every)) = sh.churn {
                    churn_due |= session_requests >= every;
                }
                if let Some(m) = &metrics {
                    m.in_flight.inc();
                }
                in_flight.push((id, t, plan.phase_at(t) as u16));
                pacer.on_sent(t);
            }
        }

        while let Some(datagram) = ep.poll_transmit() {
            if let Err(e) = link.send(&datagram).await {
                aborted_as = match (&link, e.kind()) {
                    (_, ErrorKind::ConnectionRefused) => Outcome::Unreachable,
                    (Link::Dtls(_), _) => {
                        lost_session = true;
                        Outcome::SessionClosed
                    }
                    _ => Outcome::SendFailed,
                };
                ep.abort_all(Instant::now());
                break;
            }
        }

        while let Some(done) = ep.poll_event() {
            let slot = in_flight
                .iter()
                .position(|f| f.0 == done.id)
                .expect("a completed exchange was in flight");
            let (_, intended, phase) = in_flight.swap_remove(slot);
            if let Some(m) = &metrics {
                m.in_flight.dec();
            }
            let intended_at = sh.t0 + intended;
            let outcome = classify(&done, aborted_as);
            if let (None, Some(e)) = (&tally.first_malformed, &done.malformed) {
                tally.first_malformed = Some(e.to_string());
            }
            if outcome == Outcome::Ok {
                tally.ok += 1;
            }
            if matches!(link, Link::Dtls(_)) {
                if matches!(outcome, Outcome::Timeout | Outcome::Unreachable) {
                    unanswered_in_row += 1;
                    lost_session |= unanswered_in_row >= LOST_AFTER;
                } else if outcome != Outcome::SessionClosed {
                    unanswered_in_row = 0;
                }
            }
            let response = match &done.outcome {
                ExchangeOutcome::Response { response, .. } => Some(response),
                _ => None,
            };
            let code = response.map(|r| r.code);
            let corrected = done.completed.saturating_duration_since(intended_at);
            let broken = super::expect::check(&plan.expect, response, corrected);
            if broken != 0 && tally.broken_examples.len() < EXAMPLES {
                tally
                    .broken_examples
                    .push(super::expect::describe_response(response, outcome));
            }
            let us = |d: Duration| d.as_micros() as u64;
            rec.record(
                Sample {
                    phase,
                    outcome,
                    code,
                    corrected_us: us(corrected),
                    uncorrected_us: us(done.completed.saturating_duration_since(done.first_sent)),
                    send_lag_us: us(done.first_sent.saturating_duration_since(intended_at)),
                    completed_ms: done.completed.saturating_duration_since(sh.t0).as_millis()
                        as u64,
                    retransmissions: done.retransmissions,
                    broken,
                },
                done.completed,
            );
            pacer.on_completed(done.completed.saturating_duration_since(sh.t0));
        }
        aborted_as = Outcome::Unfinished;

        if in_flight.is_empty() && (stopping || pacer.is_done()) {
            break;
        }
        if (lost_session || churn_due) && in_flight.is_empty() {
            let cause = if lost_session {
                HandshakeCause::Reconnect
            } else {
                HandshakeCause::Churn
            };
            lost_session = false;
            churn_due = false;
            unanswered_in_row = 0;
            rec.flush(Instant::now());
            sh.link_change(&link, -1);
            Box::pin(link.close()).await;
            match Box::pin(rehandshake(
                &sh,
                index,
                sessions.as_ref(),
                cause,
                &mut pacer,
                &mut rec,
                &mut tally,
            ))
            .await
            {
                Some(new) => {
                    link = new;
                    sh.link_change(&link, 1);
                }
                None => {
                    link_counted = false;
                    break;
                }
            }
            session_requests = 0;
            session_opened = Instant::now();
            continue;
        }

        // The next send, when one may go out: woken by the precise alarm, the rest by tokio's timer.
        let next_send = pacer
            .next()
            .filter(|_| in_flight.len() < nstart && !stopping && !lost_session)
            .map(|t| sh.t0 + t);
        let mut wake = sh.hard_end;
        if let Some(t) = ep.poll_timeout() {
            wake = wake.min(t);
        }
        // Samples waiting for hand-over go with this device's next wake-up when it comes within
        // FLUSH_EVERY of their deadline: a wake-up of their own for every device every few hundred
        // milliseconds would add thousands a second to a fleet's, each a timer expiry and a task poll.
        if let Some(t) = rec.deadline() {
            if next_send.is_none_or(|s| s > t + FLUSH_EVERY) {
                wake = wake.min(t);
            }
        }
        if let (Some(Churn::After(every)), false) = (sh.churn, churn_due) {
            wake = wake.min(session_opened + every);
        }
        let send_at = next_send.filter(|at| *at < wake);
        if sleep.deadline() != wake.into() {
            sleep.as_mut().reset(wake.into());
        }
        tokio::select! {
            _ = send_alarm.until(send_at.unwrap_or(wake)), if send_at.is_some() => {}
            _ = sh.cancel.cancelled(), if !stopping => {
                stopping = true;
                ep.abort_all(Instant::now());
            }
            r = link.recv(&mut buf) => match r {
                Ok(n) => ep.handle_datagram(Instant::now(), &buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    aborted_as = Outcome::Unreachable;
                    ep.abort_all(Instant::now());
                }
                Err(_) if matches!(link, Link::Dtls(_)) => {
                    // Alert or close from the server: the session is gone.
                    aborted_as = Outcome::SessionClosed;
                    lost_session = true;
                    ep.abort_all(Instant::now());
                }
                Err(_) => {}
            },
            _ = &mut sleep => {
                let now = Instant::now();
                ep.handle_timeout(now);
                if rec.deadline().is_some_and(|t| t <= now) {
                    rec.flush(now);
                }
                if now >= sh.hard_end {
                    stopping = true;
                    ep.abort_all(now);
                }
            }
        }
    }
    rec.flush(Instant::now());
    if link_counted {
        sh.link_change(&link, -1);
    }
    sh.device_change(-1);
    Box::pin(link.close()).await;
    finish(tally, &ep)
}

/// The tally with the endpoint's protocol counters.
fn finish(mut tally: DeviceTally, ep: &ClientEndpoint) -> DeviceTally {
    let stats = ep.stats();
    tally.malformed = stats.malformed;
    tally.unmatched = stats.unmatched;
    tally.duplicates = stats.duplicates;
    tally
}
