//! junit.xml: the run as JUnit XML for CI test reporters (GitHub Actions reporters, GitLab
//! `artifacts:reports:junit`, Jenkins). Serialized by `quick-junit`, which escapes text and attributes and drops
//! characters XML cannot carry.
//!
//! Three suites, always present so consumers can rely on the names:
//! - `checks`: one test case per [`Report::checks`] entry that is not a trust case.
//! - `trust`: one test case per trust case (classname `trust`), timed by its handshake.
//! - `run`: `target measurable` (fails when [`crate::report::verdict::of`] is a fault), `completed` (fails when the run
//!   was interrupted) and the load's security: `security: verification enabled` over DTLS (skipped, never
//!   passed, when the load ran with verification disabled), `security: no transport security (plain CoAP)`
//!   over plain CoAP, `security: no load traffic` (skipped) when the run's cases were all it did; with the
//!   run's identity as properties. A trust case probing `ca: none` is judged in the
//!   `trust` suite only.
//!
//! A failing case has `message="expected X, observed Y"` and the full text in the element's body.

use super::model::{Check, Report, TrustCaseResult};
use crate::report::verdict::{self, Verdict};
use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};
use std::collections::HashSet;
use std::fmt::Write;
use std::time::Duration;

/// The name of the top-level `<testsuites>` element.
pub const SUITES_NAME: &str = "coap-harness";

/// The `<system-out>` line of the `run` suite when certificate verification was disabled.
pub const INSECURE_LINE: &str = "INSECURE: certificate verification was disabled";

/// The `run` suite's security case over DTLS.
pub const SECURITY_VERIFIED: &str = "security: verification enabled";
/// The `run` suite's security case over plain CoAP: a fact, not a claim that anything was verified.
pub const SECURITY_PLAIN: &str = "security: no transport security (plain CoAP)";
/// The `run` suite's security case when no load or conformance traffic ran (the cases were all it did).
pub const SECURITY_NO_LOAD: &str = "security: no load traffic";

/// Renders the report as a JUnit XML document.
pub fn render(r: &Report) -> String {
    let mut doc = quick_junit::Report::new(SUITES_NAME);
    // Trust cases run before the load, outside `duration_s`.
    doc.set_time(seconds(r.duration_s) + trust_time(r));
    doc.add_test_suites([checks(r), trust(r), run(r)]);
    doc.add_test_suites(super::device_trust::junit(r));
    doc.to_string().expect("serializing to memory")
}

fn checks(r: &Report) -> TestSuite {
    // The engine also lists each trust case as a check; those belong to the `trust` suite.
    let trust: HashSet<String> = r
        .trust_cases
        .iter()
        .map(|c| format!("trust case: {}", c.name))
        .chain(r.device_trust.iter().map(super::device_trust::check_name))
        .collect();
    let mut suite = TestSuite::new("checks");
    for c in r.checks.iter().filter(|c| !trust.contains(&c.name)) {
        suite.add_test_case(check_case(c));
    }
    suite
}

fn check_case(c: &Check) -> TestCase {
    let status = if c.passed {
        TestCaseStatus::success()
    } else {
        failure(
            &expected_observed(&c.expected, &c.observed),
            "check",
            format!(
                "check: {}\nexpected: {}\nobserved: {}",
                c.name, c.expected, c.observed
            ),
        )
    };
    let mut case = TestCase::new(c.name.as_str(), status);
    case.set_classname("checks");
    case
}

fn trust(r: &Report) -> TestSuite {
    let mut suite = TestSuite::new("trust");
    suite.set_time(trust_time(r));
    for c in &r.trust_cases {
        suite.add_test_case(trust_case(c));
    }
    suite
}

fn trust_time(r: &Report) -> Duration {
    Duration::from_micros(r.trust_cases.iter().map(|c| c.handshake_us).sum())
}

fn trust_case(c: &TrustCaseResult) -> TestCase {
    let text = trust_text(c);
    let status = if c.passed {
        TestCaseStatus::success()
    } else {
        failure(
            &expected_observed(&c.expected, &c.observed),
            "trust",
            text.clone(),
        )
    };
    let mut case = TestCase::new(c.name.as_str(), status);
    case.set_classname("trust")
        .set_time(Duration::from_micros(c.handshake_us));
    if c.passed {
        // What was seen is worth keeping even when it matched (the reason a negative case was refused).
        case.set_system_out(text);
    }
    case
}

/// Everything known about a trust case, one fact a line.
fn trust_text(c: &TrustCaseResult) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "trust case: {}", c.name);
    let _ = writeln!(s, "expected: {}", c.expected);
    let _ = writeln!(s, "observed: {}", c.observed);
    let _ = writeln!(s, "verdict: {}", c.verdict);
    if let Some(d) = &c.detail {
        let _ = writeln!(s, "detail: {d}");
    }
    if let Some(saw) = &c.server_saw {
        let _ = writeln!(s, "server saw: {saw}");
    }
    let _ = writeln!(s, "refused by: {}", c.refused_by);
    let _ = writeln!(s, "DTLS layer: {}", c.handshake_layer());
    let _ = writeln!(s, "CoAP layer: {}", c.coap_layer());
    if let Some(code) = &c.code {
        let _ = writeln!(s, "response code: {code}");
    }
    if let Some(p) = &c.presented {
        let _ = writeln!(
            s,
            "server presented: subject {}, issuer {}, valid {} to {}",
            p.subject, p.issuer, p.not_before, p.not_after
        );
    }
    if c.insecure {
        let _ = writeln!(s, "{INSECURE_LINE} for this case");
    }
    let _ = write!(s, "handshake: {} µs", c.handshake_us);
    s
}

fn run(r: &Report) -> TestSuite {
    let mut suite = TestSuite::new("run");
    suite.set_time(seconds(r.duration_s));
    let v = verdict::of(r);
    suite.add_properties([
        Property::new("verdict", v.word().to_ascii_lowercase()),
        Property::new("exit_code", v.code().to_string()),
        Property::new("verdict_reason", v.reason().unwrap_or("")),
        Property::new("scenario", r.scenario.name.as_str()),
        Property::new("target", r.target.url.as_str()),
        Property::new("transport", r.target.transport.as_str()),
        Property::new("verification", r.security.verification.as_str()),
        Property::new("insecure", r.security.insecure.to_string()),
        Property::new("harness_version", r.harness_version.as_str()),
        Property::new("started_at", r.started_at.as_str()),
    ]);

    let measurable = match verdict::of(r) {
        Verdict::Fault(why) => failure(
            &why,
            "fault",
            format!(
                "expected: a target that answers with valid CoAP\nobserved: {why}\nThe figures of this run \
                 do not measure the target."
            ),
        ),
        Verdict::Passed | Verdict::Failed(_) => TestCaseStatus::success(),
    };
    let completed = if r.interrupted {
        let why = "the run was interrupted before it finished";
        failure(
            why,
            "interrupted",
            format!(
                "expected: the run to complete its {} phases\nobserved: {why}; the figures cover {:.1} s",
                r.phases.len(),
                r.duration_s
            ),
        )
    } else {
        TestCaseStatus::success()
    };
    let (security_name, security) = security_case(r);
    for (name, status) in [
        ("target measurable", measurable),
        ("completed", completed),
        (security_name, security),
    ] {
        let mut case = TestCase::new(name, status);
        case.set_classname("run");
        if name.starts_with("security") {
            case.set_system_out(r.security.describe());
        }
        suite.add_test_case(case);
    }

    let mut out = Vec::new();
    if r.security.insecure {
        out.push(INSECURE_LINE.to_string());
    }
    out.extend(
        r.warnings
            .iter()
            .filter(|w| !w.starts_with("INSECURE"))
            .map(|w| format!("warning: {w}")),
    );
    if !out.is_empty() {
        suite.set_system_out(out.join("\n"));
    }
    suite
}

/// The `security` case of the `run` suite, which speaks of the load traffic only (a trust case that probes
/// `ca: none` is judged in its own row): plain CoAP is named as such and never "verification enabled";
/// verification disabled for the load is skipped, never passed.
fn security_case(r: &Report) -> (&'static str, TestCaseStatus) {
    if r.security.plain() {
        return (SECURITY_PLAIN, TestCaseStatus::success());
    }
    if r.security.no_load() {
        let mut s = TestCaseStatus::skipped();
        s.set_message("no load traffic: each case reports its own verification");
        return (SECURITY_NO_LOAD, s);
    }
    let status = if r.security.insecure {
        let mut s = TestCaseStatus::skipped();
        s.set_message("verification disabled on purpose by the scenario: INSECURE")
            .set_description(format!(
                "{INSECURE_LINE} for the load devices (no CA given): the sessions were encrypted, but nothing \
                 proved the server's identity"
            ));
        s
    } else if r.security.verification == "disabled" {
        // No load traffic ran (a trust-only run): nothing went unverified, and nothing was verified either.
        let mut s = TestCaseStatus::skipped();
        s.set_message("no load traffic: each trust case reports its own verification");
        s
    } else {
        TestCaseStatus::success()
    };
    (SECURITY_VERIFIED, status)
}

fn expected_observed(expected: &str, observed: &str) -> String {
    format!("expected {expected}, observed {observed}")
}

/// A `<failure>` with a one-line message and the full story in its body.
fn failure(message: &str, ty: &str, body: String) -> TestCaseStatus {
    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
    s.set_message(one_line(message))
        .set_type(ty)
        .set_description(body);
    s
}

/// Attribute values lose their line breaks to XML normalisation anyway; make that explicit.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}
