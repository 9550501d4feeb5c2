//! `coap-harness compare BASELINE.json CURRENT.json`: one real report, compared with itself, with a doctored
//! slower and a faster copy, and with files that are not reports. Exit codes through the binary.

use crate::common;

use coap_harness::report::compare::{self, Change, Metric};
use coap_harness::report::Report;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const SMALL: &str =
    "target: embedded\ndevices:\n  count: 5\nphases:\n  - duration: 1s\n    interval: 200ms\n";

/// One short embedded run, shared by every test in this file.
fn report() -> &'static Report {
    static REPORT: OnceLock<Report> = OnceLock::new();
    REPORT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(common::run(common::plan(SMALL))).report;
        assert!(r.total.latency.count > 0 && r.total.throughput_rps > 0.0);
        r
    })
}

fn json(r: &Report) -> Value {
    serde_json::to_value(r).unwrap()
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
    p
}

/// The report with its latency percentiles scaled by `latency` and its throughput by `throughput`.
fn doctored(latency: f64, throughput: f64) -> Value {
    let mut v = json(report());
    let total = &mut v["total"];
    for p in ["p50_us", "p90_us", "p99_us", "p999_us"] {
        let x = total["latency"][p].as_u64().unwrap();
        total["latency"][p] = Value::from((x as f64 * latency) as u64);
    }
    let t = total["throughput_rps"].as_f64().unwrap();
    total["throughput_rps"] = Value::from(t * throughput);
    v
}

fn harness(args: &[&Path], extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .arg("compare")
        .args(args)
        .args(extra)
        .output()
        .expect("run coap-harness")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The table row of a metric.
fn row<'a>(table: &'a str, metric: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(&format!("| {metric} |")))
        .unwrap_or_else(|| panic!("no row {metric} in\n{table}"))
}

#[test]
fn a_report_compared_with_itself_has_no_regression() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(dir.path(), "base.json", &json(report()));
    let o = harness(&[&base, &base], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out.lines().last(),
        Some("compare: no regression past 10%"),
        "{out}"
    );
    assert!(
        !out.contains("regressed") && !out.contains("Warning"),
        "{out}"
    );
    for m in [
        "p50 latency",
        "p90 latency",
        "p99 latency",
        "p99.9 latency",
        "throughput",
        "error rate",
    ] {
        let r = row(&out, m);
        assert!(r.ends_with("| ok |"), "{r}");
    }
    assert!(out.contains("| metric | baseline | current | change | verdict |"));
    assert!(row(&out, "p99 latency").contains("+0.0%"));
    assert!(row(&out, "error rate").contains("+0.00 pp"));
    // A plain run has no handshakes: no row for them.
    assert!(!out.contains("handshake p99"));
}

#[test]
fn a_slower_copy_regresses_and_a_wider_bound_lets_it_pass() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(dir.path(), "base.json", &json(report()));
    let slow = write(dir.path(), "slow.json", &doctored(1.5, 0.5));
    let o = harness(&[&base, &slow], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    for m in ["p99 latency", "throughput"] {
        assert!(row(&out, m).ends_with("| **regressed** |"), "{out}");
    }
    assert!(row(&out, "throughput").contains("-50.0%"), "{out}");
    assert!(row(&out, "error rate").ends_with("| ok |"), "{out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("compare: ") && last.ends_with(" regressions past 10%"),
        "{last}"
    );
    let n: usize = last["compare: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(n, out.matches("**regressed**").count());

    for bound in ["60%", "0.6"] {
        let o = harness(&[&base, &slow], &["--max-regression", bound]);
        assert_eq!(o.status.code(), Some(0), "{bound}: {}", stdout(&o));
        assert_eq!(
            stdout(&o).lines().last(),
            Some("compare: no regression past 60%")
        );
    }
}

#[test]
fn a_faster_copy_passes() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(dir.path(), "base.json", &json(report()));
    let fast = write(dir.path(), "fast.json", &doctored(0.5, 1.5));
    let o = harness(&[&base, &fast], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(row(&out, "throughput").contains("+50.0%"), "{out}");
    assert_eq!(out.lines().last(), Some("compare: no regression past 10%"));
    // The other way round, the same pair is a regression.
    let o = harness(&[&fast, &base], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
}

#[test]
fn different_scenarios_or_targets_warn_but_do_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(dir.path(), "base.json", &json(report()));
    let mut other = json(report());
    other["scenario"]["name"] = "other".into();
    other["target"]["url"] = "coap://127.0.0.1:5683".into();
    let other = write(dir.path(), "other.json", &other);
    let o = harness(&[&base, &other], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("> **Warning**: the runs are of different scenarios: `test` (baseline) and `other` (current)"),
        "{out}"
    );
    assert!(
        out.contains(
            "different targets: `embedded` over coap (baseline) and `coap://127.0.0.1:5683` over coap (current)"
        ),
        "{out}"
    );
}

#[test]
fn files_that_are_not_reports_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.json", &json(report()));
    let missing = dir.path().join("missing.json");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "p99 was fine\n").unwrap();
    let other = write(
        dir.path(),
        "other.json",
        &serde_json::json!({ "schema_version": 1, "harness_version": "0.1.0" }),
    );
    for (bad, want) in [
        (&missing, "cannot read"),
        (&text, "not JSON"),
        (&other, "not a coap-harness report: missing field"),
    ] {
        for args in [[bad.as_path(), &good], [&good, bad]] {
            let o = harness(&args, &[]);
            assert_eq!(o.status.code(), Some(2), "{}", bad.display());
            let err = stderr(&o);
            assert_eq!(err.lines().count(), 1, "one line: {err}");
            assert!(err.starts_with("error: "), "{err}");
            assert!(
                err.contains(&bad.display().to_string()) && err.contains(want),
                "{err}"
            );
            assert!(stdout(&o).is_empty());
        }
    }
    // serde says where the file stops being a report.
    let o = harness(&[&other, &good], &[]);
    let err = stderr(&o);
    assert!(
        err.contains(" at line ") && err.contains(" column "),
        "{err}"
    );
    // A bound that could mean 10% or 1000% is refused.
    let o = harness(&[&good, &good], &["--max-regression", "10"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("ambiguous"), "{}", stderr(&o));
}

#[test]
fn the_library_types_each_row() {
    let base = report();
    let slow: Report = serde_json::from_value(doctored(1.5, 0.5)).unwrap();
    let c = compare::compare(base, &slow, 0.1);
    let metrics: Vec<Metric> = c.rows.iter().map(|r| r.metric).collect();
    assert_eq!(
        metrics,
        [
            Metric::LatencyP50,
            Metric::LatencyP90,
            Metric::LatencyP99,
            Metric::LatencyP999,
            Metric::Throughput,
            Metric::ErrorRate,
        ]
    );
    let p99 = &c.rows[2];
    assert_eq!(p99.baseline, base.total.latency.p99_us as f64);
    assert!(p99.regressed);
    let Change::Percent(pct) = p99.change else {
        panic!("{:?}", p99.change)
    };
    assert!((pct - 50.0).abs() < 1.0, "{pct}");
    let tp = &c.rows[4];
    assert!(tp.regressed && tp.change == Change::Percent(-50.0));
    assert!(matches!(c.rows[5].change, Change::Points(p) if p == 0.0));
    assert!(!c.rows[5].regressed);
    assert!(c.regressed());
    assert_eq!(
        c.summary(),
        format!("compare: {} regressions past 10%", c.regressions().count())
    );
    let md = compare::render_markdown(&c);
    assert!(md.ends_with(&format!("{}\n", c.summary())));

    // A run with handshakes on both sides gets the handshake row.
    let mut a = base.clone();
    a.handshakes = Some(coap_harness::report::model::HandshakeStats {
        attempted: 5,
        ok: 5,
        failed: 0,
        verdicts: Default::default(),
        latency: base.total.latency.clone(),
        first_failure: None,
        reconnects: 0,
        churn: 0,
        full: None,
        resumed: None,
        connection_id: 0,
        per_second: Vec::new(),
    });
    let c = compare::compare(&a, &a, 0.1);
    let hs = c.rows.last().unwrap();
    assert_eq!(hs.metric, Metric::HandshakeP99);
    assert!(!hs.regressed && hs.change == Change::Percent(0.0));
}
