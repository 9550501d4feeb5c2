//! Device certificates for a fleet of X.509 devices (ThingsBoard's X.509 device credentials): `coap-harness
//! certs --devices N` writes, beside the test PKI,
//!
//! | file | what |
//! |---|---|
//! | `device-ca.pem`, `device-ca.key` | the device CA, which signs every device certificate below |
//! | `devices/device-{i}.pem`, `.key` (i = 0..N-1) | device `i`'s certificate (CN `device-{i}`) and key |
//! | `devices/device-expired.pem`, `.key` | a registered device whose certificate has expired |
//! | `device-unregistered.pem`, `.key` | a certificate from the device CA that is not registered |
//! | `devices.csv` | the credentials file: one row per device, in index order (below) |
//!
//! `devices/` is the registered-devices list the server reads: `serve --client-auth thingsboard
//! --device-certs DIR/devices` registers each certificate in it as the device its file is named after
//! (`device-3`). Keys are PKCS#8 PEM, mode 0600.
//!
//! `devices.csv` has a header line and the columns `token,psk_identity,psk_key,cert,key`, empty cells allowed;
//! here the token and PSK cells are empty (certificate devices use `/api/v1/{feature}` without a token) and
//! `cert`, `key` are absolute paths, so the file reads the same from any folder. Row `i` (after the header)
//! is device `i`.

use super::files::{self, KEY_MODE, PUBLIC_MODE};
use super::{PkiError, Role};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// The folder of registered device certificates (what `serve --device-certs` reads).
pub const DEVICES_DIR: &str = "devices";
/// The credentials file, one row per device.
pub const DEVICES_CSV: &str = "devices.csv";
/// Its header line.
pub const CSV_HEADER: &str = "token,psk_identity,psk_key,cert,key";
/// The device CA's certificate.
pub const DEVICE_CA: &str = "device-ca.pem";
/// A certificate from the device CA that is not registered (outside `devices/`).
pub const UNREGISTERED: &str = "device-unregistered.pem";
/// A registered device's expired certificate (inside `devices/`).
pub const EXPIRED: &str = "devices/device-expired.pem";

/// Device `index`'s certificate file, relative to the PKI folder.
pub fn device_cert(index: u64) -> String {
    format!("{DEVICES_DIR}/device-{index}.pem")
}

/// The key file that goes with a certificate file of this layout: `.pem` becomes `.key`.
pub fn key_of(cert: &Path) -> PathBuf {
    cert.with_extension("key")
}

/// What [`generate_devices`] made or kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Devices {
    /// The PKI folder.
    pub dir: PathBuf,
    /// How many numbered devices it holds.
    pub count: u64,
    /// True when the same number of devices was already there, complete, and was left untouched.
    pub kept_existing: bool,
}

struct Made {
    cert: Certificate,
    key: KeyPair,
}

fn failed(e: rcgen::Error) -> PkiError {
    PkiError::Generate {
        role: Role::Client,
        reason: e.to_string(),
    }
}

fn make(
    cn: &str,
    ca: bool,
    (from, until): (i64, i64),
    now: OffsetDateTime,
    issuer: Option<&Made>,
) -> Result<Made, PkiError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "coap-harness test PKI");
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.not_before = now + Duration::days(from);
    params.not_after = now + Duration::days(until);
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    } else {
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
    }
    let cert = match issuer {
        Some(i) => params.signed_by(&key, &i.cert, &i.key),
        None => params.self_signed(&key),
    }
    .map_err(failed)?;
    Ok(Made { cert, key })
}

fn write(dir: &Path, cert_file: &str, made: &Made) -> Result<(), PkiError> {
    let cert = dir.join(cert_file);
    files::write_file(&cert, made.cert.pem().as_bytes(), PUBLIC_MODE)?;
    files::write_file(
        &key_of(&cert),
        made.key.serialize_pem().as_bytes(),
        KEY_MODE,
    )
}

/// The rows of `devices.csv` for `count` devices in `dir` (absolute when `dir` is).
fn csv(dir: &Path, count: u64) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for i in 0..count {
        let cert = dir.join(device_cert(i));
        out.push_str(&format!(
            ",,,{},{}\n",
            cert.display(),
            key_of(&cert).display()
        ));
    }
    out
}

/// How many devices a complete set in `dir` holds, `None` if there is none; an incomplete one is an error.
fn existing(dir: &Path) -> Result<Option<u64>, PkiError> {
    let csv_path = dir.join(DEVICES_CSV);
    if !files::exists(&csv_path)? {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&csv_path).map_err(|e| PkiError::io(&csv_path, e))?;
    let count = text.lines().skip(1).filter(|l| !l.is_empty()).count() as u64;
    let mut wanted = vec![
        dir.join(DEVICE_CA),
        dir.join(UNREGISTERED),
        dir.join(EXPIRED),
    ];
    wanted.extend((0..count).map(|i| dir.join(device_cert(i))));
    for cert in wanted {
        for file in [key_of(&cert), cert] {
            if !files::exists(&file)? {
                return Err(PkiError::Incomplete { missing: file });
            }
        }
    }
    Ok(Some(count))
}

/// Writes `count` device certificates (and the device CA, the unregistered and the expired device, and
/// `devices.csv`) into `dir`, or keeps a complete set of the same size. Without `force`, a set of another
/// size is [`PkiError::DevicesChanged`]. `devices.csv` is removed first and written last, so an interrupted
/// run leaves a folder the next one regenerates rather than a mix that looks whole.
pub fn generate_devices(dir: &Path, count: u64, force: bool) -> Result<Devices, PkiError> {
    let dir = std::path::absolute(dir).map_err(|e| PkiError::io(dir, e))?;
    if !force {
        match existing(&dir) {
            Ok(Some(n)) if n == count => {
                return Ok(Devices {
                    dir,
                    count,
                    kept_existing: true,
                })
            }
            Ok(Some(n)) => {
                return Err(PkiError::DevicesChanged {
                    csv: dir.join(DEVICES_CSV),
                    existing: n,
                    requested: count,
                })
            }
            Ok(None) => {}
            Err(e) => return Err(e),
        }
    }
    std::fs::create_dir_all(dir.join(DEVICES_DIR))
        .map_err(|e| PkiError::io(dir.join(DEVICES_DIR), e))?;
    let csv_path = dir.join(DEVICES_CSV);
    files::remove_if_exists(&csv_path)?;
    // A smaller set than before must not leave registered certificates of devices that no longer exist.
    let stale = std::fs::read_dir(dir.join(DEVICES_DIR))
        .map_err(|e| PkiError::io(dir.join(DEVICES_DIR), e))?;
    for entry in stale.flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("device-") && (name.ends_with(".pem") || name.ends_with(".key")) {
            files::remove_if_exists(&path)?;
        }
    }
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::now_utc());
    let ca = make("coap-harness device CA", true, (-60, 3650), now, None)?;
    write(&dir, DEVICE_CA, &ca)?;
    for i in 0..count {
        let device = make(&format!("device-{i}"), false, (-1, 365), now, Some(&ca))?;
        write(&dir, &device_cert(i), &device)?;
    }
    let expired = make("device-expired", false, (-30, -1), now, Some(&ca))?;
    write(&dir, EXPIRED, &expired)?;
    let unregistered = make("device-unregistered", false, (-1, 365), now, Some(&ca))?;
    write(&dir, UNREGISTERED, &unregistered)?;
    files::write_file(&csv_path, csv(&dir, count).as_bytes(), PUBLIC_MODE)?;
    Ok(Devices {
        dir,
        count,
        kept_existing: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_devices_keys_private_and_the_csv_in_index_order() {
        let tmp = tempfile::tempdir().unwrap();
        let made = generate_devices(tmp.path(), 3, false).unwrap();
        assert!(!made.kept_existing);
        let csv = std::fs::read_to_string(tmp.path().join(DEVICES_CSV)).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines.len(), 4);
        for (i, line) in lines[1..].iter().enumerate() {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), 5, "{line}");
            assert_eq!(&cells[..3], ["", "", ""]);
            let cert = Path::new(cells[3]);
            assert!(cert.is_absolute() && cert.ends_with(format!("devices/device-{i}.pem")));
            assert_eq!(Path::new(cells[4]), key_of(cert));
            let mode = std::fs::metadata(cells[4]).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key mode {mode:o}");
            let key = crate::pki::read_identity(cert, Path::new(cells[4])).unwrap();
            assert_eq!(key.chain.len(), 1);
        }
        // The same size again is kept; another size needs --force, and then leaves no stale device behind.
        assert!(
            generate_devices(tmp.path(), 3, false)
                .unwrap()
                .kept_existing
        );
        let err = generate_devices(tmp.path(), 2, false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        generate_devices(tmp.path(), 2, true).unwrap();
        assert!(!tmp.path().join(device_cert(2)).exists());
        assert!(tmp.path().join(EXPIRED).exists());
    }
}
