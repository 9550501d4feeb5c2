//! Expectations and thresholds gate a run: each kind both passes and fails on a real run, a failure names
//! expected and observed and exits 1, and a misspelled threshold is an error naming its line (exit 2).

use coap_harness::coap::{Code, Message, MessageType};
use coap_harness::report::{Check, Report};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BASE: &str = "target: embedded\ndevices:\n  count: 10\nphases:\n  - name: steady\n    duration: 1s\n    interval: 100ms\n";

fn run_cli(dir: &Path, yaml: &str) -> (Output, Option<Report>) {
    let file = dir.join("s.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = dir.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--quiet",
            "--out",
            out.to_str().unwrap(),
            // Each call reruns into the same folder.
            "--force",
        ])
        .output()
        .unwrap();
    let report = std::fs::read_to_string(out.join("report.json"))
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap());
    (o, report)
}

fn check<'a>(r: &'a Report, name_part: &str) -> &'a Check {
    r.checks
        .iter()
        .find(|c| c.name.contains(name_part))
        .unwrap_or_else(|| panic!("no check named like {name_part}: {:?}", r.checks))
}

#[test]
fn expectations_and_thresholds_that_hold_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{BASE}expect:\n  code: \"2.01\"\n  content_format: json\n  latency: 5s\nthresholds:\n  - p99 < 5s\n  - error_rate < 0.1%\n  - throughput > 10/s\n  - timeouts <= 0\n  - {{ threshold: \"max < 10s\", abort_on_fail: true }}\n"
    )
    .replace("    interval: 100ms\n", "    interval: 100ms\n    thresholds: [\"p50 < 2s\"]\n");
    let (o, r) = run_cli(dir.path(), &yaml);
    let r = r.unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", r.checks);
    assert!(check(&r, "expect response code 2.01").passed);
    assert!(check(&r, "expect content-format 50").passed);
    assert!(check(&r, "expect latency <= 5s").passed);
    assert!(check(&r, "threshold (run): p99 < 5s").passed);
    assert!(check(&r, "threshold (run): throughput > 10/s").passed);
    assert!(check(&r, "threshold (phase steady): p50 < 2s").passed);
    assert_eq!(
        r.checks
            .iter()
            .filter(|c| c.name.starts_with("threshold"))
            .count(),
        6
    );
}

#[test]
fn a_wrong_expectation_exits_1_naming_expected_and_observed() {
    let dir = tempfile::tempdir().unwrap();
    let (o, r) = run_cli(
        dir.path(),
        &format!("{BASE}expect:\n  codes: [\"2.04\", \"2.05\"]\n"),
    );
    assert_eq!(o.status.code(), Some(1));
    let r = r.unwrap();
    let c = check(&r, "expect response code 2.04 or 2.05");
    assert!(!c.passed);
    assert_eq!(c.expected, "every request: response code 2.04 or 2.05");
    assert!(
        c.observed
            .contains(&format!("0 of {} requests held", r.total.sent)),
        "{}",
        c.observed
    );
    assert!(c.observed.contains("2.01 x"), "{}", c.observed);
    assert_eq!(r.total.expectation_failures, r.total.sent);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("FAILED") && stderr.contains("expect response code"),
        "{stderr}"
    );
}

#[test]
fn thresholds_that_do_not_hold_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{BASE}thresholds:\n  - p99 < 1us\n  - throughput > 1000000/s\n  - error_rate < 1%\n"
    );
    let (o, r) = run_cli(dir.path(), &yaml);
    assert_eq!(o.status.code(), Some(1));
    let r = r.unwrap();
    let p99 = check(&r, "p99 < 1us");
    assert!(!p99.passed);
    assert_eq!(p99.expected, "< 1µs");
    assert!(!check(&r, "throughput > 1000000/s").passed);
    assert!(check(&r, "error_rate < 1%").passed);
}

#[test]
fn phase_thresholds_judge_their_phase_only() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "target: embedded\ndevices:\n  count: 5\nphases:\n  - name: idle\n    duration: 1s\n    interval: 10s\n    thresholds: [\"throughput > 100/s\"]\n  - name: busy\n    duration: 1s\n    interval: 20ms\n    thresholds: [\"throughput > 100/s\"]\n";
    let (o, r) = run_cli(dir.path(), yaml);
    assert_eq!(o.status.code(), Some(1));
    let r = r.unwrap();
    assert!(!check(&r, "(phase idle)").passed);
    assert!(check(&r, "(phase busy)").passed);
}

#[test]
fn misspelled_thresholds_exit_2_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    for (t, line, want) in [
        ("latncy < 5ms", 10, "unknown metric `latncy`"),
        ("p99 < 5 parsecs", 10, "not a duration"),
        ("p99 =< 5ms", 10, "not an operator"),
        ("error_rate < lots", 10, "not a rate"),
    ] {
        let yaml = format!("{BASE}thresholds:\n  - p50 < 1s\n  - {t}\n");
        let (o, r) = run_cli(dir.path(), &yaml);
        assert_eq!(o.status.code(), Some(2), "{t}");
        assert!(r.is_none(), "nothing ran");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("s.yaml:{line}:"))
                && err.contains("thresholds[1]")
                && err.contains(want),
            "{t}: {err}"
        );
    }
    let yaml = BASE.replace(
        "    interval: 100ms\n",
        "    interval: 100ms\n    thresholds: [\"handshake_p99 < 1s\"]\n",
    );
    let (o, _) = run_cli(dir.path(), &yaml);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("handshake metrics apply to the whole run"));
}

/// A server answering every CON with a JSON document, to hold payload expectations against.
fn json_server(
    body: &'static str,
) -> (
    std::net::SocketAddr,
    Arc<AtomicBool>,
    std::thread::JoinHandle<()>,
) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !s2.load(Ordering::Relaxed) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                if let Ok(req) = Message::decode(&buf[..n]) {
                    let mut resp =
                        Message::new(MessageType::Ack, Code::CONTENT, req.message_id, req.token);
                    resp.add_uint_option(coap_harness::coap::option::CONTENT_FORMAT, 50);
                    resp.payload = body.as_bytes().to_vec();
                    let _ = sock.send_to(&resp.to_bytes(), from);
                }
            }
        }
    });
    (addr, stop, t)
}

#[test]
fn payload_expectations_hold_and_break() {
    let (addr, stop, t) = json_server(r#"{"shared":{"mode":"eco","targets":[20,22]}}"#);
    let dir = tempfile::tempdir().unwrap();
    let base = BASE
        .replace("target: embedded", &format!("target: coap://{addr}"))
        .replace("count: 10", "count: 3");
    let yaml = format!("{base}request:\n  method: GET\n  path: /api/v1/{{token}}/attributes\n  query: [\"sharedKeys=mode\"]\nexpect:\n  code: \"2.05\"\n  json: {{ shared.mode: eco }}\n  json_exists: [shared.targets.1]\n");
    let (o, r) = run_cli(dir.path(), &yaml);
    let r = r.unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", r.checks);
    assert!(check(&r, "JSON payload").passed);
    let (o, r) = run_cli(dir.path(), &yaml.replace("mode: eco", "mode: max"));
    assert_eq!(o.status.code(), Some(1));
    let r = r.unwrap();
    let c = check(&r, "JSON payload: shared.mode == \"max\"");
    assert!(!c.passed);
    assert!(
        c.observed
            .contains(r#"e.g. 2.05 cf=50 {"shared":{"mode":"eco""#),
        "{}",
        c.observed
    );
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
}

/// `abort_on_fail` stops a run as soon as its threshold can no longer be met, and the report says so.
#[test]
fn abort_on_fail_stops_the_run_early() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for threshold in ["timeouts <= 0", "error_rate < 1%"] {
        let yaml = format!(
            "target: coap://{addr}\ndevices:\n  count: 5\ncoap:\n  ack_timeout: 50ms\n  ack_random_factor: 1.0\n  max_retransmit: 0\nphases:\n  - duration: 30s\n    interval: 100ms\nthresholds:\n  - {{ threshold: \"{threshold}\", abort_on_fail: true }}\n"
        );
        let started = std::time::Instant::now();
        let (o, r) = run_cli(dir.path(), &yaml);
        let r = r.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "{threshold}: stopped early"
        );
        assert!(!r.interrupted, "an abort is not a Ctrl-C");
        assert!(
            r.warnings[0].starts_with("run aborted early: threshold"),
            "{:?}",
            r.warnings
        );
        assert!(!check(&r, "run not aborted").passed);
        assert!(!check(&r, threshold).passed);
        assert_ne!(o.status.code(), Some(0), "{threshold}");
        assert_eq!(r.total.sent, r.total.outcomes.total());
    }
    drop(silent);
}

#[test]
fn abort_on_fail_on_a_metric_that_can_recover_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (o, _) = run_cli(
        dir.path(),
        &format!("{BASE}thresholds:\n  - {{ threshold: \"p99 < 5ms\", abort_on_fail: true }}\n"),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("abort_on_fail watches only"));
}
