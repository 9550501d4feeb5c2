//! The server's flight of the abbreviated handshake (coap-harness fork, FORK.md change 15; after pion/dtls
//! `flight4bhandler.go`): ServerHello echoing the session id the client offered, ChangeCipherSpec,
//! Finished over ClientHello..ServerHello; then the client's ChangeCipherSpec and Finished end it.

use std::fmt;
use std::io::BufWriter;

use async_trait::async_trait;

use super::*;
use crate::change_cipher_spec::*;
use crate::cipher_suite::*;
use crate::compression_methods::*;
use crate::config::*;
use crate::content::*;
use crate::error::Error;
use crate::extension::extension_use_extended_master_secret::*;
use crate::extension::extension_use_srtp::*;
use crate::extension::renegotiation_info::ExtensionRenegotiationInfo;
use crate::extension::*;
use crate::handshake::handshake_message_finished::*;
use crate::handshake::handshake_message_server_hello::*;
use crate::handshake::*;
use crate::prf::*;
use crate::record_layer::record_layer_header::*;

#[derive(Debug, PartialEq)]
pub(crate) struct Flight4b;

impl fmt::Display for Flight4b {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flight 4b")
    }
}

fn internal_error(err: Option<Error>) -> (Option<Alert>, Option<Error>) {
    (
        Some(Alert {
            alert_level: AlertLevel::Fatal,
            alert_description: AlertDescription::InternalError,
        }),
        err,
    )
}

#[async_trait]
impl Flight for Flight4b {
    fn number(&self) -> u8 {
        4
    }

    fn is_last_recv_flight(&self) -> bool {
        true
    }

    async fn parse(
        &self,
        tx: &mut mpsc::Sender<mpsc::Sender<()>>,
        state: &mut State,
        cache: &HandshakeCache,
        cfg: &HandshakeConfig,
    ) -> Result<Box<dyn Flight + Send + Sync>, (Option<Alert>, Option<Error>)> {
        // Records of the next epoch queued before our keys were ready can be decrypted now.
        let (done_tx, mut done_rx) = mpsc::channel(1);
        if let Err(err) = tx.send(done_tx).await {
            return Err(internal_error(Some(Error::Other(err.to_string()))));
        }
        done_rx.recv().await;

        let (seq, msgs) = match cache
            .full_pull_map(
                state.handshake_recv_sequence,
                &[HandshakeCachePullRule {
                    typ: HandshakeType::Finished,
                    epoch: cfg.initial_epoch + 1,
                    is_client: true,
                    optional: false,
                }],
            )
            .await
        {
            Ok(pulled) => pulled,
            // No valid message received. Keep reading
            Err(_) => return Err((None, None)),
        };
        let Some(HandshakeMessage::Finished(finished)) = msgs.get(&HandshakeType::Finished) else {
            return Err(internal_error(None));
        };

        let plain_text = cache
            .pull_and_merge(&[
                HandshakeCachePullRule {
                    typ: HandshakeType::ClientHello,
                    epoch: cfg.initial_epoch,
                    is_client: true,
                    optional: false,
                },
                HandshakeCachePullRule {
                    typ: HandshakeType::ServerHello,
                    epoch: cfg.initial_epoch,
                    is_client: false,
                    optional: false,
                },
                HandshakeCachePullRule {
                    typ: HandshakeType::Finished,
                    epoch: cfg.initial_epoch + 1,
                    is_client: false,
                    optional: false,
                },
            ])
            .await;
        let expected = {
            let cipher_suite = state.cipher_suite.lock().await;
            let Some(cipher_suite) = &*cipher_suite else {
                return Err(internal_error(None));
            };
            prf_verify_data_client(&state.master_secret, &plain_text, cipher_suite.hash_func())
                .map_err(|err| internal_error(Some(err)))?
        };
        if expected != finished.verify_data {
            return Err((
                Some(Alert {
                    alert_level: AlertLevel::Fatal,
                    alert_description: AlertDescription::HandshakeFailure,
                }),
                Some(Error::ErrVerifyDataMismatch),
            ));
        }
        state.handshake_recv_sequence = seq;

        Ok(Box::new(Flight4b {}))
    }

    async fn generate(
        &self,
        state: &mut State,
        cache: &HandshakeCache,
        cfg: &HandshakeConfig,
    ) -> Result<Vec<Packet>, (Option<Alert>, Option<Error>)> {
        let Some(session) = state.resumable_session.clone() else {
            return Err(internal_error(None));
        };

        // The session's keys, with this handshake's randoms.
        let mut cipher_suite =
            cipher_suite_for_id(session.cipher_suite).map_err(|err| internal_error(Some(err)))?;
        state.master_secret.clone_from(&session.master_secret);
        state
            .peer_certificates
            .clone_from(&session.peer_certificates);
        state.peer_certificates_verified = true;
        state.identity_hint.clone_from(&session.identity_hint);
        let mut client_random = vec![];
        let mut server_random = vec![];
        {
            let mut writer = BufWriter::<&mut Vec<u8>>::new(client_random.as_mut());
            let _ = state.remote_random.marshal(&mut writer);
        }
        {
            let mut writer = BufWriter::<&mut Vec<u8>>::new(server_random.as_mut());
            let _ = state.local_random.marshal(&mut writer);
        }
        cipher_suite
            .init(&state.master_secret, &client_random, &server_random, false)
            .map_err(|err| internal_error(Some(err)))?;
        let hash = cipher_suite.hash_func();
        *state.cipher_suite.lock().await = Some(cipher_suite);
        state.resumed = true;

        let mut extensions = vec![Extension::RenegotiationInfo(ExtensionRenegotiationInfo {
            renegotiated_connection: 0,
        })];
        if cfg.extended_master_secret != ExtendedMasterSecretType::Disable
            && state.extended_master_secret
        {
            extensions.push(Extension::UseExtendedMasterSecret(
                ExtensionUseExtendedMasterSecret { supported: true },
            ));
        }
        if state.srtp_protection_profile != SrtpProtectionProfile::Unsupported {
            extensions.push(Extension::UseSrtp(ExtensionUseSrtp {
                protection_profiles: vec![state.srtp_protection_profile],
            }));
        }

        // Connection IDs are negotiated afresh on resumption (RFC 9146 §3): answer an offer `flight0.rs`
        // accepted, as `flight4.rs` does.
        if let Some(ids) = state.connection_ids.get() {
            extensions.push(Extension::ConnectionId(
                crate::extension::extension_connection_id::ExtensionConnectionId {
                    cid: ids.local.clone(),
                },
            ));
        }

        let mut server_hello =
            Handshake::new(HandshakeMessage::ServerHello(HandshakeMessageServerHello {
                version: PROTOCOL_VERSION1_2,
                random: state.local_random.clone(),
                session_id: state.session_id.clone(),
                cipher_suite: session.cipher_suite,
                compression_method: default_compression_methods().ids[0],
                extensions,
            }));
        // The sequence number `prepare` gives it, for the Finished's transcript (not sent yet, so not
        // in the cache).
        server_hello.handshake_header.message_sequence = state.handshake_send_sequence as u16;

        if state.local_verify_data.is_empty() {
            let mut plain_text = cache
                .pull_and_merge(&[HandshakeCachePullRule {
                    typ: HandshakeType::ClientHello,
                    epoch: cfg.initial_epoch,
                    is_client: true,
                    optional: false,
                }])
                .await;
            {
                let mut writer = BufWriter::<&mut Vec<u8>>::new(plain_text.as_mut());
                server_hello
                    .marshal(&mut writer)
                    .map_err(|err| internal_error(Some(err)))?;
            }
            state.local_verify_data =
                prf_verify_data_server(&state.master_secret, &plain_text, hash)
                    .map_err(|err| internal_error(Some(err)))?;
        }

        Ok(vec![
            Packet {
                record: RecordLayer::new(PROTOCOL_VERSION1_2, 0, Content::Handshake(server_hello)),
                should_encrypt: false,
                reset_local_sequence_number: false,
            },
            Packet {
                record: RecordLayer::new(
                    PROTOCOL_VERSION1_2,
                    0,
                    Content::ChangeCipherSpec(ChangeCipherSpec {}),
                ),
                should_encrypt: false,
                reset_local_sequence_number: false,
            },
            Packet {
                record: RecordLayer::new(
                    PROTOCOL_VERSION1_2,
                    1,
                    Content::Handshake(Handshake::new(HandshakeMessage::Finished(
                        HandshakeMessageFinished {
                            verify_data: state.local_verify_data.clone(),
                        },
                    ))),
                ),
                should_encrypt: true,
                reset_local_sequence_number: true,
            },
        ])
    }
}
