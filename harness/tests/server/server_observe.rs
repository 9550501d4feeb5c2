//! Observe (RFC 7641) on the embedded server over real loopback sockets, as ThingsBoard's CoAP transport
//! does it: attribute subscriptions with numbered CON notifications until deregistered, over plain UDP and
//! over DTLS; an RST (or a DTLS session ending) cancelling a subscription; RPC commands to subscribed
//! devices and their replies; and libcoap's client observing.

use crate::common;

use coap_harness::coap::{content_format, option, Code, Message, MessageType, Token};
use coap_harness::pki::Role;
use coap_harness::server::{self, DtlsServerConfig, ServerConfig, ServerHandle, TokenPolicy};
use dtls::config::Config;
use dtls::conn::DTLSConn;
use dtls::crypto::Certificate;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::time::timeout;

/// Bound on any single wait for a network event or a server state.
const WAIT: Duration = Duration::from_secs(5);
const DEVICE: &str = "observer-1";
const ATTRIBUTES: &str = "/api/v1/observer-1/attributes";
const RPC: &str = "/api/v1/observer-1/rpc";

async fn start(dtls: Option<DtlsServerConfig>) -> ServerHandle {
    server::start(ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        tokens: TokenPolicy::Any,
        response_delay: None,
        plain: true,
        dtls,
    })
    .await
    .expect("server starts")
}

/// A CoAP client over plain UDP or a DTLS session: the same test flows run over both.
enum Client {
    Plain {
        socket: UdpSocket,
        server: SocketAddr,
    },
    Dtls(Box<DTLSConn>),
}

impl Client {
    async fn plain(server: &ServerHandle) -> Client {
        Client::Plain {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server: server.local_addr(),
        }
    }

    async fn send(&self, msg: &Message) {
        let bytes = msg.to_bytes();
        match self {
            Client::Plain { socket, server } => {
                socket.send_to(&bytes, server).await.unwrap();
            }
            Client::Dtls(conn) => {
                conn.write(&bytes, None).await.unwrap();
            }
        }
    }

    /// The next message from the server, within [`WAIT`].
    async fn recv(&self) -> Message {
        let mut buf = vec![0u8; 2048];
        let n = match self {
            Client::Plain { socket, .. } => {
                timeout(WAIT, socket.recv_from(&mut buf))
                    .await
                    .expect("a datagram within the bound")
                    .unwrap()
                    .0
            }
            Client::Dtls(conn) => conn
                .read(&mut buf, Some(WAIT))
                .await
                .expect("a record within the bound"),
        };
        Message::decode(&buf[..n]).expect("the server sends valid CoAP")
    }

    /// Sends a CON request and returns its piggybacked response.
    async fn exchange(&self, req: &Message) -> Message {
        self.send(req).await;
        let resp = self.recv().await;
        assert_eq!(
            (resp.mtype, resp.message_id, resp.token),
            (MessageType::Ack, req.message_id, req.token),
            "the response to {req}"
        );
        resp
    }

    /// The next notification: a CON with the registration's token, acknowledged unless `ack` is false.
    async fn notification(&self, registration: &Message, ack: bool) -> Message {
        let n = self.recv().await;
        assert_eq!(
            (n.mtype, n.code, n.token),
            (MessageType::Con, Code::CONTENT, registration.token),
            "a CON 2.05 notification with the registration's token: {n}"
        );
        assert_eq!(n.content_format(), Some(content_format::JSON));
        if ack {
            self.send(&Message::empty_ack(n.message_id)).await;
        }
        n
    }
}

fn get(mid: u16, token: u64, path: &str, observe: Option<u32>) -> Message {
    let mut m = Message::new(MessageType::Con, Code::GET, mid, Token::from_u64(token));
    m.set_path(path);
    if let Some(o) = observe {
        m.add_uint_option(option::OBSERVE, o);
    }
    m
}

fn post(mid: u16, path: &str, payload: &[u8]) -> Message {
    let mut m = Message::new(
        MessageType::Con,
        Code::POST,
        mid,
        Token::from_u64(0x9000 + u64::from(mid)),
    );
    m.set_path(path);
    m.payload = payload.to_vec();
    m
}

fn attrs(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn observe(m: &Message) -> u32 {
    m.uint_option(option::OBSERVE)
        .unwrap_or_else(|| panic!("no Observe option: {m}"))
}

fn json_of(m: &Message) -> Value {
    serde_json::from_slice(&m.payload).unwrap_or_else(|e| panic!("{m}: {e}"))
}

/// Polls `cond` until it holds, within [`WAIT`].
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Register, two pushes with rising Observe numbers, both acknowledged, deregister, a push reaching nobody.
async fn attribute_subscription(server: &ServerHandle, client: &Client) {
    assert!(server.set_shared_attribute(DEVICE, "interval", json!(30)));
    let reg = get(1, 0xa77, ATTRIBUTES, Some(0));
    let first = client.exchange(&reg).await;
    assert_eq!(first.code, Code::CONTENT);
    let mut last = observe(&first);
    assert_eq!(
        json_of(&first),
        json!({"interval": 30}),
        "the shared attributes"
    );
    assert_eq!(server.observers(), 1);
    for update in [json!({"fw": "1.1"}), json!({"fw": "1.2", "interval": 60})] {
        assert_eq!(
            server.push_shared_attributes(DEVICE, attrs(update.clone())),
            1
        );
        let n = client.notification(&reg, true).await;
        assert!(observe(&n) > last, "Observe numbers rise: {n}");
        last = observe(&n);
        assert_eq!(json_of(&n), update);
    }
    eventually("both notifications acknowledged", || {
        server.stats().notifications_acked == 2
    })
    .await;
    let shared = server.device(DEVICE).unwrap().shared_attributes;
    assert_eq!(Value::Object(shared), json!({"interval": 60, "fw": "1.2"}));
    // Deregistration: the same token with Observe=1 (RFC 7641 §3.6).
    let gone = client.exchange(&get(2, 0xa77, ATTRIBUTES, Some(1))).await;
    assert_eq!(gone.code, Code::DELETED);
    assert_eq!(gone.uint_option(option::OBSERVE), None);
    assert_eq!(server.observers(), 0);
    assert_eq!(
        server.push_shared_attributes(DEVICE, attrs(json!({"fw": "1.3"}))),
        0
    );
    let s = server.stats();
    assert_eq!(
        (
            s.observe_registrations,
            s.observe_cancellations,
            s.notifications_sent,
            s.notifications_acked
        ),
        (1, 1, 2, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_subscription_over_udp() {
    let server = start(None).await;
    let client = Client::plain(&server).await;
    attribute_subscription(&server, &client).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_cancels_a_subscription_after_retransmission() {
    let server = start(None).await;
    let client = Client::plain(&server).await;
    let reg = get(1, 0xbee, ATTRIBUTES, Some(0));
    assert_eq!(client.exchange(&reg).await.code, Code::CONTENT);
    assert_eq!(
        server.push_shared_attributes(DEVICE, attrs(json!({"a": 1}))),
        1
    );
    // Left unacknowledged, the CON notification comes again (after ACK_TIMEOUT, 2 to 3 s), then the
    // client rejects it.
    let n = client.notification(&reg, false).await;
    let again = client.notification(&reg, false).await;
    assert_eq!(again, n, "the same notification, retransmitted");
    client.send(&Message::reset(n.message_id)).await;
    eventually("the subscription cancelled", || server.observers() == 0).await;
    assert_eq!(
        server.push_shared_attributes(DEVICE, attrs(json!({"a": 2}))),
        0
    );
    let s = server.stats();
    assert_eq!(
        (
            s.notifications_reset,
            s.notification_retransmissions,
            s.observe_cancellations,
            s.notifications_acked
        ),
        (1, 1, 1, 0)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_commands_reach_subscribers_and_replies_are_recorded() {
    let server = start(None).await;
    let client = Client::plain(&server).await;
    assert_eq!(server.push_rpc(DEVICE, "setGpio", json!({"pin": 4})), None);
    let reg = get(1, 0xc0de, RPC, Some(0));
    let valid = client.exchange(&reg).await;
    assert_eq!(valid.code, Code::VALID);
    assert!(valid.payload.is_empty());
    let mut last = observe(&valid);
    let mut ids = Vec::new();
    for (method, params) in [("setGpio", json!({"pin": 4})), ("reboot", json!({}))] {
        let id = server.push_rpc(DEVICE, method, params.clone()).unwrap();
        let n = client.notification(&reg, true).await;
        assert!(observe(&n) > last);
        last = observe(&n);
        assert_eq!(
            json_of(&n),
            json!({"id": id, "method": method, "params": params})
        );
        ids.push(id);
    }
    assert!(ids[1] > ids[0], "request IDs are distinct: {ids:?}");
    let reply = client
        .exchange(&post(2, &format!("{RPC}/{}", ids[0]), br#"{"ok":true}"#))
        .await;
    assert_eq!(reply.code, Code::CREATED);
    assert_eq!(server.rpc_reply(DEVICE, ids[0]), Some(json!({"ok": true})));
    assert_eq!(server.rpc_reply(DEVICE, ids[1]), None, "not answered yet");
    // A reply to an ID never sent: 2.01 all the same (ThingsBoard forwards it and drops it), not recorded.
    let unknown = ids[1] + 1000;
    let reply = client
        .exchange(&post(3, &format!("{RPC}/{unknown}"), br#"{"ok":true}"#))
        .await;
    assert_eq!(reply.code, Code::CREATED);
    assert_eq!(server.rpc_reply(DEVICE, unknown), None);
    // A device-originated RPC.
    let own = client
        .exchange(&post(4, RPC, br#"{"method":"getTime","params":{}}"#))
        .await;
    assert_eq!(
        (own.code, own.payload.as_slice()),
        (Code::CONTENT, &b"{}"[..])
    );
    eventually("both notifications acknowledged", || {
        server.stats().notifications_acked == 2
    })
    .await;
    let s = server.stats();
    assert_eq!(
        (s.rpc_sent, s.rpc_replies, s.rpc_replies_unmatched),
        (2, 1, 1)
    );
    // Deregistered, the device gets no more commands.
    let gone = client.exchange(&get(5, 0xc0de, RPC, Some(1))).await;
    assert_eq!(gone.code, Code::DELETED);
    assert_eq!(server.push_rpc(DEVICE, "reboot", json!({})), None);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reregistration_replaces_the_subscription() {
    let server = start(None).await;
    let client = Client::plain(&server).await;
    let old = get(1, 1, ATTRIBUTES, Some(0));
    let first = client.exchange(&old).await;
    let new = get(2, 2, ATTRIBUTES, Some(0));
    let second = client.exchange(&new).await;
    assert!(observe(&second) > observe(&first));
    assert_eq!(server.observers(), 1);
    assert_eq!(
        server.push_shared_attributes(DEVICE, attrs(json!({"a": 1}))),
        1
    );
    let n = client.notification(&new, true).await;
    assert!(observe(&n) > observe(&second));
    let s = server.stats();
    assert_eq!((s.observe_registrations, s.observe_replaced), (2, 1));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libcoap_client_observes_attributes() {
    const CLIENT: &str = "coap-client-notls";
    if !common::require(CLIENT) {
        return;
    }
    let server = start(None).await;
    let uri = format!("coap://{}{ATTRIBUTES}", server.local_addr());
    // Subscribe for 3 s, waiting at most 4 s for any answer.
    let args: Vec<String> = ["-s", "3", "-B", "4", &uri]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let client = tokio::task::spawn_blocking(move || {
        common::run_bounded(CLIENT, &args, Duration::from_secs(20))
    });
    eventually("libcoap's registration", || server.observers() == 1).await;
    assert_eq!(
        server.push_shared_attributes(DEVICE, attrs(json!({"libcoap": 42}))),
        1
    );
    let out = client.await.unwrap();
    assert!(
        out.contains(r#"{"libcoap":42}"#),
        "libcoap printed no notification:\n{out}"
    );
    eventually("libcoap's ACK", || server.stats().notifications_acked == 1).await;
    // When its 3 s are up, libcoap deregisters (GET with Observe=1), which we answer 2.02.
    let s = server.stats();
    assert_eq!(
        (
            s.observers,
            s.observe_cancellations,
            s.responses_by_code.get(Code::DELETED)
        ),
        (0, 1, 1),
        "libcoap output:\n{out}"
    );
    server.shutdown().await;
}

/// The server's identity for `localhost` and the CA its clients trust, from the crate's own test PKI.
fn dtls_pki() -> (Certificate, rustls::RootCertStore) {
    let pki = common::pki::TestPki::new();
    (pki.identity(Role::Server), pki.roots(Role::CaRoot))
}

async fn dtls_client(server: SocketAddr, roots: rustls::RootCertStore) -> Client {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    let config = Config {
        roots_cas: roots,
        server_name: "localhost".into(),
        ..Default::default()
    };
    let conn = timeout(
        Duration::from_secs(10),
        DTLSConn::new(Arc::new(socket), config, true, None),
    )
    .await
    .expect("handshake within 10 s")
    .expect("handshake succeeds");
    Client::Dtls(Box::new(conn))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_subscription_over_dtls() {
    let (identity, roots) = dtls_pki();
    let server = start(Some(DtlsServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        identity,
    )))
    .await;
    let client = dtls_client(server.dtls_addr().unwrap(), roots).await;
    attribute_subscription(&server, &client).await;
    // A second subscription ends with its DTLS session.
    let reg = get(3, 0xd71, ATTRIBUTES, Some(0));
    assert_eq!(client.exchange(&reg).await.code, Code::CONTENT);
    assert_eq!(server.observers(), 1);
    let Client::Dtls(conn) = client else {
        unreachable!()
    };
    conn.close().await.unwrap();
    eventually("the session's subscription cancelled", || {
        server.observers() == 0
    })
    .await;
    assert_eq!(
        server.push_shared_attributes(DEVICE, attrs(json!({"b": 1}))),
        0
    );
    assert_eq!(server.stats().observe_cancellations, 2);
    server.shutdown().await;
}
