//! Fleet-wide pacing of the sessions a device opens after its first (a lost session, handshake churn):
//! `devices.connect_rate` applies to them too. Each new session takes the next free slot, `1/rate` after the
//! one before, so a fleet that loses every session at once (a server restart) reconnects at the configured
//! rate instead of all at once; without a rate they reconnect as soon as they notice.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Slots for new sessions, `1/rate` apart, shared by every device.
#[derive(Debug)]
pub struct ReconnectPacer {
    gap: Duration,
    next: Mutex<Option<Instant>>,
}

impl ReconnectPacer {
    /// `rate` new sessions per second (positive; validated with the scenario).
    pub fn new(rate: f64) -> Self {
        ReconnectPacer {
            gap: Duration::from_secs_f64(1.0 / rate),
            next: Mutex::new(None),
        }
    }

    /// Reserves the first free slot at or after `now` and returns when it starts.
    pub fn slot(&self, now: Instant) -> Instant {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let at = next.map_or(now, |n| n.max(now));
        *next = Some(at + self.gap);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_a_gap_apart_and_never_in_the_past() {
        let p = ReconnectPacer::new(100.0);
        let t = Instant::now();
        let gap = Duration::from_millis(10);
        // A burst at the same instant: one slot each, 10 ms apart.
        let burst: Vec<Instant> = (0..5).map(|_| p.slot(t)).collect();
        for (i, s) in burst.iter().enumerate() {
            assert_eq!(*s, t + gap * i as u32);
        }
        // Later than every reserved slot: at once.
        let later = t + Duration::from_secs(1);
        assert_eq!(p.slot(later), later);
        assert_eq!(p.slot(later), later + gap);
    }
}
