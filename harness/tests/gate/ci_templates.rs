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
        text.contains("coap-harness run \"$SCENARIO\"")
            && text.contains("--junit reports/ci/junit.xml")
    );
    assert!(text.contains("coap-harness compare"));
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
        .any(|l| l.contains("coap-harness run") && l.contains("--junit")));
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
