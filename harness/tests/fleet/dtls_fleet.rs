//! The fleet over DTLS: every device opens its own DTLS session to the embedded server (each handshake a
//! verdict, each request accounted for), and trust cases against the embedded server (the whole trust matrix,
//! case by case, is checked in `tests/report/trust_matrix.rs`, from the run the format tests share).

use crate::common;

use coap_harness::trust::TrustVerdict;
use coap_harness::verdict::{self, Verdict};
use common::*;

/// Plain CoAP verifies nothing, and the reports say so; `require_dtls: true` fails such a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_coap_is_named_as_such_and_require_dtls_fails_it() {
    let yaml = "target: embedded\ndevices:\n  count: 2\nphases:\n  - duration: 500ms\n    interval: 250ms\n";
    let out = run(plan(yaml)).await;
    let r = &out.report;
    assert!(r.security.plain());
    let junit = coap_harness::report::junit::render(r);
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let names: Vec<&str> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "testcase")
        .filter_map(|n| n.attribute("name"))
        .filter(|n| n.starts_with("security"))
        .collect();
    assert_eq!(names, vec!["security: no transport security (plain CoAP)"]);
    assert!(!junit.contains("verification enabled"), "{junit}");
    assert!(coap_harness::report::markdown::render(r)
        .contains("| security | no transport security (plain CoAP) |"));
    assert!(coap_harness::report::html::render(r).contains("no transport security (plain CoAP)"));
    assert!(!r.checks.iter().any(|c| c.name.starts_with("security")));
    assert_eq!(verdict::of(r), Verdict::Passed);

    let out = run(plan(&format!("{yaml}require_dtls: true\n"))).await;
    let r = &out.report;
    let check = r
        .checks
        .iter()
        .find(|c| c.name == "security: DTLS required")
        .expect("the requirement is a check");
    assert!(!check.passed);
    assert_eq!(check.observed, "no transport security (plain CoAP)");
    assert!(matches!(verdict::of(r), Verdict::Failed(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_expectation_fails_the_run_naming_expected_and_observed() {
    let mut plan = common::matrix_plan();
    plan.trust_cases.truncate(2);
    // Claim the unknown-CA server would be accepted.
    plan.trust_cases[1].expect.connect = true;
    plan.trust_cases[1].expect.verdict = Some(coap_harness::trust::TrustVerdict::Ok);
    let out = run(plan).await;
    let r = &out.report;
    let bad = &r.trust_cases[1];
    assert!(!bad.passed);
    assert!(
        bad.expected.contains("verdict ok") && bad.observed.contains("unknown_ca"),
        "{bad:?}"
    );
    assert!(
        matches!(verdict::of(r), Verdict::Failed(why) if why.contains("trust case: server certificate from an unknown CA"))
    );
}

const DTLS_FLEET: &str = r#"
target: embedded
pki: generate
devices:
  count: 120
dtls:
  ca: pki:ca
phases:
  - name: connect
    duration: 2s
    ramp: linear
    interval: 500ms
  - name: steady
    duration: 1s
    interval: 250ms
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_over_dtls_each_device_its_own_session() {
    let out = run(plan(DTLS_FLEET)).await;
    let r = &out.report;
    assert_accounted(r);
    let h = r.handshakes.as_ref().expect("handshakes recorded");
    assert_eq!((h.attempted, h.ok, h.failed), (120, 120, 0), "{h:?}");
    assert_eq!(h.verdicts.get(&TrustVerdict::Ok), Some(&120));
    assert_eq!(h.latency.count, 120);
    assert!(r.total.sent >= 120 * 4, "{}", r.total.sent);
    assert_eq!(r.total.outcomes.ok, r.total.sent, "{:?}", r.total.outcomes);
    assert_eq!(r.target.transport, "dtls");
    assert!(!r.security.insecure);
    assert_eq!(r.security.verification, "certificate");
    let dtls = r.server.as_ref().unwrap().dtls.as_ref().unwrap();
    assert_eq!(dtls.handshakes_ok, 120, "{dtls:?}");
    assert!(r.checks.iter().all(|c| c.passed), "{:?}", r.checks);
    for d in &out.devices {
        assert_eq!(
            d.handshake.as_ref().unwrap().verdict,
            coap_harness::trust::TrustVerdict::Ok
        );
        assert_eq!(d.ok, d.sent);
    }
    assert_eq!(verdict::of(r), Verdict::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_offering_only_p384_completes_against_the_embedded_server() {
    let yaml = DTLS_FLEET
        .replace("count: 120", "count: 5")
        .replace("ca: pki:ca", "ca: pki:ca\n  curves: [p384]");
    let p = plan(&yaml);
    assert_eq!(
        p.dtls.as_ref().unwrap().client.curves,
        vec![coap_harness::transport::dtls::NamedCurve::P384]
    );
    let out = run(p).await;
    let h = out.report.handshakes.as_ref().expect("handshakes recorded");
    assert_eq!((h.attempted, h.ok, h.failed), (5, 5, 0), "{h:?}");
    assert_accounted(&out.report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_without_ca_is_flagged_insecure() {
    let yaml = DTLS_FLEET
        .replace("count: 120", "count: 5")
        .replace("ca: pki:ca", "ca: none");
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    assert_eq!(
        r.handshakes
            .as_ref()
            .unwrap()
            .verdicts
            .get(&TrustVerdict::OkInsecure),
        Some(&5)
    );
    assert!(r.security.insecure);
    assert_eq!(r.security.verification, "disabled");
    assert!(coap_harness::report::terminal::render(r).contains("INSECURE RUN"));
    assert_eq!(r.total.outcomes.ok, r.total.sent);
    // Load without verification is what makes a run insecure: banner, warning, skipped JUnit case.
    assert!(r.warnings.iter().any(|w| w.starts_with("INSECURE")));
    let junit = coap_harness::report::junit::render(r);
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let security = doc
        .descendants()
        .find(|n| n.attribute("name") == Some(coap_harness::report::junit::SECURITY_VERIFIED))
        .expect("a security case");
    assert!(
        security
            .children()
            .any(|c| c.tag_name().name() == "skipped"),
        "{junit}"
    );
    // A trust-gate scenario that requires DTLS fails an unverified load.
    let out = run(plan(&format!("{yaml}require_dtls: true\n"))).await;
    let check = out
        .report
        .checks
        .iter()
        .find(|c| c.name == "security: DTLS required")
        .unwrap();
    assert!(
        !check.passed && check.observed.contains("INSECURE"),
        "{check:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_with_the_wrong_ca_opens_no_session_and_says_why() {
    let yaml = DTLS_FLEET
        .replace("count: 120", "count: 4")
        .replace("ca: pki:ca", "ca: pki:unknown_ca");
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    let h = r.handshakes.as_ref().unwrap();
    assert_eq!((h.ok, h.failed), (0, 4));
    assert_eq!(h.verdicts.get(&TrustVerdict::UnknownCa), Some(&4));
    assert_eq!(r.total.sent, 0);
    match verdict::of(r) {
        Verdict::Fault(why) => assert!(
            why.contains("no DTLS session") && why.contains("unknown_ca"),
            "{why}"
        ),
        v => panic!("{v:?}"),
    }
}

/// A fleet of X.509 devices as ThingsBoard authenticates them: each device presents its own certificate
/// (`{pki}/devices/device-{index}.pem`, as `certs --devices N` writes them) on the token-less device API, and
/// the embedded server in ThingsBoard mode maps each certificate to its registered device.
const X509_FLEET: &str = r#"
target: embedded
pki: generate
devices:
  count: 6
request:
  path: /api/v1/telemetry
dtls:
  ca: pki:ca
  server_name: localhost
  client_cert: "{pki}/devices/device-{index}.pem"
embedded:
  server:
    client_auth: thingsboard
    device_certs: "{pki}/devices"
phases:
  - duration: 1s
    interval: 250ms
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_fleet_each_device_its_own_certificate_and_server_device() {
    let p = plan(X509_FLEET);
    let (cert, key) = p.dtls.as_ref().unwrap().client.client_cert.clone().unwrap();
    assert!(cert.per_device() && key.per_device());
    assert_eq!(key.to_string(), "{pki}/devices/device-{index}.key");
    let out = run(p).await;
    let r = &out.report;
    assert_accounted(r);
    let h = r.handshakes.as_ref().expect("handshakes recorded");
    assert_eq!((h.attempted, h.ok, h.failed), (6, 6, 0), "{h:?}");
    assert!(r.total.sent >= 6 * 3, "{}", r.total.sent);
    assert_eq!(r.total.outcomes.ok, r.total.sent, "{:?}", r.total.outcomes);
    // The server's own records: six distinct devices, each named by its certificate, each posted.
    let mut server: Vec<(String, u64)> = out
        .server_devices
        .as_ref()
        .unwrap()
        .iter()
        .filter(|d| d.messages > 0)
        .map(|d| (d.token.clone(), d.messages))
        .collect();
    server.sort();
    let names: Vec<&str> = server.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["device-0", "device-1", "device-2", "device-3", "device-4", "device-5"]
    );
    for d in &out.devices {
        let (_, got) = &server[d.index as usize];
        assert!(
            *got >= d.ok && *got <= d.sent,
            "device {}: {got} vs {d:?}",
            d.index
        );
    }
    let accounting = r
        .checks
        .iter()
        .find(|c| c.name == "embedded server received every acknowledged message")
        .expect("the accounting check");
    assert!(accounting.passed, "{accounting:?}");
    assert_eq!(verdict::of(r), Verdict::Passed);
}

/// The contrast: the whole fleet presenting device 0's certificate is one device on the server, and a fleet
/// whose certificates are not registered is refused at the CoAP layer (4.01) over sessions that opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_fleet_sharing_one_certificate_is_one_device_and_unregistered_is_401() {
    let shared = X509_FLEET.replace("device-{index}.pem", "device-0.pem");
    let out = run(plan(&shared)).await;
    let posted = posted(&out);
    assert_eq!(posted, ["device-0"]);
    assert_eq!(out.report.total.outcomes.ok, out.report.total.sent);
    let accounting = out
        .report
        .checks
        .iter()
        .find(|c| c.name == "embedded server received every acknowledged message")
        .expect("the accounting check");
    assert!(accounting.passed, "{accounting:?}");
    assert!(
        accounting.expected.contains("1 server devices (6 devices)"),
        "{accounting:?}"
    );

    let unregistered = X509_FLEET.replace("    device_certs: \"{pki}/devices\"\n", "");
    let out = run(plan(&unregistered)).await;
    let r = &out.report;
    let h = r.handshakes.as_ref().expect("handshakes recorded");
    assert_eq!((h.ok, h.failed), (6, 0), "{h:?}");
    assert_eq!(r.total.outcomes.ok, 0, "{:?}", r.total.outcomes);
    assert_eq!(r.total.outcomes.coap_error, r.total.sent);
    assert!(!matches!(verdict::of(r), Verdict::Passed));
}

/// The same fleet from a PKI folder made beforehand (`certs --devices 3`, here through the library): three
/// devices run; a fourth has no certificate there, which validation says before anything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_fleet_from_a_certs_devices_folder() {
    let (tmp, _) = device_fleet(3);
    let yaml = X509_FLEET
        .replace("pki: generate", &format!("pki: {}", tmp.path().display()))
        .replace("count: 6", "count: 3");
    let out = run(plan(&yaml)).await;
    let posted = posted(&out).len();
    assert_eq!(posted, 3);
    assert_eq!(verdict::of(&out.report), Verdict::Passed);

    let too_many = yaml.replace("count: 3", "count: 4");
    let e = coap_harness::scenario::parse(
        &too_many,
        std::path::Path::new("x.yaml"),
        std::path::Path::new("."),
        "x",
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("x.yaml:")
            && e.contains("dtls.client_cert")
            && e.contains("device-3.pem does not exist"),
        "{e}"
    );
}

/// The same fleet with each device's certificate from the `cert,key` columns of the `devices.csv` that
/// `certs --devices 3` writes (the token file's CSV form), not from an `{index}` pattern: three devices, each
/// its own registered device on the server, every request 2.01.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_fleet_from_a_devices_csv_token_file() {
    let (tmp, _) = device_fleet(3);
    let csv = tmp.path().join("devices.csv");
    let yaml = X509_FLEET
        .replace("pki: generate", &format!("pki: {}", tmp.path().display()))
        .replace(
            "  count: 6\n",
            &format!("  count: 3\n  token_file: {}\n", csv.display()),
        )
        .replace("  client_cert: \"{pki}/devices/device-{index}.pem\"\n", "");
    let p = plan(&yaml);
    assert!(p.dtls.as_ref().unwrap().client.client_cert.is_none());
    let out = run(p).await;
    let posted = posted(&out);
    assert_eq!(posted, ["device-0", "device-1", "device-2"]);
    let h = out.report.handshakes.as_ref().expect("handshakes recorded");
    assert_eq!((h.ok, h.failed), (3, 0), "{h:?}");
    assert_eq!(out.report.total.outcomes.ok, out.report.total.sent);
    assert_eq!(verdict::of(&out.report), Verdict::Passed);
}

/// The server devices that posted, by name, in order.
fn posted(out: &coap_harness::app::RunOutput) -> Vec<&str> {
    let mut names: Vec<&str> = out
        .server_devices
        .as_ref()
        .expect("the embedded server's devices")
        .iter()
        .filter(|d| d.messages > 0)
        .map(|d| d.token.as_str())
        .collect();
    names.sort();
    names
}

/// A fleet folder from `certs --devices n` (the test PKI beside it), and the SHA-256 (hex) of each device's
/// certificate, as the server's records and the devices' tallies name certificates.
fn device_fleet(n: u64) -> (tempfile::TempDir, Vec<String>) {
    use sha2::Digest;
    let tmp = tempfile::tempdir().unwrap();
    coap_harness::pki::generate(&coap_harness::pki::PkiOptions {
        out: tmp.path().to_path_buf(),
        ..Default::default()
    })
    .unwrap();
    coap_harness::pki::fleet::generate_devices(tmp.path(), n, false).unwrap();
    let hashes = (0..n)
        .map(|i| {
            let pem = tmp.path().join(coap_harness::pki::fleet::device_cert(i));
            let der = coap_harness::pki::read_certs(&pem).unwrap().remove(0);
            coap_harness::server::cert_hex(&sha2::Sha256::digest(der).into())
        })
        .collect();
    (tmp, hashes)
}

/// Copies device `i`'s certificate and key of a fleet folder to `to`.pem/.key (`to` relative to the folder).
fn copy_device(dir: &std::path::Path, i: u64, to: &str) {
    let cert = dir.join(coap_harness::pki::fleet::device_cert(i));
    std::fs::create_dir_all(dir.join(to).parent().unwrap()).unwrap();
    std::fs::copy(&cert, dir.join(format!("{to}.pem"))).unwrap();
    std::fs::copy(cert.with_extension("key"), dir.join(format!("{to}.key"))).unwrap();
}

/// The X.509 fleet of `n` devices in `dir`, each device's certificate and key from `csv` (a token file's
/// `cert,key` columns), the server registering the certificates in `{pki}/{registered}`.
fn x509_fleet_from_csv(dir: &std::path::Path, n: u64, csv: &str, registered: &str) -> String {
    let file = dir.join("fleet.csv");
    std::fs::write(&file, csv).unwrap();
    X509_FLEET
        .replace("pki: generate", &format!("pki: {}", dir.display()))
        .replace(
            "  count: 6\n",
            &format!("  count: {n}\n  token_file: {}\n", file.display()),
        )
        .replace("  client_cert: \"{pki}/devices/device-{index}.pem\"\n", "")
        .replace("{pki}/devices\"", &format!("{{pki}}/{registered}\""))
}

fn accounting(r: &coap_harness::report::Report) -> &coap_harness::report::Check {
    r.checks
        .iter()
        .find(|c| c.name == "embedded server received every acknowledged message")
        .expect("the accounting check")
}

/// The accounting check keys X.509 devices by the certificate each presented, and the server's device by the
/// certificate each accepted post came with, not by file names: devices whose certificate files are named
/// against the `device-{i}` convention (one not at all like it, two swapped) account correctly, each the
/// server device its certificate is registered as.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_accounting_follows_the_certificate_not_its_file_name() {
    let (tmp, hashes) = device_fleet(3);
    let dir = tmp.path();
    copy_device(dir, 0, "named/meter-a");
    copy_device(dir, 1, "named/device-2");
    copy_device(dir, 2, "named/device-1");
    let csv =
        "cert,key\nnamed/meter-a.pem,named/meter-a.key\nnamed/device-2.pem,named/device-2.key\n\
               named/device-1.pem,named/device-1.key\n";
    let out = run(plan(&x509_fleet_from_csv(dir, 3, csv, "devices"))).await;
    let r = &out.report;
    let check = accounting(r);
    assert!(check.passed, "{check:?}");
    assert_eq!(check.observed, "3 devices consistent", "{check:?}");
    assert_eq!(r.total.outcomes.ok, r.total.sent, "{:?}", r.total.outcomes);
    // Each device presented its own certificate; the server recorded that certificate, and only it, on
    // the device the certificate is registered as (device-i holds device i's certificate).
    for d in &out.devices {
        let hash = coap_harness::server::cert_hex(&d.certificate.expect("a certificate"));
        assert_eq!(hash, hashes[d.index as usize], "device {}", d.index);
        let name = format!("device-{}", d.index);
        let on = out
            .server_devices
            .as_ref()
            .unwrap()
            .iter()
            .find(|s| s.token == name)
            .expect("the registered device posted");
        assert_eq!(
            on.certificates.keys().collect::<Vec<_>>(),
            [&hash],
            "{on:?}"
        );
        assert!(on.messages >= d.ok && on.messages <= d.sent, "{on:?} {d:?}");
    }
    assert_eq!(verdict::of(r), Verdict::Passed);
}

/// A server that takes two devices' certificates for one device (here two files registering as `meter`)
/// is caught: every post is accepted (2.01) and the counts add up, yet the accounting check fails naming
/// the server device and both devices' certificates. (Keyed by file stems, both devices were `meter` too,
/// and the check passed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_accounting_flags_two_certificates_taken_for_one_device() {
    let (tmp, hashes) = device_fleet(2);
    let dir = tmp.path();
    copy_device(dir, 0, "registered/meter");
    copy_device(dir, 1, "keys/meter");
    std::fs::rename(dir.join("keys/meter.pem"), dir.join("registered/meter.crt")).unwrap();
    let csv = "cert,key\nregistered/meter.pem,registered/meter.key\nregistered/meter.crt,keys/meter.key\n";
    let out = run(plan(&x509_fleet_from_csv(dir, 2, csv, "registered"))).await;
    let r = &out.report;
    assert_eq!(r.total.outcomes.ok, r.total.sent, "{:?}", r.total.outcomes);
    let posted = posted(&out);
    assert_eq!(posted, ["meter"]);
    let check = accounting(r);
    assert!(!check.passed, "{check:?}");
    assert!(
        check
            .observed
            .contains("server device `meter` took the certificates of device 0")
            && check.observed.contains(&hashes[0][..16])
            && check.observed.contains(&hashes[1][..16]),
        "{check:?}"
    );
    assert!(matches!(verdict::of(r), Verdict::Failed(_)));
}

// ---- handshake churn and reconnect storms (issue #15 item 5) ----

const CHURN_FLEET: &str = r#"
target: embedded
pki: generate
devices:
  count: 5
dtls:
  ca: pki:ca
  handshake_timeout: 5s
  rehandshake_every: 5
phases:
  - duration: 2s
    interval: 100ms
"#;

fn cause_counts(d: &coap_harness::engine::DeviceTally) -> (usize, usize) {
    use coap_harness::engine::device::HandshakeCause as C;
    let of = |c: C| d.rehandshakes.iter().filter(|h| h.cause == c).count();
    (of(C::Churn), of(C::Reconnect))
}

/// `rehandshake_every: 5`: after every 5th request a device closes its session (close_notify) and opens a
/// new one; requests keep succeeding (none is lost to the churn), and the report counts the churn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_every_n_requests_opens_a_new_session_each_time() {
    let out = run(plan(CHURN_FLEET)).await;
    let r = &out.report;
    assert_accounted(r);
    assert_eq!(r.total.outcomes.ok, r.total.sent, "{:?}", r.total.outcomes);
    let mut churned = 0;
    for d in &out.devices {
        let (churn, reconnect) = cause_counts(d);
        assert_eq!(reconnect, 0, "{d:?}");
        // A new session after requests 5, 10, ... unless that request was the device's last.
        let expected = (d.sent as usize).saturating_sub(1) / 5;
        assert_eq!(churn, expected, "device {} sent {}", d.index, d.sent);
        assert!(
            d.rehandshakes.iter().all(|h| h.verdict.connected()),
            "{d:?}"
        );
        churned += churn;
    }
    assert!(churned >= 5, "{churned}");
    let h = r.handshakes.as_ref().unwrap();
    assert_eq!(h.churn, churned as u64, "{h:?}");
    assert_eq!(h.reconnects, 0);
    assert_eq!(
        (h.attempted, h.ok),
        (5 + churned as u64, 5 + churned as u64)
    );
    let per_second: u64 = h.per_second.iter().map(|p| p.ok + p.failed).sum();
    assert_eq!(per_second, h.attempted, "{:?}", h.per_second);
    // The server saw each churned session end with the client's close_notify.
    let dtls = r.server.as_ref().unwrap().dtls.as_ref().unwrap();
    assert_eq!(dtls.handshakes_ok, h.ok, "{dtls:?}");
    assert!(dtls.closed >= churned as u64, "{dtls:?}");
    let md = coap_harness::report::markdown::render(r);
    assert!(
        md.contains(&format!("0 after a lost session, {churned} for churn")),
        "{md}"
    );
}

/// `rehandshake_every: 400ms`: the session's age, not its requests, triggers the new handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_by_session_age() {
    let yaml = CHURN_FLEET.replace("rehandshake_every: 5", "rehandshake_every: 400ms");
    let out = run(plan(&yaml)).await;
    let r = &out.report;
    assert_accounted(r);
    assert_eq!(r.total.outcomes.ok, r.total.sent, "{:?}", r.total.outcomes);
    for d in &out.devices {
        let (churn, _) = cause_counts(d);
        assert!(
            churn >= 1,
            "a 2 s schedule outlives a 400 ms session: {d:?}"
        );
    }
    assert!(r.handshakes.as_ref().unwrap().churn >= 5);
}

/// The storm: `embedded.restart_at` makes the embedded server forget every DTLS session at once, silently.
/// Devices find out when their requests go unanswered and reconnect; the report has the handshakes per
/// second (first connects, then the reconnects after the restart), the error window and the recovery.
fn storm(extra_devices: &str, restart_at: &str, duration: &str) -> String {
    format!(
        "target: embedded\nembedded:\n  restart_at: {restart_at}\n  restart_down: 300ms\npki: generate\n\
         devices:\n  count: 20\n{extra_devices}dtls:\n  ca: pki:ca\n  handshake_timeout: 3s\n\
         coap:\n  ack_timeout: 200ms\n  ack_random_factor: 1.0\n  max_retransmit: 1\n\
         health: off\nphases:\n  - duration: {duration}\n    interval: 100ms\ndrain: 1s\n"
    )
}

fn assert_storm_recovered(out: &coap_harness::app::RunOutput, restart_s: f64) {
    let r = &out.report;
    assert_accounted(r);
    let dtls = r.server.as_ref().unwrap().dtls.as_ref().unwrap();
    assert_eq!(dtls.restarts, 1, "{dtls:?}");
    assert_eq!(dtls.sessions_dropped_by_restart, 20, "{dtls:?}");
    let h = r.handshakes.as_ref().unwrap();
    assert_eq!(h.failed, 0, "{h:?}");
    assert_eq!(h.churn, 0);
    assert_eq!(h.reconnects, 20, "each device reconnected once: {h:?}");
    for d in &out.devices {
        let first = d.handshake.as_ref().unwrap();
        let again = &d.rehandshakes[0];
        assert!(first.at.as_secs_f64() < restart_s, "{d:?}");
        assert!(again.at.as_secs_f64() > restart_s, "{d:?}");
        assert!(d.ok > 0 && d.ok < d.sent, "{d:?}");
    }
    // Errors in the window, then recovery, all in the report.
    let o = &r.total.outcomes;
    assert!(o.session_closed + o.timeout > 0, "{o:?}");
    let rec = r.recovery.as_ref().expect("an error window");
    assert!(rec.recovered_at_s.is_some(), "{rec:?} {:?}", r.timeseries);
    assert!(rec.first_error_s as f64 >= restart_s.floor(), "{rec:?}");
    let reconnect_seconds: Vec<u64> = h
        .per_second
        .iter()
        .filter(|p| p.t as f64 >= restart_s.floor())
        .map(|p| p.t)
        .collect();
    assert!(!reconnect_seconds.is_empty(), "{:?}", h.per_second);
    let html = coap_harness::report::html::render(r);
    assert!(html.contains("data-chart=\"handshakes-over-time\""));
    assert!(html.contains("id=\"handshake-rate\""));
    let md = coap_harness::report::markdown::render(r);
    assert!(md.contains("| second | handshakes ok | failed |"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_storm_unpaced_every_device_reconnects() {
    let out = run(plan(&storm("", "1500ms", "5s"))).await;
    assert_storm_recovered(&out, 1.5);
}

/// Paced: `devices.connect_rate: 10/s` holds reconnects to one slot every 100 ms across the fleet, so the
/// 20 reconnects are spread over at least 1.9 s (19 gaps) from the first slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_storm_paced_by_connect_rate() {
    let out = run(plan(&storm("  connect_rate: 10/s\n", "3s", "8s"))).await;
    assert_storm_recovered(&out, 3.0);
    let mut ends: Vec<f64> = out
        .devices
        .iter()
        .map(|d| d.rehandshakes[0].at.as_secs_f64())
        .collect();
    ends.sort_by(f64::total_cmp);
    // The k-th reconnect cannot start before k slots after the first one started (and the first ended
    // one handshake after its slot): at least 19 gaps minus one handshake's time between first and last.
    let slowest = out
        .devices
        .iter()
        .map(|d| d.rehandshakes[0].elapsed.as_secs_f64())
        .fold(0.0, f64::max);
    assert!(
        ends[19] - ends[0] >= 1.9 - slowest,
        "reconnects ended at {ends:?} (slowest handshake {slowest}s)"
    );
}

/// The shipped storm scenario validates.
#[test]
fn the_reconnect_storm_scenario_validates() {
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/reconnect-storm.yaml");
    let p = plan(&std::fs::read_to_string(&file).unwrap());
    assert!(matches!(
        p.target,
        coap_harness::scenario::Target::Embedded {
            restart: Some(_),
            ..
        }
    ));
    assert!(p.devices.connect_rate.is_some());
}
