//! Reading users' certificates and keys, in the formats their tools write: PEM or DER; certificate bundles;
//! private keys as PKCS#8, SEC1 (`EC PRIVATE KEY`, with or without the `EC PARAMETERS` block that
//! `openssl ecparam -genkey` writes) or PKCS#1 (`RSA PRIVATE KEY`). Parsing is rustls-pki-types' PEM reader and
//! the RustCrypto `pkcs8`/`sec1` types; every key ends up as PKCS#8 in an [`rcgen::KeyPair`], which is what
//! the DTLS crate takes. Every error names the file.

use super::PkiError;
use rcgen::KeyPair;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::path::Path;

/// What kind of key a private key is, with what the DTLS stack must know about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on NIST P-256 (secp256r1, prime256v1).
    EcdsaP256,
    /// ECDSA on NIST P-384 (secp384r1).
    EcdsaP384,
    /// Ed25519.
    Ed25519,
    /// RSA, with its modulus size in bits.
    Rsa { bits: usize },
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::EcdsaP256 => f.write_str("ECDSA P-256"),
            KeyKind::EcdsaP384 => f.write_str("ECDSA P-384"),
            KeyKind::Ed25519 => f.write_str("Ed25519"),
            KeyKind::Rsa { bits } => write!(f, "RSA-{bits}"),
        }
    }
}

/// How a private key was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFormat {
    Pkcs8,
    Sec1,
    Pkcs1,
}

impl fmt::Display for KeyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyFormat::Pkcs8 => "PKCS#8",
            KeyFormat::Sec1 => "SEC1",
            KeyFormat::Pkcs1 => "PKCS#1",
        })
    }
}

/// A private key read from a file, converted to PKCS#8.
pub struct LoadedKey {
    pub pair: KeyPair,
    pub kind: KeyKind,
    /// The format the file held (the key is PKCS#8 in `pair` whatever it was).
    pub format: KeyFormat,
}

impl fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key material stays out of logs.
        f.debug_struct("LoadedKey")
            .field("kind", &self.kind)
            .field("format", &self.format)
            .finish()
    }
}

/// A certificate chain (leaf first) with the private key of its leaf, checked to belong together.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: LoadedKey,
}

/// Reads every certificate of a file, in file order (leaf first in a chain file): PEM `CERTIFICATE` blocks
/// (other blocks, such as a private key beside them, are skipped), or DER (one certificate or several
/// concatenated). A file without a certificate is an error.
pub fn read_certs(path: &Path) -> Result<Vec<Vec<u8>>, PkiError> {
    let bytes = read(path)?;
    let certs: Vec<Vec<u8>> = if is_pem(&bytes) {
        CertificateDer::pem_slice_iter(&bytes)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| PkiError::bad_pem(path, format!("not valid PEM: {e}")))?
    } else {
        der_sequences(&bytes).ok_or_else(|| {
            PkiError::bad_pem(
                path,
                "neither PEM nor DER certificates (truncated or corrupt?)",
            )
        })?
    };
    if certs.is_empty() {
        return Err(PkiError::bad_pem(path, missing("CERTIFICATE", &bytes)));
    }
    for (i, der) in certs.iter().enumerate() {
        if let Err(e) = x509_parser::parse_x509_certificate(der) {
            return Err(PkiError::bad_pem(
                path,
                format!(
                    "certificate {} is not a valid X.509 certificate: {e}",
                    i + 1
                ),
            ));
        }
    }
    Ok(certs)
}

/// Reads the single unencrypted private key of a file as a key pair (see [`read_private_key`]).
pub fn read_key(path: &Path) -> Result<KeyPair, PkiError> {
    read_private_key(path).map(|k| k.pair)
}

/// Reads the single unencrypted private key of a file: PEM (`PRIVATE KEY`, `EC PRIVATE KEY` with or without
/// `EC PARAMETERS`, `RSA PRIVATE KEY`) or DER (PKCS#8, SEC1 or PKCS#1), converted to PKCS#8.
pub fn read_private_key(path: &Path) -> Result<LoadedKey, PkiError> {
    let bytes = read(path)?;
    let bad = |reason: String| PkiError::bad_pem(path, reason);
    let key = if is_pem(&bytes) {
        let text = String::from_utf8_lossy(&bytes);
        if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
            || text.contains("Proc-Type: 4,ENCRYPTED")
        {
            return Err(bad(
                "the private key is encrypted; store it unencrypted: openssl pkey -in FILE -out KEY"
                    .into(),
            ));
        }
        let keys = <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("not valid PEM: {e}")))?;
        let mut keys = keys.into_iter().filter_map(|(kind, der)| match kind {
            SectionKind::PrivateKey => Some(PrivateKeyDer::Pkcs8(der.into())),
            SectionKind::EcPrivateKey => Some(PrivateKeyDer::Sec1(der.into())),
            SectionKind::RsaPrivateKey => Some(PrivateKeyDer::Pkcs1(der.into())),
            _ => None,
        });
        let Some(key) = keys.next() else {
            return Err(bad(missing("PRIVATE KEY", &bytes)));
        };
        if keys.next().is_some() {
            return Err(bad("holds more than one private key".into()));
        }
        key
    } else {
        PrivateKeyDer::try_from(bytes.as_slice()).map_err(|e| {
            bad(format!(
                "neither a PEM file nor a DER private key (PKCS#8, SEC1 or PKCS#1): {e}"
            ))
        })?
    };
    to_pkcs8(&key).map_err(bad)
}

/// Reads a certificate chain and its private key, and checks that the key is the leaf's (same public key).
pub fn read_identity(cert: &Path, key: &Path) -> Result<Identity, PkiError> {
    let chain = read_certs(cert)?;
    let loaded = read_private_key(key)?;
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0])
        .map_err(|e| PkiError::bad_pem(cert, format!("certificate 1: {e}")))?;
    if leaf.public_key().subject_public_key.data.as_ref() != loaded.pair.public_key_raw() {
        return Err(PkiError::KeyMismatch {
            key: key.to_path_buf(),
            cert: cert.to_path_buf(),
            subject: leaf.subject().to_string(),
            key_kind: loaded.kind.to_string(),
        });
    }
    Ok(Identity {
        chain: chain.into_iter().map(CertificateDer::from).collect(),
        key: loaded,
    })
}

/// Any private key to PKCS#8, as an rcgen key pair with its kind.
fn to_pkcs8(key: &PrivateKeyDer<'_>) -> Result<LoadedKey, String> {
    let (format, pkcs8) = match key {
        PrivateKeyDer::Pkcs8(k) => (KeyFormat::Pkcs8, k.secret_pkcs8_der().to_vec()),
        PrivateKeyDer::Sec1(k) => (KeyFormat::Sec1, sec1_to_pkcs8(k.secret_sec1_der())?),
        PrivateKeyDer::Pkcs1(k) => (KeyFormat::Pkcs1, pkcs1_to_pkcs8(k.secret_pkcs1_der())?),
        _ => return Err("an unknown kind of private key".into()),
    };
    let pair = KeyPair::try_from(pkcs8.as_slice()).map_err(|e| {
        format!(
            "{format} private key not usable: {e} (keys must be ECDSA P-256 or P-384, Ed25519, or RSA of 2048 to 8192 bits)"
        )
    })?;
    let kind = if pair.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
        KeyKind::EcdsaP256
    } else if pair.is_compatible(&rcgen::PKCS_ECDSA_P384_SHA384) {
        KeyKind::EcdsaP384
    } else if pair.is_compatible(&rcgen::PKCS_ED25519) {
        KeyKind::Ed25519
    } else if pair.is_compatible(&rcgen::PKCS_RSA_SHA256) {
        KeyKind::Rsa {
            bits: rsa_bits(pair.public_key_raw()).unwrap_or(0),
        }
    } else {
        return Err(format!(
            "{format} private key of an unsupported algorithm (keys must be ECDSA P-256 or P-384, Ed25519 or RSA)"
        ));
    };
    Ok(LoadedKey { pair, kind, format })
}

/// A SEC1 `ECPrivateKey` to PKCS#8, on whichever of P-256 and P-384 it is (by its parameters, or by its size
/// when it has none); the public key is computed if the file left it out.
fn sec1_to_pkcs8(der: &[u8]) -> Result<Vec<u8>, String> {
    use p256::pkcs8::EncodePrivateKey;
    let doc = if let Ok(k) = p256::SecretKey::from_sec1_der(der) {
        k.to_pkcs8_der()
    } else if let Ok(k) = p384::SecretKey::from_sec1_der(der) {
        k.to_pkcs8_der()
    } else {
        return Err(
            "EC PRIVATE KEY (SEC1) is not a P-256 or P-384 key (other curves are not supported)"
                .into(),
        );
    };
    doc.map(|d| d.as_bytes().to_vec())
        .map_err(|e| format!("cannot convert the SEC1 key to PKCS#8: {e}"))
}

/// A PKCS#1 `RSAPrivateKey` wrapped as PKCS#8 (rsaEncryption, NULL parameters); ring checks its contents.
fn pkcs1_to_pkcs8(der: &[u8]) -> Result<Vec<u8>, String> {
    use pkcs8::der::Encode;
    let info = pkcs8::PrivateKeyInfo::new(
        pkcs8::AlgorithmIdentifierRef {
            oid: pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1"),
            parameters: Some(pkcs8::der::asn1::AnyRef::NULL),
        },
        der,
    );
    info.to_der()
        .map_err(|e| format!("cannot convert the PKCS#1 key to PKCS#8: {e}"))
}

/// The modulus size of a DER `RSAPublicKey`.
fn rsa_bits(public_key: &[u8]) -> Option<usize> {
    let (_, obj) = x509_parser::der_parser::parse_der(public_key).ok()?;
    let modulus = obj.as_sequence().ok()?.first()?.as_slice().ok()?;
    let start = modulus.iter().position(|b| *b != 0)?;
    Some((modulus.len() - start) * 8 - modulus[start].leading_zeros() as usize)
}

fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    let bytes = std::fs::read(path).map_err(|e| PkiError::io(path, e))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(PkiError::bad_pem(path, "the file is empty"));
    }
    Ok(bytes)
}

/// Whether `bytes` are PEM text rather than binary DER (which starts with a SEQUENCE tag).
fn is_pem(bytes: &[u8]) -> bool {
    bytes.first() != Some(&0x30)
}

/// What a file holds instead of the `label` wanted, for the error.
fn missing(label: &str, bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let found: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .collect();
    if found.is_empty() {
        format!("no PEM data: expected -----BEGIN {label}----- (or a DER file)")
    } else {
        format!("no {label} block (found {})", found.join(", "))
    }
}

/// Splits concatenated DER SEQUENCEs; `None` if the bytes are not exactly that.
fn der_sequences(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = der_len(bytes)?;
        out.push(bytes[..len].to_vec());
        bytes = &bytes[len..];
    }
    Some(out)
}

/// The length of the DER SEQUENCE at the start of `der`, header included.
fn der_len(der: &[u8]) -> Option<usize> {
    let [0x30, first, rest @ ..] = der else {
        return None;
    };
    let (len, header) = if *first < 0x80 {
        (usize::from(*first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |len, b| (len << 8) | usize::from(*b));
        (len, 2 + n)
    };
    (header + len <= der.len()).then_some(header + len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use p256::pkcs8::DecodePrivateKey;
    use std::path::PathBuf;

    fn pem(label: &str, der: &[u8]) -> String {
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            STANDARD.encode(der)
        )
    }

    fn file(contents: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.pem");
        std::fs::write(&path, contents).unwrap();
        (dir, path)
    }

    fn bad_pem(result: Result<impl std::fmt::Debug, PkiError>) -> String {
        match result {
            Err(e @ PkiError::BadPem { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("f.pem"), "{msg}");
                msg
            }
            other => panic!("expected BadPem, got {other:?}"),
        }
    }

    fn cert_and_key(alg: &'static rcgen::SignatureAlgorithm) -> (Vec<u8>, KeyPair) {
        let key = KeyPair::generate_for(alg).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.der().to_vec(), key)
    }

    #[test]
    fn der_sequences_split_and_reject_garbage() {
        assert_eq!(
            der_sequences(&[0x30, 0, 0x30, 1, 5]),
            Some(vec![vec![0x30, 0], vec![0x30, 1, 5]])
        );
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.extend([0; 256]);
        assert_eq!(der_sequences(&long).map(|v| v.len()), Some(1));
        long.pop();
        assert_eq!(der_sequences(&long), None, "truncated");
        assert_eq!(der_sequences(&[0x31, 0]), None, "not a SEQUENCE");
        assert_eq!(der_sequences(&[0x30, 0x80]), None, "indefinite length");
    }

    #[test]
    fn reads_pem_bundles_and_der_certificates() {
        let (a, _) = cert_and_key(&rcgen::PKCS_ECDSA_P256_SHA256);
        let (b, _) = cert_and_key(&rcgen::PKCS_ED25519);
        let bundle = format!(
            "subject=CN=x\r\n{}noise\n{}",
            pem("CERTIFICATE", &a),
            pem("CERTIFICATE", &b)
        );
        let (_d, path) = file(bundle.as_bytes());
        assert_eq!(read_certs(&path).unwrap(), [a.clone(), b.clone()]);
        let (_d, path) = file(&[a.clone(), b.clone()].concat());
        assert_eq!(read_certs(&path).unwrap(), [a, b]);
    }

    #[test]
    fn read_certs_wants_certificates() {
        let (_d, path) = file(b"hello\n");
        assert!(bad_pem(read_certs(&path)).contains("no PEM data"));
        let (_d, path) = file(pem("PRIVATE KEY", &[1]).as_bytes());
        assert!(bad_pem(read_certs(&path)).contains("no CERTIFICATE block (found PRIVATE KEY)"));
        let (_d, path) = file(pem("CERTIFICATE", &[0x30, 3, 2, 1, 0]).as_bytes());
        assert!(bad_pem(read_certs(&path)).contains("certificate 1 is not a valid X.509"));
        let (_d, path) = file(&[0x30, 0x82, 0xff, 0xfe]);
        assert!(bad_pem(read_certs(&path)).contains("neither PEM nor DER"));
        let (_d, path) = file(b"-----BEGIN CERTIFICATE-----\nMAA=\n");
        assert!(bad_pem(read_certs(&path)).contains("not valid PEM"));
    }

    #[test]
    fn reads_every_key_format_as_pkcs8() {
        for (alg, kind) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, KeyKind::EcdsaP256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, KeyKind::EcdsaP384),
            (&rcgen::PKCS_ED25519, KeyKind::Ed25519),
        ] {
            let key = KeyPair::generate_for(alg).unwrap();
            let (_d, path) = file(key.serialize_pem().as_bytes());
            let loaded = read_private_key(&path).unwrap();
            assert_eq!((loaded.kind, loaded.format), (kind, KeyFormat::Pkcs8));
            assert_eq!(loaded.pair.serialize_der(), key.serialize_der());
            let (_d, path) = file(&key.serialize_der());
            assert_eq!(read_private_key(&path).unwrap().kind, kind, "DER");
        }
        // SEC1, as `openssl ecparam -genkey` writes it (parameters block first) and bare, PEM and DER.
        let generated = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let secret = p256::SecretKey::from_pkcs8_der(&generated.serialize_der()).unwrap();
        let sec1 = secret.to_sec1_der().unwrap();
        let params =
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
        for contents in [
            format!("{params}{}", pem("EC PRIVATE KEY", &sec1)).into_bytes(),
            pem("EC PRIVATE KEY", &sec1).into_bytes(),
            sec1.to_vec(),
        ] {
            let (_d, path) = file(&contents);
            let loaded = read_private_key(&path).unwrap();
            assert_eq!(
                (loaded.kind, loaded.format),
                (KeyKind::EcdsaP256, KeyFormat::Sec1)
            );
            assert_eq!(
                loaded.pair.public_key_raw(),
                secret.public_key().to_sec1_bytes().as_ref()
            );
        }
        let generated = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let secret = p384::SecretKey::from_pkcs8_der(&generated.serialize_der()).unwrap();
        let (_d, path) = file(pem("EC PRIVATE KEY", &secret.to_sec1_der().unwrap()).as_bytes());
        assert_eq!(read_private_key(&path).unwrap().kind, KeyKind::EcdsaP384);
    }

    #[test]
    fn read_key_refusals_name_the_file_and_the_problem() {
        let generated = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let (_d, path) = file(pem("ENCRYPTED PRIVATE KEY", &[0x30, 0]).as_bytes());
        assert!(bad_pem(read_key(&path)).contains("encrypted"));
        let two = generated.serialize_pem().repeat(2);
        let (_d, path) = file(two.as_bytes());
        assert!(bad_pem(read_key(&path)).contains("more than one"));
        let (_d, path) = file(pem("PRIVATE KEY", &[0x30, 0]).as_bytes());
        assert!(bad_pem(read_key(&path)).contains("PKCS#8 private key not usable"));
        let (_d, path) = file(pem("EC PRIVATE KEY", &[0x30, 0]).as_bytes());
        assert!(bad_pem(read_key(&path)).contains("not a P-256 or P-384 key"));
        let (_d, path) = file(pem("CERTIFICATE", &[0x30, 0]).as_bytes());
        assert!(bad_pem(read_key(&path)).contains("no PRIVATE KEY block (found CERTIFICATE)"));
        let (_d, path) = file(b"   \n");
        assert!(bad_pem(read_key(&path)).contains("empty"));
    }

    #[test]
    fn identity_wants_the_leafs_own_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = cert_and_key(&rcgen::PKCS_ECDSA_P256_SHA256);
        let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let (c, k, o) = (
            dir.path().join("c.pem"),
            dir.path().join("k.pem"),
            dir.path().join("o.pem"),
        );
        std::fs::write(&c, pem("CERTIFICATE", &cert)).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        std::fs::write(&o, other.serialize_pem()).unwrap();
        let id = read_identity(&c, &k).unwrap();
        assert_eq!(id.chain.len(), 1);
        assert_eq!(id.key.kind, KeyKind::EcdsaP256);
        let err = read_identity(&c, &o).unwrap_err();
        assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("o.pem") && msg.contains("c.pem"), "{msg}");
    }
}
