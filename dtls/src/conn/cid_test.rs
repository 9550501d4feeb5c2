//! Connection ID (RFC 9146) tests: coap-harness fork, FORK.md change 13.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;

use tokio::net::UdpSocket;
use tokio::sync::Notify;
use util::conn::conn_pipe::pipe;

use super::*;
use crate::crypto::Certificate;

type UtilResult<T> = std::result::Result<T, util::Error>;

fn cert_config(cid: Option<usize>, suite: CipherSuiteId) -> Result<Config> {
    Ok(Config {
        certificates: vec![Certificate::generate_self_signed(vec![
            "localhost".to_owned()
        ])?],
        insecure_skip_verify: true,
        cipher_suites: vec![suite],
        connection_id_generator: cid.map(random_connection_id_generator),
        ..Default::default()
    })
}

fn psk_config(cid: Option<usize>, suite: CipherSuiteId) -> Config {
    Config {
        psk: Some(Arc::new(|_| Box::pin(async { Ok(vec![0xAB, 0xC1, 0x23]) }))),
        psk_identity_hint: Some(b"device-1".to_vec()),
        cipher_suites: vec![suite],
        connection_id_generator: cid.map(random_connection_id_generator),
        ..Default::default()
    }
}

async fn pair(
    ca: Arc<dyn util::Conn + Send + Sync>,
    cb: Arc<dyn util::Conn + Send + Sync>,
    client: Config,
    server: Config,
) -> Result<(DTLSConn, DTLSConn)> {
    let c = tokio::spawn(async move { DTLSConn::new(ca, client, true, None).await });
    let s = DTLSConn::new(cb, server, false, None).await?;
    Ok((c.await.expect("client task")?, s))
}

async fn exchange(client: &DTLSConn, server: &DTLSConn, n: u8) -> Result<()> {
    let mut buf = [0u8; 256];
    client.write(&[n; 40], None).await?;
    let got = server.read(&mut buf, None).await?;
    assert_eq!(&buf[..got], &[n; 40][..]);
    server.write(&[n.wrapping_add(100); 30], None).await?;
    let got = client.read(&mut buf, None).await?;
    assert_eq!(&buf[..got], &[n.wrapping_add(100); 30][..]);
    Ok(())
}

#[tokio::test]
async fn test_connection_id_negotiated_when_both_want_it() -> Result<()> {
    for suite in [
        CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256,
        CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm_8,
    ] {
        let (ua, ub) = pipe();
        let (client, server) = pair(
            Arc::new(ua),
            Arc::new(ub),
            cert_config(Some(8), suite)?,
            cert_config(Some(5), suite)?,
        )
        .await?;
        let (c, s) = (
            client.connection_ids().expect("client negotiated"),
            server.connection_ids().expect("server negotiated"),
        );
        assert_eq!((c.local.len(), s.local.len()), (8, 5), "{suite}");
        assert_eq!((&c.local, &c.remote), (&s.remote, &s.local), "{suite}");
        for i in 0..3 {
            exchange(&client, &server, i).await?;
        }
        client.close().await?;
        server.close().await?;
    }
    for suite in [
        CipherSuiteId::Tls_Psk_With_Aes_128_Gcm_Sha256,
        CipherSuiteId::Tls_Psk_With_Aes_128_Ccm,
        CipherSuiteId::Tls_Psk_With_Aes_128_Ccm_8,
    ] {
        let (ua, ub) = pipe();
        let (client, server) = pair(
            Arc::new(ua),
            Arc::new(ub),
            psk_config(Some(8), suite),
            psk_config(Some(8), suite),
        )
        .await?;
        assert!(client.connection_ids().is_some(), "{suite}");
        assert_eq!(
            server.connection_ids().map(|ids| ids.remote),
            client.connection_ids().map(|ids| ids.local),
            "{suite}"
        );
        exchange(&client, &server, 1).await?;
        client.close().await?;
        server.close().await?;
    }
    // A client that sends the server's CID but wants none in the server's records (an empty CID): only
    // the client's records carry one.
    let (ua, ub) = pipe();
    let suite = CipherSuiteId::Tls_Psk_With_Aes_128_Ccm_8;
    let (client, server) = pair(
        Arc::new(ua),
        Arc::new(ub),
        psk_config(Some(0), suite),
        psk_config(Some(4), suite),
    )
    .await?;
    let c = client.connection_ids().expect("negotiated");
    assert_eq!((c.local.len(), c.remote.len()), (0, 4));
    exchange(&client, &server, 2).await?;
    Ok(())
}

#[tokio::test]
async fn test_connection_id_not_negotiated_unless_both_want_it() -> Result<()> {
    let suite = CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256;
    for (c, s) in [(Some(8), None), (None, Some(8)), (None, None)] {
        let (ua, ub) = pipe();
        let (client, server) = pair(
            Arc::new(ua),
            Arc::new(ub),
            cert_config(c, suite)?,
            cert_config(s, suite)?,
        )
        .await?;
        assert_eq!(client.connection_ids(), None, "client {c:?} server {s:?}");
        assert_eq!(server.connection_ids(), None, "client {c:?} server {s:?}");
        exchange(&client, &server, 3).await?;
    }
    // A suite that cannot protect CID records here: the server does not answer the offer.
    let cbc = CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_256_Cbc_Sha;
    let (ua, ub) = pipe();
    let (client, server) = pair(
        Arc::new(ua),
        Arc::new(ub),
        cert_config(Some(8), cbc)?,
        cert_config(Some(8), cbc)?,
    )
    .await?;
    assert_eq!(client.connection_ids(), None);
    assert_eq!(server.connection_ids(), None);
    exchange(&client, &server, 4).await?;
    Ok(())
}

/// The client's side of a UDP "NAT": a connected socket that can be swapped for one on a new port.
struct Rebindable {
    socket: std::sync::Mutex<Arc<UdpSocket>>,
    rebound: Notify,
}

impl Rebindable {
    fn current(&self) -> Arc<UdpSocket> {
        self.socket.lock().unwrap().clone()
    }

    async fn rebind(&self, server: SocketAddr) -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.connect(server).await.unwrap();
        let addr = s.local_addr().unwrap();
        *self.socket.lock().unwrap() = Arc::new(s);
        self.rebound.notify_waiters();
        addr
    }
}

#[async_trait]
impl util::Conn for Rebindable {
    async fn connect(&self, _addr: SocketAddr) -> UtilResult<()> {
        Ok(())
    }
    async fn recv(&self, buf: &mut [u8]) -> UtilResult<usize> {
        loop {
            let s = self.current();
            tokio::select! {
                r = s.recv(buf) => return Ok(r?),
                _ = self.rebound.notified() => continue,
            }
        }
    }
    async fn recv_from(&self, buf: &mut [u8]) -> UtilResult<(usize, SocketAddr)> {
        let n = self.recv(buf).await?;
        Ok((n, self.current().peer_addr()?))
    }
    async fn send(&self, buf: &[u8]) -> UtilResult<usize> {
        Ok(self.current().send(buf).await?)
    }
    async fn send_to(&self, buf: &[u8], _target: SocketAddr) -> UtilResult<usize> {
        self.send(buf).await
    }
    fn local_addr(&self) -> UtilResult<SocketAddr> {
        Ok(self.current().local_addr()?)
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        self.current().peer_addr().ok()
    }
    async fn close(&self) -> UtilResult<()> {
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// The server's side: an unconnected socket that sends to the peer it last moved to, and moves only when
/// the connection signals a newest authenticated CID record (the datagram it handed over last).
struct Following {
    socket: UdpSocket,
    peer: std::sync::Mutex<Option<SocketAddr>>,
    last_from: std::sync::Mutex<Option<SocketAddr>>,
    moves: AtomicUsize,
}

impl Following {
    fn follow(&self) {
        let from = *self.last_from.lock().unwrap();
        let mut peer = self.peer.lock().unwrap();
        if from.is_some() && from != *peer {
            *peer = from;
            self.moves.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[async_trait]
impl util::Conn for Following {
    async fn connect(&self, _addr: SocketAddr) -> UtilResult<()> {
        Ok(())
    }
    async fn recv(&self, buf: &mut [u8]) -> UtilResult<usize> {
        let (n, from) = self.socket.recv_from(buf).await?;
        *self.last_from.lock().unwrap() = Some(from);
        self.peer.lock().unwrap().get_or_insert(from);
        Ok(n)
    }
    async fn recv_from(&self, buf: &mut [u8]) -> UtilResult<(usize, SocketAddr)> {
        let n = self.recv(buf).await?;
        Ok((n, self.last_from.lock().unwrap().expect("received")))
    }
    async fn send(&self, buf: &[u8]) -> UtilResult<usize> {
        let peer = self.peer.lock().unwrap().expect("a peer");
        Ok(self.socket.send_to(buf, peer).await?)
    }
    async fn send_to(&self, buf: &[u8], _target: SocketAddr) -> UtilResult<usize> {
        self.send(buf).await
    }
    fn local_addr(&self) -> UtilResult<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        *self.peer.lock().unwrap()
    }
    async fn close(&self) -> UtilResult<()> {
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// A record with the CID from a new address is accepted: the connection does not look at addresses. The
/// caller, told that the newest authenticated CID record arrived, moves its peer there, and the session
/// goes on both ways without a handshake.
#[tokio::test]
async fn test_connection_id_record_from_a_new_address_is_accepted() -> Result<()> {
    let server_socket = UdpSocket::bind("127.0.0.1:0").await?;
    let server_addr = server_socket.local_addr()?;
    let following = Arc::new(Following {
        socket: server_socket,
        peer: std::sync::Mutex::new(None),
        last_from: std::sync::Mutex::new(None),
        moves: AtomicUsize::new(0),
    });
    let first = UdpSocket::bind("127.0.0.1:0").await?;
    first.connect(server_addr).await?;
    let first_addr = first.local_addr()?;
    let nat = Arc::new(Rebindable {
        socket: std::sync::Mutex::new(Arc::new(first)),
        rebound: Notify::new(),
    });
    let suite = CipherSuiteId::Tls_Psk_With_Aes_128_Ccm_8;
    let mut server_cfg = psk_config(Some(8), suite);
    let signalled = Arc::new(AtomicUsize::new(0));
    let (f, n) = (following.clone(), signalled.clone());
    server_cfg.on_newest_connection_id_record = Some(Arc::new(move || {
        n.fetch_add(1, Ordering::SeqCst);
        f.follow();
    }));
    let (client, server) = pair(
        nat.clone(),
        following.clone(),
        psk_config(Some(8), suite),
        server_cfg,
    )
    .await?;
    assert!(client.connection_ids().is_some());
    exchange(&client, &server, 1).await?;
    assert_eq!(*following.peer.lock().unwrap(), Some(first_addr));
    assert_eq!(following.moves.load(Ordering::SeqCst), 0);
    // The client's Finished and its first request were CID records.
    assert!(signalled.load(Ordering::SeqCst) >= 2);

    let second_addr = nat.rebind(server_addr).await;
    assert_ne!(second_addr, first_addr);
    exchange(&client, &server, 2).await?;
    assert_eq!(*following.peer.lock().unwrap(), Some(second_addr));
    assert_eq!(following.moves.load(Ordering::SeqCst), 1);
    exchange(&client, &server, 3).await?;

    // A record whose CID is not the server's is dropped, and the session goes on.
    let stranger = UdpSocket::bind("127.0.0.1:0").await?;
    let mut forged = vec![25u8, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 1, 0];
    forged.extend_from_slice(&[0xee; 8]);
    forged.extend_from_slice(&(40u16).to_be_bytes());
    forged.extend_from_slice(&[0u8; 40]);
    stranger.send_to(&forged, server_addr).await?;
    exchange(&client, &server, 4).await?;
    assert_eq!(*following.peer.lock().unwrap(), Some(second_addr));
    assert_eq!(following.moves.load(Ordering::SeqCst), 1);
    Ok(())
}

#[test]
fn test_connection_id_additional_data_follows_rfc_9146() {
    let h = RecordLayerHeader {
        content_type: ContentType::ConnectionId,
        protocol_version: PROTOCOL_VERSION1_2,
        epoch: 1,
        sequence_number: 0x0102_0304_0506,
        content_len: 0,
    };
    let ad = crate::crypto::generate_aead_additional_data_cid(&h, &[0xaa, 0xbb], 0x0123);
    assert_eq!(
        ad,
        vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // seq_num_placeholder
            25, 2, 25, // tls12_cid, cid_length, tls12_cid
            0xfe, 0xfd, // version
            0, 1, // epoch
            1, 2, 3, 4, 5, 6, // sequence_number
            0xaa, 0xbb, // cid
            0x01, 0x23, // length_of_DTLSInnerPlaintext
        ]
    );
}
