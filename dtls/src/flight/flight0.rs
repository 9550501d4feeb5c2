use std::fmt;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use rand::Rng;

use super::flight2::*;
use super::*;
use crate::config::*;
use crate::conn::*;
use crate::curve::named_curve::NamedCurve;
use crate::error::Error;
use crate::extension::*;
use crate::handshake::*;
use crate::record_layer::record_layer_header::*;
use crate::*;

#[derive(Debug, PartialEq)]
pub(crate) struct Flight0;

impl fmt::Display for Flight0 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flight 0")
    }
}

#[async_trait]
impl Flight for Flight0 {
    fn number(&self) -> u8 {
        0
    }

    async fn parse(
        &self,
        _tx: &mut mpsc::Sender<mpsc::Sender<()>>,
        state: &mut State,
        cache: &HandshakeCache,
        cfg: &HandshakeConfig,
    ) -> Result<Box<dyn Flight + Send + Sync>, (Option<Alert>, Option<Error>)> {
        let (seq, msgs) = match cache
            .full_pull_map(
                0,
                &[HandshakeCachePullRule {
                    typ: HandshakeType::ClientHello,
                    epoch: cfg.initial_epoch,
                    is_client: true,
                    optional: false,
                }],
            )
            .await
        {
            Ok((seq, msgs)) => (seq, msgs),
            Err(_) => return Err((None, None)),
        };

        state.handshake_recv_sequence = seq;

        if let Some(message) = msgs.get(&HandshakeType::ClientHello) {
            // Validate type
            let client_hello = match message {
                HandshakeMessage::ClientHello(client_hello) => client_hello,
                _ => {
                    return Err((
                        Some(Alert {
                            alert_level: AlertLevel::Fatal,
                            alert_description: AlertDescription::InternalError,
                        }),
                        None,
                    ))
                }
            };

            if client_hello.version != PROTOCOL_VERSION1_2 {
                return Err((
                    Some(Alert {
                        alert_level: AlertLevel::Fatal,
                        alert_description: AlertDescription::ProtocolVersion,
                    }),
                    Some(Error::ErrUnsupportedProtocolVersion),
                ));
            }

            state.remote_random = client_hello.random.clone();

            // coap-harness fork (FORK.md change 4): only suites our key can sign (ECDHE_RSA for an RSA key,
            // ECDHE_ECDSA for an EC or Ed25519 key; PSK suites need no key).
            let signable = signable_cipher_suites(cfg);
            if let Ok(id) = find_matching_cipher_suite(&client_hello.cipher_suites, &signable) {
                if let Ok(cipher_suite) = cipher_suite_for_id(id) {
                    log::debug!(
                        "[handshake:{}] use cipher suite: {}",
                        srv_cli_str(state.is_client),
                        cipher_suite.to_string()
                    );
                    let mut cs = state.cipher_suite.lock().await;
                    *cs = Some(cipher_suite);
                }
            } else {
                return Err((
                    Some(Alert {
                        alert_level: AlertLevel::Fatal,
                        alert_description: AlertDescription::InsufficientSecurity,
                    }),
                    Some(Error::ErrCipherSuiteNoIntersection),
                ));
            }

            for extension in &client_hello.extensions {
                match extension {
                    Extension::SupportedEllipticCurves(e) => {
                        if e.elliptic_curves.is_empty() {
                            return Err((
                                Some(Alert {
                                    alert_level: AlertLevel::Fatal,
                                    alert_description: AlertDescription::InsufficientSecurity,
                                }),
                                Some(Error::ErrNoSupportedEllipticCurves),
                            ));
                        }
                        // coap-harness fork (FORK.md change 9): the client's first curve that we
                        // support too (upstream: the client's first curve, whatever our config).
                        match e
                            .elliptic_curves
                            .iter()
                            .find(|c| cfg.local_named_curves.contains(c))
                        {
                            Some(curve) => state.named_curve = *curve,
                            // Only an ECDHE suite needs a curve; PSK suites go on without one.
                            None if cfg.local_psk_callback.is_none() => {
                                return Err((
                                    Some(Alert {
                                        alert_level: AlertLevel::Fatal,
                                        alert_description: AlertDescription::HandshakeFailure,
                                    }),
                                    Some(Error::ErrNoSupportedEllipticCurves),
                                ));
                            }
                            None => {}
                        }
                    }
                    Extension::UseSrtp(e) => {
                        if let Ok(profile) = find_matching_srtp_profile(
                            &e.protection_profiles,
                            &cfg.local_srtp_protection_profiles,
                        ) {
                            state.srtp_protection_profile = profile;
                        } else {
                            return Err((
                                Some(Alert {
                                    alert_level: AlertLevel::Fatal,
                                    alert_description: AlertDescription::InsufficientSecurity,
                                }),
                                Some(Error::ErrServerNoMatchingSrtpProfile),
                            ));
                        }
                    }
                    Extension::UseExtendedMasterSecret(_) => {
                        if cfg.extended_master_secret != ExtendedMasterSecretType::Disable {
                            state.extended_master_secret = true;
                        }
                    }
                    Extension::ServerName(e) => {
                        state.server_name.clone_from(&e.server_name); // remote server name
                    }
                    // coap-harness fork (FORK.md change 13): the client offers a connection ID; we use
                    // them when we want one too and the suite can protect RFC 9146 records (the answer
                    // goes in ServerHello, `flight4.rs`). Set once: a retransmitted hello changes nothing.
                    Extension::ConnectionId(e) => {
                        if let Some(local) = &cfg.local_connection_id {
                            let capable = state
                                .cipher_suite
                                .lock()
                                .await
                                .as_ref()
                                .is_some_and(|cs| cs.supports_connection_id());
                            if capable {
                                let _ = state.connection_ids.set(crate::state::ConnectionIds {
                                    local: local.clone(),
                                    remote: e.cid.clone(),
                                });
                            }
                        }
                    }
                    _ => {}
                }
            }

            if cfg.extended_master_secret == ExtendedMasterSecretType::Require
                && !state.extended_master_secret
            {
                return Err((
                    Some(Alert {
                        alert_level: AlertLevel::Fatal,
                        alert_description: AlertDescription::InsufficientSecurity,
                    }),
                    Some(Error::ErrServerRequiredButNoClientEms),
                ));
            }

            // coap-harness fork (FORK.md change 15): a stored session the client offers, which we resume if
            // it can go on with the session's cipher suite and extended-master-secret choice (RFC 7627
            // §5.3: no resumption across a change of that choice); otherwise a full handshake.
            state.resumable_session = match &cfg.session_store {
                Some(store) if !client_hello.session_id.is_empty() => {
                    store.get(&client_hello.session_id).filter(|s| {
                        s.extended_master_secret == state.extended_master_secret
                            && client_hello.cipher_suites.contains(&s.cipher_suite)
                            && signable.contains(&s.cipher_suite)
                    })
                }
                _ => None,
            };
            state.session_id = state
                .resumable_session
                .as_ref()
                .map(|s| s.id.clone())
                .unwrap_or_default();

            // coap-harness fork (FORK.md change 10): a PSK server (no ECDHE_PSK suites here) never uses an
            // ECDHE key; upstream generated one for every connection anyway.
            if state.local_keypair.is_none()
                && cfg.local_psk_callback.is_none()
                && state.resumable_session.is_none()
            {
                state.local_keypair = match state.named_curve.generate_keypair() {
                    Ok(local_keypar) => Some(local_keypar),
                    Err(err) => {
                        return Err((
                            Some(Alert {
                                alert_level: AlertLevel::Fatal,
                                alert_description: AlertDescription::IllegalParameter,
                            }),
                            Some(err),
                        ))
                    }
                };
            }

            Ok(Box::new(Flight2 {}))
        } else {
            Err((
                Some(Alert {
                    alert_level: AlertLevel::Fatal,
                    alert_description: AlertDescription::InternalError,
                }),
                None,
            ))
        }
    }

    async fn generate(
        &self,
        state: &mut State,
        _cache: &HandshakeCache,
        cfg: &HandshakeConfig,
    ) -> Result<Vec<Packet>, (Option<Alert>, Option<Error>)> {
        // Initialize
        state.cookie = vec![0; COOKIE_LENGTH];
        rand::rng().fill(state.cookie.as_mut_slice());

        //TODO: figure out difference between golang's atom store and rust atom store
        let zero_epoch = 0;
        state.local_epoch.store(zero_epoch, Ordering::SeqCst);
        state.remote_epoch.store(zero_epoch, Ordering::SeqCst);

        // coap-harness fork (FORK.md change 9): our most preferred curve when the client sends no
        // supported_groups (upstream: always X25519).
        state.named_curve = cfg
            .local_named_curves
            .first()
            .copied()
            .unwrap_or(NamedCurve::X25519);
        state.local_random.populate();

        Ok(vec![])
    }
}

/// The configured suites the server's key can sign for (coap-harness fork, FORK.md change 4).
fn signable_cipher_suites(cfg: &HandshakeConfig) -> Vec<CipherSuiteId> {
    use crate::client_certificate_type::ClientCertificateType;
    use crate::crypto::CryptoPrivateKeyKind;
    let key_type = cfg
        .local_certificates
        .first()
        .map(|c| match c.private_key.kind {
            CryptoPrivateKeyKind::Rsa256(_) => ClientCertificateType::RsaSign,
            _ => ClientCertificateType::EcdsaSign,
        });
    cfg.local_cipher_suites
        .iter()
        .copied()
        .filter(|id| match (cipher_suite_for_id(*id), key_type) {
            (Ok(suite), _) if suite.is_psk() => true,
            (Ok(suite), Some(key_type)) => suite.certificate_type() == key_type,
            (Ok(_), None) => true,
            (Err(_), _) => false,
        })
        .collect()
}
