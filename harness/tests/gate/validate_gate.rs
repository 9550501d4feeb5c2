//! `validate` refuses what `run` would refuse: misspelled threshold keys, unusable certificate files, a
//! missing PKI folder, duplicate tokens, requests larger than one datagram, impossible targets and timeouts;
//! each error is one line naming the file, line, column and field, or the command-line flag at fault.

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

const BASE: &str =
    "target: embedded\ndevices:\n  count: 2\nphases:\n  - duration: 1s\n    interval: 500ms\n";

/// Runs `validate` (and `run`, which must agree) on `text` and returns the one-line error.
fn refused(dir: &Path, name: &str, text: &str, extra: &[&str]) -> String {
    let file = write(dir, name, text);
    let mut last = String::new();
    for cmd in ["validate", "run"] {
        let mut args = vec![cmd, file.as_str()];
        args.extend_from_slice(extra);
        let out = dir.join("out");
        if cmd == "run" {
            args.extend(["--quiet", "--out", out.to_str().unwrap()]);
        }
        let o = harness(&args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{cmd} {name}: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{cmd} {name}: one line: {err}"
        );
        last = err;
    }
    last
}

#[test]
fn a_misspelled_key_in_a_threshold_object_is_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        format!("{BASE}thresholds:\n  - {{ threshold: \"p99 < 1s\", abort_on_fial: true }}\n");
    let err = refused(dir.path(), "t.yaml", &text, &[]);
    assert!(
        err.contains("t.yaml:8:") && err.contains("thresholds[0].abort_on_fial: unknown field"),
        "{err}"
    );
    let block =
        format!("{BASE}thresholds:\n  - threshold: \"p99 < 1s\"\n    abort_on_fial: true\n");
    let err = refused(dir.path(), "b.yaml", &block, &[]);
    assert!(
        err.contains("b.yaml:9:5: thresholds[0].abort_on_fial: unknown field"),
        "{err}"
    );
}

#[test]
fn unusable_certificate_files_and_a_missing_pki_folder_are_refused_by_validate() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    std::fs::write(dir.path().join("junk.pem"), "not a certificate\n").unwrap();
    let secure = |dtls: &str| format!("{BASE}pki: generate\ndtls:\n{dtls}");
    for (name, text, want) in [
        ("ca-missing.yaml", secure("  ca: nothere.pem\n"), "dtls.ca:"),
        ("ca-empty.yaml", secure("  ca: empty.pem\n"), "dtls.ca:"),
        ("ca-junk.yaml", secure("  ca: junk.pem\n"), "dtls.ca:"),
        (
            "cert.yaml",
            secure("  ca: pki:ca\n  client_cert: junk.pem\n  client_key: junk.pem\n"),
            "dtls.client_cert:",
        ),
        (
            "pki.yaml",
            format!("{BASE}pki: no-such-folder\ndtls:\n  ca: pki:ca\n"),
            "pki:",
        ),
    ] {
        let err = refused(dir.path(), name, &text, &[]);
        assert!(err.contains(&format!("{name}:")), "{err}");
        assert!(err.contains(want), "{name}: {err}");
    }
}

#[test]
fn duplicate_tokens_in_a_token_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens.txt"), "a\nb\na\n").unwrap();
    let text = BASE.replace("  count: 2\n", "  count: 2\n  token_file: tokens.txt\n");
    let err = refused(dir.path(), "dup.yaml", &text, &[]);
    assert!(
        err.contains("devices.token_file:") && err.contains("`a` is listed twice"),
        "{err}"
    );
}

#[test]
fn a_request_larger_than_one_datagram_is_a_local_limit() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(70_000);
    let text = format!("{BASE}request:\n  payload: \"{big}\"\n");
    let err = refused(dir.path(), "big.yaml", &text, &[]);
    assert!(
        err.contains("request.payload:") && err.contains("one UDP datagram carries at most 65507"),
        "{err}"
    );
    let long_path = format!("/{}", "p".repeat(66_000));
    let text = format!("{BASE}request:\n  path: {long_path}\n");
    let err = refused(dir.path(), "path.yaml", &text, &[]);
    assert!(err.contains("request.path:"), "{err}");
    // A DTLS record is smaller still.
    let mid = "y".repeat(20_000);
    let text =
        format!("{BASE}pki: generate\ndtls:\n  ca: pki:ca\nrequest:\n  payload: \"{mid}\"\n");
    let err = refused(dir.path(), "dtls.yaml", &text, &[]);
    assert!(
        err.contains("one DTLS record carries at most 16384"),
        "{err}"
    );
}

#[test]
fn targets_and_timeouts_no_server_could_use_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let remote = BASE.replace("target: embedded", "target: coap://127.0.0.1:0");
    let err = refused(dir.path(), "port0.yaml", &remote, &[]);
    assert!(err.contains("target:") && err.contains("port 0"), "{err}");
    let path = BASE.replace("target: embedded", "target: coap://127.0.0.1:5683/api/v1");
    let err = refused(dir.path(), "path.yaml", &path, &[]);
    assert!(
        err.contains("has a path") && err.contains("request.path"),
        "{err}"
    );
    let hs = format!("{BASE}pki: generate\ndtls:\n  ca: pki:ca\n  handshake_timeout: 0s\n");
    let err = refused(dir.path(), "hs.yaml", &hs, &[]);
    assert!(
        err.contains("dtls.handshake_timeout: must be more than 0"),
        "{err}"
    );
}

/// `run --target/--devices/--duration` (validate takes no overrides): the error names the flag.
#[test]
fn errors_caused_by_a_flag_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "ok.yaml", BASE);
    let out = dir.path().join("out");
    for (flags, want) in [
        (&["--target", "coap://127.0.0.1:0"][..], "--target: "),
        (&["--target", "coap://127.0.0.1:5683/x"][..], "--target: "),
        (&["--devices", "0"][..], "--devices: "),
        (&["--duration", "0s"][..], "--duration: "),
    ] {
        let mut args = vec![
            "run",
            file.as_str(),
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        let o = harness(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {err}");
        assert!(
            err.starts_with(&format!("error: {want}")),
            "{flags:?}: {err}"
        );
        assert!(!err.contains("ok.yaml:"), "{flags:?}: {err}");
    }
}

#[test]
fn drain_errors_name_their_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused(
        dir.path(),
        "drain.yaml",
        &format!("{BASE}drain: soon\n"),
        &[],
    );
    assert!(
        err.contains("drain.yaml:7:1: drain: `soon` is not a duration"),
        "{err}"
    );
}
