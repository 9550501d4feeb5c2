//! The generated test PKI: files and modes, the manifest, idempotency, the readers, and an independent check of
//! every good and bad certificate with the `openssl` CLI (required in CI; skipped loudly elsewhere if missing).

use coap_harness::pki::{
    self, check_key_permissions, load_manifest, read_certs, read_key, Generated, PkiError,
    PkiOptions, Role, SignedBy, TrustVerdict, MANIFEST_FILE,
};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

const EXTRA_HOSTS: [&str; 2] = ["tb.example.com", "10.1.2.3"];
const DAY: u64 = 86_400;

fn options(out: &Path, hosts: &[&str], force: bool) -> PkiOptions {
    PkiOptions {
        out: out.to_path_buf(),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        force,
    }
}

/// A fresh PKI for the extra hosts, in a temporary folder.
fn fresh() -> (TempDir, Generated) {
    let dir = tempfile::tempdir().unwrap();
    let generated = pki::generate(&options(dir.path(), &EXTRA_HOSTS, false)).unwrap();
    assert!(!generated.kept_existing);
    (dir, generated)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file in the folder, by name, with its bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// The (first) certificate of a file as x509-parser, through rcgen, reads it.
fn parsed(path: &Path) -> rcgen::CertificateParams {
    let der = read_certs(path).unwrap().remove(0);
    rcgen::CertificateParams::from_ca_cert_der(&der.into())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// How the manifest states a time.
fn rfc3339(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn sans(params: &rcgen::CertificateParams) -> Vec<String> {
    params
        .subject_alt_names
        .iter()
        .map(|san| match san {
            rcgen::SanType::DnsName(name) => name.as_str().to_string(),
            rcgen::SanType::IpAddress(ip) => ip.to_string(),
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect()
}

#[test]
fn every_listed_file_exists_with_its_mode_and_parses() {
    let (_dir, g) = fresh();
    let m = &g.manifest;
    assert_eq!(m.roles().len(), Role::ALL.len());
    for role in Role::ALL {
        let (cert, key) = m.path(role);
        assert_eq!(cert, g.dir.join(role.cert_file()));
        // Owner read/write; group and other may read certificates (as the umask allows), never write them.
        assert_eq!(mode(&cert) & 0o733, 0o600, "{}", cert.display());
        assert_eq!(mode(&key), 0o600, "{}", key.display());
        check_key_permissions(&key).unwrap();
        let key_pem = fs::read_to_string(&key).unwrap();
        assert!(
            key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "{key_pem}"
        );

        let certs = read_certs(&cert).unwrap();
        let expected = if role == Role::ServerChain { 2 } else { 1 };
        assert_eq!(certs.len(), expected, "{role}");
        // The key is the certificate's: its public half (SPKI DER) is inside the certificate.
        let spki = read_key(&key).unwrap().public_key_der();
        assert!(
            certs[0].windows(spki.len()).any(|w| w == spki),
            "{role}: key does not match"
        );

        let params = parsed(&cert);
        let entry = m.entry(role);
        assert_eq!(entry.role, role);
        assert_eq!(
            (entry.cert.as_str(), entry.key.as_str()),
            (role.cert_file(), role.key_file())
        );
        assert_eq!(entry.valid_from, rfc3339(params.not_before), "{role}");
        assert_eq!(entry.valid_until, rfc3339(params.not_after), "{role}");
        assert_eq!(entry.sans, sans(&params), "{role}");
        let is_ca = matches!(params.is_ca, rcgen::IsCa::Ca(_));
        assert_eq!(
            is_ca,
            matches!(role, Role::CaRoot | Role::UnknownCa),
            "{role}"
        );
    }
    assert_eq!(
        read_certs(&m.cert_path(Role::ServerChain)).unwrap(),
        [
            read_certs(&m.cert_path(Role::Server)).unwrap(),
            read_certs(&m.cert_path(Role::CaRoot)).unwrap()
        ]
        .concat()
    );
}

#[test]
fn manifest_records_hosts_issuers_verdicts_and_expectations() {
    let (dir, g) = fresh();
    assert_eq!(load_manifest(dir.path()).unwrap(), g.manifest);
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(
        json["hosts"],
        serde_json::json!([
            "localhost",
            "127.0.0.1",
            "::1",
            "tb.example.com",
            "10.1.2.3"
        ])
    );
    assert!(json["generated_at"].as_str().unwrap().ends_with('Z'));
    let expired = &json["roles"][6];
    assert_eq!(expired["role"], "expired_server");
    assert_eq!(expired["cert"], "expired-server.pem");
    assert_eq!(expired["key"], "expired-server.key");
    assert_eq!(expired["signed_by"], "ca");
    assert_eq!(expired["verdict"], "expired");
    assert_eq!(expired["expect"], "handshake fails: certificate expired");

    let m = &g.manifest;
    assert_eq!(m.entry(Role::RogueClient).signed_by, SignedBy::UnknownCa);
    assert_eq!(
        m.entry(Role::SelfSignedServer).signed_by,
        SignedBy::SelfSigned
    );
    assert_eq!(
        m.entry(Role::WrongHostServer).verdict,
        TrustVerdict::HostnameMismatch
    );
    assert_eq!(m.entry(Role::WrongHostServer).sans, ["wrong.example"]);
    assert_eq!(m.entry(Role::Client).subject_cn, "coap-harness device");
    assert_eq!(
        m.entry(Role::CaRoot).subject_cn,
        "coap-harness test root CA"
    );
    for role in Role::ALL {
        let entry = m.entry(role);
        assert!(
            !entry.description.is_empty() && !entry.expect.contains('\n'),
            "{role}"
        );
    }
}

#[test]
fn extra_hosts_appear_in_server_sans() {
    let (_dir, g) = fresh();
    let m = &g.manifest;
    let all = [
        "localhost",
        "127.0.0.1",
        "::1",
        "tb.example.com",
        "10.1.2.3",
    ];
    for role in [
        Role::Server,
        Role::UnknownServer,
        Role::ExpiredServer,
        Role::NotYetValidServer,
        Role::SelfSignedServer,
    ] {
        assert_eq!(sans(&parsed(&m.cert_path(role))), all, "{role}");
        assert_eq!(m.entry(role).subject_cn, "localhost", "{role}");
    }
    assert_eq!(
        sans(&parsed(&m.cert_path(Role::WrongHostServer))),
        ["wrong.example"]
    );

    if !openssl_available() {
        return;
    }
    // OpenSSL 3.0 prints the SAN extension's name, then its value indented on the next line.
    let out = openssl(
        &g.dir,
        &[
            "x509",
            "-in",
            "server.pem",
            "-noout",
            "-ext",
            "subjectAltName",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let value = text(&out)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_string();
    assert_eq!(
        value,
        "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, \
         DNS:tb.example.com, IP Address:10.1.2.3"
    );
}

#[test]
fn second_generate_keeps_files_byte_identical_and_force_regenerates_them() {
    let (dir, first) = fresh();
    let before = snapshot(dir.path());
    assert_eq!(before.len(), 24, "12 certificates, 11 keys, the manifest");

    let again = pki::generate(&options(dir.path(), &EXTRA_HOSTS, false)).unwrap();
    assert!(again.kept_existing);
    assert_eq!(again.manifest, first.manifest);
    assert_eq!(snapshot(dir.path()), before);

    // Forced regeneration replaces every file, and puts a loosened key back to 0600.
    let server_key = dir.path().join("server.key");
    fs::set_permissions(&server_key, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(check_key_permissions(&server_key).unwrap_err().is_warning());
    let forced = pki::generate(&options(dir.path(), &EXTRA_HOSTS, true)).unwrap();
    assert!(!forced.kept_existing);
    let after = snapshot(dir.path());
    assert_eq!(after.len(), before.len());
    for ((name, old), (name_after, new)) in before.iter().zip(&after) {
        assert_eq!(name, name_after);
        if name != MANIFEST_FILE {
            assert_ne!(old, new, "{name} was not regenerated");
        }
    }
    assert_eq!(mode(&server_key), 0o600);
}

#[test]
fn partial_folder_without_force_is_incomplete_naming_the_missing_file() {
    let (dir, _) = fresh();
    fs::remove_file(dir.path().join("client.key")).unwrap();
    fs::remove_file(dir.path().join("rogue-client.pem")).unwrap();
    let before = snapshot(dir.path());

    let err = pki::generate(&options(dir.path(), &EXTRA_HOSTS, false)).unwrap_err();
    match &err {
        PkiError::Incomplete { missing } => assert_eq!(missing, &dir.path().join("client.key")),
        other => panic!("expected Incomplete, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("client.key") && msg.contains("--force"),
        "{msg}"
    );
    assert_eq!(snapshot(dir.path()), before, "nothing is touched");

    let forced = pki::generate(&options(dir.path(), &EXTRA_HOSTS, true)).unwrap();
    assert!(!forced.kept_existing);
    assert!(dir.path().join("client.key").exists() && dir.path().join("rogue-client.pem").exists());
}

#[test]
fn folder_without_manifest_is_incomplete() {
    let (dir, _) = fresh();
    fs::remove_file(dir.path().join(MANIFEST_FILE)).unwrap();
    let err = pki::generate(&options(dir.path(), &EXTRA_HOSTS, false)).unwrap_err();
    assert!(
        matches!(&err, PkiError::Incomplete { missing } if missing.ends_with(MANIFEST_FILE)),
        "{err}"
    );
}

#[test]
fn unrelated_files_do_not_count_and_a_missing_folder_is_created() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("README.md"), "# certs\n").unwrap();
    assert!(
        !pki::generate(&options(dir.path(), &[], false))
            .unwrap()
            .kept_existing
    );
    let nested = dir.path().join("a/b");
    let g = pki::generate(&options(&nested, &[], false)).unwrap();
    assert!(g.manifest.cert_path(Role::CaRoot).starts_with(&nested));
    assert!(nested.join("ca.key").exists());
}

#[test]
fn read_key_on_a_missing_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.key");
    let err = read_key(&path).unwrap_err();
    assert!(
        matches!(&err, PkiError::Io { path: p, .. } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    let err = read_certs(&dir.path().join("absent.pem")).unwrap_err();
    assert!(err.to_string().contains("absent.pem"), "{err}");
}

#[test]
fn read_key_on_a_non_pem_file_is_bad_pem_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.key");
    fs::write(&path, "this is not a key\n").unwrap();
    let err = read_key(&path).unwrap_err();
    assert!(
        matches!(&err, PkiError::BadPem { path: p, .. } if p == &path),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&*path.to_string_lossy()) && !msg.contains('\n'),
        "{msg}"
    );

    // A certificate is not a key, nor a key a certificate.
    let (pki_dir, g) = fresh();
    let err = read_key(&g.manifest.cert_path(Role::Server)).unwrap_err();
    assert!(err.to_string().contains("server.pem"), "{err}");
    let err = read_certs(&g.manifest.key_path(Role::Server)).unwrap_err();
    assert!(matches!(err, PkiError::BadPem { .. }), "{err}");
    drop(pki_dir);
}

// ---- the openssl CLI as an independent verifier ----

/// Whether the `openssl` CLI can be run: required when CI is set, otherwise a missing one skips loudly.
fn openssl_available() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("the openssl CLI is required in CI (apt-get install openssl)");
        }
        eprintln!("SKIPPED: openssl CLI not installed (apt-get install openssl)");
    }
    found
}

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `openssl verify ARGS` in `dir` must succeed.
fn verifies(dir: &Path, args: &[&str]) {
    let out = openssl(dir, &[&["verify"], args].concat());
    let said = text(&out);
    assert!(
        out.status.success() && said.contains(": OK"),
        "openssl verify {}: {said}",
        args.join(" ")
    );
}

/// `openssl verify ARGS` in `dir` must fail, saying one of `reasons`.
fn refuses(dir: &Path, args: &[&str], reasons: &[&str]) {
    let out = openssl(dir, &[&["verify"], args].concat());
    let said = text(&out);
    assert!(
        !out.status.success(),
        "openssl verify {} passed: {said}",
        args.join(" ")
    );
    assert!(
        reasons.iter().any(|r| said.contains(r)),
        "openssl verify {}: expected one of {reasons:?}, got: {said}",
        args.join(" ")
    );
}

/// Seconds since the epoch, `days` from now, for `openssl verify -attime`.
fn at_days(days: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    now.saturating_add_signed(days * DAY as i64).to_string()
}

#[test]
fn openssl_accepts_the_good_certificates() {
    if !openssl_available() {
        return;
    }
    let (_dir, g) = fresh();
    let d = g.dir.as_path();
    verifies(d, &["-CAfile", "ca.pem", "server.pem"]);
    verifies(
        d,
        &["-CAfile", "ca.pem", "-purpose", "sslserver", "server.pem"],
    );
    verifies(
        d,
        &[
            "-CAfile",
            "ca.pem",
            "-verify_hostname",
            "localhost",
            "server.pem",
        ],
    );
    verifies(
        d,
        &["-CAfile", "ca.pem", "-verify_ip", "127.0.0.1", "server.pem"],
    );
    verifies(d, &["-CAfile", "ca.pem", "-verify_ip", "::1", "server.pem"]);
    verifies(
        d,
        &[
            "-CAfile",
            "ca.pem",
            "-verify_hostname",
            "tb.example.com",
            "server.pem",
        ],
    );
    verifies(
        d,
        &["-CAfile", "ca.pem", "-verify_ip", "10.1.2.3", "server.pem"],
    );
    verifies(
        d,
        &[
            "-CAfile",
            "ca.pem",
            "-untrusted",
            "server-chain.pem",
            "server-chain.pem",
        ],
    );
    verifies(d, &["-CAfile", "ca.pem", "client.pem"]);
    verifies(
        d,
        &["-CAfile", "ca.pem", "-purpose", "sslclient", "client.pem"],
    );
    // Each certificate is for its side only (EKU).
    refuses(
        d,
        &["-CAfile", "ca.pem", "-purpose", "sslclient", "server.pem"],
        &["unsuitable certificate purpose"],
    );
    refuses(
        d,
        &["-CAfile", "ca.pem", "-purpose", "sslserver", "client.pem"],
        &["unsuitable certificate purpose"],
    );
}

#[test]
fn openssl_refuses_each_bad_certificate_for_its_reason() {
    if !openssl_available() {
        return;
    }
    let (_dir, g) = fresh();
    let d = g.dir.as_path();
    const UNKNOWN_ISSUER: &[&str] = &["unable to get local issuer certificate"];
    refuses(
        d,
        &["-CAfile", "ca.pem", "unknown-server.pem"],
        UNKNOWN_ISSUER,
    );
    refuses(
        d,
        &["-CAfile", "ca.pem", "expired-server.pem"],
        &["certificate has expired"],
    );
    refuses(
        d,
        &["-CAfile", "ca.pem", "notyet-server.pem"],
        &["certificate is not yet valid"],
    );
    refuses(
        d,
        &[
            "-CAfile",
            "ca.pem",
            "-verify_hostname",
            "localhost",
            "wronghost-server.pem",
        ],
        &["hostname mismatch"],
    );
    refuses(
        d,
        &[
            "-CAfile",
            "ca.pem",
            "-verify_ip",
            "127.0.0.1",
            "wronghost-server.pem",
        ],
        &["IP address mismatch"],
    );
    refuses(
        d,
        &["-CAfile", "ca.pem", "selfsigned-server.pem"],
        &["self-signed certificate", "self signed certificate"],
    );
    refuses(
        d,
        &["-CAfile", "ca.pem", "rogue-client.pem"],
        UNKNOWN_ISSUER,
    );
    refuses(
        d,
        &["-CAfile", "ca.pem", "expired-client.pem"],
        &["certificate has expired"],
    );
    // The unknown CA really is unrelated: the real server is unknown to a peer that trusts only it.
    refuses(
        d,
        &["-CAfile", "unknown-ca.pem", "server.pem"],
        UNKNOWN_ISSUER,
    );
}

/// Each bad certificate is bad for its one reason only: remove that reason and it verifies.
#[test]
fn openssl_finds_each_bad_certificate_otherwise_sound() {
    if !openssl_available() {
        return;
    }
    let (_dir, g) = fresh();
    let d = g.dir.as_path();
    let ten_days_ago = at_days(-10);
    let in_sixty_days = at_days(60);
    verifies(
        d,
        &[
            "-CAfile",
            "unknown-ca.pem",
            "-verify_hostname",
            "localhost",
            "unknown-server.pem",
        ],
    );
    verifies(
        d,
        &[
            "-CAfile",
            "unknown-ca.pem",
            "-purpose",
            "sslclient",
            "rogue-client.pem",
        ],
    );
    verifies(
        d,
        &[
            "-CAfile",
            "ca.pem",
            "-attime",
            &ten_days_ago,
            "-verify_ip",
            "::1",
            "expired-server.pem",
        ],
    );
    verifies(
        d,
        &[
            "-CAfile",
            "ca.pem",
            "-attime",
            &ten_days_ago,
            "-purpose",
            "sslclient",
            "expired-client.pem",
        ],
    );
    verifies(
        d,
        &[
            "-CAfile",
            "ca.pem",
            "-attime",
            &in_sixty_days,
            "-verify_hostname",
            "localhost",
            "notyet-server.pem",
        ],
    );
    verifies(
        d,
        &[
            "-CAfile",
            "ca.pem",
            "-verify_hostname",
            "wrong.example",
            "wronghost-server.pem",
        ],
    );
    verifies(
        d,
        &[
            "-CAfile",
            "selfsigned-server.pem",
            "-verify_ip",
            "127.0.0.1",
            "selfsigned-server.pem",
        ],
    );
}

/// `certs --devices N`: N device certificates signed by the device CA (openssl verifies each against it; the
/// expired one fails as expired), keys 0600, `devices.csv` in the CSV token-file format, and the rules for
/// running it again.
#[test]
fn certs_devices_writes_the_fleet_and_its_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let certs = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_coap-harness"))
            .arg("certs")
            .arg("--out")
            .arg(dir)
            .args(args)
            .output()
            .unwrap()
    };
    let out = certs(&["--devices", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("generated 3 device certificates"),
        "{stdout}"
    );
    assert!(stdout.contains("--device-certs"), "{stdout}");
    let csv = fs::read_to_string(dir.join("devices.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("token,psk_identity,psk_key,cert,key"));
    let dir = fs::canonicalize(dir).unwrap();
    for i in 0..3 {
        let cert = dir.join(format!("devices/device-{i}.pem"));
        let key = dir.join(format!("devices/device-{i}.key"));
        assert_eq!(
            lines.next().unwrap(),
            format!(",,,{},{}", cert.display(), key.display())
        );
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&cert), 0o644);
        assert!(fs::read_to_string(&cert)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
    }
    assert_eq!(lines.next(), None);
    for key in [
        "device-ca.key",
        "device-unregistered.key",
        "devices/device-expired.key",
    ] {
        assert_eq!(mode(&dir.join(key)), 0o600, "{key}");
    }
    if common_openssl() {
        let verify = |cert: &str| {
            let o = Command::new("openssl")
                .args(["verify", "-CAfile"])
                .arg(dir.join("device-ca.pem"))
                .arg(dir.join(cert))
                .output()
                .unwrap();
            (
                o.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            )
        };
        for cert in [
            "devices/device-0.pem",
            "devices/device-2.pem",
            "device-unregistered.pem",
        ] {
            let (ok, text) = verify(cert);
            assert!(ok, "{cert}: {text}");
        }
        let (ok, text) = verify("devices/device-expired.pem");
        assert!(!ok && text.contains("expired"), "{text}");
        let (ok, _) = verify("client.pem");
        assert!(
            !ok,
            "the root CA's client certificate is not the device CA's"
        );
    }
    // Again with the same size: kept; another size needs --force; 0 is refused.
    let again = certs(&["--devices", "3"]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("kept the existing 3 device certificates")
    );
    let other = certs(&["--devices", "2"]);
    assert_eq!(other.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&other.stderr).contains("--force"));
    let zero = certs(&["--devices", "0"]);
    assert_eq!(zero.status.code(), Some(2));
}

fn common_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}
