//! Re-signing a certificate with ECDSA-with-SHA1, for the `weak_signature` device-trust case. rcgen signs
//! only with SHA-256 and up, so the certificate is made by rcgen, then its TBSCertificate's `signature`
//! algorithm is swapped for ecdsa-with-SHA1 (1.2.840.10045.4.1) and signed again over a SHA-1 digest with the
//! issuer's ECDSA key (P-256 or P-384, RustCrypto `sign_prehash`). RSA and Ed25519 issuers cannot be used:
//! nothing here signs sha1WithRSA, and Ed25519 has no SHA-1 form; the error says so.

use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::DecodePrivateKey;
use sha1::{Digest, Sha1};

/// AlgorithmIdentifier { ecdsa-with-SHA1 } (no parameters), DER.
const ECDSA_WITH_SHA1: [u8; 11] = [
    0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01,
];

/// One DER element: its tag, and the byte ranges of the whole element and of its contents.
struct Tlv<'a> {
    tag: u8,
    whole: &'a [u8],
    content: &'a [u8],
}

/// Reads the element at the start of `der` (single-byte tags, definite lengths, as DER requires).
fn tlv(der: &[u8]) -> Option<Tlv<'_>> {
    let tag = *der.first()?;
    let first = *der.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in der.get(2..2 + n)? {
            len = (len << 8) | *b as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some(Tlv {
        tag,
        whole: der.get(..end)?,
        content: der.get(header..end)?,
    })
}

/// The elements of a SEQUENCE's contents, in order.
fn elements(mut content: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let t = tlv(content)?;
        content = &content[t.whole.len()..];
        out.push(t);
    }
    Some(out)
}

/// `tag` with a DER length and `content`.
fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// `cert` (DER, signed by anything) signed again by `issuer_pkcs8` (an ECDSA P-256 or P-384 private key,
/// PKCS#8 DER) with ECDSA-with-SHA1. Everything else in the certificate is kept byte for byte.
pub fn resign_sha1(cert: &[u8], issuer_pkcs8: &[u8]) -> Result<Vec<u8>, String> {
    let malformed = || "the certificate to re-sign is not DER X.509".to_string();
    let outer = tlv(cert).filter(|t| t.tag == 0x30).ok_or_else(malformed)?;
    let parts = elements(outer.content).ok_or_else(malformed)?;
    let tbs = parts
        .first()
        .filter(|t| t.tag == 0x30)
        .ok_or_else(malformed)?;
    let fields = elements(tbs.content).ok_or_else(malformed)?;
    // TBSCertificate: [0] version, serialNumber, signature AlgorithmIdentifier, issuer, ...
    let sig_index = if fields.first().is_some_and(|f| f.tag == 0xa0) {
        2
    } else {
        1
    };
    if fields.get(sig_index).is_none_or(|f| f.tag != 0x30) {
        return Err(malformed());
    }
    let mut tbs_content = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if i == sig_index {
            tbs_content.extend_from_slice(&ECDSA_WITH_SHA1);
        } else {
            tbs_content.extend_from_slice(f.whole);
        }
    }
    let new_tbs = encode(0x30, &tbs_content);
    let digest = Sha1::digest(&new_tbs);
    let signature = if let Ok(key) = p256::ecdsa::SigningKey::from_pkcs8_der(issuer_pkcs8) {
        let sig: p256::ecdsa::Signature = key
            .sign_prehash(&digest)
            .map_err(|e| format!("ECDSA P-256 signing failed: {e}"))?;
        sig.to_der().as_bytes().to_vec()
    } else if let Ok(key) = p384::ecdsa::SigningKey::from_pkcs8_der(issuer_pkcs8) {
        let sig: p384::ecdsa::Signature = key
            .sign_prehash(&digest)
            .map_err(|e| format!("ECDSA P-384 signing failed: {e}"))?;
        sig.to_der().as_bytes().to_vec()
    } else {
        return Err(
            "the issuing CA's key is not ECDSA P-256 or P-384: a SHA-1 signature can be made here only with \
             ECDSA (nothing here signs sha1WithRSA, and Ed25519 has no SHA-1 form)"
                .into(),
        );
    };
    let mut bits = vec![0u8];
    bits.extend(signature);
    let mut content = new_tbs;
    content.extend_from_slice(&ECDSA_WITH_SHA1);
    content.extend(encode(0x03, &bits));
    Ok(encode(0x30, &content))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use x509_parser::prelude::*;

    #[test]
    fn resigned_certificate_verifies_with_sha1_and_keeps_its_fields() {
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let der = resign_sha1(leaf.der(), &ca_key.serialize_der()).unwrap();
        let (rest, parsed) = parse_x509_certificate(&der).unwrap();
        assert!(rest.is_empty());
        let ecdsa_with_sha1 = "1.2.840.10045.4.1";
        assert_eq!(
            parsed.signature_algorithm.algorithm.to_id_string(),
            ecdsa_with_sha1
        );
        assert_eq!(
            parsed.tbs_certificate.signature.algorithm.to_id_string(),
            ecdsa_with_sha1
        );
        let (_, original) = parse_x509_certificate(leaf.der()).unwrap();
        assert_eq!(parsed.subject(), original.subject());
        assert_eq!(parsed.issuer(), original.issuer());
        assert_eq!(parsed.public_key().raw, original.public_key().raw);
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(ca_key.public_key_raw()).unwrap();
        let sig = p256::ecdsa::Signature::from_der(&parsed.signature_value.data).unwrap();
        let digest = Sha1::digest(parsed.tbs_certificate.as_ref());
        vk.verify_prehash(&digest, &sig).unwrap();
    }

    /// OpenSSL, an independent verifier, checks the SHA-1 signature when allowed to (`-auth_level 0`) and
    /// refuses it for its digest at level 1 (80 bits; TLS clients use 1 or more), which is what the
    /// `weak_signature` case is about.
    #[test]
    fn openssl_verifies_the_sha1_signature_only_when_weak_digests_are_allowed() {
        if std::process::Command::new("openssl")
            .arg("version")
            .output()
            .is_err()
        {
            eprintln!("SKIPPED: openssl CLI not installed");
            return;
        }
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "weak test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let der = resign_sha1(leaf.der(), &ca_key.serialize_der()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("leaf.pem"), crate::pki::device::pem(&der)).unwrap();
        let verify = |level: &str| {
            let o = std::process::Command::new("openssl")
                .current_dir(dir.path())
                .args([
                    "verify",
                    "-CAfile",
                    "ca.pem",
                    "-auth_level",
                    level,
                    "leaf.pem",
                ])
                .output()
                .unwrap();
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        };
        let lenient = verify("0");
        assert!(lenient.contains("leaf.pem: OK"), "{lenient}");
        let strict = verify("1");
        assert!(strict.contains("too weak"), "{strict}");
    }

    #[test]
    fn rejects_a_key_that_cannot_sign_sha1() {
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".to_string()])
            .unwrap()
            .self_signed(&ed)
            .unwrap();
        let err = resign_sha1(cert.der(), &ed.serialize_der()).unwrap_err();
        assert!(err.contains("not ECDSA"), "{err}");
        assert!(resign_sha1(&[0x30, 0x05, 1], &ed.serialize_der())
            .unwrap_err()
            .contains("not DER"));
    }
}
