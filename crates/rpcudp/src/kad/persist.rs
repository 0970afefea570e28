//! Durable state of a DHT node in one redb file: its id, its contacts and the values it
//! stores. A value's write transaction commits (redb's default durability: fsync'd)
//! before the `store` RPC is acknowledged; contacts are written in small batches.

use super::DhtError;
use redb::{Database, ReadableTable, TableDefinition};
use rmpv::Value;
use rpcudp_proto::kad::{is_storable, Contact, NodeId, Record, RecordStore, StoreError};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
/// Contact id (20 bytes) → its address as text (`127.0.0.1:8468`, `[::1]:8468`).
const CONTACTS: TableDefinition<'_, &[u8], &str> = TableDefinition::new("contacts");
/// Key (20 bytes) → MessagePack `[stored_at, value]`.
const RECORDS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("records");

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn dht_err(e: impl std::fmt::Display) -> DhtError {
    DhtError::State(e.to_string())
}

/// What was found in a state folder when it was opened.
pub(crate) struct Loaded {
    pub db: Arc<Database>,
    pub id: NodeId,
    pub contacts: Vec<Contact>,
    pub records: HashMap<NodeId, Record>,
}

/// Opens (creating if needed) the state in `dir`; a new state gets `fresh_id` as its id,
/// an existing one keeps the id it has.
pub(crate) fn open(dir: &Path, fresh_id: NodeId) -> Result<Loaded, DhtError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        DhtError::State(format!(
            "cannot create the state folder {}: {e}",
            dir.display()
        ))
    })?;
    let path = dir.join("dht.redb");
    let db = Database::create(&path)
        .map_err(|e| DhtError::State(format!("cannot open {}: {e}", path.display())))?;
    let txn = db.begin_write().map_err(dht_err)?;
    let id = {
        let mut meta = txn.open_table(META).map_err(dht_err)?;
        // Open the other tables too, so that readers find them even when empty.
        txn.open_table(CONTACTS).map_err(dht_err)?;
        txn.open_table(RECORDS).map_err(dht_err)?;
        let saved = meta
            .get("node_id")
            .map_err(dht_err)?
            .and_then(|v| NodeId::from_slice(v.value()));
        match saved {
            Some(id) => id,
            None => {
                meta.insert("node_id", &fresh_id.0[..]).map_err(dht_err)?;
                fresh_id
            }
        }
    };
    txn.commit().map_err(dht_err)?;

    let read = db.begin_read().map_err(dht_err)?;
    let mut contacts = Vec::new();
    for entry in read
        .open_table(CONTACTS)
        .map_err(dht_err)?
        .iter()
        .map_err(dht_err)?
    {
        let (k, v) = entry.map_err(dht_err)?;
        // A row that does not parse (never written by us) is skipped, not fatal.
        if let (Some(cid), Ok(addr)) = (NodeId::from_slice(k.value()), v.value().parse()) {
            contacts.push(Contact::new(cid, addr));
        }
    }
    let mut records = HashMap::new();
    for entry in read
        .open_table(RECORDS)
        .map_err(dht_err)?
        .iter()
        .map_err(dht_err)?
    {
        let (k, v) = entry.map_err(dht_err)?;
        if let (Some(key), Some(record)) = (NodeId::from_slice(k.value()), decode_record(v.value()))
        {
            records.insert(key, record);
        }
    }
    drop(read);
    Ok(Loaded {
        db: Arc::new(db),
        id,
        contacts,
        records,
    })
}

fn encode_record(record: &Record) -> Vec<u8> {
    let v = Value::Array(vec![Value::from(record.stored_at), record.value.clone()]);
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, &v);
    out
}

fn decode_record(bytes: &[u8]) -> Option<Record> {
    let v = rmpv::decode::read_value(&mut &bytes[..]).ok()?;
    let Value::Array(mut items) = v else {
        return None;
    };
    if items.len() != 2 {
        return None;
    }
    let value = items.pop()?;
    let stored_at = items.pop()?.as_u64()?;
    is_storable(&value).then_some(Record { value, stored_at })
}

/// Contact changes waiting to be written.
pub(crate) enum ContactChange {
    Upsert(Contact),
    Remove(NodeId),
}

/// Writes a batch of contact changes in one transaction.
pub(crate) fn write_contacts(db: &Database, changes: &[ContactChange]) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(backend)?;
    {
        let mut table = txn.open_table(CONTACTS).map_err(backend)?;
        for change in changes {
            match change {
                ContactChange::Upsert(c) => {
                    table
                        .insert(&c.id.0[..], c.addr.to_string().as_str())
                        .map_err(backend)?;
                }
                ContactChange::Remove(id) => {
                    table.remove(&id.0[..]).map_err(backend)?;
                }
            }
        }
    }
    txn.commit().map_err(backend)
}

/// A [`RecordStore`] that keeps every record in memory for reads and commits each `put`
/// to redb before returning, so an acknowledged store survives a crash.
pub(crate) struct RedbStore {
    db: Arc<Database>,
    cache: HashMap<NodeId, Record>,
    limit: usize,
}

impl RedbStore {
    pub fn new(db: Arc<Database>, cache: HashMap<NodeId, Record>, limit: usize) -> Self {
        RedbStore { db, cache, limit }
    }
}

impl RecordStore for RedbStore {
    fn get(&self, key: &NodeId) -> Option<Record> {
        self.cache.get(key).cloned()
    }

    fn put(&mut self, key: NodeId, record: Record) -> Result<(), StoreError> {
        if !is_storable(&record.value) {
            return Err(StoreError::NotStorable);
        }
        if !self.cache.contains_key(&key) && self.cache.len() >= self.limit {
            return Err(StoreError::Full { limit: self.limit });
        }
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut table = txn.open_table(RECORDS).map_err(backend)?;
            table
                .insert(&key.0[..], encode_record(&record).as_slice())
                .map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        self.cache.insert(key, record);
        Ok(())
    }

    fn records(&self) -> Vec<(NodeId, Record)> {
        self.cache.iter().map(|(k, r)| (*k, r.clone())).collect()
    }

    fn len(&self) -> usize {
        self.cache.len()
    }
}
