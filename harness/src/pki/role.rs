//! The roles in the test PKI: for each, its file names, who signed it, and what a correct peer does with it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One certificate (and key) in the generated PKI, good or deliberately bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The root CA both sides trust.
    #[serde(rename = "ca")]
    CaRoot,
    /// The server certificate for the hosts, signed by the root CA.
    Server,
    /// The server certificate followed by the root CA certificate, with the server key.
    ServerChain,
    /// The device (client) certificate, signed by the root CA.
    Client,
    /// A second root CA, unrelated to the first and trusted by nobody.
    UnknownCa,
    /// A server certificate for the hosts, signed by the unknown CA.
    UnknownServer,
    /// A server certificate signed by the root CA whose validity ended yesterday.
    ExpiredServer,
    /// A server certificate signed by the root CA whose validity starts in 30 days.
    NotYetValidServer,
    /// A server certificate signed by the root CA for `wrong.example` only.
    WrongHostServer,
    /// A server certificate for the hosts that signs itself.
    SelfSignedServer,
    /// A device certificate signed by the unknown CA.
    RogueClient,
    /// A device certificate signed by the root CA whose validity ended yesterday.
    ExpiredClient,
}

/// Who signed a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignedBy {
    /// The root CA ([`Role::CaRoot`]); the CA itself is self-signed but is recorded as `ca`.
    Ca,
    /// The unrelated CA ([`Role::UnknownCa`]).
    UnknownCa,
    /// The certificate's own key.
    #[serde(rename = "self")]
    SelfSigned,
}

/// What a correct peer concludes when this certificate is presented to it (a peer trusting only `ca.pem`,
/// connecting to one of the hosts), by name, so a trust matrix can compare verdicts without parsing prose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustVerdict {
    /// Not presented in a handshake: it is what peers are configured to trust.
    TrustAnchor,
    /// The handshake succeeds.
    Accept,
    /// The handshake fails: the issuer is not a trusted CA.
    UnknownCa,
    /// The handshake fails: the certificate has expired.
    Expired,
    /// The handshake fails: the certificate is not valid yet.
    NotYetValid,
    /// The handshake fails: the certificate is not for the host connected to.
    HostnameMismatch,
    /// The handshake fails: the certificate is self-signed.
    SelfSigned,
}

impl Role {
    /// Every role, in the order the manifest lists them.
    pub const ALL: [Role; 12] = [
        Role::CaRoot,
        Role::Server,
        Role::ServerChain,
        Role::Client,
        Role::UnknownCa,
        Role::UnknownServer,
        Role::ExpiredServer,
        Role::NotYetValidServer,
        Role::WrongHostServer,
        Role::SelfSignedServer,
        Role::RogueClient,
        Role::ExpiredClient,
    ];

    /// The role's name in `manifest.json` (`ca`, `server`, `expired_server`...).
    pub fn name(self) -> &'static str {
        match self {
            Role::CaRoot => "ca",
            Role::Server => "server",
            Role::ServerChain => "server_chain",
            Role::Client => "client",
            Role::UnknownCa => "unknown_ca",
            Role::UnknownServer => "unknown_server",
            Role::ExpiredServer => "expired_server",
            Role::NotYetValidServer => "not_yet_valid_server",
            Role::WrongHostServer => "wrong_host_server",
            Role::SelfSignedServer => "self_signed_server",
            Role::RogueClient => "rogue_client",
            Role::ExpiredClient => "expired_client",
        }
    }

    /// The certificate file name, relative to the PKI folder.
    pub fn cert_file(self) -> &'static str {
        match self {
            Role::CaRoot => "ca.pem",
            Role::Server => "server.pem",
            Role::ServerChain => "server-chain.pem",
            Role::Client => "client.pem",
            Role::UnknownCa => "unknown-ca.pem",
            Role::UnknownServer => "unknown-server.pem",
            Role::ExpiredServer => "expired-server.pem",
            Role::NotYetValidServer => "notyet-server.pem",
            Role::WrongHostServer => "wronghost-server.pem",
            Role::SelfSignedServer => "selfsigned-server.pem",
            Role::RogueClient => "rogue-client.pem",
            Role::ExpiredClient => "expired-client.pem",
        }
    }

    /// The private key file name, relative to the PKI folder (the chain shares `server.key`).
    pub fn key_file(self) -> &'static str {
        match self {
            Role::CaRoot => "ca.key",
            Role::Server | Role::ServerChain => "server.key",
            Role::Client => "client.key",
            Role::UnknownCa => "unknown-ca.key",
            Role::UnknownServer => "unknown-server.key",
            Role::ExpiredServer => "expired-server.key",
            Role::NotYetValidServer => "notyet-server.key",
            Role::WrongHostServer => "wronghost-server.key",
            Role::SelfSignedServer => "selfsigned-server.key",
            Role::RogueClient => "rogue-client.key",
            Role::ExpiredClient => "expired-client.key",
        }
    }

    /// Who signs this role's certificate.
    pub fn signed_by(self) -> SignedBy {
        match self {
            Role::UnknownServer | Role::RogueClient => SignedBy::UnknownCa,
            Role::SelfSignedServer => SignedBy::SelfSigned,
            // Each CA is self-signed, but names itself as signer: `ca` for the root, `unknown_ca` for the other.
            Role::UnknownCa => SignedBy::UnknownCa,
            _ => SignedBy::Ca,
        }
    }

    /// What a correct peer concludes from this certificate.
    pub fn verdict(self) -> TrustVerdict {
        match self {
            Role::CaRoot => TrustVerdict::TrustAnchor,
            Role::Server | Role::ServerChain | Role::Client => TrustVerdict::Accept,
            Role::UnknownCa | Role::UnknownServer | Role::RogueClient => TrustVerdict::UnknownCa,
            Role::ExpiredServer | Role::ExpiredClient => TrustVerdict::Expired,
            Role::NotYetValidServer => TrustVerdict::NotYetValid,
            Role::WrongHostServer => TrustVerdict::HostnameMismatch,
            Role::SelfSignedServer => TrustVerdict::SelfSigned,
        }
    }

    /// One line on what the role is for.
    pub fn description(self) -> &'static str {
        match self {
            Role::CaRoot => "root CA that signs the good server and client certificates and the expired, not-yet-valid and wrong-host ones",
            Role::Server => "server certificate for every host, signed by the root CA (EKU serverAuth)",
            Role::ServerChain => "server.pem followed by ca.pem, for servers that send the whole chain; key is server.key",
            Role::Client => "device certificate signed by the root CA (EKU clientAuth)",
            Role::UnknownCa => "a second root CA, unrelated to the first; a peer configured with it instead of ca.pem must distrust everything else here",
            Role::UnknownServer => "server certificate for every host, signed by the unknown CA",
            Role::ExpiredServer => "server certificate for every host, signed by the root CA, validity entirely in the past",
            Role::NotYetValidServer => "server certificate for every host, signed by the root CA, validity entirely in the future",
            Role::WrongHostServer => "server certificate signed by the root CA, valid now, for wrong.example only",
            Role::SelfSignedServer => "server certificate for every host that signs itself (not issued by any CA)",
            Role::RogueClient => "device certificate signed by the unknown CA",
            Role::ExpiredClient => "device certificate signed by the root CA, validity entirely in the past",
        }
    }

    /// One line on what a correct peer must do with it.
    pub fn expect(self) -> &'static str {
        match self {
            Role::CaRoot => "trust anchor: clients verify the server with it, servers verify client certificates with it",
            Role::Server => "handshake succeeds for a client trusting ca.pem and connecting to any of the hosts",
            Role::ServerChain => "handshake succeeds, as with server.pem",
            Role::Client => "a server requiring client certificates issued by ca.pem accepts it",
            Role::UnknownCa => "a client trusting only unknown-ca.pem fails the handshake with server.pem: unknown CA",
            Role::UnknownServer => "handshake fails: certificate issued by an unknown CA",
            Role::ExpiredServer => "handshake fails: certificate expired",
            Role::NotYetValidServer => "handshake fails: certificate not yet valid",
            Role::WrongHostServer => "handshake fails: certificate not valid for the host connected to (hostname mismatch)",
            Role::SelfSignedServer => "handshake fails: self-signed certificate, not issued by a trusted CA",
            Role::RogueClient => "a server requiring client certificates issued by ca.pem refuses it: unknown CA",
            Role::ExpiredClient => "a server requiring client certificates issued by ca.pem refuses it: certificate expired",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_match_name() {
        for role in Role::ALL {
            assert_eq!(
                serde_json::to_string(&role).unwrap(),
                format!("\"{}\"", role.name())
            );
            let back: Role = serde_json::from_str(&format!("\"{}\"", role.name())).unwrap();
            assert_eq!(back, role);
        }
    }

    #[test]
    fn file_names_are_distinct_except_the_shared_server_key() {
        let mut files: Vec<&str> = Role::ALL.iter().map(|r| r.cert_file()).collect();
        files.extend(
            Role::ALL
                .iter()
                .filter(|r| **r != Role::ServerChain)
                .map(|r| r.key_file()),
        );
        let n = files.len();
        files.sort_unstable();
        files.dedup();
        assert_eq!(files.len(), n, "duplicate file name");
        assert_eq!(Role::ServerChain.key_file(), Role::Server.key_file());
    }
}
