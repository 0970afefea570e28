//! Errors of [`Node`](super::Node) calls and handlers.

use rpcudp_proto::wire::value::UnsendableValue;
use std::time::Duration;

/// Why a call made through [`Node::call`](super::Node::call) (or its typed and optioned
/// siblings) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No response arrived within the call's deadline (every attempt, retries included).
    ///
    /// This is also what an unknown method or a handler that failed looks like: the
    /// Python peers never answer those, and neither do we. Remedy: check the method name
    /// and arguments, raise `attempt_timeout`, or add retries on a lossy path.
    #[error("no response within {0:?}")]
    Timeout(Duration),
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

/// Why a handler gives no answer. Logged at debug level and counted as a handler failure;
/// the caller sees a timeout, as with the Python peers (where an exception in an `rpc_*`
/// method sends nothing back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl HandlerError {
    /// A handler error with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        HandlerError(reason.into())
    }
}

impl From<&str> for HandlerError {
    fn from(reason: &str) -> Self {
        HandlerError(reason.to_string())
    }
}

impl From<String> for HandlerError {
    fn from(reason: String) -> Self {
        HandlerError(reason)
    }
}
