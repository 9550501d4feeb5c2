//! The engine at modest scale in CI (the large runs live in ci/bench.sh): thousands of plain devices and
//! hundreds of DTLS sessions, each device its own socket, every device connected and every request
//! accounted for on both sides; paced connections; devices spread over several source addresses.

use crate::common;

use coap_harness::coap::{Code, Message, MessageType};
use coap_harness::engine::abort::planned_by_phase;
use coap_harness::verdict::{self, Verdict};
use common::*;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_plain_devices_all_connected_every_request_accounted() {
    let out = run(plan(
        r#"
target: embedded
devices:
  count: 2000
phases:
  - name: ramp
    duration: 1s
    ramp: linear
    interval: 1s
  - name: steady
    duration: 2s
    interval: 1s
"#,
    ))
    .await;
    let r = &out.report;
    assert_accounted(r);
    assert_eq!((r.devices.started, r.devices.failed), (2000, 0));
    assert_eq!(r.total.outcomes.ok, r.total.sent, "{:?}", r.total.outcomes);
    // Device by device, the server counted exactly what the device sent.
    let server: BTreeMap<&str, u64> = out
        .server_devices
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| (s.token.as_str(), s.messages))
        .collect();
    assert_eq!(server.len(), 2000);
    for d in &out.devices {
        assert!(d.sent >= 2, "{} sent {}", d.token, d.sent);
        assert_eq!(server.get(d.token.as_str()), Some(&d.sent), "{}", d.token);
    }
    // The generator watched itself over the load.
    let g = r.generator.as_ref().expect("generator stats");
    assert!(g.includes_embedded_server);
    assert!(g.cpu_user_s + g.cpu_system_s > 0.0, "{g:?}");
    assert!(g.max_rss_kib > 0);
    assert!(!g.cpu_busy_series.is_empty());
    let m = r.machine.as_ref().expect("machine described");
    assert!(m.cores >= 1 && !m.os.is_empty());
    let html = coap_harness::report::html::render(r);
    assert!(html.contains(&m.os), "report.html names the machine");
    assert_eq!(verdict::of(r), Verdict::Passed, "{:?}", r.checks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_dtls_sessions_with_paced_handshakes() {
    let out = run(plan(
        r#"
target: embedded
pki: generate
devices:
  count: 500
  connect_rate: 250/s
dtls:
  ca: pki:ca
  handshake_timeout: 20s
phases:
  - name: connect
    duration: 3s
    interval: 1s
  - name: steady
    duration: 2s
    interval: 500ms
"#,
    ))
    .await;
    let r = &out.report;
    assert_accounted(r);
    let h = r.handshakes.as_ref().expect("handshakes recorded");
    assert_eq!((h.attempted, h.ok, h.failed), (500, 500, 0), "{h:?}");
    assert_eq!(r.devices.started, 500);
    assert_eq!(r.total.outcomes.ok, r.total.sent, "{:?}", r.total.outcomes);
    assert_eq!(
        r.server
            .as_ref()
            .unwrap()
            .dtls
            .as_ref()
            .unwrap()
            .handshakes_ok,
        500
    );
    for d in &out.devices {
        assert!(d.sent >= 4, "{} sent {}", d.token, d.sent);
        assert_eq!(d.ok, d.sent, "{}", d.token);
    }
    assert_eq!(verdict::of(r), Verdict::Passed, "{:?}", r.checks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_rate_holds_devices_back_until_their_turn() {
    // 300 devices, all due at once, but connecting at 100/s: device i starts at i/100 s, so its first
    // slot comes later and it sends fewer requests than an unpaced run would (1,200).
    let yaml = r#"
target: embedded
devices:
  count: 300
  connect_rate: 100/s
phases:
  - name: all
    duration: 4s
    interval: 1s
"#;
    let p = plan(yaml);
    let planned: u64 = planned_by_phase(&p).unwrap().iter().sum();
    assert!(planned < 1000, "pacing must cut the schedule: {planned}");
    let out = run(p).await;
    let r = &out.report;
    assert_accounted(r);
    assert_eq!(r.devices.started, 300);
    assert_eq!(r.total.sent, planned, "the engine kept the paced schedule");
    assert_eq!(r.total.outcomes.ok, r.total.sent);
    // The last devices, whose turn came last, sent the least.
    let first: u64 = out.devices[..10].iter().map(|d| d.sent).sum();
    let last: u64 = out.devices[290..].iter().map(|d| d.sent).sum();
    assert!(first > last, "first ten sent {first}, last ten {last}");
}

/// Source addresses seen, by device token.
type Seen = Arc<Mutex<BTreeMap<String, Vec<IpAddr>>>>;

/// A minimal CoAP server on a thread: answers every CON with an ACK 2.04 and records each request's
/// source address, by the token path segment it carries. Stops by itself after `limit`.
fn recording_server(limit: Duration) -> (SocketAddr, Seen) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let seen = Seen::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        let end = Instant::now() + limit;
        let mut buf = [0u8; 1500];
        while Instant::now() < end {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Ok(req) = Message::decode(&buf[..n]) else {
                continue;
            };
            let token = req.path_segments().get(2).cloned().unwrap_or_default();
            record
                .lock()
                .unwrap()
                .entry(token)
                .or_default()
                .push(from.ip());
            let ack = Message::new(MessageType::Ack, Code::CHANGED, req.message_id, req.token);
            let mut out = Vec::new();
            ack.encode(&mut out);
            let _ = sock.send_to(&out, from);
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_spread_over_several_source_addresses() {
    let (addr, seen) = recording_server(Duration::from_secs(20));
    let out = run(plan(&format!(
        r#"
target: coap://{addr}
devices:
  count: 30
  bind: [127.0.0.2, 127.0.0.3, 127.0.0.4]
phases:
  - name: all
    duration: 2s
    interval: 500ms
"#
    )))
    .await;
    let r = &out.report;
    assert_accounted(r);
    assert_eq!(r.devices.started, 30);
    assert_eq!(r.total.outcomes.ok, r.total.sent, "{:?}", r.total.outcomes);
    let seen = seen.lock().unwrap();
    let wanted: [IpAddr; 3] = [
        [127, 0, 0, 2].into(),
        [127, 0, 0, 3].into(),
        [127, 0, 0, 4].into(),
    ];
    for d in &out.devices {
        let from = seen
            .get(&d.token)
            .unwrap_or_else(|| panic!("{} never seen", d.token));
        assert_eq!(from.len() as u64, d.sent, "{}", d.token);
        // Round-robin: device i always comes from address i mod 3.
        let want = wanted[d.index as usize % 3];
        assert!(from.iter().all(|ip| *ip == want), "{}: {from:?}", d.token);
    }
}
