//! An independent PKI made with the `openssl` command line at test time (never rcgen), and OpenSSL's own
//! DTLS server and client as the oracle for server-certificate verdicts: `openssl s_server -dtls1_2` serves one
//! certificate, `openssl s_client -dtls1_2 -verify_return_error -verify_hostname localhost` judges it.
//!
//! [`OpensslPki::make`] writes, in a temporary folder: a root CA (`ca`) and an unrelated one (`other-ca`), both
//! P-256; keys in each format users' tools write (PKCS#8 `genpkey`, SEC1 with and without the `EC PARAMETERS`
//! block from `ecparam -genkey`, PKCS#1 RSA from `genrsa -traditional`, Ed25519); and one server certificate per
//! case of [`SERVER_CERTS`]. Every process is bounded (`timeout`, `-naccept`) and killed on drop.
#![allow(dead_code)]

use super::Peer;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether the `openssl` CLI can be run: required when CI is set, otherwise a missing one skips loudly.
pub fn available() -> bool {
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

/// One server certificate the oracle judges: its files in the PKI folder and what it is.
#[derive(Clone, Copy, Debug)]
pub struct ServedCert {
    /// Stable case name (the oracle table's first column).
    pub name: &'static str,
    /// The leaf certificate.
    pub cert: &'static str,
    /// Intermediates sent after the leaf (`s_server -cert_chain`).
    pub chain: Option<&'static str>,
    /// The leaf's private key.
    pub key: &'static str,
    /// OpenSSL refuses to even load it at its default security level (SHA-1, RSA-1024): the server runs with
    /// `@SECLEVEL=0`; the judging client keeps its defaults.
    pub legacy: bool,
    pub about: &'static str,
}

const fn served(
    name: &'static str,
    cert: &'static str,
    key: &'static str,
    about: &'static str,
) -> ServedCert {
    ServedCert {
        name,
        cert,
        chain: None,
        key,
        legacy: false,
        about,
    }
}

/// Every server certificate of the PKI, good ones first.
pub const SERVER_CERTS: &[ServedCert] = &[
    served(
        "p256",
        "p256.pem",
        "p256.key",
        "P-256 leaf, PKCS#8 key (genpkey)",
    ),
    served(
        "p256_sec1",
        "p256-sec1.pem",
        "p256-sec1.key",
        "P-256 leaf, SEC1 key with EC PARAMETERS (ecparam -genkey)",
    ),
    served(
        "rsa2048",
        "rsa2048.pem",
        "rsa2048.key",
        "RSA-2048 leaf, PKCS#1 key (genrsa -traditional)",
    ),
    served(
        "p384",
        "p384.pem",
        "p384.key",
        "P-384 leaf, SEC1 key (ecparam -genkey)",
    ),
    ServedCert {
        chain: Some("int384.pem"),
        ..served(
            "p256_under_p384",
            "chain-leaf.pem",
            "p256.key",
            "P-256 leaf signed (SHA-384) by a P-384 intermediate",
        )
    },
    served(
        "cn_only",
        "cn-only.pem",
        "p256.key",
        "CN=localhost, no subjectAltName",
    ),
    served(
        "expired",
        "expired.pem",
        "p256.key",
        "validity ended in 2020",
    ),
    served(
        "not_yet_valid",
        "not-yet-valid.pem",
        "p256.key",
        "validity starts in 2099",
    ),
    served(
        "wrong_host",
        "wrong-host.pem",
        "p256.key",
        "for wrong.example only",
    ),
    served(
        "self_signed",
        "self-signed.pem",
        "p256.key",
        "signed by its own key",
    ),
    served(
        "unknown_ca",
        "unknown-ca.pem",
        "p256.key",
        "signed by an unrelated CA",
    ),
    served(
        "wrong_eku",
        "wrong-eku.pem",
        "p256.key",
        "extendedKeyUsage clientAuth only",
    ),
    ServedCert {
        chain: Some("not-ca-int.pem"),
        ..served(
            "issuer_not_a_ca",
            "issuer-not-ca.pem",
            "p256.key",
            "issued by a certificate with CA:FALSE",
        )
    },
    served(
        "ca_as_leaf",
        "ca-as-leaf.pem",
        "p256.key",
        "the server's certificate is a CA (CA:TRUE)",
    ),
    ServedCert {
        chain: Some("path-int2.pem"),
        ..served(
            "path_length",
            "path-length.pem",
            "p256.key",
            "under two intermediates, the upper one pathlen:0",
        )
    },
    ServedCert {
        chain: Some("nc-int.pem"),
        ..served(
            "name_constraints",
            "name-constraints.pem",
            "p256.key",
            "intermediate permits DNS:example.com only",
        )
    },
    served(
        "critical_extension",
        "critical-ext.pem",
        "p256.key",
        "an unknown extension marked critical",
    ),
    ServedCert {
        legacy: true,
        ..served(
            "sha1",
            "sha1.pem",
            "p256.key",
            "signed with ecdsa-with-SHA1",
        )
    },
    ServedCert {
        legacy: true,
        ..served("rsa1024", "rsa1024.pem", "rsa1024.key", "RSA-1024 leaf")
    },
];

/// A PKI made by the openssl CLI in a temporary folder.
pub struct OpensslPki {
    dir: tempfile::TempDir,
}

const CA_CNF: &str = "[ca]\ndefault_ca = CA_default\n[CA_default]\ndir = .\ndatabase = index.txt\n\
new_certs_dir = newcerts\nserial = serial\ndefault_md = sha256\npolicy = policy_any\nunique_subject = no\n\
[policy_any]\ncommonName = supplied\n";
const SAN: &str = "subjectAltName = DNS:localhost,IP:127.0.0.1";
const LEAF: &str =
    "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n\
extendedKeyUsage = serverAuth";
const CA_EXT: &str = "basicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign";

impl OpensslPki {
    /// Makes every key and certificate (a few seconds: RSA key generation dominates).
    pub fn make() -> Self {
        let pki = OpensslPki {
            dir: tempfile::tempdir().unwrap(),
        };
        pki.write("ca.cnf", CA_CNF);
        pki.write("index.txt", "");
        pki.write("serial", "01\n");
        fs::create_dir(pki.path("newcerts")).unwrap();
        for (name, cn) in [("ca", "Oracle Root"), ("other-ca", "Oracle Other Root")] {
            pki.openssl(&[
                "req",
                "-x509",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-subj",
                &format!("/CN={cn}"),
                "-days",
                "3650",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]);
        }
        // Keys, in the formats users' tools write.
        let ec8 = |out: &str, curve: &str| {
            pki.openssl(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                &format!("ec_paramgen_curve:{curve}"),
                "-out",
                out,
            ])
        };
        ec8("p256.key", "P-256");
        for int in ["not-ca-int", "nc-int", "path-int1", "path-int2"] {
            ec8(&format!("{int}.key"), "P-256");
        }
        pki.openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "p256-sec1.key",
        ]);
        pki.openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "p256-sec1-noparams.key",
        ]);
        pki.openssl(&[
            "ecparam",
            "-name",
            "secp384r1",
            "-genkey",
            "-out",
            "p384.key",
        ]);
        pki.openssl(&[
            "ecparam",
            "-name",
            "secp384r1",
            "-genkey",
            "-noout",
            "-out",
            "int384.key",
        ]);
        pki.openssl(&["genrsa", "-traditional", "-out", "rsa2048.key", "2048"]);
        pki.openssl(&["genpkey", "-algorithm", "RSA", "-out", "rsa2048-pkcs8.key"]);
        pki.openssl(&["genrsa", "-traditional", "-out", "rsa1024.key", "1024"]);
        pki.openssl(&["genpkey", "-algorithm", "ED25519", "-out", "ed25519.key"]);

        let now = stamp(-1);
        let later = stamp(365);
        let leaf_san = format!("{LEAF}\n{SAN}");
        let valid = |name: &str, key: &str, ext: &str, issuer: &str, md: &str| {
            pki.sign(name, key, "/CN=localhost", ext, &now, &later, issuer, md)
        };
        valid("p256", "p256.key", &leaf_san, "ca", "sha256");
        valid("p256-sec1", "p256-sec1.key", &leaf_san, "ca", "sha256");
        valid(
            "p256-sec1-noparams",
            "p256-sec1-noparams.key",
            &leaf_san,
            "ca",
            "sha256",
        );
        valid("rsa2048", "rsa2048.key", &leaf_san, "ca", "sha256");
        valid(
            "rsa2048-pkcs8",
            "rsa2048-pkcs8.key",
            &leaf_san,
            "ca",
            "sha256",
        );
        valid("p384", "p384.key", &leaf_san, "ca", "sha256");
        let ed_ext = format!(
            "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
             extendedKeyUsage = serverAuth\n{SAN}"
        );
        valid("ed25519", "ed25519.key", &ed_ext, "ca", "sha256");
        pki.sign(
            "int384",
            "int384.key",
            "/CN=Oracle P-384 Intermediate",
            CA_EXT,
            &now,
            &later,
            "ca",
            "sha256",
        );
        valid("chain-leaf", "p256.key", &leaf_san, "int384", "sha384");
        valid("cn-only", "p256.key", LEAF, "ca", "sha256");
        pki.sign(
            "expired",
            "p256.key",
            "/CN=localhost",
            &leaf_san,
            "20200101000000Z",
            "20200201000000Z",
            "ca",
            "sha256",
        );
        pki.sign(
            "not-yet-valid",
            "p256.key",
            "/CN=localhost",
            &leaf_san,
            "20990101000000Z",
            "21000101000000Z",
            "ca",
            "sha256",
        );
        pki.sign(
            "wrong-host",
            "p256.key",
            "/CN=wrong.example",
            &format!("{LEAF}\nsubjectAltName = DNS:wrong.example"),
            &now,
            &later,
            "ca",
            "sha256",
        );
        pki.openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "p256.key",
            "-out",
            "self-signed.pem",
            "-subj",
            "/CN=localhost",
            "-days",
            "365",
            "-addext",
            SAN,
            "-addext",
            "basicConstraints=CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ]);
        valid("unknown-ca", "p256.key", &leaf_san, "other-ca", "sha256");
        valid(
            "wrong-eku",
            "p256.key",
            &format!(
                "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
                 extendedKeyUsage = clientAuth\n{SAN}"
            ),
            "ca",
            "sha256",
        );
        pki.sign(
            "not-ca-int",
            "not-ca-int.key",
            "/CN=Oracle Not A CA",
            "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature",
            &now,
            &later,
            "ca",
            "sha256",
        );
        valid(
            "issuer-not-ca",
            "p256.key",
            &leaf_san,
            "not-ca-int",
            "sha256",
        );
        valid(
            "ca-as-leaf",
            "p256.key",
            &format!(
                "basicConstraints = critical,CA:TRUE\nkeyUsage = critical,digitalSignature,keyCertSign\n\
                 extendedKeyUsage = serverAuth\n{SAN}"
            ),
            "ca",
            "sha256",
        );
        pki.sign(
            "path-int1",
            "path-int1.key",
            "/CN=Oracle Intermediate pathlen 0",
            "basicConstraints = critical,CA:TRUE,pathlen:0\nkeyUsage = critical,keyCertSign,cRLSign",
            &now,
            &later,
            "ca",
            "sha256",
        );
        pki.sign(
            "path-int2",
            "path-int2.key",
            "/CN=Oracle Intermediate below pathlen 0",
            CA_EXT,
            &now,
            &later,
            "path-int1",
            "sha256",
        );
        valid("path-length", "p256.key", &leaf_san, "path-int2", "sha256");
        pki.sign(
            "nc-int",
            "nc-int.key",
            "/CN=Oracle Constrained Intermediate",
            &format!("{CA_EXT}\nnameConstraints = critical,permitted;DNS:example.com"),
            &now,
            &later,
            "ca",
            "sha256",
        );
        valid(
            "name-constraints",
            "p256.key",
            &format!("{LEAF}\nsubjectAltName = DNS:localhost"),
            "nc-int",
            "sha256",
        );
        valid(
            "critical-ext",
            "p256.key",
            &format!("{leaf_san}\n1.3.6.1.4.1.55555.1 = critical,ASN1:UTF8String:unknown"),
            "ca",
            "sha256",
        );
        valid("sha1", "p256.key", &leaf_san, "ca", "sha1");
        valid("rsa1024", "rsa1024.key", &leaf_san, "ca", "sha256");
        // path-int2's chain file carries both intermediates.
        let both = format!(
            "{}{}",
            fs::read_to_string(pki.path("path-int2.pem")).unwrap(),
            fs::read_to_string(pki.path("path-int1.pem")).unwrap()
        );
        pki.write("path-int2.pem", &both);
        pki
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn write(&self, file: &str, text: &str) {
        fs::write(self.path(file), text).unwrap();
    }

    /// Runs `openssl ARGS` in the folder; panics with its output if it fails.
    pub fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `NAME.pem` for `key`, signed by `issuer` (`ISSUER.pem`/`ISSUER.key`) with `openssl ca`, which sets any
    /// validity dates (`openssl x509 -req` in 3.0 cannot).
    #[allow(clippy::too_many_arguments)]
    fn sign(
        &self,
        name: &str,
        key: &str,
        subject: &str,
        ext: &str,
        start: &str,
        end: &str,
        issuer: &str,
        md: &str,
    ) {
        let csr = format!("{name}.csr");
        let extfile = format!("{name}.ext");
        self.openssl(&["req", "-new", "-key", key, "-subj", subject, "-out", &csr]);
        self.write(&extfile, &format!("[v3]\n{ext}\n"));
        self.openssl(&[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            &format!("{issuer}.pem"),
            "-keyfile",
            &format!("{issuer}.key"),
            "-in",
            &csr,
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &extfile,
            "-extensions",
            "v3",
            "-startdate",
            start,
            "-enddate",
            end,
            "-md",
            md,
            "-notext",
        ]);
    }
}

/// `YYYYMMDDHHMMSSZ`, `days` from now.
fn stamp(days: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `openssl s_server -dtls1_2` serving one certificate on a free loopback port, for `naccept` handshakes;
/// killed on drop. Its stdin is a pipe held open (EOF would end it early).
pub struct SServer {
    pub addr: SocketAddr,
    _stdin: ChildStdin,
    _peer: Peer,
    log: tempfile::NamedTempFile,
}

impl SServer {
    pub fn start(pki: &OpensslPki, cert: &ServedCert, naccept: u32) -> Self {
        Self::start_with(pki, cert, naccept, &[])
    }

    /// With extra `s_server` arguments (e.g. `-Verify 1 -CAfile ca.pem`).
    pub fn start_with(pki: &OpensslPki, cert: &ServedCert, naccept: u32, extra: &[&str]) -> Self {
        let port = super::free_udp_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new("timeout");
        cmd.args(["60", "openssl", "s_server", "-dtls1_2", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-cert", cert.cert, "-key", cert.key, "-naccept"])
            .arg(naccept.to_string());
        if let Some(chain) = cert.chain {
            cmd.args(["-cert_chain", chain]);
        }
        if cert.legacy {
            cmd.args(["-cipher", "DEFAULT@SECLEVEL=0"]);
        }
        let mut child = cmd
            .args(extra)
            .current_dir(pki.dir())
            .stdin(Stdio::piped())
            .stdout(log.reopen().unwrap())
            .stderr(Stdio::from(log.reopen().unwrap()))
            .spawn()
            .expect("start openssl s_server");
        let stdin = child.stdin.take().unwrap();
        let server = SServer {
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            _stdin: stdin,
            _peer: Peer::new(child),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.output().contains("ACCEPT") {
            assert!(
                Instant::now() < deadline,
                "openssl s_server for {} did not start: {}",
                cert.name,
                server.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// What the server printed so far.
    pub fn output(&self) -> String {
        fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

/// What `openssl s_client` concluded about a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpensslVerdict {
    /// The handshake completed and the chain verified.
    Ok,
    /// Verification failed: `verify error:num=N:reason`.
    VerifyError { num: u32, reason: String },
    /// The handshake failed for another reason (the first error line).
    Failed(String),
}

impl std::fmt::Display for OpensslVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpensslVerdict::Ok => f.write_str("OK"),
            OpensslVerdict::VerifyError { num, reason } => write!(f, "{num} ({reason})"),
            OpensslVerdict::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// Judges the server at `addr` with `openssl s_client -dtls1_2 -CAfile CA -verify_return_error
/// -verify_hostname localhost`. "Verify return code: 0 (ok)" is printed on failures too, so success is a
/// negotiated cipher and no `verify error`.
pub fn s_client(pki: &OpensslPki, addr: SocketAddr, ca: &str) -> OpensslVerdict {
    let out = Command::new("timeout")
        .args(["20", "openssl", "s_client", "-dtls1_2", "-connect"])
        .arg(addr.to_string())
        .args([
            "-CAfile",
            ca,
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
        ])
        .current_dir(pki.dir())
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client runs");
    parse_s_client(&format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// The verdict in `s_client`'s output.
pub fn parse_s_client(text: &str) -> OpensslVerdict {
    if let Some(rest) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("verify error:num="))
    {
        let (num, reason) = rest.split_once(':').unwrap_or((rest, ""));
        if let Ok(num) = num.parse() {
            return OpensslVerdict::VerifyError {
                num,
                reason: reason.to_string(),
            };
        }
    }
    let negotiated = text
        .lines()
        .find_map(|l| l.split_once("Cipher is ").map(|(_, c)| c.trim()))
        .is_some_and(|c| !c.is_empty() && c != "(NONE)");
    if negotiated && text.contains("Verification: OK") {
        return OpensslVerdict::Ok;
    }
    let why = text
        .lines()
        .find(|l| l.contains(":error:"))
        .and_then(|l| l.split(':').nth(5))
        .unwrap_or("no handshake")
        .to_string();
    OpensslVerdict::Failed(why)
}
