//! SIGINT, SIGTERM and SIGHUP stop a run alike: the load stops, in-flight requests count as `unfinished`,
//! every output is written marked interrupted, exit 1; a second signal exits at once. `serve` prints its
//! stats on any of them. The real binary over loopback against its embedded server.

use crate::common;

use coap_harness::report::Report;
use common::Peer;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const LONG: &str =
    "target: embedded\ndevices:\n  count: 20\nphases:\n  - duration: 60s\n    interval: 200ms\n";

fn send(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid this test spawned and still holds (not yet waited for).
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

/// Starts `run` on a 60 s scenario and returns once its devices have been sending for a while (stderr said
/// the run began, then half a second), with the rest of stderr collected by a thread.
fn start_run(dir: &Path) -> (Peer, std::thread::JoinHandle<String>) {
    let file = dir.join("long.yaml");
    std::fs::write(&file, LONG).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .arg("run")
        .arg(&file)
        .arg("--quiet")
        .arg("--out")
        .arg(dir.join("out"))
        .arg("--junit")
        .arg(dir.join("junit.xml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("running `") {
            break;
        }
    }
    assert!(seen.contains("running `"), "{seen}");
    let rest = std::thread::spawn(move || {
        lines.fold(seen, |mut acc, l| {
            acc.push_str(&l.unwrap_or_default());
            acc.push('\n');
            acc
        })
    });
    std::thread::sleep(Duration::from_millis(1500));
    (Peer::new(child), rest)
}

fn stopped_by(sig: libc::c_int, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (peer, stderr) = start_run(dir.path());
    let mut child = peer.take();
    send(&child, sig);
    let status = child.wait().unwrap();
    let err = stderr.join().unwrap();
    assert_eq!(status.code(), Some(1), "{name}: {err}");
    assert!(err.contains(&format!("interrupted ({name})")), "{err}");
    let out = dir.path().join("out");
    for f in ["report.json", "summary.md", "report.html"] {
        assert!(out.join(f).is_file(), "{name}: {f} written");
    }
    let r: Report =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert!(r.interrupted, "{name}: report marked interrupted");
    assert!(r.total.sent > 0, "{name}: devices sent before the signal");
    common::assert_accounted(&r);
    assert!(
        r.duration_s < 30.0,
        "{name}: stopped early ({} s)",
        r.duration_s
    );
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.to_lowercase().contains("interrupted"), "{md}");
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(junit.contains("interrupted"), "{junit}");
}

#[test]
fn sigterm_stops_the_run_and_writes_every_output_marked_interrupted() {
    stopped_by(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sighup_stops_the_run_and_writes_every_output_marked_interrupted() {
    stopped_by(libc::SIGHUP, "SIGHUP");
}

#[test]
fn sigint_stops_the_run_and_writes_every_output_marked_interrupted() {
    stopped_by(libc::SIGINT, "SIGINT");
}

/// Two different signals back to back: the first stops the run, the second ends the process at once with
/// 128 + its number instead of waiting for the report.
#[test]
fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (peer, stderr) = start_run(dir.path());
    let mut child = peer.take();
    send(&child, libc::SIGTERM);
    send(&child, libc::SIGHUP);
    let status = child.wait().unwrap();
    let err = stderr.join().unwrap();
    assert!(
        matches!(status.code(), Some(129) | Some(143)),
        "{status:?}: {err}"
    );
    assert!(err.contains("interrupted again"), "{err}");
}

/// `serve` stops on SIGTERM and SIGHUP as on Ctrl-C: prints its counters and exits 0.
#[test]
fn serve_prints_its_stats_on_sigterm_and_sighup() {
    for sig in [libc::SIGTERM, libc::SIGHUP] {
        let port = common::free_udp_port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_coap-harness"))
            .args(["serve", "--any-token", "--coap", &addr])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let peer = Peer::new(child);
        common::wait_for_coap(addr.parse().unwrap(), Duration::from_secs(10));
        let child = peer.take();
        send(&child, sig);
        let o = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "signal {sig}: {stdout}");
        assert!(stdout.contains("stopped:"), "signal {sig}: {stdout}");
        assert!(stdout.contains("requests"), "{stdout}");
    }
}
