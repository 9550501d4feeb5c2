//! Per-device credentials from a CSV token file (`token,psk_identity,psk_key,cert,key`): every device its own
//! token and PSK, against the embedded target, against `coap-harness serve --coaps --tokens FILE` (one PSK
//! listener knowing many identities), and against libcoap's `coap-server-openssl -k KEY -i IDENTITY_FILE`.

use crate::common;

use coap_harness::report::Report;
use common::Peer;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_coap-harness"));
    for (k, _) in std::env::vars() {
        if k.starts_with("COAP_HARNESS_") {
            c.env_remove(k);
        }
    }
    c
}

fn run(args: &[&str]) -> Output {
    cmd().args(args).output().expect("run coap-harness")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn read_report(dir: &Path) -> Report {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report.json written");
    serde_json::from_str(&text).expect("report.json parses as a Report")
}

/// `run --quiet` of 3 devices from the token file `csv` against `target`, 9 requests/s for 1 s, reports in
/// `out`; the run's output and its report.
fn run_three(target: &str, csv: &Path, out: &Path) -> (Output, Report) {
    let o = run(&[
        "run",
        "--quiet",
        "--target",
        target,
        "--token-file",
        csv.to_str().unwrap(),
        "--devices",
        "3",
        "--rate",
        "9",
        "--duration",
        "1s",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(out.join("report.json").exists(), "no report: {}", text(&o));
    let r = read_report(out);
    (o, r)
}

/// Handshakes that ended with the server verified.
fn verified(hs: &coap_harness::report::model::HandshakeStats) -> Option<u64> {
    hs.verdicts
        .get(&coap_harness::trust::TrustVerdict::Ok)
        .copied()
}

/// N devices, each with its own token and PSK identity and key.
fn fleet_csv(n: usize) -> String {
    let mut csv = String::from("token,psk_identity,psk_key,cert,key\n");
    for i in 0..n {
        csv.push_str(&format!("tok-{i},meter-{i},secret-key-{i},,\n"));
    }
    csv
}

#[test]
fn each_device_its_own_psk_against_the_embedded_target() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.csv"), fleet_csv(4)).unwrap();
    let scenario = dir.path().join("psk.yaml");
    std::fs::write(
        &scenario,
        "target: embedded\npki: generate\ndevices:\n  count: 4\n  token_file: fleet.csv\ndtls: {}\nexpect: { code: \"2.01\" }\nphases:\n  - duration: 1s\n    interval: 250ms\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = run(&[
        "run",
        scenario.to_str().unwrap(),
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = read_report(&out);
    assert_eq!(r.security.verification, "psk");
    assert!(!r.security.insecure);
    assert!(
        r.total.sent >= 8 && r.total.sent == r.total.outcomes.ok,
        "{:?}",
        r.total
    );
    common::assert_accounted(&r);
}

/// `serve --coaps --tokens fleet.csv`: one PSK listener, many identities; a device whose key the server does
/// not know fails its handshake while the others connect.
#[test]
fn many_psk_identities_against_serve_coaps() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served.csv");
    std::fs::write(&served, fleet_csv(3)).unwrap();
    let plain = common::free_udp_port();
    let secure = common::free_udp_port();
    let _server = Peer::new(
        cmd()
            .args(["serve", "--coap", &format!("127.0.0.1:{plain}")])
            .args(["--coaps", &format!("127.0.0.1:{secure}")])
            .arg("--tokens")
            .arg(&served)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::wait_for_coap(
        format!("127.0.0.1:{plain}").parse().unwrap(),
        Duration::from_secs(10),
    );
    let target = format!("coaps://127.0.0.1:{secure}");
    // Ad-hoc mode: the token file alone says how the devices authenticate.
    let good = dir.path().join("good.csv");
    std::fs::write(&good, fleet_csv(3)).unwrap();
    let out = dir.path().join("good");
    let (o, r) = run_three(&target, &good, &out);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(r.security.verification, "psk");
    assert!(
        r.total.sent >= 6 && r.total.sent == r.total.outcomes.ok,
        "{:?}",
        r.total
    );
    let hs = r.handshakes.as_ref().expect("handshakes reported");
    assert_eq!(verified(hs), Some(3), "{hs:?}");

    // Device 1 with a key the server does not have: refused in the handshake; devices 0 and 2 connect.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, fleet_csv(3).replace("secret-key-1", "wrong-key")).unwrap();
    let out = dir.path().join("bad");
    let (o, r) = run_three(&target, &bad, &out);
    let hs = r.handshakes.as_ref().expect("handshakes reported");
    assert_eq!(verified(hs), Some(2), "{hs:?}");
    assert!(hs.failed >= 1, "{hs:?}");
    assert!(text(&o).contains("DTLS handshakes failed"), "{}", text(&o));
    assert!(r.total.outcomes.ok > 0, "the two good devices posted");
}

/// libcoap's OpenSSL server matches each client identity to its own key with `-i FILE` (lines
/// `hint,identity,key`; `-k` is the key for any other identity).
#[test]
fn many_psk_identities_against_libcoap() {
    if !common::require("coap-server-openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut ids = String::new();
    for i in 0..3 {
        ids.push_str(&format!("CoAP,meter-{i},secret-key-{i}\n"));
    }
    let id_file = dir.path().join("identities.txt");
    std::fs::write(&id_file, ids).unwrap();
    let port = common::free_udp_port_pair();
    let _server = Peer::new(
        Command::new("coap-server-openssl")
            .args(["-A", "127.0.0.1", "-p", &port.to_string(), "-d", "100000"])
            .args(["-k", "a-default-key-no-device-has", "-h", "CoAP", "-i"])
            .arg(&id_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::wait_for_coap(
        format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(10),
    );
    let target = format!("coaps://127.0.0.1:{}", port + 1);
    let csv = dir.path().join("fleet.csv");
    std::fs::write(&csv, fleet_csv(3).replace("secret-key-2", "wrong-key")).unwrap();
    let out = dir.path().join("out");
    let (o, r) = run_three(&target, &csv, &out);
    let hs = r.handshakes.as_ref().expect("handshakes reported");
    // meter-0 and meter-1 hold the keys libcoap has for them; meter-2's key is wrong.
    assert_eq!(verified(hs), Some(2), "{hs:?}\n{}", text(&o));
    assert!(r.total.outcomes.ok > 0, "{:?}", r.total);
}
