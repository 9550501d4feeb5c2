//! Baseline comparison: the headline figures of two reports side by side, each judged against a regression
//! bound `b` (0.10 for 10%).
//!
//! The rules, one per kind of figure:
//! - latency (p50, p90, p99, p99.9 of the corrected request latency; handshake p99): regressed when
//!   `current > baseline × (1 + b)`. Not comparable when either run has no sample.
//! - throughput (completed requests per second): regressed when `current < baseline × (1 − b)`.
//! - error rate: regressed when it rises by more than `max(b × baseline, 0.1 percentage point)`. The bound is
//!   relative like the others, with a floor so that a clean baseline (0 errors) does not fail on a handful of
//!   timeouts; its change is shown in percentage points, since a percent of zero means nothing.
//!
//! [`compare`] judges, [`render_markdown`] shows; reading the files is [`read_report`]'s job.

use super::model::{human_us, Latency, Report, SCHEMA_VERSION};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The smallest rise of the error rate that counts as a regression, as a fraction (0.1 percentage point).
pub const ERROR_RATE_FLOOR: f64 = 0.001;

/// A figure compared between two runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Median request latency (corrected for coordinated omission), µs.
    LatencyP50,
    /// 90th percentile request latency, µs.
    LatencyP90,
    /// 99th percentile request latency, µs.
    LatencyP99,
    /// 99.9th percentile request latency, µs.
    LatencyP999,
    /// Completed requests per second over the run.
    Throughput,
    /// Failed requests over sent, as a fraction.
    ErrorRate,
    /// 99th percentile of the load devices' DTLS handshake time, µs.
    HandshakeP99,
}

impl Metric {
    /// The row label.
    pub fn name(self) -> &'static str {
        match self {
            Metric::LatencyP50 => "p50 latency",
            Metric::LatencyP90 => "p90 latency",
            Metric::LatencyP99 => "p99 latency",
            Metric::LatencyP999 => "p99.9 latency",
            Metric::Throughput => "throughput",
            Metric::ErrorRate => "error rate",
            Metric::HandshakeP99 => "handshake p99",
        }
    }

    fn show(self, v: f64) -> String {
        match self {
            Metric::Throughput => format!("{v:.1} req/s"),
            Metric::ErrorRate => format!("{:.2}%", v * 100.0),
            _ => human_us(v.round() as u64),
        }
    }
}

/// How a figure moved from the baseline to the current run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    /// Relative change in percent: +50.0 is half as much again.
    Percent(f64),
    /// Absolute change in percentage points (the error rate).
    Points(f64),
    /// One run has nothing to compare (no samples, or a zero baseline).
    NotComparable,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Percent(p) => write!(f, "{p:+.1}%"),
            Change::Points(p) => write!(f, "{p:+.2} pp"),
            Change::NotComparable => f.write_str("n/a"),
        }
    }
}

/// One row of the comparison. Values are in the metric's unit (µs, req/s, or a fraction for the error rate).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub metric: Metric,
    pub baseline: f64,
    pub current: f64,
    pub change: Change,
    /// Worse than the bound allows.
    pub regressed: bool,
}

/// Two runs compared.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// The bound the rows were judged against, as a fraction (0.1 for 10%).
    pub max_regression: f64,
    /// One line each naming the run: scenario, target, start time.
    pub baseline_run: String,
    pub current_run: String,
    pub rows: Vec<Row>,
    /// Things that make the comparison doubtful (different scenarios or targets, an interrupted run); never
    /// a failure by themselves.
    pub warnings: Vec<String>,
}

impl Comparison {
    /// The rows that regressed past the bound.
    pub fn regressions(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.regressed)
    }

    pub fn regressed(&self) -> bool {
        self.regressions().next().is_some()
    }

    /// `compare: 2 regressions past 10%` or `compare: no regression past 10%`.
    pub fn summary(&self) -> String {
        let bound = percent(self.max_regression);
        match self.regressions().count() {
            0 => format!("compare: no regression past {bound}"),
            1 => format!("compare: 1 regression past {bound}"),
            n => format!("compare: {n} regressions past {bound}"),
        }
    }
}

/// Compares `cur` with `base`; `max_regression` is a fraction (0.1 for 10%).
pub fn compare(base: &Report, cur: &Report, max_regression: f64) -> Comparison {
    let b = max_regression;
    let (bt, ct) = (&base.total, &cur.total);
    let (bl, cl) = (&bt.latency, &ct.latency);
    let mut rows: Vec<Row> = [
        (Metric::LatencyP50, bl.p50_us, cl.p50_us),
        (Metric::LatencyP90, bl.p90_us, cl.p90_us),
        (Metric::LatencyP99, bl.p99_us, cl.p99_us),
        (Metric::LatencyP999, bl.p999_us, cl.p999_us),
    ]
    .into_iter()
    .map(|(metric, bv, cv)| latency_row(metric, (bl, bv), (cl, cv), b))
    .collect();
    rows.push(higher_is_better(
        Metric::Throughput,
        bt.throughput_rps,
        ct.throughput_rps,
        b,
    ));
    rows.push(error_rate_row(base, cur, b));
    if let (Some(bh), Some(ch)) = (&base.handshakes, &cur.handshakes) {
        let (bl, cl) = (&bh.latency, &ch.latency);
        rows.push(latency_row(
            Metric::HandshakeP99,
            (bl, bl.p99_us),
            (cl, cl.p99_us),
            b,
        ));
    }
    Comparison {
        max_regression,
        baseline_run: describe(base),
        current_run: describe(cur),
        rows,
        warnings: warnings(base, cur),
    }
}

/// `base` and `cur`: the distribution and the percentile picked from it.
fn latency_row(metric: Metric, base: (&Latency, u64), cur: (&Latency, u64), b: f64) -> Row {
    let (bv, cv) = (base.1 as f64, cur.1 as f64);
    if base.0.count == 0 || cur.0.count == 0 || bv <= 0.0 {
        return not_comparable(metric, bv, cv);
    }
    Row {
        metric,
        baseline: bv,
        current: cv,
        change: Change::Percent((cv / bv - 1.0) * 100.0),
        regressed: cv > bv * (1.0 + b),
    }
}

fn higher_is_better(metric: Metric, bv: f64, cv: f64, b: f64) -> Row {
    if bv <= 0.0 {
        return not_comparable(metric, bv, cv);
    }
    Row {
        metric,
        baseline: bv,
        current: cv,
        change: Change::Percent((cv / bv - 1.0) * 100.0),
        regressed: cv < bv * (1.0 - b),
    }
}

fn error_rate_row(base: &Report, cur: &Report, b: f64) -> Row {
    let (bv, cv) = (base.total.error_rate, cur.total.error_rate);
    if base.total.sent == 0 || cur.total.sent == 0 {
        return not_comparable(Metric::ErrorRate, bv, cv);
    }
    Row {
        metric: Metric::ErrorRate,
        baseline: bv,
        current: cv,
        change: Change::Points((cv - bv) * 100.0),
        regressed: error_rate_regressed(bv, cv, b),
    }
}

/// The error rate (a fraction) regressed: it rose by more than `b` of the baseline, or by the floor if more.
fn error_rate_regressed(base: f64, cur: f64, b: f64) -> bool {
    cur - base > (b * base).max(ERROR_RATE_FLOOR)
}

fn not_comparable(metric: Metric, baseline: f64, current: f64) -> Row {
    Row {
        metric,
        baseline,
        current,
        change: Change::NotComparable,
        regressed: false,
    }
}

fn describe(r: &Report) -> String {
    format!(
        "`{}` against `{}` ({}), started {}, {:.1} s, harness {}",
        r.scenario.name,
        r.target.url,
        r.target.transport,
        r.started_at,
        r.duration_s,
        r.harness_version
    )
}

fn warnings(base: &Report, cur: &Report) -> Vec<String> {
    let mut w = Vec::new();
    if base.scenario.name != cur.scenario.name {
        w.push(format!(
            "the runs are of different scenarios: `{}` (baseline) and `{}` (current)",
            base.scenario.name, cur.scenario.name
        ));
    }
    let (bt, ct) = (&base.target, &cur.target);
    if (&bt.url, &bt.transport) != (&ct.url, &ct.transport) {
        w.push(format!(
            "the runs measured different targets: `{}` over {} (baseline) and `{}` over {} (current)",
            bt.url, bt.transport, ct.url, ct.transport
        ));
    }
    if bt.transport != ct.transport {
        w.push(format!(
            "the runs used different transports: {} (baseline) and {} (current): DTLS adds handshakes and \
             per-record cost, so throughput and latency are not like for like",
            bt.transport, ct.transport
        ));
    }
    if base.devices.count != cur.devices.count {
        w.push(format!(
            "the runs had different device counts: {} (baseline) and {} (current): throughput and latency \
             scale with the load offered, so a change here may be the load's, not the target's",
            base.devices.count, cur.devices.count
        ));
    }
    if base.scenario.request != cur.scenario.request {
        w.push(format!(
            "the runs sent different requests: `{}` (baseline) and `{}` (current)",
            base.scenario.request, cur.scenario.request
        ));
    }
    for (which, r) in [("baseline", base), ("current", cur)] {
        if r.interrupted {
            w.push(format!(
                "the {which} run was interrupted: its figures cover only part of it"
            ));
        }
        if r.schema_version > SCHEMA_VERSION {
            w.push(format!(
                "the {which} report has schema version {}, newer than this harness reads ({SCHEMA_VERSION})",
                r.schema_version
            ));
        }
    }
    w
}

/// The comparison as Markdown: the two runs, any warning, the table, the rules, and the summary line last.
pub fn render_markdown(c: &Comparison) -> String {
    let bound = percent(c.max_regression);
    let mut s = String::new();
    let _ = writeln!(s, "## coap-harness compare\n");
    let _ = writeln!(s, "- baseline: {}", c.baseline_run);
    let _ = writeln!(s, "- current: {}\n", c.current_run);
    for w in &c.warnings {
        let _ = writeln!(s, "> **Warning**: {w}\n");
    }
    let _ = writeln!(
        s,
        "| metric | baseline | current | change | verdict |\n|---|---:|---:|---:|---|"
    );
    for r in &c.rows {
        let verdict = if r.regressed {
            "**regressed**"
        } else if r.change == Change::NotComparable {
            "n/a"
        } else {
            "ok"
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {verdict} |",
            r.metric.name(),
            r.metric.show(r.baseline),
            r.metric.show(r.current),
            r.change
        );
    }
    let _ = writeln!(
        s,
        "\nLatency (from the intended send time) regresses when it grows by more than {bound}, throughput when \
         it falls by more than {bound}, the error rate when it rises by more than {bound} of the baseline's or \
         {:.1} percentage point, whichever is more.\n",
        ERROR_RATE_FLOOR * 100.0
    );
    let _ = writeln!(s, "{}", c.summary());
    s
}

/// `0.1` -> `10%`, `0.125` -> `12.5%`.
fn percent(fraction: f64) -> String {
    let p = format!("{:.2}", fraction * 100.0);
    let p = p.trim_end_matches('0').trim_end_matches('.');
    format!("{p}%")
}

/// Parses a regression bound: `10%` or the fraction `0.1`. A bare number above 1 is refused as ambiguous.
pub fn parse_bound(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, scale) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), 100.0),
        None => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a bound; write e.g. 10% or 0.1"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("`{s}`: the bound must be 0 or more"));
    }
    if scale == 1.0 && v > 1.0 {
        return Err(format!(
            "`{s}` is ambiguous; write {s}% for a percentage or a fraction such as 0.1"
        ));
    }
    Ok(v / scale)
}

/// Why a report file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read {}: {source}", file.display())]
    Unreadable {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The file is not JSON at all.
    #[error("{}: not JSON: {source}", file.display())]
    NotJson {
        file: PathBuf,
        source: serde_json::Error,
    },
    /// JSON, but not a report (serde names the line and column).
    #[error("{}: not a coap-harness report: {source}", file.display())]
    NotReport {
        file: PathBuf,
        source: serde_json::Error,
    },
}

/// Reads a report.json.
pub fn read_report(file: &Path) -> Result<Report, ReadError> {
    let text = std::fs::read_to_string(file).map_err(|source| ReadError::Unreadable {
        file: file.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| {
        let file = file.to_path_buf();
        match source.classify() {
            serde_json::error::Category::Data => ReadError::NotReport { file, source },
            _ => ReadError::NotJson { file, source },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_parse_as_percent_or_fraction() {
        assert_eq!(parse_bound("10%"), Ok(0.1));
        assert_eq!(parse_bound("0.1"), Ok(0.1));
        assert_eq!(parse_bound(" 60 % "), Ok(0.6));
        assert_eq!(parse_bound("0"), Ok(0.0));
        assert!(parse_bound("10").unwrap_err().contains("ambiguous"));
        assert!(parse_bound("-5%").is_err());
        assert!(parse_bound("ten").is_err());
        assert!(parse_bound("NaN").is_err());
        assert_eq!(percent(0.1), "10%");
        assert_eq!(percent(0.125), "12.5%");
        assert_eq!(percent(0.6), "60%");
    }

    #[test]
    fn error_rate_regresses_past_the_bound_or_the_floor() {
        // A clean baseline tolerates up to 0.1 percentage point.
        assert!(!error_rate_regressed(0.0, 0.0009, 0.1));
        assert!(error_rate_regressed(0.0, 0.0011, 0.1));
        // A 5% baseline tolerates 10% of itself: 0.5 point.
        assert!(!error_rate_regressed(0.05, 0.0549, 0.1));
        assert!(error_rate_regressed(0.05, 0.0551, 0.1));
        // Falling is never a regression.
        assert!(!error_rate_regressed(0.05, 0.0, 0.1));
    }

    #[test]
    fn changes_display_with_sign_and_unit() {
        assert_eq!(Change::Percent(50.0).to_string(), "+50.0%");
        assert_eq!(Change::Percent(-12.34).to_string(), "-12.3%");
        assert_eq!(Change::Points(0.15).to_string(), "+0.15 pp");
        assert_eq!(Change::NotComparable.to_string(), "n/a");
    }
}
