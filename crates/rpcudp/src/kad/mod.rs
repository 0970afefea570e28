//! A Kademlia DHT on the RPC [`Node`], interoperable with Python `kademlia` 2.2.3
//! (`shared/spec/wire.md` §3), persisting to redb.
//!
//! The routing table, the lookup state machine and the record store trait are the
//! sans-IO pieces of [`rpcudp_proto::kad`]; this module makes the RPCs, sleeps, and
//! writes to disk:
//! - it serves `stun`, `ping`, `store`, `find_node` and `find_value` exactly as the Python
//!   peer does (every call but `stun` offers the sender as a contact; a newcomer is handed
//!   the values it is now nearer to; `find_node` never returns the asker nor a contact
//!   whose id is the searched key);
//! - [`Dht::bootstrap`], [`Dht::set`] (stores on the k nearest nodes) and [`Dht::get`]
//!   run iterative lookups with alpha RPCs in flight;
//! - with [`DhtConfig::state_dir`], the id, contacts (within a second of being learned)
//!   and values are kept in a redb file; a `store` is answered only once its transaction
//!   committed;
//! - buckets without a lookup for [`DhtConfig::refresh_interval`] are refreshed and
//!   values older than [`DhtConfig::republish_interval`] are stored again.
//!
//! What it does not do (like Python `kademlia`): values never expire and anyone may
//! overwrite a key (no signatures); a known id heard from a new address takes that
//! address. A full store ([`DhtConfig::max_records`]) refuses new keys: such a `store`
//! gets no answer, so the caller counts it as not stored.
//!
//! ```
//! use rpcudp::kad::{Dht, DhtConfig};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = DhtConfig {
//!     rpc_timeout: Duration::from_millis(500),
//!     ..DhtConfig::default()
//! };
//! let first = Dht::start("127.0.0.1:0".parse()?, config.clone()).await?;
//! let second = Dht::start("127.0.0.1:0".parse()?, config).await?;
//! assert_eq!(second.bootstrap(&[first.local_addr()]).await, 1);
//!
//! let stored_on = second.set("greeting", "hello".into()).await?;
//! assert_eq!(stored_on, 1);
//! assert_eq!(first.get("greeting").await?, Some("hello".into()));
//! second.shutdown().await;
//! first.shutdown().await;
//! # Ok(()) }
//! ```

mod lookup;
mod metrics_snapshot;
mod persist;
mod serve;
mod wire;

use crate::rpc::{CallError, CallOptions, Node, NodeConfig};
use futures::stream::{FuturesUnordered, StreamExt};
pub use metrics_snapshot::{BucketSnapshot, DhtSnapshot, LookupKind, LookupOutcome, LookupStats};
use persist::{ContactChange, RedbStore};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use rmpv::Value;
pub use rpcudp_proto::kad::{is_storable, Contact, NodeId};
use rpcudp_proto::kad::{
    InsertOutcome, MemoryStore, Record, RecordStore, RoutingConfig, RoutingTable, StoreError,
};
use sha1::{Digest, Sha1};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How a [`Dht`] node behaves.
#[derive(Debug, Clone)]
pub struct DhtConfig {
    /// Contacts per bucket and nodes a value is stored on (k). Default 20.
    pub k: usize,
    /// RPCs in flight per lookup (alpha). Default 3.
    pub alpha: usize,
    /// How long each RPC waits for its answer. Default 5 s (the Python peer's).
    pub rpc_timeout: Duration,
    /// A bucket with no lookup for this long is refreshed by a lookup of a random id in
    /// it. Default one hour (as Python `kademlia`); `None` turns refreshing off.
    pub refresh_interval: Option<Duration>,
    /// A value stored this long ago is stored again on the k nearest nodes. Default one
    /// hour.
    pub republish_interval: Duration,
    /// Where to keep the id, contacts and values (created if missing); `None` keeps
    /// everything in memory.
    pub state_dir: Option<PathBuf>,
    /// The node's id. `None` uses the one saved in [`state_dir`](Self::state_dir), or a
    /// random one (saved there for next time); `Some` overrides a saved id for this run
    /// without replacing it.
    pub node_id: Option<NodeId>,
    /// Most values this node stores for others. Default 100,000.
    pub max_records: usize,
    /// Seed for random ids (and the RPC node's message ids); `None` draws from the OS.
    pub seed: Option<u64>,
    /// The RPC node's configuration (the dialect must stay rpcudp for Python `kademlia`).
    pub node: NodeConfig,
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            k: 20,
            alpha: 3,
            rpc_timeout: Duration::from_secs(5),
            refresh_interval: Some(Duration::from_secs(3600)),
            republish_interval: Duration::from_secs(3600),
            state_dir: None,
            node_id: None,
            max_records: 100_000,
            seed: None,
            node: NodeConfig::default(),
        }
    }
}

/// Why a DHT operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DhtError {
    /// The UDP socket could not be bound. Remedy: another address or port.
    #[error("cannot bind: {0}")]
    Bind(#[from] std::io::Error),
    /// The state folder could not be created, opened or read. Remedy: check the path,
    /// permissions and free space.
    #[error("state: {0}")]
    State(String),
    /// The value is not one Python `kademlia` stores (int, float, bool, str, bin).
    #[error("values must be int, float, bool, str or bin")]
    NotStorable,
    /// This node knows no other node, so there is nowhere to store or search. Remedy:
    /// [`Dht::bootstrap`] first.
    #[error("no known node: bootstrap first")]
    NoContacts,
}

/// The sha1 digest a string key is stored under (as Python `kademlia`'s `digest`).
///
/// ```
/// let key = rpcudp::kad::key_digest("hello");
/// assert_eq!(key.to_string(), "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
/// ```
pub fn key_digest(key: impl AsRef<[u8]>) -> NodeId {
    let digest: [u8; 20] = Sha1::digest(key.as_ref()).into();
    NodeId::from_bytes(digest)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A Kademlia node: an RPC [`Node`] serving the DHT methods, a routing table, a store.
///
/// Cheap to clone; clones share the node. Start with [`start`](Dht::start), join with
/// [`bootstrap`](Dht::bootstrap) (or [`rejoin`](Dht::rejoin) through saved contacts),
/// then [`set`](Dht::set) / [`get`](Dht::get); [`shutdown`](Dht::shutdown) at the end.
/// See the [module docs](self) for an example.
#[derive(Clone)]
pub struct Dht {
    inner: Arc<Inner>,
}

struct Inner {
    node: Node,
    id: NodeId,
    config: DhtConfig,
    table: Mutex<RoutingTable>,
    store: Arc<Mutex<Box<dyn RecordStore>>>,
    /// Contact changes for the persister task (none without a state folder).
    contacts_tx: Mutex<Option<mpsc::UnboundedSender<ContactChange>>>,
    saved_contacts: Vec<Contact>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    persister: Mutex<Option<JoinHandle<()>>>,
    rng: Mutex<SmallRng>,
    /// Bounds the hand-over tasks running at once: a flood of made-up newcomers must not
    /// spawn tasks without bound (past the bound, newcomers simply get no hand-over).
    handovers: Arc<tokio::sync::Semaphore>,
    /// Lookups by kind and outcome, for [`Dht::metrics_snapshot`].
    lookups: metrics_snapshot::LookupCounters,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the node down with a poisoned lock.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl std::fmt::Debug for Dht {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dht")
            .field("id", &self.inner.id)
            .field("local_addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl Dht {
    /// Binds the node to `addr`, loads the state folder if configured, starts serving
    /// the DHT methods and the refresh/republish task. It knows nobody yet: call
    /// [`bootstrap`](Dht::bootstrap) or [`rejoin`](Dht::rejoin).
    pub async fn start(addr: SocketAddr, config: DhtConfig) -> Result<Dht, DhtError> {
        let mut rng = match config.seed {
            Some(s) => SmallRng::seed_from_u64(s),
            None => SmallRng::from_os_rng(),
        };
        let fresh_id = config.node_id.unwrap_or_else(|| NodeId::random(&mut rng));
        let (id, store, saved_contacts, db): (NodeId, Box<dyn RecordStore>, _, _) = match &config
            .state_dir
        {
            Some(dir) => {
                let dir = dir.clone();
                let loaded = tokio::task::spawn_blocking(move || persist::open(&dir, fresh_id))
                    .await
                    .map_err(|e| DhtError::State(e.to_string()))??;
                let id = config.node_id.unwrap_or(loaded.id);
                let store = RedbStore::new(loaded.db.clone(), loaded.records, config.max_records);
                (id, Box::new(store), loaded.contacts, Some(loaded.db))
            }
            None => (
                fresh_id,
                Box::new(MemoryStore::new(config.max_records)),
                Vec::new(),
                None,
            ),
        };
        let mut node_config = config.node.clone();
        if node_config.seed.is_none() {
            node_config.seed = config.seed;
        }
        // An answer over 3× what its asker sent (find_node, find_value) waits until the
        // asker answers a ping, which every Kademlia peer does (SECURITY.md).
        let limits = &mut node_config.endpoint.limits;
        if limits.validation_probe.is_none() {
            limits.validation_probe = Some(crate::rpc::ValidationProbe {
                method: "ping".into(),
                args: vec![wire::id_value(&id)],
                options: CallOptions {
                    attempt_timeout: config.rpc_timeout,
                    ..CallOptions::default()
                },
            });
        }
        let node = Node::bind_with(addr, node_config).await?;
        let routing = RoutingConfig {
            k: config.k.max(1),
            pending_timeout: config.rpc_timeout * 4,
            ..RoutingConfig::default()
        };
        let (contacts_tx, persister) = match db {
            Some(db) => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), Some(tokio::spawn(persist_contacts(db, rx))))
            }
            None => (None, None),
        };
        let dht = Dht {
            inner: Arc::new(Inner {
                node,
                id,
                table: Mutex::new(RoutingTable::new(id, routing)),
                store: Arc::new(Mutex::new(store)),
                contacts_tx: Mutex::new(contacts_tx),
                saved_contacts,
                tasks: Mutex::new(Vec::new()),
                persister: Mutex::new(persister),
                rng: Mutex::new(rng),
                handovers: Arc::new(tokio::sync::Semaphore::new(MAX_HANDOVERS)),
                lookups: Default::default(),
                config,
            }),
        };
        dht.register_handlers();
        let maintenance = tokio::spawn(maintain(Arc::downgrade(&dht.inner)));
        lock(&dht.inner.tasks).push(maintenance);
        Ok(dht)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The bound address (real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.node.local_addr()
    }

    /// The RPC node underneath (for its counters, or to serve more methods).
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// The contacts in the routing table.
    pub fn contacts(&self) -> Vec<Contact> {
        lock(&self.inner.table).contacts()
    }

    /// The contacts found in the state folder at start (empty without one).
    pub fn saved_contacts(&self) -> &[Contact] {
        &self.inner.saved_contacts
    }

    /// The value this node itself stores under `key`, without asking the network.
    pub fn local_value(&self, key: &NodeId) -> Option<Value> {
        lock(&self.inner.store).get(key).map(|r| r.value)
    }

    /// How many values this node stores.
    pub fn stored_count(&self) -> usize {
        lock(&self.inner.store).len()
    }

    fn call_options(&self) -> CallOptions {
        let mut o = self.inner.node.default_call_options();
        o.attempt_timeout = self.inner.config.rpc_timeout;
        o.retries = 0;
        o
    }

    /// Joins the network: pings every address in `addrs` (as Python `bootstrap` does),
    /// adds those that answer, then looks up its own id to fill the routing table.
    /// Returns how many of `addrs` answered.
    pub async fn bootstrap(&self, addrs: &[SocketAddr]) -> usize {
        let answered = self.introduce(addrs).await;
        if answered > 0 {
            self.lookup(self.inner.id, false).await;
        }
        answered
    }

    /// Pings every address in `addrs` and adds those that answer, without the lookup of
    /// its own id that [`bootstrap`](Dht::bootstrap) does next: enough for a short-lived
    /// node that runs one `set` or `get` and leaves. Returns how many answered.
    pub async fn introduce(&self, addrs: &[SocketAddr]) -> usize {
        let pings: FuturesUnordered<_> = addrs
            .iter()
            .map(|addr| {
                let dht = self.clone();
                let addr = *addr;
                async move {
                    let args = vec![wire::id_value(&dht.inner.id)];
                    let answer = dht
                        .inner
                        .node
                        .call_with(addr, "ping", args, dht.call_options())
                        .await;
                    match answer.ok().as_ref().and_then(wire::parse_id) {
                        Some(id) if id != dht.inner.id => {
                            dht.welcome(Contact::new(id, addr));
                            true
                        }
                        _ => false,
                    }
                }
            })
            .collect();
        pings.filter(|ok| std::future::ready(*ok)).count().await
    }

    /// Joins again through the contacts saved in the state folder (what a restarted
    /// node does when given no bootstrap address). Returns how many answered.
    pub async fn rejoin(&self) -> usize {
        let addrs: Vec<SocketAddr> = self.inner.saved_contacts.iter().map(|c| c.addr).collect();
        self.bootstrap(&addrs).await
    }

    /// Stores `value` under the sha1 of `key` on the k nodes nearest it (and here, if
    /// this node is among them). Returns how many other nodes acknowledged.
    pub async fn set(&self, key: impl AsRef<[u8]>, value: Value) -> Result<usize, DhtError> {
        self.set_digest(key_digest(key), value).await
    }

    /// [`set`](Dht::set) with the 20-byte key itself.
    pub async fn set_digest(&self, key: NodeId, value: Value) -> Result<usize, DhtError> {
        if !is_storable(&value) {
            return Err(DhtError::NotStorable);
        }
        if lock(&self.inner.table).is_empty() {
            return Err(DhtError::NoContacts);
        }
        let (nearest, _) = self.lookup(key, false).await;
        let biggest = nearest.iter().map(|c| c.id.distance(&key)).max();
        if biggest.is_none_or(|far| self.inner.id.distance(&key) < far)
            || nearest.len() < self.inner.config.k
        {
            // Failure to keep a local copy is logged; the remote copies still count.
            if let Err(e) = self.put_local(key, value.clone()).await {
                tracing::warn!("cannot keep the value locally: {e}");
            }
        }
        let stores: FuturesUnordered<_> = nearest
            .into_iter()
            .map(|c| {
                let dht = self.clone();
                let value = value.clone();
                async move { dht.call_store(c, key, value).await }
            })
            .collect();
        Ok(stores.filter(|ok| std::future::ready(*ok)).count().await)
    }

    /// Looks up the value under the sha1 of `key`: here first, then on the network (and,
    /// as Python `kademlia` does, stores what it found on the nearest node asked that
    /// did not have it).
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>, DhtError> {
        self.get_digest(key_digest(key)).await
    }

    /// [`get`](Dht::get) with the 20-byte key itself.
    pub async fn get_digest(&self, key: NodeId) -> Result<Option<Value>, DhtError> {
        if let Some(v) = self.local_value(&key) {
            return Ok(Some(v));
        }
        if lock(&self.inner.table).is_empty() {
            return Err(DhtError::NoContacts);
        }
        let (asked_without_value, found) = self.lookup(key, true).await;
        if let (Some(value), Some(nearest)) = (&found, asked_without_value.first()) {
            // As Python's value lookup: the nearest node that answered without the value
            // gets a copy, so the next lookup ends sooner.
            self.call_store(*nearest, key, value.clone()).await;
        }
        Ok(found)
    }

    /// Stops serving, stops the background tasks and writes the pending contact changes.
    pub async fn shutdown(&self) {
        let tasks: Vec<JoinHandle<()>> = lock(&self.inner.tasks).drain(..).collect();
        for t in tasks {
            t.abort();
            // Awaited so the task (and what it holds) is gone when this returns.
            let _ = t.await;
        }
        self.inner.node.shutdown().await;
        // Closing the channel lets the persister write what is queued, then stop.
        lock(&self.inner.contacts_tx).take();
        let persister = lock(&self.inner.persister).take();
        if let Some(p) = persister {
            let _ = p.await;
        }
    }

    async fn put_local(&self, key: NodeId, value: Value) -> Result<(), StoreError> {
        let store = self.inner.store.clone();
        let record = Record {
            value,
            stored_at: unix_now(),
        };
        // A redb commit waits for the disk: keep it off the async workers.
        tokio::task::spawn_blocking(move || lock(&store).put(key, record))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    async fn call_store(&self, to: Contact, key: NodeId, value: Value) -> bool {
        let args = vec![wire::id_value(&self.inner.id), wire::id_value(&key), value];
        let answer = self
            .inner
            .node
            .call_with(to.addr, "store", args, self.call_options())
            .await;
        self.on_answer(to, answer.is_ok());
        matches!(answer, Ok(Value::Boolean(true)))
    }

    /// After an RPC to a contact: keep it if it answered, drop it if not (as Python's
    /// `handle_call_response`).
    fn on_answer(&self, contact: Contact, answered: bool) {
        if answered {
            self.welcome(contact);
        } else {
            let removed = lock(&self.inner.table).remove(&contact.id);
            if let Some(promoted) = removed {
                self.persist(ContactChange::Remove(contact.id));
                if let Some(p) = promoted {
                    self.persist(ContactChange::Upsert(p));
                }
            }
        }
    }

    fn persist(&self, change: ContactChange) {
        if let Some(tx) = lock(&self.inner.contacts_tx).as_ref() {
            let _ = tx.send(change);
        }
    }

    /// Offers a contact heard from: a newcomer gets the values it is now nearer to, a
    /// full bucket gets its oldest contact pinged.
    fn welcome(&self, contact: Contact) {
        if contact.id == self.inner.id {
            return;
        }
        let (known, handover) = {
            let table = lock(&self.inner.table);
            match table.find(&contact.id) {
                Some(c) => (Some(c), Vec::new()),
                None => {
                    let records = lock(&self.inner.store).records();
                    let handover: Vec<(NodeId, Value)> = records
                        .into_iter()
                        .filter(|(key, _)| table.should_replicate_to(&contact.id, key))
                        .map(|(key, r)| (key, r.value))
                        .collect();
                    (None, handover)
                }
            }
        };
        // Background RPCs hold the node and a weak handle, not the Dht: a shut-down node
        // must not stay alive (with its state file open) until they time out.
        let permit = if handover.is_empty() {
            None
        } else {
            self.inner.handovers.clone().try_acquire_owned().ok()
        };
        if let Some(permit) = permit {
            let (node, me, options) = (self.inner.node.clone(), self.inner.id, self.call_options());
            tokio::spawn(async move {
                let _permit = permit;
                for (key, value) in handover {
                    let args = vec![wire::id_value(&me), wire::id_value(&key), value];
                    if let Err(CallError::ShutDown) = node
                        .call_with(contact.addr, "store", args, options.clone())
                        .await
                    {
                        return;
                    }
                }
            });
        }
        let now = Instant::now();
        let outcome = lock(&self.inner.table).insert(contact, now);
        match outcome {
            InsertOutcome::Inserted => self.persist(ContactChange::Upsert(contact)),
            InsertOutcome::Updated if known.is_some_and(|k| k.addr != contact.addr) => {
                self.persist(ContactChange::Upsert(contact))
            }
            InsertOutcome::PingOldest { oldest } => {
                let (node, options) = (self.inner.node.clone(), self.call_options());
                let args = vec![wire::id_value(&self.inner.id)];
                let weak = Arc::downgrade(&self.inner);
                tokio::spawn(async move {
                    let answer = node.call_with(oldest.addr, "ping", args, options).await;
                    let alive = answer.ok().as_ref().and_then(wire::parse_id) == Some(oldest.id);
                    let Some(inner) = weak.upgrade() else { return };
                    let dht = Dht { inner };
                    let promoted = lock(&dht.inner.table).on_ping_result(&oldest.id, alive);
                    if !alive {
                        dht.persist(ContactChange::Remove(oldest.id));
                    }
                    if let Some(c) = promoted {
                        dht.persist(ContactChange::Upsert(c));
                    }
                });
            }
            _ => {}
        }
    }

    /// One round of maintenance: refresh stale buckets, republish old values.
    async fn maintain_once(&self) {
        let Some(interval) = self.inner.config.refresh_interval else {
            return;
        };
        let now = Instant::now();
        let stale = lock(&self.inner.table).buckets_to_refresh(now, interval);
        for bucket in stale {
            let target = {
                let mut rng = lock(&self.inner.rng);
                self.inner.id.random_at_prefix(159 - bucket, &mut *rng)
            };
            self.lookup(target, false).await;
        }
        let cutoff = unix_now().saturating_sub(self.inner.config.republish_interval.as_secs());
        let old: Vec<(NodeId, Record)> = lock(&self.inner.store)
            .records()
            .into_iter()
            .filter(|(_, r)| r.stored_at <= cutoff)
            .collect();
        for (key, record) in old {
            if lock(&self.inner.table).is_empty() {
                break;
            }
            let _ = self.set_digest(key, record.value.clone()).await;
            // Stamped as fresh so it is not republished again at once.
            let _ = self.put_local(key, record.value).await;
        }
    }
}

/// Most hand-over tasks (values sent to a newcomer) running at once.
const MAX_HANDOVERS: usize = 64;

/// How long contact changes are gathered before one write (well within the promised
/// second).
const CONTACT_BATCH_MS: u64 = 100;

async fn persist_contacts(db: Arc<redb::Database>, mut rx: mpsc::UnboundedReceiver<ContactChange>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + Duration::from_millis(CONTACT_BATCH_MS);
        while let Ok(Some(change)) = tokio::time::timeout_at(until, rx.recv()).await {
            batch.push(change);
            if batch.len() >= 10_000 {
                break;
            }
        }
        let db = db.clone();
        let written =
            tokio::task::spawn_blocking(move || persist::write_contacts(&db, &batch)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("cannot save contacts: {e}"),
            Err(e) => tracing::warn!("cannot save contacts: {e}"),
        }
    }
}

async fn maintain(inner: std::sync::Weak<Inner>) {
    let period = match inner.upgrade().and_then(|i| i.config.refresh_interval) {
        // Checking a tenth as often as the interval bounds how late a refresh can be.
        Some(p) => (p / 10).max(Duration::from_millis(100)),
        None => return,
    };
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else { return };
        Dht { inner }.maintain_once().await;
    }
}
