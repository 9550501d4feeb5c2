//! The outcome of one request: exactly one class per request sent, counted by variant.

use serde::{Deserialize, Serialize};

/// How one request ended. `sent == sum of all classes` holds for every phase and the whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// A 2.xx response.
    Ok,
    /// A 4.xx or 5.xx response (the code is counted separately).
    CoapError,
    /// No ACK after every retransmission (CON), or no response in time (NON).
    Timeout,
    /// The CON was acknowledged with an empty ACK, but the separate response never came.
    ResponseTimeout,
    /// The server answered RST.
    Reset,
    /// ICMP port or host unreachable: nothing listens at the target.
    Unreachable,
    /// The server sent datagrams that are not valid CoAP, and no valid response.
    Malformed,
    /// The local socket refused to send.
    SendFailed,
    /// The DTLS session ended (alert or close from the server) while the request was in flight.
    SessionClosed,
    /// Still in flight when the run ended (drain expired, or interrupted).
    Unfinished,
}

impl Outcome {
    pub const ALL: [Outcome; 10] = [
        Outcome::Ok,
        Outcome::CoapError,
        Outcome::Timeout,
        Outcome::ResponseTimeout,
        Outcome::Reset,
        Outcome::Unreachable,
        Outcome::Malformed,
        Outcome::SendFailed,
        Outcome::SessionClosed,
        Outcome::Unfinished,
    ];

    /// The snake_case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::CoapError => "coap_error",
            Outcome::Timeout => "timeout",
            Outcome::ResponseTimeout => "response_timeout",
            Outcome::Reset => "reset",
            Outcome::Unreachable => "unreachable",
            Outcome::Malformed => "malformed",
            Outcome::SendFailed => "send_failed",
            Outcome::SessionClosed => "session_closed",
            Outcome::Unfinished => "unfinished",
        }
    }

    /// Whether a response (of any code) arrived, so the request has a latency.
    pub fn has_latency(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::CoapError)
    }
}

/// One counter per [`Outcome`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct OutcomeCounts {
    pub ok: u64,
    pub coap_error: u64,
    pub timeout: u64,
    pub response_timeout: u64,
    pub reset: u64,
    pub unreachable: u64,
    pub malformed: u64,
    pub send_failed: u64,
    #[serde(default)]
    pub session_closed: u64,
    pub unfinished: u64,
}

impl OutcomeCounts {
    fn slot(&mut self, o: Outcome) -> &mut u64 {
        match o {
            Outcome::Ok => &mut self.ok,
            Outcome::CoapError => &mut self.coap_error,
            Outcome::Timeout => &mut self.timeout,
            Outcome::ResponseTimeout => &mut self.response_timeout,
            Outcome::Reset => &mut self.reset,
            Outcome::Unreachable => &mut self.unreachable,
            Outcome::Malformed => &mut self.malformed,
            Outcome::SendFailed => &mut self.send_failed,
            Outcome::SessionClosed => &mut self.session_closed,
            Outcome::Unfinished => &mut self.unfinished,
        }
    }

    pub fn add(&mut self, o: Outcome, n: u64) {
        *self.slot(o) += n;
    }

    pub fn get(&self, o: Outcome) -> u64 {
        *self.clone().slot(o)
    }

    pub fn merge(&mut self, other: &OutcomeCounts) {
        for o in Outcome::ALL {
            self.add(o, other.get(o));
        }
    }

    /// Every request counted: this must equal the number sent.
    pub fn total(&self) -> u64 {
        Outcome::ALL.iter().map(|o| self.get(*o)).sum()
    }

    /// Everything but `ok`.
    pub fn failures(&self) -> u64 {
        self.total() - self.ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_class_once() {
        let mut c = OutcomeCounts::default();
        for (i, o) in Outcome::ALL.iter().enumerate() {
            c.add(*o, i as u64 + 1);
        }
        assert_eq!(c.total(), (1..=10).sum::<u64>());
        assert_eq!(c.failures(), c.total() - 1);
        let json = serde_json::to_value(c).unwrap();
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(json[o.name()], i as u64 + 1, "{}", o.name());
        }
    }
}
