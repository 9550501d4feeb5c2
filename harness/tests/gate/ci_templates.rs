//! The pipeline templates in ci/ are valid YAML and run what the README says: the harness with --junit, the
//! JUnit report published, the report folder kept, and the scenario they name exists and validates.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn load(rel: &str) -> (String, serde_yaml::Value) {
    let text = std::fs::read_to_string(root().join(rel)).unwrap();
    let doc = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    (text, doc)
}

#[test]
fn github_workflow_runs_publishes_and_keeps_the_report() {
    let (text, doc) = load("ci/github/coap-harness.yml");
    let steps = doc["jobs"]["coap"]["steps"]
        .as_sequence()
        .expect("jobs.coap.steps");
    let uses: Vec<&str> = steps.iter().filter_map(|s| s["uses"].as_str()).collect();
    assert!(uses
        .iter()
        .any(|u| u.starts_with("actions/upload-artifact")));
    assert!(uses
        .iter()
        .any(|u| u.starts_with("mikepenz/action-junit-report")));
    assert!(
        text.contains("/target/release/coap-harness\" run \"$SCENARIO\"")
            && text.contains("--junit reports/ci/junit.xml")
    );
    assert!(text.contains("coap-harness\" compare"));
}

#[test]
fn gitlab_job_reports_junit_and_keeps_the_report() {
    let (_, doc) = load("ci/gitlab/coap-harness.gitlab-ci.yml");
    let job = &doc["coap-harness"];
    assert_eq!(
        job["artifacts"]["reports"]["junit"].as_str(),
        Some("reports/ci/junit.xml")
    );
    let script: Vec<&str> = job["script"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert!(script
        .iter()
        .any(|l| l.contains("coap-harness\" run") && l.contains("--junit")));
}

#[test]
fn the_scenario_the_templates_name_validates() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .arg("validate")
        .arg(root().join("scenarios/thingsboard-api.yaml"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

use crate::common;

use std::collections::BTreeMap;
use std::process::Command;

/// Both templates pass the CI systems' own schemas (check-jsonschema's vendored github-workflows and
/// gitlab-ci schemas, from PyPI), and a broken copy of each does not.
#[test]
fn templates_pass_the_ci_schemas_and_a_broken_one_does_not() {
    if !common::require("check-jsonschema") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (rel, schema, broken) in [
        (
            "ci/github/coap-harness.yml",
            "vendor.github-workflows",
            ("runs-on: ubuntu-latest", "runs_on: ubuntu-latest"),
        ),
        (
            "ci/gitlab/coap-harness.gitlab-ci.yml",
            "vendor.gitlab-ci",
            ("when: always", "when: sometimes"),
        ),
    ] {
        let check = |file: &Path| {
            Command::new("check-jsonschema")
                .args(["--builtin-schema", schema])
                .arg(file)
                .output()
                .unwrap()
        };
        let o = check(&root().join(rel));
        assert!(
            o.status.success(),
            "{rel}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        let text = std::fs::read_to_string(root().join(rel)).unwrap();
        assert!(text.contains(broken.0), "{rel}");
        let bad = dir.path().join(Path::new(rel).file_name().unwrap());
        std::fs::write(&bad, text.replace(broken.0, broken.1)).unwrap();
        assert!(
            !check(&bad).status.success(),
            "{rel}: the broken copy passed"
        );
    }
}

/// A scratch copy of what the user's repository holds (the scenarios), with the harness "built": the
/// template's `cargo build --release` is the Containerfile's build (replayed by `containerfile.rs`), so here
/// the binary under test stands at target/release/coap-harness.
fn workspace() -> tempfile::TempDir {
    let ws = tempfile::tempdir().unwrap();
    let scenarios = ws.path().join("scenarios");
    std::fs::create_dir(&scenarios).unwrap();
    for e in std::fs::read_dir(root().join("scenarios")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, scenarios.join(p.file_name().unwrap())).unwrap();
    }
    let bin = ws.path().join("target/release");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_coap-harness"), bin.join("coap-harness"))
        .unwrap();
    ws
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            copy_dir(&p, &to.join(p.file_name().unwrap()));
        } else {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// `${{ ... }}` expressions as GitHub would evaluate them for a push to main; an unknown one fails the test.
fn github_expr(text: &str) -> String {
    let known = [
        ("github.event.inputs.target || 'embedded'", "embedded"),
        ("github.token", "fake-token"),
        ("github.event.repository.default_branch", "main"),
        ("env.HARNESS_DIR", "."),
    ];
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${{") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find("}}").expect("closed expression") + i;
        let expr = rest[i + 3..end].trim();
        let value = known
            .iter()
            .find(|(k, _)| *k == expr)
            .unwrap_or_else(|| panic!("the replay does not know the expression `{expr}`"))
            .1;
        out.push_str(value);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// What one replay of the GitHub workflow did.
struct GithubRun {
    /// Step name (or `uses`) and whether it ran and succeeded.
    steps: Vec<(String, Option<bool>)>,
    summary: String,
    gh_calls: String,
}

/// Runs the workflow's steps in order in `ws`, as the runner would: `run:` scripts with `bash -e`, the job's
/// env, `if: always()` steps after a failure, others skipped. `uses:` steps are stood in for: checkout and the
/// toolchain are `workspace()`, the JUnit action must find its file, upload-artifact copies the folder into
/// `artifacts`; `gh` is a stub serving the artifact of the previous replay (if any) as the baseline.
fn replay_github(ws: &Path, artifacts: &Path, previous: Option<&Path>) -> GithubRun {
    let (_, doc) = load("ci/github/coap-harness.yml");
    let job = &doc["jobs"]["coap"];
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in job["env"].as_mapping().unwrap() {
        env.insert(k.as_str().unwrap().into(), github_expr(v.as_str().unwrap()));
    }
    let stub = ws.join(".stub-bin");
    std::fs::create_dir_all(&stub).unwrap();
    let gh_log = ws.join(".gh-calls");
    let gh = format!(
        "#!/bin/bash\necho \"gh $*\" >> '{log}'\ncase \"$1 $2\" in\n  'run list') {list} ;;\n  'run download') while [ $# -gt 0 ]; do [ \"$1\" = --dir ] && dir=$2; shift; done; mkdir -p \"$dir\"; cp -r '{prev}'/. \"$dir\"/ ;;\n  *) exit 1 ;;\nesac\n",
        log = gh_log.display(),
        list = if previous.is_some() { "echo 4242" } else { "true" },
        prev = previous.map(|p| p.display().to_string()).unwrap_or_default(),
    );
    std::fs::write(stub.join("gh"), gh).unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(stub.join("gh"))
        .status()
        .unwrap();
    let summary = ws.join(".step-summary.md");
    let path = format!("{}:{}", stub.display(), std::env::var("PATH").unwrap());
    let mut failed = false;
    let mut steps = Vec::new();
    for step in job["steps"].as_sequence().unwrap() {
        let name = step["name"]
            .as_str()
            .or(step["uses"].as_str())
            .unwrap()
            .to_string();
        let always = step["if"].as_str() == Some("always()");
        if failed && !always {
            steps.push((name, None));
            continue;
        }
        let ok = if let Some(uses) = step["uses"].as_str() {
            let with = &step["with"];
            if uses.starts_with("mikepenz/action-junit-report") {
                ws.join(with["report_paths"].as_str().unwrap()).is_file()
            } else if uses.starts_with("actions/upload-artifact") {
                let from = ws.join(with["path"].as_str().unwrap());
                copy_dir(&from, &artifacts.join(with["name"].as_str().unwrap()));
                true
            } else {
                assert!(
                    [
                        "actions/checkout@",
                        "dtolnay/rust-toolchain@",
                        "Swatinem/rust-cache@"
                    ]
                    .iter()
                    .any(|u| uses.starts_with(u)),
                    "the replay does not know the action {uses}"
                );
                true
            }
        } else {
            let script = github_expr(step["run"].as_str().unwrap());
            if name == "Build" {
                // Stands in for: `workspace()` put the binary where the build would.
                assert!(
                    script.starts_with("cargo build --release --locked"),
                    "{script}"
                );
                true
            } else {
                let o = Command::new("bash")
                    .args(["--noprofile", "--norc", "-e", "-c", &script])
                    .current_dir(ws)
                    .env_clear()
                    .envs(&env)
                    .env("PATH", &path)
                    .env("HOME", ws)
                    .env("GITHUB_STEP_SUMMARY", &summary)
                    .env("GITHUB_REPOSITORY", "me/my-iot")
                    .output()
                    .unwrap();
                if !o.status.success() {
                    eprintln!(
                        "step `{name}` failed:\n{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
                o.status.success()
            }
        };
        failed |= !ok;
        steps.push((name, Some(ok)));
    }
    GithubRun {
        steps,
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
        gh_calls: std::fs::read_to_string(&gh_log).unwrap_or_default(),
    }
}

/// The GitHub workflow's commands in order, twice: the first run has no baseline and writes the summary and
/// the artifact; the second fetches that artifact as its baseline and adds the comparison to the summary.
#[test]
fn github_workflow_replayed_in_order_fetches_its_baseline_from_the_previous_run() {
    let (text, doc) = load("ci/github/coap-harness.yml");
    assert!(
        !text.contains("repository: your-org"),
        "checks out the user's repository"
    );
    let perms = &doc["permissions"];
    assert_eq!(
        perms["checks"].as_str(),
        Some("write"),
        "the JUnit action creates a check run"
    );
    assert_eq!(
        perms["actions"].as_str(),
        Some("read"),
        "gh run download reads artifacts"
    );

    let artifacts = tempfile::tempdir().unwrap();
    let first = workspace();
    let run1 = replay_github(first.path(), artifacts.path(), None);
    assert!(
        run1.steps.iter().all(|(_, ok)| *ok == Some(true)),
        "{:?}",
        run1.steps
    );
    assert!(
        run1.summary.contains("PASSED"),
        "summary.md in the job summary: {}",
        run1.summary
    );
    assert!(run1.gh_calls.contains("gh run list") && !run1.gh_calls.contains("download"));
    let kept = artifacts.path().join("coap-harness-report");
    assert!(kept.join("report.json").is_file() && kept.join("junit.xml").is_file());

    let second = workspace();
    let run2 = replay_github(second.path(), artifacts.path(), Some(&kept));
    assert!(
        run2.steps.iter().all(|(_, ok)| *ok == Some(true)),
        "{:?}",
        run2.steps
    );
    assert!(
        run2.gh_calls.contains(
            "gh run download 4242 --repo me/my-iot --name coap-harness-report --dir baseline"
        ),
        "{}",
        run2.gh_calls
    );
    assert!(second.path().join("baseline/report.json").is_file());
    assert!(
        run2.summary.contains("PASSED") && run2.summary.contains("## coap-harness compare"),
        "{}",
        run2.summary
    );
}

/// A failing run fails the job, and the `if: always()` steps still publish, summarise and keep the report.
#[test]
fn github_workflow_replayed_with_a_failing_scenario_still_keeps_the_report() {
    let artifacts = tempfile::tempdir().unwrap();
    let ws = workspace();
    // Every answer is 2.01: a scenario expecting 4.04 fails its check (exit 1).
    std::fs::write(
        ws.path().join("scenarios/thingsboard-api.yaml"),
        "target: embedded\ndevices: { count: 2 }\nexpect: { code: \"4.04\" }\nphases:\n  - duration: 300ms\n    interval: 100ms\n",
    )
    .unwrap();
    let run = replay_github(ws.path(), artifacts.path(), None);
    let step = |n: &str| {
        run.steps
            .iter()
            .find(|(s, _)| s == n)
            .unwrap_or_else(|| panic!("no step {n}: {:?}", run.steps))
            .1
    };
    assert_eq!(step("Run scenario"), Some(false), "{:?}", run.steps);
    assert_eq!(
        step("Compare with the baseline"),
        None,
        "skipped after a failure"
    );
    assert_eq!(step("Job summary"), Some(true));
    assert_eq!(step("Publish test report"), Some(true));
    assert_eq!(step("Keep the report"), Some(true));
    assert!(run.summary.contains("FAILED"), "{}", run.summary);
    assert!(artifacts
        .path()
        .join("coap-harness-report/report.json")
        .is_file());
}

/// The GitLab job's script in order, as the runner runs it (`set -eo pipefail`, the job's variables): the
/// cargo cache lies inside the project, a first pipeline has no baseline, a second downloads the first's
/// artifact from the jobs API and compares.
#[test]
fn gitlab_job_replayed_in_order_caches_cargo_in_the_project_and_compares_with_the_last_artifact() {
    let (_, doc) = load("ci/gitlab/coap-harness.gitlab-ci.yml");
    let job = &doc["coap-harness"];
    let vars = job["variables"].as_mapping().unwrap();
    assert_eq!(
        vars.get("CARGO_HOME").and_then(|v| v.as_str()),
        Some("$CI_PROJECT_DIR/.cargo"),
        "GitLab caches only paths inside the project"
    );
    for p in job["cache"]["paths"].as_sequence().unwrap() {
        let p = p.as_str().unwrap();
        assert!(p == "target/" || p.starts_with(".cargo/"), "{p}");
    }
    let api = tempfile::tempdir().unwrap();
    let replay = |ws: &Path| -> (bool, String) {
        let mut script = String::from("set -eo pipefail\n");
        for line in job["script"].as_sequence().unwrap() {
            let line = line.as_str().unwrap();
            if line.starts_with("cargo build --release --locked") {
                continue; // `workspace()` put the binary where the build would.
            }
            script.push_str(line);
            script.push('\n');
        }
        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc", "-c", &script])
            .current_dir(ws)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", ws)
            .env("CI_PROJECT_DIR", ws)
            .env("CI_PROJECT_ID", "42")
            .env("CI_DEFAULT_BRANCH", "main")
            .env("CI_JOB_NAME", "coap-harness")
            .env("CI_JOB_TOKEN", "fake")
            .env("CI_API_V4_URL", format!("file://{}", api.path().display()));
        for (k, v) in vars {
            let v = v
                .as_str()
                .unwrap()
                .replace("$CI_PROJECT_DIR", &ws.display().to_string());
            cmd.env(k.as_str().unwrap(), v);
        }
        let o = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), text)
    };
    let first = workspace();
    let (ok, out) = replay(first.path());
    // On failure, the run's own summary says which case failed and what it observed.
    let summary =
        std::fs::read_to_string(first.path().join("reports/ci/summary.md")).unwrap_or_default();
    assert!(ok, "{out}\n{summary}");
    assert!(out.contains("no baseline"), "{out}");
    assert!(first.path().join("reports/ci/junit.xml").is_file());
    // The first pipeline's artifact, zipped as GitLab serves it from the jobs API.
    let at = api.path().join("projects/42/jobs/artifacts/main");
    std::fs::create_dir_all(&at).unwrap();
    let zip = Command::new("zip")
        .args(["-qr"])
        .arg(at.join("artifacts.zip"))
        .arg("reports/ci")
        .current_dir(first.path())
        .status()
        .unwrap();
    assert!(zip.success());
    std::fs::rename(at.join("artifacts.zip"), at.join("download")).unwrap();
    let second = workspace();
    let (ok, out) = replay(second.path());
    assert!(ok, "{out}");
    assert!(
        second.path().join("baseline/report.json").is_file(),
        "{out}"
    );
    assert!(out.contains("## coap-harness compare"), "{out}");
}

/// The CI entry points parse as bash (a merge once left ci/test.sh without a `fi`, and CI stopped at once).
#[test]
fn ci_scripts_are_valid_bash() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for script in [".ci/run", "ci/test.sh", "ci/bench.sh"] {
        let path = root.join(script);
        assert!(path.is_file(), "{script} is missing");
        let out = std::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
