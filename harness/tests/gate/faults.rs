//! The harness under injected network faults (`faults:`, a UDP proxy between its devices and the embedded
//! target, over loopback): what it reports must stay true. Lost datagrams are retransmitted and counted;
//! requests that exhaust MAX_RETRANSMIT are timeouts, none lost from the tally; duplicates are counted once
//! by client and server; DTLS handshakes complete under flight loss; source-port rebinding is survived.

use crate::common;

use common::{assert_accounted, plan, run};

const PLAIN: &str = "target: embedded\nseed: 42\ndevices:\n  count: 10\nphases:\n  - duration: 3s\n    interval: 100ms\n";

fn server(r: &coap_harness::report::Report) -> &coap_harness::report::model::ServerCounters {
    r.server.as_ref().expect("embedded server stats")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn con_retransmission_recovers_from_loss_and_exhausted_requests_are_timeouts() {
    let yaml = format!(
        "{PLAIN}coap:\n  ack_timeout: 100ms\n  ack_random_factor: 1.0\n  max_retransmit: 2\nfaults: {{ loss: 40% }}\n"
    );
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    let f = out.faults.expect("proxy stats");
    assert!(f.to_target.dropped > 0 && f.to_devices.dropped > 0, "{f}");
    let o = &r.total.outcomes;
    assert!(r.total.retransmissions > 0, "retransmissions counted");
    assert!(o.ok > 0, "retransmission recovered some: {o:?}");
    // 40% each way, three transmissions: about 1 in 8 exchanges never completes.
    assert!(o.timeout > 0, "exhausted requests are timeouts: {o:?}");
    // Under pure loss a request ends ok, as a timeout, or (queued behind a retransmitting one when the
    // drain ended) unfinished; nothing else, and nothing uncounted.
    assert_eq!(
        o.ok + o.timeout + o.unfinished,
        r.total.sent,
        "only ok, timeout or unfinished under pure loss: {o:?}"
    );
    assert_accounted(r);
    assert!(
        r.warnings.iter().any(|w| w.starts_with("faults injected")),
        "{:?}",
        r.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_cons_and_responses_are_counted_once() {
    let yaml = format!("{PLAIN}faults: {{ duplicate: 100% }}\n");
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    let f = out.faults.expect("proxy stats");
    assert_eq!(f.to_target.duplicated, f.to_target.datagrams, "{f}");
    assert_eq!(f.to_devices.duplicated, f.to_devices.datagrams, "{f}");
    let o = &r.total.outcomes;
    assert!(r.total.sent > 0);
    assert_eq!(o.ok, r.total.sent, "every request once, ok: {o:?}");
    assert_accounted(r);
    // The server processed each CON once and answered the copy from its deduplication cache.
    assert_eq!(server(r).requests, o.ok, "{:?}", r.server);
    assert!(server(r).duplicates >= o.ok, "{:?}", r.server);
}

async fn dtls_under_loss(faults: &str) -> coap_harness::app::RunOutput {
    let yaml = format!(
        "target: embedded\nseed: 7\npki: generate\ndtls:\n  ca: pki:ca\n  handshake_timeout: 15s\n\
         devices:\n  count: 10\nphases:\n  - duration: 4s\n    interval: 500ms\nfaults: {faults}\n"
    );
    run(plan(&yaml)).await
}

fn assert_every_handshake_completed(out: &coap_harness::app::RunOutput) {
    let r = &out.report;
    let f = out.faults.expect("proxy stats");
    assert!(f.to_target.dropped + f.to_devices.dropped > 0, "{f}");
    let h = r.handshakes.as_ref().expect("handshake stats");
    assert_eq!(h.failed, 0, "{h:?} ({f})");
    assert!(h.ok >= 10, "every device completed its handshake: {h:?}");
    assert!(r.total.outcomes.ok > 0);
    assert_accounted(r);
}

/// Lost client flights (ClientHello, the key exchange and Finished) are retransmitted by the client and
/// every handshake completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtls_handshakes_complete_under_ten_percent_loss_of_client_flights() {
    assert_every_handshake_completed(&dtls_under_loss("{ to_target: { loss: 10% } }").await);
}

/// Both ways, so the server's last flight (ChangeCipherSpec + Finished) is lost too. The crate no longer
/// answers the client's retransmitted flight 5 once it counts the handshake done, so the embedded server
/// replays its last flight itself (RFC 6347 §4.2.4); without that, 1 to 2 of 10 handshakes timed out here
/// (loss toward the devices only: 1-2 of 10 for seeds 7, 8, 9; toward the server only: none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtls_handshakes_complete_under_ten_percent_flight_loss_both_ways() {
    assert_every_handshake_completed(&dtls_under_loss("{ loss: 10% }").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_rebinding_mid_run_is_survived_by_plain_devices() {
    let yaml = PLAIN.replace("count: 10", "count: 5")
        + "coap:\n  ack_timeout: 200ms\n  ack_random_factor: 1.0\nfaults: { rebind_every: 400ms }\n";
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    let f = out.faults.expect("proxy stats");
    assert!(f.rebinds >= 5, "each device rebound at least once: {f}");
    assert_eq!(f.devices, 5, "{f}");
    assert_eq!(r.total.outcomes.ok, r.total.sent, "{:?}", r.total.outcomes);
    assert_accounted(r);
}

/// From a scenario file: `faults:` runs through the binary, the report says what was injected, and a
/// misspelled fault key is a located validation error.
#[test]
fn faults_from_a_scenario_file_are_reported() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.yaml");
    std::fs::write(
        &file,
        "target: embedded\ndevices:\n  count: 5\ncoap:\n  ack_timeout: 200ms\nphases:\n  - duration: 1s\n    interval: 100ms\n\
         faults: { loss: 10%, duplicate: 5%, reorder: 5%, delay: 5ms±2ms }\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .arg("run")
        .arg(&file)
        .args(["--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: coap_harness::report::Report =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_accounted(&r);
    let w = r
        .warnings
        .iter()
        .find(|w| w.starts_with("faults injected (both ways loss 10%"))
        .unwrap_or_else(|| panic!("{:?}", r.warnings));
    assert!(w.contains("dropped") && w.contains("duplicated"), "{w}");
    std::fs::write(&file, "target: embedded\ndevices:\n  count: 1\nphases:\n  - duration: 1s\n    interval: 1s\nfaults:\n  los: 5%\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("f.yaml:8:3: faults: unknown field `los`"),
        "{err}"
    );
}

/// A server restart mid-run (the target stopped, then started again on the same port with its state gone)
/// is a window of errors in the time series, after which plain devices recover at once; every request is
/// still in the tally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_run_is_a_window_of_errors_then_recovery() {
    use coap_harness::server::{self, ServerConfig, TokenPolicy};
    let config = |bind| ServerConfig {
        bind,
        tokens: TokenPolicy::Any,
        response_delay: None,
        plain: true,
        dtls: None,
    };
    let first = server::start(config("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = first.local_addr();
    let yaml = format!(
        "target: coap://{addr}\ndevices:\n  count: 5\ncoap:\n  ack_timeout: 200ms\n  ack_random_factor: 1.0\n  \
         max_retransmit: 1\nphases:\n  - duration: 5s\n    interval: 100ms\n"
    );
    let load = tokio::spawn(run(plan(&yaml)));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    first.shutdown().await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let second = server::start(config(addr)).await.expect("same port again");
    let out = load.await.unwrap();
    let served_after = second.stats().requests;
    second.shutdown().await;
    let r = &out.report;
    assert_accounted(r);
    let o = &r.total.outcomes;
    assert!(o.ok > 0 && o.ok < r.total.sent, "{o:?}");
    // Seconds 0 (up), 2 (down), 4 (up again) of the time series.
    let at = |t: u64| r.timeseries.iter().find(|p| p.t == t).cloned();
    let (before, during, after) = (at(0).unwrap(), at(2).unwrap(), at(4).unwrap());
    assert_eq!(before.errors, 0, "{:?}", r.timeseries);
    assert!(during.errors > 0, "{:?}", r.timeseries);
    assert_eq!(after.errors, 0, "recovered: {:?}", r.timeseries);
    assert!(served_after > 0);
    assert_recovery_after_restart(r);
}

/// The report's recovery figure: an error window that began while the server was down (stopped at 1.5 s)
/// and ended after it was back (started again at 3 s), before the end of the run.
fn assert_recovery_after_restart(r: &coap_harness::report::Report) {
    let rec = r.recovery.as_ref().expect("an error window");
    assert!(
        (1..=2).contains(&rec.first_error_s),
        "{rec:?} {:?}",
        r.timeseries
    );
    let back = rec.recovered_at_s.expect("recovered before the end");
    assert!(back >= 2 && back > rec.first_error_s, "{rec:?}");
    assert_eq!(rec.recovery_ms, Some((back - rec.first_error_s) * 1000));
    assert!(rec.errors > 0 && rec.error_seconds > 0, "{rec:?}");
    let last = r.timeseries.iter().map(|p| p.t).max().unwrap();
    assert!(back <= last, "{rec:?} {:?}", r.timeseries);
    let text = coap_harness::report::terminal::render(r);
    assert!(text.contains("error window: first errors at"), "{text}");
    assert!(coap_harness::report::markdown::render(r).contains("**Error window**"));
}

/// The same restart under DTLS: the restarted server no longer knows the devices' sessions, so their
/// requests go unanswered; each device takes its session for lost and makes a new handshake (counted in the
/// report's handshake stats), after which its requests succeed again. Requests due while a device had no
/// session are `session_closed`; every request is still in the tally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dtls_server_restart_mid_run_is_recovered_by_new_handshakes() {
    use coap_harness::server::{self, DtlsServerConfig, ServerConfig, TokenPolicy};
    let cert =
        dtls::crypto::Certificate::generate_self_signed(vec!["localhost".to_string()]).unwrap();
    let config = |bind| ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        tokens: TokenPolicy::Any,
        response_delay: None,
        plain: false,
        dtls: Some(DtlsServerConfig::new(bind, cert.clone())),
    };
    let first = server::start(config("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = first.dtls_addr().unwrap();
    let devices: u32 = 5;
    let yaml = format!(
        "target: coaps://{addr}\ndtls:\n  ca: none\n  handshake_timeout: 1s\ndevices:\n  count: {devices}\n\
         coap:\n  ack_timeout: 200ms\n  ack_random_factor: 1.0\n  max_retransmit: 1\nphases:\n  - duration: 6s\n    \
         interval: 100ms\n"
    );
    let load = tokio::spawn(run(plan(&yaml)));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    first.shutdown().await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let second = server::start(config(addr)).await.expect("same port again");
    let out = load.await.unwrap();
    let served_after = second.stats().requests;
    second.shutdown().await;
    let r = &out.report;
    assert_accounted(r);
    let o = &r.total.outcomes;
    assert!(o.ok > 0 && o.ok < r.total.sent, "{o:?}");
    let h = r.handshakes.as_ref().expect("handshake stats");
    assert!(
        h.ok > u64::from(devices),
        "new handshakes after the restart: {h:?}"
    );
    assert!(served_after > 0, "requests served by the restarted server");
    let at = |t: u64| r.timeseries.iter().find(|p| p.t == t).cloned();
    assert_eq!(at(0).unwrap().errors, 0, "{:?}", r.timeseries);
    assert!(at(2).unwrap().errors > 0, "{:?}", r.timeseries);
    assert_eq!(at(5).unwrap().errors, 0, "recovered: {:?}", r.timeseries);
    assert_recovery_after_restart(r);
}

/// NAT rebinding under DTLS without Connection ID (RFC 9146): the server keys sessions by address, so after
/// the proxy moves a device to a new source port its records are strangers (dropped as garbage), its
/// requests go unanswered, and the device reconnects with a new handshake. The report counts those
/// reconnects per the handshake stats; with CID the session continues instead (the next test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_rebinding_without_connection_id_costs_dtls_devices_a_new_handshake() {
    let devices = 3;
    let yaml = format!(
        "target: embedded\nseed: 7\npki: generate\ndtls:\n  ca: pki:ca\n  handshake_timeout: 1s\n\
         devices:\n  count: {devices}\ncoap:\n  ack_timeout: 200ms\n  ack_random_factor: 1.0\n  max_retransmit: 1\n\
         health: off\nphases:\n  - duration: 5s\n    interval: 100ms\nfaults: {{ rebind_every: 2s }}\n"
    );
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    assert_accounted(r);
    let f = out.faults.expect("proxy stats");
    assert!(f.rebinds >= devices, "{f}");
    let h = r.handshakes.as_ref().expect("handshake stats");
    assert!(
        h.reconnects >= devices,
        "a new handshake after each move: {h:?}"
    );
    for d in &out.devices {
        assert!(
            !d.rehandshakes.is_empty(),
            "device {} reconnected: {d:?}",
            d.index
        );
    }
    let dtls = r.server.as_ref().unwrap().dtls.as_ref().unwrap();
    assert!(
        dtls.garbage > 0,
        "records from the new port were strangers: {dtls:?}"
    );
    assert!(
        r.total.outcomes.ok > 0 && r.total.outcomes.ok < r.total.sent,
        "{:?}",
        r.total.outcomes
    );
}

/// The same NAT rebinding with Connection ID (RFC 9146) on both ends (`dtls.connection_id` on the devices,
/// `embedded.server.connection_id` on the server): the server finds each moved device's session by its
/// CID, follows it to the new port once the session has authenticated a record from there, and the
/// session continues: no new handshake on any device, nothing from the new ports dropped as garbage, and
/// every request answered (a reply lost with the old port is recovered by the CON retransmission, which
/// reaches the server from the new one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_rebinding_with_connection_id_keeps_dtls_sessions_without_a_new_handshake() {
    let devices = 3;
    let yaml = format!(
        "target: embedded\nseed: 7\npki: generate\nembedded:\n  server:\n    connection_id: {{ length: 8 }}\n\
         dtls:\n  ca: pki:ca\n  handshake_timeout: 1s\n  connection_id: {{ length: 8 }}\n\
         devices:\n  count: {devices}\ncoap:\n  ack_timeout: 200ms\n  ack_random_factor: 1.0\n  max_retransmit: 1\n\
         health: off\nphases:\n  - duration: 5s\n    interval: 100ms\nfaults: {{ rebind_every: 2s }}\n"
    );
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    assert_accounted(r);
    let f = out.faults.expect("proxy stats");
    assert!(f.rebinds >= devices, "{f}");
    let h = r.handshakes.as_ref().expect("handshake stats");
    assert_eq!(
        (h.attempted, h.ok, h.reconnects, h.connection_id),
        (devices, devices, 0, devices),
        "one handshake per device, each with a CID, none after a move: {h:?}"
    );
    // The terminal and summary.md say so.
    let counts = h.counts(str::to_string);
    assert!(counts.ends_with("; 3 with a connection ID"), "{counts}");
    for d in &out.devices {
        assert!(
            d.rehandshakes.is_empty(),
            "device {} kept its session: {d:?}",
            d.index
        );
        assert!(d.sent > 0 && d.ok == d.sent, "device {}: {d:?}", d.index);
    }
    let dtls = r.server.as_ref().unwrap().dtls.as_ref().unwrap();
    for d in &out.devices {
        eprintln!(
            "device {}: sent {} ok {} handshakes {}",
            d.index,
            d.sent,
            d.ok,
            1 + d.rehandshakes.len()
        );
    }
    eprintln!(
        "total: sent {} ok {}; rebinds {}; handshakes attempted {} (with CID {}), reconnects {}; server: \
         cid_sessions {}, cid_address_changes {}, garbage {}",
        r.total.sent,
        r.total.outcomes.ok,
        f.rebinds,
        h.attempted,
        h.connection_id,
        h.reconnects,
        dtls.cid_sessions,
        dtls.cid_address_changes,
        dtls.garbage
    );
    assert_eq!(
        dtls.garbage, 0,
        "records from new ports found their session: {dtls:?}"
    );
    assert_eq!(dtls.cid_sessions, devices, "{dtls:?}");
    assert!(
        dtls.cid_address_changes >= devices && dtls.cid_address_changes <= f.rebinds,
        "the server followed the moves ({} rebinds): {dtls:?}",
        f.rebinds
    );
    assert_eq!(dtls.handshakes_started, devices, "{dtls:?}");
    assert_eq!(
        r.total.outcomes.ok, r.total.sent,
        "every request ok: {:?}",
        r.total.outcomes
    );
}
