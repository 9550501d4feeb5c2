use rand_core::OsRng; // requires 'getrandom' feature

use crate::error::*;

// https://www.iana.org/assignments/tls-parameters/tls-parameters.xml#tls-parameters-8
#[repr(u16)]
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum NamedCurve {
    Unsupported = 0x0000,
    P256 = 0x0017,
    P384 = 0x0018,
    X25519 = 0x001d,
}

impl From<u16> for NamedCurve {
    fn from(val: u16) -> Self {
        match val {
            0x0017 => NamedCurve::P256,
            0x0018 => NamedCurve::P384,
            0x001d => NamedCurve::X25519,
            _ => NamedCurve::Unsupported,
        }
    }
}

/// The curves a connection supports when `Config::named_curves` is empty, most preferred first: upstream's
/// order (coap-harness fork, FORK.md change 9).
pub const DEFAULT_NAMED_CURVES: [NamedCurve; 3] =
    [NamedCurve::P256, NamedCurve::X25519, NamedCurve::P384];

pub(crate) enum NamedCurvePrivateKey {
    /// coap-harness fork (FORK.md change 8): P-256 and P-384 ephemeral keys are ring's (upstream: RustCrypto
    /// `p256`/`p384`, several times slower here). A ring ephemeral key agrees once; the key is taken out of
    /// the `Option` by that agreement (`prf::prf_pre_master_secret`).
    EphemeralRing(std::sync::Mutex<Option<ring::agreement::EphemeralPrivateKey>>),
    StaticSecretX25519(x25519_dalek::StaticSecret),
}

pub struct NamedCurveKeypair {
    pub(crate) curve: NamedCurve,
    pub(crate) public_key: Vec<u8>,
    pub(crate) private_key: NamedCurvePrivateKey,
}

/// ring's agreement algorithm for a NIST curve (`None` for X25519, done by x25519-dalek, and unknown curves).
pub(crate) fn ring_agreement_algorithm(
    curve: NamedCurve,
) -> Option<&'static ring::agreement::Algorithm> {
    match curve {
        NamedCurve::P256 => Some(&ring::agreement::ECDH_P256),
        NamedCurve::P384 => Some(&ring::agreement::ECDH_P384),
        _ => None,
    }
}

fn elliptic_curve_keypair(curve: NamedCurve) -> Result<NamedCurveKeypair> {
    let (public_key, private_key) = match curve {
        NamedCurve::P256 | NamedCurve::P384 => {
            let algorithm = ring_agreement_algorithm(curve).ok_or(Error::ErrInvalidNamedCurve)?;
            let rng = ring::rand::SystemRandom::new();
            let secret_key = ring::agreement::EphemeralPrivateKey::generate(algorithm, &rng)
                .map_err(|_| Error::Other("ECDHE key generation failed".into()))?;
            // Uncompressed SEC1 point, as the ECPointFormat we announce (and upstream sent).
            let public_key = secret_key
                .compute_public_key()
                .map_err(|_| Error::Other("ECDHE key generation failed".into()))?;
            (
                public_key.as_ref().to_vec(),
                NamedCurvePrivateKey::EphemeralRing(std::sync::Mutex::new(Some(secret_key))),
            )
        }
        NamedCurve::X25519 => {
            let secret_key = x25519_dalek::StaticSecret::random_from_rng(OsRng);
            let public_key = x25519_dalek::PublicKey::from(&secret_key);
            (
                public_key.as_bytes().to_vec(),
                NamedCurvePrivateKey::StaticSecretX25519(secret_key),
            )
        }
        _ => return Err(Error::ErrInvalidNamedCurve),
    };

    Ok(NamedCurveKeypair {
        curve,
        public_key,
        private_key,
    })
}

impl NamedCurve {
    pub fn generate_keypair(&self) -> Result<NamedCurveKeypair> {
        match *self {
            NamedCurve::X25519 => elliptic_curve_keypair(NamedCurve::X25519),
            NamedCurve::P256 => elliptic_curve_keypair(NamedCurve::P256),
            NamedCurve::P384 => elliptic_curve_keypair(NamedCurve::P384),
            _ => Err(Error::ErrInvalidNamedCurve),
        }
    }
}
