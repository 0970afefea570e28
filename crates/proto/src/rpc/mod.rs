//! The RPC endpoint state machine (sans-IO): calls in flight, retries, duplicate cache.
//!
//! One [`Endpoint`] is both server and client on one socket, like Python `rpcudp`'s
//! `RPCProtocol`, but it does no I/O and reads no clock: the driver feeds it datagrams
//! and the time, and pulls out datagrams to send, [`Event`]s and the next deadline. See
//! [`Endpoint`] for the order of calls and a complete exchange between two endpoints.
//!
//! Split by concern: [`config`] (limits and call timing), `calls` (the call table and retry
//! schedule), `dedup` (duplicate suppression), `timers` (the deadline heap), [`stats`]
//! (counters), [`limits`] (per-source rates and shares, address validation and
//! anti-amplification), [`WarnLimiter`] (the budget of warning lines a peer can cause)
//! and `endpoint` (the state machine tying them together).

use std::net::SocketAddr;

use crate::wire::rpc::MessageId;
use crate::wire::value::UnsendableValue;

mod calls;
pub mod config;
mod dedup;
mod endpoint;
mod latency;
pub mod limits;
mod ownhash;
mod slots;
pub mod stats;
mod timers;
mod warnings;

pub use config::{CallOptions, EndpointConfig};
pub use endpoint::Endpoint;
pub use limits::{LimitsConfig, TableSizes, ValidationProbe};
pub use stats::Stats;
pub use warnings::WarnLimiter;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_errors;
#[cfg(test)]
mod tests_limits;

/// The caller's handle on one call, returned by [`Endpoint::call`] and named again by
/// [`Event::CallSucceeded`] / [`Event::CallFailed`].
///
/// Unique among the calls in flight (it wraps the call's random message id, which the
/// endpoint keeps unique among them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallId(pub(crate) MessageId);

impl CallId {
    /// The message id the call's request carries on the wire (for logs and traces).
    pub fn message_id(&self) -> MessageId {
        self.0
    }
}

/// A served request awaiting its answer: pass it to [`Endpoint::respond`] or
/// [`Endpoint::abandon`] exactly once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestToken(pub(crate) u64);

pub use crate::protocol::Transmit;

/// Something the application must know about, from [`Endpoint::poll_event`].
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A peer called `method`: run the handler, then [`Endpoint::respond`] with its value,
    /// [`Endpoint::respond_error`] with its error (an error reply, docs/wire.md), or
    /// [`Endpoint::abandon`] to send nothing (unknown method, wrong arguments: the Python
    /// peers send no answer then, and the caller times out).
    Request {
        /// Names this request in `respond` / `abandon`.
        token: RequestToken,
        /// The caller's address (handlers receive it, as in the Python peers).
        from: SocketAddr,
        /// The method name.
        method: String,
        /// The positional arguments.
        args: Vec<rmpv::Value>,
    },
    /// A call got its answer.
    CallSucceeded {
        /// The call.
        call: CallId,
        /// The peer's return value.
        value: rmpv::Value,
    },
    /// A call ended without a value: no answer, or an error reply.
    CallFailed {
        /// The call.
        call: CallId,
        /// Why.
        error: CallFailure,
    },
}

/// Why a call ended without a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    /// No answer from the peer within the call's schedule (every attempt, or the overall
    /// deadline). Causes: the peer is down, does not know the method, rejected the
    /// arguments, or packets were lost. Remedy: retries, a longer timeout, check the name.
    #[error("no answer within the timeout")]
    Timeout,
    /// The peer answered with an error reply (`{"__rpcudp_error__": message}`, see
    /// [`wire::rpc::ERROR_REPLY_KEY`](crate::wire::rpc::ERROR_REPLY_KEY)): its handler
    /// failed and said why. Only when [`EndpointConfig::error_replies`] is on (the
    /// default); otherwise that map arrives as an ordinary value. Remedy: read the
    /// message; it is the peer's text, untrusted.
    #[error("the peer answered with an error: {message:?}")]
    Remote {
        /// The peer's message (at most `MAX_ERROR_MESSAGE` bytes when sent by us).
        message: String,
    },
}

/// Why [`Endpoint::call`] refused to start a call (nothing was sent).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallRefused {
    /// The request body (MessagePack of `[method, args]`) is larger than the limit
    /// (8192 bytes for `rpcudp`, 8171 for `storj`). Remedy: send less per call.
    #[error("request body of {size} bytes exceeds the limit of {limit}")]
    RequestTooLarge {
        /// The body's size.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// `max_outstanding_calls` calls are already in flight. Remedy: wait for some to end,
    /// or raise the limit.
    #[error("{limit} calls already in flight")]
    TooManyOutstanding {
        /// The limit in force.
        limit: usize,
    },
    /// An argument cannot be sent: the Python peers would reject the whole message (a
    /// map with duplicate keys or a key Python cannot hash, a non-UTF-8 str) or it nests too deep.
    #[error("argument cannot be sent: {0}")]
    Unsendable(UnsendableValue),
}
