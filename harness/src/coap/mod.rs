//! CoAP over UDP (RFC 7252), sans-IO: the message codec and the client exchange state machine.
//! Nothing here touches a socket or reads a clock.

pub mod code;
pub mod exchange;
pub mod message;

pub use code::{Code, MessageType};
pub use exchange::{ClientEndpoint, Completed, ExchangeId, ExchangeOutcome, TransmissionParams};
pub use message::{content_format, option, DecodeError, Message, Token};
