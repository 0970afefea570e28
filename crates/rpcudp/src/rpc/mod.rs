//! RPC over UDP on tokio: the [`Endpoint`], a driver around the sans-IO core
//! [`rpcudp_proto::rpc`].
//!
//! A [`Endpoint`] is server and client on one UDP socket, like Python rpcudp's `RPCProtocol`:
//! it serves the handlers registered on it by method name and calls methods on other
//! nodes, speaking the `rpcudp` or `storj` dialect byte for byte
//! ([docs/wire.md](https://github.com/rpcudp-rs/rpcudp-rs/blob/main/docs/wire.md)). What the Python peers lack is done by the core and configured
//! through [`Config::endpoint`]: retries with the same message id, duplicate
//! suppression, responses accepted only from the address the request went to, and a
//! bound on everything.
//!
//! ```
//! use rpcudp::rpc::{HandlerError, Endpoint};
//! use rpcudp::Value;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Endpoint::bind("127.0.0.1:0".parse()?).await?;
//! // A typed handler: the args array is deserialized into the tuple.
//! server.register_typed("add", |_from, (a, b): (i64, i64)| async move { a + b });
//! // A dynamic handler: values in, a value (or no answer) out.
//! server.register("echo", |_from, args: Vec<Value>| async move {
//!     Ok::<_, HandlerError>(Value::Array(args))
//! });
//!
//! let client = Endpoint::bind("127.0.0.1:0".parse()?).await?;
//! let sum: i64 = client.call_typed(server.local_addr(), "add", (2, 3)).await?;
//! assert_eq!(sum, 5);
//! let echoed = client
//!     .call(server.local_addr(), "echo", vec![Value::from("hi")])
//!     .await?;
//! assert_eq!(echoed, Value::Array(vec![Value::from("hi")]));
//! client.shutdown().await;
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod app;
mod error;
mod handler;

pub use crate::udp::BindError;
pub use error::{CallError, HandlerError, NoAnswer};
pub use rpcudp_proto::rpc::{CallOptions, EndpointConfig, Stats};
/// Per-source limits and address validation, set in `Config::endpoint.limits`
/// (see `SECURITY.md`).
pub use rpcudp_proto::rpc::{LimitsConfig, ValidationProbe};
pub use rpcudp_proto::wire::rpc::Dialect;
pub use rpcudp_proto::wire::value::{DecodeLimits, UnsendableValue};

use crate::driver::{Driver, DriverHandle};
use app::{CallCommand, Command, EndpointApp};
use handler::Handlers;
use rmpv::Value;
use rpcudp_proto::wire::typed::{from_value, to_value};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// How a [`Endpoint`] behaves: the core's limits and defaults plus the driver's own knobs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The sans-IO core's configuration: dialect, size and concurrency limits, duplicate
    /// cache, default call options.
    pub endpoint: EndpointConfig,
    /// Seed for message ids and retry jitter; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// How many calls may wait for the driver before `call` itself waits (backpressure,
    /// so a burst of callers never queues without bound). Default 1024.
    pub call_queue: usize,
    /// On [`Endpoint::shutdown`], how long running handlers may still finish and be answered
    /// before they are dropped. Default 1 s.
    pub shutdown_grace: Duration,
    /// Receive buffer size; a datagram is read whole up to this size. Default 65536,
    /// the largest UDP payload.
    pub recv_buffer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoint: EndpointConfig::default(),
            seed: None,
            call_queue: 1024,
            shutdown_grace: Duration::from_secs(1),
            recv_buffer: 65_536,
        }
    }
}

impl Config {
    /// The defaults for `dialect` (the core's limits for that dialect, e.g. the storj
    /// dialect's smaller request body).
    pub fn for_dialect(dialect: Dialect) -> Self {
        Config {
            endpoint: EndpointConfig::for_dialect(dialect),
            ..Config::default()
        }
    }
}

/// Counters of a [`Endpoint`]: the core's plus the driver's. A snapshot, cheap to take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// The core's counters: datagrams in/out, malformed, unknown and spoofed responses,
    /// timeouts, retries, duplicates answered from the cache, refused for overload.
    pub core: Stats,
    /// Datagrams the operating system refused to send.
    pub send_errors: u64,
    /// Errors reported while receiving (the socket stays in use).
    pub recv_errors: u64,
    /// Requests for a method with no handler (not answered, as the Python peers; logged
    /// at warn, rate-limited).
    pub unknown_methods: u64,
    /// Handlers that returned an error (a `HandlerError`, or `Err` from a typed handler:
    /// an error reply, or no answer for [`HandlerError::no_answer`] / [`NoAnswer`]) or
    /// whose arguments did not match (not answered). Logged at warn, rate-limited.
    pub handler_failures: u64,
    /// Handlers that panicked (not answered; the node goes on; logged at warn).
    pub handler_panics: u64,
    /// Handlers running right now.
    pub handlers_running: usize,
    /// Calls made by this node and not finished yet.
    pub calls_outstanding: usize,
    /// Requests remembered by the duplicate cache (answered or in progress).
    pub dedup_entries: usize,
    /// Bytes of answers held by the duplicate cache.
    pub dedup_bytes: usize,
}

/// The `outcome` field of a call's debug log line.
fn call_outcome(result: &Result<Value, CallError>) -> &'static str {
    match result {
        Ok(_) => "answered",
        Err(CallError::Timeout(_)) => "timed_out",
        Err(CallError::Remote { .. }) => "error_reply",
        Err(CallError::RequestTooLarge { .. }) => "refused_too_large",
        Err(CallError::Overloaded { .. }) => "refused_overload",
        Err(CallError::Decode { .. }) => "undecodable_answer",
        Err(CallError::Unsendable(_)) => "refused_unsendable",
        Err(CallError::Encode(_)) => "unencodable_arguments",
        Err(CallError::Io(_)) => "io_error",
        Err(CallError::ShutDown) => "shut_down",
    }
}

/// One UDP socket that serves registered handlers and makes calls: RPC over UDP,
/// wire-compatible with Python `rpcudp` 5.0.1 and `storjrpcudp` 2.5.
///
/// Cheap to clone; every clone drives the same socket. The socket's driver task stops on
/// [`Endpoint::shutdown`] or when every clone is dropped (a handler that captured a clone
/// keeps the node alive, so call `shutdown` in that case).
///
/// - Serving: [`register`](Endpoint::register) (dynamic) and
///   [`register_typed`](Endpoint::register_typed). Handlers are async, receive the sender's
///   address, and run concurrently (up to the core's `max_concurrent_requests`; more are
///   dropped and counted). A handler's future is first polled right in the socket's
///   driver: one that completes without waiting (most do) is answered there with no task
///   and no thread hand-off; one that waits is moved to its own task. So a handler
///   should not compute for long before its first `.await`: the socket is not read
///   meanwhile (use `tokio::task::spawn_blocking` for heavy work).
/// - Calling: [`call`](Endpoint::call) / [`call_with`](Endpoint::call_with) (dynamic) and
///   [`call_typed`](Endpoint::call_typed) / [`call_typed_with`](Endpoint::call_typed_with).
/// - Observing: [`stats`](Endpoint::stats), [`local_addr`](Endpoint::local_addr).
///
/// ```
/// use rpcudp::rpc::{CallError, CallOptions, Endpoint};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Endpoint::bind("127.0.0.1:0".parse()?).await?;
/// server.register_typed("sayhi", |from, name: String| async move {
///     format!("Hello {name} you live at {}:{}", from.ip(), from.port())
/// });
/// let client = Endpoint::bind("127.0.0.1:0".parse()?).await?;
/// let hi: String = client
///     .call_typed(server.local_addr(), "sayhi", ("Snake Plissken",))
///     .await?;
/// assert!(hi.starts_with("Hello Snake Plissken you live at 127.0.0.1:"));
///
/// // A handler's error reaches the caller as an error reply, with its message.
/// server.register_typed("half", |_from, (x,): (i64,)| async move {
///     if x % 2 == 0 { Ok(x / 2) } else { Err(format!("{x} is odd")) }
/// });
/// let err = client.call_typed::<i64>(server.local_addr(), "half", (3,)).await.unwrap_err();
/// assert!(matches!(err, CallError::Remote { message } if message == "3 is odd"));
///
/// // An unknown method gets no answer: the caller times out, as with the Python peers.
/// let mut options = client.default_call_options();
/// options.attempt_timeout = Duration::from_millis(100);
/// let err = client
///     .call_with(server.local_addr(), "nope", vec![], options)
///     .await
///     .unwrap_err();
/// assert!(matches!(err, CallError::Timeout(_)));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

struct Inner {
    local_addr: SocketAddr,
    dialect: Dialect,
    default_call: CallOptions,
    driver: DriverHandle<Command>,
    handlers: Handlers,
    stats: Arc<Mutex<EndpointStats>>,
    next_ticket: AtomicU64,
    shutdown_grace: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("local_addr", &self.inner.local_addr)
            .field("dialect", &self.inner.dialect)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Binds a node to `addr` (port 0 picks a free port) with the default configuration
    /// (rpcudp dialect, the Python peers' 5 s timeout, no retries).
    ///
    /// The error says which step failed and with what address (it converts into an
    /// `io::Error`, so `?` works in a function returning `io::Result`).
    pub async fn bind(addr: SocketAddr) -> Result<Endpoint, BindError> {
        Endpoint::bind_with(addr, Config::default()).await
    }

    /// Binds a node to `addr` with `config`.
    pub async fn bind_with(addr: SocketAddr, config: Config) -> Result<Endpoint, BindError> {
        let socket = crate::udp::Socket::bind(addr).await?;
        Endpoint::from_socket(socket, config).map_err(|source| BindError::Bind { addr, source })
    }

    /// Runs a node on an already bound datagram endpoint (for sockets set up with options
    /// of their own). Must be called inside a tokio runtime: it spawns the driver task.
    pub fn from_socket(socket: crate::udp::Socket, config: Config) -> io::Result<Endpoint> {
        let local_addr = socket.local_addr()?;
        let seed = config.seed.unwrap_or_else(rand::random);
        let dialect = config.endpoint.dialect;
        let default_call = config.endpoint.default_call.clone();
        let core = rpcudp_proto::rpc::Endpoint::new(config.endpoint, seed);
        let handlers = Handlers::default();
        let stats = Arc::new(Mutex::new(EndpointStats::default()));
        let app = EndpointApp::new(handlers.clone(), stats.clone());
        let (driver, handle) =
            Driver::with_recv_buffer(socket, core, app, config.call_queue, config.recv_buffer);
        tokio::spawn(async move { driver.run().await.finished() });
        Ok(Endpoint {
            inner: Arc::new(Inner {
                local_addr,
                dialect,
                default_call,
                driver: handle,
                handlers,
                stats,
                next_ticket: AtomicU64::new(0),
                shutdown_grace: config.shutdown_grace,
            }),
        })
    }

    /// The address the socket is bound to, with the real port.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The dialect this node speaks.
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// The call options [`call`](Endpoint::call) uses (from [`EndpointConfig::default_call`]);
    /// a starting point for [`call_with`](Endpoint::call_with).
    pub fn default_call_options(&self) -> CallOptions {
        self.inner.default_call.clone()
    }

    /// Serves `method` with a dynamic handler: it gets the sender's address and the
    /// argument values, and returns the answer, or a [`HandlerError`]: an error reply
    /// the caller sees ([`HandlerError::new`], `From<&str>`), or no answer at all
    /// ([`HandlerError::no_answer`]: the caller times out, as when a Python handler
    /// raises). Replaces any handler of that name.
    ///
    /// ```
    /// # use rpcudp::rpc::{HandlerError, Endpoint};
    /// # use rpcudp::Value;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let node = Endpoint::bind("127.0.0.1:0".parse().unwrap()).await?;
    /// node.register("first", |_from, args: Vec<Value>| async move {
    ///     args.into_iter().next().ok_or(HandlerError::from("needs an argument"))
    /// });
    /// # Ok(()) }
    /// ```
    pub fn register<F, Fut>(&self, method: impl Into<String>, handler: F)
    where
        F: Fn(SocketAddr, Vec<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
    {
        self.inner
            .handlers
            .insert(method.into(), Handlers::dynamic(handler));
    }

    /// Serves `method` with a typed handler: the arguments are deserialized into `A` (a
    /// tuple takes them in order, a struct takes them as its fields in order or as one
    /// map of its fields, a lone argument can be taken as itself) and the result is
    /// serialized in the named encoding: structs as maps with their field names, enum
    /// variants as `{variant: value}` (the table in [`rpcudp_proto::wire::typed`]).
    /// Arguments that do not fit `A` get no answer (logged at warn, counted in
    /// [`EndpointStats::handler_failures`]), as the Python peers behave.
    ///
    /// A handler may return a `Result<T, E>` (`T`, `E`: `Serialize`): `Ok(v)` answers
    /// `v` itself (not serde's enum form); `Err(e)` sends an error reply carrying `e` (a
    /// str as it is, another value as its text): the Rust caller sees
    /// [`CallError::Remote`], a Python caller the map `{"__rpcudp_error__": message}`
    /// (docs/wire.md). `Err(NoAnswer)` (or a [`HandlerError::no_answer`]) sends nothing,
    /// as when a Python `rpc_*` method raises; the caller sees [`CallError::Timeout`].
    /// Both are logged at warn and counted in [`EndpointStats::handler_failures`].
    ///
    /// ```
    /// # use rpcudp::rpc::Endpoint;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let node = Endpoint::bind("127.0.0.1:0".parse().unwrap()).await?;
    /// node.register_typed("half", |_from, (x,): (i64,)| async move {
    ///     if x % 2 == 0 { Ok(x / 2) } else { Err(format!("{x} is odd")) }
    /// });
    /// # Ok(()) }
    /// ```
    ///
    /// Note that serde turns `Vec<u8>` into an array of ints; use [`Value`] (or
    /// `serde_bytes`) for MessagePack `bin`.
    pub fn register_typed<F, A, R, Fut>(&self, method: impl Into<String>, handler: F)
    where
        F: Fn(SocketAddr, A) -> Fut + Send + Sync + 'static,
        A: DeserializeOwned + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: Serialize + 'static,
    {
        self.inner
            .handlers
            .insert(method.into(), Handlers::typed(handler));
    }

    /// Stops serving `method`; true if it was served.
    pub fn unregister(&self, method: &str) -> bool {
        self.inner.handlers.remove(method)
    }

    /// Calls `method` on the node at `to` with the default options and returns the
    /// answer.
    pub async fn call(
        &self,
        to: SocketAddr,
        method: &str,
        args: Vec<Value>,
    ) -> Result<Value, CallError> {
        self.call_with(to, method, args, self.default_call_options())
            .await
    }

    /// Calls `method` on the node at `to` with per-call `options` (attempt timeout,
    /// retries of the same datagram).
    pub async fn call_with(
        &self,
        to: SocketAddr,
        method: &str,
        args: Vec<Value>,
        options: CallOptions,
    ) -> Result<Value, CallError> {
        // Debug level: a disabled span costs one cached interest check.
        let span = tracing::debug_span!("rpc_call", method, peer = %to);
        let result = self.call_inner(to, method, args, options).await;
        tracing::debug!(parent: &span, outcome = call_outcome(&result), "call finished");
        result
    }

    async fn call_inner(
        &self,
        to: SocketAddr,
        method: &str,
        args: Vec<Value>,
        options: CallOptions,
    ) -> Result<Value, CallError> {
        let ticket = self.inner.next_ticket.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let cmd = CallCommand {
            ticket,
            to,
            method: method.to_string(),
            args,
            options,
            reply,
        };
        self.inner
            .driver
            .send(Command::Call(cmd))
            .await
            .map_err(|_| CallError::ShutDown)?;
        // If this future is dropped before the answer, the guard tells the driver to
        // forget the call, so its entry does not wait for the timeout.
        let mut guard = CancelOnDrop {
            driver: &self.inner.driver,
            ticket,
            armed: true,
        };
        let result = answer.await.unwrap_or(Err(CallError::ShutDown));
        guard.armed = false;
        result
    }

    /// Calls `method` with typed arguments and deserializes the answer into `R`.
    ///
    /// `args` is serialized to MessagePack in the named encoding (structs as maps with
    /// their field names, see [`rpcudp_proto::wire::typed`]): a tuple (or tuple struct)
    /// becomes the args array (`(a, b)` sends two arguments, `()` none), any other
    /// value is sent as the one argument (a struct as one map, which a Python handler
    /// receives as a dict), except a bare `None`, which serializes like `()` and so
    /// sends none (write `(None::<T>,)` for one nil argument). Arguments that fail to
    /// serialize are [`CallError::Encode`]; an answer that does not fit `R` is
    /// [`CallError::Decode`] (a struct is read from a map of its fields or an array of
    /// them); an error reply is [`CallError::Remote`].
    pub async fn call_typed<R: DeserializeOwned>(
        &self,
        to: SocketAddr,
        method: &str,
        args: impl Serialize,
    ) -> Result<R, CallError> {
        self.call_typed_with(to, method, args, self.default_call_options())
            .await
    }

    /// [`call_typed`](Endpoint::call_typed) with per-call options.
    pub async fn call_typed_with<R: DeserializeOwned>(
        &self,
        to: SocketAddr,
        method: &str,
        args: impl Serialize,
        options: CallOptions,
    ) -> Result<R, CallError> {
        let args = match to_value(&args) {
            Ok(Value::Array(items)) => items,
            Ok(Value::Nil) => Vec::new(),
            Ok(other) => vec![other],
            Err(e) => return Err(CallError::Encode(e.to_string())),
        };
        let value = self.call_with(to, method, args, options).await?;
        from_value::<R>(&value).map_err(|e| CallError::Decode {
            value,
            reason: e.to_string(),
        })
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> EndpointStats {
        self.inner
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Shuts the node down: outstanding calls fail with [`CallError::ShutDown`], running
    /// handlers get [`Config::shutdown_grace`] to finish (their answers are sent),
    /// then they are dropped and the socket is closed. Later calls fail with `ShutDown`.
    /// Returns once the driver has stopped; calling it again returns at once.
    pub async fn shutdown(&self) {
        let (done, stopped) = oneshot::channel();
        let grace = self.inner.shutdown_grace;
        if self
            .inner
            .driver
            .send_urgent(Command::Shutdown { grace, done })
            .is_ok()
        {
            // An error means the driver already stopped: that is the goal anyway.
            let _ = stopped.await;
        }
    }
}

struct CancelOnDrop<'a> {
    driver: &'a DriverHandle<Command>,
    ticket: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.driver.send_urgent(Command::Cancel(self.ticket));
        }
    }
}
