//! One verdict in every output: for each kind of run (passed, a failed check, interrupted, a target that never
//! answered, a partial merge) the terminal summary, summary.md, report.html, junit.xml and report.json all
//! state what `verdict::of` says, and the exit code agrees.

use crate::common;

use coap_harness::report::{self, verdict, verdict::Verdict, Report};
use common::{assert_accounted, plan};
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

/// Writes every output of `r` into `dir` and asserts each states `want` (`passed`, `failed` or `fault`).
fn assert_every_output_says(r: &Report, dir: &Path, want: &str) {
    assert_accounted(r);
    let v = verdict::of(r);
    assert_eq!(v.word().to_ascii_lowercase(), want, "verdict::of: {v:?}");
    report::write_all(r, dir).unwrap();
    let word = v.word();

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["verdict"]["status"], want, "report.json");
    assert_eq!(json["verdict"]["exit_code"], u64::from(v.code()));
    assert_eq!(
        json["verdict"]["reason"].as_str(),
        v.reason(),
        "report.json reason"
    );

    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    let title = md.lines().next().unwrap();
    assert!(title.ends_with(&format!("— {word}")), "summary.md: {title}");
    // summary.md escapes the line for Markdown (a threshold's `<` is `&lt;`).
    assert!(
        md.contains(&format!(
            "**Verdict: {}**",
            report::escape::markdown(&v.line())
        )),
        "{md}"
    );
    for other in ["PASSED", "FAILED", "FAULT"].iter().filter(|w| **w != word) {
        assert!(!title.contains(other), "summary.md title {title}");
    }

    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains(&format!("id=\"verdict\">{word}</span>")),
        "report.html has no {word} verdict"
    );

    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains(&format!("<property name=\"verdict\" value=\"{want}\"/>")),
        "{junit}"
    );
    assert!(junit.contains(&format!(
        "<property name=\"exit_code\" value=\"{}\"/>",
        v.code()
    )));
    let failures = junit.contains("<failure");
    assert_eq!(failures, want != "passed", "junit failures: {junit}");

    let term = report::terminal::render(r);
    assert!(
        term.trim_end().ends_with(&format!("verdict: {}", v.line())),
        "{term}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_run_says_passed_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::run(plan(
        "target: embedded\ndevices:\n  count: 4\nphases:\n  - duration: 500ms\n    interval: 100ms\n",
    ))
    .await;
    assert_every_output_says(&out.report, dir.path(), "passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_threshold_says_failed_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::run(plan(
        "target: embedded\ndevices:\n  count: 4\nphases:\n  - duration: 500ms\n    interval: 100ms\nthresholds:\n  - p50 < 1us\n",
    ))
    .await;
    assert_every_output_says(&out.report, dir.path(), "failed");
}

/// Before: summary.md tested "every check passed", so an interrupted run with no failed check said PASSED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_says_failed_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::run_stopped_after(
        plan("target: embedded\ndevices:\n  count: 4\nphases:\n  - duration: 60s\n    interval: 100ms\n"),
        Duration::from_millis(600),
    )
    .await;
    assert!(out.report.interrupted);
    assert!(!matches!(verdict::of(&out.report), Verdict::Passed));
    assert_every_output_says(&out.report, dir.path(), "failed");
}

/// Before: a target that never answered (exit 2) had no failed check, so summary.md said PASSED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_target_says_fault_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    // Bound and never read: datagrams are swallowed, nothing answers, no ICMP.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let out = common::run(plan(&format!(
        "target: coap://{addr}\ndevices:\n  count: 2\ncoap:\n  ack_timeout: 50ms\n  ack_random_factor: 1.0\n  \
         max_retransmit: 1\nphases:\n  - duration: 300ms\n    interval: 100ms\n"
    )))
    .await;
    assert_every_output_says(&out.report, dir.path(), "fault");
    drop(silent);
}

/// A partial merge: the merged figures cover only some shards, which fails the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_merge_says_failed_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let server = coap_harness::server::start(coap_harness::server::ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        tokens: coap_harness::server::TokenPolicy::Any,
        response_delay: None,
        plain: true,
        dtls: None,
    })
    .await
    .unwrap();
    let yaml = format!(
        "target: coap://{}\ndevices:\n  count: 4\nphases:\n  - duration: 300ms\n    interval: 100ms\n",
        server.local_addr()
    );
    let shard = coap_harness::scenario::parse(
        &yaml,
        Path::new("t.yaml"),
        Path::new("."),
        "t",
        &coap_harness::scenario::Overrides {
            shard: Some("0/2".parse().unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    let out = common::run(shard).await;
    server.shutdown().await;
    let merged = coap_harness::merge::merge(vec![("s0.json".into(), out.report)], true).unwrap();
    assert!(merged.partial);
    assert_every_output_says(&merged, dir.path(), "failed");
}
