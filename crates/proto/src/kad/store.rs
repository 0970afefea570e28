//! A standalone record store: the [`RecordStore`] trait (values with the time they were
//! stored) and an in-memory implementation, plus [`is_storable`]. [`Node`](super::Node)
//! does not keep its values here: it keeps an index itself and the bytes in a
//! [`ValueStore`](super::ValueStore) (the `rpcudp` crate's is on redb).

use super::id::NodeId;
use rmpv::Value;
use std::collections::HashMap;

/// A stored value and when it was stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The value: int, float, bool, str or bin (see [`is_storable`]).
    pub value: Value,
    /// Seconds since the Unix epoch when it was stored here (given by the caller: this
    /// crate reads no clock). Republishing uses it.
    pub stored_at: u64,
}

/// Why a [`RecordStore`] refused a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store holds its maximum number of records and this key is new. Remedy: raise
    /// the limit; the network keeps the value on other nodes meanwhile.
    #[error("the store is full ({limit} records)")]
    Full {
        /// The configured limit.
        limit: usize,
    },
    /// The value is not one Python `kademlia` accepts (int, float, bool, str, bin).
    #[error("values must be int, float, bool, str or bin")]
    NotStorable,
    /// The backing storage failed (disk full, I/O error, corrupt file). The value was not
    /// stored and must not be acknowledged. Remedy: see the message.
    #[error("storage failed: {0}")]
    Backend(String),
}

/// A key-value store for DHT records. `put` returning `Ok` means the record is kept as
/// durably as the store promises: a node acknowledges a `store` RPC only after that.
pub trait RecordStore: Send {
    /// The record under `key`.
    fn get(&self, key: &NodeId) -> Option<Record>;
    /// Stores (or replaces) the record under `key`.
    fn put(&mut self, key: NodeId, record: Record) -> Result<(), StoreError>;
    /// Every record (for handing values to newcomers and republishing).
    fn records(&self) -> Vec<(NodeId, Record)>;
    /// How many records are held.
    fn len(&self) -> usize;
    /// Whether no record is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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

/// Records in memory, at most `limit` of them.
///
/// ```
/// use rpcudp_proto::kad::{MemoryStore, NodeId, Record, RecordStore};
///
/// let mut store = MemoryStore::new(2);
/// let key = NodeId::from_bytes([7; 20]);
/// store.put(key, Record { value: "v".into(), stored_at: 0 }).unwrap();
/// assert_eq!(store.get(&key).unwrap().value, rmpv::Value::from("v"));
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: HashMap<NodeId, Record>,
    limit: usize,
}

impl MemoryStore {
    /// An empty store that holds at most `limit` records.
    pub fn new(limit: usize) -> Self {
        MemoryStore {
            records: HashMap::new(),
            limit,
        }
    }
}

impl RecordStore for MemoryStore {
    fn get(&self, key: &NodeId) -> Option<Record> {
        self.records.get(key).cloned()
    }

    fn put(&mut self, key: NodeId, record: Record) -> Result<(), StoreError> {
        if !is_storable(&record.value) {
            return Err(StoreError::NotStorable);
        }
        if !self.records.contains_key(&key) && self.records.len() >= self.limit {
            return Err(StoreError::Full { limit: self.limit });
        }
        self.records.insert(key, record);
        Ok(())
    }

    fn records(&self) -> Vec<(NodeId, Record)> {
        self.records.iter().map(|(k, r)| (*k, r.clone())).collect()
    }

    fn len(&self) -> usize {
        self.records.len()
    }
}
