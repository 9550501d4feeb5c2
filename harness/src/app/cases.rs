//! Trust cases: for each, one DTLS handshake (against a fresh embedded server with the case's identity, or
//! the remote target), one request over the session when it opens, and a verdict against the expectation.

use super::embedded;
use super::prepare::{self, RunPki};
use super::EngineError;
use crate::coap::MessageType;
use crate::report::model::{AlertDirection, RefusedBy, TrustAlert, TrustCaseResult};
use crate::scenario::plan::{Expect, TrustCase};
use crate::scenario::{RunPlan, Target};
use crate::transport::dtls::{self as dtls_client, HandshakeAlert};
use crate::transport::Link;
use crate::trust::TrustVerdict;
use std::time::{Duration, Instant};

/// What one case observed.
#[derive(Clone, Debug)]
struct Observed {
    verdict: TrustVerdict,
    /// The alert that ended a failed handshake, when one was observed.
    alert: Option<HandshakeAlert>,
    detail: Option<String>,
    code: Option<crate::coap::Code>,
    elapsed: Duration,
    presented: Option<crate::trust::PresentedCert>,
    server_saw: Option<String>,
    /// The address the case connected to.
    target: std::net::SocketAddr,
    /// A session opened with a client certificate that does not chain to the server's `client_ca`: what the
    /// server failed to check (ThingsBoard does no path validation), for the report to show.
    finding: Option<String>,
}

/// The trust cases' results, and the findings the report must show beside them.
pub struct CaseResults {
    pub results: Vec<TrustCaseResult>,
    /// One line per case whose server accepted more than it should have (`FINDING: ...`).
    pub findings: Vec<String>,
}

/// The request a case sends: the plan's, on the case's own path when it has one.
fn case_request(plan: &RunPlan, case: &TrustCase) -> crate::scenario::plan::RequestPlan {
    let mut request = plan.request.clone();
    if let Some(path) = &case.path {
        request.path = path.clone();
    }
    request
}

/// Runs every case in order.
pub async fn run_all(plan: &RunPlan, run_pki: Option<&RunPki>) -> Result<CaseResults, EngineError> {
    let mut out = CaseResults {
        results: Vec::with_capacity(plan.trust_cases.len()),
        findings: Vec::new(),
    };
    for case in &plan.trust_cases {
        let request = case_request(plan, case);
        let observed = run_one(plan, case, &request, run_pki).await?;
        if let Some(f) = &observed.finding {
            out.findings
                .push(format!("FINDING: trust case `{}`: {f}", case.name));
        }
        out.results.push(judge(
            case,
            &observed,
            // A trust case sends its one request confirmable.
            &request.describe(MessageType::Con),
        ));
    }
    Ok(out)
}

/// Whether `leaf` chains to the certificates of `ca` as a client certificate (webpki path validation);
/// `None` when `ca` cannot be loaded (a remote target's scenario need not name its client CA).
fn chains_to(
    leaf: &rustls::pki_types::CertificateDer<'static>,
    ca: &crate::scenario::plan::CertRef,
    run_pki: Option<&RunPki>,
) -> Option<bool> {
    let roots = prepare::roots(ca, run_pki).ok()?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        crate::trust::provider(),
    )
    .build()
    .ok()?;
    Some(
        verifier
            .verify_client_cert(leaf, &[], rustls::pki_types::UnixTime::now())
            .is_ok(),
    )
}

async fn run_one(
    plan: &RunPlan,
    case: &TrustCase,
    request: &crate::scenario::plan::RequestPlan,
    run_pki: Option<&RunPki>,
) -> Result<Observed, EngineError> {
    let settings =
        prepare::client_settings(&case.client, run_pki, &prepare::default_server_name(plan))?;
    let server = match &plan.target {
        Target::Embedded { .. } => Some(embedded::start(plan, Some(&case.server), run_pki).await?),
        Target::Remote { .. } => None,
    };
    let target = match (&plan.target, &server) {
        (Target::Remote { addr, .. }, _) => *addr,
        (_, Some(s)) => embedded::device_target(s, true),
        _ => unreachable!(),
    };
    let sock = crate::engine::session::connect(None, target)
        .await
        .map_err(|e| {
            EngineError::Credentials(format!("cannot open a UDP socket to {target}: {e}"))
        })?;
    // The server asked for a certificate (ThingsBoard's mode, or a remote server such as ThingsBoard).
    let asked = match &plan.target {
        Target::Embedded { .. } => case.server.client_auth != crate::client_auth::ClientAuth::None,
        Target::Remote { .. } => true,
    };
    let offered = settings
        .client_certificate
        .as_ref()
        .and_then(|c| c.certificate.first().cloned());
    let mut observed = match dtls_client::handshake(sock, &settings).await {
        Ok(session) => {
            let link = Link::Dtls(session.conn);
            let code = one_request(plan, request, &link).await;
            link.close().await;
            let finding = match &offered {
                Some(leaf)
                    if asked
                        && chains_to(leaf, &case.server.client_ca, run_pki) == Some(false) =>
                {
                    Some(format!(
                        "the server completed the handshake with a client certificate that does not chain \
                         to {} (no certificate path validation, as ThingsBoard); {}",
                        case.server.client_ca,
                        match code {
                            Some(c) if c.0 >> 5 >= 4 => {
                                format!("the device was refused only at the CoAP layer ({c})")
                            }
                            Some(c) => format!("and the device was served ({c})"),
                            None => "and the request got no response".into(),
                        }
                    ))
                }
                _ => None,
            };
            Observed {
                verdict: session.verdict,
                alert: None,
                detail: None,
                code,
                elapsed: session.elapsed,
                presented: session.presented,
                server_saw: None,
                target,
                finding,
            }
        }
        Err(failed) => Observed {
            verdict: failed.judgement.verdict,
            alert: failed.alert,
            detail: Some(failed.judgement.detail),
            code: None,
            elapsed: failed.elapsed,
            presented: failed.presented,
            server_saw: None,
            target,
            finding: None,
        },
    };
    if let Some(s) = server {
        // A refusal the client sees only as an alert: give the server a moment to record why it refused.
        if matches!(
            observed.verdict,
            TrustVerdict::PeerAlert | TrustVerdict::ClientCertRejected
        ) {
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                // Every reason is listed from the start, at zero: wait for one to count.
                if s.dtls_stats()
                    .is_some_and(|st| st.handshake_failures.values().any(|n| *n > 0))
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let reasons: Vec<(String, u64)> = s
            .dtls_stats()
            .map(|st| {
                st.handshake_failures
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(r, n)| (r.to_string(), *n))
                    .collect()
            })
            .unwrap_or_default();
        // The client only sees a fatal alert; the embedded server knows why it refused the client.
        if let [(reason, 1)] = reasons.as_slice() {
            if matches!(
                observed.verdict,
                TrustVerdict::PeerAlert | TrustVerdict::ClientCertRejected
            ) {
                if let Some(v) = TrustVerdict::parse(reason).filter(|v| {
                    matches!(
                        v,
                        TrustVerdict::ClientCertRequired | TrustVerdict::ClientCertRejected
                    )
                }) {
                    if v != observed.verdict {
                        // Say what the verdict rests on: not the client's own evidence, the server's record.
                        let was = observed.verdict;
                        let note = format!(
                            "verdict {v} from the embedded server's own record of why it refused the client \
                             (the client alone observed {was})"
                        );
                        observed.detail = Some(match observed.detail.take() {
                            Some(d) => format!("{d}; {note}"),
                            None => note,
                        });
                        observed.verdict = v;
                    }
                }
            }
        }
        observed.server_saw = (!reasons.is_empty()).then(|| {
            reasons
                .iter()
                .map(|(r, n)| format!("{r} x{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        });
        s.shutdown().await;
    }
    Ok(observed)
}

/// Sends `request` once as device 0 over `link` and returns the response code, if any.
async fn one_request(
    plan: &RunPlan,
    request: &crate::scenario::plan::RequestPlan,
    link: &Link,
) -> Option<crate::coap::Code> {
    let token = plan.devices.tokens.token(0);
    let msg = crate::engine::device::request_to(
        MessageType::Con,
        request.method,
        &request.path,
        request.content_format,
        &request.query,
        &token,
    );
    let mut msg = msg;
    let mut rng = fastrand::Rng::with_seed(plan.seed);
    request.payload.render(
        &mut crate::scenario::template::RenderContext {
            index: 0,
            token: &token,
            counter: 0,
            rng: &mut rng,
            unix_ms: 0,
        },
        &mut msg.payload,
    );
    let mut driver =
        crate::engine::session::Driver::new(link, plan.transmission.clone(), plan.seed);
    let limit = plan
        .transmission
        .max_transmit_wait()
        .min(Duration::from_secs(10));
    let done = driver.request(msg, None, limit).await;
    crate::engine::session::response(&done).map(|r| r.code)
}

fn describe(e: &Expect) -> String {
    let mut parts = vec![format!(
        "handshake {}",
        if e.connect { "ok" } else { "fails" }
    )];
    if let Some(r) = e.refused_by {
        parts.push(format!("refused by {r}"));
    }
    if let Some(v) = e.verdict {
        parts.push(format!("verdict {v}"));
    }
    if let Some(i) = e.insecure {
        parts.push(if i {
            "flagged insecure".into()
        } else {
            "verified".into()
        });
    }
    if let Some(c) = e.code {
        parts.push(format!("response {c}"));
    }
    if let Some(a) = &e.alert {
        parts.push(format!("alert {a}"));
    }
    parts.join(", ")
}

/// The layer that refused: no session is the handshake's refusal; a 4.xx or 5.xx answer over an open
/// session is the CoAP layer's.
fn refused_by(verdict: TrustVerdict, code: Option<crate::coap::Code>) -> RefusedBy {
    match code {
        _ if !verdict.connected() => RefusedBy::Handshake,
        Some(c) if c.0 >> 5 >= 4 => RefusedBy::Coap,
        _ => RefusedBy::None,
    }
}

/// The alert that ended a failed handshake, as the DTLS stack recorded it on the wire: `received` when the
/// server refused us, `sent` when we refused the server. None when no alert was exchanged (a timeout, or a
/// server that went silent): the report then says so instead of guessing a direction.
fn alert_of(alert: Option<HandshakeAlert>) -> Option<TrustAlert> {
    alert.map(|a| TrustAlert {
        direction: if a.received {
            AlertDirection::Received
        } else {
            AlertDirection::Sent
        },
        description: a.description.to_string(),
    })
}

fn judge(case: &TrustCase, o: &Observed, request: &str) -> TrustCaseResult {
    let e = &case.expect;
    let insecure = o.verdict == TrustVerdict::OkInsecure;
    // A session that opened with our certificate, and a device the server does not know by it (ThingsBoard's
    // unregistered certificate): up at the DTLS layer, refused at the CoAP layer.
    let verdict = if o.verdict.connected()
        && case.client.client_cert.is_some()
        && o.code == Some(crate::coap::Code::UNAUTHORIZED)
    {
        TrustVerdict::ClientCertUnregistered
    } else {
        o.verdict
    };
    let refused = refused_by(o.verdict, o.code);
    let passed = o.verdict.connected() == e.connect
        && e.refused_by.is_none_or(|r| r == refused)
        && e.verdict.is_none_or(|v| v == verdict)
        && e.insecure.is_none_or(|i| i == insecure)
        && e.code.is_none_or(|c| Some(c) == o.code)
        && e.alert
            .as_deref()
            .is_none_or(|a| o.alert.as_ref().is_some_and(|seen| seen.description == a));
    let mut observed = format!(
        "handshake {} ({verdict})",
        if o.verdict.connected() {
            "ok"
        } else {
            "failed"
        },
    );
    if insecure {
        // This case's own finding; the run's security row speaks of the load traffic only.
        observed.push_str(
            ", flagged insecure: verification disabled (ca: none) and the connection succeeded",
        );
    }
    if let Some(c) = o.code {
        observed.push_str(&format!(", response {c}"));
    } else if o.verdict.connected() {
        observed.push_str(", no response");
    }
    if let Some(d) = &o.detail {
        observed.push_str(&format!(": {d}"));
    }
    if let Some(s) = &o.server_saw {
        observed.push_str(&format!(" (server: {s})"));
    }
    if let Some(f) = &o.finding {
        observed.push_str(&format!("; FINDING: {f}"));
    }
    observed.push_str(&format!("; refused by {refused}"));
    TrustCaseResult {
        name: case.name.clone(),
        passed,
        expected: describe(e),
        observed,
        verdict,
        detail: o.detail.clone(),
        insecure,
        code: o.code.map(|c| c.to_string()),
        handshake_us: o.elapsed.as_micros() as u64,
        presented: o.presented.clone(),
        server_saw: o.server_saw.clone(),
        target: Some(o.target.to_string()),
        refused_by: refused,
        alert: alert_of(o.alert),
        request: request.to_string(),
    }
}
