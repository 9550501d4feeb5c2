//! The embedded server over real UDP sockets on 127.0.0.1: ThingsBoard's response codes, message-layer
//! framing (piggybacked, NON, separate), duplicates, garbage, per-device accounting, libcoap interop, bind
//! errors.

use crate::common;

use coap_harness::coap::{
    content_format, option, ClientEndpoint, Code, ExchangeOutcome, Message, MessageType, Token,
    TransmissionParams,
};
use coap_harness::server::{self, ServerConfig, ServerError, ServerHandle, TokenPolicy};
use coap_harness::token::TokenPattern;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::time::timeout;

/// Bound on any single wait for a network event.
const WAIT: Duration = Duration::from_secs(5);

const DEVICE: &str = "dev-00001";

fn pattern_policy(count: u64) -> TokenPolicy {
    TokenPolicy::Pattern {
        pattern: TokenPattern::parse("dev-{index:05}").unwrap(),
        count,
    }
}

async fn start(tokens: TokenPolicy, response_delay: Option<Duration>) -> ServerHandle {
    server::start(ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        tokens,
        response_delay,
        plain: true,
        dtls: None,
    })
    .await
    .expect("server starts")
}

async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

fn request(mtype: MessageType, code: Code, mid: u16, path: &str, payload: &[u8]) -> Message {
    let mut m = Message::new(
        mtype,
        code,
        mid,
        Token::from_u64(0x5eed_0000 + u64::from(mid)),
    );
    m.set_path(path);
    m.payload = payload.to_vec();
    m
}

async fn recv(sock: &UdpSocket) -> Message {
    let mut buf = vec![0u8; 2048];
    let (n, _) = timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("a datagram within the bound")
        .unwrap();
    Message::decode(&buf[..n]).expect("the server sends valid CoAP")
}

async fn exchange(sock: &UdpSocket, server: SocketAddr, req: &Message) -> Message {
    sock.send_to(&req.to_bytes(), server).await.unwrap();
    recv(sock).await
}

/// Polls a condition on the server's state until it holds, within the bound.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The stateless part of ThingsBoard's code table.
fn code_table() -> Vec<(Code, &'static str, &'static [u8], Code)> {
    let ok: &[u8] = br#"{"temperature":25}"#;
    vec![
        (Code::POST, "/api/v1/dev-00001/telemetry", ok, Code::CREATED),
        (
            Code::POST,
            "/api/v1/dev-00001/telemetry",
            br#"[{"a":1},{"b":2}]"#,
            Code::CREATED,
        ),
        (
            Code::POST,
            "/api/v1/dev-00001/telemetry",
            br#"{"ts":1700000000000,"values":{"a":1}}"#,
            Code::CREATED,
        ),
        (
            Code::POST,
            "/api/v1/dev-00001/telemetry",
            br#"{"a":"#,
            Code::BAD_REQUEST,
        ),
        (
            Code::POST,
            "/api/v1/dev-00001/telemetry",
            b"5",
            Code::BAD_REQUEST,
        ),
        (
            Code::POST,
            "/api/v1/dev-00001/telemetry",
            br#""x""#,
            Code::BAD_REQUEST,
        ),
        (
            Code::POST,
            "/api/v1/dev-00001/telemetry",
            b"[1,2]",
            Code::BAD_REQUEST,
        ),
        (
            Code::POST,
            "/api/v1/dev-00001/telemetry",
            b"",
            Code::BAD_REQUEST,
        ),
        (
            Code::POST,
            "/api/v1/dev-99999/telemetry",
            ok,
            Code::UNAUTHORIZED,
        ),
        (Code::POST, "/api/v1", ok, Code::UNAUTHORIZED),
        (Code::POST, "/api", ok, Code::UNAUTHORIZED),
        (Code::POST, "/api/v1/dev-00001", ok, Code::BAD_REQUEST),
        (Code::POST, "/api/v1/dev-00001/bogus", ok, Code::BAD_REQUEST),
        (Code::POST, "/elsewhere", ok, Code::NOT_FOUND),
        (
            Code::GET,
            "/api/v1/dev-00001/telemetry",
            b"",
            Code::BAD_REQUEST,
        ),
        (
            Code::PUT,
            "/api/v1/dev-00001/telemetry",
            ok,
            Code::METHOD_NOT_ALLOWED,
        ),
        (
            Code::DELETE,
            "/api/v1/dev-00001/telemetry",
            b"",
            Code::METHOD_NOT_ALLOWED,
        ),
        (
            Code::FETCH,
            "/api/v1/dev-00001/telemetry",
            ok,
            Code::METHOD_NOT_ALLOWED,
        ),
        (
            Code::PATCH,
            "/api/v1/dev-00001/telemetry",
            ok,
            Code::METHOD_NOT_ALLOWED,
        ),
        (
            Code::IPATCH,
            "/api/v1/dev-00001/telemetry",
            ok,
            Code::METHOD_NOT_ALLOWED,
        ),
        (
            Code::POST,
            "/api/v1/dev-00001/rpc",
            br#"{"method":"getTime","params":{}}"#,
            Code::CONTENT,
        ),
        (Code::POST, "/api/v1/dev-00001/rpc/0", ok, Code::CREATED),
        (Code::POST, "/api/v1/dev-00001/claim", b"", Code::CREATED),
        (
            Code::POST,
            "/api/v1/dev-00001/attributes",
            b"[1]",
            Code::BAD_REQUEST,
        ),
    ]
}

#[tokio::test]
async fn con_requests_get_thingsboard_codes_piggybacked() {
    let srv = start(pattern_policy(10), None).await;
    let sock = client().await;
    let table = code_table();
    for (i, (method, path, payload, want)) in table.iter().enumerate() {
        let req = request(MessageType::Con, *method, 100 + i as u16, path, payload);
        let reply = exchange(&sock, srv.local_addr(), &req).await;
        assert_eq!(
            reply.code,
            *want,
            "{} {path}",
            method.method_name().unwrap()
        );
        assert_eq!(reply.mtype, MessageType::Ack, "piggybacked on the ACK");
        assert_eq!(reply.message_id, req.message_id, "same message ID");
        assert_eq!(reply.token, req.token, "same token");
        assert_eq!(reply.content_format(), Some(content_format::JSON));
    }
    let stats = srv.stats();
    assert_eq!(stats.requests, table.len() as u64);
    assert_eq!(stats.responses_by_code.total(), stats.requests);
    assert_eq!(stats.unknown_token, 3);
    assert_eq!(srv.device(DEVICE).unwrap().messages, 3);
    srv.shutdown().await;
}

#[tokio::test]
async fn non_requests_get_non_responses() {
    let srv = start(pattern_policy(10), None).await;
    let sock = client().await;
    for (i, (method, path, payload, want)) in code_table().into_iter().enumerate() {
        let req = request(MessageType::Non, method, 200 + i as u16, path, payload);
        let reply = exchange(&sock, srv.local_addr(), &req).await;
        assert_eq!(reply.code, want, "{} {path}", method.method_name().unwrap());
        assert_eq!(reply.mtype, MessageType::Non);
        assert_eq!(reply.token, req.token);
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn attributes_post_then_get() {
    let srv = start(pattern_policy(10), None).await;
    let sock = client().await;
    let addr = srv.local_addr();
    let attrs = "/api/v1/dev-00002/attributes";
    let get = |mid: u16, query: &[&str]| {
        let mut m = request(MessageType::Con, Code::GET, mid, attrs, b"");
        for q in query {
            m.add_option(option::URI_QUERY, q.as_bytes());
        }
        m
    };
    assert_eq!(
        exchange(&sock, addr, &get(1, &[])).await.code,
        Code::NOT_FOUND
    );
    let post = request(
        MessageType::Con,
        Code::POST,
        2,
        attrs,
        br#"{"fw":"1.0","model":"m1"}"#,
    );
    assert_eq!(exchange(&sock, addr, &post).await.code, Code::CREATED);
    assert!(srv.set_shared_attribute("dev-00002", "interval", serde_json::json!(30)));
    let all = exchange(&sock, addr, &get(3, &[])).await;
    assert_eq!(all.code, Code::CONTENT);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&all.payload).unwrap(),
        serde_json::json!({"client": {"fw": "1.0", "model": "m1"}, "shared": {"interval": 30}})
    );
    let some = exchange(
        &sock,
        addr,
        &get(4, &["clientKeys=model", "sharedKeys=interval"]),
    )
    .await;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&some.payload).unwrap(),
        serde_json::json!({"client": {"model": "m1"}, "shared": {"interval": 30}})
    );
    let none = exchange(&sock, addr, &get(5, &["clientKeys=absent"])).await;
    assert_eq!(none.code, Code::NOT_FOUND);
    let unknown = request(
        MessageType::Con,
        Code::GET,
        6,
        "/api/v1/nobody/attributes",
        b"",
    );
    assert_eq!(
        exchange(&sock, addr, &unknown).await.code,
        Code::UNAUTHORIZED
    );
    let dev = srv.device("dev-00002").unwrap();
    assert_eq!((dev.attributes_posts, dev.attributes_reads), (1, 4));
    srv.shutdown().await;
}

#[tokio::test]
async fn duplicate_con_is_replayed_and_counted_once() {
    let srv = start(pattern_policy(10), None).await;
    let sock = client().await;
    let req = request(
        MessageType::Con,
        Code::POST,
        4242,
        "/api/v1/dev-00003/telemetry",
        b"{\"n\":1}",
    );
    let first = exchange(&sock, srv.local_addr(), &req).await;
    let again = exchange(&sock, srv.local_addr(), &req).await;
    assert_eq!(first.code, Code::CREATED);
    assert_eq!(first, again, "the cached reply, byte for byte");
    let stats = srv.stats();
    assert_eq!(
        (stats.requests, stats.duplicates, stats.datagrams_received),
        (1, 1, 2)
    );
    assert_eq!(srv.device("dev-00003").unwrap().messages, 1);
    srv.shutdown().await;
}

/// A server answering after `delay`, and a telemetry post of type `mtype` to it (message ID `mid`, device
/// `dev-0000{device}`): a CON is acknowledged at once with an empty ACK; the response, of the request's type,
/// comes after the delay. The server, the client's socket, the request and the response.
async fn delayed_answer(
    delay: Duration,
    mtype: MessageType,
    mid: u16,
    device: u8,
) -> (ServerHandle, UdpSocket, Message, Message) {
    let srv = start(pattern_policy(10), Some(delay)).await;
    let sock = client().await;
    let path = format!("/api/v1/dev-0000{device}/telemetry");
    let req = request(mtype, Code::POST, mid, &path, b"{\"n\":1}");
    let sent = Instant::now();
    let mut reply = exchange(&sock, srv.local_addr(), &req).await;
    if mtype == MessageType::Con {
        assert_eq!(reply, Message::empty_ack(mid), "empty ACK first");
        reply = recv(&sock).await;
    }
    assert!(sent.elapsed() >= delay, "sent after the delay");
    assert_eq!(
        (reply.mtype, reply.code, reply.token),
        (mtype, Code::CREATED, req.token)
    );
    (srv, sock, req, reply)
}

#[tokio::test]
async fn delayed_con_gets_empty_ack_then_separate_con() {
    let (srv, sock, req, separate) =
        delayed_answer(Duration::from_millis(150), MessageType::Con, 7, 4).await;
    assert_ne!(separate.message_id, req.message_id);
    sock.send_to(
        &Message::empty_ack(separate.message_id).to_bytes(),
        srv.local_addr(),
    )
    .await
    .unwrap();
    eventually("the server to see our ACK", || {
        srv.stats().separate_acked == 1
    })
    .await;

    // The same exchange driven by our client endpoint completes as a separate response.
    let mut ep = ClientEndpoint::new(TransmissionParams::default(), 42);
    let mut req = Message::new(MessageType::Con, Code::POST, 0, Token::default());
    req.set_path("/api/v1/dev-00004/telemetry");
    req.payload = b"{\"n\":2}".to_vec();
    ep.start(Instant::now(), req);
    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 2048];
    let done = loop {
        while let Some(d) = ep.poll_transmit() {
            sock.send_to(&d, srv.local_addr()).await.unwrap();
        }
        if let Some(done) = ep.poll_event() {
            break done;
        }
        assert!(Instant::now() < deadline, "exchange did not complete");
        let wake = ep.poll_timeout().unwrap().min(deadline);
        match tokio::time::timeout_at(wake.into(), sock.recv_from(&mut buf)).await {
            Ok(got) => ep.handle_datagram(Instant::now(), &buf[..got.unwrap().0]),
            Err(_) => ep.handle_timeout(Instant::now()),
        }
    };
    match done.outcome {
        ExchangeOutcome::Response { response, separate } => {
            assert!(separate, "separate response");
            assert_eq!(response.code, Code::CREATED);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(done.retransmissions, 0);
    eventually("the server to see the endpoint's ACK", || {
        srv.stats().separate_acked == 2
    })
    .await;
    let stats = srv.stats();
    assert_eq!(
        (stats.separate_sent, stats.separate_retransmissions),
        (2, 0)
    );
    assert_eq!(srv.device("dev-00004").unwrap().messages, 2);
    srv.shutdown().await;
}

#[tokio::test]
async fn delayed_non_gets_a_later_non() {
    let (srv, ..) = delayed_answer(Duration::from_millis(100), MessageType::Non, 8, 5).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn garbage_burst_is_counted_and_survived() {
    let srv = start(pattern_policy(10), None).await;
    let sock = client().await;
    let mut rng = fastrand::Rng::with_seed(7);
    const GARBAGE: u64 = 1000;
    for i in 0..GARBAGE {
        let mut d: Vec<u8> = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
        if let Some(first) = d.first_mut() {
            // Any version but 1: never a CoAP message, and silently ignored (§3).
            *first = (*first & 0x3f) | ([0u8, 2, 3][i as usize % 3] << 6);
        }
        sock.send_to(&d, srv.local_addr()).await.unwrap();
    }
    let req = request(
        MessageType::Con,
        Code::POST,
        1,
        "/api/v1/dev-00006/telemetry",
        b"{\"ok\":true}",
    );
    let reply = exchange(&sock, srv.local_addr(), &req).await;
    assert_eq!(
        (reply.code, reply.message_id),
        (Code::CREATED, 1),
        "the only reply"
    );
    // Datagrams from one socket are handled in order: all the garbage came before the reply.
    let stats = srv.stats();
    assert_eq!(stats.malformed, GARBAGE);
    assert_eq!(stats.datagrams_received, GARBAGE + 1);
    assert_eq!((stats.requests, stats.resets_sent), (1, 0));
    srv.shutdown().await;
}

/// 200 devices, one socket each, 5 CON messages each, all at once; retransmissions on timeout reuse the
/// message ID, so deduplication keeps the count exact even if a datagram is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_of_every_device_is_counted() {
    const DEVICES: u64 = 200;
    const MESSAGES: u16 = 5;
    let srv = start(pattern_policy(DEVICES), None).await;
    let addr = srv.local_addr();
    let mut tasks = Vec::new();
    for dev in 0..DEVICES {
        tasks.push(tokio::spawn(async move {
            let sock = client().await;
            let mut buf = vec![0u8; 512];
            for n in 0..MESSAGES {
                let path = format!("/api/v1/dev-{dev:05}/telemetry");
                let req = request(
                    MessageType::Con,
                    Code::POST,
                    n,
                    &path,
                    format!("{{\"n\":{n}}}").as_bytes(),
                );
                let wire = req.to_bytes();
                let reply = 'attempts: {
                    for _ in 0..5 {
                        sock.send_to(&wire, addr).await.unwrap();
                        if let Ok(got) =
                            timeout(Duration::from_secs(1), sock.recv_from(&mut buf)).await
                        {
                            break 'attempts Message::decode(&buf[..got.unwrap().0]).unwrap();
                        }
                    }
                    panic!("device {dev} message {n}: no reply");
                };
                assert_eq!((reply.code, reply.message_id), (Code::CREATED, n));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let devices = srv.devices();
    assert_eq!(devices.len() as u64, DEVICES);
    for d in &devices {
        assert_eq!(d.messages, u64::from(MESSAGES), "{}", d.token);
        assert_eq!(d.last_payload.as_deref(), Some("{\"n\":4}"));
    }
    let stats = srv.stats();
    assert_eq!(stats.requests, DEVICES * u64::from(MESSAGES));
    assert_eq!(stats.responses_by_code.get(Code::CREATED), stats.requests);
    assert_eq!(stats.datagrams_received, stats.requests + stats.duplicates);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libcoap_client_interoperates() {
    const CLIENT: &str = "coap-client-notls";
    if Command::new(CLIENT).arg("-h").output().is_err() {
        eprintln!("NOTICE: {CLIENT} not installed (apt-get install libcoap3-bin); skipping libcoap interop");
        return;
    }
    let srv = start(pattern_policy(10), None).await;
    let port = srv.local_addr().port();
    let post = move |token: &'static str| {
        tokio::task::spawn_blocking(move || {
            common::run_to_end(
                Command::new(CLIENT).args([
                    "-v",
                    "6",
                    "-B",
                    "5",
                    "-m",
                    "POST",
                    "-t",
                    "json",
                    "-e",
                    r#"{"temperature":25}"#,
                    &format!("coap://127.0.0.1:{port}/api/v1/{token}/telemetry"),
                ]),
                Duration::from_secs(15),
            )
        })
    };
    let ok = post("dev-00007").await.unwrap();
    assert!(ok.contains("c:2.01"), "libcoap output:\n{ok}");
    let denied = post("not-a-device").await.unwrap();
    assert!(denied.contains("c:4.01"), "libcoap output:\n{denied}");
    let dev = srv.device("dev-00007").unwrap();
    assert_eq!(dev.messages, 1);
    assert_eq!(dev.last_payload.as_deref(), Some(r#"{"temperature":25}"#));
    assert_eq!(srv.stats().unknown_token, 1);
    srv.shutdown().await;
}

#[tokio::test]
async fn bind_conflict_names_the_address() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = server::start(ServerConfig {
        bind: addr,
        tokens: TokenPolicy::Any,
        response_delay: None,
        plain: true,
        dtls: None,
    })
    .await
    .unwrap_err();
    assert!(
        matches!(err, ServerError::Bind { addr: a, .. } if a == addr),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&addr.to_string()), "{text}");
    assert!(text.to_lowercase().contains("in use"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
}

#[tokio::test]
async fn shutdown_releases_the_port() {
    let srv = start(TokenPolicy::Any, Some(Duration::from_secs(60))).await;
    let addr = srv.local_addr();
    // Leave a delayed response pending: shutdown must not wait for it.
    let sock = client().await;
    let req = request(
        MessageType::Con,
        Code::POST,
        1,
        "/api/v1/any/telemetry",
        b"{}",
    );
    assert_eq!(exchange(&sock, addr, &req).await, Message::empty_ack(1));
    srv.shutdown().await;
    let again = server::start(ServerConfig {
        bind: addr,
        tokens: TokenPolicy::Any,
        response_delay: None,
        plain: true,
        dtls: None,
    })
    .await
    .expect("the port is free again");
    again.shutdown().await;
}
