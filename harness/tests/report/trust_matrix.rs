//! The trust matrix (`scenarios/trust-matrix.yaml`, twelve DTLS handshakes against the embedded server), run
//! once for this whole binary: [`matrix`] holds its report and the files `report::write_all` made of it, and
//! every test that checks a format (report.json and its schema, summary.md, junit.xml, report.html, the
//! `report` command) reads that one run. This file also checks the run itself: each case gets its verdict.

use crate::common;

use coap_harness::report::model::TrustCaseResult;
use coap_harness::report::Report;
use coap_harness::trust::TrustVerdict;
use coap_harness::verdict::{self, Verdict};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The trust matrix's report and the folder its report files were written to.
pub struct MatrixRun {
    pub report: Report,
    /// `report.json`, `summary.md`, `junit.xml`, `report.html` of the run, as `coap-harness run --out` writes them.
    pub dir: PathBuf,
}

/// The one run of the trust matrix, made by the first test that asks (others wait for it).
pub fn matrix() -> &'static MatrixRun {
    static RUN: OnceLock<MatrixRun> = OnceLock::new();
    RUN.get_or_init(|| {
        // Its own runtime on its own thread: the caller may be inside a test's runtime.
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            let out = rt.block_on(common::run(common::matrix_plan()));
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("trust-matrix");
            let _ = std::fs::remove_dir_all(&dir);
            coap_harness::report::write_all(&out.report, &dir).expect("report files written");
            MatrixRun {
                report: out.report,
                dir,
            }
        })
        .join()
        .expect("the trust matrix runs")
    })
}

#[test]
fn trust_matrix_every_case_gets_its_verdict() {
    let run = matrix();
    let r = &run.report;
    let observed: Vec<(&str, &str)> = r
        .trust_cases
        .iter()
        .map(|c| (c.name.as_str(), c.verdict.name()))
        .collect();
    assert_eq!(
        observed,
        vec![
            ("valid CA", "ok"),
            ("server certificate from an unknown CA", "unknown_ca"),
            ("devices trust another CA", "unknown_ca"),
            ("no CA given, verification disabled", "ok_insecure"),
            ("expired server certificate", "expired"),
            ("server certificate not yet valid", "not_yet_valid"),
            ("server certificate for another host", "hostname_mismatch"),
            ("self-signed server certificate", "self_signed"),
            ("two-way, no client certificate", "client_cert_required"),
            ("two-way, rogue client certificate", "client_cert_rejected"),
            (
                "two-way, expired client certificate",
                "client_cert_rejected"
            ),
            ("two-way, valid client certificate", "ok"),
        ]
    );
    for c in &r.trust_cases {
        assert!(
            c.passed,
            "{}: expected {} observed {}",
            c.name, c.expected, c.observed
        );
        if matches!(c.verdict, TrustVerdict::Ok | TrustVerdict::OkInsecure) {
            assert_eq!(c.code.as_deref(), Some("2.01"), "{}", c.name);
        } else {
            assert!(c.detail.is_some(), "{}: a failure says why", c.name);
        }
    }
    // The `ca: none` probe is that case's own finding; the run sent no unverified load, so it is not insecure.
    assert!(!r.security.insecure);
    assert!(
        !r.warnings.iter().any(|w| w.contains("INSECURE")),
        "{:?}",
        r.warnings
    );
    let insecure: Vec<&TrustCaseResult> = r.trust_cases.iter().filter(|c| c.insecure).collect();
    assert_eq!(insecure.len(), 1);
    assert_eq!(insecure[0].name, "no CA given, verification disabled");
    assert!(
        insecure[0]
            .observed
            .contains("verification disabled (ca: none) and the connection succeeded"),
        "{}",
        insecure[0].observed
    );
    let md = std::fs::read_to_string(run.dir.join("summary.md")).unwrap();
    let html = std::fs::read_to_string(run.dir.join("report.html")).unwrap();
    let term = coap_harness::report::terminal::render(r);
    for text in [&md, &html, &term] {
        assert!(!text.contains("INSECURE RUN"), "{text}");
    }
    assert!(
        md.contains("**INSECURE**"),
        "the case's own row says it:\n{md}"
    );
    assert!(term.contains("(INSECURE)"), "{term}");
    let junit = std::fs::read_to_string(run.dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let security = doc
        .descendants()
        .find(|n| n.attribute("name") == Some(coap_harness::report::junit::SECURITY_VERIFIED))
        .expect("a security case");
    assert!(
        !security
            .children()
            .any(|c| c.tag_name().name() == "skipped"),
        "{junit}"
    );
    assert!(
        !junit.contains("verification disabled on purpose"),
        "{junit}"
    );
    // A trust-only run says so: no "(0 devices, 0.0s)", no 127.0.0.1:0, no empty latency files, cases first.
    assert!(!term.contains("0 devices"), "{term}");
    assert!(term.contains("no load phases; 12 trust cases"), "{term}");
    assert!(!r.target.address.ends_with(":0"), "{}", r.target.address);
    for c in &r.trust_cases {
        let at: std::net::SocketAddr = c.target.as_deref().unwrap().parse().unwrap();
        assert_ne!(at.port(), 0, "{}", c.name);
    }
    assert!(!run.dir.join("latency.hgrm").exists());
    assert!(!run.dir.join("latency.hlog").exists());
    assert!(
        !md.contains("| duration |") && !md.contains("| devices |"),
        "{md}"
    );
    let trust_at = html.find("<h2>Trust cases</h2>").expect("a trust table");
    assert!(
        !html.contains("<h2>Latency percentile spectrum</h2>"),
        "no empty latency charts"
    );
    assert!(!html.contains("<h2>Over time</h2>"));
    assert!(trust_at < html.find("<h2>Checks</h2>").unwrap());
    assert_eq!(verdict::of(r), Verdict::Passed);
}
