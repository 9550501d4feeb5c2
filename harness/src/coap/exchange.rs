//! Client-side exchange state (RFC 7252 §4 and §5.2), sans-IO: message IDs and tokens, CON retransmission
//! with exponential back-off, matching of piggybacked and separate responses, RST. The caller passes `now`
//! in, feeds received datagrams to [`ClientEndpoint::handle_datagram`], fires
//! [`ClientEndpoint::handle_timeout`] at [`ClientEndpoint::poll_timeout`], and sends what
//! [`ClientEndpoint::poll_transmit`] yields. No sockets, no clock: deterministic for a given seed.

use super::code::MessageType;
use super::message::{DecodeError, Message, Token};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Transmission parameters (RFC 7252 §4.8), plus how long to wait for a response once a request is known
/// to have arrived.
#[derive(Clone, Debug, PartialEq)]
pub struct TransmissionParams {
    /// ACK_TIMEOUT: the initial retransmission timeout's lower bound.
    pub ack_timeout: Duration,
    /// ACK_RANDOM_FACTOR: the initial timeout is drawn from `[ack_timeout, ack_timeout * factor]`.
    pub ack_random_factor: f64,
    /// MAX_RETRANSMIT: retransmissions of a CON before giving up.
    pub max_retransmit: u32,
    /// How long to wait for the response after a CON was acknowledged with an empty ACK, or after a NON
    /// request was sent.
    pub response_timeout: Duration,
    /// NSTART: requests a device keeps in flight at once (RFC 7252 §4.7 default 1). The endpoint itself
    /// accepts any number; the device loop holds to this bound.
    pub nstart: u32,
}

impl Default for TransmissionParams {
    fn default() -> Self {
        TransmissionParams {
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 4,
            response_timeout: Duration::from_secs(30),
            nstart: 1,
        }
    }
}

impl TransmissionParams {
    /// A CON's first retransmission timeout (§4.2): random in `[ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR]`.
    /// The one back-off of the crate: the client exchange and the server's separate responses and
    /// notifications both draw it here.
    pub fn initial_timeout(&self, rng: &mut fastrand::Rng) -> Duration {
        let factor = 1.0 + rng.f64() * (self.ack_random_factor - 1.0);
        self.ack_timeout.mul_f64(factor)
    }

    /// When a CON's retransmission timer fires after `retransmissions` resends: the doubled timeout for the
    /// next resend (§4.2), or `None` once MAX_RETRANSMIT resends were sent and the sender gives up.
    pub fn next_timeout(&self, retransmissions: u32, timeout: Duration) -> Option<Duration> {
        (retransmissions < self.max_retransmit).then(|| timeout * 2)
    }

    /// MAX_TRANSMIT_WAIT (§4.8.2): the longest a CON can go unacknowledged before it times out.
    pub fn max_transmit_wait(&self) -> Duration {
        self.ack_timeout
            .mul_f64(f64::from((1u32 << (self.max_retransmit + 1)) - 1) * self.ack_random_factor)
    }
}

/// Identifies one request started on an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExchangeId(pub u64);

/// How an exchange ended.
#[derive(Clone, Debug, PartialEq)]
pub enum ExchangeOutcome {
    /// A response arrived: piggybacked on the ACK, or separately (after an empty ACK, or to a NON).
    Response { response: Message, separate: bool },
    /// The peer answered with RST.
    Reset,
    /// No ACK after every retransmission (`acked: false`), or no response in time after the request was
    /// acknowledged or sent as NON (`acked: true` for an acknowledged CON).
    Timeout { acked: bool },
    /// Abandoned by the caller (end of run, Ctrl-C) before any of the above.
    Aborted,
}

/// A finished exchange, with the facts a recorder needs.
#[derive(Clone, Debug)]
pub struct Completed {
    pub id: ExchangeId,
    pub outcome: ExchangeOutcome,
    /// Retransmissions of the request (0 when the first transmission was answered).
    pub retransmissions: u32,
    pub first_sent: Instant,
    pub completed: Instant,
    /// The first undecodable datagram received while this exchange was open, if any.
    pub malformed: Option<DecodeError>,
}

/// Counters of what the endpoint saw besides exchange outcomes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub retransmissions: u64,
    /// Datagrams that failed to decode.
    pub malformed: u64,
    /// Well-formed messages that matched no open exchange (late or stray ACKs, responses, RSTs).
    pub unmatched: u64,
    /// Repeated CON responses we acknowledged again.
    pub duplicates: u64,
    /// RSTs we sent to reject unexpected messages.
    pub resets_sent: u64,
}

#[derive(Debug)]
enum Waiting {
    /// A CON not yet acknowledged: retransmit at the deadline.
    Ack,
    /// Acknowledged CON, or NON: the response is due by the deadline.
    Response,
}

#[derive(Debug)]
struct Pending {
    id: ExchangeId,
    mtype: MessageType,
    message_id: u16,
    token: Token,
    wire: Vec<u8>,
    first_sent: Instant,
    retransmissions: u32,
    timeout: Duration,
    deadline: Instant,
    waiting: Waiting,
    malformed: Option<DecodeError>,
}

/// How many acknowledged CON responses are remembered to re-ACK their retransmissions.
const RECENT: usize = 8;

/// One client endpoint (one device's socket): all its open exchanges.
#[derive(Debug)]
pub struct ClientEndpoint {
    params: TransmissionParams,
    rng: fastrand::Rng,
    next_mid: u16,
    next_token: u32,
    next_id: u64,
    pending: Vec<Pending>,
    recent: VecDeque<(u16, Token)>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<Completed>,
    stats: EndpointStats,
    /// Tokens of observations (RFC 7641) still wanted: their notifications are accepted, not reset.
    observing: Vec<Token>,
    notifications: VecDeque<Message>,
}

impl ClientEndpoint {
    /// A new endpoint; `seed` makes message IDs, tokens and retransmission jitter reproducible.
    pub fn new(params: TransmissionParams, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        ClientEndpoint {
            params,
            next_mid: rng.u16(..),
            next_token: rng.u32(..),
            rng,
            next_id: 0,
            pending: Vec::new(),
            recent: VecDeque::with_capacity(RECENT),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
            observing: Vec::new(),
            notifications: VecDeque::new(),
        }
    }

    /// Starts a request with a token of the caller's choosing (an Observe deregistration reuses the
    /// registration's token, RFC 7641 §3.6).
    pub fn start_with_token(
        &mut self,
        now: Instant,
        mut request: Message,
        token: Token,
    ) -> ExchangeId {
        let saved = self.next_token;
        request.token = token;
        let id = self.start_inner(now, request, false);
        self.next_token = saved;
        id
    }

    /// Accepts notifications carrying `token` from now on (after an Observe registration).
    pub fn observe(&mut self, token: Token) {
        if !self.observing.contains(&token) {
            self.observing.push(token);
        }
    }

    /// Stops accepting notifications for `token`: later ones are answered with RST, which cancels the
    /// observation on the server (RFC 7641 §3.6).
    pub fn forget(&mut self, token: Token) {
        self.observing.retain(|t| *t != token);
    }

    /// The next notification received for an observation.
    pub fn poll_notification(&mut self) -> Option<Message> {
        self.notifications.pop_front()
    }

    pub fn params(&self) -> &TransmissionParams {
        &self.params
    }

    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// Exchanges still open.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Starts a request: `request`'s type must be CON or NON; its message ID and token are assigned here.
    pub fn start(&mut self, now: Instant, request: Message) -> ExchangeId {
        self.start_inner(now, request, true)
    }

    fn start_inner(&mut self, now: Instant, mut request: Message, new_token: bool) -> ExchangeId {
        debug_assert!(matches!(request.mtype, MessageType::Con | MessageType::Non));
        let id = ExchangeId(self.next_id);
        self.next_id += 1;
        request.message_id = self.next_mid;
        self.next_mid = self.next_mid.wrapping_add(1);
        if new_token {
            request.token = Token::new(&self.next_token.to_be_bytes()).expect("4 bytes");
            self.next_token = self.next_token.wrapping_add(1);
        }
        let wire = request.to_bytes();
        let (timeout, waiting) = match request.mtype {
            MessageType::Con => (self.params.initial_timeout(&mut self.rng), Waiting::Ack),
            _ => (self.params.response_timeout, Waiting::Response),
        };
        self.transmit.push_back(wire.clone());
        self.pending.push(Pending {
            id,
            mtype: request.mtype,
            message_id: request.message_id,
            token: request.token,
            wire,
            first_sent: now,
            retransmissions: 0,
            timeout,
            deadline: now + timeout,
            waiting,
            malformed: None,
        });
        id
    }

    /// Processes one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        let msg = match Message::decode(datagram) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                for p in &mut self.pending {
                    p.malformed.get_or_insert_with(|| e.clone());
                }
                return;
            }
        };
        match msg.mtype {
            MessageType::Ack => self.on_ack(now, msg),
            MessageType::Rst => match self.position(|p| p.message_id == msg.message_id) {
                Some(i) => self.complete(i, now, ExchangeOutcome::Reset),
                None => self.stats.unmatched += 1,
            },
            MessageType::Con | MessageType::Non => self.on_request_or_separate(now, msg),
        }
    }

    fn on_ack(&mut self, now: Instant, msg: Message) {
        let Some(i) = self.position(|p| {
            p.mtype == MessageType::Con
                && p.message_id == msg.message_id
                && matches!(p.waiting, Waiting::Ack)
        }) else {
            self.stats.unmatched += 1;
            return;
        };
        if msg.code.is_empty() {
            let p = &mut self.pending[i];
            p.waiting = Waiting::Response;
            p.deadline = now + self.params.response_timeout;
        } else if msg.token == self.pending[i].token {
            self.complete(
                i,
                now,
                ExchangeOutcome::Response {
                    response: msg,
                    separate: false,
                },
            );
        } else {
            // A piggybacked response must echo the token (§5.3.2); this one answers something else.
            self.stats.unmatched += 1;
        }
    }

    fn on_request_or_separate(&mut self, now: Instant, msg: Message) {
        let confirmable = msg.mtype == MessageType::Con;
        if !msg.code.is_response() {
            // A request or a CoAP ping aimed at a client: reject it (§4.2, §4.3).
            self.stats.unmatched += 1;
            self.queue(Message::reset(msg.message_id));
            self.stats.resets_sent += 1;
            return;
        }
        if let Some(i) = self.position(|p| p.token == msg.token) {
            if confirmable {
                self.queue(Message::empty_ack(msg.message_id));
                if self.recent.len() == RECENT {
                    self.recent.pop_front();
                }
                self.recent.push_back((msg.message_id, msg.token));
            }
            self.complete(
                i,
                now,
                ExchangeOutcome::Response {
                    response: msg,
                    separate: true,
                },
            );
        } else if self.observing.contains(&msg.token) {
            if confirmable {
                self.queue(Message::empty_ack(msg.message_id));
            }
            self.notifications.push_back(msg);
        } else if confirmable && self.recent.contains(&(msg.message_id, msg.token)) {
            // Our ACK was lost and the server retransmitted its separate response.
            self.stats.duplicates += 1;
            self.queue(Message::empty_ack(msg.message_id));
        } else {
            self.stats.unmatched += 1;
            if confirmable {
                self.queue(Message::reset(msg.message_id));
                self.stats.resets_sent += 1;
            }
        }
    }

    /// Retransmits or times out every exchange whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            let p = &mut self.pending[i];
            if p.deadline > now {
                i += 1;
                continue;
            }
            match p.waiting {
                Waiting::Ack => match self.params.next_timeout(p.retransmissions, p.timeout) {
                    Some(timeout) => {
                        p.retransmissions += 1;
                        p.timeout = timeout;
                        p.deadline = now + p.timeout;
                        let wire = p.wire.clone();
                        self.stats.retransmissions += 1;
                        self.transmit.push_back(wire);
                        i += 1;
                    }
                    None => self.complete(i, now, ExchangeOutcome::Timeout { acked: false }),
                },
                Waiting::Response => {
                    let acked = p.mtype == MessageType::Con;
                    self.complete(i, now, ExchangeOutcome::Timeout { acked });
                }
            }
        }
    }

    /// Ends every open exchange as [`ExchangeOutcome::Aborted`].
    pub fn abort_all(&mut self, now: Instant) {
        while !self.pending.is_empty() {
            self.complete(0, now, ExchangeOutcome::Aborted);
        }
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.deadline).min()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// The next finished exchange.
    pub fn poll_event(&mut self) -> Option<Completed> {
        self.events.pop_front()
    }

    fn position(&self, f: impl Fn(&Pending) -> bool) -> Option<usize> {
        self.pending.iter().position(f)
    }

    fn queue(&mut self, msg: Message) {
        self.transmit.push_back(msg.to_bytes());
    }

    fn complete(&mut self, i: usize, now: Instant, outcome: ExchangeOutcome) {
        let p = self.pending.swap_remove(i);
        self.events.push_back(Completed {
            id: p.id,
            outcome,
            retransmissions: p.retransmissions,
            first_sent: p.first_sent,
            completed: now,
            malformed: p.malformed,
        });
    }
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
