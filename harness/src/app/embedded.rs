//! Starting the embedded target for a plan: plain CoAP, and DTLS with the identity the plan (or a trust
//! case) names, on ephemeral loopback ports.

use super::prepare::{self, RunPki};
use super::EngineError;
use crate::scenario::plan::{ServerIdentity, TokenSource};
use crate::scenario::{RunPlan, Target};
use crate::server::{self, ClientAuth, DtlsServerConfig, ServerConfig, ServerHandle, TokenPolicy};
use std::net::{Ipv4Addr, SocketAddr};

/// The tokens the embedded server accepts: exactly the scenario's devices, unless `any_token`.
pub fn token_policy(plan: &RunPlan) -> TokenPolicy {
    if matches!(
        plan.target,
        Target::Embedded {
            any_token: true,
            ..
        }
    ) {
        return TokenPolicy::Any;
    }
    match &plan.devices.tokens {
        TokenSource::Pattern(p) => TokenPolicy::Pattern {
            pattern: p.clone(),
            count: u64::from(plan.devices.count),
        },
        TokenSource::List(l) => TokenPolicy::List(l.iter().cloned().collect()),
    }
}

/// Starts the embedded server; with `identity`, it serves DTLS with that certificate too.
pub async fn start(
    plan: &RunPlan,
    identity: Option<&ServerIdentity>,
    run_pki: Option<&RunPki>,
) -> Result<ServerHandle, EngineError> {
    let Target::Embedded { response_delay, .. } = &plan.target else {
        unreachable!("only embedded targets are started");
    };
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let dtls = match identity {
        None => None,
        Some(id) => {
            let mut cfg =
                DtlsServerConfig::new(loopback, prepare::identity(&id.cert, &id.key, run_pki)?);
            cfg.client_auth = id.client_auth;
            cfg.connection_id_length = id.connection_id;
            // ThingsBoard's mode takes a certificate from any issuer in the handshake.
            if !matches!(id.client_auth, ClientAuth::None | ClientAuth::Thingsboard) {
                cfg.client_ca = prepare::certs(&id.client_ca, run_pki)?;
            }
            if let Some(r) = &id.device_certs {
                let path = prepare::resolve(r, run_pki, false)?;
                cfg.device_certs =
                    super::commands::device_certs(&path).map_err(EngineError::Credentials)?;
            }
            // Devices with PSKs (the scenario's, or their own from a CSV token file): the server knows them
            // all and speaks PSK.
            cfg.psk = plan.devices.psks();
            if let Some(p) = plan.dtls.as_ref().and_then(|d| d.client.psk.clone()) {
                cfg.psk.push(p);
            }
            Some(cfg)
        }
    };
    Ok(server::start(ServerConfig {
        bind: loopback,
        tokens: token_policy(plan),
        response_delay: *response_delay,
        plain: true,
        dtls,
    })
    .await?)
}

/// Where devices send: the DTLS port when the run uses DTLS.
pub fn device_target(handle: &ServerHandle, dtls: bool) -> SocketAddr {
    if dtls {
        handle.dtls_addr().expect("DTLS was configured")
    } else {
        handle.local_addr()
    }
}
