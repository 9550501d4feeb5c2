//! What happens to one datagram: lost, delivered once or twice, delayed (with jitter), or held back so the
//! next ones overtake it. Pure logic over a seeded generator: the same seed and the same sequence of
//! datagrams give the same decisions, and no clock is read (delays are durations from arrival).

use std::fmt;
use std::time::Duration;

/// Faults on one direction. Probabilities are fractions (0.05 is 5%).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Direction {
    pub loss: f64,
    pub duplicate: f64,
    pub reorder: f64,
    /// Every delivered copy waits this long...
    pub delay: Duration,
    /// ...plus or minus up to this much (uniform).
    pub jitter: Duration,
}

impl Direction {
    /// Whether this direction changes anything.
    pub fn is_clean(&self) -> bool {
        self.loss == 0.0
            && self.duplicate == 0.0
            && self.reorder == 0.0
            && self.delay.is_zero()
            && self.jitter.is_zero()
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loss {}%, duplicate {}%, reorder {}%, delay {}±{}",
            self.loss * 100.0,
            self.duplicate * 100.0,
            self.reorder * 100.0,
            humantime::format_duration(self.delay),
            humantime::format_duration(self.jitter)
        )
    }
}

/// What the model did, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FaultStats {
    /// Datagrams that arrived.
    pub datagrams: u64,
    pub dropped: u64,
    /// Datagrams delivered twice.
    pub duplicated: u64,
    /// Datagrams held back so later ones overtook them.
    pub reordered: u64,
}

impl fmt::Display for FaultStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} datagrams: {} dropped, {} duplicated, {} reordered",
            self.datagrams, self.dropped, self.duplicated, self.reordered
        )
    }
}

/// The extra hold of a reordered datagram beyond the largest ordinary delay, so that datagrams sent just
/// after it are delivered first.
pub const REORDER_HOLD: Duration = Duration::from_millis(5);

/// Decides the fate of each datagram of one direction.
#[derive(Debug)]
pub struct FaultModel {
    spec: Direction,
    rng: fastrand::Rng,
    stats: FaultStats,
}

impl FaultModel {
    pub fn new(spec: Direction, seed: u64) -> Self {
        FaultModel {
            spec,
            rng: fastrand::Rng::with_seed(seed),
            stats: FaultStats::default(),
        }
    }

    pub fn stats(&self) -> FaultStats {
        self.stats
    }

    /// For one datagram that just arrived: after how long each copy is delivered (empty: lost; two
    /// entries: duplicated).
    pub fn decide(&mut self) -> Vec<Duration> {
        self.stats.datagrams += 1;
        if self.chance(self.spec.loss) {
            self.stats.dropped += 1;
            return Vec::new();
        }
        let mut first = self.delay();
        if self.chance(self.spec.reorder) {
            self.stats.reordered += 1;
            first = self.spec.delay + self.spec.jitter + REORDER_HOLD.max(self.spec.delay);
        }
        if self.chance(self.spec.duplicate) {
            self.stats.duplicated += 1;
            let second = self.delay();
            return vec![first, second];
        }
        vec![first]
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.f64() < p
    }

    fn delay(&mut self) -> Duration {
        let j = self.spec.jitter.as_secs_f64();
        if j == 0.0 {
            return self.spec.delay;
        }
        let offset = j * (2.0 * self.rng.f64() - 1.0);
        Duration::from_secs_f64((self.spec.delay.as_secs_f64() + offset).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(loss: f64, duplicate: f64, reorder: f64) -> Direction {
        Direction {
            loss,
            duplicate,
            reorder,
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_decisions() {
        let run = |seed| {
            let mut m = FaultModel::new(spec(0.1, 0.1, 0.1), seed);
            (0..1000).map(|_| m.decide()).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn rates_come_out_as_asked() {
        let mut m = FaultModel::new(spec(0.05, 0.01, 0.02), 1);
        let n = 200_000;
        for _ in 0..n {
            for d in m.decide() {
                assert!(d <= Duration::from_millis(50), "{d:?}");
            }
        }
        let s = m.stats();
        assert_eq!(s.datagrams, n);
        let frac = |x: u64| x as f64 / n as f64;
        assert!((frac(s.dropped) - 0.05).abs() < 0.005, "{s}");
        assert!((frac(s.duplicated) - 0.01 * 0.95).abs() < 0.002, "{s}");
        assert!((frac(s.reordered) - 0.02 * 0.95).abs() < 0.002, "{s}");
    }

    #[test]
    fn delays_stay_within_the_jitter_and_reordered_ones_come_last() {
        let mut m = FaultModel::new(spec(0.0, 0.0, 0.5), 3);
        let mut saw_reorder = false;
        for _ in 0..1000 {
            let d = m.decide();
            assert_eq!(d.len(), 1);
            if d[0] > Duration::from_millis(30) {
                // held past every ordinary delivery (20 ms + 10 ms jitter)
                assert_eq!(d[0], Duration::from_millis(50));
                saw_reorder = true;
            } else {
                assert!(d[0] >= Duration::from_millis(10), "{:?}", d[0]);
            }
        }
        assert!(saw_reorder);
    }

    #[test]
    fn a_clean_direction_delivers_everything_at_once() {
        let mut m = FaultModel::new(Direction::default(), 0);
        assert!(Direction::default().is_clean());
        for _ in 0..100 {
            assert_eq!(m.decide(), vec![Duration::ZERO]);
        }
        let mut all_lost = FaultModel::new(
            Direction {
                loss: 1.0,
                ..Direction::default()
            },
            0,
        );
        assert!(all_lost.decide().is_empty());
        assert_eq!(all_lost.stats().dropped, 1);
    }
}
