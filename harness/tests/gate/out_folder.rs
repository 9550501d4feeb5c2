//! The report folder is settled before any load runs: one that cannot be written is an error (exit 2) at
//! once, default folders are unique even for runs started in the same second, and an existing report is not
//! overwritten without --force.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_coap-harness");

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// Runs `cmd` to its end within `bound` (killed and failed past it): its exit code, stdout and stderr.
fn run_within(cmd: &mut Command, bound: Duration) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + bound;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} ran past {bound:?}: the load ran before the folder was checked");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), text)
}

const SHORT: &str = "name: short\ntarget: embedded\ndevices:\n  count: 2\nphases:\n  - duration: 300ms\n    interval: 100ms\n";

/// Before: the folder was only written after the load, so this ran the whole minute and then exited 2
/// (the bound below fails the test).
#[test]
fn an_unwritable_out_folder_fails_before_any_load() {
    let dir = tempfile::tempdir().unwrap();
    let long = write(
        dir.path(),
        "long.yaml",
        "target: embedded\ndevices:\n  count: 2\nphases:\n  - duration: 60s\n    interval: 100ms\n",
    );
    // /proc/self exists and is a folder, but no one (root included) can create a file in it.
    let mut cmd = Command::new(BIN);
    cmd.args(["run", &long, "--quiet", "--out", "/proc/self"]);
    let (code, text) = run_within(&mut cmd, Duration::from_secs(30));
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("report folder /proc/self cannot be written") && !text.contains("running `"),
        "{text}"
    );
}

#[test]
fn two_runs_started_together_get_their_own_default_folders() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(dir.path(), "short.yaml", SHORT);
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(BIN)
                .args(["run", &scenario, "--quiet"])
                .current_dir(dir.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert_eq!(c.wait().unwrap().code(), Some(0));
    }
    let folders: Vec<_> = std::fs::read_dir(dir.path().join("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(folders.len(), 2, "{folders:?}");
    for f in &folders {
        assert!(f.join("report.json").is_file(), "{}", f.display());
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("short-"), "{name}");
    }
}

/// Before: the second run silently replaced the first one's report.
#[test]
fn an_existing_report_is_kept_unless_force() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(dir.path(), "short.yaml", SHORT);
    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args(["run", &scenario, "--quiet", "--out", out.to_str().unwrap()])
            .args(extra);
        run_within(&mut cmd, Duration::from_secs(60))
    };
    let (code, text) = run(&[]);
    assert_eq!(code, Some(0), "{text}");
    let first = std::fs::read_to_string(out.join("report.json")).unwrap();

    let (code, text) = run(&[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("already holds a report") && text.contains("--force"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("report.json")).unwrap(),
        first
    );

    let (code, text) = run(&["--force"]);
    assert_eq!(code, Some(0), "{text}");
    assert_ne!(
        std::fs::read_to_string(out.join("report.json")).unwrap(),
        first
    );
}
