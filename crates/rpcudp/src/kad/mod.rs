//! A Kademlia DHT on UDP, interoperable with Python `kademlia` 2.2.3
//! (`docs/wire.md` §3), persisting to redb: [`Dht`].
//!
//! Owns: running the sans-IO node [`rpcudp_proto::kad::Node`] on a socket (on the generic
//! [`Driver`], the same loop as the RPC node), turning its
//! events into answers for the callers of [`Dht::bootstrap`], [`Dht::set`] and
//! [`Dht::get`], and redb persistence (`persist`). Does not own any protocol decision:
//! serving the five RPCs, lookups, the hand-over to newcomers, refresh, republish,
//! replication, value lifetimes, RTOs per contact and eviction are the node's (see its
//! docs). No clock is read here but tokio's, once per driver round (so tests may pause
//! time); wall-clock time is read only where persisted expiries are converted.
//!
//! - [`Dht::bootstrap`] pings the given addresses and looks up its own id;
//!   [`Dht::set`] stores on the k nodes nearest the key (and here, if this node is among
//!   them) and republishes while the node runs; [`Dht::get`] looks a key up.
//! - Values live [`DhtConfig::value_ttl`] (default one week, as Python `kademlia`); an
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
//! A full store ([`DhtConfig::max_records`], [`DhtConfig::max_store_bytes`]) gives up
//! the records it is least responsible for (the farthest keys of the source subnet
//! holding the most bytes) to take a new key. A `store` it refuses (a value over
//! [`DhtConfig::max_value_bytes`], a subnet over its share, nothing it may evict) gets
//! no answer, so the caller counts it as not stored.
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

mod metrics_snapshot;
mod persist;
mod signed;

use crate::driver::{Application, Driver, DriverHandle, DriverStats, Flow};
use crate::rpc::NodeConfig;
use metrics_snapshot::LookupCounters;
pub use metrics_snapshot::{BucketSnapshot, DhtSnapshot, LookupKind, LookupOutcome, LookupStats};
use persist::{Job, RedbValues, WallClock};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rmpv::Value;
use rpcudp_proto::kad::{
    self as core, CommandError, Event, QueryId, QueryOutcome, StoreToken, ValueStore,
};
pub use rpcudp_proto::kad::{is_storable, record, Contact, NodeId, NodeStats};
use sha1::{Digest, Sha1};
pub use signed::{PutError, PutOutcome};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How a [`Dht`] node behaves. Plain fields with [`Default`]; change what you need with
/// struct update syntax.
#[derive(Debug, Clone)]
pub struct DhtConfig {
    /// Contacts per bucket and nodes a value is stored on (k). Default 20.
    pub k: usize,
    /// RPCs in flight per lookup (alpha). Default 3.
    pub alpha: usize,
    /// The longest an RPC waits for its answer. Default 5 s (the Python peer's). A lookup
    /// stops waiting for a contact sooner, after that contact's measured RTO.
    pub rpc_timeout: Duration,
    /// A bucket with no lookup for this long is refreshed by a lookup of a random id in
    /// it. Default one hour (as Python `kademlia`); `None` turns refreshing off.
    pub refresh_interval: Option<Duration>,
    /// How often values are stored again: the ones this node published (republish) and,
    /// while they are young, the copies it holds (replication). Default one hour; at
    /// least one second is used.
    pub republish_interval: Duration,
    /// How long a stored value lives without being stored again. Default one week (as
    /// Python `kademlia`'s storage).
    pub value_ttl: Duration,
    /// Where to keep the id, contacts and values (created if missing); `None` keeps
    /// everything in memory.
    pub state_dir: Option<PathBuf>,
    /// The node's id. `None` uses the one saved in [`state_dir`](Self::state_dir), or a
    /// random one (saved there for next time); `Some` overrides a saved id for this run
    /// without replacing it.
    pub node_id: Option<NodeId>,
    /// Most values this node stores for others; a `store` of a new key beyond it evicts
    /// the record this node is least responsible for (the farthest key of the source
    /// subnet holding the most bytes), or gets no answer if none can go. Default 100,000.
    pub max_records: usize,
    /// Most bytes of values stored for others, all together (evicting as for
    /// [`max_records`](Self::max_records)). Default 64 MiB.
    pub max_store_bytes: usize,
    /// Most records one source subnet (IPv4 /24, IPv6 /64) may have stored here; more get
    /// no answer. Loopback and private sources are exempt unless
    /// `node.endpoint.limits.strict_local`. Default 5000.
    pub max_records_per_source: usize,
    /// Most bytes of values one source subnet may have stored here. Default 4 MiB.
    pub max_bytes_per_source: usize,
    /// Largest value stored (its bytes for `str` / `bin`, plus 5; 9 for numbers and
    /// booleans): larger `store`s get no answer and [`Dht::set`] refuses them. Default
    /// 8192, which is also the most used (a larger limit counts as the dialect's largest
    /// request body, `Dialect::max_body`): the Python peers send request bodies of at most
    /// that, and so does this crate, so a larger value could only come from some other
    /// implementation, and serving it would cost big answers.
    pub max_value_bytes: usize,
    /// Seed for the random id (and message ids); `None` draws from the OS. Two nodes
    /// given the same seed get the same id, which Kademlia cannot tell apart: give each
    /// node its own seed. This is the one seed of a DHT node: `node.seed` is read only
    /// when this is `None`.
    pub seed: Option<u64>,
    /// Whether a node that only called this one is pinged (a few seconds later) before
    /// it enters the routing table, so that one-shot clients that left are never handed
    /// out. Default false: every caller is inserted at once, as Python `kademlia` does.
    pub verify_callers: bool,
    /// The RPC layer's configuration: its endpoint limits (the dialect must stay rpcudp
    /// for Python `kademlia`), the command queue and the receive buffer. Its call timing
    /// (`endpoint.default_call`) is not used: the DHT times every RPC itself, from
    /// [`rpc_timeout`](Self::rpc_timeout) and each contact's measured round trips.
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
            value_ttl: Duration::from_secs(7 * 24 * 3600),
            state_dir: None,
            node_id: None,
            max_records: 100_000,
            max_store_bytes: 64 << 20,
            max_records_per_source: 5000,
            max_bytes_per_source: 4 << 20,
            max_value_bytes: 8192,
            seed: None,
            verify_callers: false,
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
            other => DhtError::State(other.to_string()),
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

/// A node's counters, as of the driver's last round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DhtStats {
    /// The Kademlia node's: bad requests, own-id contacts, refused and failed stores,
    /// expired values, evictions, hand-overs.
    pub node: NodeStats,
    /// The RPC layer's: datagrams in and out, malformed, timeouts.
    pub rpc: crate::rpc::Stats,
    /// The socket's: send and receive errors.
    pub io: DriverStats,
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
    view: Arc<Mutex<View>>,
    saved_contacts: Vec<Contact>,
    task: tokio::sync::Mutex<Option<JoinHandle<App>>>,
    /// Lookups by kind and outcome, for [`Dht::metrics_snapshot`].
    lookups: Arc<LookupCounters>,
    /// The driver's clock paired with the wall clock at start (for the snapshot's ages).
    clock: WallClock,
    value_ttl: Duration,
}

/// What the handle's synchronous getters read: kept by the application as events come.
#[derive(Default)]
struct View {
    contacts: Vec<Contact>,
    /// The copies held here: their size, when they expire, and (without a state folder)
    /// their value.
    values: HashMap<NodeId, ViewCopy>,
    /// With a state folder, where [`Dht::local_value`] reads values (until shutdown).
    disk: Option<RedbValues>,
    stats: DhtStats,
    /// The RPC layer's counters in the RPC node's shape (for [`crate::metrics`]).
    rpc: crate::rpc::NodeStats,
}

/// A copy as the handle sees it.
struct ViewCopy {
    /// `None` with a state folder: the value is read from the file when asked for.
    value: Option<Arc<Value>>,
    /// Its size as MessagePack.
    bytes: u64,
    expires_at: Instant,
}

impl View {
    fn keep(&mut self, key: NodeId, value: Arc<Value>, expires_at: Instant) {
        let bytes = encoded_len(&value);
        let value = self.disk.is_none().then_some(value);
        self.values.insert(
            key,
            ViewCopy {
                value,
                bytes,
                expires_at,
            },
        );
    }
}

fn encoded_len(value: &Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Counting cannot fail.
    let _ = rmpv::encode::write_value(&mut count, value);
    count.0
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
/// work to the writer thread, keeps the [`View`].
struct App {
    replies: HashMap<QueryId, Reply>,
    view: Arc<Mutex<View>>,
    contacts_changed: bool,
    writer: Option<Writer>,
    own_id_warned: bool,
    lookups: Arc<LookupCounters>,
}

struct Writer {
    jobs: std::sync::mpsc::Sender<Job>,
    done: mpsc::UnboundedReceiver<(StoreToken, bool)>,
    thread: Option<std::thread::JoinHandle<()>>,
    clock: WallClock,
    /// Stores handed to the writer and not yet durable, with their value for the view.
    pending: HashMap<StoreToken, (NodeId, Arc<Value>, Instant)>,
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

impl Application<core::Node> for App {
    type Command = Command;

    fn on_event(&mut self, node: &mut core::Node, now: Instant, event: Event) {
        match event {
            Event::QueryFinished { id, result, stats } => {
                self.contacts_changed = true;
                let took = stats.finished.saturating_duration_since(stats.started);
                match &result {
                    Ok(QueryOutcome::Get { value }) => {
                        self.lookups
                            .record(true, stats.messages as usize, value.is_some(), took)
                    }
                    Ok(QueryOutcome::Bootstrap { contacts, .. }) => {
                        self.lookups.record(false, contacts.len(), false, took)
                    }
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
                    w.pending.insert(token, (key, value.clone(), expires_at));
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
                    lock(&self.view).keep(key, value, expires_at);
                    node.store_durable(now, token);
                }
            },
            Event::RecordStored {
                key,
                value,
                expires_at,
            } => {
                lock(&self.view).keep(key, value.clone(), expires_at);
                if let Some(w) = &self.writer {
                    let expires_unix_ms = w.clock.to_unix_ms(expires_at);
                    self.job(Job::Copy {
                        key,
                        value,
                        expires_unix_ms,
                    });
                }
            }
            Event::RecordRemoved { key } => {
                lock(&self.view).values.remove(&key);
                self.job(Job::Remove(key));
            }
            Event::Published { key, value } => self.job(Job::Publish { key, value }),
            Event::ContactAdded(c) => {
                self.contacts_changed = true;
                self.job(Job::ContactUpsert(c));
            }
            Event::ContactRemoved(id) => {
                self.contacts_changed = true;
                self.job(Job::ContactRemove(id));
            }
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

    fn on_command(&mut self, node: &mut core::Node, now: Instant, command: Command) -> Flow {
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

    fn poll_work(
        &mut self,
        cx: &mut Context<'_>,
        node: &mut core::Node,
        now: Instant,
    ) -> Poll<Flow> {
        let Some(w) = &mut self.writer else {
            return Poll::Pending;
        };
        let mut any = false;
        // Bounded per round, so a burst of commits cannot starve the socket.
        for _ in 0..256 {
            match w.done.poll_recv(cx) {
                Poll::Ready(Some((token, ok))) => {
                    any = true;
                    let kept = w.pending.remove(&token);
                    if ok {
                        node.store_durable(now, token);
                        if let Some((key, value, expires_at)) = kept {
                            // Committed before the node kept it: nothing left to write.
                            persist::written(&w.unwritten, &key, &value);
                            lock(&self.view).keep(key, value, expires_at);
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

    fn on_round(&mut self, node: &core::Node, io: &DriverStats) {
        let mut view = lock(&self.view);
        if self.contacts_changed {
            self.contacts_changed = false;
            view.contacts = node.contacts();
        }
        view.stats.node.clone_from(node.stats());
        view.stats.rpc = node.endpoint().stats().clone();
        view.stats.io = *io;
        let ep = node.endpoint();
        view.rpc.core = ep.stats().clone();
        view.rpc.send_errors = io.send_errors;
        view.rpc.recv_errors = io.recv_errors;
        // Requests with an unknown method or wrong arguments: not answered, as a Python
        // handler that raised.
        view.rpc.handler_failures = node.stats().bad_requests;
        view.rpc.calls_outstanding = ep.outstanding_calls();
        view.rpc.dedup_entries = ep.dedup_entries();
    }

    fn on_stop(&mut self, node: &mut core::Node, now: Instant) {
        node.stop(now);
    }
}

impl Dht {
    /// Binds the node to `addr`, loads the state folder if configured and starts
    /// serving the DHT methods. It knows nobody yet: call [`bootstrap`](Dht::bootstrap)
    /// or [`rejoin`](Dht::rejoin).
    pub async fn start(addr: SocketAddr, config: DhtConfig) -> Result<Dht, DhtError> {
        let mut rng = match config.seed.or(config.node.seed) {
            Some(s) => SmallRng::seed_from_u64(s),
            None => SmallRng::from_os_rng(),
        };
        let fresh_id = config.node_id.unwrap_or_else(|| NodeId::random(&mut rng));
        let node_seed: u64 = rng.random();
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
        let interval = config.republish_interval.max(Duration::from_secs(1));
        let node_config = core::NodeConfig {
            k: config.k.max(1),
            alpha: config.alpha.max(1),
            rpc_timeout: config.rpc_timeout,
            refresh_interval: config.refresh_interval,
            republish_interval: interval,
            replicate_interval: interval,
            replicate_window: (interval * 2).max(core::NodeConfig::default().replicate_window),
            value_ttl: config.value_ttl,
            max_records: config.max_records,
            max_store_bytes: config.max_store_bytes,
            max_records_per_source: config.max_records_per_source,
            max_bytes_per_source: config.max_bytes_per_source,
            max_value_bytes: config
                .max_value_bytes
                .min(config.node.endpoint.dialect.max_body()),
            verify_callers: config.verify_callers,
            // A node joining (its own-id lookup) is learned at once; our one-shot
            // clients (`Dht::introduce`) never look up their own id.
            insert_joining: true,
            persistence: true,
            endpoint: config.node.endpoint.clone(),
            ..core::NodeConfig::default()
        };
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
        let now = tokio::time::Instant::now().into_std();
        let view = Arc::new(Mutex::new(View {
            disk,
            ..View::default()
        }));
        let lookups = Arc::new(LookupCounters::default());
        let wall = WallClock::at(now);
        let mut saved_contacts = Vec::new();
        let writer = match loaded {
            Some(loaded) => {
                let clock = wall;
                {
                    let mut v = lock(&view);
                    // Only the index: the values stay in the file.
                    for (key, expires_unix_ms, bytes) in loaded.copies {
                        let Some(expires_at) = clock.to_instant(expires_unix_ms) else {
                            continue;
                        };
                        if expires_at <= now {
                            continue;
                        }
                        node.load_record_index(now, key, expires_at, bytes as usize);
                        v.values.insert(
                            key,
                            ViewCopy {
                                value: None,
                                bytes,
                                expires_at,
                            },
                        );
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
        let socket = crate::udp::Endpoint::bind(addr).await?;
        let local_addr = socket.local_addr()?;
        let app = App {
            replies: HashMap::new(),
            view: view.clone(),
            contacts_changed: false,
            writer,
            own_id_warned: false,
            lookups: lookups.clone(),
        };
        let (driver, handle) = Driver::with_recv_buffer(
            socket,
            node,
            app,
            config.node.call_queue,
            config.node.recv_buffer,
        );
        let task = tokio::spawn(driver.run());
        Ok(Dht {
            inner: Arc::new(Inner {
                id,
                local_addr,
                handle,
                view,
                saved_contacts,
                task: tokio::sync::Mutex::new(Some(task)),
                lookups,
                clock: wall,
                value_ttl: config.value_ttl,
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

    /// The contacts in the routing table (as of the driver's last round).
    pub fn contacts(&self) -> Vec<Contact> {
        lock(&self.inner.view).contacts.clone()
    }

    /// The contacts found in the state folder at start (empty without one).
    pub fn saved_contacts(&self) -> &[Contact] {
        &self.inner.saved_contacts
    }

    /// The value this node itself holds under `key`, without asking the network.
    pub fn local_value(&self, key: &NodeId) -> Option<Value> {
        let disk = {
            let view = lock(&self.inner.view);
            let copy = view.values.get(key)?;
            if let Some(v) = &copy.value {
                return Some((**v).clone());
            }
            view.disk.clone()?
        };
        // Read outside the lock: the driver updates the view meanwhile.
        disk.get(key).map(|v| (*v).clone())
    }

    /// How many values this node holds.
    pub fn stored_count(&self) -> usize {
        lock(&self.inner.view).values.len()
    }

    /// The node's counters (own-id contacts, evictions, datagrams, ...).
    pub fn stats(&self) -> DhtStats {
        lock(&self.inner.view).stats.clone()
    }

    /// The RPC layer's counters in the shape of [`crate::rpc::Node::stats`] (datagrams,
    /// drops, calls in flight), as of the driver's last round.
    pub fn rpc_stats(&self) -> crate::rpc::NodeStats {
        lock(&self.inner.view).rpc.clone()
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
    /// Returns how many of `addrs` answered (0 after [`shutdown`](Dht::shutdown); see
    /// [`try_bootstrap`](Dht::try_bootstrap) for the error).
    pub async fn bootstrap(&self, addrs: &[SocketAddr]) -> usize {
        self.try_bootstrap(addrs).await.unwrap_or(0)
    }

    /// [`bootstrap`](Dht::bootstrap), failing with [`DhtError::ShutDown`] after
    /// [`shutdown`](Dht::shutdown).
    pub async fn try_bootstrap(&self, addrs: &[SocketAddr]) -> Result<usize, DhtError> {
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
    /// node that runs one `set` or `get` and leaves. Returns how many answered.
    pub async fn introduce(&self, addrs: &[SocketAddr]) -> usize {
        let addrs = addrs.to_vec();
        self.command(|reply| Command::Join {
            addrs,
            lookup: false,
            reply,
        })
        .await
        .unwrap_or(0)
    }

    /// Joins again through the contacts saved in the state folder (what a restarted
    /// node does when given no bootstrap address). Returns how many answered.
    pub async fn rejoin(&self) -> usize {
        let addrs: Vec<SocketAddr> = self.inner.saved_contacts.iter().map(|c| c.addr).collect();
        self.bootstrap(&addrs).await
    }

    /// Stores `value` under the sha1 of `key` on the k nodes nearest it (and here, if
    /// this node is among them); this node republishes it while it runs. Returns how
    /// many other nodes acknowledged.
    pub async fn set(&self, key: impl AsRef<[u8]>, value: Value) -> Result<usize, DhtError> {
        self.set_digest(key_digest(key), value).await
    }

    /// [`set`](Dht::set) with the 20-byte key itself.
    pub async fn set_digest(&self, key: NodeId, value: Value) -> Result<usize, DhtError> {
        if !is_storable(&value) {
            return Err(DhtError::NotStorable);
        }
        self.command(|reply| Command::Set { key, value, reply })
            .await
    }

    /// Looks up the value under the sha1 of `key`: here first, then on the network (and,
    /// as Python `kademlia` does, stores what it found on the nearest node asked that
    /// did not have it).
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>, DhtError> {
        self.get_digest(key_digest(key)).await
    }

    /// [`get`](Dht::get) with the 20-byte key itself.
    pub async fn get_digest(&self, key: NodeId) -> Result<Option<Value>, DhtError> {
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
        lock(&self.inner.view).disk = None;
        if let Some(mut w) = app.writer.take() {
            drop(w.jobs);
            if let Some(thread) = w.thread.take() {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
        }
    }
}
