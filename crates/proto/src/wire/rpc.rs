//! RPC datagrams, `rpcudp` and `storj` dialects ([docs/wire.md](https://github.com/rpcudp-rs/rpcudp-rs/blob/main/docs/wire.md) sections 1 and 2).
//!
//! ```text
//! datagram = kind (1 byte) | message id (20 bytes) | body (MessagePack)
//!
//!              rpcudp   storj
//! request       0x00    0x02     body = [method name (str), args (array)]
//! response      0x01    0x03     body = the return value (any MessagePack value)
//! ```
//!
//! Receiving: a datagram shorter than 22 bytes or with a kind byte of the other dialect (or
//! no dialect) is refused, the body is decoded with the bounded decoder of
//! [`value`](super::value), bytes after the body are ignored (as the Python peers do).
//!
//! Sending: the body is written with the smallest widths, as `u-msgpack-python` does. The
//! size limits are the caller's business (the RPC endpoint enforces
//! [`Dialect::max_body`]): the encoders here write whatever they are given.
//!
//! ```
//! use rpcudp_proto::wire::rpc::{decode_packet, encode_request, Dialect, MessageId, Packet};
//! use rpcudp_proto::wire::value::DecodeLimits;
//!
//! let id = MessageId([7; 20]);
//! let mut datagram = Vec::new();
//! encode_request(Dialect::Rpcudp, &id, "sayhi", &["you".into()], &mut datagram);
//! assert_eq!(datagram[0], 0x00);
//! assert_eq!(&datagram[21..], b"\x92\xa5sayhi\x91\xa3you");
//!
//! match decode_packet(Dialect::Rpcudp, &datagram, &DecodeLimits::default()).unwrap() {
//!     Packet::Request { id: got, method, args } => {
//!         assert_eq!((got, method.as_str(), args), (id, "sayhi", vec!["you".into()]));
//!     }
//!     other => panic!("not a request: {other:?}"),
//! }
//! ```

use std::fmt;

use rmpv::Value;

use super::value::{decode_value, encode_value};
pub use super::value::{DecodeError, DecodeLimits};

/// Length of the header: kind byte plus message id.
pub const HEADER_LEN: usize = 1 + 20;

/// Shortest datagram the peers look at: header plus one body byte.
pub const MIN_DATAGRAM_LEN: usize = HEADER_LEN + 1;

/// Which peer family's kind bytes and size limits to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Python `rpcudp` 5.0.1 (and `kademlia`): kind 0 request, 1 response.
    #[default]
    Rpcudp,
    /// Python `storjrpcudp` 2.5 (Twisted): kind 2 request, 3 response.
    Storj,
}

impl Dialect {
    /// The kind byte of a request.
    pub fn request_kind(self) -> u8 {
        match self {
            Dialect::Rpcudp => 0x00,
            Dialect::Storj => 0x02,
        }
    }

    /// The kind byte of a response.
    pub fn response_kind(self) -> u8 {
        match self {
            Dialect::Rpcudp => 0x01,
            Dialect::Storj => 0x03,
        }
    }

    /// Largest body the peer accepts in a request: 8192 bytes for `rpcudp` (its caller's
    /// own check); 8171 for `storj`, whose Twisted transport reads at most 8192 bytes per
    /// datagram, header included (the same bound holds for its responses).
    pub fn max_body(self) -> usize {
        match self {
            Dialect::Rpcudp => 8192,
            Dialect::Storj => 8192 - HEADER_LEN,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::Rpcudp => "rpcudp",
            Dialect::Storj => "storj",
        })
    }
}

/// The 20-byte message id a caller picks and the response echoes.
///
/// `Debug` and `Display` print 40 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 20]);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

/// A decoded RPC datagram.
#[derive(Clone, Debug, PartialEq)]
pub enum Packet {
    /// A call: run `method` with `args` and answer with the same `id`.
    Request {
        /// The caller's message id.
        id: MessageId,
        /// The method name (the Python peer runs `rpc_<method>`).
        method: String,
        /// The positional arguments.
        args: Vec<Value>,
    },
    /// The answer to the request with the same `id`.
    Response {
        /// The id of the request answered.
        id: MessageId,
        /// The return value.
        value: Value,
    },
}

impl Packet {
    /// The message id of either kind.
    pub fn id(&self) -> MessageId {
        match self {
            Packet::Request { id, .. } | Packet::Response { id, .. } => *id,
        }
    }
}

/// Parses one datagram of `dialect`. Never panics; any error means "drop and count".
///
/// ```
/// use rpcudp_proto::wire::rpc::{decode_packet, DecodeError, Dialect};
/// use rpcudp_proto::wire::value::DecodeLimits;
/// let limits = DecodeLimits::default();
/// assert_eq!(decode_packet(Dialect::Rpcudp, &[1; 21], &limits), Err(DecodeError::TooShort { len: 21 }));
/// let mut storj_response = vec![0x03];
/// storj_response.extend([0; 20]);
/// storj_response.push(0xc0);
/// assert!(decode_packet(Dialect::Storj, &storj_response, &limits).is_ok());
/// assert_eq!(decode_packet(Dialect::Rpcudp, &storj_response, &limits), Err(DecodeError::UnknownKind { kind: 3 }));
/// ```
pub fn decode_packet(
    dialect: Dialect,
    datagram: &[u8],
    limits: &DecodeLimits,
) -> Result<Packet, DecodeError> {
    if datagram.len() < MIN_DATAGRAM_LEN {
        return Err(DecodeError::TooShort {
            len: datagram.len(),
        });
    }
    let kind = datagram[0];
    let mut id = [0u8; 20];
    id.copy_from_slice(&datagram[1..HEADER_LEN]);
    let id = MessageId(id);
    let is_request = if kind == dialect.request_kind() {
        true
    } else if kind == dialect.response_kind() {
        false
    } else {
        return Err(DecodeError::UnknownKind { kind });
    };
    let (body, _used) = decode_value(&datagram[HEADER_LEN..], limits)?;
    if !is_request {
        return Ok(Packet::Response { id, value: body });
    }
    // The Python peer requires a 2-element list; it then looks up `rpc_<name>`, which
    // can only exist for a str name, and splats the args, which we require to be a list.
    let Value::Array(mut parts) = body else {
        return Err(DecodeError::MalformedRequest);
    };
    if parts.len() != 2 {
        return Err(DecodeError::MalformedRequest);
    }
    let args = parts.pop();
    let method = parts.pop();
    match (method, args) {
        (Some(Value::String(m)), Some(Value::Array(args))) => match m.into_str() {
            Some(method) => Ok(Packet::Request { id, method, args }),
            None => Err(DecodeError::InvalidUtf8),
        },
        _ => Err(DecodeError::MalformedRequest),
    }
}

/// Appends a request datagram to `out` (which is not cleared).
///
/// The body is `[method, args]` in smallest widths, the bytes the Python caller sends for
/// the same call. No size or sendability check here: see
/// [`check_sendable`](super::value::check_sendable) and [`Dialect::max_body`].
pub fn encode_request(
    dialect: Dialect,
    id: &MessageId,
    method: &str,
    args: &[Value],
    out: &mut Vec<u8>,
) {
    out.push(dialect.request_kind());
    out.extend_from_slice(&id.0);
    out.push(0x92); // fixarray of 2: [method, args]
    encode_value(&Value::from(method), out);
    // The args array header, then each argument (avoids cloning args into a Value).
    let n = args.len();
    if n < 16 {
        out.push(0x90 | n as u8);
    } else if let Ok(h) = u16::try_from(n) {
        out.push(0xdc);
        out.extend_from_slice(&h.to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    for a in args {
        encode_value(a, out);
    }
}

/// Appends a response datagram to `out` (which is not cleared).
pub fn encode_response(dialect: Dialect, id: &MessageId, value: &Value, out: &mut Vec<u8>) {
    out.push(dialect.response_kind());
    out.extend_from_slice(&id.0);
    encode_value(value, out);
}

/// The key of an error reply: a response body that is the one-entry map
/// `{"__rpcudp_error__": message}` says the callee's handler failed, with `message` (a
/// str) saying why. This project's addition to the wire (docs/wire.md section 1, "Error
/// replies"): to a Python `rpcudp` or `storjrpcudp` caller it is an ordinary answer, a
/// dict it can test with `"__rpcudp_error__" in value`; an [`Endpoint`] that receives it
/// reports the call failed with the message
/// ([`CallFailure::Remote`](crate::rpc::CallFailure::Remote)).
///
/// The name is a Python "dunder" with the project's name in it: no method of the Python
/// peers or of `kademlia` answers a map with such a key, an application would have to
/// choose it on purpose, and it reads as reserved to a Python programmer.
///
/// [`Endpoint`]: crate::rpc::Endpoint
pub const ERROR_REPLY_KEY: &str = "__rpcudp_error__";

/// The longest message an error reply carries, in bytes: a longer one is cut at a char
/// boundary (so an error reply always fits the smallest body limit, storj's 8171).
pub const MAX_ERROR_MESSAGE: usize = 1024;

/// The body of an error reply carrying `message` (cut to [`MAX_ERROR_MESSAGE`] bytes).
///
/// ```
/// use rpcudp_proto::wire::rpc::{error_reply, error_reply_message};
/// let body = error_reply("disk full");
/// assert_eq!(body.to_string(), r#"{"__rpcudp_error__": "disk full"}"#);
/// assert_eq!(error_reply_message(&body), Some("disk full"));
/// assert_eq!(error_reply_message(&"disk full".into()), None);
/// ```
pub fn error_reply(message: &str) -> Value {
    let mut end = message.len().min(MAX_ERROR_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    Value::Map(vec![(
        Value::from(ERROR_REPLY_KEY),
        Value::from(&message[..end]),
    )])
}

/// The message of an error reply, if `body` is one: exactly one map entry, its key the
/// str [`ERROR_REPLY_KEY`] and its value a str. Anything else (another key beside it, a
/// non-str message) is an ordinary answer, so a value that merely contains the key is
/// never mistaken for an error.
pub fn error_reply_message(body: &Value) -> Option<&str> {
    match body {
        Value::Map(pairs) => match pairs.as_slice() {
            [(Value::String(k), Value::String(m))] if k.as_str() == Some(ERROR_REPLY_KEY) => {
                m.as_str()
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
#[path = "rpc_tests.rs"]
mod tests;
