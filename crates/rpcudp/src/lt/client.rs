//! The reconnecting TCP client (Twisted's `ReconnectingClientFactory`, for length-type
//! messages).

use super::backoff::{Backoff, ReconnectPolicy};
use super::codec::LtCodec;
use super::message::{encode_to_bytes, MessageSet};
use super::server::{Disconnect, SendError};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use rand::SeedableRng;
use rpcudp_proto::wire::lt::FrameFormat;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Header widths and max frame. `None` (the default): the protocol's own
    /// [`MessageSet::FORMAT`], the widths its `lt_messages!` declared. Set it only to
    /// override those.
    pub format: Option<FrameFormat>,
    /// Delays between attempts.
    pub reconnect: ReconnectPolicy,
    /// Messages waiting to be written, connected or not (the bound on what is kept
    /// while disconnected). Default 1024.
    pub queue_frames: usize,
    /// One connection attempt gives up after this long. Default 5 s.
    pub connect_timeout: Duration,
    /// A write that makes no progress this long drops the connection (and then
    /// reconnects). Default 10 s.
    pub write_timeout: Duration,
    /// Events buffered for the application; when full, reading pauses. Default 1024.
    pub events: usize,
    /// Seeds the jitter, for reproducible tests; `None` seeds from the OS.
    pub seed: Option<u64>,
}

impl ClientConfig {
    /// Defaults, with `format` instead of the protocol's declared one.
    pub fn new(format: FrameFormat) -> Self {
        ClientConfig {
            format: Some(format),
            ..ClientConfig::default()
        }
    }
}

impl Default for ClientConfig {
    /// The protocol's declared format (`format: None`) and the settings documented on
    /// each field.
    fn default() -> Self {
        ClientConfig {
            format: None,
            reconnect: ReconnectPolicy::default(),
            queue_frames: 1024,
            connect_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            events: 1024,
            seed: None,
        }
    }
}

/// What happens to a [`Client`].
#[derive(Debug)]
pub enum ClientEvent<P> {
    /// A connection is up; queued messages are being written.
    Connected {
        /// The server's address.
        peer: SocketAddr,
    },
    /// A whole message arrived.
    Message(P),
    /// The connection was lost.
    Disconnected {
        /// Why.
        reason: Disconnect,
        /// When the next attempt starts; `None`: the client gave up (no more events).
        retry_in: Option<Duration>,
    },
    /// An attempt to connect failed.
    ConnectFailed {
        /// The error.
        error: String,
        /// When the next attempt starts; `None`: the client gave up (no more events).
        retry_in: Option<Duration>,
    },
}

/// A TCP client that keeps itself connected.
///
/// It connects in the background, and after a refused attempt or a lost connection
/// waits per its [`ReconnectPolicy`] (exponential backoff with jitter and a ceiling,
/// reset by each successful connection) and tries again.
///
/// **Messages sent while disconnected** wait in the bounded outgoing queue
/// ([`ClientConfig::queue_frames`]) and are written, in order, once a connection is up;
/// when the queue is full, [`Client::send`] refuses the new message with
/// [`SendError::QueueFull`] (the oldest are kept: they were accepted first). Delivery is
/// at most once: a message written to a connection that then breaks may be lost, and is
/// not resent.
///
/// ```
/// use rpcudp::lt::{Client, ClientConfig, ClientEvent, Frame, Server, ServerConfig, ServerEvent};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let mut server = Server::<Frame>::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default()).await?;
/// let client = Client::<Frame>::connect(server.local_addr(), ClientConfig::default());
/// client.send(&Frame::new(1, &b"queued before the connection is up"[..])).unwrap();
/// loop {
///     if let Some(ServerEvent::Message { msg, .. }) = server.next_event().await {
///         assert_eq!(&msg.body[..], b"queued before the connection is up");
///         break;
///     }
/// }
/// client.close().await;
/// server.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Client<P> {
    tx: mpsc::Sender<Bytes>,
    events: mpsc::Receiver<ClientEvent<P>>,
    format: FrameFormat,
    connected: Arc<AtomicBool>,
    close: CancellationToken,
    abort: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl<P: MessageSet> Client<P> {
    /// Starts connecting to `addr` in the background (call inside a tokio runtime).
    pub fn connect(addr: SocketAddr, config: ClientConfig) -> Self {
        let (tx, rx) = mpsc::channel(config.queue_frames.max(1));
        let (events_tx, events) = mpsc::channel(config.events.max(1));
        let connected = Arc::new(AtomicBool::new(false));
        let close = CancellationToken::new();
        let abort = CancellationToken::new();
        let format = config.format.unwrap_or(P::FORMAT);
        let task = tokio::spawn(client_loop::<P>(
            addr,
            config,
            rx,
            events_tx,
            connected.clone(),
            close.clone(),
            abort.clone(),
        ));
        Client {
            tx,
            events,
            format,
            connected,
            close,
            abort,
            task: Some(task),
        }
    }

    /// Queues `msg` (connected or not). Never waits.
    pub fn send(&self, msg: &P) -> Result<(), SendError> {
        let bytes = encode_to_bytes(msg, &self.format)?;
        self.tx.try_send(bytes).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => SendError::Shutdown,
        })
    }

    /// The next event; `None` once the client gave up or was closed.
    pub async fn next_event(&mut self) -> Option<ClientEvent<P>> {
        self.events.recv().await
    }

    /// Whether a connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Writes what is queued if connected (bounded by the write timeout), closes the
    /// connection and stops reconnecting.
    pub async fn close(mut self) {
        self.close.cancel();
        self.events.close();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl<P> Drop for Client<P> {
    fn drop(&mut self) {
        self.abort.cancel();
    }
}

async fn client_loop<P: MessageSet>(
    addr: SocketAddr,
    config: ClientConfig,
    mut rx: mpsc::Receiver<Bytes>,
    events: mpsc::Sender<ClientEvent<P>>,
    connected: Arc<AtomicBool>,
    close: CancellationToken,
    abort: CancellationToken,
) {
    let mut rng = match config.seed {
        Some(seed) => rand::rngs::SmallRng::seed_from_u64(seed),
        None => rand::rngs::SmallRng::from_os_rng(),
    };
    let mut backoff = Backoff::new(config.reconnect.clone());
    let emit = |ev: ClientEvent<P>| {
        let events = events.clone();
        let abort = abort.clone();
        async move {
            tokio::select! {
                _ = abort.cancelled() => {}
                _ = events.send(ev) => {}
            }
        }
    };
    loop {
        let attempt = tokio::select! {
            _ = close.cancelled() => return,
            _ = abort.cancelled() => return,
            r = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)) => r,
        };
        let event = match attempt {
            Ok(Ok(stream)) => {
                backoff.reset();
                let _ = stream.set_nodelay(true);
                connected.store(true, Ordering::Release);
                emit(ClientEvent::Connected { peer: addr }).await;
                let reason =
                    run_connection::<P>(stream, &mut rx, &events, &config, &close, &abort).await;
                connected.store(false, Ordering::Release);
                if close.is_cancelled() || abort.is_cancelled() {
                    return;
                }
                tracing::debug!("lt client: connection to {addr} lost: {reason:?}");
                ClientEvent::Disconnected {
                    reason,
                    retry_in: backoff.next_delay(&mut rng),
                }
            }
            Ok(Err(e)) => ClientEvent::ConnectFailed {
                error: e.to_string(),
                retry_in: backoff.next_delay(&mut rng),
            },
            Err(_) => ClientEvent::ConnectFailed {
                error: format!("timed out after {:?}", config.connect_timeout),
                retry_in: backoff.next_delay(&mut rng),
            },
        };
        let retry_in = match &event {
            ClientEvent::Disconnected { retry_in, .. }
            | ClientEvent::ConnectFailed { retry_in, .. } => *retry_in,
            _ => None,
        };
        emit(event).await;
        let Some(delay) = retry_in else {
            return; // gave up
        };
        tokio::select! {
            _ = close.cancelled() => return,
            _ = abort.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn write_batch(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    first: Bytes,
    rx: &mut mpsc::Receiver<Bytes>,
    timeout: Duration,
) -> Result<(), Disconnect> {
    let mut batch = BytesMut::from(&first[..]);
    while batch.len() < 64 * 1024 {
        match rx.try_recv() {
            Ok(more) => batch.extend_from_slice(&more),
            Err(_) => break,
        }
    }
    match tokio::time::timeout(timeout, wr.write_all(&batch)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Disconnect::Error(format!("write failed: {e}"))),
        Err(_) => Err(Disconnect::SlowConsumer),
    }
}

async fn run_connection<P: MessageSet>(
    stream: TcpStream,
    rx: &mut mpsc::Receiver<Bytes>,
    events: &mpsc::Sender<ClientEvent<P>>,
    config: &ClientConfig,
    close: &CancellationToken,
    abort: &CancellationToken,
) -> Disconnect {
    let (rd, mut wr) = stream.into_split();
    let mut framed = FramedRead::new(rd, LtCodec::<P>::new(config.format.unwrap_or(P::FORMAT)));
    loop {
        tokio::select! {
            biased;
            _ = abort.cancelled() => return Disconnect::ClosedHere,
            _ = close.cancelled() => {
                // Flush what was queued before close, then close our side.
                while let Ok(first) = rx.try_recv() {
                    if write_batch(&mut wr, first, rx, config.write_timeout).await.is_err() {
                        break;
                    }
                }
                let _ = tokio::time::timeout(config.write_timeout, wr.shutdown()).await;
                return Disconnect::ClosedHere;
            }
            item = framed.next() => match item {
                None => return Disconnect::PeerClosed,
                Some(Ok(msg)) => {
                    tokio::select! {
                        _ = abort.cancelled() => return Disconnect::ClosedHere,
                        _ = events.send(ClientEvent::Message(msg)) => {}
                    }
                }
                Some(Err(e)) => return Disconnect::Error(e.to_string()),
            },
            first = rx.recv() => match first {
                None => return Disconnect::ClosedHere,
                Some(first) => {
                    if let Err(reason) = write_batch(&mut wr, first, rx, config.write_timeout).await {
                        return reason;
                    }
                }
            },
        }
    }
}
