//! The send-lag warning: when requests left their slots later (p50) than the server took to answer them, every
//! output of a real run says so and by how much: the terminal summary, report.json, summary.md, report.html
//! and junit.xml's system-out.

use coap_harness::report::{self, lag, Report};
use std::path::Path;
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
