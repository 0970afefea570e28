//! The TCP server: many connections, events as a stream, send / broadcast / close from a
//! cloneable handle, bounded queues, graceful shutdown.

use super::codec::{LtCodec, LtError};
use super::guard::{ConnLimits, Guard, GuardError, GuardStats, GuardedReader, Ticket};
use super::message::{encode_to_bytes, FrameEncodeError, MessageSet};
use bytes::{Bytes, BytesMut};
use rpcudp_proto::wire::lt::FrameFormat;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What to do when a connection's outgoing queue is full (the peer reads slower than we
/// send, or not at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop the new message: `send` returns [`SendError::QueueFull`] and
    /// [`ServerStats::dropped_frames`] counts it. The connection stays. Right for state
    /// updates where a newer message supersedes an older one.
    #[default]
    DropNewest,
    /// Close the slow connection (reason [`Disconnect::SlowConsumer`]). Right when every
    /// message matters and a peer that cannot keep up must resync from scratch.
    Disconnect,
}

/// Limits and policies of a [`Server`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Header widths and max frame (incoming frames over it close the connection).
    /// `None` (the default): the protocol's own [`MessageSet::FORMAT`], the widths its
    /// `lt_messages!` declared. Set it only to override those.
    pub format: Option<FrameFormat>,
    /// Most live connections (lowered to fit the open-file limit). At the cap a new
    /// connection evicts the one idle longest (counted in [`GuardStats::evicted`]), or is
    /// closed at once if none is idle enough (counted in [`ServerStats::rejected`]).
    /// Default 1024. (It overrides `limits.max_connections`.)
    pub max_connections: usize,
    /// Idle and partial-frame timeouts, buffer caps, eviction: see [`ConnLimits`].
    pub limits: ConnLimits,
    /// Frames waiting to be written, per connection. Default 1024.
    pub queue_frames: usize,
    /// Bytes waiting to be written, per connection. One frame is always admitted into an
    /// empty queue, so a frame larger than this can still be sent. Default 4 MiB.
    pub queue_bytes: usize,
    /// What a full queue does. Default [`Overflow::DropNewest`].
    pub overflow: Overflow,
    /// A write that makes no progress for this long closes the connection as a slow
    /// consumer; it also bounds the flush at shutdown. Default 10 s.
    pub write_timeout: Duration,
    /// Events buffered for the application. When full, connections stop reading until
    /// the application catches up (TCP flow control does the rest). Default 1024.
    pub events: usize,
}

impl ServerConfig {
    /// Defaults, with `format` instead of the protocol's declared one.
    pub fn new(format: FrameFormat) -> Self {
        ServerConfig {
            format: Some(format),
            ..ServerConfig::default()
        }
    }
}

impl Default for ServerConfig {
    /// The protocol's declared format (`format: None`) and the limits documented on each
    /// field.
    fn default() -> Self {
        ServerConfig {
            format: None,
            max_connections: 1024,
            limits: ConnLimits::default(),
            queue_frames: 1024,
            queue_bytes: 4 * 1024 * 1024,
            overflow: Overflow::DropNewest,
            write_timeout: Duration::from_secs(10),
            events: 1024,
        }
    }
}

/// Identifies one connection for the server's lifetime (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnect {
    /// The peer closed it cleanly (end of stream between frames).
    PeerClosed,
    /// The peer sent something unacceptable (bad header, malformed body, a stream cut
    /// inside a frame), or the socket failed. The text says which.
    Error(String),
    /// The peer did not read fast enough: its queue overflowed under
    /// [`Overflow::Disconnect`], or a write stalled past the write timeout.
    SlowConsumer,
    /// Closed by [`ServerHandle::close`] (or, for a client, [`Client::close`](super::Client::close)).
    ClosedHere,
    /// The server shut down.
    Shutdown,
}

/// What happens on a server, in order per connection: `Connected`, then its messages,
/// then `Disconnected` exactly once.
#[derive(Debug)]
pub enum ServerEvent<P> {
    /// A connection was accepted; it can be sent to from now on.
    Connected {
        /// The connection.
        conn: ConnId,
        /// The peer's address.
        peer: SocketAddr,
    },
    /// A whole message arrived.
    Message {
        /// The connection it came on.
        conn: ConnId,
        /// The message (an `Unknown` value for a type the protocol does not declare).
        msg: P,
    },
    /// The connection is gone; sends to it fail from now on.
    Disconnected {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: Disconnect,
    },
}

/// Why a send did not queue the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No live connection has this id (it closed, or never existed).
    #[error("no such connection")]
    NoSuchConnection,
    /// The connection's outgoing queue is full; see [`Overflow`] for what happened to it.
    #[error("the connection's outgoing queue is full")]
    QueueFull,
    /// The message cannot be encoded with this format.
    #[error(transparent)]
    Encode(#[from] FrameEncodeError),
    /// The server is shut down.
    #[error("the server is shut down")]
    Shutdown,
}

/// Counters of a server since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused because `max_connections` were live.
    pub rejected: u64,
    /// Connections closed for a bad frame (header or body).
    pub bad_frames: u64,
    /// Outgoing messages dropped on a full queue.
    pub dropped_frames: u64,
    /// Connections closed as slow consumers.
    pub slow_disconnects: u64,
    /// Evictions, timeouts, buffer-cap closes and accept errors ([`ConnLimits`]).
    pub guard: GuardStats,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    rejected: AtomicU64,
    bad_frames: AtomicU64,
    dropped_frames: AtomicU64,
    slow_disconnects: AtomicU64,
}

struct Conn {
    tx: mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
    /// Aborts this connection (no flush).
    abort: CancellationToken,
    reason: Arc<Mutex<Option<Disconnect>>>,
}

struct Shared {
    config: ServerConfig,
    /// `config.format`, or the protocol's declared format when that is `None`.
    format: FrameFormat,
    /// Connections whose `Connected` event the application has taken and whose
    /// `Disconnected` it has not (what `live_count` reports).
    announced: Mutex<HashSet<ConnId>>,
    conns: Mutex<HashMap<ConnId, Conn>>,
    counters: Counters,
    /// Connection limits shared by the accept loop and the readers.
    guard: Guard,
    /// Stops accepting and reading; writers flush what is queued.
    stop: CancellationToken,
    /// Aborts everything at once.
    abort: CancellationToken,
}

fn set_reason(slot: &Mutex<Option<Disconnect>>, reason: Disconnect) {
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if slot.is_none() {
        *slot = Some(reason);
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, Conn>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues encoded bytes on one connection, applying the overflow policy.
    fn queue(&self, conn: &Conn, bytes: Bytes) -> Result<(), SendError> {
        let len = bytes.len();
        let queued = conn.queued.load(Ordering::Acquire);
        let over_bytes = queued > 0 && queued + len > self.config.queue_bytes;
        let result = if over_bytes {
            Err(SendError::QueueFull)
        } else {
            // Count before handing over, so the writer's decrement never underflows.
            conn.queued.fetch_add(len, Ordering::AcqRel);
            conn.tx.try_send(bytes).map_err(|e| {
                conn.queued.fetch_sub(len, Ordering::AcqRel);
                match e {
                    mpsc::error::TrySendError::Full(_) => SendError::QueueFull,
                    mpsc::error::TrySendError::Closed(_) => SendError::NoSuchConnection,
                }
            })
        };
        if result == Err(SendError::QueueFull) {
            match self.config.overflow {
                Overflow::DropNewest => {
                    self.counters.dropped_frames.fetch_add(1, Ordering::Relaxed);
                }
                Overflow::Disconnect => {
                    set_reason(&conn.reason, Disconnect::SlowConsumer);
                    conn.abort.cancel();
                }
            }
        }
        result
    }
}

/// A cloneable handle to a running [`Server`]: send, broadcast, close, count, stats.
pub struct ServerHandle<P> {
    shared: Arc<Shared>,
    _protocol: std::marker::PhantomData<fn(P)>,
}

impl<P> Clone for ServerHandle<P> {
    fn clone(&self) -> Self {
        ServerHandle {
            shared: self.shared.clone(),
            _protocol: std::marker::PhantomData,
        }
    }
}

impl<P: MessageSet> ServerHandle<P> {
    /// Queues `msg` for one connection. Never waits: a full queue is reported (and
    /// handled per [`Overflow`]) at once, so a slow peer never blocks the caller.
    pub fn send(&self, conn: ConnId, msg: &P) -> Result<(), SendError> {
        if self.shared.stop.is_cancelled() {
            return Err(SendError::Shutdown);
        }
        let bytes = encode_to_bytes(msg, &self.shared.format)?;
        let conns = self.shared.lock();
        let c = conns.get(&conn).ok_or(SendError::NoSuchConnection)?;
        self.shared.queue(c, bytes)
    }

    /// Queues `msg` for every live connection (encoded once) and returns how many
    /// accepted it; full queues are handled per [`Overflow`].
    pub fn broadcast(&self, msg: &P) -> Result<usize, SendError> {
        if self.shared.stop.is_cancelled() {
            return Err(SendError::Shutdown);
        }
        let bytes = encode_to_bytes(msg, &self.shared.format)?;
        let conns = self.shared.lock();
        Ok(conns
            .values()
            .filter(|c| self.shared.queue(c, bytes.clone()).is_ok())
            .count())
    }

    /// Closes one connection at once (queued messages are discarded). Returns false if
    /// it was not live.
    pub fn close(&self, conn: ConnId) -> bool {
        match self.shared.lock().get(&conn) {
            Some(c) => {
                set_reason(&c.reason, Disconnect::ClosedHere);
                c.abort.cancel();
                true
            }
            None => false,
        }
    }

    /// How many connections are live as the events tell it: those whose
    /// [`ServerEvent::Connected`] [`Server::next_event`] has returned and whose
    /// [`ServerEvent::Disconnected`] it has not returned yet. So it never runs ahead of
    /// (or lags behind) the events the application has seen; it only moves while
    /// someone takes events. [`connections`](Self::connections) and
    /// [`broadcast`](Self::broadcast) see the server's own table instead, which gains a
    /// connection as soon as it is accepted and loses it as soon as it is gone.
    pub fn live_count(&self) -> usize {
        self.shared
            .announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The ids of the live connections.
    pub fn connections(&self) -> Vec<ConnId> {
        let mut ids: Vec<ConnId> = self.shared.lock().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The counters so far.
    pub fn stats(&self) -> ServerStats {
        let c = &self.shared.counters;
        ServerStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            bad_frames: c.bad_frames.load(Ordering::Relaxed),
            dropped_frames: c.dropped_frames.load(Ordering::Relaxed),
            slow_disconnects: c.slow_disconnects.load(Ordering::Relaxed),
            guard: self.shared.guard.stats(),
        }
    }
}

/// A length-type server over TCP.
///
/// Events (connected / message / disconnected) come out of [`Server::next_event`]; sends go
/// through a [`ServerHandle`], which never waits. Each connection has a reader task and a
/// writer task with a bounded queue (frames and bytes): a slow or silent peer fills only
/// its own queue, and then [`Overflow`] decides (drop the message, or drop the peer). A
/// connection's incoming buffer is bounded by the max frame plus one read, because an
/// over-limit header is rejected before its body is read. A bad frame closes its
/// connection only.
///
/// ```
/// use rpcudp::lt::{Frame, Server, ServerConfig, ServerEvent};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let mut server = Server::<Frame>::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default()).await?;
/// let mut peer = tokio::net::TcpStream::connect(server.local_addr()).await?;
/// peer.write_all(&[0, 5, 1, b'h', b'i']).await?; // one frame, type 1, body "hi"
/// let handle = server.handle();
/// loop {
///     match server.next_event().await.unwrap() {
///         ServerEvent::Message { conn, msg } => {
///             assert_eq!(&msg.body[..], b"hi");
///             handle.send(conn, &Frame::new(2, &b"ok"[..])).unwrap();
///             break;
///         }
///         _ => continue, // Connected
///     }
/// }
/// let mut reply = [0u8; 5];
/// peer.read_exact(&mut reply).await?;
/// assert_eq!(reply, [0, 5, 2, b'o', b'k']);
/// server.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Server<P> {
    handle: ServerHandle<P>,
    events: mpsc::Receiver<ServerEvent<P>>,
    local_addr: SocketAddr,
    /// Every task holds a clone of the sender; all gone = all tasks ended.
    alive: Option<mpsc::Sender<()>>,
    alive_rx: mpsc::Receiver<()>,
}

impl<P: MessageSet> Server<P> {
    /// Binds `addr` (port 0 picks a free port) and starts accepting.
    pub async fn bind(addr: SocketAddr, config: ServerConfig) -> io::Result<Self> {
        Self::from_listener(TcpListener::bind(addr).await?, config)
    }

    /// Serves an already bound listener (for example one bound to the port a restarted
    /// server must reuse).
    pub fn from_listener(listener: TcpListener, config: ServerConfig) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (events_tx, events) = mpsc::channel(config.events.max(1));
        let (alive, alive_rx) = mpsc::channel(1);
        let guard = Guard::new(ConnLimits {
            max_connections: config.max_connections,
            ..config.limits.clone()
        });
        let shared = Arc::new(Shared {
            guard,
            format: config.format.unwrap_or(P::FORMAT),
            announced: Mutex::new(HashSet::new()),
            config,
            conns: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
        });
        tokio::spawn(accept_loop::<P>(
            listener,
            shared.clone(),
            events_tx,
            alive.clone(),
        ));
        Ok(Server {
            handle: ServerHandle {
                shared,
                _protocol: std::marker::PhantomData,
            },
            events,
            local_addr,
            alive: Some(alive),
            alive_rx,
        })
    }

    /// The bound address, with the real port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to send, broadcast, close and count; it can be cloned into other tasks.
    pub fn handle(&self) -> ServerHandle<P> {
        self.handle.clone()
    }

    /// The next event. `None` only after shutdown.
    pub async fn next_event(&mut self) -> Option<ServerEvent<P>> {
        let event = self.events.recv().await;
        let announced = &self.handle.shared.announced;
        match &event {
            Some(ServerEvent::Connected { conn, .. }) => {
                announced
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(*conn);
            }
            Some(ServerEvent::Disconnected { conn, .. }) => {
                announced
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(conn);
            }
            _ => {}
        }
        event
    }

    /// Stops accepting, stops reading, lets every connection flush what is queued for it
    /// (each bounded by the write timeout), closes them, and waits for all of it.
    /// Events not yet taken are discarded.
    pub async fn shutdown(mut self) {
        let shared = self.handle.shared.clone();
        shared.stop.cancel();
        // Nobody will read events any more: let tasks that wait to deliver one go on.
        self.events.close();
        while self.events.try_recv().is_ok() {}
        // Every connection is going; no Disconnected event will be handed out for them.
        shared
            .announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        // Dropping the queues' senders lets each writer drain and finish.
        let conns: Vec<Conn> = shared.lock().drain().map(|(_, c)| c).collect();
        for c in &conns {
            set_reason(&c.reason, Disconnect::Shutdown);
        }
        drop(conns);
        self.alive = None;
        let bound = shared.config.write_timeout + Duration::from_secs(1);
        if tokio::time::timeout(bound, self.alive_rx.recv())
            .await
            .is_err()
        {
            shared.abort.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(1), self.alive_rx.recv()).await;
        }
    }
}

impl<P> Drop for Server<P> {
    fn drop(&mut self) {
        // Dropped without shutdown: abort everything rather than leak tasks.
        self.handle.shared.stop.cancel();
        self.handle.shared.abort.cancel();
        self.handle
            .shared
            .announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

async fn accept_loop<P: MessageSet>(
    listener: TcpListener,
    shared: Arc<Shared>,
    events: mpsc::Sender<ServerEvent<P>>,
    alive: mpsc::Sender<()>,
) {
    let mut next_id = 0u64;
    loop {
        let accepted = tokio::select! {
            _ = shared.stop.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                let wait = shared.guard.accept_failed(&e, "lt server");
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        shared.guard.accept_ok();
        let Some(ticket) = shared.guard.admit() else {
            shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("lt server: refusing {peer}: max connections reached");
            continue; // dropping the stream closes it
        };
        let mut conns = shared.lock();
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = ConnId(next_id);
        let (tx, rx) = mpsc::channel(shared.config.queue_frames.max(1));
        let conn = Conn {
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            abort: shared.abort.child_token(),
            reason: Arc::new(Mutex::new(None)),
        };
        let task = run_connection::<P>(
            stream,
            ticket,
            peer,
            id,
            rx,
            conn.queued.clone(),
            conn.abort.clone(),
            conn.reason.clone(),
            shared.clone(),
            events.clone(),
            alive.clone(),
        );
        conns.insert(id, conn);
        drop(conns);
        tokio::spawn(task);
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_connection<P: MessageSet>(
    stream: TcpStream,
    ticket: Ticket,
    peer: SocketAddr,
    id: ConnId,
    rx: mpsc::Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
    abort: CancellationToken,
    reason: Arc<Mutex<Option<Disconnect>>>,
    shared: Arc<Shared>,
    events: mpsc::Sender<ServerEvent<P>>,
    _alive: mpsc::Sender<()>,
) {
    let (rd, wr) = stream.into_split();
    let writer = tokio::spawn(write_loop(
        wr,
        rx,
        queued,
        abort.clone(),
        reason.clone(),
        shared.config.write_timeout,
    ));
    let deliver = |ev: ServerEvent<P>| {
        let events = events.clone();
        let abort = abort.clone();
        async move {
            tokio::select! {
                _ = abort.cancelled() => false,
                // A closed event channel (shutdown) is not a reason to stop reading.
                _ = events.send(ev) => true,
            }
        }
    };
    deliver(ServerEvent::Connected { conn: id, peer }).await;
    let mut framed = GuardedReader::new(rd, LtCodec::<P>::new(shared.format), ticket);
    loop {
        let item = tokio::select! {
            _ = abort.cancelled() => break,
            _ = shared.stop.cancelled() => {
                set_reason(&reason, Disconnect::Shutdown);
                break;
            }
            item = framed.next() => item,
        };
        match item {
            None => {
                set_reason(&reason, Disconnect::PeerClosed);
                break;
            }
            Some(Ok(msg)) => {
                if !deliver(ServerEvent::Message { conn: id, msg }).await {
                    break;
                }
            }
            Some(Err(e)) => {
                if matches!(e, GuardError::Lt(ref e) if !matches!(e, LtError::Io(_))) {
                    shared.counters.bad_frames.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!("lt server: closing {id} ({peer}): {e}");
                set_reason(&reason, Disconnect::Error(e.to_string()));
                // A bad stream cannot be resynchronised: discard what is queued too.
                abort.cancel();
                break;
            }
        }
    }
    // Unregister: sends fail from now on, and dropping the queue's sender lets the
    // writer flush what is left and finish (unless aborted).
    shared.lock().remove(&id);
    drop(framed);
    let _ = writer.await;
    let reason = reason
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or(Disconnect::PeerClosed);
    if reason == Disconnect::SlowConsumer {
        shared
            .counters
            .slow_disconnects
            .fetch_add(1, Ordering::Relaxed);
    }
    if !shared.stop.is_cancelled() {
        let _ = events
            .send(ServerEvent::Disconnected { conn: id, reason })
            .await;
    }
}

/// Writes queued frames, batching what is already queued into one write.
async fn write_loop(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
    abort: CancellationToken,
    reason: Arc<Mutex<Option<Disconnect>>>,
    write_timeout: Duration,
) {
    const BATCH: usize = 64 * 1024;
    let mut batch = BytesMut::new();
    loop {
        let first = tokio::select! {
            _ = abort.cancelled() => return,
            b = rx.recv() => b,
        };
        let Some(first) = first else {
            // Queue closed: everything is flushed; close our side cleanly.
            let _ = tokio::time::timeout(write_timeout, wr.shutdown()).await;
            return;
        };
        batch.clear();
        batch.extend_from_slice(&first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        let n = batch.len();
        let write = tokio::time::timeout(write_timeout, wr.write_all(&batch));
        let outcome = tokio::select! {
            _ = abort.cancelled() => return,
            r = write => r,
        };
        match outcome {
            Ok(Ok(())) => {
                queued.fetch_sub(n, Ordering::AcqRel);
            }
            Ok(Err(e)) => {
                set_reason(&reason, Disconnect::Error(format!("write failed: {e}")));
                abort.cancel();
                return;
            }
            Err(_) => {
                set_reason(&reason, Disconnect::SlowConsumer);
                abort.cancel();
                return;
            }
        }
    }
}
