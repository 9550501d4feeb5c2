//! Watching a run: the send-lag warning (when requests left their slots later, at the median, than the server
//! took to answer them, every output says so and by how much: the terminal summary, report.json, summary.md,
//! report.html and junit.xml's system-out), and `run --json` (the report alone on stdout).

use coap_harness::report::{self, lag, Report};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const PLAN: &str =
    "target: embedded\ndevices:\n  count: 10\nphases:\n  - duration: 1s\n    interval: 100ms\n";

/// A real run's report whose send lag is made to outweigh its uncorrected latency, assembled into warnings
/// as `run` does.
async fn lagging_report() -> Report {
    let plan = coap_harness::scenario::parse(
        PLAN,
        Path::new("t.yaml"),
        Path::new("."),
        "t",
        &Default::default(),
    )
    .unwrap();
    let out = coap_harness::app::run(Arc::new(plan), Default::default())
        .await
        .expect("the run completes");
    let mut r = out.report;
    assert!(r.total.latency_uncorrected.count > 0, "the run measured");
    // What a generator a millisecond late on every slot would have seen against a fast server.
    let mut lagged = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    let lag_us = r.total.latency_uncorrected.p50_us + 1_000;
    lagged.record_n(lag_us, r.total.sent).unwrap();
    r.total.send_lag = report::model::Latency::from_histogram(&lagged);
    r.warnings
        .retain(|w| !w.starts_with("send lag dominates the latency"));
    r.warnings
        .extend(lag::send_lag_warning(&r.total).into_iter());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_output_says_send_lag_dominates_and_by_how_much() {
    let r = lagging_report().await;
    let by = report::model::human_us(1_000);
    let needle = format!(
        "is larger than the uncorrected latency p50 {} by {by}",
        report::model::human_us(r.total.latency_uncorrected.p50_us)
    );
    let dir = tempfile::tempdir().unwrap();
    report::write_all(&r, dir.path()).unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();

    assert!(report::terminal::render(&r).contains(&needle), "terminal");
    let json: Report = serde_json::from_str(&read("report.json")).unwrap();
    assert_eq!(
        json.warnings
            .iter()
            .filter(|w| w.starts_with("send lag dominates the latency") && w.contains(&needle))
            .count(),
        1,
        "report.json warnings: {:?}",
        json.warnings
    );
    assert!(read("summary.md").contains(&needle), "summary.md");
    assert!(read("report.html").contains(&needle), "report.html");
    let junit = read("junit.xml");
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let out: String = doc
        .descendants()
        .filter(|n| n.has_tag_name("system-out"))
        .filter_map(|n| n.text())
        .collect();
    assert!(out.contains(&needle), "junit system-out: {out}");
}

/// `run --json`: stdout is the report and nothing else, the same as the report.json written; the summary a
/// person reads went to stderr.
#[test]
fn run_json_prints_the_report_alone_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.yaml");
    std::fs::write(&scenario, PLAN).unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .args(["run", "--json"])
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run coap-harness");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let printed: Report = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not a report ({e}):\n{}",
            String::from_utf8_lossy(&o.stdout)
        )
    });
    let written: Report =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(printed, written);
    assert!(printed.total.sent > 0);
    assert!(printed.verdict.is_some(), "stamped with its verdict");
    assert!(stderr.contains("wrote "), "{stderr}");
    assert!(stderr.contains("requests"), "the summary: {stderr}");
}
