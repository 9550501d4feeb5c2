//! summary.md: the run for people, as Markdown tables. Every name and value that comes from a scenario, a
//! peer or an error goes through [`md`] (or [`code`] inside backticks), so a `|`, a tag or a `*` in it is
//! shown as itself and never breaks a table or turns into markup.

use super::escape::{markdown as md, markdown_code as code};
use super::model::{human_us, Report, RequestStats};
use super::verdict;
use crate::metrics::Outcome;
use std::fmt::Write;

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let verdict = verdict::of(r);
    let _ = writeln!(
        s,
        "# coap-harness: {} — {}\n",
        md(&r.scenario.name),
        verdict.word()
    );
    let _ = writeln!(s, "**Verdict: {}**\n", md(&verdict.line()));
    if r.security.insecure {
        let _ = writeln!(
            s,
            "> [!CAUTION]\n> **INSECURE RUN: DTLS certificate verification was disabled (no CA given).** The sessions \
             were encrypted, but nothing proved the server's identity.\n"
        );
    }
    if r.interrupted {
        let _ = writeln!(
            s,
            "> **Interrupted**: the figures cover the run until it was stopped.\n"
        );
    }
    // The insecure banner above already says it.
    for w in r.warnings.iter().filter(|w| !w.starts_with("INSECURE")) {
        let _ = writeln!(s, "> **Warning**: {}\n", md(w));
    }
    // The scenario heads the table: a header row of its own, never an empty one.
    let _ = writeln!(s, "| scenario | {} |\n|---|---|", md(&r.scenario.name));
    let _ = writeln!(
        s,
        "| target | {} ({}, {}) |",
        code(&r.target.url),
        md(&r.target.transport),
        md(&r.target.address)
    );
    let _ = writeln!(s, "| security | {} |", security_row(r));
    let _ = writeln!(s, "| request | {} |", code(&r.scenario.request));
    if r.no_load() {
        let _ = writeln!(s, "| load | none: {} |", r.cases_run());
        let _ = writeln!(s, "| started | {} |", md(&r.started_at));
    } else {
        let _ = writeln!(
            s,
            "| devices | {} ({} started, {} failed) |",
            r.devices.count, r.devices.started, r.devices.failed
        );
        let _ = writeln!(s, "| started | {} |", md(&r.started_at));
        let _ = writeln!(s, "| duration | {:.1} s |", r.duration_s);
    }
    let _ = writeln!(s, "| harness | {} |\n", md(&r.harness_version));

    if !r.trust_cases.is_empty() {
        let _ = writeln!(
            s,
            "## Trust cases\n\n| case | result | verdict | refused by | DTLS layer | CoAP layer | expected | observed |\n\
             |---|---|---|---|---|---|---|---|"
        );
        for c in &r.trust_cases {
            let _ = writeln!(
                s,
                "| {} | {} | {}{} | {} | {} | {} | {} | {} |",
                md(&c.name),
                if c.passed { "pass" } else { "**FAIL**" },
                code(c.verdict.name()),
                if c.insecure { " **INSECURE**" } else { "" },
                code(&c.refused_by.to_string()),
                md(&c.handshake_layer()),
                md(&c.coap_layer()),
                md(&c.expected),
                md(&c.observed)
            );
        }
        let _ = writeln!(s);
    }
    super::device_trust::markdown(&mut s, r);
    if !r.conformance.is_empty() {
        let _ = writeln!(
            s,
            "## Conformance\n\n| case | result | code | expected | observed |\n|---|---|---|---|---|"
        );
        for c in &r.conformance {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                md(&c.name),
                match (&c.skipped, c.passed) {
                    (Some(_), _) => "skip",
                    (None, true) => "pass",
                    (None, false) => "**FAIL**",
                },
                md(c.code.as_deref().unwrap_or("-")),
                md(&c.expected),
                md(&c.observed)
            );
        }
        let _ = writeln!(s);
    }
    if let Some(h) = &r.handshakes {
        let _ = writeln!(
            s,
            "## DTLS handshakes\n\n{}. Handshake time p50 {}, p90 {}, p99 {}, max {}.\n",
            h.counts(md),
            human_us(h.latency.p50_us),
            human_us(h.latency.p90_us),
            human_us(h.latency.p99_us),
            human_us(h.latency.max_us)
        );
        if let Some(kinds) = h.kinds_summary() {
            let _ = writeln!(s, "Full and resumed handshakes: {kinds}.\n");
        }
        if let Some(rate) = h.rate_summary() {
            let _ = writeln!(s, "Handshake rate: {rate}.\n");
            handshake_table(&mut s, h);
        }
    }
    if r.phases.is_empty() {
        return checks(s, r);
    }
    let _ = writeln!(s, "## Requests\n");
    let _ = writeln!(
        s,
        "| phase | devices | sent | ok | errors | req/s | p50 | p90 | p99 | p99.9 | max | retrans |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for p in &r.phases {
        row(&mut s, &md(&p.name), p.devices, &p.requests);
    }
    row(&mut s, "**total**", r.devices.started, &r.total);
    let _ = writeln!(
        s,
        "\nLatency runs from each request's intended send time, so a stalled server cannot hide behind the \
         generator's backlog (coordinated omission). Measured from the actual send instead: p50 {}, p99 {}. \
         Requests left on average {} (p99 {}) after their scheduled time.\n",
        human_us(r.total.latency_uncorrected.p50_us),
        human_us(r.total.latency_uncorrected.p99_us),
        human_us(r.total.send_lag.mean_us as u64),
        human_us(r.total.send_lag.p99_us),
    );
    if let Some(g) = &r.generator {
        let _ = writeln!(s, "Generator: {}.\n", md(&g.describe()));
    }
    if let Some(m) = &r.machine {
        let _ = writeln!(s, "Machine: {}.\n", md(&m.describe()));
    }

    let _ = writeln!(s, "## Outcomes\n\n| outcome | count |\n|---|---:|");
    for o in Outcome::ALL {
        let n = r.total.outcomes.get(o);
        if n > 0 {
            let _ = writeln!(s, "| {} | {n} |", o.name());
        }
    }
    for (code, n) in &r.total.codes {
        let _ = writeln!(s, "| code {} | {n} |", md(code));
    }
    if let Some(rec) = super::recovery::of_report(r) {
        let _ = writeln!(
            s,
            "\n**Error window**: {}.",
            md(&super::recovery::describe(&rec))
        );
    }

    checks(s, r)
}

/// The load's security, with INSECURE when the load ran without verifying the server.
fn security_row(r: &Report) -> String {
    let mut row = md(&r.security.describe());
    if r.security.insecure {
        row.push_str(" **INSECURE**");
    }
    row
}

/// Whether a check repeats a row of the trust-case or conformance table above (each case is also a check, so
/// the verdict counts it): those are listed once, in their own table.
fn in_a_case_table(r: &Report, name: &str) -> bool {
    name.strip_prefix("trust case: ")
        .is_some_and(|n| r.trust_cases.iter().any(|c| c.name == n))
        || name
            .strip_prefix("conformance: ")
            .is_some_and(|n| r.conformance.iter().any(|c| c.name == n))
}

fn checks(mut s: String, r: &Report) -> String {
    if r.checks.is_empty() {
        return s;
    }
    let (cases, others): (Vec<_>, Vec<_>) =
        r.checks.iter().partition(|c| in_a_case_table(r, &c.name));
    let failed = r.checks.iter().filter(|c| !c.passed).count();
    let _ = writeln!(
        s,
        "\n## Checks\n\n{} check{}, {failed} failed.",
        r.checks.len(),
        if r.checks.len() == 1 { "" } else { "s" }
    );
    if !cases.is_empty() {
        let _ = writeln!(
            s,
            "{} of them {} the trust-case and conformance tables above.",
            cases.len(),
            if cases.len() == 1 {
                "is a row of"
            } else {
                "are rows of"
            }
        );
    }
    if !others.is_empty() {
        let _ = writeln!(
            s,
            "\n| check | result | expected | observed |\n|---|---|---|---|"
        );
        for c in others {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                md(&c.name),
                if c.passed { "pass" } else { "**FAIL**" },
                md(&c.expected),
                md(&c.observed)
            );
        }
    }
    s
}

fn row(s: &mut String, name: &str, devices: u32, q: &RequestStats) {
    let _ = writeln!(s, "| {name} | {devices} | {} |", q.row_cells().join(" | "));
}

/// Handshakes per second of the load (`t | ok | failed`), when they happened over more than one second.
fn handshake_table(s: &mut String, h: &crate::report::model::HandshakeStats) {
    let _ = writeln!(s, "| second | handshakes ok | failed |\n|---:|---:|---:|");
    for p in &h.per_second {
        let _ = writeln!(s, "| {} | {} | {} |", p.t, p.ok, p.failed);
    }
    let _ = writeln!(s);
}
