//! Watching a run: the send-lag warning (when requests left their slots later, at the median, than the server
//! took to answer them, every output says so and by how much: the terminal summary, report.json, summary.md,
//! report.html and junit.xml's system-out), and `run --json` (the report alone on stdout).

use crate::common;

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
    r.warnings.extend(lag::send_lag_warning(&r.total));
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

/// Every sample of each OpenMetrics body, as Python's `prometheus_client` OpenMetrics parser reads it:
/// (name, labels, value) per body.
type Samples = Vec<(String, std::collections::BTreeMap<String, String>, f64)>;

fn parse_openmetrics(bodies: &[String]) -> Vec<Samples> {
    const PARSER: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for path in sys.argv[1:]:
    text = open(path, encoding="utf-8").read()
    out.append([[s.name, s.labels, s.value] for f in text_string_to_metric_families(text) for s in f.samples])
print(json.dumps(out))
"#;
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let p = dir.path().join(format!("{i}.txt"));
            std::fs::write(&p, b).unwrap();
            p
        })
        .collect();
    let o = Command::new("python3")
        .args(["-c", PARSER])
        .args(&paths)
        .output()
        .expect("run python3");
    assert!(
        o.status.success(),
        "the parser rejected the exposition: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The sum of the samples called `name` whose labels include `with`.
fn sum(samples: &Samples, name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
        .sum()
}

/// GET /metrics over loopback TCP: (status line, Content-Type, body).
async fn scrape(addr: std::net::SocketAddr) -> (String, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.lines().next().unwrap().to_string();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_string();
    (status, content_type, body.to_string())
}

/// `run --metrics`: scraped over loopback while a run lasts, the body parses with an independent parser
/// (Python's `prometheus_client`), the request counters rise, and once the run is over they equal
/// report.json's totals; the gauges are back to zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_rises_during_a_run_and_ends_at_the_report_totals() {
    use coap_harness::app::{metrics_http, RunOptions};
    use coap_harness::metrics::export::RunMetrics;
    if !common::require_python("prometheus_client", "prometheus_client") {
        return;
    }
    let plan = Arc::new(common::plan(
        "target: embedded\ndevices:\n  count: 20\nphases:\n  - name: warm\n    duration: 1s\n    ramp: linear\n    \
         interval: 50ms\n  - name: steady\n    duration: 2s\n    interval: 50ms\n",
    ));
    let names: Vec<String> = plan.phases.iter().map(|p| p.name.clone()).collect();
    let m = Arc::new(RunMetrics::new(&names));
    let (addr, server) = metrics_http::serve(
        "127.0.0.1:0".parse().unwrap(),
        metrics_http::run_render(m.clone()),
    )
    .await
    .unwrap();
    let run = tokio::spawn(coap_harness::app::run(
        plan,
        RunOptions {
            metrics: Some(m),
            ..Default::default()
        },
    ));
    let mut bodies = Vec::new();
    while !run.is_finished() {
        let (status, content_type, body) = scrape(addr).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(content_type.starts_with("application/openmetrics-text"));
        bodies.push(body);
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let report = run.await.unwrap().expect("the run completes").report;
    bodies.push(scrape(addr).await.2);
    server.abort();

    let parsed = parse_openmetrics(&bodies);
    let sent: Vec<f64> = parsed
        .iter()
        .map(|s| sum(s, "coap_harness_requests_total", &[]))
        .collect();
    assert!(sent.windows(2).all(|w| w[0] <= w[1]), "{sent:?}");
    let last = parsed.last().unwrap();
    let t = &report.total;
    assert!(t.sent > 0);
    assert!(
        sent.iter().any(|v| *v > 0.0 && *v < t.sent as f64),
        "seen while rising: {sent:?}"
    );
    assert_eq!(sent.last().copied(), Some(t.sent as f64));
    assert_eq!(
        sum(last, "coap_harness_requests_total", &[("outcome", "ok")]),
        t.outcomes.ok as f64
    );
    for (code, n) in &t.codes {
        assert_eq!(
            sum(last, "coap_harness_requests_total", &[("code", code)]),
            *n as f64,
            "code {code}"
        );
    }
    assert_eq!(
        sum(last, "coap_harness_retransmissions_total", &[]),
        t.retransmissions as f64
    );
    assert_eq!(
        sum(last, "coap_harness_request_latency_seconds_count", &[]),
        t.latency.count as f64
    );
    assert_eq!(
        sum(last, "coap_harness_send_lag_seconds_count", &[]),
        t.send_lag.count as f64
    );
    // Every request is at most 60 s: the last bucket below +Inf holds them all.
    assert_eq!(
        sum(
            last,
            "coap_harness_request_latency_seconds_bucket",
            &[("le", "60.0")]
        ),
        t.latency.count as f64
    );
    assert_eq!(sum(last, "coap_harness_requests_in_flight", &[]), 0.0);
    assert_eq!(sum(last, "coap_harness_active_devices", &[]), 0.0);
    assert_eq!(
        sum(last, "coap_harness_phase", &[]),
        0.0,
        "no phase under way"
    );
    assert!(sum(last, "coap_harness_generator_cpu_seconds_total", &[]) > 0.0);
    assert!(sum(last, "coap_harness_generator_resident_memory_bytes", &[]) > 0.0);
    // Some scrape saw a phase under way and devices active.
    assert!(parsed
        .iter()
        .any(|s| sum(s, "coap_harness_phase", &[]) == 1.0
            && sum(s, "coap_harness_active_devices", &[]) > 0.0));
}

/// `serve --metrics`: the embedded server's counters scraped over loopback after real CoAP requests, read
/// by Python's `prometheus_client`: requests by route and code, deduplicated messages, Observe registrations,
/// devices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_metrics_count_what_the_server_answered() {
    use coap_harness::coap::{option, Code, Message, MessageType, Token};
    use std::io::BufRead;
    if !common::require_python("prometheus_client", "prometheus_client") {
        return;
    }
    /// Kills the server however the test ends.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .args([
            "serve",
            "--coap",
            "127.0.0.1:0",
            "--any-token",
            "--metrics",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _child = Killed(child);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let (mut coap, mut metrics) = (None, None);
    while coap.is_none() || metrics.is_none() {
        let line = lines.next().expect("serve prints its addresses").unwrap();
        if let Some(rest) = line.split("coap://").nth(1) {
            coap = Some(rest.split_whitespace().next().unwrap().to_string());
        }
        if let Some(rest) = line.strip_prefix("metrics: http://") {
            metrics = Some(rest.trim_end_matches("/metrics").to_string());
        }
    }
    let coap: std::net::SocketAddr = coap.unwrap().parse().unwrap();
    let metrics: std::net::SocketAddr = metrics.unwrap().parse().unwrap();

    // Three telemetry posts, the second sent twice (a retransmission the server deduplicates).
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 1500];
    for (mid, copies) in [(1u16, 1), (2, 2), (3, 1)] {
        let mut m = Message::new(MessageType::Con, Code::POST, mid, Token::default());
        for seg in ["api", "v1", "tok", "telemetry"] {
            m.add_option(option::URI_PATH, seg.as_bytes());
        }
        m.payload = b"{\"t\":1}".to_vec();
        let mut bytes = Vec::new();
        m.encode(&mut bytes);
        for _ in 0..copies {
            sock.send_to(&bytes, coap).unwrap();
            let n = sock.recv(&mut buf).expect("an answer");
            assert_eq!(Message::decode(&buf[..n]).unwrap().code, Code::CREATED);
        }
    }
    // Then one request on each of three other routes: an attribute post, an Observe registration of the
    // attributes, and a firmware download this server does not serve.
    // (message ID, method, path, Observe, expected code)
    type Request<'a> = (u16, Code, &'a [&'a str], Option<u32>, Code);
    let others: [Request; 3] = [
        (
            10,
            Code::POST,
            &["api", "v1", "tok", "attributes"],
            None,
            Code::CREATED,
        ),
        (
            11,
            Code::GET,
            &["api", "v1", "tok", "attributes"],
            Some(0),
            Code::CONTENT,
        ),
        (12, Code::GET, &["fw", "tok"], None, Code::NOT_FOUND),
    ];
    for (mid, code, path, observe, want) in others {
        let mut m = Message::new(MessageType::Con, code, mid, Token::from_u64(u64::from(mid)));
        if let Some(o) = observe {
            m.add_uint_option(option::OBSERVE, o);
        }
        for seg in path {
            m.add_option(option::URI_PATH, seg.as_bytes());
        }
        if code == Code::POST {
            m.payload = b"{\"a\":1}".to_vec();
        }
        let mut bytes = Vec::new();
        m.encode(&mut bytes);
        sock.send_to(&bytes, coap).unwrap();
        let n = sock.recv(&mut buf).expect("an answer");
        assert_eq!(Message::decode(&buf[..n]).unwrap().code, want, "{path:?}");
    }
    let (status, _, body) = scrape(metrics).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let s = &parse_openmetrics(&[body])[0];
    assert_eq!(
        sum(s, "coap_harness_server_requests_total", &[("code", "2.01")]),
        4.0
    );
    let by_route = |route: &str, code: &str| {
        sum(
            s,
            "coap_harness_server_requests_total",
            &[("route", route), ("code", code)],
        )
    };
    assert_eq!(by_route("telemetry", "2.01"), 3.0);
    assert_eq!(by_route("attributes", "2.01"), 1.0);
    assert_eq!(by_route("attributes", "2.05"), 1.0);
    assert_eq!(by_route("firmware", "4.04"), 1.0);
    // Every sample's route is one of the fixed few.
    for (name, labels, _) in s {
        if name == "coap_harness_server_requests_total" {
            assert!(
                [
                    "telemetry",
                    "attributes",
                    "rpc",
                    "claim",
                    "provision",
                    "firmware",
                    "other"
                ]
                .contains(&labels["route"].as_str()),
                "{labels:?}"
            );
        }
    }
    assert_eq!(sum(s, "coap_harness_server_requests_total", &[]), 6.0);
    assert_eq!(sum(s, "coap_harness_server_deduplicated_total", &[]), 1.0);
    assert_eq!(
        sum(s, "coap_harness_server_observe_registrations_total", &[]),
        1.0
    );
    assert_eq!(sum(s, "coap_harness_server_observers", &[]), 1.0);
    assert_eq!(sum(s, "coap_harness_server_datagrams_total", &[]), 7.0);
    assert_eq!(sum(s, "coap_harness_server_devices", &[]), 1.0);
}
