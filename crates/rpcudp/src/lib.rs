//! # rpcudp: structured messages over UDP
//!
//! The runtime half of rpcudp-rs, on tokio + socket2:
//! - [`udp`]: datagram endpoints (the equivalent of Twisted's `listenUDP`,
//!   `listenMulticast` and `adoptDatagramPort`).
//! - [`rpc`]: RPC over UDP, wire-compatible with Python `rpcudp` and `storjrpcudp`.
//! - [`lt`]: length-type framed messages over TCP and UDP (`ltprotocol`'s job).
//! - [`kad`]: a Kademlia DHT on the RPC node, interoperable with Python `kademlia`,
//!   persisting to redb.
//!
//! Protocol logic lives in the sans-IO crate [`rpcudp_proto`]; this crate only moves
//! bytes and sleeps until the next deadline.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod driver;
pub mod kad;
pub mod lt;
pub mod metrics;
pub mod rpc;
pub mod udp;

pub use rpcudp_proto as proto;

/// A MessagePack value: what RPC arguments and answers are, and what dynamic handlers
/// take and return. (rmpv's `Value`, re-exported so a project needs no rmpv dependency of
/// its own, nor the same version of it.)
pub use rmpv::Value;

/// Shows a [`Value`] readably with `{}` (`"teal"`, `[1, 2]`, `{"a": 1}`, `b".."`), where
/// `{:?}` would print rmpv's `String(Utf8String { s: Ok("teal") })`.
///
/// ```
/// assert_eq!(rpcudp::display(&rpcudp::Value::from("teal")).to_string(), r#""teal""#);
/// ```
pub use rpcudp_proto::wire::value::{display, ValueDisplay};

/// The MessagePack value crate itself, for the rest of its API (`Utf8String`,
/// `Integer`, `ext::to_value`...), at the version this crate uses.
pub use rmpv;
