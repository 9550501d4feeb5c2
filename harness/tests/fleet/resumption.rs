//! DTLS session resumption by the load devices (`dtls.resume`, issue #15 item 4) against the embedded
//! server over loopback: new sessions made for churn resume the device's previous one where the knob
//! says so, the report splits full from resumed handshakes, and the server's own counter agrees; after a
//! server restart (which empties its session cache) devices fall back to full handshakes.

use crate::common::*;

use coap_harness::engine::device::HandshakeCause;
use coap_harness::engine::DeviceTally;

/// 5 devices, each making a new session after every 5th request (about 20 requests each).
const CHURN: &str = r#"
target: embedded
pki: generate
devices:
  count: 5
dtls:
  ca: pki:ca
  handshake_timeout: 5s
  rehandshake_every: 5
phases:
  - duration: 2s
    interval: 100ms
"#;

fn with_resume(value: &str) -> String {
    CHURN.replace(
        "  rehandshake_every: 5\n",
        &format!("  rehandshake_every: 5\n  resume: {value}\n"),
    )
}

/// (full, resumed) successful handshakes of one device.
fn kinds(d: &DeviceTally) -> (usize, usize) {
    let all: Vec<_> = d.handshake.iter().chain(&d.rehandshakes).collect();
    assert!(all.iter().all(|h| h.verdict.connected()), "{d:?}");
    let resumed = all.iter().filter(|h| h.resumed).count();
    (all.len() - resumed, resumed)
}

/// The report's full/resumed split, checked against the devices and the server's counter.
fn assert_split(out: &coap_harness::app::RunOutput, full: u64, resumed: u64) {
    let r = &out.report;
    let h = r.handshakes.as_ref().expect("handshakes recorded");
    assert_eq!(h.failed, 0, "{h:?}");
    assert_eq!(h.full.as_ref().map(|l| l.count), Some(full), "{h:?}");
    assert_eq!(h.resumed.as_ref().map(|l| l.count), Some(resumed), "{h:?}");
    assert_eq!(full + resumed, h.ok);
    let dtls = r.server.as_ref().unwrap().dtls.as_ref().unwrap();
    assert_eq!(dtls.handshakes_ok, h.ok, "{dtls:?}");
    assert_eq!(dtls.handshakes_resumed, resumed, "{dtls:?}");
}

/// `resume: all`: every device's first handshake is full, and every new session it makes for churn
/// resumes the previous one; requests keep succeeding; summary.md and the terminal say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_with_resume_all_resumes_every_new_session() {
    let out = run(plan(&with_resume("all"))).await;
    let r = &out.report;
    assert_accounted(r);
    assert_eq!(r.total.outcomes.ok, r.total.sent, "{:?}", r.total.outcomes);
    let mut resumed = 0;
    for d in &out.devices {
        assert!(!d.handshake.as_ref().unwrap().resumed, "{d:?}");
        assert!(!d.rehandshakes.is_empty(), "{d:?}");
        assert!(
            d.rehandshakes
                .iter()
                .all(|h| h.cause == HandshakeCause::Churn && h.resumed),
            "{d:?}"
        );
        resumed += kinds(d).1 as u64;
    }
    assert!(resumed >= 5, "{resumed}");
    assert_split(&out, 5, resumed);
    let h = r.handshakes.as_ref().unwrap();
    let md = coap_harness::report::markdown::render(r);
    assert!(md.contains(&format!("{resumed} resumed a session")), "{md}");
    assert!(md.contains(&format!("resumed {resumed}: p50")), "{md}");
    let terminal = coap_harness::report::terminal::render(r);
    assert!(terminal.contains("handshake kinds: full 5"), "{terminal}");
    eprintln!("{}", h.kinds_summary().unwrap());
}

/// `resume` unset (none): every handshake is full, on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_without_resume_makes_full_handshakes_only() {
    let out = run(plan(CHURN)).await;
    assert_accounted(&out.report);
    let total: u64 = out.devices.iter().map(|d| kinds(d).0 as u64).sum();
    assert!(out.devices.iter().all(|d| kinds(d).1 == 0));
    assert_split(&out, total, 0);
    let md = coap_harness::report::markdown::render(&out.report);
    assert!(!md.contains("resumed a session"), "{md}");
}

/// `resume: 40%`: devices 2 and 4 of 0..5 (two of every five, spread out) resume, the others never do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_a_share_of_the_devices() {
    let out = run(plan(&with_resume("40%"))).await;
    assert_accounted(&out.report);
    let (mut full, mut resumed) = (0, 0);
    for d in &out.devices {
        let (f, r) = kinds(d);
        if d.index == 2 || d.index == 4 {
            assert_eq!((f, r), (1, d.rehandshakes.len()), "{d:?}");
        } else {
            assert_eq!(r, 0, "{d:?}");
        }
        full += f as u64;
        resumed += r as u64;
    }
    assert!(resumed >= 2, "{resumed}");
    assert_split(&out, full, resumed);
}

/// A restart empties the embedded server's session cache (a restarted process loses its memory): the
/// devices offer their sessions, the server no longer knows them, and every reconnect after the restart is
/// a full handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_reconnects_are_full_handshakes() {
    let yaml =
        "target: embedded\nembedded:\n  restart_at: 1500ms\n  restart_down: 300ms\npki: generate\n\
                devices:\n  count: 5\ndtls:\n  ca: pki:ca\n  handshake_timeout: 3s\n  resume: all\n\
                coap:\n  ack_timeout: 200ms\n  ack_random_factor: 1.0\n  max_retransmit: 1\n\
                health: off\nphases:\n  - duration: 4s\n    interval: 100ms\ndrain: 1s\n";
    let out = run(plan(yaml)).await;
    assert_accounted(&out.report);
    let mut reconnects = 0;
    for d in &out.devices {
        for h in &d.rehandshakes {
            assert_eq!(h.cause, HandshakeCause::Reconnect, "{d:?}");
            assert!(h.verdict.connected() && !h.resumed, "{d:?}");
            reconnects += 1;
        }
    }
    assert_eq!(reconnects, 5);
    assert_split(&out, 10, 0);
}
