//! The Kubernetes manifests in ci/k8s: schema-valid for the Kubernetes version they target (checked with
//! `kubernetes-validate` from PyPI, which must reject a broken manifest too), and the Jobs' arguments are
//! ones the real command line accepts, with the shard count equal to the Indexed Job's completions.

use crate::common;

use clap::Parser;
use coap_harness::cli::{Cli, Command as Sub};
use coap_harness::scenario::{self, Overrides};
use serde_yaml::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The oldest Kubernetes the manifests are for: `backoffLimitPerIndex` is GA from 1.33.
const KUBERNETES: &str = "1.33";

fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/k8s")
}

fn manifests() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// Runs kubernetes-validate in strict mode (unknown fields are errors); Ok or its output.
fn validate(files: &[PathBuf]) -> Result<(), String> {
    let o = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", KUBERNETES])
        .args(files)
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if o.status.success() {
        Ok(())
    } else {
        Err(text)
    }
}

#[test]
fn manifests_pass_schema_validation_and_a_broken_one_does_not() {
    if !common::require("kubernetes-validate") {
        return;
    }
    let files = manifests();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "configmap.yaml",
            "job-merge.yaml",
            "job-shards.yaml",
            "pvc.yaml"
        ]
    );
    validate(&files).unwrap_or_else(|e| panic!("ci/k8s manifests invalid:\n{e}"));

    let shards = std::fs::read_to_string(k8s_dir().join("job-shards.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, broken) in [
        (
            "misspelt.yaml",
            shards.replace("  parallelism:", "  paralelism:"),
        ),
        (
            "wrong-type.yaml",
            shards.replace("completions: 10", "completions: ten"),
        ),
    ] {
        assert_ne!(broken, shards, "{name}: the edit applies");
        let f = dir.path().join(name);
        std::fs::write(&f, broken).unwrap();
        let e = validate(&[f]).expect_err(name);
        assert!(e.contains("did not validate"), "{name}: {e}");
    }
}

fn doc(file: &str) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(k8s_dir().join(file)).unwrap()).unwrap()
}

fn container(job: &Value) -> &Value {
    &job["spec"]["template"]["spec"]["containers"][0]
}

/// The container's args with `$(VAR)` references replaced as the kubelet would.
fn args(job: &Value, vars: &[(&str, &str)]) -> Vec<String> {
    let mut out = vec!["coap-harness".to_string()];
    for a in container(job)["args"].as_sequence().unwrap() {
        let mut a = a.as_str().unwrap().to_string();
        for (k, v) in vars {
            a = a.replace(&format!("$({k})"), v);
        }
        assert!(!a.contains("$("), "unresolved variable in `{a}`");
        out.push(a);
    }
    out
}

fn env_names(job: &Value) -> Vec<&str> {
    container(job)["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect()
}

#[test]
fn job_args_are_flags_the_cli_accepts() {
    let job = doc("job-shards.yaml");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let completions = spec["completions"].as_u64().unwrap() as u32;
    assert_eq!(spec["parallelism"].as_u64(), Some(u64::from(completions)));
    assert_eq!(env_names(&job), ["SHARD", "START_AT", "RUN_ID"]);
    assert_eq!(
        container(&job)["env"][0]["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.annotations['batch.kubernetes.io/job-completion-index']")
    );
    let start = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(120),
    )
    .to_string();
    let last = (completions - 1).to_string();
    let argv = args(
        &job,
        &[("SHARD", &last), ("START_AT", &start), ("RUN_ID", "r1")],
    );
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let Sub::Run(run) = cli.command else {
        panic!("the shard Job runs `run`: {argv:?}")
    };
    let shard = run.shard.expect("--shard");
    assert_eq!((shard.index, shard.count), (completions - 1, completions));
    assert!(run.start_at.is_some());
    assert_eq!(
        run.out.as_deref(),
        Some(Path::new(&format!("/results/r1/shard-{last}")))
    );

    // The scenario is the ConfigMap's, where the Job mounts it.
    let mounts = container(&job)["volumeMounts"].as_sequence().unwrap();
    let scenario_mount = mounts.iter().find(|m| m["name"] == "scenario").unwrap();
    let config: Vec<Value> = serde_yaml::Deserializer::from_str(
        &std::fs::read_to_string(k8s_dir().join("configmap.yaml")).unwrap(),
    )
    .map(|d| serde::Deserialize::deserialize(d).unwrap())
    .collect();
    let key = run
        .scenario
        .as_deref()
        .expect("the Job names a scenario file")
        .strip_prefix(scenario_mount["mountPath"].as_str().unwrap())
        .expect("the scenario is read from the ConfigMap's mount");
    let text = config[0]["data"][key.to_str().unwrap()]
        .as_str()
        .expect("the ConfigMap holds the scenario under that key");
    assert_eq!(
        config[1]["metadata"]["name"].as_str(),
        Some("coap-harness-run")
    );
    for k in ["start-at", "run-id"] {
        assert!(config[1]["data"][k].is_string(), "{k}");
    }
    // Valid, and splittable into the Job's shards (the ThingsBoard name only resolves in the cluster).
    let plan = scenario::parse(
        text,
        Path::new("configmap.yaml"),
        Path::new("."),
        "k8s",
        &Overrides {
            target: Some("coap://127.0.0.1:5683".into()),
            shard: Some(shard),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("the ConfigMap's scenario: {e}"));
    assert!(plan.devices.count <= 19_000, "a shard fits one process");

    let merge = doc("job-merge.yaml");
    let argv = args(&merge, &[("RUN_ID", "r1")]);
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let Sub::Merge(m) = cli.command else {
        panic!("the merge Job runs `merge`: {argv:?}")
    };
    assert_eq!(m.reports, [PathBuf::from("/results/r1")]);
    assert_eq!(m.out, Path::new("/results/r1/merged"));
}

#[test]
fn the_image_is_multi_stage_and_runs_as_a_user() {
    let text = std::fs::read_to_string(k8s_dir().join("Containerfile")).unwrap();
    let froms = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(froms >= 2, "a build stage and a runtime stage");
    let user = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "{user}"
    );
    assert!(text.contains(r#"ENTRYPOINT ["coap-harness"]"#));
    let job = doc("job-shards.yaml");
    let ctx = &job["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(ctx["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(
        ctx["runAsUser"].as_u64().map(|u| u.to_string()),
        user.split(':').next().map(String::from)
    );
}
