//! Message types and codes (RFC 7252 §3, §12.1): the two small value types every message carries.

use std::fmt;
use std::str::FromStr;

/// The message type in the header's T field (RFC 7252 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Confirmable: retransmitted until acknowledged.
    Con,
    /// Non-confirmable: sent once.
    Non,
    /// Acknowledgement of a confirmable message, possibly carrying a piggybacked response.
    Ack,
    /// Reset: the receiver could not process the message.
    Rst,
}

impl MessageType {
    pub(crate) fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0 => Self::Con,
            1 => Self::Non,
            2 => Self::Ack,
            _ => Self::Rst,
        }
    }

    pub(crate) fn bits(self) -> u8 {
        match self {
            Self::Con => 0,
            Self::Non => 1,
            Self::Ack => 2,
            Self::Rst => 3,
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Con => "CON",
            Self::Non => "NON",
            Self::Ack => "ACK",
            Self::Rst => "RST",
        })
    }
}

/// A request method or response code: class in the top 3 bits, detail in the low 5, written `c.dd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(pub u8);

impl Code {
    pub const EMPTY: Code = Code::new(0, 0);
    pub const GET: Code = Code::new(0, 1);
    pub const POST: Code = Code::new(0, 2);
    pub const PUT: Code = Code::new(0, 3);
    pub const DELETE: Code = Code::new(0, 4);
    pub const FETCH: Code = Code::new(0, 5);
    pub const PATCH: Code = Code::new(0, 6);
    pub const IPATCH: Code = Code::new(0, 7);
    pub const CREATED: Code = Code::new(2, 1);
    pub const DELETED: Code = Code::new(2, 2);
    pub const VALID: Code = Code::new(2, 3);
    pub const CHANGED: Code = Code::new(2, 4);
    pub const CONTENT: Code = Code::new(2, 5);
    pub const BAD_REQUEST: Code = Code::new(4, 0);
    pub const UNAUTHORIZED: Code = Code::new(4, 1);
    pub const BAD_OPTION: Code = Code::new(4, 2);
    pub const NOT_FOUND: Code = Code::new(4, 4);
    pub const METHOD_NOT_ALLOWED: Code = Code::new(4, 5);
    pub const NOT_ACCEPTABLE: Code = Code::new(4, 6);
    pub const INTERNAL_SERVER_ERROR: Code = Code::new(5, 0);
    pub const SERVICE_UNAVAILABLE: Code = Code::new(5, 3);

    /// Builds a code from its class (0-7) and detail (0-31).
    pub const fn new(class: u8, detail: u8) -> Self {
        Code((class << 5) | (detail & 0x1f))
    }

    pub const fn class(self) -> u8 {
        self.0 >> 5
    }

    pub const fn detail(self) -> u8 {
        self.0 & 0x1f
    }

    /// 0.00: the code of an empty message (a bare ACK or RST).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Class 0 with a non-zero detail: a method.
    pub const fn is_request(self) -> bool {
        self.class() == 0 && self.detail() != 0
    }

    /// Classes 2, 4 and 5.
    pub const fn is_response(self) -> bool {
        matches!(self.class(), 2 | 4 | 5)
    }

    /// Class 2: success.
    pub const fn is_success(self) -> bool {
        self.class() == 2
    }

    /// The method name for request codes (`GET`, `POST`...), if it is one.
    pub fn method_name(self) -> Option<&'static str> {
        Some(match self {
            Self::GET => "GET",
            Self::POST => "POST",
            Self::PUT => "PUT",
            Self::DELETE => "DELETE",
            Self::FETCH => "FETCH",
            Self::PATCH => "PATCH",
            Self::IPATCH => "iPATCH",
            _ => return None,
        })
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.class(), self.detail())
    }
}

/// Why a `c.dd` string is not a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a CoAP code: expected class.detail such as 2.01 or 4.04 (class 0-7, detail 0-31)"
)]
pub struct ParseCodeError(pub String);

impl FromStr for Code {
    type Err = ParseCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseCodeError(s.to_string());
        let (class, detail) = s.split_once('.').ok_or_else(bad)?;
        if class.len() != 1 || detail.len() != 2 {
            return Err(bad());
        }
        let class: u8 = class.parse().map_err(|_| bad())?;
        let detail: u8 = detail.parse().map_err(|_| bad())?;
        if class > 7 || detail > 31 {
            return Err(bad());
        }
        Ok(Code::new(class, detail))
    }
}

impl FromStr for MessageType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "con" => Ok(Self::Con),
            "non" => Ok(Self::Non),
            "ack" => Ok(Self::Ack),
            "rst" => Ok(Self::Rst),
            _ => Err(format!("`{s}` is not a message type: expected con or non")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_display_and_parse_round_trip() {
        for (code, text) in [
            (Code::CREATED, "2.01"),
            (Code::UNAUTHORIZED, "4.01"),
            (Code::POST, "0.02"),
            (Code::INTERNAL_SERVER_ERROR, "5.00"),
            (Code::new(7, 31), "7.31"),
        ] {
            assert_eq!(code.to_string(), text);
            assert_eq!(text.parse::<Code>().unwrap(), code);
        }
    }

    #[test]
    fn rejects_malformed_code_strings() {
        for bad in ["201", "2.1", "8.00", "2.32", "x.01", "2.01.", ""] {
            assert!(bad.parse::<Code>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn code_classes() {
        assert!(Code::POST.is_request());
        assert!(!Code::EMPTY.is_request());
        assert!(Code::CREATED.is_success() && Code::CREATED.is_response());
        assert!(Code::BAD_REQUEST.is_response() && !Code::BAD_REQUEST.is_success());
        assert_eq!(Code::new(2, 5).0, 69);
    }
}
