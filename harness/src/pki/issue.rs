//! Makes the key and certificate of every role with rcgen: ECDSA P-256 keys, ECDSA-with-SHA-256 signatures.
//! Pure apart from key generation: nothing here touches the file system.

use super::hosts::WRONG_HOST;
use super::manifest::{timestamp, Entry};
use super::{PkiError, Role, SignedBy};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

/// Subject CN of the root CA.
pub const CA_NAME: &str = "coap-harness test root CA";
/// Subject CN of the unrelated CA.
pub const UNKNOWN_CA_NAME: &str = "coap-harness unknown CA (trust nothing it signed)";
/// Subject CN of every device certificate, good or bad.
pub const CLIENT_NAME: &str = "coap-harness device";
/// Subject O of everything generated.
const ORGANIZATION: &str = "coap-harness test PKI";

/// One role's material, ready to write.
#[derive(Clone)]
pub struct Issued {
    /// Its manifest entry.
    pub entry: Entry,
    /// The certificate PEM (for the chain: server then CA).
    pub cert_pem: String,
    /// The PKCS#8 private key PEM (for the chain: the server's).
    pub key_pem: String,
}

#[derive(Clone, Copy)]
enum Profile {
    Ca,
    Server,
    Client,
}

/// When a certificate is valid, relative to now.
#[derive(Clone, Copy)]
struct Window {
    from_days: i64,
    until_days: i64,
}

/// The CAs' validity starts before the expired certificates' so that those were once valid in full: each bad
/// certificate is bad for one reason only.
const CA_WINDOW: Window = Window {
    from_days: -60,
    until_days: 3650,
};
const CURRENT: Window = Window {
    from_days: -1,
    until_days: 365,
};
const PAST: Window = Window {
    from_days: -30,
    until_days: -1,
};
const FUTURE: Window = Window {
    from_days: 30,
    until_days: 365,
};

/// A made certificate with its key, kept to sign others.
struct Made {
    cert: Certificate,
    key: KeyPair,
}

/// Every role's material, in [`Role::ALL`] order, for a server certificate covering `hosts` (first is the CN).
pub fn issue_all(hosts: &[String], now: OffsetDateTime) -> Result<Vec<Issued>, PkiError> {
    // Whole seconds: certificates carry no fractions, and the manifest must state exactly what they say.
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let make_role = |role: Role, issuer: Option<&Made>| -> Result<(Made, Issued), PkiError> {
        let (profile, cn, sans, window) = spec(role, hosts);
        let made = make(role, now, profile, &cn, &sans, window, issuer)?;
        let issued = issued(role, &made, &cn, &sans, window, now);
        Ok((made, issued))
    };
    let (ca, ca_issued) = make_role(Role::CaRoot, None)?;
    let (unknown_ca, unknown_ca_issued) = make_role(Role::UnknownCa, None)?;
    let (_, server) = make_role(Role::Server, Some(&ca))?;
    Role::ALL
        .into_iter()
        .map(|role| match role {
            Role::CaRoot => Ok(ca_issued.clone()),
            Role::UnknownCa => Ok(unknown_ca_issued.clone()),
            Role::Server => Ok(server.clone()),
            Role::ServerChain => Ok(Issued {
                entry: server.entry.clone().retarget(role),
                cert_pem: format!("{}{}", server.cert_pem, ca_issued.cert_pem),
                key_pem: server.key_pem.clone(),
            }),
            _ => {
                let issuer = match role.signed_by() {
                    SignedBy::Ca => Some(&ca),
                    SignedBy::UnknownCa => Some(&unknown_ca),
                    SignedBy::SelfSigned => None,
                };
                make_role(role, issuer).map(|(_, issued)| issued)
            }
        })
        .collect()
}

/// The profile, subject CN, SANs and validity of a role (the chain is the server's).
fn spec(role: Role, hosts: &[String]) -> (Profile, String, Vec<String>, Window) {
    let server_cn = hosts.first().map_or("localhost", String::as_str);
    let server = |window| {
        (
            Profile::Server,
            server_cn.to_string(),
            hosts.to_vec(),
            window,
        )
    };
    let client = |window| (Profile::Client, CLIENT_NAME.to_string(), Vec::new(), window);
    match role {
        Role::CaRoot => (Profile::Ca, CA_NAME.to_string(), Vec::new(), CA_WINDOW),
        Role::UnknownCa => (
            Profile::Ca,
            UNKNOWN_CA_NAME.to_string(),
            Vec::new(),
            CA_WINDOW,
        ),
        Role::Client | Role::RogueClient => client(CURRENT),
        Role::ExpiredClient => client(PAST),
        Role::ExpiredServer => server(PAST),
        Role::NotYetValidServer => server(FUTURE),
        Role::WrongHostServer => (
            Profile::Server,
            WRONG_HOST.to_string(),
            vec![WRONG_HOST.to_string()],
            CURRENT,
        ),
        Role::Server | Role::ServerChain | Role::UnknownServer | Role::SelfSignedServer => {
            server(CURRENT)
        }
    }
}

fn issued(
    role: Role,
    made: &Made,
    cn: &str,
    sans: &[String],
    window: Window,
    now: OffsetDateTime,
) -> Issued {
    let (from, until) = window.at(now);
    Issued {
        entry: Entry::new(role, cn, sans, timestamp(from), timestamp(until)),
        cert_pem: made.cert.pem(),
        key_pem: made.key.serialize_pem(),
    }
}

fn make(
    role: Role,
    now: OffsetDateTime,
    profile: Profile,
    cn: &str,
    sans: &[String],
    window: Window,
    issuer: Option<&Made>,
) -> Result<Made, PkiError> {
    let failed = |e: rcgen::Error| PkiError::Generate {
        role,
        reason: e.to_string(),
    };
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let mut params = CertificateParams::new(sans.to_vec()).map_err(failed)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    (params.not_before, params.not_after) = window.at(now);
    match profile {
        Profile::Ca => {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        }
        Profile::Server | Profile::Client => {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![match profile {
                Profile::Server => ExtendedKeyUsagePurpose::ServerAuth,
                _ => ExtendedKeyUsagePurpose::ClientAuth,
            }];
            params.use_authority_key_identifier_extension = true;
        }
    }
    let cert = match issuer {
        Some(issuer) => params.signed_by(&key, &issuer.cert, &issuer.key),
        None => params.self_signed(&key),
    }
    .map_err(failed)?;
    Ok(Made { cert, key })
}

impl Window {
    fn at(self, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
        (
            now + Duration::days(self.from_days),
            now + Duration::days(self.until_days),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::SanType;
    use std::net::IpAddr;

    fn all() -> (OffsetDateTime, Vec<Issued>) {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let hosts: Vec<String> = ["localhost", "127.0.0.1", "::1", "tb.example.com"]
            .map(String::from)
            .to_vec();
        (now, issue_all(&hosts, now).unwrap())
    }

    /// The certificate as x509-parser (through rcgen) reads it back.
    fn parsed(issued: &Issued) -> CertificateParams {
        CertificateParams::from_ca_cert_pem(&issued.cert_pem).unwrap()
    }

    fn get(all: &[Issued], role: Role) -> &Issued {
        all.iter().find(|i| i.entry.role == role).unwrap()
    }

    #[test]
    fn one_issued_per_role_in_order() {
        let (_, all) = all();
        let roles: Vec<Role> = all.iter().map(|i| i.entry.role).collect();
        assert_eq!(roles, Role::ALL);
        for i in &all {
            assert!(
                i.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
                "{}",
                i.entry.role
            );
            assert!(
                i.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"),
                "{}",
                i.entry.role
            );
        }
    }

    #[test]
    fn ca_is_a_ca_for_ten_years_from_before_the_expired_leaves() {
        let (now, all) = all();
        let ca = parsed(get(&all, Role::CaRoot));
        assert!(matches!(ca.is_ca, IsCa::Ca(_)));
        assert_eq!(
            ca.key_usages,
            [KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign]
        );
        assert_eq!(ca.not_before, now - Duration::days(60));
        assert_eq!(ca.not_after, now + Duration::days(3650));
        let cn = ca.distinguished_name.get(&DnType::CommonName).unwrap();
        assert_eq!(cn, &rcgen::DnValue::Utf8String(CA_NAME.into()));
    }

    #[test]
    fn server_covers_every_host_for_server_auth_only() {
        let (now, all) = all();
        let server = parsed(get(&all, Role::Server));
        assert!(matches!(server.is_ca, IsCa::ExplicitNoCa));
        assert_eq!(
            server.extended_key_usages,
            [ExtendedKeyUsagePurpose::ServerAuth]
        );
        assert_eq!(
            server.subject_alt_names,
            [
                SanType::DnsName("localhost".try_into().unwrap()),
                SanType::IpAddress("127.0.0.1".parse::<IpAddr>().unwrap()),
                SanType::IpAddress("::1".parse::<IpAddr>().unwrap()),
                SanType::DnsName("tb.example.com".try_into().unwrap()),
            ]
        );
        assert_eq!(server.not_before, now - Duration::days(1));
        assert_eq!(server.not_after, now + Duration::days(365));
        assert_eq!(
            parsed(get(&all, Role::Client)).extended_key_usages,
            [ExtendedKeyUsagePurpose::ClientAuth]
        );
    }

    #[test]
    fn negative_windows_and_names() {
        let (now, all) = all();
        for role in [Role::ExpiredServer, Role::ExpiredClient] {
            assert!(parsed(get(&all, role)).not_after < now, "{role}");
        }
        assert!(parsed(get(&all, Role::NotYetValidServer)).not_before > now);
        assert_eq!(
            parsed(get(&all, Role::WrongHostServer)).subject_alt_names,
            [SanType::DnsName(WRONG_HOST.try_into().unwrap())]
        );
        let entry = &get(&all, Role::ExpiredServer).entry;
        assert_eq!(entry.valid_until, timestamp(now - Duration::days(1)));
    }

    #[test]
    fn chain_is_server_then_ca_with_the_server_key() {
        let (_, all) = all();
        let (server, ca, chain) = (
            get(&all, Role::Server),
            get(&all, Role::CaRoot),
            get(&all, Role::ServerChain),
        );
        assert_eq!(
            chain.cert_pem,
            format!("{}{}", server.cert_pem, ca.cert_pem)
        );
        assert_eq!(chain.key_pem, server.key_pem);
        assert_eq!(chain.entry.cert, "server-chain.pem");
        assert_eq!(chain.entry.key, "server.key");
    }
}
