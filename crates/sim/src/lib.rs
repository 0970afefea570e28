//! # rpcudp-sim: any sans-IO protocol on a simulated network, in virtual time
//!
//! [`Sim`] runs any state machine implementing [`rpcudp_proto::Protocol`] (the RPC
//! [`Endpoint`](rpcudp_proto::rpc::Endpoint), the Kademlia node, ...) on made-up
//! addresses, with no sockets and no clock: time jumps straight to the next datagram
//! arrival or node deadline, so minutes of virtual time take milliseconds, and each step
//! costs O(log N). Faults are scriptable: loss, duplication and reordering per link,
//! heavy-tailed (log-normal) round trips, partitions, kill and restart. Everything random
//! comes from one seed, so a failing run is reported with its seed and replayed with it.
//!
//! Owns: the generic simulator ([`net`]) and the RPC workload with its invariant checks
//! ([`rpc`], whose [`rpc::run`] the many-seed tests use). Does not own: any protocol logic;
//! that is in `rpcudp-proto`.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod dht;
pub mod hostile;
pub mod net;
pub mod rpc;

pub use net::{
    node_addr, sub_seed, Delay, Injection, LinkConfig, NetConfig, NetStats, NodeIndex, RunOutcome,
    Sim, Tap,
};
pub use rpc::{attacker_addr, SimError};
/// The trait a simulated state machine implements, and the datagram it hands out: so a
/// user's own protocol needs no direct dependency on `rpcudp-proto`.
pub use rpcudp_proto::{Protocol, Transmit};
