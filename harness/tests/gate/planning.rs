//! Planning is bounded: a schedule the engine cannot keep is refused at validation (exit 2, naming the
//! field), and the planned request counts are arithmetic, whatever the rate or duration.

use std::path::Path;
use std::process::{Command, Output};

fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .args(args)
        .output()
        .expect("run coap-harness")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn rates_and_intervals_the_engine_cannot_keep_exit_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for (name, pacing, want) in [
        ("rate.yaml", "rate: 1e12/s", "phases[0].rate:"),
        ("interval.yaml", "interval: 1ns", "phases[0].interval:"),
        ("interval5.yaml", "interval: 5us", "phases[0].interval:"),
    ] {
        let text = format!(
            "target: embedded\ndevices:\n  count: 20\nphases:\n  - duration: 1h\n    {pacing}\n"
        );
        let file = write(dir.path(), name, &text);
        for cmd in ["validate", "run"] {
            let out = dir.path().join("out");
            let mut args = vec![cmd, file.as_str()];
            if cmd == "run" {
                args.extend(["--quiet", "--out", out.to_str().unwrap()]);
            }
            let o = harness(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{cmd} {name}: {err}");
            assert!(err.contains(want), "{cmd} {name}: {err}");
            assert!(err.contains(&format!("{name}:6:5:")), "{cmd} {name}: {err}");
        }
    }
    // At the limit it is accepted.
    let ok = write(
        dir.path(),
        "ok.yaml",
        "target: embedded\ndevices:\n  count: 20\nphases:\n  - duration: 1h\n    interval: 10us\n",
    );
    let o = harness(&["validate", &ok]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// An `abort_on_fail` error-rate threshold needs the planned request count: for a year-long run it is
/// computed, not walked (walking 3e15 slots never ended, so the run could neither start nor be stopped).
#[test]
fn planned_requests_of_a_year_long_run_are_computed() {
    let text = "target: embedded\ndevices:\n  count: 1000\nphases:\n  - duration: 8760h\n    interval: 10us\n\
                thresholds:\n  - { threshold: \"error_rate < 1%\", abort_on_fail: true }\n";
    let plan = coap_harness::scenario::parse(
        text,
        Path::new("year.yaml"),
        Path::new("."),
        "year",
        &coap_harness::scenario::Overrides::default(),
    )
    .expect("valid");
    assert_eq!(
        coap_harness::engine::abort::planned_requests(&plan),
        Some(1000 * 3_153_600_000_000)
    );
}
