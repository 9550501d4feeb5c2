//! `coap-harness report --compare A.json B.json [C.json]`: two real runs at different loads (and a copy of the
//! first under another name) drawn over each other; each run's curves, name and figures held against its own
//! report.json. The page is self-contained like report.html.

use crate::common;

use coap_harness::report::{html, Report};
use roxmltree::Document;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const LIGHT: &str =
    "name: light\ntarget: embedded\ndevices:\n  count: 4\nphases:\n  - duration: 2s\n    interval: 250ms\n";
const HEAVY: &str =
    "name: heavy\ntarget: embedded\ndevices:\n  count: 20\nphases:\n  - duration: 4s\n    interval: 50ms\n";

/// Runs `yaml` and writes its report folder `dir/name/`; returns the report.json path and the report.
async fn run_into(dir: &Path, name: &str, yaml: &str) -> (PathBuf, Report) {
    let r = common::run(common::plan(yaml)).await.report;
    let folder = dir.join(name);
    coap_harness::report::write_all(&r, &folder).unwrap();
    (folder.join("report.json"), r)
}

fn harness(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .args(args)
        .output()
        .expect("run coap-harness")
}

/// `coap-harness report --compare RUNS... EXTRA...`.
fn compare(runs: &[&std::path::Path], extra: &[&std::ffi::OsStr]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec!["report".as_ref(), "--compare".as_ref()];
    args.extend(runs.iter().map(|r| r.as_os_str()));
    args.extend_from_slice(extra);
    harness(&args)
}

fn ok(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The `<svg>` with `data-chart="id"`, parsed.
fn chart<'p>(page: &'p str, id: &str) -> Document<'p> {
    let attr = format!("data-chart=\"{id}\"");
    let at = page.find(&attr).unwrap_or_else(|| panic!("no chart {id}"));
    let start = page[..at].rfind("<svg").unwrap();
    let end = page[start..].find("</svg>").unwrap() + start + "</svg>".len();
    assert_eq!(page.matches(&attr).count(), 1, "chart {id} once");
    Document::parse(&page[start..end]).unwrap_or_else(|e| panic!("chart {id} is not XML: {e}"))
}

/// The number of points of series `key`, or None when the chart has no such curve.
fn points(doc: &Document, key: &str) -> Option<usize> {
    let line = doc
        .descendants()
        .find(|n| n.has_tag_name("polyline") && n.attribute("data-series") == Some(key))?;
    Some(line.attribute("points").unwrap().split_whitespace().count())
}

fn legend(doc: &Document, key: &str) -> String {
    doc.descendants()
        .find(|n| n.attribute("data-legend") == Some(key))
        .unwrap_or_else(|| panic!("no legend for {key}"))
        .text()
        .unwrap()
        .to_string()
}

/// The text of the cell of figure `key` for run `i` in the headline table.
fn cell(page: &str, key: &str, i: usize) -> String {
    let row_at = page
        .find(&format!("<tr data-figure=\"{key}\">"))
        .unwrap_or_else(|| panic!("no row {key}"));
    let row = &page[row_at..row_at + page[row_at..].find("</tr>").unwrap()];
    let at = row
        .find(&format!("data-run=\"{i}\">"))
        .unwrap_or_else(|| panic!("no run {i} in row {key}"));
    let rest = &row[at + format!("data-run=\"{i}\">").len()..];
    rest[..rest.find("</td>").unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_page_draws_each_run_with_its_own_data() {
    let dir = tempfile::tempdir().unwrap();
    let (a, ra) = run_into(dir.path(), "before", LIGHT).await;
    let (b, rb) = run_into(dir.path(), "after", HEAVY).await;
    // A third run: the first one again, under another file name.
    let c = dir.path().join("again.json");
    std::fs::copy(&a, &c).unwrap();
    let runs = [("before", &ra), ("after", &rb), ("again", &ra)];
    assert!(rb.total.sent > 2 * ra.total.sent, "the loads differ");
    assert_ne!(ra.timeseries.len(), rb.timeseries.len());

    let page_file = dir.path().join("compare.html");
    let o = compare(&[&a, &b, &c], &["--html".as_ref(), page_file.as_os_str()]);
    ok(&o);
    let page = std::fs::read_to_string(&page_file).unwrap();

    // Self-contained: nothing fetched, the only URL the SVG namespace (as report.html).
    assert!(page.starts_with("<!DOCTYPE html>"));
    let no_ns = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for bad in [
        "http://", "https://", "src=", "<script", "<link", "@import", "url(",
    ] {
        assert!(!no_ns.contains(bad), "page contains {bad}");
    }
    assert!(!page.contains("insecure-banner"), "no run was insecure");

    let spectrum = chart(&page, "compare-percentiles");
    let throughput = chart(&page, "compare-throughput");
    let p99 = chart(&page, "compare-p99");
    for (i, (name, r)) in runs.iter().enumerate() {
        let key = format!("run-{i}");
        // Its own spectrum and one point per second of its own run.
        assert_eq!(
            points(&spectrum, &key),
            Some(html::percentile_points(&r.total.latency).len())
        );
        assert_eq!(points(&throughput, &key), Some(r.timeseries.len()));
        assert_eq!(points(&p99, &key), Some(r.timeseries.len()));
        // Named after its file (or folder), with its scenario and start time, in every legend.
        let label = format!("{}. {name} ({}, {})", i + 1, r.scenario.name, r.started_at);
        for doc in [&spectrum, &throughput, &p99] {
            assert_eq!(legend(doc, &key), label);
        }
        assert!(page.contains(&format!("<tr data-run=\"{i}\">")));
        // Its figures, and for the later runs the ratio to the first.
        let sent = cell(&page, "sent", i);
        assert!(
            sent.starts_with(&r.total.sent.to_string()),
            "run {i}: {sent}"
        );
        let p50 = cell(&page, "p50", i);
        assert!(
            p50.starts_with(&coap_harness::report::model::human_us(
                r.total.latency.p50_us
            )),
            "run {i}: {p50}"
        );
        if i == 0 {
            assert!(!sent.contains('×'));
        } else {
            let ratio = r.total.sent as f64 / ra.total.sent as f64;
            assert!(sent.contains(&format!("×{ratio:.2}")), "run {i}: {sent}");
            // Red exactly when worse than the first run by more than 10%, whichever way is worse.
            let (l, la) = (&r.total.latency, &ra.total.latency);
            for (key, base, value, lower_is_better) in [
                ("p50", la.p50_us as f64, l.p50_us as f64, true),
                ("p99", la.p99_us as f64, l.p99_us as f64, true),
                (
                    "throughput",
                    ra.total.throughput_rps,
                    r.total.throughput_rps,
                    false,
                ),
            ] {
                let ratio = value / base;
                let worse = if lower_is_better {
                    ratio > 1.1
                } else {
                    ratio < 0.9
                };
                let shown = cell(&page, key, i);
                assert_eq!(
                    shown.contains("class=\"ratio worse\""),
                    worse,
                    "run {i} {key}: {shown}"
                );
            }
        }
    }
    assert_eq!(points(&spectrum, "run-3"), None);
    // The copy of the first run has the same figures: ratio 1.
    assert!(cell(&page, "p99", 2).contains("×1.00"));

    // --out DIR writes DIR/compare.html, and without either the page goes to stdout: the same page.
    let out_dir = dir.path().join("out");
    let o = compare(&[&a, &b, &c], &["--out".as_ref(), out_dir.as_os_str()]);
    ok(&o);
    assert!(std::fs::read_to_string(out_dir.join("compare.html")).unwrap() == page);
    let o = compare(&[&a, &b, &c], &[]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout) == page);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_needs_two_readable_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = run_into(dir.path(), "only", LIGHT).await;
    // One run is not a comparison: a usage error.
    let o = compare(&[&a], &[]);
    assert_eq!(o.status.code(), Some(2));
    // A file that is not a report: named, exit 2, nothing written.
    let bad = dir.path().join("other.json");
    std::fs::write(&bad, "{\"hello\": 1}\n").unwrap();
    let page = dir.path().join("page.html");
    let o = compare(&[&a, &bad], &["--html".as_ref(), page.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("other.json"));
    assert!(!page.exists());
    // A single report and --compare together are ambiguous.
    let o = harness(&[
        "report".as_ref(),
        a.as_os_str(),
        "--compare".as_ref(),
        a.as_os_str(),
        a.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}
