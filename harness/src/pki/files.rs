//! Writing PKI files with the right mode from the moment they exist, and checking a key file's mode.

use super::PkiError;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of private key files: owner read/write only.
pub const KEY_MODE: u32 = 0o600;
/// Mode of certificates and the manifest.
pub const PUBLIC_MODE: u32 = 0o644;

/// Writes `contents` to `path` with `mode` (less the umask): into a new temporary file beside it created with
/// that mode, then renamed over `path`. A key is never readable by others, not even briefly, and a file that
/// already exists with a looser mode is replaced, not rewritten in place.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut file| file.write_all(contents))
        .map_err(|e| PkiError::io(&tmp, e))
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| PkiError::io(path, e)));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Removes `path` if it exists.
pub fn remove_if_exists(path: &Path) -> Result<(), PkiError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(PkiError::io(path, e)),
        _ => Ok(()),
    }
}

/// Whether `path` exists (a dangling symlink does not).
pub fn exists(path: &Path) -> Result<bool, PkiError> {
    path.try_exists().map_err(|e| PkiError::io(path, e))
}

/// Checks that a private key file is accessible by its owner only (no group or other permission bits).
/// Loose permissions give [`PkiError::KeyPermissions`], a warning ([`PkiError::is_warning`]): the key still
/// works, but should be `chmod 600`. A file that cannot be inspected gives [`PkiError::Io`].
pub fn check_key_permissions(path: &Path) -> Result<(), PkiError> {
    let mode = fs::metadata(path)
        .map_err(|e| PkiError::io(path, e))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PkiError::KeyPermissions {
            path: PathBuf::from(path),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn replaces_a_loose_file_with_a_private_one_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("a.key");
        fs::write(&key, "old").unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o666)).unwrap();
        write_file(&key, b"new", KEY_MODE).unwrap();
        assert_eq!(fs::read_to_string(&key).unwrap(), "new");
        assert_eq!(mode(&key), 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.key"]);
    }

    #[test]
    fn write_into_a_missing_folder_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_file(&dir.path().join("no/such/x.pem"), b"", PUBLIC_MODE).unwrap_err();
        assert!(matches!(err, PkiError::Io { .. }));
        assert!(err.to_string().contains("x.pem"), "{err}");
    }

    #[test]
    fn key_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.key");
        write_file(&key, b"k", KEY_MODE).unwrap();
        check_key_permissions(&key).unwrap();
        for loose in [0o640, 0o604, 0o620] {
            fs::set_permissions(&key, fs::Permissions::from_mode(loose)).unwrap();
            let err = check_key_permissions(&key).unwrap_err();
            assert!(err.is_warning(), "{err}");
            assert!(
                err.to_string().contains(&format!("mode {loose:04o}"))
                    && err.to_string().contains("k.key"),
                "{err}"
            );
        }
        let missing = check_key_permissions(&dir.path().join("none.key")).unwrap_err();
        assert!(!missing.is_warning() && missing.to_string().contains("none.key"));
    }
}
