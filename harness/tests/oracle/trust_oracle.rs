//! OpenSSL as an independent oracle for server-certificate verdicts. Every server certificate of an
//! openssl-made PKI (`common::openssl`: good ones in each key type and format, and one per way a chain can
//! fail) is served by `openssl s_server -dtls1_2` and judged twice: by `openssl s_client -verify_return_error
//! -verify_hostname localhost`, and by our DTLS client (`transport::dtls::handshake`, whose certificate check
//! is `trust::ServerCertCheck`). Any disagreement fails the test unless it is one of the named, documented
//! stricter verdicts in [`STRICTER`]. The table is printed (`--nocapture`).

use crate::common;

use coap_harness::pki;
use coap_harness::transport::dtls::{handshake, ClientSettings};
use coap_harness::trust::{ServerTrust, TrustVerdict};
use common::openssl::{self, OpensslPki, OpensslVerdict, SServer, ServedCert, SERVER_CERTS};
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use std::time::Duration;
use TrustVerdict as V;

/// Where we are stricter than OpenSSL 3.0 by design: (case, our verdict, why). The verdict must be exactly
/// this one; OpenSSL either accepts or refuses for the same reason (its security level decides SHA-1 and
/// RSA-1024: Debian's default level 2 refuses both, level 1 and below accept them).
const STRICTER: &[(&str, TrustVerdict, &str)] = &[
    (
        "cn_only",
        V::HostnameMismatch,
        "names are matched against subjectAltName only, the CN is never used (RFC 6125 §6.4.4); OpenSSL falls back to the CN",
    ),
    (
        "ca_as_leaf",
        V::NotACa,
        "a CA certificate is not accepted as the server's own (webpki); OpenSSL 3.0 accepts it without -x509_strict",
    ),
    (
        "sha1",
        V::WeakSignature,
        "SHA-1 signatures are never accepted; OpenSSL accepts them below security level 2",
    ),
    (
        "rsa1024",
        V::WeakSignature,
        "RSA keys under 2048 bits are never accepted; OpenSSL accepts them below security level 2",
    ),
];

/// OpenSSL's verify error numbers (x509_vfy.h, 3.0) as our verdicts.
fn openssl_verdict(v: &OpensslVerdict) -> Option<TrustVerdict> {
    let OpensslVerdict::VerifyError { num, .. } = v else {
        return (v == &OpensslVerdict::Ok).then_some(V::Ok);
    };
    Some(match num {
        7 => V::BadSignature,
        9 => V::NotYetValid,
        10 => V::Expired,
        18 => V::SelfSigned,
        2 | 19 | 20 | 21 => V::UnknownCa,
        24 | 25 | 79 => V::NotACa,
        26 => V::WrongKeyUsage,
        34 => V::UnsupportedCriticalExtension,
        47 | 48 => V::NameConstraintViolation,
        62 => V::HostnameMismatch,
        66..=68 => V::WeakSignature,
        _ => return None,
    })
}

/// Our client's verdict on the server at `addr`, trusting `ca.pem`, for the name `localhost`.
async fn ours(pki: &OpensslPki, addr: std::net::SocketAddr) -> (TrustVerdict, String) {
    let mut roots = rustls::RootCertStore::empty();
    for der in pki::read_certs(&pki.path("ca.pem")).unwrap() {
        roots.add(CertificateDer::from(der)).unwrap();
    }
    let settings = ClientSettings {
        trust: ServerTrust::verify(roots, "localhost").unwrap(),
        server_name: "localhost".into(),
        client_certificate: None,
        psk: None,
        cipher_suites: Vec::new(),
        curves: Vec::new(),
        handshake_timeout: Duration::from_secs(5),
        connection_id: None,
    };
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(addr).await.unwrap();
    match handshake(Arc::new(socket), &settings).await {
        Ok(session) => {
            let _ = session.conn.close().await;
            (session.verdict, String::new())
        }
        Err(failed) => (failed.judgement.verdict, failed.judgement.detail),
    }
}

struct Row {
    case: ServedCert,
    openssl: OpensslVerdict,
    ours: TrustVerdict,
    detail: String,
    /// How long our handshake took: a refusal that waits out the timeout is the crate stalling after our
    /// check refused the chain (printed, not asserted).
    took: Duration,
    agreement: String,
    ok: bool,
}

async fn judge(pki: Arc<OpensslPki>, case: ServedCert) -> Row {
    let p = pki.clone();
    let openssl = tokio::task::spawn_blocking(move || {
        let server = SServer::start(&p, &case, 1);
        openssl::s_client(&p, server.addr, "ca.pem")
    })
    .await
    .unwrap();
    let p = pki.clone();
    let server = tokio::task::spawn_blocking(move || SServer::start(&p, &case, 1))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (ours, detail) = ours(&pki, server.addr).await;
    let took = started.elapsed();
    drop(server);
    let theirs = openssl_verdict(&openssl);
    let stricter = STRICTER
        .iter()
        .find(|(name, v, _)| *name == case.name && *v == ours);
    let agree = theirs == Some(ours);
    let (agreement, ok) = match (agree, stricter) {
        (true, _) => ("agree".to_string(), true),
        (false, Some(_)) if matches!(theirs, Some(V::Ok)) => {
            ("stricter by design".to_string(), true)
        }
        (false, _) => ("DISAGREE".to_string(), false),
    };
    Row {
        case,
        openssl,
        ours,
        detail,
        took,
        agreement,
        ok,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_certificates_judged_like_openssl() {
    if !openssl::available() {
        return;
    }
    for (name, _, _) in STRICTER {
        assert!(SERVER_CERTS.iter().any(|c| c.name == *name), "{name}");
    }
    let pki = Arc::new(tokio::task::spawn_blocking(OpensslPki::make).await.unwrap());
    // A few at a time: each case runs two s_server processes, one s_client and one handshake of ours.
    let mut rows = Vec::new();
    for batch in SERVER_CERTS.chunks(4) {
        let tasks: Vec<_> = batch
            .iter()
            .map(|case| tokio::spawn(judge(pki.clone(), *case)))
            .collect();
        for t in tasks {
            rows.push(t.await.unwrap());
        }
    }
    println!("| certificate | what it is | openssl s_client | ours | |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| `{}` | {} | {} | `{}` | {} |",
            r.case.name, r.case.about, r.openssl, r.ours, r.agreement
        );
    }
    println!();
    for (name, verdict, why) in STRICTER {
        println!("stricter by design: `{name}` -> `{verdict}`: {why}");
    }
    for r in rows.iter().filter(|r| !r.detail.is_empty()) {
        println!("ours, {} ({:.1?}): {}", r.case.name, r.took, r.detail);
    }
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| {
            format!(
                "{}: openssl {} ours {} ({}) — {}",
                r.case.name, r.openssl, r.ours, r.detail, r.agreement
            )
        })
        .collect();
    assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
    // The oracle itself must have been exercised both ways.
    assert!(rows.iter().any(|r| r.openssl == OpensslVerdict::Ok));
    assert!(
        rows.iter()
            .filter(|r| matches!(r.openssl, OpensslVerdict::VerifyError { .. }))
            .count()
            >= 10
    );
}

#[test]
fn s_client_output_is_read_by_its_verify_error_not_its_return_code() {
    let failed = "depth=0 CN = localhost\nverify error:num=10:certificate has expired\n\
                  New, (NONE), Cipher is (NONE)\nVerification: OK\n    Verify return code: 0 (ok)\n";
    assert_eq!(
        openssl::parse_s_client(failed),
        OpensslVerdict::VerifyError {
            num: 10,
            reason: "certificate has expired".into()
        }
    );
    let refused =
        "40:error:0A000410:SSL routines:dtls1_read_bytes:sslv3 alert handshake failure:x\n\
                   New, (NONE), Cipher is (NONE)\nVerification: OK\n";
    assert!(matches!(
        openssl::parse_s_client(refused),
        OpensslVerdict::Failed(_)
    ));
    let ok = "Verification: OK\nNew, TLSv1.2, Cipher is ECDHE-ECDSA-AES256-GCM-SHA384\n";
    assert_eq!(openssl::parse_s_client(ok), OpensslVerdict::Ok);
}
