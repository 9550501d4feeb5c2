//! The PKI for device-side trust tests (`device_trust:`): one CA the device is told to trust, and for each
//! case the chain a rogue server presents (good, expired, wrong host, client-only EKU, CA as leaf, leaf
//! under an unsent intermediate...). ECDSA P-256 keys, ECDSA-with-SHA-256 signatures, in memory.

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
}

/// The CA and every case's server identity, for the host names `hosts`.
pub struct DevicePki {
    /// The CA certificate the device is told to trust (PEM).
    pub ca_pem: String,
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
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or(OffsetDateTime::now_utc());
        let ca = make(
            "coap-harness device-trust CA",
            &[],
            Kind::Ca,
            CA_WINDOW,
            now,
            None,
        )?;
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
        };
        Ok(Presented {
            chain: vec![made.cert.der().to_vec()],
            key_der: made.key.serialize_der(),
        })
    }
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
}
