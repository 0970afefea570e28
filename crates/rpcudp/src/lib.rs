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
pub mod rpc;
pub mod udp;

pub use rpcudp_proto as proto;
