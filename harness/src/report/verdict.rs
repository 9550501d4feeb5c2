//! What a finished run means for the exit code: 0 every check held, 1 a check failed (or the run was
//! interrupted), 2 the target could not be measured at all (nothing answered, or it answered garbage).

use crate::report::Report;
use crate::trust::DeviceVerdict;
use serde::{Deserialize, Serialize};

/// The exit status of a run, with the one-line reason for anything but success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// Exit 1.
    Failed(String),
    /// Exit 2: the harness could not measure the target.
    Fault(String),
}

impl Verdict {
    pub fn code(&self) -> u8 {
        match self {
            Verdict::Passed => 0,
            Verdict::Failed(_) => 1,
            Verdict::Fault(_) => 2,
        }
    }

    /// The word every output shows: `PASSED`, `FAILED` or `FAULT`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Passed => "PASSED",
            Verdict::Failed(_) => "FAILED",
            Verdict::Fault(_) => "FAULT",
        }
    }

    /// Why the run did not pass.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Passed => None,
            Verdict::Failed(why) | Verdict::Fault(why) => Some(why),
        }
    }

    /// One line for people: `PASSED`, `FAILED (exit 1): why`, `FAULT (exit 2): why`.
    pub fn line(&self) -> String {
        match self.reason() {
            None => self.word().into(),
            Some(why) => format!("{} (exit {}): {why}", self.word(), self.code()),
        }
    }
}

/// The verdict as report.json carries it (`verdict`), written from [`of`] whenever a report is written.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct RunVerdict {
    /// `passed`, `failed` or `fault`.
    pub status: String,
    /// The exit code the run maps to: 0 passed, 1 failed, 2 fault.
    pub exit_code: u8,
    /// Why the run did not pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&Verdict> for RunVerdict {
    fn from(v: &Verdict) -> Self {
        RunVerdict {
            status: v.word().to_ascii_lowercase(),
            exit_code: v.code(),
            reason: v.reason().map(str::to_string),
        }
    }
}

/// The report with its `verdict` field set from [`of`], as every written report.json carries it.
pub fn stamped(r: &Report) -> Report {
    let mut r = r.clone();
    r.verdict = Some(RunVerdict::from(&of(&r)));
    r.recovery = super::recovery::of_report(&r);
    r
}

pub fn of(r: &Report) -> Verdict {
    let t = &r.total;
    let o = &t.outcomes;
    let url = &r.target.url;
    if r.protocol.malformed_datagrams > 0 {
        return Verdict::Fault(format!(
            "target {url} sent {} datagrams that are not valid CoAP (first: {})",
            r.protocol.malformed_datagrams,
            r.protocol.first_malformed.as_deref().unwrap_or("?")
        ));
    }
    let load = !r.phases.is_empty();
    if load && t.sent == 0 && !r.interrupted {
        if let Some(h) = r.handshakes.as_ref().filter(|h| h.ok == 0 && h.failed > 0) {
            return Verdict::Fault(format!(
                "no DTLS session opened with {url}: {} of {} handshakes failed (first: {})",
                h.failed,
                h.attempted,
                h.first_failure.as_deref().unwrap_or("?")
            ));
        }
        return Verdict::Fault(match &r.devices.first_failure {
            Some(e) => format!("no request was sent: device sockets failed to open ({e})"),
            None => "no request was sent: no device was active during the run".into(),
        });
    }
    if load && t.sent > 0 && o.ok + o.coap_error == 0 && !r.interrupted {
        return Verdict::Fault(if o.unreachable > 0 {
            format!(
                "target {url} ({}) is unreachable: {} of {} requests got ICMP port unreachable; is a server listening there?",
                r.target.address, o.unreachable, t.sent
            )
        } else if r.protocol.unmatched > 0 {
            format!(
                "target {url} ({}) answered, but with {} responses that matched no request (wrong message ID or \
                 token): {} of {} requests timed out, {} reset",
                r.target.address,
                r.protocol.unmatched,
                o.timeout + o.response_timeout,
                t.sent,
                o.reset
            )
        } else {
            format!(
                "no response from target {url} ({}): {} of {} requests timed out, {} reset",
                r.target.address,
                o.timeout + o.response_timeout,
                t.sent,
                o.reset
            )
        });
    }
    if let Some(c) = r
        .device_trust
        .iter()
        .find(|c| c.verdict == DeviceVerdict::NotRun && !c.passed)
    {
        return Verdict::Fault(format!(
            "device-trust case `{}` for `{}` was not run: {} (remove the case, or expect `{{{}: not_run}}` to \
             document it)",
            c.case,
            c.device,
            c.alert.as_deref().unwrap_or("no reason recorded"),
            c.case
        ));
    }
    if let Some(c) = r
        .device_trust
        .iter()
        .find(|c| c.verdict == DeviceVerdict::NoConnection)
    {
        return Verdict::Fault(format!(
            "device `{}` never connected in case `{}` ({}): check the device command or address{}",
            c.device,
            c.case,
            c.exit.as_deref().unwrap_or("no command"),
            c.output
                .as_deref()
                .and_then(|o| o.lines().rev().find(|l| !l.trim().is_empty()))
                .map(|l| format!("; its last output: {}", l.trim()))
                .unwrap_or_default()
        ));
    }
    let failed: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    if !failed.is_empty() {
        return Verdict::Failed(format!("failed checks: {}", failed.join("; ")));
    }
    if r.interrupted {
        return Verdict::Failed("the run was interrupted before it finished".into());
    }
    Verdict::Passed
}
