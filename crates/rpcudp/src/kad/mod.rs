//! A Kademlia DHT on UDP, interoperable with Python `kademlia` 2.2.3
//! (`docs/wire.md` §3), persisting to redb: [`Dht`].
//!
//! Owns: running the sans-IO node [`rpcudp_proto::kad::Node`] on a socket (on the generic
//! [`Driver`], the same loop as the RPC node), turning its
//! events into answers for the callers of [`Dht::bootstrap`], [`Dht::set`] and
//! [`Dht::get`], and redb persistence (`persist`). Does not own any protocol decision:
//! serving the five RPCs, lookups, the hand-over to newcomers, refresh, republish,
//! replication, value lifetimes, RTOs per contact and eviction are the node's (see its
//! docs), and the getters ([`Dht::contacts`], [`Dht::stats`], [`Dht::local_value`], ...)
//! read the node itself under the lock the driver takes per step, nothing mirrored. No
//! clock is read here but tokio's (so tests may pause time); wall-clock time is read
//! only where persisted expiries are converted.
//!
//! - [`Dht::bootstrap`] pings the given addresses and looks up its own id;
//!   [`Dht::set`] stores on the k nodes nearest the key (and here, if this node is among
//!   them) and republishes while the node runs; [`Dht::get`] looks a key up.
//! - Values live [`NodeConfig::value_ttl`] (default one week, as Python `kademlia`); an
//!   expired value is no longer served, and is deleted from the state file too.
//! - With [`DhtConfig::state_dir`], the id, contacts (within a second of being learned),
//!   held copies (with their expiry) and published values are kept in a redb file; a
//!   `store` is answered only once its transaction committed, so a kill -9 after the
//!   acknowledgement loses nothing. A restart reloads them; [`Dht::rejoin`] joins again
//!   through the saved contacts. The held copies' values stay in the file: memory holds
//!   only their index (key, expiry, size, source), and a value is read from the file
//!   when it is served (`find_value`, hand-over, replication, [`Dht::local_value`]), so
//!   memory does not grow with the state's size. (Published values, this node's own
//!   `set`s, are kept in memory.)
//! - Two nodes must not share an id (the same [`DhtConfig::seed`] gives the same id): a
//!   node that sees its own id logs it, counts it ([`DhtStats::node`]) and says so in
//!   [`DhtError::SameId`].
//!
//! Plain values are last-writer-wins, as in Python `kademlia`: anyone may overwrite a
//! key. Records nobody can forge ([`record`]: Ed25519-signed, or named by their hash) go
//! through [`Dht::put_signed`] / [`Dht::get_signed`] and [`Dht::put_immutable`] /
//! [`Dht::get_immutable`]; the node refuses forged or stale ones (see `signed`).
//!
//! A full store ([`NodeConfig::max_records`], [`NodeConfig::max_store_bytes`]) gives up
//! the records it is least responsible for (the farthest keys of the source subnet
//! holding the most bytes) to take a new key. A `store` it refuses (a value over
//! [`NodeConfig::max_value_bytes`], a subnet over its share, nothing it may evict) gets
//! no answer, so the caller counts it as not stored.
//!
//! ```
//! use rpcudp::kad::{Dht, DhtConfig, NodeConfig};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = NodeConfig { rpc_timeout: Duration::from_millis(500), ..NodeConfig::default() };
//! let config = DhtConfig { node, ..DhtConfig::default() };
//! let first = Dht::start("127.0.0.1:0".parse()?, config.clone()).await?;
//! let second = Dht::start("127.0.0.1:0".parse()?, config).await?;
//! assert_eq!(second.bootstrap(&[first.local_addr()]).await?, 1);
//!
//! let stored_on = second.set("greeting", "hello".into()).await?;
//! assert_eq!(stored_on, 1);
//! assert_eq!(first.get("greeting").await?, Some("hello".into()));
//! second.shutdown().await;
//! first.shutdown().await;
//! # Ok(()) }
//! ```

mod metrics_snapshot;
mod persist;
mod signed;

use crate::driver::{Application, Driver, DriverHandle, DriverStats, Flow};
use metrics_snapshot::LookupCounters;
pub use metrics_snapshot::{BucketSnapshot, DhtSnapshot, LookupKind, LookupOutcome, LookupStats};
use persist::{Job, RedbValues, WallClock};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rmpv::Value;
use rpcudp_proto::kad::{
    self as core, CommandError, Event, QueryId, QueryOutcome, StoreToken, ValueStore,
};
pub use rpcudp_proto::kad::{
    is_storable, record, Contact, NodeConfig, NodeId, NodeSetup, NodeStats,
};
use rpcudp_proto::{Protocol, Transmit};
use sha1::{Digest, Sha1};
pub use signed::{PutError, PutOutcome};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How a [`Dht`] node behaves: the sans-IO node's [`NodeConfig`] (embedded, not
/// copied: its defaults are the ones `rpcudp dht run` and the simulator run), plus what
/// only the driver knows. Plain fields with [`Default`]; change what you need with
/// struct update syntax.
///
/// ```
/// use rpcudp::kad::{DhtConfig, NodeConfig};
/// use std::time::Duration;
///
/// let config = DhtConfig {
///     node: NodeConfig { rpc_timeout: Duration::from_millis(500), ..NodeConfig::default() },
///     seed: Some(7),
///     ..DhtConfig::default()
/// };
/// assert!(config.node.verify_callers); // the one default, wherever the node runs
/// ```
#[derive(Debug, Clone)]
pub struct DhtConfig {
    /// The Kademlia node's configuration: k, alpha, the RPC timeout, refresh, republish
    /// and replication intervals, the value lifetime, the store's caps, caller
    /// verification, and the RPC endpoint's limits (its dialect must stay rpcudp for
    /// Python `kademlia`). Started through [`NodeSetup::new`], which decides the
    /// settings that follow from others; `persistence` is always on here (a `store` is
    /// acknowledged once it is durable, in the state file or in memory).
    pub node: NodeConfig,
    /// Where to keep the id, contacts and values (created if missing); `None` keeps
    /// everything in memory.
    pub state_dir: Option<PathBuf>,
    /// The node's id. `None` uses the one saved in [`state_dir`](Self::state_dir), or the
    /// one drawn from [`seed`](Self::seed) (saved there for next time); `Some` overrides
    /// a saved id for this run without replacing it.
    pub node_id: Option<NodeId>,
    /// The node's one seed: its id (see [`NodeSetup`]) and all its randomness (message
    /// ids, jitter, refresh targets); `None` draws one from the OS. Two nodes given the
    /// same seed get the same id, which Kademlia cannot tell apart: give each node its
    /// own seed.
    pub seed: Option<u64>,
    /// How many commands (`bootstrap`, `set`, `get`) may wait for the driver before a
    /// caller waits. Default 1024.
    pub call_queue: usize,
    /// Receive buffer size; a datagram is read whole up to this size. Default 65536,
    /// the largest UDP payload.
    pub recv_buffer: usize,
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            node: NodeConfig::default(),
            state_dir: None,
            node_id: None,
            seed: None,
            call_queue: 1024,
            recv_buffer: 65_536,
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
    /// The value is larger than [`NodeConfig::max_value_bytes`] (its size as charged:
    /// the bytes of a str or bin plus 5, 9 for a number or bool). Remedy: store less
    /// per key, or raise the limit on every node.
    #[error("value of {size} bytes exceeds the limit of {limit}")]
    ValueTooLarge {
        /// The value's size as charged.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// This node knows no other node, so there is nowhere to store or search. Remedy:
    /// [`Dht::bootstrap`] first.
    #[error("no known node: bootstrap first")]
    NoContacts,
    /// This node knows no other node, and `contacts` nodes answered or called with this
    /// node's own id. Remedy: give each node its own [`DhtConfig::seed`] (or its own
    /// state folder).
    #[error(
        "no known node: {contacts} nodes had this node's own id (two nodes given the same seed or state?)"
    )]
    SameId {
        /// Nodes seen with our own id.
        contacts: u64,
    },
    /// The node was shut down ([`Dht::shutdown`]).
    #[error("the DHT node is shut down")]
    ShutDown,
    /// The node refused the command for a reason not listed above (one a later version
    /// of the core added).
    #[error("refused: {0}")]
    Refused(CommandError),
}

impl From<CommandError> for DhtError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::ShutDown => DhtError::ShutDown,
            CommandError::NotStorable => DhtError::NotStorable,
            CommandError::NoContacts { own_id_contacts: 0 } => DhtError::NoContacts,
            CommandError::NoContacts { own_id_contacts } => DhtError::SameId {
                contacts: own_id_contacts,
            },
            CommandError::ValueTooLarge { size, limit } => DhtError::ValueTooLarge { size, limit },
            other => DhtError::Refused(other),
        }
    }
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

/// What [`Dht::set`] and [`Dht::get`] take as a key: a string or bytes, stored under
/// their sha1 ([`key_digest`], as Python `kademlia` does), or a [`NodeId`], the 20-byte
/// key itself.
///
/// ```
/// use rpcudp::kad::{key_digest, DhtKey, NodeId};
/// assert_eq!("hello".to_key(), key_digest("hello"));
/// assert_eq!(b"hello".as_slice().to_key(), key_digest("hello"));
/// let id = NodeId::from_bytes([7; 20]);
/// assert_eq!(id.to_key(), id); // taken as it is, not hashed
/// ```
pub trait DhtKey {
    /// The 20-byte key.
    fn to_key(&self) -> NodeId;
}

impl DhtKey for NodeId {
    fn to_key(&self) -> NodeId {
        *self
    }
}

impl DhtKey for str {
    fn to_key(&self) -> NodeId {
        key_digest(self)
    }
}

impl DhtKey for String {
    fn to_key(&self) -> NodeId {
        key_digest(self)
    }
}

impl DhtKey for [u8] {
    fn to_key(&self) -> NodeId {
        key_digest(self)
    }
}

impl DhtKey for Vec<u8> {
    fn to_key(&self) -> NodeId {
        key_digest(self)
    }
}

impl<const N: usize> DhtKey for [u8; N] {
    fn to_key(&self) -> NodeId {
        key_digest(self)
    }
}

impl<T: DhtKey + ?Sized> DhtKey for &T {
    fn to_key(&self) -> NodeId {
        (**self).to_key()
    }
}

/// A node's counters, read from the node when asked ([`Dht::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DhtStats {
    /// The Kademlia node's: bad requests, own-id contacts, refused and failed stores,
    /// expired values, evictions, hand-overs.
    pub node: NodeStats,
    /// The RPC layer's, in the shape of [`crate::rpc::Endpoint::stats`]: the endpoint's
    /// counters (datagrams in and out, malformed, timeouts) in `core`, the socket's send
    /// and receive errors, calls in flight.
    pub rpc: crate::rpc::EndpointStats,
}

/// A Kademlia node on a UDP socket. See the [module docs](self).
///
/// Cheap to clone; clones share the node. Start with [`start`](Dht::start), join with
/// [`bootstrap`](Dht::bootstrap) (or [`rejoin`](Dht::rejoin) through saved contacts),
/// then [`set`](Dht::set) / [`get`](Dht::get); [`shutdown`](Dht::shutdown) at the end,
/// after which every command fails with [`DhtError::ShutDown`].
#[derive(Clone)]
pub struct Dht {
    inner: Arc<Inner>,
}

struct Inner {
    id: NodeId,
    local_addr: SocketAddr,
    handle: DriverHandle<Command>,
    /// The node itself, which the driver runs and the getters read (nothing mirrored).
    core: Shared,
    /// With a state folder, where [`Dht::local_value`] reads values outside the lock
    /// (until shutdown, which closes the file).
    disk: Mutex<Option<RedbValues>>,
    saved_contacts: Vec<Contact>,
    task: tokio::sync::Mutex<Option<JoinHandle<App>>>,
    /// Lookups by kind and outcome, for [`Dht::metrics_snapshot`].
    lookups: Arc<LookupCounters>,
    /// The driver's clock paired with the wall clock at start (for the snapshot's ages).
    clock: WallClock,
    value_ttl: Duration,
}

/// The sans-IO node and the driver's socket counters, shared by the driver, which
/// locks it for each protocol step, and the handle's getters, which read it under the
/// same lock (as quinn's handles read their connection's state). Every getter costs
/// O(1), or O(routing table) for the contacts, never O(stored records).
struct Core {
    node: core::Node,
    io: DriverStats,
}

/// The driver's [`Protocol`]: the shared [`Core`], locked per call.
#[derive(Clone)]
struct Shared(Arc<Mutex<Core>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Core> {
        lock(&self.0)
    }
}

impl Protocol for Shared {
    type Event = Event;

    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: Option<IpAddr>,
        datagram: &[u8],
    ) {
        self.lock().node.handle_datagram(now, from, local, datagram)
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.lock().node.handle_timeout(now)
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.lock().node.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.lock().node.poll_event()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.lock().node.poll_timeout()
    }
}

/// The driver's clock (tokio's, so that paused time in tests pauses it too).
fn driver_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the node down with a poisoned lock.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl std::fmt::Debug for Dht {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dht")
            .field("id", &self.inner.id)
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

enum Command {
    Join {
        addrs: Vec<SocketAddr>,
        lookup: bool,
        reply: oneshot::Sender<Result<usize, DhtError>>,
    },
    Set {
        key: NodeId,
        value: Value,
        reply: oneshot::Sender<Result<usize, DhtError>>,
    },
    Get {
        key: NodeId,
        reply: oneshot::Sender<Result<Option<Value>, DhtError>>,
    },
    /// A get of a signed or immutable record (`signed`): the best record's wire value.
    GetRecord {
        pick: core::record::RecordPick,
        reply: oneshot::Sender<Result<Option<Value>, DhtError>>,
    },
    Shutdown,
}

enum Reply {
    Join(oneshot::Sender<Result<usize, DhtError>>),
    Set(oneshot::Sender<Result<usize, DhtError>>),
    Get(oneshot::Sender<Result<Option<Value>, DhtError>>),
}

/// The driver's application: answers callers from the node's events, hands durable
/// work to the writer thread.
struct App {
    replies: HashMap<QueryId, Reply>,
    writer: Option<Writer>,
    own_id_warned: bool,
    lookups: Arc<LookupCounters>,
}

struct Writer {
    jobs: std::sync::mpsc::Sender<Job>,
    done: mpsc::UnboundedReceiver<(StoreToken, bool)>,
    thread: Option<std::thread::JoinHandle<()>>,
    clock: WallClock,
    /// Stores handed to the writer and not yet durable, with their key and value.
    pending: HashMap<StoreToken, (NodeId, Arc<Value>)>,
    /// The node's values not in the file yet (see [`persist::Unwritten`]).
    unwritten: persist::Unwritten,
}

impl App {
    fn job(&mut self, job: Job) {
        if let Some(w) = &self.writer {
            if w.jobs.send(job).is_err() {
                tracing::warn!("the DHT state writer stopped; changes are no longer saved");
            }
        }
    }
}

impl Application<Shared> for App {
    type Command = Command;

    fn on_event(&mut self, shared: &mut Shared, now: Instant, event: Event) {
        let mut core = shared.lock();
        let node = &mut core.node;
        match event {
            Event::QueryFinished { id, result, stats } => {
                let took = stats.finished.saturating_duration_since(stats.started);
                match &result {
                    Ok(QueryOutcome::Get { value }) => {
                        self.lookups
                            .record(true, stats.hops as usize, value.is_some(), took)
                    }
                    // A bootstrap that ended at its pings (a fresh node started with no
                    // address, or none answered) and an introduce looked nothing up: not
                    // a failed lookup, not a lookup at all.
                    Ok(QueryOutcome::Bootstrap { contacts, .. }) if stats.lookup => {
                        self.lookups.record(false, contacts.len(), false, took)
                    }
                    Ok(QueryOutcome::Bootstrap { .. }) => {}
                    Ok(QueryOutcome::Set {
                        acknowledged,
                        stored_locally,
                    }) => self.lookups.record(
                        false,
                        acknowledged + usize::from(*stored_locally),
                        false,
                        took,
                    ),
                    Err(_) => {}
                }
                let Some(reply) = self.replies.remove(&id) else {
                    return;
                };
                let result = result.map_err(DhtError::from);
                match reply {
                    Reply::Join(tx) => {
                        let _ = tx.send(result.map(|o| match o {
                            QueryOutcome::Bootstrap { answered, .. } => answered,
                            _ => 0,
                        }));
                    }
                    Reply::Set(tx) => {
                        let _ = tx.send(result.map(|o| match o {
                            QueryOutcome::Set { acknowledged, .. } => acknowledged,
                            _ => 0,
                        }));
                    }
                    Reply::Get(tx) => {
                        let _ = tx.send(result.map(|o| match o {
                            QueryOutcome::Get { value } => value,
                            _ => None,
                        }));
                    }
                }
            }
            Event::StoreRequested {
                token,
                key,
                value,
                expires_at,
            } => match &mut self.writer {
                Some(w) => {
                    let expires_unix_ms = w.clock.to_unix_ms(expires_at);
                    w.pending.insert(token, (key, value.clone()));
                    let job = Job::Store {
                        token,
                        key,
                        value,
                        expires_unix_ms,
                    };
                    if w.jobs.send(job).is_err() {
                        w.pending.remove(&token);
                        node.store_failed(now, token);
                    }
                }
                None => {
                    // In memory: kept as soon as the node keeps it.
                    node.store_durable(now, token);
                }
            },
            Event::RecordStored {
                key,
                value,
                expires_at,
            } => {
                if let Some(w) = &self.writer {
                    let expires_unix_ms = w.clock.to_unix_ms(expires_at);
                    self.job(Job::Copy {
                        key,
                        value,
                        expires_unix_ms,
                    });
                }
            }
            Event::RecordRemoved { key } => self.job(Job::Remove(key)),
            Event::Published { key, value } => self.job(Job::Publish { key, value }),
            Event::ContactAdded(c) => self.job(Job::ContactUpsert(c)),
            Event::ContactRemoved(id) => self.job(Job::ContactRemove(id)),
            Event::OwnIdSeen { addr } => {
                // Once loudly, then quietly: a peer with our id answers every lookup.
                if !self.own_id_warned {
                    self.own_id_warned = true;
                    tracing::warn!(
                        "the node at {addr} has this node's own id {}: two nodes were given \
                         the same seed or state; it is not used as a contact",
                        node.id()
                    );
                } else {
                    tracing::debug!("the node at {addr} has this node's own id");
                }
            }
        }
    }

    fn on_command(&mut self, shared: &mut Shared, now: Instant, command: Command) -> Flow {
        let mut core = shared.lock();
        let node = &mut core.node;
        match command {
            Command::Join {
                addrs,
                lookup,
                reply,
            } => {
                let started = if lookup {
                    node.bootstrap(now, &addrs)
                } else {
                    node.introduce(now, &addrs)
                };
                match started {
                    Ok(q) => {
                        self.replies.insert(q, Reply::Join(reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Command::Set { key, value, reply } => match node.set(now, key, value) {
                Ok(q) => {
                    self.replies.insert(q, Reply::Set(reply));
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::Get { key, reply } => self.reply_get(node.get(now, key), reply),
            Command::GetRecord { pick, reply } => self.reply_get(node.get_record(now, pick), reply),
            Command::Shutdown => {
                node.stop(now);
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    fn poll_work(&mut self, cx: &mut Context<'_>, shared: &mut Shared, now: Instant) -> Poll<Flow> {
        let Some(w) = &mut self.writer else {
            return Poll::Pending;
        };
        let mut core = shared.lock();
        let node = &mut core.node;
        let mut any = false;
        // Bounded per round, so a burst of commits cannot starve the socket.
        for _ in 0..256 {
            match w.done.poll_recv(cx) {
                Poll::Ready(Some((token, ok))) => {
                    any = true;
                    let kept = w.pending.remove(&token);
                    if ok {
                        node.store_durable(now, token);
                        if let Some((key, value)) = kept {
                            // Committed before the node kept it: nothing left to write.
                            persist::written(&w.unwritten, &key, &value);
                        }
                    } else {
                        node.store_failed(now, token);
                    }
                }
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        if any {
            Poll::Ready(Flow::Continue)
        } else {
            Poll::Pending
        }
    }

    fn on_round(&mut self, shared: &Shared, io: &DriverStats) {
        shared.lock().io = *io;
    }

    fn on_stop(&mut self, shared: &mut Shared, now: Instant) {
        shared.lock().node.stop(now);
    }
}

impl Dht {
    /// Binds the node to `addr`, loads the state folder if configured and starts
    /// serving the DHT methods. It knows nobody yet: call [`bootstrap`](Dht::bootstrap)
    /// or [`rejoin`](Dht::rejoin).
    pub async fn start(addr: SocketAddr, config: DhtConfig) -> Result<Dht, DhtError> {
        let seed = config
            .seed
            .unwrap_or_else(|| SmallRng::from_os_rng().random());
        let setup = NodeSetup::new(
            NodeConfig {
                persistence: true,
                ..config.node.clone()
            },
            seed,
        );
        let fresh_id = config.node_id.unwrap_or(setup.id);
        let loaded = match &config.state_dir {
            Some(dir) => {
                let dir = dir.clone();
                let loaded = tokio::task::spawn_blocking(move || persist::open(&dir, fresh_id))
                    .await
                    .map_err(|e| DhtError::State(e.to_string()))??;
                Some(loaded)
            }
            None => None,
        };
        let id = match (&config.node_id, &loaded) {
            (Some(id), _) => *id,
            (None, Some(l)) => l.id,
            (None, None) => fresh_id,
        };
        let (node_config, node_seed) = (setup.config, setup.seed);
        let unwritten = persist::Unwritten::default();
        let disk = loaded
            .as_ref()
            .map(|l| RedbValues::new(l.db.clone(), unwritten.clone()));
        let mut node = match &disk {
            Some(d) => {
                core::Node::with_value_store(node_config, id, node_seed, Box::new(d.clone()))
            }
            None => core::Node::new(node_config, id, node_seed),
        };
        let now = driver_now();
        let lookups = Arc::new(LookupCounters::default());
        let wall = WallClock::at(now);
        let mut saved_contacts = Vec::new();
        let writer = match loaded {
            Some(loaded) => {
                let clock = wall;
                // Only the index: the values stay in the file (the node skips the
                // expired ones).
                for (key, expires_unix_ms, bytes) in loaded.copies {
                    if let Some(expires_at) = clock.to_instant(expires_unix_ms) {
                        node.load_record_index(now, key, expires_at, bytes as usize);
                    }
                }
                for (key, value) in loaded.published {
                    node.load_publication(now, key, value);
                }
                saved_contacts = loaded.contacts;
                let (done_tx, done) = mpsc::unbounded_channel();
                let (jobs, thread) = persist::spawn_writer(loaded.db, unwritten.clone(), done_tx)?;
                Some(Writer {
                    jobs,
                    done,
                    thread: Some(thread),
                    clock,
                    pending: HashMap::new(),
                    unwritten,
                })
            }
            None => None,
        };
        let socket = crate::udp::Socket::bind(addr).await?;
        let local_addr = socket.local_addr()?;
        let app = App {
            replies: HashMap::new(),
            writer,
            own_id_warned: false,
            lookups: lookups.clone(),
        };
        let core = Shared(Arc::new(Mutex::new(Core {
            node,
            io: DriverStats::default(),
        })));
        let (driver, handle) = Driver::with_recv_buffer(
            socket,
            core.clone(),
            app,
            config.call_queue,
            config.recv_buffer,
        );
        let task = tokio::spawn(driver.run());
        Ok(Dht {
            inner: Arc::new(Inner {
                id,
                local_addr,
                handle,
                core,
                disk: Mutex::new(disk),
                saved_contacts,
                task: tokio::sync::Mutex::new(Some(task)),
                lookups,
                clock: wall,
                value_ttl: config.node.value_ttl,
            }),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The bound address (real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The contacts in the routing table.
    pub fn contacts(&self) -> Vec<Contact> {
        self.inner.core.lock().node.contacts()
    }

    /// The contacts found in the state folder at start (empty without one).
    pub fn saved_contacts(&self) -> &[Contact] {
        &self.inner.saved_contacts
    }

    /// The value this node itself holds under `key`, without asking the network.
    pub fn local_value(&self, key: &NodeId) -> Option<Value> {
        let now = driver_now();
        let disk = {
            let core = self.inner.core.lock();
            let disk = lock(&self.inner.disk).clone();
            match disk {
                // In memory: the node's own copy.
                None => return core.node.local_value(key, now).map(|v| (*v).clone()),
                Some(_) if !core.node.holds(key, now) => return None,
                Some(d) => d,
            }
        };
        // Read outside the lock, which the driver takes for every datagram.
        disk.get(key).map(|v| (*v).clone())
    }

    /// How many values this node holds.
    pub fn stored_count(&self) -> usize {
        self.inner.core.lock().node.stored_count()
    }

    /// The node's counters (own-id contacts, evictions, datagrams, ...), read from the
    /// node itself.
    pub fn stats(&self) -> DhtStats {
        let core = self.inner.core.lock();
        let (node, ep) = (&core.node, core.node.endpoint());
        DhtStats {
            node: node.stats().clone(),
            rpc: crate::rpc::EndpointStats {
                core: ep.stats().clone(),
                send_errors: core.io.send_errors,
                recv_errors: core.io.recv_errors,
                // Requests with an unknown method or wrong arguments: not answered, as
                // a Python handler that raised.
                handler_failures: node.stats().bad_requests,
                calls_outstanding: ep.outstanding_calls(),
                dedup_entries: ep.dedup_entries(),
                ..crate::rpc::EndpointStats::default()
            },
        }
    }

    async fn command<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, DhtError>>) -> Command,
    ) -> Result<T, DhtError> {
        let (tx, rx) = oneshot::channel();
        if self.inner.handle.send(make(tx)).await.is_err() {
            return Err(DhtError::ShutDown);
        }
        rx.await.unwrap_or(Err(DhtError::ShutDown))
    }

    /// Joins the network: pings every address in `addrs` (as Python `bootstrap` does),
    /// adds those that answer, then looks up its own id to fill the routing table.
    /// Returns how many of `addrs` answered (none answering is `Ok(0)`); fails with
    /// [`DhtError::ShutDown`] after [`shutdown`](Dht::shutdown).
    pub async fn bootstrap(&self, addrs: &[SocketAddr]) -> Result<usize, DhtError> {
        let addrs = addrs.to_vec();
        self.command(|reply| Command::Join {
            addrs,
            lookup: true,
            reply,
        })
        .await
    }

    /// Pings every address in `addrs` and adds those that answer, without the lookup of
    /// its own id that [`bootstrap`](Dht::bootstrap) does next: enough for a short-lived
    /// node that runs one `set` or `get` and leaves. Returns how many answered, as
    /// [`bootstrap`](Dht::bootstrap) does.
    pub async fn introduce(&self, addrs: &[SocketAddr]) -> Result<usize, DhtError> {
        let addrs = addrs.to_vec();
        self.command(|reply| Command::Join {
            addrs,
            lookup: false,
            reply,
        })
        .await
    }

    /// Joins again through the contacts saved in the state folder (what a restarted
    /// node does when given no bootstrap address). Returns how many answered, as
    /// [`bootstrap`](Dht::bootstrap) does.
    pub async fn rejoin(&self) -> Result<usize, DhtError> {
        let addrs: Vec<SocketAddr> = self.inner.saved_contacts.iter().map(|c| c.addr).collect();
        self.bootstrap(&addrs).await
    }

    /// Stores `value` under `key` (a string or bytes: under its sha1; a [`NodeId`]: as
    /// it is; see [`DhtKey`]) on the k nodes nearest it (and here, if this node is among
    /// them); this node republishes it while it runs. Returns how many other nodes
    /// acknowledged. Fails with [`DhtError::NotStorable`] or
    /// [`DhtError::ValueTooLarge`] for a value the node would not store.
    pub async fn set(&self, key: impl DhtKey, value: Value) -> Result<usize, DhtError> {
        let key = key.to_key();
        self.command(|reply| Command::Set { key, value, reply })
            .await
    }

    /// Looks up the value under `key` (as [`set`](Dht::set) takes it): here first, then
    /// on the network (and, as Python `kademlia` does, stores what it found on the
    /// nearest node asked that did not have it).
    pub async fn get(&self, key: impl DhtKey) -> Result<Option<Value>, DhtError> {
        let key = key.to_key();
        self.command(|reply| Command::Get { key, reply }).await
    }

    /// Stops serving: pending commands fail with [`DhtError::ShutDown`], as every later
    /// one does; what is queued for the state file is written and the file closed
    /// before this returns.
    pub async fn shutdown(&self) {
        let _ = self.inner.handle.send_urgent(Command::Shutdown);
        let mut task = self.inner.task.lock().await;
        let Some(t) = task.take() else { return };
        let Ok(mut app) = t.await else { return };
        // The file closes once nobody holds it: the state can be opened again.
        *lock(&self.inner.disk) = None;
        drop(self.inner.core.lock().node.take_value_store());
        if let Some(mut w) = app.writer.take() {
            drop(w.jobs);
            if let Some(thread) = w.thread.take() {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
        }
    }
}
