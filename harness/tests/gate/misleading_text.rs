//! Smaller text that misled: responses with the wrong message ID or token are named as unmatched (not "no
//! response"), empty phases show `–` instead of `0µs`, and `compare` warns about runs with different device
//! counts or transports before it reports a regression.

use crate::common;

use coap_harness::report::{self, verdict, verdict::Verdict};
use common::{assert_accounted, plan};
use std::net::UdpSocket;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Before: "no response from target ... timed out", blaming a server that did answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_with_the_wrong_id_and_token_are_named_unmatched() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !s2.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let tkl = (buf[0] & 0x0f) as usize;
            if n < 4 + tkl {
                continue;
            }
            // An ACK carrying 2.04, but for message ID + 1 and with every token byte flipped.
            let mid = u16::from_be_bytes([buf[2], buf[3]])
                .wrapping_add(1)
                .to_be_bytes();
            let mut reply = vec![0x60 | tkl as u8, 0x44, mid[0], mid[1]];
            reply.extend(buf[4..4 + tkl].iter().map(|b| !b));
            let _ = sock.send_to(&reply, from);
        }
    });
    let out = common::run(plan(&format!(
        "target: coap://{addr}\ndevices:\n  count: 2\ncoap:\n  ack_timeout: 50ms\n  ack_random_factor: 1.0\n  \
         max_retransmit: 1\nphases:\n  - duration: 300ms\n    interval: 100ms\n"
    )))
    .await;
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    let r = &out.report;
    assert_accounted(r);
    assert!(r.protocol.unmatched > 0, "{:?}", r.protocol);
    let Verdict::Fault(why) = verdict::of(r) else {
        panic!("{:?}", verdict::of(r))
    };
    assert!(
        why.contains(&format!(
            "with {} responses that matched no request (wrong message ID or token)",
            r.protocol.unmatched
        )) && !why.contains("no response from target"),
        "{why}"
    );
}

/// Before: a phase with no response showed `0µs` for every percentile, as if it had been instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_phase_shows_dashes_not_zero_latency() {
    let out = common::run_stopped_after(
        plan("target: embedded\ndevices:\n  count: 2\nphases:\n  - name: first\n    duration: 30s\n    interval: 100ms\n  - name: never\n    duration: 30s\n    interval: 100ms\n"),
        Duration::from_millis(500),
    )
    .await;
    let r = &out.report;
    assert_accounted(r);
    assert_eq!(r.phases[1].requests.sent, 0);
    let term = report::terminal::render(r);
    let line = term
        .lines()
        .find(|l| l.trim_start().starts_with("never "))
        .unwrap_or_else(|| panic!("{term}"));
    assert!(line.contains('–') && !line.contains("0µs"), "{line}");
    let md = report::markdown::render(r);
    let row = md
        .lines()
        .find(|l| l.starts_with("| never |"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(row.contains("| – |") && !row.contains("0µs"), "{row}");
    // The phase that ran keeps its figures.
    let first = md.lines().find(|l| l.starts_with("| first |")).unwrap();
    assert!(!first.contains('–'), "{first}");
}

/// Before: a run with twice the devices and DTLS was compared silently, its throughput drop a "regression".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_warns_about_different_device_counts_and_transports() {
    let out = common::run(plan(
        "target: embedded\ndevices:\n  count: 2\nphases:\n  - duration: 300ms\n    interval: 100ms\n",
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let base = serde_json::to_value(&out.report).unwrap();
    let mut cur = base.clone();
    cur["devices"]["count"] = 4.into();
    cur["target"]["transport"] = "dtls".into();
    let t = cur["total"]["throughput_rps"].as_f64().unwrap();
    cur["total"]["throughput_rps"] = (t / 2.0).into();
    let (b, c) = (dir.path().join("b.json"), dir.path().join("c.json"));
    std::fs::write(&b, base.to_string()).unwrap();
    std::fs::write(&c, cur.to_string()).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .arg("compare")
        .args([&b, &c])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "the halved throughput regresses");
    for want in [
        "different device counts: 2 (baseline) and 4 (current)",
        "different transports: coap (baseline) and dtls (current)",
    ] {
        assert!(
            stderr.contains(&format!("warning: the runs had {want}"))
                || stderr.contains(&format!("warning: the runs used {want}")),
            "{stderr}"
        );
        let warn = stdout.find(want).unwrap_or_else(|| panic!("{stdout}"));
        let table = stdout.find("| throughput |").unwrap();
        assert!(warn < table, "the warning comes before the table\n{stdout}");
    }
}
