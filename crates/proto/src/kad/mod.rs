//! Kademlia, sans-IO: ids and the XOR metric, the k-bucket routing table, the iterative
//! lookup state machine and the node composed of them. Interoperable in its choices with
//! Python `kademlia` 2.2.3 (k = 20, alpha = 3, 160-bit ids); the RPCs' wire shapes are
//! in [`wire`] (`docs/wire.md` §3).
//!
//! Like the rest of this crate, nothing here does I/O or reads a clock:
//! - [`RoutingTable::insert`] returns [`InsertOutcome::PingOldest`] when a full bucket
//!   needs its oldest contact pinged; the caller pings and reports through
//!   [`RoutingTable::on_ping_result`].
//! - [`Lookup::next`] says whom to contact, whether to wait, or that it is finished; the
//!   caller makes the RPCs and reports with [`Lookup::on_success`] / [`Lookup::on_failure`].
//! - [`ValueStore`] is where a [`Node`] keeps the bytes of the values it holds (it keeps
//!   only their index itself): [`MemoryValues`] in memory, the `rpcudp` crate's on redb.
//!   A `store` is acknowledged once the driver made it durable
//!   ([`Node::store_durable`]).
//! - [`Node`] is the whole node composed of these: it serves the five RPCs, runs
//!   `bootstrap` / `set` / `get`, hands values over, refreshes, republishes and expires,
//!   as one [`Protocol`](crate::Protocol) state machine ([`node`] has the driver's duties).
//!   [`wire`] has the RPCs' MessagePack shapes.

mod id;
mod lookup;
pub mod node;
pub mod record;
mod routing;
mod rto;
mod store;
pub mod wire;

pub use id::{Distance, NodeId, ID_LEN};
pub use lookup::{Lookup, LookupConfig, LookupState};
pub use node::{
    CommandError, Event, Node, NodeConfig, NodeSetup, NodeStats, QueryId, QueryOutcome, QueryStats,
    StoreToken,
};
pub use node::{MemoryValues, ValueStore};
pub use routing::{Contact, InsertOutcome, RoutingConfig, RoutingTable};
pub use rto::{RtoConfig, RttEstimator};
pub use store::is_storable;

#[cfg(test)]
mod tests;
