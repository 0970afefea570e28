//! The metrics listener: `GET /metrics` and `GET /status` over HTTP/1.1, on a thread of
//! its own.
//!
//! Why a minimal handler rather than an HTTP library: two paths, GET only, one response
//! per connection (`Connection: close`), so what matters is that a scraper cannot hurt
//! the node, and that is done by bounds, not by a framework. The request head is parsed
//! by `httparse` and limited to [`MetricsServerConfig::max_request_head`] bytes; reading
//! it must finish within [`MetricsServerConfig::read_timeout`] and writing the answer
//! within [`MetricsServerConfig::write_timeout`]; at most
//! [`MetricsServerConfig::max_connections`] are served at once. At that cap a new
//! connection **evicts the oldest one still sending its request head** (a slow-loris
//! scraper; an honest one sends its head at once), and is closed only if every
//! connection is already being answered, so a few slow connections cannot hold the
//! listener. The listener runs on its own thread with its own single-threaded runtime, so a
//! scraper that connects and never reads, or a slow encoding, never takes a turn from the
//! UDP driver's runtime: the only thing the two share is the snapshot lock, held for a
//! copy.

use super::Metrics;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Limits of a [`MetricsServer`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MetricsServerConfig {
    /// Connections served at once. At the cap a new connection evicts the oldest one
    /// still reading its request head, or is closed if there is none. Default 64.
    pub max_connections: usize,
    /// Largest request head (request line and headers) read. Default 8192 bytes.
    pub max_request_head: usize,
    /// Time allowed to receive the request head. Default 2 s.
    pub read_timeout: Duration,
    /// Time allowed to send the answer. Default 10 s.
    pub write_timeout: Duration,
}

impl Default for MetricsServerConfig {
    fn default() -> Self {
        MetricsServerConfig {
            max_connections: 64,
            max_request_head: 8192,
            read_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// A running metrics listener: `http://ADDR/metrics` (Prometheus text format) and
/// `http://ADDR/status` (JSON). Stops on [`shutdown`](Self::shutdown) or when dropped.
///
/// ```no_run
/// use rpcudp::metrics::{Metrics, MetricsServer};
/// use rpcudp::rpc::Endpoint;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = Endpoint::bind("127.0.0.1:1234".parse()?).await?;
/// let server = MetricsServer::start("127.0.0.1:9464".parse()?, Metrics::new().with_node(&node))?;
/// println!("metrics on {}", server.local_addr());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
    table: Arc<Table>,
}

/// A connection reading its head: its "head read" flag and its kill switch.
type Reading = (Arc<AtomicBool>, CancellationToken);

/// The connections being served: how many, and those still reading their head, oldest
/// first (an entry's flag is set once its head is read; such entries are skipped).
#[derive(Default, Debug)]
struct Table {
    inner: Mutex<(usize, VecDeque<Reading>)>,
    evicted: AtomicU64,
    refused: AtomicU64,
}

impl Table {
    /// Admits a connection: its "head read" flag and its kill switch, or `None` if the
    /// cap is reached and every connection is already being answered.
    fn admit(&self, max: usize) -> Option<Reading> {
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if t.0 >= max {
            loop {
                match t.1.pop_front() {
                    Some((done, kill)) if !done.load(Ordering::Acquire) => {
                        // Counted out by its task when it ends; admitted now.
                        kill.cancel();
                        self.evicted.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Some(_) => continue,
                    None => {
                        self.refused.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                }
            }
        }
        t.0 += 1;
        // Keep the queue short: drop entries whose head is read.
        if t.1.len() > 2 * max {
            t.1.retain(|(done, _)| !done.load(Ordering::Acquire));
        }
        let entry = (Arc::new(AtomicBool::new(false)), CancellationToken::new());
        t.1.push_back(entry.clone());
        Some(entry)
    }

    fn release(&self) {
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        t.0 = t.0.saturating_sub(1);
    }
}

impl MetricsServer {
    /// Binds `addr` (port 0: any free port) and serves `metrics` on a new thread, with
    /// the default limits.
    pub fn start(addr: SocketAddr, metrics: Metrics) -> io::Result<MetricsServer> {
        MetricsServer::start_with(addr, metrics, MetricsServerConfig::default())
    }

    /// [`start`](Self::start) with explicit limits.
    pub fn start_with(
        addr: SocketAddr,
        metrics: Metrics,
        config: MetricsServerConfig,
    ) -> io::Result<MetricsServer> {
        // Bound here, before the thread starts, so a bind error is the caller's to report
        // and the address is known when this returns.
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let table = Arc::new(Table::default());
        let shared = table.clone();
        let thread = std::thread::Builder::new()
            .name("rpcudp-metrics".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::warn!("metrics listener unusable: {e}");
                            return;
                        }
                    };
                    tokio::select! {
                        () = accept_loop(listener, Arc::new(metrics), config, shared) => {}
                        () = stopped.cancelled() => {}
                    }
                });
            })?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
            table,
        })
    }

    /// The bound address (real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections closed while still sending their request head, to make room for a
    /// new one (the slow-connection defence), and connections refused because every
    /// one at the cap was already being answered.
    pub fn evicted_and_refused(&self) -> (u64, u64) {
        (
            self.table.evicted.load(Ordering::Relaxed),
            self.table.refused.load(Ordering::Relaxed),
        )
    }

    /// Stops listening and waits for the thread to end (connections in progress are
    /// dropped).
    pub fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    config: MetricsServerConfig,
    table: Arc<Table>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::debug!("metrics accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some((head_read, kill)) = table.admit(config.max_connections.max(1)) else {
            tracing::debug!(%peer, "metrics connection refused: too many at once");
            drop(stream);
            continue;
        };
        let metrics = metrics.clone();
        let config = config.clone();
        let table = table.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = serve_one(stream, &metrics, &config, &head_read) => {}
                () = kill.cancelled() => {
                    tracing::debug!(%peer, "metrics connection evicted: head too slow");
                }
            }
            table.release();
        });
    }
}

/// What a request asked for, once its head is read.
enum Asked {
    Metrics,
    Status,
    NotFound,
    NotGet,
    Bad,
    TooLarge,
}

async fn read_head(stream: &mut TcpStream, max: usize) -> io::Result<Asked> {
    let mut buf = vec![0u8; max];
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Ok(Asked::TooLarge);
        }
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return Ok(Asked::Bad),
            Ok(httparse::Status::Complete(_)) => {
                if req.method != Some("GET") {
                    return Ok(Asked::NotGet);
                }
                let path = req.path.unwrap_or("");
                let path = path.split('?').next().unwrap_or("");
                return Ok(match path {
                    "/metrics" => Asked::Metrics,
                    "/status" => Asked::Status,
                    _ => Asked::NotFound,
                });
            }
        }
    }
}

async fn serve_one(
    mut stream: TcpStream,
    metrics: &Metrics,
    config: &MetricsServerConfig,
    head_read: &AtomicBool,
) {
    let asked = match tokio::time::timeout(
        config.read_timeout,
        read_head(&mut stream, config.max_request_head),
    )
    .await
    {
        Ok(Ok(a)) => a,
        // Timed out, closed early or failed: nothing to answer.
        Ok(Err(_)) | Err(_) => return,
    };
    // Being answered now: no longer evictable.
    head_read.store(true, Ordering::Release);
    let (status, content_type, body) = match asked {
        Asked::Metrics => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        Asked::Status => (
            "200 OK",
            "application/json",
            serde_json::to_string_pretty(&metrics.status())
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")),
        ),
        Asked::NotFound => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /status\n".into(),
        ),
        Asked::NotGet => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
        Asked::Bad => ("400 Bad Request", "text/plain", "bad request\n".into()),
        Asked::TooLarge => (
            "431 Request Header Fields Too Large",
            "text/plain",
            "request head too large\n".into(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    };
    if tokio::time::timeout(config.write_timeout, write)
        .await
        .is_err()
    {
        tracing::debug!("metrics answer not taken within the write timeout; closed");
    }
}
