//! What can go wrong making, finding or loading test PKI material: one variant per cause, each naming its file.

use super::Role;
use std::path::PathBuf;

/// An error from [`generate`](super::generate), [`load_manifest`](super::load_manifest), the readers and the
/// permission check. `Display` is one line that names the file (or host) at fault.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file or folder could not be read, written, created or inspected.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The output folder holds part of a PKI but not all of it; regenerating it needs `force`.
    #[error(
        "{} is missing but other PKI files exist beside it; use --force to regenerate the whole set",
        missing.display()
    )]
    Incomplete { missing: PathBuf },
    /// The folder holds a complete PKI made for other hosts than the ones asked for; regenerating it needs `force`.
    #[error(
        "{} was made for hosts [{}], not [{}]; use --force to regenerate for the new hosts",
        manifest.display(), existing.join(", "), requested.join(", ")
    )]
    HostsChanged {
        manifest: PathBuf,
        existing: Vec<String>,
        requested: Vec<String>,
    },
    /// The folder holds a complete set of another number of device certificates; regenerating it needs `force`.
    #[error(
        "{} lists {existing} devices, not {requested}; use --force to regenerate the device certificates",
        csv.display()
    )]
    DevicesChanged {
        csv: PathBuf,
        existing: u64,
        requested: u64,
    },
    /// A `--host` is neither an IP literal nor a DNS name a certificate can carry.
    #[error("--host {host:?}: {reason}")]
    BadHost { host: String, reason: String },
    /// rcgen refused to make a key or certificate.
    #[error("generating {role}: {reason}")]
    Generate { role: Role, reason: String },
    /// A private key is not the key of the certificate it is paired with (their public keys differ).
    #[error(
        "{}: this {key_kind} private key does not belong to the certificate in {} ({subject}): their public keys differ",
        key.display(), cert.display()
    )]
    KeyMismatch {
        key: PathBuf,
        cert: PathBuf,
        subject: String,
        key_kind: String,
    },
    /// A PEM or DER file is malformed or holds the wrong kind of object.
    #[error("{}: {reason}", path.display())]
    BadPem { path: PathBuf, reason: String },
    /// `manifest.json` is not valid JSON, is of an unknown version, or does not describe the expected files.
    #[error("{}: {reason}", path.display())]
    BadManifest { path: PathBuf, reason: String },
    /// A private key file can be read or written by group or others (a warning: see [`PkiError::is_warning`]).
    #[error(
        "{}: private key is accessible by group or others (mode {mode:04o}); run `chmod 600 {}`",
        path.display(), path.display()
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
}

impl PkiError {
    /// Whether this error is advisory: the material is usable, but should be fixed (loose key permissions).
    pub fn is_warning(&self) -> bool {
        matches!(self, PkiError::KeyPermissions { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PkiError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bad_pem(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        PkiError::BadPem {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
