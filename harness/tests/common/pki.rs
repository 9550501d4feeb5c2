//! The crate's own test PKI (`coap_harness::pki::generate`, what `coap-harness certs` writes) in a temporary
//! folder, read back the way the DTLS stack takes it: tests use it instead of making certificates by hand.

use coap_harness::pki::{self, Manifest, PkiOptions, Role};
use coap_harness::transport::dtls::signing_key;
use dtls::crypto::Certificate;

/// A generated PKI (every [`Role`]'s certificate and key) that lives as long as the value.
pub struct TestPki {
    _dir: tempfile::TempDir,
    pub manifest: Manifest,
}

impl TestPki {
    /// Generates the PKI for the default hosts (`localhost`, `127.0.0.1`, `::1`).
    pub fn new() -> TestPki {
        let dir = tempfile::tempdir().unwrap();
        let generated = pki::generate(&PkiOptions {
            out: dir.path().to_path_buf(),
            ..Default::default()
        })
        .expect("test PKI generated");
        TestPki {
            _dir: dir,
            manifest: generated.manifest,
        }
    }

    /// `role`'s certificate (chain) and key as a DTLS identity.
    pub fn identity(&self, role: Role) -> Certificate {
        let (cert, key) = self.manifest.path(role);
        let id = pki::read_identity(&cert, &key).expect("identity reads back");
        Certificate {
            certificate: id.chain,
            private_key: signing_key(&id.key).expect("a key the DTLS stack signs with"),
        }
    }

    /// One more client certificate of the root CA, for `name`, signed with the root CA's key as it was
    /// generated (the material has one client; tests that need a second, unregistered one ask here).
    pub fn issue_client(&self, name: &str) -> Certificate {
        let ca_pem = std::fs::read_to_string(self.manifest.cert_path(Role::CaRoot)).unwrap();
        let ca_key =
            pki::read_key(&self.manifest.key_path(Role::CaRoot)).expect("CA key reads back");
        let issuer = rcgen::CertificateParams::from_ca_cert_pem(&ca_pem)
            .expect("CA certificate parses")
            .self_signed(&ca_key)
            .expect("issuer");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &issuer, &ca_key).unwrap();
        Certificate {
            certificate: vec![cert.der().clone()],
            private_key: dtls::crypto::CryptoPrivateKey::from_key_pair(&key).unwrap(),
        }
    }

    /// A root store holding `role`'s certificate (a CA: [`Role::CaRoot`] or [`Role::UnknownCa`]).
    pub fn roots(&self, role: Role) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        for der in pki::read_certs(&self.manifest.cert_path(role)).expect("CA reads back") {
            roots.add(der.into()).expect("a CA certificate");
        }
        roots
    }
}
