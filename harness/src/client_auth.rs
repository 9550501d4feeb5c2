//! Whether a DTLS server asks clients for a certificate: one enum for the command line (`serve --client-auth`),
//! scenarios (`dtls.server.client_auth`) and the embedded server. A leaf: it imports nothing of the crate.

/// Whether the server asks DTLS clients for a certificate (RFC 5246 §7.4.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// No CertificateRequest: any client may connect (ThingsBoard's access-token devices).
    #[default]
    None,
    /// Ask for a certificate; a client without one still connects, but one that presents a certificate
    /// not issued by a `client_ca` is refused (ThingsBoard's default, "WANTED").
    Want,
    /// A certificate issued by a `client_ca` is mandatory.
    Require,
    /// ThingsBoard's X.509 device authentication (`TbCoapDtlsCertificateVerifier`): a certificate is asked
    /// for but optional; an expired or not-yet-valid one is refused in the handshake with a fatal
    /// `bad_certificate` alert; any other is accepted there, from any issuer (no path validation), and left to
    /// the device API to look up as a device credential.
    Thingsboard,
}
