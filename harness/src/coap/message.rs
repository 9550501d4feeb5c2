//! The CoAP message and its codec (RFC 7252 §3): pure functions over bytes, strict about every rule.

use super::code::{Code, MessageType};
use std::fmt;

/// Option numbers this harness names (RFC 7252 §5.10, RFC 7641, RFC 7959).
pub mod option {
    pub const IF_MATCH: u16 = 1;
    pub const URI_HOST: u16 = 3;
    pub const ETAG: u16 = 4;
    pub const IF_NONE_MATCH: u16 = 5;
    pub const OBSERVE: u16 = 6;
    pub const URI_PORT: u16 = 7;
    pub const LOCATION_PATH: u16 = 8;
    pub const URI_PATH: u16 = 11;
    pub const CONTENT_FORMAT: u16 = 12;
    pub const MAX_AGE: u16 = 14;
    pub const URI_QUERY: u16 = 15;
    pub const ACCEPT: u16 = 17;
    pub const LOCATION_QUERY: u16 = 20;
    pub const BLOCK2: u16 = 23;
    pub const BLOCK1: u16 = 27;
    pub const SIZE2: u16 = 28;
    pub const PROXY_URI: u16 = 35;
    pub const PROXY_SCHEME: u16 = 39;
    pub const SIZE1: u16 = 60;
}

/// Content-Format numbers (RFC 7252 §12.3).
pub mod content_format {
    pub const TEXT_PLAIN: u16 = 0;
    pub const OCTET_STREAM: u16 = 42;
    pub const JSON: u16 = 50;
    pub const CBOR: u16 = 60;
}

/// A token: 0 to 8 opaque bytes, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Token {
    len: u8,
    bytes: [u8; 8],
}

impl Token {
    /// Builds a token; `None` when longer than 8 bytes.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > 8 {
            return None;
        }
        let mut t = Token {
            len: bytes.len() as u8,
            bytes: [0; 8],
        };
        t.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(t)
    }

    /// The shortest big-endian encoding of `n` (zero is the empty token's neighbour: one byte 0x00).
    pub fn from_u64(n: u64) -> Self {
        let be = n.to_be_bytes();
        let skip = (n.leading_zeros() / 8).min(7) as usize;
        Token::new(&be[skip..]).expect("at most 8 bytes")
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// One option: its number and raw value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoapOption {
    pub number: u16,
    pub value: Vec<u8>,
}

/// A CoAP message over UDP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub mtype: MessageType,
    pub code: Code,
    pub message_id: u16,
    pub token: Token,
    /// Kept sorted by number; repeated options keep their relative order.
    options: Vec<CoapOption>,
    pub payload: Vec<u8>,
}

/// Why a datagram is not a valid CoAP message. Each variant names the RFC 7252 rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer than the 4 header bytes (§3).
    #[error("datagram of {0} bytes is shorter than the 4-byte CoAP header")]
    TooShort(usize),
    /// Version field other than 1 (§3: "Implementations of this specification MUST set this field to 1").
    #[error("unsupported CoAP version {0} (must be 1)")]
    UnsupportedVersion(u8),
    /// Token length 9 to 15, which §3 reserves ("MUST be processed as a message format error").
    #[error("token length {0} is reserved (0 to 8 allowed)")]
    ReservedTokenLength(u8),
    /// The datagram ends inside the token.
    #[error("datagram ends inside the {0}-byte token")]
    TruncatedToken(u8),
    /// Code class 1, 6 or 7, reserved by §12.1.
    #[error("code {0} is in a reserved class")]
    ReservedCodeClass(Code),
    /// An empty message (code 0.00) with a token, options or payload (§4.1).
    #[error("empty message (0.00) carries {0} bytes after the header")]
    TrailingBytes(usize),
    /// Option delta or length nibble 15 outside the payload marker (§3.1).
    #[error("option {field} nibble 15 is reserved (at byte {offset})")]
    ReservedOptionNibble { field: &'static str, offset: usize },
    /// The datagram ends inside an option's extended header or value.
    #[error("datagram ends inside an option (at byte {offset})")]
    TruncatedOption { offset: usize },
    /// The option numbers add up past 65535.
    #[error("option number overflows 65535 (at byte {offset})")]
    OptionNumberOverflow { offset: usize },
    /// A payload marker 0xFF followed by nothing (§3: "MUST be processed as a message format error").
    #[error("payload marker with an empty payload")]
    PayloadMarkerWithoutPayload,
}

impl Message {
    /// A message with no options and no payload.
    pub fn new(mtype: MessageType, code: Code, message_id: u16, token: Token) -> Self {
        Message {
            mtype,
            code,
            message_id,
            token,
            options: Vec::new(),
            payload: Vec::new(),
        }
    }

    /// An empty ACK (0.00) for `message_id`.
    pub fn empty_ack(message_id: u16) -> Self {
        Message::new(MessageType::Ack, Code::EMPTY, message_id, Token::default())
    }

    /// An empty RST (0.00) for `message_id`.
    pub fn reset(message_id: u16) -> Self {
        Message::new(MessageType::Rst, Code::EMPTY, message_id, Token::default())
    }

    pub fn options(&self) -> &[CoapOption] {
        &self.options
    }

    /// Adds an option after any others of the same number.
    pub fn add_option(&mut self, number: u16, value: impl Into<Vec<u8>>) {
        let at = self.options.partition_point(|o| o.number <= number);
        self.options.insert(
            at,
            CoapOption {
                number,
                value: value.into(),
            },
        );
    }

    /// Adds an unsigned-integer option in its shortest form (§3.2).
    pub fn add_uint_option(&mut self, number: u16, value: u32) {
        let be = value.to_be_bytes();
        let skip = (value.leading_zeros() / 8) as usize;
        self.add_option(number, &be[skip..]);
    }

    /// The first value of an option.
    pub fn option(&self, number: u16) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|o| o.number == number)
            .map(|o| o.value.as_slice())
    }

    /// Every value of a repeatable option, in order.
    pub fn option_values(&self, number: u16) -> impl Iterator<Item = &[u8]> {
        self.options
            .iter()
            .filter(move |o| o.number == number)
            .map(|o| o.value.as_slice())
    }

    /// An unsigned-integer option's value; `None` when absent or longer than 4 bytes.
    pub fn uint_option(&self, number: u16) -> Option<u32> {
        let v = self.option(number)?;
        if v.len() > 4 {
            return None;
        }
        Some(v.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
    }

    pub fn content_format(&self) -> Option<u16> {
        self.uint_option(option::CONTENT_FORMAT).map(|v| v as u16)
    }

    /// Sets the Uri-Path options from a `/a/b/c` path (empty segments are dropped).
    pub fn set_path(&mut self, path: &str) {
        self.options.retain(|o| o.number != option::URI_PATH);
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            self.add_option(option::URI_PATH, seg.as_bytes());
        }
    }

    /// The Uri-Path segments as text (lossy for invalid UTF-8).
    pub fn path_segments(&self) -> Vec<String> {
        self.option_values(option::URI_PATH)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The Uri-Query options as text.
    pub fn query(&self) -> Vec<String> {
        self.option_values(option::URI_QUERY)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// Writes the message's wire form to the end of `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let tkl = self.token.as_bytes().len() as u8;
        out.push(0x40 | (self.mtype.bits() << 4) | tkl);
        out.push(self.code.0);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(self.token.as_bytes());
        let mut last = 0u16;
        for opt in &self.options {
            let delta = opt.number - last;
            last = opt.number;
            let (dn, dext) = nibble(delta);
            let (ln, lext) = nibble(opt.value.len() as u16);
            out.push((dn << 4) | ln);
            dext.write(out);
            lext.write(out);
            out.extend_from_slice(&opt.value);
        }
        if !self.payload.is_empty() {
            out.push(0xff);
            out.extend_from_slice(&self.payload);
        }
    }

    /// The wire form as a fresh vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.payload.len());
        self.encode(&mut out);
        out
    }

    /// Parses one datagram, rejecting anything RFC 7252 calls a message format error.
    pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
        if buf.len() < 4 {
            return Err(DecodeError::TooShort(buf.len()));
        }
        let version = buf[0] >> 6;
        if version != 1 {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let mtype = MessageType::from_bits(buf[0] >> 4);
        let tkl = buf[0] & 0x0f;
        if tkl > 8 {
            return Err(DecodeError::ReservedTokenLength(tkl));
        }
        let code = Code(buf[1]);
        if matches!(code.class(), 1 | 6 | 7) {
            return Err(DecodeError::ReservedCodeClass(code));
        }
        let message_id = u16::from_be_bytes([buf[2], buf[3]]);
        if code.is_empty() && buf.len() > 4 {
            return Err(DecodeError::TrailingBytes(buf.len() - 4));
        }
        let token_end = 4 + tkl as usize;
        if buf.len() < token_end {
            return Err(DecodeError::TruncatedToken(tkl));
        }
        let token = Token::new(&buf[4..token_end]).expect("tkl <= 8");
        let mut msg = Message::new(mtype, code, message_id, token);
        let mut pos = token_end;
        let mut number = 0u16;
        while pos < buf.len() {
            let start = pos;
            let head = buf[pos];
            pos += 1;
            if head == 0xff {
                if pos == buf.len() {
                    return Err(DecodeError::PayloadMarkerWithoutPayload);
                }
                msg.payload = buf[pos..].to_vec();
                return Ok(msg);
            }
            let delta = extended(buf, &mut pos, head >> 4, "delta", start)?;
            let len = extended(buf, &mut pos, head & 0x0f, "length", start)? as usize;
            number = number
                .checked_add(delta)
                .ok_or(DecodeError::OptionNumberOverflow { offset: start })?;
            if buf.len() - pos < len {
                return Err(DecodeError::TruncatedOption { offset: start });
            }
            msg.options.push(CoapOption {
                number,
                value: buf[pos..pos + len].to_vec(),
            });
            pos += len;
        }
        Ok(msg)
    }
}

/// An option header's extension bytes (§3.1): none, one (13) or two (14).
enum Ext {
    None,
    One(u8),
    Two(u16),
}

impl Ext {
    fn write(self, out: &mut Vec<u8>) {
        match self {
            Ext::None => {}
            Ext::One(b) => out.push(b),
            Ext::Two(w) => out.extend_from_slice(&w.to_be_bytes()),
        }
    }
}

fn nibble(v: u16) -> (u8, Ext) {
    match v {
        0..=12 => (v as u8, Ext::None),
        13..=268 => (13, Ext::One((v - 13) as u8)),
        _ => (14, Ext::Two(v - 269)),
    }
}

fn extended(
    buf: &[u8],
    pos: &mut usize,
    nib: u8,
    field: &'static str,
    offset: usize,
) -> Result<u16, DecodeError> {
    match nib {
        0..=12 => Ok(u16::from(nib)),
        13 => {
            let b = *buf
                .get(*pos)
                .ok_or(DecodeError::TruncatedOption { offset })?;
            *pos += 1;
            Ok(u16::from(b) + 13)
        }
        14 => {
            let w = buf
                .get(*pos..*pos + 2)
                .ok_or(DecodeError::TruncatedOption { offset })?;
            *pos += 2;
            u16::from_be_bytes([w[0], w[1]])
                .checked_add(269)
                .ok_or(DecodeError::OptionNumberOverflow { offset })
        }
        _ => Err(DecodeError::ReservedOptionNibble { field, offset }),
    }
}

impl fmt::Display for Message {
    /// One line in the style of libcoap's `-v 6` output: `v:1 t:ACK c:2.01 i:1234 {0a} [ ... ]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "v:1 t:{} c:{} i:{:04x} {{",
            self.mtype, self.code, self.message_id
        )?;
        for b in self.token.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, "}} [")?;
        for (i, o) in self.options.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{}:{}", o.number, String::from_utf8_lossy(&o.value))?;
        }
        write!(f, " ]")?;
        if !self.payload.is_empty() {
            write!(f, " :: {}", String::from_utf8_lossy(&self.payload))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
