//! The report's file formats from real runs: latency.hgrm and latency.hlog read back and held against
//! report.json, report.json validated against the checked-in JSON Schema, and `coap-harness report`
//! re-rendering the same files byte for byte.

use crate::common;
use base64::Engine as _;
use coap_harness::report::{self, schema, Report};
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const TWO_PHASES: &str = "target: embedded\ndevices:\n  count: 20\nphases:\n  - name: a\n    duration: 1s\n    interval: 100ms\n  - name: b\n    duration: 1s\n    interval: 50ms\n";

/// Runs `yaml` and writes every report file into `dir`; returns report.json as written.
async fn run_into(plan: coap_harness::scenario::RunPlan, dir: &Path) -> Report {
    let out = coap_harness::app::run(Arc::new(plan), Default::default())
        .await
        .expect("the run completes");
    report::write_all(&out.report, dir).expect("report files written");
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    serde_json::from_str(&text).expect("report.json reads back")
}

fn two_phase_plan() -> coap_harness::scenario::RunPlan {
    coap_harness::scenario::parse(
        TWO_PHASES,
        Path::new("t.yaml"),
        Path::new("."),
        "t",
        &Default::default(),
    )
    .unwrap()
}

fn schema_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/schema.json")
}

/// The interval histograms of an .hlog: (tag, start, duration, histogram).
fn read_hlog(bytes: &[u8]) -> Vec<(Option<String>, f64, f64, Histogram<u64>)> {
    let mut out = Vec::new();
    for entry in IntervalLogIterator::new(bytes) {
        let LogEntry::Interval(i) = entry.expect("a well-formed interval log") else {
            continue;
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(i.encoded_histogram())
            .unwrap();
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut raw.as_slice())
            .unwrap();
        out.push((
            i.tag().map(|t| t.as_str().to_string()),
            i.start_timestamp().as_secs_f64(),
            i.duration().as_secs_f64(),
            h,
        ));
    }
    out
}

/// The rows of an .hgrm: (value in ms, percentile as a fraction, total count).
fn hgrm_rows(text: &str) -> Vec<(f64, f64, u64)> {
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("       Value     Percentile TotalCount 1/(1-Percentile)")
    );
    assert_eq!(lines.next(), Some(""));
    lines
        .take_while(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(f.len() == 4 || f.len() == 3, "row `{l}`");
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

/// The numbers of an .hgrm footer line such as `#[Max     = 1.234, Total count    = 17]`.
fn footer(text: &str, starts: &str) -> Vec<f64> {
    let line = text
        .lines()
        .find(|l| l.starts_with(starts))
        .unwrap_or_else(|| panic!("no `{starts}` line in\n{text}"));
    line.trim_start_matches("#[")
        .trim_end_matches(']')
        .split(',')
        .map(|part| part.split('=').nth(1).unwrap().trim().parse().unwrap())
        .collect()
}

/// Within one HDR bucket (3 significant digits) of each other, in microseconds.
fn close_us(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1.0 + a.max(b) / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hlog_holds_each_phase_with_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_into(two_phase_plan(), dir.path()).await;
    assert_eq!(r.phases.len(), 2);
    let all = read_hlog(&std::fs::read(dir.path().join("latency.hlog")).unwrap());
    // Untagged: one interval per second of the run, holding that second's latencies.
    let (seconds, intervals): (Vec<_>, Vec<_>) = all.into_iter().partition(|i| i.0.is_none());
    assert_eq!(seconds.len(), r.timeseries.len(), "one interval per second");
    assert!(seconds.len() >= 2, "a two-second run");
    for ((_, start, duration, h), point) in seconds.iter().zip(&r.timeseries) {
        assert_eq!(*start, point.t as f64);
        assert_eq!(*duration, 1.0);
        assert!(h.len() <= point.requests, "second {}", point.t);
    }
    let per_second: u64 = seconds.iter().map(|i| i.3.len()).sum();
    assert_eq!(per_second, r.total.latency.count);
    assert!(seconds.iter().filter(|i| !i.3.is_empty()).count() >= 2);
    assert_eq!(
        intervals.len(),
        2,
        "one tagged interval per phase, no handshakes"
    );
    for ((tag, start, duration, h), p) in intervals.iter().zip(&r.phases) {
        assert_eq!(tag.as_deref(), Some(p.name.as_str()));
        assert!(
            (start - p.start_s).abs() < 0.001,
            "{start} vs {}",
            p.start_s
        );
        assert!((duration - p.duration_s).abs() < 0.001);
        assert!(p.requests.latency.count > 0, "phase {} measured", p.name);
        assert_eq!(h.len(), p.requests.latency.count, "phase {}", p.name);
        assert_eq!(h.value_at_quantile(0.99), p.requests.latency.p99_us);
        assert_eq!(h.max(), p.requests.latency.max_us);
    }
    let per_phase: u64 = intervals.iter().map(|i| i.3.len()).sum();
    assert_eq!(per_phase, r.total.latency.count);

    // With DTLS handshakes, their histogram follows as one more interval.
    let mut with_handshakes = r.clone();
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    for us in [2_000u64, 3_000, 40_000] {
        h.record(us).unwrap();
    }
    with_handshakes.handshakes = Some(report::model::HandshakeStats {
        attempted: 3,
        ok: 3,
        failed: 0,
        verdicts: [(coap_harness::trust::TrustVerdict::Ok, 3)].into(),
        latency: report::model::Latency::from_histogram(&h),
        first_failure: None,
        reconnects: 0,
        churn: 0,
        full: None,
        resumed: None,
        connection_id: 0,
        per_second: Vec::new(),
    });
    let intervals: Vec<_> = read_hlog(&report::hdr::render_hlog(&with_handshakes).unwrap())
        .into_iter()
        .filter(|i| i.0.is_some())
        .collect();
    assert_eq!(intervals.len(), 3);
    let (tag, _, _, back) = &intervals[2];
    assert_eq!(tag.as_deref(), Some("handshake"));
    assert_eq!(back.len(), 3);
    assert_eq!(back.max(), h.max());
}

/// An independent reader, HdrHistogram's Python port (`hdrh`, PyPI `hdrhistogram`), reads latency.hlog:
/// the per-second intervals (untagged) and the per-phase ones (tagged), with the report's counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hlog_reads_back_in_hdrhistogram_python() {
    if !common::require_python("hdrh", "hdrhistogram") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = run_into(two_phase_plan(), dir.path()).await;
    const READER: &str = r#"
import json, sys
from hdrh.log import HistogramLogReader
from hdrh.histogram import HdrHistogram
reader = HistogramLogReader(sys.argv[1], HdrHistogram(1, 3600000000, 3))
out = []
while True:
    h = reader.get_next_interval_histogram()
    if h is None:
        break
    out.append([h.get_tag(), h.get_start_time_stamp() / 1000.0 - reader.get_start_time_sec(), h.get_total_count(), h.get_max_value()])
print(json.dumps(out))
"#;
    let o = Command::new("python3")
        .args(["-c", READER])
        .arg(dir.path().join("latency.hlog"))
        .output()
        .expect("run python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read: Vec<(Option<String>, f64, u64, u64)> = serde_json::from_slice(&o.stdout).unwrap();
    let seconds: Vec<_> = read.iter().filter(|i| i.0.is_none()).collect();
    assert_eq!(seconds.len(), r.timeseries.len());
    for (i, point) in seconds.iter().zip(&r.timeseries) {
        assert!(
            (i.1 - point.t as f64).abs() < 0.01,
            "{i:?} at second {}",
            point.t
        );
    }
    assert_eq!(
        seconds.iter().map(|i| i.2).sum::<u64>(),
        r.total.latency.count
    );
    let phases: Vec<_> = read.iter().filter(|i| i.0.is_some()).collect();
    assert_eq!(phases.len(), r.phases.len());
    for (i, p) in phases.iter().zip(&r.phases) {
        assert_eq!(i.0.as_deref(), Some(p.name.as_str()));
        assert_eq!(i.2, p.requests.latency.count);
        assert!(
            close_us(i.3 as f64, p.requests.latency.max_us as f64),
            "{i:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hgrm_rows_agree_with_report_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_into(two_phase_plan(), dir.path()).await;
    let text = std::fs::read_to_string(dir.path().join("latency.hgrm")).unwrap();
    let rows = hgrm_rows(&text);
    let l = &r.total.latency;
    assert!(l.count > 100, "{} measured", l.count);

    let p50 = rows.iter().find(|row| row.1 == 0.5).expect("a 0.5 row");
    assert!(
        close_us(p50.0 * 1000.0, l.p50_us as f64),
        "{p50:?} vs {}",
        l.p50_us
    );
    // 0.99 falls between two ticks; the report's p99 lies between their values.
    let below = rows.iter().rfind(|row| row.1 <= 0.99).unwrap();
    let above = rows.iter().find(|row| row.1 >= 0.99).unwrap();
    let p99 = l.p99_us as f64;
    assert!(
        below.0 * 1000.0 <= p99 + 1.0 && p99 <= above.0 * 1000.0 + 1.0,
        "p99 {p99}µs outside [{below:?}, {above:?}]"
    );
    let last = rows.last().unwrap();
    assert_eq!(last.1, 1.0);
    assert_eq!(last.2, l.count);
    assert!(close_us(last.0 * 1000.0, l.max_us as f64));
    assert!(rows
        .windows(2)
        .all(|w| w[0].0 <= w[1].0 && w[0].2 <= w[1].2));

    let max = footer(&text, "#[Max");
    assert_eq!(max[1] as u64, l.count);
    assert!(close_us(max[0] * 1000.0, l.max_us as f64));
    let mean = footer(&text, "#[Mean");
    assert!(
        close_us(mean[0] * 1000.0, l.mean_us),
        "{mean:?} vs {}",
        l.mean_us
    );
    assert_eq!(footer(&text, "#[Buckets")[1], 2048.0);
}

/// With REGENERATE_SCHEMA=1 the test first writes reports/schema.json, so the checked-in copy can follow the
/// model on purpose.
#[test]
fn checked_in_schema_matches_the_model() {
    if std::env::var_os("REGENERATE_SCHEMA").is_some() {
        std::fs::write(schema_file(), schema::schema_json()).unwrap();
    }
    let text = std::fs::read_to_string(schema_file()).expect("reports/schema.json exists");
    assert!(
        text == schema::schema_json(),
        "reports/schema.json is out of date: the report model changed. Regenerate it with\n  \
         REGENERATE_SCHEMA=1 cargo test --test report checked_in_schema"
    );
}

fn assert_valid(report_json: &Path) {
    let schema: serde_json::Value = serde_json::from_str(&schema::schema_json()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema");
    let instance: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_json).unwrap()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{}: {errors:#?}", report_json.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_reports_validate_against_the_schema() {
    let plain = tempfile::tempdir().unwrap();
    run_into(two_phase_plan(), plain.path()).await;
    assert_valid(&plain.path().join("report.json"));

    let matrix = crate::trust_matrix::matrix();
    assert!(!matrix.report.trust_cases.is_empty());
    assert_valid(&matrix.dir.join("report.json"));

    // The schema rejects what is not a report.
    let schema: serde_json::Value = serde_json::from_str(&schema::schema_json()).unwrap();
    let mut bad: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(plain.path().join("report.json")).unwrap())
            .unwrap();
    bad["total"]["sent"] = serde_json::json!("many");
    assert!(!jsonschema::is_valid(&schema, &bad));
}

fn harness(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn report_command_re_renders_byte_for_byte() {
    let orig = &crate::trust_matrix::matrix().dir;
    let again = tempfile::tempdir().unwrap();
    let md = again.path().join("single.md");
    let xml = again.path().join("single.xml");
    let out_dir = again.path().join("all");
    let json = orig.join("report.json");
    let o = harness(&[
        "report".as_ref(),
        json.as_os_str(),
        "--md".as_ref(),
        md.as_os_str(),
        "--junit".as_ref(),
        xml.as_os_str(),
        "--out".as_ref(),
        out_dir.as_os_str(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let summary = read(orig.join("summary.md"));
    let junit = read(orig.join("junit.xml"));
    assert!(read(md) == summary, "summary.md differs");
    assert!(read(xml) == junit, "junit.xml differs");
    // A trust-only run measured no latency: no histogram files, in either folder.
    for name in ["latency.hgrm", "latency.hlog"] {
        assert!(!orig.join(name).exists() && !out_dir.join(name).exists());
    }
    for name in ["report.json", "summary.md", "junit.xml"] {
        assert!(
            read(out_dir.join(name)) == read(orig.join(name)),
            "{name} differs"
        );
    }
}

#[test]
fn report_command_rejects_what_is_not_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let not_report = dir.path().join("other.json");
    std::fs::write(&not_report, "{\"hello\": 1}\n").unwrap();
    let o = harness(&["report".as_ref(), not_report.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("other.json"), "{err}");
    assert!(err.contains("not a coap-harness report"), "{err}");

    let missing = dir.path().join("missing.json");
    let o = harness(&["report".as_ref(), missing.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.json"));
}

/// The cells of a Markdown table row, split at the `|` that are not backslash-escaped.
fn md_cells(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut escaped = false;
    for c in line.trim().chars() {
        if c == '|' && !escaped {
            cells.push(String::new());
        } else {
            cells.last_mut().unwrap().push(c);
        }
        escaped = c == '\\' && !escaped;
    }
    // The outer pipes leave an empty first and last piece.
    assert!(
        cells.first().unwrap().is_empty() && cells.last().unwrap().is_empty(),
        "row `{line}`"
    );
    cells[1..cells.len() - 1].to_vec()
}

/// summary.md of a trust matrix whose names and values carry `|`, HTML and Markdown: every table keeps its
/// column count, nothing turns into markup, the header rows say something, and each trust case is listed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_md_escapes_names_and_lists_trust_cases_once() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/trust-matrix.yaml");
    let plan = coap_harness::scenario::load(&file, &Default::default()).unwrap();
    let out = coap_harness::app::run(Arc::new(plan), Default::default())
        .await
        .expect("the run completes");
    let mut r = out.report;
    assert!(r.trust_cases.len() >= 2);
    r.scenario.name = "matrix | <img src=x onerror=alert(1)> **bold**".into();
    for (i, c) in r.trust_cases.iter_mut().enumerate() {
        c.name = format!("case{i} | <b>x</b> _it_ `tick`");
        c.observed = format!("{}\nsecond line | [link](http://x)", c.observed);
    }
    // The checks that repeat the trust cases carry their (new) names, as a real run's would.
    let names: Vec<String> = r.trust_cases.iter().map(|c| c.name.clone()).collect();
    let mut i = 0;
    for check in r
        .checks
        .iter_mut()
        .filter(|c| c.name.starts_with("trust case: "))
    {
        check.name = format!("trust case: {}", names[i]);
        i += 1;
    }
    assert_eq!(i, names.len(), "one check per trust case");
    r.checks.push(coap_harness::report::Check {
        name: "p99 < 1ms | *x*".into(),
        passed: false,
        expected: "< 1ms".into(),
        observed: "2ms <script>".into(),
    });
    r.warnings
        .push("warning with <i>html</i> and | pipe".into());

    let md = coap_harness::report::markdown::render(&r);
    eprintln!("{md}");
    for raw in [
        "<b>", "<img", "<script", "<i>", "**bold**", "[link](", "`tick`",
    ] {
        assert!(!md.contains(raw), "summary.md holds `{raw}` unescaped");
    }
    assert!(md.contains("&lt;img src=x onerror=alert(1)&gt; \\*\\*bold\\*\\*"));
    // Each table: a header with no empty cell, a delimiter row, rows of the same width.
    let mut tables = 0;
    let lines: Vec<&str> = md.lines().collect();
    let mut at = 0;
    while at < lines.len() {
        if !lines[at].starts_with('|') {
            at += 1;
            continue;
        }
        tables += 1;
        let header = md_cells(lines[at]);
        assert!(
            header.iter().all(|c| !c.trim().is_empty()),
            "empty header cell in `{}`",
            lines[at]
        );
        let width = header.len();
        at += 1;
        assert!(md_cells(lines[at]).iter().all(|c| c
            .trim()
            .trim_matches(':')
            .chars()
            .all(|ch| ch == '-')));
        while at < lines.len() && lines[at].starts_with('|') {
            assert_eq!(md_cells(lines[at]).len(), width, "row `{}`", lines[at]);
            at += 1;
        }
    }
    assert!(tables >= 3, "{tables} tables");
    // Each trust case once (its table row), not again among the checks; other checks still listed.
    for c in &r.trust_cases {
        let shown = coap_harness::report::escape::markdown(&c.name);
        assert_eq!(
            md.matches(&shown).count(),
            1,
            "trust case {} listed once",
            c.name
        );
    }
    assert!(md.contains("| p99 &lt; 1ms \\| \\*x\\* | **FAIL** | &lt; 1ms | 2ms &lt;script&gt; |"));
    assert!(md.contains(&format!(
        "{} of them are rows of the trust-case and conformance tables above.",
        r.trust_cases.len()
    )));
}
