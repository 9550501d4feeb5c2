//! What a device records per request, and the batches it hands to the collector.

use super::outcome::Outcome;
use crate::coap::Code;

/// One finished request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Index of the phase the request was scheduled in (by intended send time).
    pub phase: u16,
    pub outcome: Outcome,
    /// The response code, when a response arrived.
    pub code: Option<Code>,
    /// From the intended send time to the response (free of coordinated omission), in microseconds.
    pub corrected_us: u64,
    /// From the actual first transmission to the response, in microseconds.
    pub uncorrected_us: u64,
    /// How late the request went out versus its schedule, in microseconds.
    pub send_lag_us: u64,
    /// When the request finished, in milliseconds since the run started.
    pub completed_ms: u64,
    pub retransmissions: u32,
    /// Per-request expectations this request broke (bit mask of `ExpectKind::bit`).
    pub broken: u8,
}

/// Samples a device has collected since its last hand-over.
pub type Batch = Vec<Sample>;
