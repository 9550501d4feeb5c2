//! The PKI for device-side trust tests (`device_trust:`): one CA the device is told to trust, and for each
//! case the chain a rogue server presents (good, expired, wrong host, client-only EKU, CA as leaf, leaf
//! under an unsent intermediate, SHA-1 signed...), and for the two-way variant the certificates a device
//! presents (valid, expired, from another CA). ECDSA P-256 keys, ECDSA-with-SHA-256 signatures (SHA-1 for
//! `WeakSignature`, see `pki::weak`), in memory. The CA is generated, or is the user's own (a CA already
//! flashed into a real device: [`DevicePki::with_ca`]), so the negative certificates chain to it.

use super::PkiError;
use super::Role;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

/// What a rogue server presents: the chain (leaf first, DER) and the leaf's PKCS#8 key (DER).
#[derive(Clone, Debug)]
pub struct Presented {
    pub chain: Vec<Vec<u8>>,
    pub key_der: Vec<u8>,
}

/// Which certificate to present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceCert {
    Valid,
    Expired,
    NotYetValid,
    WrongHost,
    SelfSigned,
    UnknownCa,
    WrongKeyUsage,
    CaAsLeaf,
    IncompleteChain,
    /// Signed by the trusted CA, for the host, with ECDSA-with-SHA1.
    WeakSignature,
}

/// Which certificate the device presents to the harness (two-way variant, `client_auth: require`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientCert {
    /// Signed by the CA the harness trusts for clients, in date, EKU clientAuth.
    Valid,
    /// Signed by that CA, validity ended yesterday.
    Expired,
    /// In date, signed by a CA the harness does not trust.
    OtherCa,
}

/// The CA and every case's server identity, for the host names `hosts`.
pub struct DevicePki {
    /// The CA certificate the device is told to trust (PEM).
    pub ca_pem: String,
    /// The same, DER (the user's own bytes when the CA is theirs).
    pub ca_der: Vec<u8>,
    ca: Made,
    unknown_ca: Made,
    intermediate: Made,
    hosts: Vec<String>,
    now: OffsetDateTime,
}

struct Made {
    cert: Certificate,
    key: KeyPair,
}

enum Kind {
    Ca,
    Server,
    ClientOnly,
}

fn failed(e: rcgen::Error) -> PkiError {
    PkiError::Generate {
        role: Role::Server,
        reason: e.to_string(),
    }
}

fn make(
    cn: &str,
    sans: &[String],
    kind: Kind,
    (from, until): (i64, i64),
    now: OffsetDateTime,
    issuer: Option<&Made>,
) -> Result<Made, PkiError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let mut params = CertificateParams::new(sans.to_vec()).map_err(failed)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "coap-harness device-trust PKI");
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.not_before = now + Duration::days(from);
    params.not_after = now + Duration::days(until);
    match kind {
        Kind::Ca => {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        }
        Kind::Server | Kind::ClientOnly => {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![match kind {
                Kind::Server => ExtendedKeyUsagePurpose::ServerAuth,
                _ => ExtendedKeyUsagePurpose::ClientAuth,
            }];
        }
    }
    if issuer.is_some() {
        params.use_authority_key_identifier_extension = true;
    }
    let cert = match issuer {
        Some(i) => params.signed_by(&key, &i.cert, &i.key),
        None => params.self_signed(&key),
    }
    .map_err(failed)?;
    Ok(Made { cert, key })
}

const CA_WINDOW: (i64, i64) = (-60, 3650);
const CURRENT: (i64, i64) = (-1, 365);

impl DevicePki {
    /// A fresh CA (and an unrelated one, and an intermediate under the CA) for server names `hosts`.
    pub fn generate(hosts: &[String]) -> Result<Self, PkiError> {
        let now = now();
        let ca = make(
            "coap-harness device-trust CA",
            &[],
            Kind::Ca,
            CA_WINDOW,
            now,
            None,
        )?;
        Self::around(ca, hosts, now)
    }

    /// The user's CA (`ca_der`, with its private key `ca_key`) as the trusted CA: every certificate the
    /// trusted CA signs is signed by it. rcgen re-creates the CA from its certificate to issue with it;
    /// the subject and subject key identifier are kept, so what it issues chains to the user's own
    /// certificate. The unknown CA and the intermediate are still generated.
    pub fn with_ca(hosts: &[String], ca_der: &[u8], ca_key: KeyPair) -> Result<Self, PkiError> {
        let der = rustls::pki_types::CertificateDer::from(ca_der.to_vec());
        let params = CertificateParams::from_ca_cert_der(&der).map_err(|e| PkiError::Generate {
            role: Role::CaRoot,
            reason: format!("the CA certificate cannot be used to issue: {e}"),
        })?;
        let cert = params
            .self_signed(&ca_key)
            .map_err(|e| PkiError::Generate {
                role: Role::CaRoot,
                reason: format!("the CA key cannot sign: {e}"),
            })?;
        let mut pki = Self::around(Made { cert, key: ca_key }, hosts, now())?;
        pki.ca_der = ca_der.to_vec();
        pki.ca_pem = pem(ca_der);
        Ok(pki)
    }

    fn around(ca: Made, hosts: &[String], now: OffsetDateTime) -> Result<Self, PkiError> {
        let unknown_ca = make(
            "coap-harness rogue CA (the device was not told to trust it)",
            &[],
            Kind::Ca,
            CA_WINDOW,
            now,
            None,
        )?;
        let intermediate = make(
            "coap-harness device-trust intermediate CA",
            &[],
            Kind::Ca,
            CA_WINDOW,
            now,
            Some(&ca),
        )?;
        Ok(DevicePki {
            ca_pem: ca.cert.pem(),
            ca_der: ca.cert.der().to_vec(),
            ca,
            unknown_ca,
            intermediate,
            hosts: hosts.to_vec(),
            now,
        })
    }

    /// The chain and key a rogue server presents for `which`.
    pub fn presented(&self, which: DeviceCert) -> Result<Presented, PkiError> {
        let cn = self
            .hosts
            .first()
            .map_or("localhost", String::as_str)
            .to_string();
        let (hosts, now) = (&self.hosts, self.now);
        let wrong = vec![super::WRONG_HOST.to_string()];
        let leaf =
            |sans: &[String], kind, window, issuer| make(&cn, sans, kind, window, now, issuer);
        let made = match which {
            DeviceCert::Valid => leaf(hosts, Kind::Server, CURRENT, Some(&self.ca))?,
            DeviceCert::Expired => leaf(hosts, Kind::Server, (-30, -1), Some(&self.ca))?,
            DeviceCert::NotYetValid => leaf(hosts, Kind::Server, (30, 365), Some(&self.ca))?,
            DeviceCert::WrongHost => make(
                super::WRONG_HOST,
                &wrong,
                Kind::Server,
                CURRENT,
                now,
                Some(&self.ca),
            )?,
            DeviceCert::SelfSigned => leaf(hosts, Kind::Server, CURRENT, None)?,
            DeviceCert::UnknownCa => leaf(hosts, Kind::Server, CURRENT, Some(&self.unknown_ca))?,
            DeviceCert::WrongKeyUsage => leaf(hosts, Kind::ClientOnly, CURRENT, Some(&self.ca))?,
            DeviceCert::CaAsLeaf => leaf(hosts, Kind::Ca, CURRENT, Some(&self.ca))?,
            DeviceCert::IncompleteChain => {
                leaf(hosts, Kind::Server, CURRENT, Some(&self.intermediate))?
            }
            DeviceCert::WeakSignature => {
                let made = leaf(hosts, Kind::Server, CURRENT, Some(&self.ca))?;
                let der = super::weak::resign_sha1(made.cert.der(), &self.ca.key.serialize_der())
                    .map_err(|reason| PkiError::Generate {
                    role: Role::Server,
                    reason,
                })?;
                return Ok(Presented {
                    chain: vec![der],
                    key_der: made.key.serialize_der(),
                });
            }
        };
        Ok(Presented {
            chain: vec![made.cert.der().to_vec()],
            key_der: made.key.serialize_der(),
        })
    }

    /// The certificate and key the device presents in a two-way case.
    pub fn client(&self, which: ClientCert) -> Result<Presented, PkiError> {
        let name = ["coap-harness test device".to_string()];
        let (window, issuer) = match which {
            ClientCert::Valid => (CURRENT, &self.ca),
            ClientCert::Expired => ((-30, -1), &self.ca),
            ClientCert::OtherCa => (CURRENT, &self.unknown_ca),
        };
        let made = make(
            &name[0],
            &name,
            Kind::ClientOnly,
            window,
            self.now,
            Some(issuer),
        )
        .map_err(|e| match e {
            PkiError::Generate { reason, .. } => PkiError::Generate {
                role: Role::Client,
                reason,
            },
            e => e,
        })?;
        Ok(Presented {
            chain: vec![made.cert.der().to_vec()],
            key_der: made.key.serialize_der(),
        })
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::now_utc())
}

/// A DER certificate as PEM.
pub fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap_or_default());
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

/// A PKCS#8 DER private key as PEM.
pub fn key_pem(der: &[u8]) -> String {
    pem(der)
        .replace("BEGIN CERTIFICATE", "BEGIN PRIVATE KEY")
        .replace("END CERTIFICATE", "END PRIVATE KEY")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_case_is_bad_for_its_one_reason() {
        let pki = DevicePki::generate(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        let parse = |w| {
            let p = pki.presented(w).unwrap();
            assert_eq!(p.chain.len(), 1);
            let der = rustls::pki_types::CertificateDer::from(p.chain[0].clone());
            CertificateParams::from_ca_cert_der(&der).unwrap()
        };
        assert!(matches!(parse(DeviceCert::Valid).is_ca, IsCa::ExplicitNoCa));
        assert!(parse(DeviceCert::Expired).not_after < OffsetDateTime::now_utc());
        assert!(parse(DeviceCert::NotYetValid).not_before > OffsetDateTime::now_utc());
        assert!(matches!(parse(DeviceCert::CaAsLeaf).is_ca, IsCa::Ca(_)));
        assert_eq!(
            parse(DeviceCert::WrongKeyUsage).extended_key_usages,
            [ExtendedKeyUsagePurpose::ClientAuth]
        );
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    /// Issuer name and authority key identifier of `der`, and subject name and subject key identifier of
    /// the CA `ca`: what a verifier matches to build the path.
    fn links(der: &[u8], ca: &[u8]) -> ((String, Vec<u8>), (String, Vec<u8>)) {
        use x509_parser::extensions::ParsedExtension;
        let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
        let (_, a) = x509_parser::parse_x509_certificate(ca).unwrap();
        let aki = c
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(k) => {
                    k.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            })
            .unwrap_or_default();
        let ski = a
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .unwrap_or_default();
        (
            (c.issuer().to_string(), aki),
            (a.subject().to_string(), ski),
        )
    }

    #[test]
    fn a_users_ca_signs_the_cases_and_the_device_certificates() {
        // The user's CA, made elsewhere (here: a separate rcgen CA with its own key identifier).
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Flashed CA");
        let user_ca = params.self_signed(&key).unwrap().der().to_vec();
        let pki = DevicePki::with_ca(&["localhost".into()], &user_ca, key).unwrap();
        assert_eq!(pki.ca_der, user_ca);
        for which in [
            DeviceCert::Valid,
            DeviceCert::Expired,
            DeviceCert::WeakSignature,
        ] {
            let leaf = &pki.presented(which).unwrap().chain[0];
            let (issued, ca) = links(leaf, &user_ca);
            assert_eq!(issued, ca, "{which:?}");
        }
        let valid = pki.client(ClientCert::Valid).unwrap();
        assert_eq!(
            links(&valid.chain[0], &user_ca).0,
            links(&valid.chain[0], &user_ca).1
        );
        let other = pki.client(ClientCert::OtherCa).unwrap();
        let (issued, ca) = links(&other.chain[0], &user_ca);
        assert_ne!(issued.0, ca.0);
        let expired = pki.client(ClientCert::Expired).unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&expired.chain[0]).unwrap();
        assert!(c.validity().not_after.timestamp() < OffsetDateTime::now_utc().unix_timestamp());
    }
}
