//! # rpcudp-proto: the sans-IO core of rpcudp-rs
//!
//! This crate does **no I/O and reads no clock**. Every input arrives as a method call
//! carrying the current time (`now: Instant`) and every output is pulled out with a
//! `poll_*` method. The tokio driver in the `rpcudp` crate moves the bytes and sleeps until
//! `poll_timeout` (the next deadline); tests and the simulator drive time by hand.
//!
//! What lives here:
//! - [`wire`]: pure parse/emit of every wire format (RPC datagrams in both dialects,
//!   length-type frames) and bounded MessagePack decoding of untrusted bytes.
//! - [`rpc`]: the RPC endpoint state machine ([`rpc::Endpoint`]): in-flight calls matched
//!   by message id *and* peer address, retries of the same datagram with backoff and
//!   jitter, the duplicate cache, limits and counters.
//! - [`protocol`]: the [`Protocol`] trait every state machine here implements, so one
//!   driver and one simulator run any of them.
//! - [`kad`]: Kademlia without I/O: ids and XOR distance, k-buckets, the iterative lookup,
//!   the whole node ([`kad::Node`]) and the trait its values are kept behind
//!   ([`kad::ValueStore`]).
//! - [`subnet`]: source subnets (/24, /64) and local ranges, the unit of per-source limits.
//!
//! What does not: sockets, tasks, timers, handler code (requests become events and answers
//! come back through `respond`).
//!
//! Randomness (message ids, retry jitter) comes from an RNG seeded by the caller, so the
//! same inputs replay the same outputs; the `rpcudp-sim` crate runs many endpoints on a
//! seeded lossy network this way.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod kad;
pub mod protocol;
pub mod rpc;
pub mod subnet;
pub mod wire;

pub use protocol::{Protocol, Transmit};
