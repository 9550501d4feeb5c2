//! The client's side of the abbreviated handshake (coap-harness fork, FORK.md change 15; after pion/dtls
//! `flight3handler.go` `handleResumption` and `flight5bhandler.go`): the server echoed the session we
//! offered, so we check its Finished over ClientHello..ServerHello with the session's keys and answer
//! with ChangeCipherSpec and our Finished over ClientHello..server Finished.

use std::fmt;
use std::io::BufWriter;

use async_trait::async_trait;

use super::*;
use crate::change_cipher_spec::*;
use crate::cipher_suite::*;
use crate::config::*;
use crate::content::*;
use crate::error::Error;
use crate::extension::*;
use crate::handshake::handshake_message_finished::*;
use crate::handshake::handshake_message_server_hello::*;
use crate::handshake::*;
use crate::prf::*;
use crate::record_layer::record_layer_header::*;
use crate::session::Session;

#[derive(Debug, PartialEq)]
pub(crate) struct Flight5b;

impl fmt::Display for Flight5b {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flight 5b")
    }
}

fn alert(description: AlertDescription, err: Option<Error>) -> (Option<Alert>, Option<Error>) {
    (
        Some(Alert {
            alert_level: AlertLevel::Fatal,
            alert_description: description,
        }),
        err,
    )
}

/// Stores this connection's session under `key` once its handshake is done (a full one: a resumed
/// session is already stored), when we keep sessions and the server gave the session an id.
pub(crate) async fn store_session(state: &State, cfg: &HandshakeConfig, key: &[u8]) {
    let Some(store) = &cfg.session_store else {
        return;
    };
    if state.session_id.is_empty() || state.resumed || key.is_empty() {
        return;
    }
    let Some(cipher_suite) = state.cipher_suite.lock().await.as_ref().map(|c| c.id()) else {
        return;
    };
    store.set(
        key,
        Session {
            id: state.session_id.clone(),
            master_secret: state.master_secret.clone(),
            cipher_suite,
            extended_master_secret: state.extended_master_secret,
            peer_certificates: state.peer_certificates.clone(),
            identity_hint: state.identity_hint.clone(),
        },
    );
}

/// The client's flight 3 parse once the server echoed the session we offered: the session's keys with
/// this handshake's randoms, then the server's Finished. `seq` is the sequence after the ServerHello.
pub(crate) async fn client_resume(
    tx: &mut mpsc::Sender<mpsc::Sender<()>>,
    state: &mut State,
    cache: &HandshakeCache,
    cfg: &HandshakeConfig,
    h: &HandshakeMessageServerHello,
    seq: isize,
) -> Result<Box<dyn Flight + Send + Sync>, (Option<Alert>, Option<Error>)> {
    let Some(session) = state.resumable_session.clone() else {
        return Err(alert(AlertDescription::InternalError, None));
    };
    if h.version != PROTOCOL_VERSION1_2 {
        return Err(alert(
            AlertDescription::ProtocolVersion,
            Some(Error::ErrUnsupportedProtocolVersion),
        ));
    }
    // RFC 5246 §7.4.1.3: a resumed session keeps its cipher suite; RFC 7627 §5.3: and its extended
    // master secret choice.
    let ems = h
        .extensions
        .iter()
        .any(|e| matches!(e, Extension::UseExtendedMasterSecret(_)))
        && cfg.extended_master_secret != ExtendedMasterSecretType::Disable;
    if h.cipher_suite != session.cipher_suite {
        return Err(alert(
            AlertDescription::IllegalParameter,
            Some(Error::ErrResumedSessionMismatch),
        ));
    }
    if ems != session.extended_master_secret {
        return Err(alert(
            AlertDescription::HandshakeFailure,
            Some(Error::ErrResumedSessionMismatch),
        ));
    }

    let initialized = matches!(&*state.cipher_suite.lock().await, Some(c) if c.is_initialized());
    if !initialized {
        let mut cipher_suite = cipher_suite_for_id(session.cipher_suite)
            .map_err(|err| alert(AlertDescription::InternalError, Some(err)))?;
        // Connection IDs are negotiated afresh on resumption (RFC 9146 §3), as in `flight3.rs`.
        let answered_cid = h.extensions.iter().find_map(|e| match e {
            Extension::ConnectionId(e) => Some(e.cid.clone()),
            _ => None,
        });
        if let (Some(local), Some(remote)) = (&cfg.local_connection_id, answered_cid) {
            if !cipher_suite.supports_connection_id() {
                return Err(alert(
                    AlertDescription::IllegalParameter,
                    Some(Error::ErrConnectionIdUnsupportedCipherSuite),
                ));
            }
            let _ = state.connection_ids.set(crate::state::ConnectionIds {
                local: local.clone(),
                remote,
            });
        }
        state.remote_random = h.random.clone();
        state.master_secret.clone_from(&session.master_secret);
        state.extended_master_secret = ems;
        state
            .peer_certificates
            .clone_from(&session.peer_certificates);
        state.peer_certificates_verified = true;
        state.identity_hint.clone_from(&session.identity_hint);
        let mut client_random = vec![];
        let mut server_random = vec![];
        {
            let mut writer = BufWriter::<&mut Vec<u8>>::new(client_random.as_mut());
            let _ = state.local_random.marshal(&mut writer);
        }
        {
            let mut writer = BufWriter::<&mut Vec<u8>>::new(server_random.as_mut());
            let _ = state.remote_random.marshal(&mut writer);
        }
        cipher_suite
            .init(&state.master_secret, &client_random, &server_random, true)
            .map_err(|err| alert(AlertDescription::InternalError, Some(err)))?;
        *state.cipher_suite.lock().await = Some(cipher_suite);
    }

    // Records of the next epoch (the server's Finished) queued before our keys were ready can be
    // decrypted now.
    let (done_tx, mut done_rx) = mpsc::channel(1);
    if let Err(err) = tx.send(done_tx).await {
        return Err(alert(
            AlertDescription::InternalError,
            Some(Error::Other(err.to_string())),
        ));
    }
    done_rx.recv().await;

    let (seq, msgs) = match cache
        .full_pull_map(
            seq,
            &[HandshakeCachePullRule {
                typ: HandshakeType::Finished,
                epoch: cfg.initial_epoch + 1,
                is_client: false,
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
        return Err(alert(AlertDescription::InternalError, None));
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
        ])
        .await;
    let hash = match &*state.cipher_suite.lock().await {
        Some(c) => c.hash_func(),
        None => return Err(alert(AlertDescription::InternalError, None)),
    };
    let expected = prf_verify_data_server(&state.master_secret, &plain_text, hash)
        .map_err(|err| alert(AlertDescription::InternalError, Some(err)))?;
    if expected != finished.verify_data {
        return Err(alert(
            AlertDescription::HandshakeFailure,
            Some(Error::ErrVerifyDataMismatch),
        ));
    }

    state.handshake_recv_sequence = seq;
    state.resumed = true;
    Ok(Box::new(Flight5b {}))
}

#[async_trait]
impl Flight for Flight5b {
    fn number(&self) -> u8 {
        5
    }

    fn is_last_send_flight(&self) -> bool {
        true
    }

    async fn parse(
        &self,
        _tx: &mut mpsc::Sender<mpsc::Sender<()>>,
        state: &mut State,
        cache: &HandshakeCache,
        cfg: &HandshakeConfig,
    ) -> Result<Box<dyn Flight + Send + Sync>, (Option<Alert>, Option<Error>)> {
        match cache
            .full_pull_map(
                state.handshake_recv_sequence - 1,
                &[HandshakeCachePullRule {
                    typ: HandshakeType::Finished,
                    epoch: cfg.initial_epoch + 1,
                    is_client: false,
                    optional: false,
                }],
            )
            .await
        {
            // The server retransmitted its flight: ours goes again.
            Ok(_) => Ok(Box::new(Flight5b {})),
            // No valid message received. Keep reading
            Err(_) => Err((None, None)),
        }
    }

    async fn generate(
        &self,
        state: &mut State,
        cache: &HandshakeCache,
        cfg: &HandshakeConfig,
    ) -> Result<Vec<Packet>, (Option<Alert>, Option<Error>)> {
        if state.local_verify_data.is_empty() {
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
            let hash = match &*state.cipher_suite.lock().await {
                Some(c) => c.hash_func(),
                None => return Err(alert(AlertDescription::InternalError, None)),
            };
            state.local_verify_data =
                prf_verify_data_client(&state.master_secret, &plain_text, hash)
                    .map_err(|err| alert(AlertDescription::InternalError, Some(err)))?;
        }

        Ok(vec![
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
