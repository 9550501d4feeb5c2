//! ci/k8s/Containerfile without a container engine: its build stage replayed in order in a scratch folder
//! standing for the image's filesystem (WORKDIR, COPY from the repository minus Containerfile.dockerignore,
//! RUN with bash), so the dependency-caching step (manifests and stubs, `cargo fetch --locked`) runs exactly
//! as written. The release build itself (`cargo build --release --locked`, minutes) runs as written when
//! COAP_HARNESS_IMAGE_BUILD=1 (ci/test.sh sets it); otherwise its manifest is resolved with `cargo metadata
//! --locked` against the real sources. The runtime stage's needs are checked against the Job manifest and
//! the binary: a non-root user, and a writable /tmp for `pki: generate` under readOnlyRootFilesystem.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[derive(Debug)]
enum Instr {
    Workdir(String),
    Copy(Vec<String>, String),
    Run(String),
}

/// The instructions of the stage named `AS build`, continuation lines joined, comments left out.
fn build_stage(text: &str) -> Vec<Instr> {
    let mut logical = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                cur.push_str(part);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                logical.push(std::mem::take(&mut cur));
            }
        }
    }
    let mut out = Vec::new();
    let mut inside = false;
    for l in logical {
        if let Some(from) = l.strip_prefix("FROM ") {
            if inside {
                break;
            }
            inside = from.trim_end().ends_with(" AS build");
            continue;
        }
        if !inside {
            continue;
        }
        let (op, rest) = l.split_once(' ').unwrap_or((&l, ""));
        match op {
            "WORKDIR" => out.push(Instr::Workdir(rest.trim().into())),
            "COPY" => {
                let mut parts: Vec<String> = rest.split_whitespace().map(String::from).collect();
                assert!(
                    !parts[0].starts_with("--"),
                    "the replay copies from the build context only: {l}"
                );
                let dst = parts.pop().unwrap();
                out.push(Instr::Copy(parts, dst));
            }
            "RUN" => out.push(Instr::Run(rest.trim().into())),
            other => panic!("the replay does not know the instruction {other}: {l}"),
        }
    }
    out
}

fn ignored() -> Vec<String> {
    std::fs::read_to_string(root().join("ci/k8s/Containerfile.dockerignore"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

fn copy(from: &Path, to: &Path, rel: &Path, ignore: &[String]) {
    if ignore.iter().any(|i| Path::new(i) == rel) {
        return;
    }
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let name = e.unwrap().file_name();
            copy(&from.join(&name), &to.join(&name), &rel.join(&name), ignore);
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}

/// Replays the build stage into `fs`; returns where WORKDIR left off. `build` runs the release build as
/// written; otherwise that RUN resolves the manifest with `cargo metadata --locked` instead.
fn replay(fs: &Path, build: bool) -> PathBuf {
    let text = std::fs::read_to_string(root().join("ci/k8s/Containerfile")).unwrap();
    let ignore = ignored();
    let mut workdir = fs.to_path_buf();
    let mut ran_fetch = false;
    for instr in build_stage(&text) {
        match instr {
            Instr::Workdir(d) => {
                workdir = fs.join(d.trim_start_matches('/'));
                std::fs::create_dir_all(&workdir).unwrap();
            }
            Instr::Copy(srcs, dst) => {
                let into = workdir.join(&dst);
                for src in &srcs {
                    let from = root().join(src);
                    let to = if dst.ends_with('/') || srcs.len() > 1 {
                        into.join(Path::new(src).file_name().unwrap())
                    } else {
                        into.clone()
                    };
                    copy(&from, &to, Path::new(src), &ignore);
                }
            }
            Instr::Run(cmd) => {
                let cmd = if cmd.contains("cargo build") && !build {
                    assert!(
                        cmd.contains("cargo build --release --locked"),
                        "the image builds with --locked: {cmd}"
                    );
                    "cargo metadata --locked --offline --format-version 1 > /dev/null".to_string()
                } else {
                    cmd
                };
                ran_fetch |= cmd.contains("cargo fetch --locked");
                let o = Command::new("bash")
                    .args(["-ec", &cmd])
                    .current_dir(&workdir)
                    // The image's own target folder, not the one this test runs from.
                    .env_remove("CARGO_TARGET_DIR")
                    .output()
                    .unwrap();
                assert!(
                    o.status.success(),
                    "RUN {cmd}\n{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
    }
    assert!(ran_fetch, "the dependency stage fetches with --locked");
    workdir
}

#[test]
fn the_build_stage_replays_in_order() {
    let fs = tempfile::tempdir().unwrap();
    let full = std::env::var_os("COAP_HARNESS_IMAGE_BUILD").is_some_and(|v| v == "1");
    let src = replay(fs.path(), full);
    // The build context left out what the ignore file names.
    assert!(!src.join("target/debug").exists());
    assert!(src.join("dtls/Cargo.toml").is_file() && src.join("harness/src/main.rs").is_file());
    if full {
        let bin = src.join("target/release/coap-harness");
        let o = Command::new(&bin).arg("--version").output().unwrap();
        assert!(o.status.success());
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("coap-harness "));
    } else {
        eprintln!(
            "the release build was resolved, not compiled (COAP_HARNESS_IMAGE_BUILD=1 compiles it)"
        );
    }
}

/// The dependency stage alone, as it stood before this test existed, fails: the examples need stubs.
#[test]
fn the_dependency_stage_without_example_stubs_would_fail() {
    let fs = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("ci/k8s/Containerfile")).unwrap();
    let ignore = ignored();
    let src = fs.path().join("src");
    for instr in build_stage(&text) {
        match instr {
            Instr::Copy(srcs, dst) if srcs.iter().all(|s| s != "harness") => {
                for s in &srcs {
                    let to = if dst.ends_with('/') || dst == "./" {
                        src.join(Path::new(s).file_name().unwrap())
                    } else {
                        src.join(&dst)
                    };
                    copy(&root().join(s), &to, Path::new(s), &ignore);
                }
            }
            Instr::Run(cmd) if cmd.contains("cargo fetch") => {
                let without_examples: String = cmd
                    .split("&&")
                    .filter(|c| !c.contains("examples/"))
                    .collect::<Vec<_>>()
                    .join("&&");
                let o = Command::new("bash")
                    .args(["-ec", &without_examples])
                    .current_dir(&src)
                    .output()
                    .unwrap();
                assert!(!o.status.success(), "{without_examples}");
                assert!(
                    String::from_utf8_lossy(&o.stderr).contains("example"),
                    "{}",
                    String::from_utf8_lossy(&o.stderr)
                );
                return;
            }
            _ => {}
        }
    }
    panic!("no cargo fetch step");
}

/// The runtime stage runs as the Job's non-root user, and `pki: generate` writes under TMPDIR: the Job mounts
/// an emptyDir at /tmp because its root filesystem is read-only, and the binary honours TMPDIR (an unusable
/// one is an error naming it, exit 2 before any load).
#[test]
fn the_runtime_stage_has_a_user_and_a_writable_tmp() {
    let text = std::fs::read_to_string(root().join("ci/k8s/Containerfile")).unwrap();
    let runtime = text.rsplit("\nFROM ").next().unwrap();
    assert!(runtime.contains("USER 10001:10001"), "{runtime}");
    assert!(runtime.contains("ENV TMPDIR=/tmp"), "{runtime}");
    let job: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("ci/k8s/job-shards.yaml")).unwrap(),
    )
    .unwrap();
    let spec = &job["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    let tmp = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/tmp")
        .expect("a volume at /tmp");
    let vol = spec["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == tmp["name"])
        .unwrap();
    assert!(vol["emptyDir"].is_mapping(), "{vol:?}");

    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("dtls.yaml");
    std::fs::write(
        &scenario,
        "target: embedded\npki: generate\ndevices: { count: 2 }\ndtls: { ca: pki:ca }\nphases:\n  - duration: 300ms\n    interval: 100ms\n",
    )
    .unwrap();
    let run = |tmpdir: &Path, out: &str| {
        Command::new(env!("CARGO_BIN_EXE_coap-harness"))
            .args(["run", scenario.to_str().unwrap(), "--quiet", "--out"])
            .arg(dir.path().join(out))
            .env("TMPDIR", tmpdir)
            .output()
            .unwrap()
    };
    let o = run(Path::new("/nonexistent-tmp"), "a");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("PKI") || err.contains("nonexistent-tmp"),
        "{err}"
    );
    let tmp = dir.path().join("emptydir");
    std::fs::create_dir(&tmp).unwrap();
    let o = run(&tmp, "b");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "the run's PKI is removed afterwards"
    );
}
