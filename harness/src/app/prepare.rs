//! Before any socket opens: the run's PKI (generated or loaded), and every certificate and key the plan
//! names, loaded into the types the DTLS drivers take. Problems are one-line errors naming the file.

use super::EngineError;
use crate::pki::{self, Manifest, PkiOptions};
use crate::scenario::plan::{CertRef, ClientTrust, PkiPlan, RunPlan, Target};
use crate::transport::dtls::ClientSettings;
use crate::trust::ServerTrust;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use std::path::{Path, PathBuf};

/// The run's PKI; a generated one lives in a temporary folder removed when this is dropped.
pub struct RunPki {
    pub manifest: Manifest,
    _temp: Option<tempfile::TempDir>,
}

impl RunPki {
    pub fn dir(&self) -> &Path {
        self.manifest.dir()
    }
}

/// Generates or loads the PKI the plan asks for.
pub fn pki(plan: &RunPlan) -> Result<Option<RunPki>, EngineError> {
    match &plan.pki {
        None => Ok(None),
        Some(PkiPlan::Generate) => {
            let temp = tempfile::Builder::new()
                .prefix("coap-harness-pki-")
                .tempdir()
                .map_err(|e| {
                    EngineError::Credentials(format!("cannot make a folder for the run's PKI: {e}"))
                })?;
            let generated = pki::generate(&PkiOptions {
                out: temp.path().to_path_buf(),
                hosts: Vec::new(),
                force: true,
            })?;
            if let Some(n) = fleet_size(plan) {
                pki::fleet::generate_devices(temp.path(), n, true)?;
            }
            Ok(Some(RunPki {
                manifest: generated.manifest,
                _temp: Some(temp),
            }))
        }
        Some(PkiPlan::Dir(dir)) => Ok(Some(RunPki {
            manifest: pki::load_manifest(dir)?,
            _temp: None,
        })),
    }
}

/// How many device certificates a generated PKI needs (`certs --devices N`), when the plan names files in
/// it (`{pki}/...`): one per scenario device when the fleet's certificate is per device, else one.
fn fleet_size(plan: &RunPlan) -> Option<u64> {
    let in_pki = |r: &CertRef| matches!(r, CertRef::PkiFile(_));
    let clients = plan
        .dtls
        .iter()
        .map(|d| &d.client)
        .chain(plan.trust_cases.iter().map(|c| &c.client));
    let refs: Vec<&CertRef> = clients
        .flat_map(|t| t.client_cert.iter().flat_map(|(c, k)| [c, k]))
        .collect();
    let servers = plan
        .dtls
        .iter()
        .map(|d| &d.server)
        .chain(plan.trust_cases.iter().map(|c| &c.server));
    let server_refs: Vec<&CertRef> = servers
        .flat_map(|s| [Some(&s.client_ca), s.device_certs.as_ref()])
        .flatten()
        .collect();
    if !refs.iter().chain(&server_refs).any(|r| in_pki(r)) {
        return None;
    }
    let per_device = plan
        .dtls
        .as_ref()
        .and_then(|d| d.client.client_cert.as_ref())
        .is_some_and(|(c, _)| c.per_device());
    Some(if per_device {
        plan.devices.global(plan.devices.count.saturating_sub(1)) + 1
    } else {
        1
    })
}

/// The file a reference stands for (`key` picks the role's key file).
pub fn resolve(r: &CertRef, run_pki: Option<&RunPki>, key: bool) -> Result<PathBuf, EngineError> {
    match r {
        CertRef::File(p) => Ok(p.clone()),
        CertRef::PkiFile(p) => Ok(run_pki
            .ok_or_else(|| {
                EngineError::Credentials(format!("{r} needs a PKI (pki: generate or pki: DIR)"))
            })?
            .dir()
            .join(p)),
        CertRef::Pki(role) => {
            let m = &run_pki
                .ok_or_else(|| {
                    EngineError::Credentials(format!("{r} needs a PKI (pki: generate or pki: DIR)"))
                })?
                .manifest;
            Ok(if key {
                m.key_path(*role)
            } else {
                m.cert_path(*role)
            })
        }
    }
}

/// Reads PEM certificates as DER.
pub fn certs(
    r: &CertRef,
    run_pki: Option<&RunPki>,
) -> Result<Vec<CertificateDer<'static>>, EngineError> {
    let path = resolve(r, run_pki, false)?;
    Ok(pki::read_certs(&path)?
        .into_iter()
        .map(CertificateDer::from)
        .collect())
}

/// A trust store holding the certificates of `r`.
pub fn roots(r: &CertRef, run_pki: Option<&RunPki>) -> Result<RootCertStore, EngineError> {
    let path = resolve(r, run_pki, false)?;
    let mut store = RootCertStore::empty();
    for cert in certs(r, run_pki)? {
        store.add(cert).map_err(|e| {
            EngineError::Credentials(format!(
                "{}: not a usable CA certificate: {e}",
                path.display()
            ))
        })?;
    }
    Ok(store)
}

/// A certificate chain with its private key, as the DTLS crate takes it: any common format, the key checked
/// to be the leaf's and one the DTLS stack can sign with, before anything runs.
pub fn identity(
    cert: &CertRef,
    key: &CertRef,
    run_pki: Option<&RunPki>,
) -> Result<dtls::crypto::Certificate, EngineError> {
    let key_path = resolve(key, run_pki, true)?;
    let cert_path = resolve(cert, run_pki, false)?;
    let id = pki::read_identity(&cert_path, &key_path)?;
    let private_key = crate::transport::dtls::signing_key(&id.key)
        .map_err(|e| EngineError::Credentials(format!("{}: {e}", key_path.display())))?;
    Ok(dtls::crypto::Certificate {
        certificate: id.chain,
        private_key,
    })
}

/// The host name a target's certificate must carry unless `server_name` says otherwise.
pub fn default_server_name(plan: &RunPlan) -> String {
    match &plan.target {
        Target::Embedded { .. } => "localhost".into(),
        Target::Remote { host, .. } => host.clone(),
    }
}

/// Device-side DTLS settings for one trust configuration.
pub fn client_settings(
    t: &ClientTrust,
    run_pki: Option<&RunPki>,
    default_name: &str,
) -> Result<ClientSettings, EngineError> {
    let server_name = t
        .server_name
        .clone()
        .unwrap_or_else(|| default_name.to_string());
    let trust = match &t.ca {
        None => ServerTrust::Insecure,
        Some(ca) => ServerTrust::verify(roots(ca, run_pki)?, &server_name)
            .map_err(EngineError::Credentials)?,
    };
    let client_certificate = match &t.client_cert {
        None => None,
        // A per-device certificate (`{index}`): device 0's here; the engine gives each device its own.
        Some((cert, key)) => Some(identity(&cert.for_device(0), &key.for_device(0), run_pki)?),
    };
    Ok(ClientSettings {
        trust,
        server_name,
        client_certificate,
        psk: t.psk.clone(),
        cipher_suites: t.cipher_suites.clone(),
        curves: t.curves.clone(),
        handshake_timeout: t.handshake_timeout,
        connection_id: t.connection_id,
    })
}

/// Each device's own client certificate, when devices have their own: from a per-device pattern in the
/// scenario's `dtls.client_cert` (`{index}`), or from the `cert,key` columns of a CSV token file (a device
/// with empty cells keeps the scenario's certificate, or none). `None` when every device shares the
/// scenario's. Read before any socket opens, so a bad file is an error before load.
pub fn device_certificates(
    plan: &RunPlan,
    run_pki: Option<&RunPki>,
) -> Result<Option<Vec<Option<dtls::crypto::Certificate>>>, EngineError> {
    let fleet = plan
        .dtls
        .as_ref()
        .and_then(|d| d.client.client_cert.as_ref());
    let csv = (0..plan.devices.count).any(|i| {
        plan.devices
            .credentials(i)
            .is_some_and(|c| c.cert.is_some())
    });
    let per_device = fleet.is_some_and(|(cert, _)| cert.per_device());
    if !csv && !per_device {
        return Ok(None);
    }
    let shared = match fleet {
        Some((cert, key)) if !per_device => Some(identity(cert, key, run_pki)?),
        _ => None,
    };
    (0..plan.devices.count)
        .map(|i| {
            if let Some(c) = plan.devices.credentials(i) {
                if let (Some(cert), Some(key)) = (&c.cert, &c.key) {
                    let (cert, key) = (CertRef::File(cert.clone()), CertRef::File(key.clone()));
                    return identity(&cert, &key, run_pki).map(Some);
                }
            }
            match fleet {
                Some((cert, key)) if per_device => {
                    let global = plan.devices.global(i);
                    identity(&cert.for_device(global), &key.for_device(global), run_pki).map(Some)
                }
                _ => Ok(shared.clone()),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
