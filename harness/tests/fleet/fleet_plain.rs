//! The plain-CoAP fleet end to end over real loopback sockets: against the embedded server (every message of
//! every device accounted for on both sides), against libcoap's server, and against targets that are dead,
//! silent or speak garbage.

use crate::common;

use coap_harness::metrics::Outcome;
use coap_harness::verdict::{self, Verdict};
use common::*;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const FLEET: &str = r#"
target: embedded
devices:
  count: 300
  token: "fleet-{index:04}"
request:
  payload: '{"temperature":{{random:15..30}},"seq":{{counter}}}'
phases:
  - name: ramp
    duration: 1s
    ramp: linear
    interval: 250ms
  - name: steady
    duration: 1s
    interval: 250ms
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_every_message_of_every_device_accounted_for() {
    let out = run(plan(FLEET)).await;
    let r = &out.report;
    assert_accounted(r);
    assert_eq!(r.devices.started, 300);
    assert_eq!(r.total.outcomes.ok, r.total.sent, "{:?}", r.total.outcomes);
    assert_eq!(r.total.codes.get("2.01"), Some(&r.total.sent));
    // Every device sent in both phases: at least its steady-phase slots.
    assert!(
        out.devices.iter().all(|d| d.sent >= 4),
        "{:?}",
        out.devices.iter().map(|d| d.sent).min()
    );
    // Device side and server side agree, device by device.
    let server = out.server_devices.as_ref().unwrap();
    assert_eq!(server.len(), 300);
    for d in &out.devices {
        let s = server
            .iter()
            .find(|s| s.token == d.token)
            .expect("server saw the device");
        assert_eq!(s.messages, d.sent, "{}", d.token);
        assert_eq!(d.ok, d.sent);
        let last = s.last_payload.as_deref().unwrap();
        assert!(last.contains(&format!("\"seq\":{}", d.sent - 1)), "{last}");
    }
    let stats = r.server.as_ref().unwrap();
    assert_eq!(stats.requests, r.total.sent);
    assert!(r.checks.iter().all(|c| c.passed), "{:?}", r.checks);
    assert_eq!(verdict::of(r), Verdict::Passed);
    // Latency histograms are real and restorable.
    assert_eq!(r.total.latency.count, r.total.sent);
    assert_eq!(r.total.latency.histogram().unwrap().len(), r.total.sent);
    assert!(r.total.latency.p50_us > 0 && r.total.latency.p50_us <= r.total.latency.p99_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_requests_get_non_responses() {
    let out = run(plan(
        &FLEET
            .replace("count: 300", "count: 50")
            .replace("request:\n", "request:\n  type: non\n"),
    ))
    .await;
    let r = &out.report;
    assert_accounted(r);
    assert!(r.total.sent > 0);
    assert_eq!(r.total.outcomes.ok, r.total.sent);
    assert_eq!(r.total.retransmissions, 0);
}

/// ThingsBoard's slow path: an empty ACK, then the response as a separate CON which the devices ACK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_responses_measured_to_the_response() {
    let yaml = FLEET.replace("count: 300", "count: 20").replace(
        "target: embedded\n",
        "target: embedded\nembedded:\n  response_delay: 120ms\n",
    );
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    assert_accounted(r);
    assert_eq!(r.total.outcomes.ok, r.total.sent);
    // Latency runs to the separate response, not to the empty ACK that came at once.
    assert!(
        r.total.latency.min_us >= 120_000,
        "min {}",
        r.total.latency.min_us
    );
    let stats = r.server.as_ref().unwrap();
    assert_eq!(stats.separate_sent, r.total.sent);
    assert_eq!(
        stats.separate_acked, r.total.sent,
        "every separate CON response was acknowledged"
    );
}

/// Devices whose tokens the server does not know: every request is a 4.01, counted as a CoAP error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tokens_are_counted_as_coap_errors() {
    use coap_harness::server::{self, ServerConfig, TokenPolicy};
    let server = server::start(ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        tokens: TokenPolicy::Pattern {
            pattern: coap_harness::token::TokenPattern::parse("fleet-{index:04}").unwrap(),
            count: 10,
        },
        response_delay: None,
        plain: true,
        dtls: None,
    })
    .await
    .unwrap();
    let yaml = FLEET
        .replace(
            "target: embedded",
            &format!("target: coap://{}", server.local_addr()),
        )
        .replace("count: 300", "count: 10")
        .replace("fleet-{index:04}", "stranger-{index}");
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    assert_accounted(r);
    assert!(r.total.sent > 0);
    assert_eq!(r.total.outcomes.coap_error, r.total.sent);
    assert_eq!(r.total.codes.get("4.01"), Some(&r.total.sent));
    assert_eq!(server.stats().unknown_token, r.total.sent);
    assert_eq!(
        r.total.latency.count, r.total.sent,
        "error responses still have a latency"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_target_is_classified() {
    let port = free_udp_port();
    let yaml = FLEET
        .replace(
            "target: embedded",
            &format!("target: coap://127.0.0.1:{port}"),
        )
        .replace("count: 300", "count: 5");
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    assert_accounted(r);
    assert!(r.total.sent > 0);
    assert_eq!(
        r.total.outcomes.unreachable, r.total.sent,
        "{:?}",
        r.total.outcomes
    );
    match verdict::of(r) {
        Verdict::Fault(why) => assert!(
            why.contains("unreachable") && why.contains(&port.to_string()),
            "{why}"
        ),
        v => panic!("{v:?}"),
    }
}

/// A server that reads but never answers: each CON is retransmitted MAX_RETRANSMIT times, then times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out_after_the_retransmission_schedule() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let count = received.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let t = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop2.load(Ordering::Relaxed) {
            if sock.recv_from(&mut buf).is_ok() {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let yaml = format!(
        r#"
target: coap://{addr}
devices:
  count: 4
coap:
  ack_timeout: 50ms
  ack_random_factor: 1.0
  max_retransmit: 2
phases:
  - duration: 1s
    interval: 400ms
drain: 2s
"#
    );
    let out = run(plan(&yaml)).await;
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    let r = &out.report;
    assert_accounted(r);
    assert!(r.total.sent >= 4);
    assert_eq!(
        r.total.outcomes.timeout, r.total.sent,
        "{:?}",
        r.total.outcomes
    );
    assert_eq!(r.total.retransmissions, 2 * r.total.sent);
    assert_eq!(
        received.load(Ordering::Relaxed),
        3 * r.total.sent,
        "each request sent 1 + 2 times"
    );
    assert!(matches!(verdict::of(r), Verdict::Fault(why) if why.contains("no response")));
}

/// A server that answers every datagram with garbage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_the_server_is_classified_malformed() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let t = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop2.load(Ordering::Relaxed) {
            if let Ok((_, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(b"\xffgarbage", from);
            }
        }
    });
    let yaml = format!(
        "target: coap://{addr}\ndevices:\n  count: 3\ncoap:\n  ack_timeout: 50ms\n  max_retransmit: 1\nphases:\n  - duration: 500ms\n    interval: 200ms\n"
    );
    let out = run(plan(&yaml)).await;
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    let r = &out.report;
    assert_accounted(r);
    assert_eq!(
        r.total.outcomes.get(Outcome::Malformed),
        r.total.sent,
        "{:?}",
        r.total.outcomes
    );
    assert!(r.protocol.malformed_datagrams >= r.total.sent);
    let first = r.protocol.first_malformed.as_deref().unwrap();
    assert!(first.contains("unsupported CoAP version 3"), "{first}");
    assert!(matches!(verdict::of(r), Verdict::Fault(why) if why.contains("not valid CoAP")));
}

/// The harness against libcoap's server (dynamic resources): first POST on a path 2.01, later ones 2.04.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_libcoap_server_every_outcome_recorded() {
    if !require("coap-server-notls") {
        return;
    }
    let (_server, addr) = libcoap_server();
    let yaml = format!(
        "target: coap://{addr}\ndevices:\n  count: 50\nphases:\n  - duration: 2s\n    interval: 250ms\n"
    );
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    assert_accounted(r);
    assert_eq!(
        r.total.outcomes.ok, r.total.sent,
        "{:?} {:?}",
        r.total.outcomes, r.total.codes
    );
    assert_eq!(
        r.total.codes.get("2.01"),
        Some(&50),
        "one resource created per device: {:?}",
        r.total.codes
    );
    assert_eq!(
        r.total.codes.get("2.04"),
        Some(&(r.total.sent - 50)),
        "{:?}",
        r.total.codes
    );
    assert!(out.devices.iter().all(|d| d.ok == d.sent && d.sent >= 7));
    assert_eq!(verdict::of(r), Verdict::Passed);
}
