//! Test and conformance PKI, made with rcgen (ECDSA P-256, SHA-256): a root CA, server and client certificates,
//! and the deliberately bad material a DTLS certificate-trust matrix needs (unknown CA, expired, not yet valid,
//! wrong host, self-signed, rogue and expired clients), described in `manifest.json`.
//!
//! `coap-harness certs [--out certs/] [--host NAME]... [--force]` calls [`generate`]; tests and scenarios call it
//! on a temporary folder. To regenerate a folder, run the command again with `--force`: there is nothing to
//! keep, every file is made from fresh keys on the machine that uses it.
//!
//! | role ([`Role`]) | files | signed by | must be |
//! |---|---|---|---|
//! | `ca` | `ca.pem`, `ca.key` | itself | trusted (the trust anchor) |
//! | `server` | `server.pem`, `server.key` | `ca` | accepted |
//! | `server_chain` | `server-chain.pem` (server then CA), `server.key` | `ca` | accepted |
//! | `client` | `client.pem`, `client.key` | `ca` | accepted |
//! | `unknown_ca` | `unknown-ca.pem`, `unknown-ca.key` | itself | trusted by nobody |
//! | `unknown_server` | `unknown-server.pem`, `.key` | `unknown_ca` | refused: unknown CA |
//! | `expired_server` | `expired-server.pem`, `.key` | `ca` | refused: expired |
//! | `not_yet_valid_server` | `notyet-server.pem`, `.key` | `ca` | refused: not yet valid |
//! | `wrong_host_server` | `wronghost-server.pem`, `.key` | `ca` | refused: hostname mismatch |
//! | `self_signed_server` | `selfsigned-server.pem`, `.key` | itself | refused: self-signed |
//! | `rogue_client` | `rogue-client.pem`, `.key` | `unknown_ca` | refused: unknown CA |
//! | `expired_client` | `expired-client.pem`, `.key` | `ca` | refused: expired |
//!
//! Keys are unencrypted PKCS#8 PEM, created mode 0600; certificates and the manifest 0644.
//!
//! `device` is the separate in-memory PKI of `device_trust:` runs; `weak` re-signs a certificate with
//! ECDSA-with-SHA1 for its `weak_signature` case.
//! With `--devices N`, [`fleet::generate_devices`] also writes N device certificates signed by a device CA,
//! the registered-devices folder `serve --device-certs` reads, and `devices.csv` (see [`fleet`]).
//!
//! Files: `role` (names, issuers, verdicts), `hosts` (the SAN list), `issue` (rcgen), `manifest`, `files`
//! (writing with modes), `read` (reading back users' and our certificates and keys: PEM or DER, PKCS#8,
//! SEC1, PKCS#1, bundles), `error`.

pub mod device;
mod error;
mod files;
pub mod fleet;
mod hosts;
mod issue;
mod manifest;
mod read;
mod role;
pub mod weak;

pub use error::PkiError;
pub use files::check_key_permissions;
pub use hosts::{DEFAULT_HOSTS, WRONG_HOST};
pub use issue::{CA_NAME, CLIENT_NAME, UNKNOWN_CA_NAME};
pub use manifest::{load_manifest, Entry, Manifest, MANIFEST_FILE};
pub use read::{
    read_certs, read_identity, read_key, read_private_key, Identity, KeyFormat, KeyKind, LoadedKey,
};
pub use role::{Role, SignedBy, TrustVerdict};

use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// What to generate, and where.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PkiOptions {
    /// The folder to write into (created if missing).
    pub out: PathBuf,
    /// Extra hosts for the server certificates, beyond `localhost`, `127.0.0.1` and `::1`: an IP literal becomes
    /// an IP SAN, anything else a DNS SAN.
    pub hosts: Vec<String>,
    /// Regenerate everything even if a complete set already exists.
    pub force: bool,
}

/// The outcome of [`generate`].
#[derive(Clone, Debug)]
pub struct Generated {
    /// The folder holding the material.
    pub dir: PathBuf,
    /// Its manifest (with typed paths: [`Manifest::path`]).
    pub manifest: Manifest,
    /// True if a complete set for the same hosts was already there and was left untouched.
    pub kept_existing: bool,
}

/// Generates the PKI into `opts.out`, or keeps what is there.
///
/// Without `force`: if the manifest and every file exist and were made for the same hosts, nothing is written
/// and `kept_existing` is true; if only some exist, [`PkiError::Incomplete`] names the first missing one; if
/// they were made for other hosts, [`PkiError::HostsChanged`]. With `force`, or in a folder holding none of the
/// files, everything is made anew. The manifest is removed first and written last, so an interrupted run
/// leaves a folder the next run reports as incomplete, never a mix of old and new that looks whole.
pub fn generate(opts: &PkiOptions) -> Result<Generated, PkiError> {
    let hosts = hosts::resolve(&opts.hosts)?;
    let dir = opts.out.clone();
    if !opts.force {
        if let Some(manifest) = existing(&dir, &hosts)? {
            return Ok(Generated {
                dir,
                manifest,
                kept_existing: true,
            });
        }
    }
    let now = OffsetDateTime::now_utc();
    let issued = issue::issue_all(&hosts, now)?;
    let manifest = Manifest::new(
        dir.clone(),
        now,
        hosts,
        issued.iter().map(|i| i.entry.clone()).collect(),
    );
    write_all(&dir, &issued, &manifest)?;
    Ok(Generated {
        dir,
        manifest,
        kept_existing: false,
    })
}

/// Every file a complete PKI folder holds, manifest last.
fn expected_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    for role in Role::ALL {
        for file in [role.cert_file(), role.key_file()] {
            let path = dir.join(file);
            if !files.contains(&path) {
                files.push(path);
            }
        }
    }
    files.push(dir.join(MANIFEST_FILE));
    files
}

/// The manifest of a complete set made for `hosts`, `None` if the folder holds none of the files.
fn existing(dir: &Path, hosts: &[String]) -> Result<Option<Manifest>, PkiError> {
    let mut any = false;
    let mut missing = None;
    for path in expected_files(dir) {
        if files::exists(&path)? {
            any = true;
        } else if missing.is_none() {
            missing = Some(path);
        }
    }
    match (any, missing) {
        (false, _) => Ok(None),
        (true, Some(missing)) => Err(PkiError::Incomplete { missing }),
        (true, None) => {
            let manifest = load_manifest(dir)?;
            let sorted = |hosts: &[String]| {
                let mut hosts = hosts.to_vec();
                hosts.sort_unstable();
                hosts
            };
            if sorted(&manifest.hosts) != sorted(hosts) {
                return Err(PkiError::HostsChanged {
                    manifest: dir.join(MANIFEST_FILE),
                    existing: manifest.hosts,
                    requested: hosts.to_vec(),
                });
            }
            Ok(Some(manifest))
        }
    }
}

fn write_all(dir: &Path, issued: &[issue::Issued], manifest: &Manifest) -> Result<(), PkiError> {
    std::fs::create_dir_all(dir).map_err(|e| PkiError::io(dir, e))?;
    let manifest_path = dir.join(MANIFEST_FILE);
    files::remove_if_exists(&manifest_path)?;
    for item in issued {
        let role = item.entry.role;
        files::write_file(
            &dir.join(role.cert_file()),
            item.cert_pem.as_bytes(),
            files::PUBLIC_MODE,
        )?;
        // The chain shares the server's key, written once.
        if role != Role::ServerChain {
            files::write_file(
                &dir.join(role.key_file()),
                item.key_pem.as_bytes(),
                files::KEY_MODE,
            )?;
        }
    }
    files::write_file(
        &manifest_path,
        manifest.to_json().as_bytes(),
        files::PUBLIC_MODE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_files_lists_each_file_once_manifest_last() {
        let files = expected_files(Path::new("d"));
        assert_eq!(files.len(), 12 + 11 + 1);
        assert_eq!(files[0], Path::new("d/ca.pem"));
        assert_eq!(files.last().unwrap(), Path::new("d/manifest.json"));
    }

    #[test]
    fn bad_host_fails_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("pki");
        let err = generate(&PkiOptions {
            out: out.clone(),
            hosts: vec!["[::1]".into()],
            force: false,
        })
        .unwrap_err();
        assert!(matches!(err, PkiError::BadHost { .. }), "{err}");
        assert!(!out.exists());
    }

    #[test]
    fn other_hosts_without_force_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let opts = |hosts: &[&str], force| PkiOptions {
            out: dir.path().to_path_buf(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            force,
        };
        generate(&opts(&["a.example"], false)).unwrap();
        assert!(
            generate(&opts(&["a.example", "localhost"], false))
                .unwrap()
                .kept_existing
        );
        let err = generate(&opts(&[], false)).unwrap_err();
        assert!(matches!(err, PkiError::HostsChanged { .. }), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        let regenerated = generate(&opts(&[], true)).unwrap();
        assert_eq!(regenerated.manifest.hosts, DEFAULT_HOSTS);
    }
}
