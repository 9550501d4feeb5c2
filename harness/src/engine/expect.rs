//! Per-request expectations, checked on each response as it arrives: pure logic over the message.

use crate::coap::Message;
use crate::scenario::plan::{ExpectKind, ResponseExpect};
use std::time::Duration;

/// The expectations `response` breaks, as a bit mask of [`ExpectKind::bit`]; no response breaks them all.
pub fn check(e: &ResponseExpect, response: Option<&Message>, latency: Duration) -> u8 {
    let mut broken = 0u8;
    let Some(r) = response else {
        return e.describe().iter().fold(0, |m, (kind, _)| m | kind.bit());
    };
    if !e.codes.is_empty() && !e.codes.contains(&r.code) {
        broken |= ExpectKind::Code.bit();
    }
    if e.content_format.is_some() && r.content_format() != e.content_format {
        broken |= ExpectKind::ContentFormat.bit();
    }
    if (!e.json_equals.is_empty() || !e.json_exists.is_empty()) && !payload_ok(e, &r.payload) {
        broken |= ExpectKind::Payload.bit();
    }
    if e.max_latency.is_some_and(|max| latency > max) {
        broken |= ExpectKind::Latency.bit();
    }
    broken
}

fn payload_ok(e: &ResponseExpect, payload: &[u8]) -> bool {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return false;
    };
    e.json_equals
        .iter()
        .all(|(path, want)| lookup(&doc, path) == Some(want))
        && e.json_exists
            .iter()
            .all(|path| lookup(&doc, path).is_some())
}

/// Follows a dotted path (`a.b.0.c`) through objects and arrays.
pub fn lookup<'a>(doc: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(doc, |v, seg| match v {
        serde_json::Value::Object(m) => m.get(seg),
        serde_json::Value::Array(a) => a.get(seg.parse::<usize>().ok()?),
        _ => None,
    })
}

/// What a response looked like, for the few examples a report shows of broken expectations.
pub fn describe_response(response: Option<&Message>, outcome: crate::metrics::Outcome) -> String {
    match response {
        None => outcome.name().to_string(),
        Some(r) => {
            let mut s = format!("{}", r.code);
            if let Some(cf) = r.content_format() {
                s.push_str(&format!(" cf={cf}"));
            }
            if !r.payload.is_empty() {
                let text = String::from_utf8_lossy(&r.payload);
                let short: String = text.chars().take(80).collect();
                s.push_str(&format!(" {short}"));
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coap::{option, Code, MessageType, Token};

    fn response(code: Code, cf: Option<u32>, payload: &str) -> Message {
        let mut m = Message::new(MessageType::Ack, code, 1, Token::default());
        if let Some(cf) = cf {
            m.add_uint_option(option::CONTENT_FORMAT, cf);
        }
        m.payload = payload.as_bytes().to_vec();
        m
    }

    #[test]
    fn each_expectation_both_holds_and_breaks() {
        let e = ResponseExpect {
            codes: vec![Code::CONTENT],
            content_format: Some(50),
            json_equals: vec![("shared.mode".into(), serde_json::json!("eco"))],
            json_exists: vec!["client.list.1".into()],
            max_latency: Some(Duration::from_millis(100)),
        };
        let good = response(
            Code::CONTENT,
            Some(50),
            r#"{"shared":{"mode":"eco"},"client":{"list":[1,2]}}"#,
        );
        let fast = Duration::from_millis(5);
        assert_eq!(check(&e, Some(&good), fast), 0);
        assert_eq!(
            check(&e, Some(&good), Duration::from_millis(101)),
            ExpectKind::Latency.bit()
        );
        let wrong_code = response(
            Code::NOT_FOUND,
            Some(50),
            r#"{"shared":{"mode":"eco"},"client":{"list":[1,2]}}"#,
        );
        assert_eq!(check(&e, Some(&wrong_code), fast), ExpectKind::Code.bit());
        let wrong_cf = response(
            Code::CONTENT,
            Some(0),
            r#"{"shared":{"mode":"eco"},"client":{"list":[1,2]}}"#,
        );
        assert_eq!(
            check(&e, Some(&wrong_cf), fast),
            ExpectKind::ContentFormat.bit()
        );
        let wrong_value = response(
            Code::CONTENT,
            Some(50),
            r#"{"shared":{"mode":"max"},"client":{"list":[1,2]}}"#,
        );
        assert_eq!(
            check(&e, Some(&wrong_value), fast),
            ExpectKind::Payload.bit()
        );
        let missing = response(
            Code::CONTENT,
            Some(50),
            r#"{"shared":{"mode":"eco"},"client":{"list":[1]}}"#,
        );
        assert_eq!(check(&e, Some(&missing), fast), ExpectKind::Payload.bit());
        let not_json = response(Code::CONTENT, Some(50), "eco");
        assert_eq!(check(&e, Some(&not_json), fast), ExpectKind::Payload.bit());
        assert_eq!(
            check(&e, None, fast),
            0b1111,
            "no response breaks every expectation"
        );
        assert_eq!(
            check(&ResponseExpect::default(), None, fast),
            0,
            "nothing expected, nothing broken"
        );
    }
}
