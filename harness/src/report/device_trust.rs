//! The device-trust table (`device_trust:` runs) in every output format: which certificates each device
//! under test accepted from the rogue server, with the alert it sent when it refused, and what an attacker
//! could do with each certificate it should not have accepted.

use super::escape::{escape, markdown as md, markdown_code as md_code};
use super::model::{DeviceTrustResult, Report};
use crate::trust::DeviceVerdict;
use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use std::fmt::Write;
use std::time::Duration;

/// The name the checks list a case under (`device trust: DEVICE CASE`).
pub fn check_name(c: &DeviceTrustResult) -> String {
    format!("device trust: {} {}", c.device, c.case)
}

fn result(c: &DeviceTrustResult) -> &'static str {
    match (c.passed, c.verdict) {
        (_, DeviceVerdict::NoConnection) => "ERROR",
        (false, DeviceVerdict::NotRun) => "NOT RUN",
        (true, DeviceVerdict::NotRun) => "not run (expected)",
        (true, _) => "pass",
        (false, _) => "FAIL",
    }
}

/// `## Device trust` for summary.md.
pub fn markdown(s: &mut String, r: &Report) {
    if r.device_trust.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "## Device trust\n\nThe harness played a rogue DTLS server; each case presented one certificate to the device \
         (`client_*` cases: the server demanded a client certificate and judged the device's).\n\n\
         | device | case | result | verdict | expected | alert sent by the device, or the harness's reason |\n|---|---|---|---|---|---|"
    );
    for c in &r.device_trust {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            md(&c.device),
            md(&c.case),
            if c.passed {
                md(result(c))
            } else {
                format!("**{}**", md(result(c)))
            },
            md_code(c.verdict.name()),
            md(c.expected.name()),
            md(c.alert.as_deref().unwrap_or(""))
        );
    }
    let accepted: Vec<&DeviceTrustResult> = r
        .device_trust
        .iter()
        .filter(|c| c.attack.is_some())
        .collect();
    if !accepted.is_empty() {
        let _ = writeln!(s, "\n**Accepted certificates it should have refused:**\n");
        for c in accepted {
            let _ = writeln!(
                s,
                "- {} {} ({}): {}",
                md(&c.device),
                md_code(&c.case),
                md(&c.presented),
                md(c.attack.as_deref().unwrap_or(""))
            );
        }
    }
    let _ = writeln!(s);
}

/// The terminal's device-trust lines.
pub fn terminal(s: &mut String, r: &Report) {
    if r.device_trust.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "  device trust (rogue server, one certificate per case):"
    );
    for c in &r.device_trust {
        let _ = writeln!(
            s,
            "    [{}] {:<22} {:<17} expected {:<9} observed {}{}",
            result(c),
            c.device,
            c.case,
            c.expected,
            c.verdict,
            c.alert
                .as_deref()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default()
        );
        if let Some(a) = &c.attack {
            let _ = writeln!(s, "           an attacker could: {a}");
        }
        if c.verdict == DeviceVerdict::NoConnection {
            let _ = writeln!(
                s,
                "           the device never sent a ClientHello ({})",
                c.exit.as_deref().unwrap_or("no command")
            );
        }
        if c.verdict == DeviceVerdict::NotRun {
            let _ = writeln!(
                s,
                "           this case was not run: the device was not tested for it"
            );
        }
    }
}

/// The report.html section.
pub fn html(s: &mut String, r: &Report) {
    if r.device_trust.is_empty() {
        return;
    }
    s.push_str(
        "<h2>Device trust</h2>\n<p class=\"note\">The harness played a rogue DTLS server; each case presented one \
         certificate to the device under test.</p>\n<table id=\"device-trust\">\n<tr><th>device</th><th>case</th>\
         <th>result</th><th>verdict</th><th>expected</th><th>alert</th><th>certificate presented</th>\
         <th>what an attacker could do</th></tr>\n",
    );
    for c in &r.device_trust {
        let _ = writeln!(
            s,
            "<tr data-device-trust><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td><code>{}</code></td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.device),
            escape(&c.case),
            if c.passed { "pass" } else { "fail" },
            result(c),
            escape(c.verdict.name()),
            escape(c.expected.name()),
            escape(c.alert.as_deref().unwrap_or("")),
            escape(&c.presented),
            escape(c.attack.as_deref().unwrap_or("")),
        );
    }
    s.push_str("</table>\n");
}

/// The `device_trust` JUnit suite (classname `device_trust.DEVICE`), when the run had device-trust cases.
pub fn junit(r: &Report) -> Option<TestSuite> {
    if r.device_trust.is_empty() {
        return None;
    }
    let mut suite = TestSuite::new("device_trust");
    for c in &r.device_trust {
        let status = if c.passed && c.verdict == DeviceVerdict::NotRun {
            let mut st = TestCaseStatus::skipped();
            st.set_message(format!(
                "not run (expected): {}",
                c.alert.as_deref().unwrap_or("")
            ));
            st
        } else if c.passed {
            TestCaseStatus::success()
        } else {
            let kind =
                if c.verdict == DeviceVerdict::NoConnection || c.verdict == DeviceVerdict::NotRun {
                    NonSuccessKind::Error
                } else {
                    NonSuccessKind::Failure
                };
            let mut st = TestCaseStatus::non_success(kind);
            let mut body = format!(
                "certificate: {}\nexpected: {}\nobserved: {}",
                c.presented, c.expected, c.verdict
            );
            if let Some(a) = &c.alert {
                let _ = write!(body, "\nalert: {a}");
            }
            if let Some(a) = &c.attack {
                let _ = write!(body, "\nan attacker could: {a}");
            }
            if let Some(e) = &c.exit {
                let _ = write!(body, "\ndevice command: {e}");
            }
            if let Some(o) = &c.output {
                let _ = write!(body, "\noutput:\n{o}");
            }
            st.set_message(format!("expected {}, observed {}", c.expected, c.verdict))
                .set_type("device_trust")
                .set_description(body);
            st
        };
        let mut case = TestCase::new(c.case.as_str(), status);
        case.set_classname(format!("device_trust.{}", c.device));
        case.set_time(Duration::from_millis(c.elapsed_ms));
        suite.add_test_case(case);
    }
    Some(suite)
}
