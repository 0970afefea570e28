//! Errors of [`Endpoint`](super::Endpoint) calls and handlers.

use rpcudp_proto::wire::value::UnsendableValue;
use std::time::Duration;

/// Why a call made through [`Endpoint::call`](super::Endpoint::call) (or its typed and optioned
/// siblings) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No response arrived within the call's deadline (every attempt, retries included).
    ///
    /// This is also what an unknown method, wrong arguments or a Python handler that
    /// raised look like: the Python peers never answer those, and neither do we (nor a
    /// handler of ours that chose [`HandlerError::no_answer`]). Remedy: check the method
    /// name and arguments, raise `attempt_timeout`, or add retries on a lossy path.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The peer answered with an error reply: its handler failed and said why (a
    /// [`HandlerError`] or a typed handler's `Err` on our side; a Python handler
    /// returning `{"__rpcudp_error__": message}`; docs/wire.md, "Error replies").
    /// Remedy: read the message (the peer's text, untrusted: escape it before showing).
    #[error("the peer's handler failed: {message:?}")]
    Remote {
        /// What the peer said.
        message: String,
    },
    /// The encoded request body is over the dialect's limit (8192 bytes for rpcudp,
    /// 8171 for storj), so it was never sent. Remedy: send less per call.
    #[error("request body of {size} bytes is over the limit of {limit}")]
    RequestTooLarge {
        /// The encoded body size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Too many calls are outstanding on this node (the core's `max_outstanding_calls`),
    /// so this one was refused before being sent. Remedy: wait for some to finish, or
    /// raise the limit.
    #[error("too many outstanding calls (limit {limit})")]
    Overloaded {
        /// The configured limit.
        limit: usize,
    },
    /// A response arrived but did not deserialize into the type the caller asked for.
    /// The raw value is kept so the caller can inspect it.
    #[error("response {value} does not deserialize to the expected type: {reason}")]
    Decode {
        /// What the peer answered.
        value: rmpv::Value,
        /// The deserializer's complaint.
        reason: String,
    },
    /// An argument cannot be sent: the Python peers would reject the whole message (a map
    /// with duplicate keys or a key Python cannot hash, a str that is not UTF-8) or it nests deeper than
    /// the decode limit. Nothing was sent. Remedy: change the value.
    #[error("argument cannot be sent: {0}")]
    Unsendable(UnsendableValue),
    /// The typed arguments could not be turned into MessagePack (a serializer error).
    #[error("arguments do not serialize to MessagePack: {0}")]
    Encode(String),
    /// The request could not be handed to the operating system (for example an IPv6
    /// destination from an IPv4 socket, or no route).
    #[error("cannot send the request: {0}")]
    Io(#[from] std::io::Error),
    /// The node was shut down (or its driver stopped) before the call finished.
    #[error("the node is shut down")]
    ShutDown,
}

/// Why a handler gives no value: an error reply for the caller, or no answer at all.
///
/// - [`HandlerError::new`] (and `From<&str>`, `From<String>`): the caller gets an error
///   reply, `{"__rpcudp_error__": message}` on the wire (docs/wire.md): a Python caller
///   receives that map as its value, a Rust caller [`CallError::Remote`] with the
///   message. The message goes to whoever called: put nothing secret in it.
/// - [`HandlerError::no_answer`]: nothing is sent, as when a Python `rpc_*` method
///   raises; the caller times out ([`CallError::Timeout`]). The reason is only logged.
///
/// Either way it is logged at warn level (rate-limited) and counted in
/// [`EndpointStats::handler_failures`](super::EndpointStats::handler_failures).
///
/// A typed handler may return `Result<T, HandlerError>` too: serialized, a
/// `HandlerError` says which of the two it is (see [`NoAnswer`]).
///
/// ```
/// use rpcudp::rpc::HandlerError;
/// let reply = HandlerError::from("disk full");
/// assert!(!reply.is_no_answer());
/// assert_eq!(reply.message(), "disk full");
/// assert!(HandlerError::no_answer("not for you").is_no_answer());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    message: String,
    no_answer: bool,
}

impl HandlerError {
    /// An error the caller receives as an error reply carrying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            no_answer: false,
        }
    }

    /// No answer at all: the caller times out. `reason` is only logged.
    pub fn no_answer(reason: impl Into<String>) -> Self {
        HandlerError {
            message: reason.into(),
            no_answer: true,
        }
    }

    /// The message (sent to the caller) or the reason (logged).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the caller gets no answer (rather than an error reply).
    pub fn is_no_answer(&self) -> bool {
        self.no_answer
    }
}

impl From<&str> for HandlerError {
    fn from(message: &str) -> Self {
        HandlerError::new(message)
    }
}

impl From<String> for HandlerError {
    fn from(message: String) -> Self {
        HandlerError::new(message)
    }
}

/// The serde name by which a typed handler's `Err` says "no answer" (see [`NoAnswer`]).
pub(crate) const NO_ANSWER_NAME: &str = "rpcudp::rpc::NoAnswer";

/// The error a typed handler returns to send no answer at all (the caller times out, as
/// with a Python `rpc_*` method that raises): `Err(NoAnswer)`. Any other `Err(e)` of a
/// typed handler is an error reply carrying `e` (a str as it is, anything else as its
/// MessagePack text).
///
/// ```
/// # use rpcudp::rpc::{NoAnswer, Endpoint};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let node = Endpoint::bind("127.0.0.1:0".parse().unwrap()).await?;
/// // Strangers get silence, as if the method did not exist.
/// node.register_typed("secret", |from: std::net::SocketAddr, ()| async move {
///     if from.ip().is_loopback() { Ok(42) } else { Err(NoAnswer) }
/// });
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoAnswer;

impl serde::Serialize for NoAnswer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit_struct(NO_ANSWER_NAME)
    }
}

/// A reply error serializes as its message; a no-answer one as [`NoAnswer`] with its
/// reason, so a typed handler's `Err(HandlerError)` keeps its meaning.
impl serde::Serialize for HandlerError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.no_answer {
            s.serialize_newtype_struct(NO_ANSWER_NAME, &self.message)
        } else {
            s.serialize_str(&self.message)
        }
    }
}
