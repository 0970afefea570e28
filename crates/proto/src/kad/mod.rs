//! Kademlia, sans-IO: ids and the XOR metric, the k-bucket routing table, the iterative
//! lookup state machine and the record store trait. Interoperable in its choices with
//! Python `kademlia` 2.2.3 (k = 20, alpha = 3, 160-bit ids); the RPCs themselves and
//! their wire shapes live in the `rpcudp` crate's `kad` module (`shared/spec/wire.md` §3).
//!
//! Like the rest of this crate, nothing here does I/O or reads a clock:
//! - [`RoutingTable::insert`] returns [`InsertOutcome::PingOldest`] when a full bucket
//!   needs its oldest contact pinged; the caller pings and reports through
//!   [`RoutingTable::on_ping_result`].
//! - [`Lookup::next`] says whom to contact, whether to wait, or that it is finished; the
//!   caller makes the RPCs and reports with [`Lookup::on_success`] / [`Lookup::on_failure`].
//! - [`RecordStore`] is where values go; a `put` that returns `Ok` is what the caller
//!   acknowledges.

mod id;
mod lookup;
mod routing;
mod store;

pub use id::{Distance, NodeId, ID_LEN};
pub use lookup::{Lookup, LookupConfig, LookupState};
pub use routing::{Contact, InsertOutcome, RoutingConfig, RoutingTable};
pub use store::{is_storable, MemoryStore, Record, RecordStore, StoreError};

#[cfg(test)]
mod tests;
