//! junit.xml for CI test reporters: real runs rendered, then parsed back with an independent XML parser, and
//! the document's counts held against the report's.

use crate::common;

use coap_harness::report::{junit, Check, Report};
use coap_harness::verdict::{self, Verdict};
use common::*;
use roxmltree::{Document, Node};
use std::process::Command;

const SMALL: &str =
    "target: embedded\ndevices:\n  count: 5\nphases:\n  - duration: 1s\n    interval: 200ms\n";

fn elements<'a, 'i>(n: Node<'a, 'i>, tag: &'a str) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == tag)
}

fn attr_usize(n: Node, name: &str) -> usize {
    n.attribute(name)
        .unwrap_or_else(|| panic!("<{}> has no {name}", n.tag_name().name()))
        .parse()
        .unwrap()
}

fn suite<'a, 'i>(doc: &'a Document<'i>, name: &str) -> Node<'a, 'i> {
    elements(doc.root_element(), "testsuite")
        .find(|s| s.attribute("name") == Some(name))
        .unwrap_or_else(|| panic!("no testsuite {name}"))
}

fn case<'a, 'i>(suite: Node<'a, 'i>, name: &str) -> Node<'a, 'i> {
    elements(suite, "testcase")
        .find(|c| c.attribute("name") == Some(name))
        .unwrap_or_else(|| panic!("no testcase {name}"))
}

/// Tests, failures and skipped, as the report itself tells them.
fn expected_counts(r: &Report) -> (usize, usize, usize) {
    let trust: Vec<String> = r
        .trust_cases
        .iter()
        .map(|c| format!("trust case: {}", c.name))
        .collect();
    let checks: Vec<&Check> = r
        .checks
        .iter()
        .filter(|c| !trust.contains(&c.name))
        .collect();
    let fault = matches!(verdict::of(r), Verdict::Fault(_));
    let tests = checks.len() + r.trust_cases.len() + 3;
    let failures = checks.iter().filter(|c| !c.passed).count()
        + r.trust_cases.iter().filter(|c| !c.passed).count()
        + usize::from(fault)
        + usize::from(r.interrupted);
    (tests, failures, usize::from(r.security.insecure))
}

/// Parses the XML, checks its structure and that every count attribute equals the elements it counts and
/// what the report says; returns the document.
fn parse_consistent<'i>(xml: &'i str, r: &Report) -> Document<'i> {
    let doc = Document::parse(xml).unwrap_or_else(|e| panic!("not well-formed: {e}\n{xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("name"), Some("coap-harness"));
    let names: Vec<&str> = elements(root, "testsuite")
        .map(|s| s.attribute("name").unwrap())
        .collect();
    assert_eq!(names, ["checks", "trust", "run"]);
    let (mut tests, mut failures, mut skipped) = (0, 0, 0);
    for s in elements(root, "testsuite") {
        let cases: Vec<Node> = elements(s, "testcase").collect();
        let count = |tag: &str| {
            cases
                .iter()
                .filter(|c| elements(**c, tag).next().is_some())
                .count()
        };
        let name = s.attribute("name").unwrap();
        assert_eq!(attr_usize(s, "tests"), cases.len(), "{name}");
        assert_eq!(attr_usize(s, "failures"), count("failure"), "{name}");
        assert_eq!(attr_usize(s, "errors"), count("error"), "{name}");
        assert_eq!(attr_usize(s, "skipped"), count("skipped"), "{name}");
        for c in &cases {
            assert_eq!(
                c.attribute("classname"),
                Some(name),
                "classname is the suite"
            );
        }
        tests += cases.len();
        failures += count("failure");
        skipped += count("skipped");
    }
    assert_eq!(attr_usize(root, "tests"), tests);
    assert_eq!(attr_usize(root, "failures"), failures);
    assert_eq!(attr_usize(root, "errors"), 0);
    assert_eq!(attr_usize(root, "skipped"), skipped);
    assert_eq!(
        (tests, failures, skipped),
        expected_counts(r),
        "tests, failures, skipped"
    );
    doc
}

fn properties<'a>(s: Node<'a, '_>) -> Vec<(&'a str, &'a str)> {
    elements(s, "properties")
        .flat_map(|p| elements(p, "property"))
        .map(|p| (p.attribute("name").unwrap(), p.attribute("value").unwrap()))
        .collect()
}

fn time(n: Node) -> f64 {
    n.attribute("time").unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_run_counts_match_the_report_and_security_says_plain_coap() {
    let out = run(plan(SMALL)).await;
    let r = &out.report;
    assert!(!r.checks.is_empty(), "the embedded target adds a check");
    let xml = junit::render(r);
    let doc = parse_consistent(&xml, r);
    assert_eq!(attr_usize(doc.root_element(), "failures"), 0);

    let checks = suite(&doc, "checks");
    for c in &r.checks {
        let tc = case(checks, &c.name);
        assert!(elements(tc, "failure").next().is_none());
    }
    assert_eq!(attr_usize(suite(&doc, "trust"), "tests"), 0);

    let run_suite = suite(&doc, "run");
    assert!((time(run_suite) - r.duration_s).abs() < 0.002);
    assert!((time(doc.root_element()) - r.duration_s).abs() < 0.002);
    let props = properties(run_suite);
    for want in [
        ("scenario", "test"),
        ("target", "embedded"),
        ("transport", "coap"),
        ("insecure", "false"),
        ("harness_version", env!("CARGO_PKG_VERSION")),
    ] {
        assert!(props.contains(&want), "{want:?} in {props:?}");
    }
    // Plain CoAP verified nothing: the security case names it, never "verification enabled".
    assert!(!xml.contains("verification enabled"));
    for name in ["target measurable", "completed", junit::SECURITY_PLAIN] {
        let tc = case(run_suite, name);
        assert!(
            tc.children()
                .all(|c| !matches!(c.tag_name().name(), "failure" | "skipped" | "error")),
            "{name} passes"
        );
    }
    assert!(!xml.contains("INSECURE"));
}

#[test]
fn trust_matrix_each_case_a_test_and_the_ca_none_probe_judged_in_its_own_row() {
    let r = &crate::trust_matrix::matrix().report;
    // One case probes `ca: none`; the run sent no unverified load.
    assert!(!r.security.insecure);
    let xml = junit::render(r);
    let doc = parse_consistent(&xml, r);

    let trust = suite(&doc, "trust");
    let names: Vec<&str> = elements(trust, "testcase")
        .map(|c| c.attribute("name").unwrap())
        .collect();
    let want: Vec<&str> = r.trust_cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, want);
    for c in &r.trust_cases {
        let tc = case(trust, &c.name);
        assert!((time(tc) - c.handshake_us as f64 / 1e6).abs() < 0.002);
        // Passed or not, the case carries what was seen: a refused handshake that was expected says why.
        let holder = if c.passed { "system-out" } else { "failure" };
        let text: String = elements(tc, holder).filter_map(|n| n.text()).collect();
        assert!(
            text.contains(&format!("verdict: {}", c.verdict)),
            "{} (passed: {}): {text}",
            c.name,
            c.passed
        );
        if let Some(d) = &c.detail {
            assert!(text.contains(d.as_str()), "{text}");
        }
    }
    // Trust cases are not counted twice as checks.
    let checks = suite(&doc, "checks");
    assert!(elements(checks, "testcase")
        .all(|c| !c.attribute("name").unwrap().starts_with("trust case: ")));

    let probe = case(trust, "no CA given, verification disabled");
    let text: String = elements(probe, "system-out")
        .filter_map(|n| n.text())
        .collect();
    assert!(
        text.contains("INSECURE: certificate verification was disabled for this case"),
        "{text}"
    );

    let run_suite = suite(&doc, "run");
    assert!(properties(run_suite).contains(&("insecure", "false")));
    let sec = case(run_suite, junit::SECURITY_VERIFIED);
    assert!(elements(sec, "skipped").next().is_none(), "{xml}");
    assert!(elements(run_suite, "system-out")
        .filter_map(|n| n.text())
        .all(|t| !t.contains("INSECURE")));
}

/// Load devices with `ca: none`: that is an insecure run, and its security case is skipped, never passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_load_run_security_skipped_not_passed() {
    let yaml = "target: embedded\npki: generate\ndevices:\n  count: 2\ndtls:\n  ca: none\n\
                phases:\n  - duration: 500ms\n    interval: 250ms\n";
    let out = run(plan(yaml)).await;
    let r = &out.report;
    assert!(r.security.insecure);
    let xml = junit::render(r);
    let doc = parse_consistent(&xml, r);
    let run_suite = suite(&doc, "run");
    assert!(properties(run_suite).contains(&("insecure", "true")));
    let out: String = elements(run_suite, "system-out")
        .filter_map(|n| n.text())
        .collect();
    assert!(
        out.lines()
            .any(|l| l == "INSECURE: certificate verification was disabled"),
        "{out}"
    );
    let sec = case(run_suite, junit::SECURITY_VERIFIED);
    let skipped = elements(sec, "skipped")
        .next()
        .expect("skipped, not passed");
    assert_eq!(
        skipped.attribute("message"),
        Some("verification disabled on purpose by the scenario: INSECURE")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_trust_expectation_is_a_failure_naming_expected_and_observed() {
    let mut plan = common::matrix_plan();
    plan.trust_cases.truncate(2);
    // Claim the unknown-CA server would be accepted.
    plan.trust_cases[1].expect.connect = true;
    plan.trust_cases[1].expect.verdict = Some(coap_harness::trust::TrustVerdict::Ok);
    let out = run(plan).await;
    let r = &out.report;
    let xml = junit::render(r);
    let doc = parse_consistent(&xml, r);
    assert_eq!(attr_usize(doc.root_element(), "failures"), 1);
    let trust = suite(&doc, "trust");
    assert_eq!(attr_usize(trust, "failures"), 1);
    assert!(elements(case(trust, "valid CA"), "failure")
        .next()
        .is_none());

    let bad = &r.trust_cases[1];
    let f = elements(case(trust, &bad.name), "failure")
        .next()
        .expect("a <failure>");
    let msg = f.attribute("message").unwrap();
    assert_eq!(
        msg,
        format!("expected {}, observed {}", bad.expected, bad.observed)
    );
    assert!(
        msg.contains("verdict ok") && msg.contains("unknown_ca"),
        "{msg}"
    );
    assert_eq!(f.attribute("type"), Some("trust"));
    let body = f.text().unwrap();
    assert!(
        body.contains(&format!("expected: {}", bad.expected)),
        "{body}"
    );
    assert!(
        body.contains(&format!("observed: {}", bad.observed)),
        "{body}"
    );
    let detail = bad.detail.as_deref().expect("a refused handshake says why");
    assert!(body.contains(&format!("detail: {detail}")), "{body}");
    if let Some(saw) = &bad.server_saw {
        assert!(body.contains(&format!("server saw: {saw}")), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_characters_are_escaped_and_round_trip() {
    let mut r = run(plan(SMALL)).await.report;
    let nasty = r#"a <b> & "c" 'd'"#;
    r.scenario.name = format!("scenario {nasty}");
    r.checks.push(Check {
        name: format!("check {nasty}"),
        passed: false,
        expected: r#"p99 < 5ms & "fast""#.into(),
        observed: "p99 > 5ms <slow> & 'late'\nsecond line".into(),
    });
    r.warnings.push(format!("warning {nasty}"));
    let xml = junit::render(&r);
    assert!(!xml.contains(nasty), "raw text leaked into the XML");
    assert!(xml.contains("&lt;") && xml.contains("&amp;") && xml.contains("&quot;"));
    let doc = parse_consistent(&xml, &r);
    let tc = case(suite(&doc, "checks"), &format!("check {nasty}"));
    let f = elements(tc, "failure").next().unwrap();
    assert_eq!(
        f.attribute("message"),
        Some(r#"expected p99 < 5ms & "fast", observed p99 > 5ms <slow> & 'late' second line"#)
    );
    assert!(f
        .text()
        .unwrap()
        .contains("observed: p99 > 5ms <slow> & 'late'\nsecond line"));
    let run_suite = suite(&doc, "run");
    assert!(properties(run_suite).contains(&("scenario", r.scenario.name.as_str())));
    let out: String = elements(run_suite, "system-out")
        .filter_map(|n| n.text())
        .collect();
    assert!(out.contains(&format!("warning: warning {nasty}")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmeasurable_target_and_interrupted_run_fail_their_run_cases() {
    let port = free_udp_port();
    let yaml = SMALL
        .replace("embedded", &format!("coap://127.0.0.1:{port}"))
        .replace("count: 5", "count: 2");
    let mut r = run(plan(&yaml)).await.report;
    let Verdict::Fault(why) = verdict::of(&r) else {
        panic!("expected a fault against a closed port")
    };
    let xml = junit::render(&r);
    let doc = parse_consistent(&xml, &r);
    let run_suite = suite(&doc, "run");
    let f = elements(case(run_suite, "target measurable"), "failure")
        .next()
        .expect("target measurable fails");
    assert_eq!(f.attribute("message"), Some(why.as_str()));
    assert_eq!(f.attribute("type"), Some("fault"));
    assert!(elements(case(run_suite, "completed"), "failure")
        .next()
        .is_none());

    r.interrupted = true;
    let xml = junit::render(&r);
    let doc = parse_consistent(&xml, &r);
    let f = elements(case(suite(&doc, "run"), "completed"), "failure")
        .next()
        .expect("completed fails when interrupted");
    assert_eq!(f.attribute("type"), Some("interrupted"));
    assert!(f.attribute("message").unwrap().contains("interrupted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xmllint_finds_it_well_formed() {
    if !have("xmllint") {
        eprintln!("SKIPPED: xmllint not installed (Debian package libxml2-utils)");
        return;
    }
    let r = run(plan(SMALL)).await.report;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit.xml");
    std::fs::write(&file, junit::render(&r)).unwrap();
    let o = Command::new("xmllint")
        .arg("--noout")
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn cli_writes_junit_to_the_report_folder_and_to_the_given_file() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("small.yaml");
    std::fs::write(&scenario, SMALL).unwrap();
    let out = dir.path().join("out");
    let file = dir.path().join("ci").join("..").join("junit-copy.xml");
    std::fs::create_dir_all(dir.path().join("ci")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .args(["run", scenario.to_str().unwrap(), "--quiet", "--out"])
        .arg(&out)
        .arg("--junit")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let in_folder = std::fs::read_to_string(out.join("junit.xml")).expect("DIR/junit.xml");
    let given = std::fs::read_to_string(&file).expect("--junit FILE");
    assert_eq!(in_folder, given);
    let r: Report =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    parse_consistent(&given, &r);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("junit.xml") && stdout.contains("junit-copy.xml"),
        "{stdout}"
    );
}
