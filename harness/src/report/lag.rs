//! Whether the generator's own send lag dominates a run's latency: the warning every output carries when
//! requests left their slots later, at the median, than the server took to answer them.

use super::model::{human_us, RequestStats};

/// The warning, when send lag p50 is larger than the uncorrected (from the actual send) latency p50: the
/// latency measured from the intended send time is then mostly the generator's own scheduling delay.
pub fn send_lag_warning(stats: &RequestStats) -> Option<String> {
    let lag = &stats.send_lag;
    let unc = &stats.latency_uncorrected;
    if lag.count == 0 || unc.count == 0 || lag.p50_us <= unc.p50_us {
        return None;
    }
    let by = lag.p50_us - unc.p50_us;
    Some(format!(
        "send lag dominates the latency: send lag p50 {} is larger than the uncorrected latency p50 {} by {} \
         ({:.1}x); the latency from the intended send time (p50 {}) is mostly the generator's own scheduling \
         delay, not the server's: give the generator more CPU or lower the rate",
        human_us(lag.p50_us),
        human_us(unc.p50_us),
        human_us(by),
        lag.p50_us as f64 / unc.p50_us.max(1) as f64,
        human_us(stats.latency.p50_us),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::PhaseAgg;

    fn stats(lag_us: u64, uncorrected_us: u64) -> RequestStats {
        let mut agg = PhaseAgg::default();
        for _ in 0..10 {
            agg.send_lag.record(lag_us).unwrap();
            agg.uncorrected.record(uncorrected_us).unwrap();
            agg.corrected.record(lag_us + uncorrected_us).unwrap();
        }
        RequestStats::from_agg(&agg, 1.0)
    }

    #[test]
    fn warns_when_send_lag_p50_exceeds_uncorrected_p50() {
        let w = send_lag_warning(&stats(1000, 56)).expect("a warning");
        assert!(
            w.starts_with("send lag dominates the latency: send lag p50 1.00ms is larger than the uncorrected latency p50 56µs by 944µs"),
            "{w}"
        );
        assert!(w.contains("(p50 1.06ms)"), "{w}");
    }

    #[test]
    fn silent_when_the_server_dominates_or_nothing_was_measured() {
        assert_eq!(send_lag_warning(&stats(20, 56)), None);
        assert_eq!(send_lag_warning(&stats(56, 56)), None);
        assert_eq!(
            send_lag_warning(&RequestStats::from_agg(&PhaseAgg::default(), 1.0)),
            None
        );
    }
}
