//! Whether the request fits in one datagram: CoAP over UDP does not fragment, so a payload or URI larger
//! than one datagram is a local limit, found at validation rather than reported later as "no response".

use super::locate::Step;
use super::plan::{RequestPlan, TokenSource};
use super::template::RenderContext;
use super::validate::Invalid;
use crate::coap::{option, Message, MessageType, Token};

/// The most a UDP datagram over IPv4 carries (65,535 less the IP and UDP headers).
pub const UDP_MAX: usize = 65_507;
/// The most plaintext one DTLS record carries (2^14, RFC 6347 §4.1 after RFC 5246 §6.2.1).
pub const DTLS_MAX: usize = 16_384;

/// Checks the largest request of the run (the longest token, the widest counter) against the limit of
/// the transport; the error names `request.payload` or `request.path`, whichever is the larger part.
pub fn check(
    request: &RequestPlan,
    tokens: &TokenSource,
    count: u32,
    secure: bool,
) -> Result<(), Invalid> {
    let last = u64::from(count.saturating_sub(1));
    let token = match tokens {
        TokenSource::List(list) => list
            .iter()
            .max_by_key(|t| t.len())
            .cloned()
            .unwrap_or_default(),
        TokenSource::Pattern(p) => p.token(last),
    };
    let mut m = Message::new(
        MessageType::Con,
        request.method,
        0,
        Token::from_u64(u64::MAX),
    );
    let mut path_bytes = 0;
    for seg in &request.path {
        let s = seg.as_deref().unwrap_or(&token);
        path_bytes += s.len();
        m.add_option(option::URI_PATH, s.as_bytes());
    }
    for q in &request.query {
        path_bytes += q.len();
        m.add_option(option::URI_QUERY, q.as_bytes());
    }
    if let Some(cf) = request.content_format {
        m.add_uint_option(option::CONTENT_FORMAT, u32::from(cf));
    }
    let mut rng = fastrand::Rng::with_seed(0);
    let mut ctx = RenderContext {
        index: last,
        token: &token,
        counter: u64::MAX,
        rng: &mut rng,
        unix_ms: u64::MAX,
    };
    request.payload.render(&mut ctx, &mut m.payload);
    let size = m.to_bytes().len();
    let (limit, what) = if secure {
        (DTLS_MAX, "one DTLS record carries at most")
    } else {
        (UDP_MAX, "one UDP datagram carries at most")
    };
    if size <= limit {
        return Ok(());
    }
    let field = if m.payload.len() >= path_bytes {
        "payload"
    } else {
        "path"
    };
    Err(Invalid {
        path: vec![Step::Key("request".into()), Step::Key(field.into())],
        message: format!(
            "the request is {size} bytes ({} of payload, {path_bytes} of URI), but {what} {limit}: \
             CoAP does not fragment, so shorten it (this is a local limit, not the server's)",
            m.payload.len()
        ),
    })
}
