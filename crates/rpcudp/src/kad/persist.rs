//! Durable state of a DHT node in one redb file: its id, its contacts, the copies it
//! holds (with their expiry) and the values it publishes.
//!
//! Owns: the file's tables, the writer thread (every write goes through it, in order,
//! many changes per transaction) and the one place where wall-clock time is read
//! ([`WallClock`]: persisted expiries are Unix milliseconds, the node's are `Instant`s).
//! Does not own: when anything is written (the node's events decide) nor what a copy's
//! lifetime is (the node decides; this only converts).
//!
//! The values of the copies are not loaded at start: only their keys and expiries (the
//! node's index). [`RedbValues`] serves a value from the file when the node asks for one
//! (a read transaction per get, through a small page cache), so memory does not grow with
//! the state's size.
//!
//! A `store` is acknowledged only after the transaction holding it committed (redb's
//! default durability: fsync'd), so a kill -9 after the acknowledgement loses nothing.

use super::DhtError;
use redb::{Database, ReadableTable, TableDefinition};
use rmpv::Value;
use rpcudp_proto::kad::{is_storable, Contact, NodeId, StoreToken, ValueStore};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc as tokio_mpsc;

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
/// Contact id (20 bytes) → its address as text (`127.0.0.1:8468`, `[::1]:8468`).
const CONTACTS: TableDefinition<'_, &[u8], &str> = TableDefinition::new("contacts");
/// Key (20 bytes) → MessagePack `[expires_at_unix_ms, value]`: the copies held here.
const COPIES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("copies");
/// Key (20 bytes) → MessagePack value: what this node published (and republishes).
const PUBLISHED: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("published");

fn dht_err(e: impl std::fmt::Display) -> DhtError {
    DhtError::State(e.to_string())
}

/// The mapping between the driver's clock and wall-clock time, read once when the node
/// starts: persisted expiries must mean the same after a restart, `Instant`s do not.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WallClock {
    instant: Instant,
    unix_ms: u64,
}

impl WallClock {
    /// Pairs `now` (the driver's clock) with the system's wall clock.
    pub fn at(now: Instant) -> WallClock {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        WallClock {
            instant: now,
            unix_ms,
        }
    }

    pub fn to_unix_ms(self, at: Instant) -> u64 {
        match at.checked_duration_since(self.instant) {
            Some(d) => self.unix_ms.saturating_add(d.as_millis() as u64),
            None => self
                .unix_ms
                .saturating_sub(self.instant.duration_since(at).as_millis() as u64),
        }
    }

    /// `None` if that time is before the pairing's instant can express (long past).
    pub fn to_instant(self, unix_ms: u64) -> Option<Instant> {
        if unix_ms >= self.unix_ms {
            self.instant
                .checked_add(Duration::from_millis(unix_ms - self.unix_ms))
        } else {
            self.instant
                .checked_sub(Duration::from_millis(self.unix_ms - unix_ms))
        }
    }
}

/// redb's page cache: small, since the values are read one at a time (its default of
/// 1 GiB would end up holding the whole state in memory).
const CACHE_BYTES: usize = 4 << 20;

/// What was found in a state folder when it was opened.
pub(crate) struct Loaded {
    pub db: Arc<Database>,
    pub id: NodeId,
    pub contacts: Vec<Contact>,
    /// Copies held: key, expiry in Unix ms and the value's size as MessagePack (their
    /// values stay in the file).
    pub copies: Vec<(NodeId, u64, u64)>,
    pub published: Vec<(NodeId, Value)>,
}

/// Opens (creating if needed) the state in `dir`; a new state gets `fresh_id` as its id,
/// an existing one keeps the id it has.
///
/// A file that is not a redb database (garbage, truncated below its header) or that
/// makes redb panic while it is read is an error naming the file, not a panic.
pub(crate) fn open(dir: &Path, fresh_id: NodeId) -> Result<Loaded, DhtError> {
    let path = dir.join("dht.redb");
    let corrupt = |why: &str| DhtError::State(format!("{} is corrupt: {why}", path.display()));
    if let Ok(mut f) = std::fs::File::open(&path) {
        use std::io::Read;
        let mut head = [0u8; 9];
        let len = f.metadata().map_or(0, |m| m.len());
        if len > 0 && (f.read_exact(&mut head).is_err() || head != REDB_MAGIC) {
            return Err(corrupt("not a redb database (truncated or overwritten)"));
        }
    }
    match quietly(|| open_unchecked(dir, fresh_id)) {
        Ok(loaded) => loaded,
        Err(panic) => Err(corrupt(&panic)),
    }
}

/// The first bytes of every redb file.
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// Runs `f`, turning a panic (redb asserts on some corrupt files) into its message,
/// without the panic hook's report on stderr. Only at start, before the node runs.
fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    out.map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unreadable".into())
    })
}

fn open_unchecked(dir: &Path, fresh_id: NodeId) -> Result<Loaded, DhtError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        DhtError::State(format!(
            "cannot create the state folder {}: {e}",
            dir.display()
        ))
    })?;
    let path = dir.join("dht.redb");
    let db = redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(&path)
        .map_err(|e| DhtError::State(format!("cannot open {}: {e}", path.display())))?;
    let txn = db.begin_write().map_err(dht_err)?;
    let id = {
        let mut meta = txn.open_table(META).map_err(dht_err)?;
        // Open the other tables too, so that readers find them even when empty.
        txn.open_table(CONTACTS).map_err(dht_err)?;
        txn.open_table(COPIES).map_err(dht_err)?;
        txn.open_table(PUBLISHED).map_err(dht_err)?;
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
    let mut copies = Vec::new();
    for entry in read
        .open_table(COPIES)
        .map_err(dht_err)?
        .iter()
        .map_err(dht_err)?
    {
        let (k, v) = entry.map_err(dht_err)?;
        if let (Some(key), Some((expires, size))) =
            (NodeId::from_slice(k.value()), decode_expiry(v.value()))
        {
            copies.push((key, expires, size));
        }
    }
    let mut published = Vec::new();
    for entry in read
        .open_table(PUBLISHED)
        .map_err(dht_err)?
        .iter()
        .map_err(dht_err)?
    {
        let (k, v) = entry.map_err(dht_err)?;
        let value = rmpv::decode::read_value(&mut v.value()).ok();
        if let (Some(key), Some(value)) = (NodeId::from_slice(k.value()), value) {
            if is_storable(&value) {
                published.push((key, value));
            }
        }
    }
    drop(read);
    Ok(Loaded {
        db: Arc::new(db),
        id,
        contacts,
        copies,
        published,
    })
}

fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, v);
    out
}

fn encode_copy(expires_unix_ms: u64, value: &Value) -> Vec<u8> {
    encode(&Value::Array(vec![
        Value::from(expires_unix_ms),
        value.clone(),
    ]))
}

fn decode_copy(bytes: &[u8]) -> Option<(u64, Value)> {
    let v = rmpv::decode::read_value(&mut &bytes[..]).ok()?;
    let Value::Array(mut items) = v else {
        return None;
    };
    if items.len() != 2 {
        return None;
    }
    let value = items.pop()?;
    let expires = items.pop()?.as_u64()?;
    is_storable(&value).then_some((expires, value))
}

/// The expiry of an encoded copy and its value's size, without decoding the value (a
/// row whose value does not decode is found out, and skipped, when it is read).
fn decode_expiry(bytes: &[u8]) -> Option<(u64, u64)> {
    // `[expires, value]`: a fixarray of two, then the expiry.
    let (&0x92, mut rest) = bytes.split_first()? else {
        return None;
    };
    let expires = rmpv::decode::read_value(&mut rest).ok()?.as_u64()?;
    Some((expires, rest.len() as u64))
}

/// Values the node holds that may not be in the file yet: put by the node, taken out by
/// the writer once a transaction holding the same value committed (or by the driver
/// when the node kept a `store` that committed before). Bounded by the writes queued.
pub(crate) type Unwritten = Arc<Mutex<HashMap<NodeId, Arc<Value>>>>;

fn lock(m: &Mutex<HashMap<NodeId, Arc<Value>>>) -> MutexGuard<'_, HashMap<NodeId, Arc<Value>>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes `key` out of `unwritten` if it still holds `value` (a later value stays, its
/// own write is still coming).
pub(crate) fn written(unwritten: &Unwritten, key: &NodeId, value: &Arc<Value>) {
    let mut map = lock(unwritten);
    if map
        .get(key)
        .is_some_and(|v| Arc::ptr_eq(v, value) || **v == **value)
    {
        map.remove(key);
    }
}

/// The node's [`ValueStore`] with a state folder: values are read from the file, one
/// read transaction per get; the ones not committed yet are served from
/// [`Unwritten`]. Writing is the writer thread's (from the node's events), not this.
#[derive(Clone)]
pub(crate) struct RedbValues {
    db: Arc<Database>,
    unwritten: Unwritten,
}

impl std::fmt::Debug for RedbValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbValues")
            .field("unwritten", &lock(&self.unwritten).len())
            .finish_non_exhaustive()
    }
}

impl RedbValues {
    pub fn new(db: Arc<Database>, unwritten: Unwritten) -> RedbValues {
        RedbValues { db, unwritten }
    }

    fn read(&self, key: &NodeId) -> Result<Option<Value>, Box<redb::Error>> {
        let txn = self.db.begin_read().map_err(boxed)?;
        let table = txn.open_table(COPIES).map_err(boxed)?;
        let row = table.get(&key.0[..]).map_err(boxed)?;
        Ok(row.and_then(|v| decode_copy(v.value()).map(|(_, value)| value)))
    }
}

impl ValueStore for RedbValues {
    fn get(&self, key: &NodeId) -> Option<Arc<Value>> {
        if let Some(v) = lock(&self.unwritten).get(key) {
            return Some(v.clone());
        }
        match self.read(key) {
            Ok(v) => v.map(Arc::new),
            Err(e) => {
                tracing::warn!("cannot read a value from the DHT state: {e}");
                None
            }
        }
    }

    fn put(&mut self, key: NodeId, value: Arc<Value>) {
        lock(&self.unwritten).insert(key, value);
    }

    fn remove(&mut self, key: &NodeId) {
        lock(&self.unwritten).remove(key);
    }
}

/// One change for the writer thread.
#[derive(Debug)]
pub(crate) enum Job {
    /// A peer's `store`: committed, then answered with its token.
    Store {
        token: StoreToken,
        key: NodeId,
        value: Arc<Value>,
        expires_unix_ms: u64,
    },
    /// A copy written without a peer waiting (our own `set`).
    Copy {
        key: NodeId,
        value: Arc<Value>,
        expires_unix_ms: u64,
    },
    /// A copy expired: deleted.
    Remove(NodeId),
    /// A value this node publishes.
    Publish {
        key: NodeId,
        value: Arc<Value>,
    },
    ContactUpsert(Contact),
    ContactRemove(NodeId),
}

/// Most changes written in one transaction.
const MAX_JOBS_PER_COMMIT: usize = 4096;

/// Starts the writer thread: it takes every queued job, writes them in one
/// transaction, commits, and then reports each `store`'s token (`true`: durable) on
/// `done`. It ends when `jobs` is closed and drained, dropping its handle on the
/// database (closed when the node's [`RedbValues`] are dropped too).
pub(crate) fn spawn_writer(
    db: Arc<Database>,
    unwritten: Unwritten,
    done: tokio_mpsc::UnboundedSender<(StoreToken, bool)>,
) -> std::io::Result<(std::sync::mpsc::Sender<Job>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let thread = std::thread::Builder::new()
        .name("rpcudp-dht-redb".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_JOBS_PER_COMMIT {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let ok = match write(&db, &batch) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!("cannot write the DHT state: {e}");
                        false
                    }
                };
                for job in &batch {
                    match job {
                        Job::Store { token, .. } => {
                            let _ = done.send((*token, ok));
                        }
                        Job::Copy { key, value, .. } if ok => written(&unwritten, key, value),
                        _ => {}
                    }
                }
            }
        })?;
    Ok((tx, thread))
}

fn write(db: &Database, jobs: &[Job]) -> Result<(), Box<redb::Error>> {
    let txn = db.begin_write().map_err(boxed)?;
    {
        let mut contacts = txn.open_table(CONTACTS).map_err(boxed)?;
        let mut copies = txn.open_table(COPIES).map_err(boxed)?;
        let mut published = txn.open_table(PUBLISHED).map_err(boxed)?;
        for job in jobs {
            match job {
                Job::Store {
                    key,
                    value,
                    expires_unix_ms,
                    ..
                }
                | Job::Copy {
                    key,
                    value,
                    expires_unix_ms,
                } => {
                    copies
                        .insert(&key.0[..], encode_copy(*expires_unix_ms, value).as_slice())
                        .map_err(boxed)?;
                }
                Job::Remove(key) => {
                    copies.remove(&key.0[..]).map_err(boxed)?;
                }
                Job::Publish { key, value } => {
                    published
                        .insert(&key.0[..], encode(value).as_slice())
                        .map_err(boxed)?;
                }
                Job::ContactUpsert(c) => {
                    contacts
                        .insert(&c.id.0[..], c.addr.to_string().as_str())
                        .map_err(boxed)?;
                }
                Job::ContactRemove(id) => {
                    contacts.remove(&id.0[..]).map_err(boxed)?;
                }
            }
        }
    }
    txn.commit().map_err(boxed)?;
    Ok(())
}

fn boxed(e: impl Into<redb::Error>) -> Box<redb::Error> {
    Box::new(e.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_persisted_expiry_means_the_same_instant_through_the_wall_clock() {
        let now = Instant::now();
        let clock = WallClock::at(now);
        let later = now + Duration::from_secs(3600);
        let ms = clock.to_unix_ms(later);
        let back = clock.to_instant(ms).unwrap();
        assert!(back.max(later) - back.min(later) < Duration::from_millis(2));
        let earlier = now.checked_sub(Duration::from_secs(5)).unwrap_or(now);
        assert!(clock.to_unix_ms(earlier) <= clock.to_unix_ms(now));
    }

    #[test]
    fn a_value_is_served_from_memory_until_its_write_commits_then_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = open(dir.path(), NodeId([1; 20])).unwrap();
        let unwritten = Unwritten::default();
        let mut store = RedbValues::new(loaded.db.clone(), unwritten.clone());
        let (done_tx, _done) = tokio_mpsc::unbounded_channel();
        let (jobs, thread) = spawn_writer(loaded.db, unwritten.clone(), done_tx).unwrap();
        let key = NodeId([2; 20]);
        let value = Arc::new(Value::from("held"));
        store.put(key, value.clone());
        assert_eq!(store.get(&key), Some(value.clone()), "readable at once");
        jobs.send(Job::Copy {
            key,
            value: value.clone(),
            expires_unix_ms: u64::MAX / 2,
        })
        .unwrap();
        drop(jobs);
        thread.join().unwrap();
        assert!(lock(&unwritten).is_empty(), "forgotten once committed");
        assert_eq!(
            store.get(&key).as_deref(),
            Some(&*value),
            "now read from the file"
        );
        store.remove(&key);
        assert!(
            store.get(&key).is_some(),
            "the file's row goes with Job::Remove"
        );
        assert!(store.get(&NodeId([3; 20])).is_none());
    }

    #[test]
    fn a_later_value_stays_unwritten_when_an_earlier_write_of_its_key_commits() {
        let unwritten = Unwritten::default();
        let key = NodeId([2; 20]);
        let (old, new) = (Arc::new(Value::from("old")), Arc::new(Value::from("new")));
        lock(&unwritten).insert(key, new.clone());
        written(&unwritten, &key, &old);
        assert_eq!(lock(&unwritten).get(&key), Some(&new));
        written(&unwritten, &key, &new);
        assert!(lock(&unwritten).is_empty());
    }

    #[test]
    fn a_copy_round_trips_through_its_encoding() {
        let bytes = encode_copy(1_700_000_000_123, &Value::from("v"));
        assert_eq!(
            decode_expiry(&bytes),
            Some((1_700_000_000_123, encode(&Value::from("v")).len() as u64))
        );
        assert_eq!(
            decode_copy(&bytes),
            Some((1_700_000_000_123, Value::from("v")))
        );
        assert_eq!(decode_copy(b"\x92\x01\xc0"), None, "nil is not storable");
    }
}
