//! Judges the scenario's checks again on merged figures, with the same functions a single run uses
//! (`report::thresholds`), from the threshold and expectation texts every shard report carries.

use crate::checks::parse_threshold;
use crate::checks::Threshold;
use crate::report::model::ShardChecks;
use crate::report::thresholds::{judge, judge_expectation, judge_health};
use crate::report::{Check, Report};

/// The expectation and threshold checks of `r`, in the order a single run lists them.
pub fn checks(r: &Report, spec: &ShardChecks) -> Vec<Check> {
    let mut out = Vec::new();
    if !r.phases.is_empty() {
        out.extend(
            spec.expectations
                .iter()
                .map(|e| judge_expectation(&e.kind, &e.text, &r.total, &[])),
        );
    }
    if let Some(bound) = spec.health_max_error_rate.filter(|_| !r.phases.is_empty()) {
        out.push(judge_health(
            &crate::checks::Health {
                max_error_rate: bound,
            },
            &r.total,
        ));
    }
    for text in &spec.thresholds {
        out.push(one(text, "run", |t| {
            judge(t, "run", &r.total, r.handshakes.as_ref())
        }));
    }
    for (phase, texts) in r.phases.iter().zip(&spec.phase_thresholds) {
        let scope = format!("phase {}", phase.name);
        for text in texts {
            out.push(one(text, &scope, |t| {
                judge(t, &scope, &phase.requests, None)
            }));
        }
    }
    out
}

fn one(text: &str, scope: &str, judge: impl FnOnce(&Threshold) -> Check) -> Check {
    match parse_threshold(text) {
        Ok((metric, op, bound)) => judge(&Threshold {
            text: text.into(),
            metric,
            op,
            bound,
            abort_on_fail: false,
        }),
        // A shard made by a newer harness may carry a threshold this one does not know.
        Err(why) => Check {
            name: format!("threshold ({scope}): {text}"),
            passed: false,
            expected: text.into(),
            observed: format!("cannot be judged by this version: {why}"),
        },
    }
}
