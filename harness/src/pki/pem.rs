//! Reading PEM files back: certificates into DER, a PKCS#8 private key into an [`rcgen::KeyPair`].
//! Every error names the file and, where it helps, the line.

use super::PkiError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rcgen::KeyPair;
use std::path::Path;

/// One `-----BEGIN label----- ... -----END label-----` block, decoded.
#[derive(Debug, PartialEq, Eq)]
struct Block {
    label: String,
    der: Vec<u8>,
}

/// Reads every `CERTIFICATE` block of a PEM file into DER, in file order (leaf first in a chain file).
/// Other blocks (a private key beside the certificate) are skipped; a file without a certificate is an error.
pub fn read_certs(path: &Path) -> Result<Vec<Vec<u8>>, PkiError> {
    let blocks = read_blocks(path)?;
    let mut certs = Vec::new();
    for block in blocks.iter().filter(|b| b.label == "CERTIFICATE") {
        if !is_der_sequence(&block.der) {
            return Err(PkiError::bad_pem(
                path,
                format!(
                    "certificate {} is not a DER certificate (truncated or corrupt)",
                    certs.len() + 1
                ),
            ));
        }
        certs.push(block.der.clone());
    }
    if certs.is_empty() {
        return Err(PkiError::bad_pem(path, missing("CERTIFICATE", &blocks)));
    }
    Ok(certs)
}

/// Reads the single unencrypted PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`) of a PEM file.
pub fn read_key(path: &Path) -> Result<KeyPair, PkiError> {
    let blocks = read_blocks(path)?;
    let mut keys = blocks.iter().filter(|b| b.label == "PRIVATE KEY");
    let Some(key) = keys.next() else {
        let reason = match blocks.iter().find(|b| b.label.ends_with("PRIVATE KEY")) {
            Some(b) if b.label == "ENCRYPTED PRIVATE KEY" => {
                "the private key is encrypted; store it unencrypted: openssl pkcs8 -topk8 -nocrypt"
                    .to_string()
            }
            Some(b) => format!(
                "{} is not PKCS#8; convert it: openssl pkcs8 -topk8 -nocrypt -in FILE",
                b.label
            ),
            None => missing("PRIVATE KEY", &blocks),
        };
        return Err(PkiError::bad_pem(path, reason));
    };
    if keys.next().is_some() {
        return Err(PkiError::bad_pem(path, "holds more than one private key"));
    }
    KeyPair::try_from(key.der.as_slice())
        .map_err(|e| PkiError::bad_pem(path, format!("not a usable PKCS#8 private key: {e}")))
}

fn read_blocks(path: &Path) -> Result<Vec<Block>, PkiError> {
    let bytes = std::fs::read(path).map_err(|e| PkiError::io(path, e))?;
    let Ok(text) = String::from_utf8(bytes) else {
        return Err(PkiError::bad_pem(
            path,
            "not a PEM text file (binary DER? convert it with openssl ... -outform PEM)",
        ));
    };
    parse(&text).map_err(|reason| PkiError::bad_pem(path, reason))
}

fn missing(label: &str, found: &[Block]) -> String {
    if found.is_empty() {
        return format!("no PEM data: expected -----BEGIN {label}-----");
    }
    let labels: Vec<&str> = found.iter().map(|b| b.label.as_str()).collect();
    format!("no {label} block (found {})", labels.join(", "))
}

/// The PEM blocks of `text`; text between blocks is ignored (as OpenSSL does).
fn parse(text: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    while let Some((begin_line, line)) = lines.next() {
        let Some(label) = armor(line, "BEGIN") else {
            continue;
        };
        let mut body = String::new();
        let mut closed = false;
        for (n, line) in lines.by_ref() {
            if let Some(end) = armor(line, "END") {
                if end != label {
                    return Err(format!(
                        "line {n}: -----BEGIN {label}----- (line {begin_line}) ends with -----END {end}-----"
                    ));
                }
                closed = true;
                break;
            }
            if line.contains(':') {
                return Err(format!(
                    "line {n}: PEM headers (legacy encrypted PEM) are not supported"
                ));
            }
            body.push_str(line);
        }
        if !closed {
            return Err(format!(
                "line {begin_line}: -----BEGIN {label}----- has no -----END {label}-----"
            ));
        }
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("line {begin_line}: {label} is not valid base64 ({e})"))?;
        if der.is_empty() {
            return Err(format!("line {begin_line}: {label} is empty"));
        }
        blocks.push(Block {
            label: label.to_string(),
            der,
        });
    }
    Ok(blocks)
}

/// `Some(label)` if `line` is `-----{kind} label-----`.
fn armor<'a>(line: &'a str, kind: &str) -> Option<&'a str> {
    line.strip_prefix("-----")?
        .strip_prefix(kind)?
        .strip_prefix(' ')?
        .strip_suffix("-----")
}

/// Whether `der` is exactly one DER SEQUENCE (what every certificate is), so a truncated block is caught here.
fn is_der_sequence(der: &[u8]) -> bool {
    let [0x30, first, rest @ ..] = der else {
        return false;
    };
    let (len, rest) = if *first < 0x80 {
        (usize::from(*first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return false;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |len, b| (len << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    len == rest.len()
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn parses_blocks_skipping_text_between_them_and_crlf() {
        let text = format!(
            "subject=CN=x\r\n{}\r\nnoise\n{}",
            pem("CERTIFICATE", &[0x30, 0]).replace('\n', "\r\n"),
            pem("PRIVATE KEY", &[1, 2, 3])
        );
        assert_eq!(
            parse(&text).unwrap(),
            [
                Block {
                    label: "CERTIFICATE".into(),
                    der: vec![0x30, 0]
                },
                Block {
                    label: "PRIVATE KEY".into(),
                    der: vec![1, 2, 3]
                },
            ]
        );
    }

    #[test]
    fn rejects_unterminated_mismatched_headed_and_bad_base64_blocks() {
        for (text, needle) in [
            ("-----BEGIN CERTIFICATE-----\nMAA=\n", "has no -----END CERTIFICATE-----"),
            ("-----BEGIN CERTIFICATE-----\nMAA=\n-----END PRIVATE KEY-----\n", "ends with -----END PRIVATE KEY-----"),
            ("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n-----END RSA PRIVATE KEY-----\n", "headers"),
            ("-----BEGIN CERTIFICATE-----\nMA!=\n-----END CERTIFICATE-----\n", "not valid base64"),
            ("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", "is empty"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn der_sequence_check() {
        assert!(is_der_sequence(&[0x30, 0]));
        assert!(is_der_sequence(&[0x30, 2, 5, 0]));
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.extend([0; 256]);
        assert!(is_der_sequence(&long));
        long.pop();
        assert!(!is_der_sequence(&long), "truncated");
        assert!(!is_der_sequence(&[0x31, 0]), "not a SEQUENCE");
        assert!(!is_der_sequence(&[0x30, 1, 0, 0]), "trailing bytes");
        assert!(!is_der_sequence(&[0x30, 0x80]), "indefinite length");
    }

    #[test]
    fn read_certs_wants_certificates() {
        let (_d, path) = file(b"hello\n");
        assert!(bad_pem(read_certs(&path)).contains("no PEM data"));
        let (_d, path) = file(pem("PRIVATE KEY", &[1]).as_bytes());
        assert!(bad_pem(read_certs(&path)).contains("no CERTIFICATE block (found PRIVATE KEY)"));
        let (_d, path) = file(pem("CERTIFICATE", &[0x30, 5, 0]).as_bytes());
        assert!(bad_pem(read_certs(&path)).contains("certificate 1 is not a DER certificate"));
        let (_d, path) = file(&[0x30, 0x82, 0xff, 0xfe]);
        assert!(bad_pem(read_certs(&path)).contains("binary DER"));
    }

    #[test]
    fn read_key_wants_one_unencrypted_pkcs8_key() {
        let generated = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let (_d, path) = file(generated.serialize_pem().as_bytes());
        assert_eq!(
            read_key(&path).unwrap().serialize_der(),
            generated.serialize_der()
        );

        let (_d, path) = file(pem("EC PRIVATE KEY", &[1]).as_bytes());
        assert!(bad_pem(read_key(&path)).contains("EC PRIVATE KEY is not PKCS#8"));
        let (_d, path) = file(pem("ENCRYPTED PRIVATE KEY", &[1]).as_bytes());
        assert!(bad_pem(read_key(&path)).contains("encrypted"));
        let two = generated.serialize_pem().repeat(2);
        let (_d, path) = file(two.as_bytes());
        assert!(bad_pem(read_key(&path)).contains("more than one"));
        let (_d, path) = file(pem("PRIVATE KEY", &[0x30, 0]).as_bytes());
        assert!(bad_pem(read_key(&path)).contains("not a usable PKCS#8 private key"));
        let (_d, path) = file(pem("CERTIFICATE", &[0x30, 0]).as_bytes());
        assert!(bad_pem(read_key(&path)).contains("no PRIVATE KEY block (found CERTIFICATE)"));
    }
}
