//! `rpcudp_rs._native`: the rpcudp-rs cores for Python (PyO3). The Python package
//! `rpcudp_rs` (python/rpcudp_rs) wraps it in drop-ins for rpcudp 5.0.1's `RPCProtocol`
//! and kademlia 2.2.3's `Server`.
//!
//! Owns: the classes Python sees ([`endpoint::Endpoint`], [`dht::Dht`], [`value::Ext`]) and
//! the conversion of values. Does not own protocol logic: that is rpcudp-proto's (and
//! the tokio `Dht` of the rpcudp crate for the DHT node).
//!
//! Importing the module starts nothing: no thread, socket or runtime exists until an
//! `Endpoint` is attached to a transport or a `Dht` is started.

use pyo3::prelude::*;

pub mod dht;
pub mod endpoint;
pub mod stats;
pub mod value;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<endpoint::Endpoint>()?;
    m.add_class::<dht::Dht>()?;
    m.add_class::<value::Ext>()?;
    Ok(())
}
