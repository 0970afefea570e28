//! Which values a node stores: [`is_storable`], the kinds Python `kademlia` accepts. Where
//! the values are kept is the node's [`ValueStore`](super::ValueStore) (memory, or the
//! `rpcudp` crate's redb file).

use rmpv::Value;

/// Whether `value` is one of the kinds Python `kademlia` stores: int, float, bool, str
/// or bin.
pub fn is_storable(value: &Value) -> bool {
    matches!(
        value,
        Value::Integer(_)
            | Value::F32(_)
            | Value::F64(_)
            | Value::Boolean(_)
            | Value::String(_)
            | Value::Binary(_)
    )
}
