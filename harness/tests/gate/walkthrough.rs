//! The README's "Testing your ThingsBoard" walk-through, run line by line as written (bash, in a scratch
//! folder, the binary on PATH), with `coap-harness serve` standing in for ThingsBoard on CoAP and
//! `serve --coaps` (with the certificates the walk-through makes) on CoAP over DTLS. Only the host and ports
//! (`tb.example.com:5683/5684`) and the 30 s durations are replaced.

use crate::common;

use common::Peer;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The shell lines of the walk-through's ```sh blocks, in order.
fn walkthrough() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("start marker");
    let end = readme.find("<!-- walkthrough:end -->").expect("end marker");
    let mut lines = Vec::new();
    let mut in_sh = false;
    for line in readme[start..end].lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            l if in_sh && !l.is_empty() => lines.push(l.to_string()),
            _ => {}
        }
    }
    lines
}

fn serve(ws: &Path, extra: &[&str]) -> (Peer, u16) {
    let plain = common::free_udp_port();
    let child = Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .current_dir(ws)
        .args([
            "serve",
            "--coap",
            &format!("127.0.0.1:{plain}"),
            "--tokens",
            "tokens.csv",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let peer = Peer::new(child);
    common::wait_for_coap(
        format!("127.0.0.1:{plain}").parse().unwrap(),
        Duration::from_secs(10),
    );
    (peer, plain)
}

#[test]
fn the_readme_walkthrough_runs_against_serve_and_serve_coaps() {
    let lines = walkthrough();
    assert!(lines.len() >= 10, "{lines:?}");
    let ws = tempfile::tempdir().unwrap();
    let bin = ws.path().join(".bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_coap-harness"), bin.join("coap-harness"))
        .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut plain: Option<(Peer, u16)> = None;
    let mut secure: Option<(Peer, u16)> = None;
    let mut ran = Vec::new();
    for line in &lines {
        let mut cmd = line.replace("--duration 30s", "--duration 1s");
        if cmd.contains("coap://tb.example.com:5683") {
            let (_, port) = plain.get_or_insert_with(|| serve(ws.path(), &[]));
            cmd = cmd.replace("tb.example.com:5683", &format!("127.0.0.1:{port}"));
        }
        if cmd.contains("coaps://tb.example.com:5684") {
            let (_, port) = secure.get_or_insert_with(|| {
                let port = common::free_udp_port();
                let (peer, _) = serve(
                    ws.path(),
                    &[
                        "--coaps",
                        &format!("127.0.0.1:{port}"),
                        "--cert",
                        "certs/server-chain.pem",
                        "--key",
                        "certs/server.key",
                    ],
                );
                (peer, port)
            });
            cmd = cmd.replace("tb.example.com:5684", &format!("127.0.0.1:{port}"));
        }
        assert!(!cmd.contains("tb.example.com:"), "an address left: {cmd}");
        // One real device's token: the first the walk-through made.
        let first_token = std::fs::read_to_string(ws.path().join("tokens.csv"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .nth(1)
                    .map(|l| l.split(',').next().unwrap().to_string())
            })
            .unwrap_or_default();
        let o = Command::new("bash")
            .args(["-eo", "pipefail", "-c", &cmd])
            .current_dir(ws.path())
            .env("PATH", &path)
            .env("TB_TOKEN", &first_token)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        // `compare` of two real runs may find a regression (exit 1); exit 2 would mean it could not compare.
        let allowed: &[i32] = if cmd.starts_with("coap-harness compare") {
            &[0, 1]
        } else {
            &[0]
        };
        assert!(
            o.status.code().is_some_and(|c| allowed.contains(&c)),
            "`{cmd}` exited {:?}:\n{text}",
            o.status.code()
        );
        if cmd.starts_with("coap-harness compare") {
            assert!(text.contains("## coap-harness compare"), "{text}");
        }
        ran.push(cmd);
    }
    assert!(
        plain.is_some() && secure.is_some(),
        "both servers were used"
    );
    let report = |dir: &str| -> coap_harness::report::Report {
        serde_json::from_str(
            &std::fs::read_to_string(ws.path().join(dir).join("report.json")).unwrap(),
        )
        .unwrap()
    };
    let one = report("reports/tb-one");
    assert_eq!(one.devices.count, 1);
    assert!(one.total.sent > 0 && one.total.sent == one.total.outcomes.ok);
    let fleet = report("reports/tb-coap");
    assert_eq!(fleet.devices.count, 10);
    assert!(fleet.total.sent == fleet.total.outcomes.ok);
    let dtls = report("reports/tb-dtls");
    assert_eq!(dtls.security.verification, "certificate");
    assert!(dtls.total.sent > 0 && dtls.total.sent == dtls.total.outcomes.ok);
    let ci = report("reports/ci");
    assert_eq!(ci.security.verification, "certificate");
    assert!(ws.path().join("reports/ci/junit.xml").is_file());
    assert_eq!(ci.devices.count, 10);
}
