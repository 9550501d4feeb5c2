//! The first window of errors in a run's per-second series and how long the devices took to get out of it
//! (a server restart, a network cut): computed from [`Report::timeseries`], so merged reports get it too.

use super::model::{Report, SeriesPoint};
use serde::{Deserialize, Serialize};

/// The first error window: from the first second with errors to the first later second that completed
/// requests without any error.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Recovery {
    /// Second of the series (from the start of the load) in which the first error completed.
    pub first_error_s: u64,
    /// First later second with completed requests and no errors; absent when the run ended in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_at_s: Option<u64>,
    /// Length of the window (`recovered_at_s - first_error_s`) in milliseconds, at the series' one-second
    /// resolution; absent when the devices never recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_ms: Option<u64>,
    /// Errors that completed inside the window.
    pub errors: u64,
    /// Seconds of the series in the window that had errors.
    pub error_seconds: u64,
}

/// The first error window of `series` (points in any order; seconds without a point are skipped: nothing
/// completed then, so they show neither errors nor recovery). `None` when no second had an error.
pub fn of(series: &[SeriesPoint]) -> Option<Recovery> {
    let mut points: Vec<&SeriesPoint> = series.iter().collect();
    points.sort_by_key(|p| p.t);
    let start = points.iter().position(|p| p.errors > 0)?;
    let first_error_s = points[start].t;
    let mut errors = 0;
    let mut error_seconds = 0;
    let mut recovered_at_s = None;
    for p in &points[start..] {
        if p.errors == 0 && p.requests > 0 {
            recovered_at_s = Some(p.t);
            break;
        }
        if p.errors > 0 {
            errors += p.errors;
            error_seconds += 1;
        }
    }
    Some(Recovery {
        first_error_s,
        recovered_at_s,
        recovery_ms: recovered_at_s.map(|r| (r - first_error_s) * 1000),
        errors,
        error_seconds,
    })
}

/// One line for people: "first errors at 2s, recovered at 4s (2000 ms later; 37 errors in 2 s)".
pub fn describe(r: &Recovery) -> String {
    match (r.recovered_at_s, r.recovery_ms) {
        (Some(at), Some(ms)) => format!(
            "first errors at {}s, recovered at {at}s ({ms} ms later; {} errors in {} s)",
            r.first_error_s, r.errors, r.error_seconds
        ),
        _ => format!(
            "first errors at {}s, not recovered by the end of the run ({} errors in {} s)",
            r.first_error_s, r.errors, r.error_seconds
        ),
    }
}

/// `r`'s recovery figure, when its series had an error window.
pub fn of_report(r: &Report) -> Option<Recovery> {
    of(&r.timeseries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: u64, requests: u64, errors: u64) -> SeriesPoint {
        SeriesPoint {
            t,
            requests,
            errors,
            ..Default::default()
        }
    }

    #[test]
    fn no_errors_is_no_window() {
        assert_eq!(of(&[]), None);
        assert_eq!(of(&[p(0, 10, 0), p(1, 10, 0)]), None);
    }

    #[test]
    fn a_window_ends_at_the_first_clean_second_with_requests() {
        // Second 4 completed nothing (a gap): neither errors nor recovery. Out of order on purpose.
        let s = [
            p(5, 10, 0),
            p(0, 10, 0),
            p(2, 3, 7),
            p(3, 0, 5),
            p(1, 10, 0),
            p(6, 10, 2),
        ];
        let r = of(&s).unwrap();
        assert_eq!(r.first_error_s, 2);
        assert_eq!(r.recovered_at_s, Some(5));
        assert_eq!(r.recovery_ms, Some(3000));
        assert_eq!((r.errors, r.error_seconds), (12, 2));
        assert!(describe(&r).contains("3000 ms later"), "{}", describe(&r));
    }

    #[test]
    fn a_second_that_completed_nothing_is_not_a_recovery() {
        let r = of(&[p(0, 5, 5), p(1, 0, 0), p(2, 4, 0)]).unwrap();
        assert_eq!(r.recovered_at_s, Some(2));
        assert_eq!(r.recovery_ms, Some(2000));
    }

    #[test]
    fn a_run_that_ends_in_the_window_did_not_recover() {
        let r = of(&[p(0, 5, 0), p(1, 5, 1), p(2, 0, 3)]).unwrap();
        assert_eq!(r.first_error_s, 1);
        assert_eq!((r.recovered_at_s, r.recovery_ms), (None, None));
        assert_eq!((r.errors, r.error_seconds), (4, 2));
        assert!(describe(&r).contains("not recovered"), "{}", describe(&r));
    }
}
