//! The RPC endpoint under asyncio: [`Endpoint`], the sans-IO `rpc::Endpoint` of
//! rpcudp-proto driven from `rpcudp_rs.protocol.RPCProtocol`.
//!
//! Owns: feeding the core the datagrams and timer firings of one asyncio transport,
//! sending its transmits through `transport.sendto`, scheduling its next deadline with
//! `loop.call_at`, and resolving the Python futures of calls. Does not own any protocol
//! decision (what is a request, a duplicate, an answer, when to resend or give up: the
//! core's) nor running handlers (the Python class does, then answers through
//! `Endpoint.respond` or `Endpoint.abandon`).
//!
//! Time: the core's `now` is `Instant::now()`, CLOCK_MONOTONIC, the clock asyncio's
//! `loop.time()` reads; one pair of readings at `Endpoint.attach` maps one onto the
//! other for `loop.call_at`. Every method is a few microseconds of work holding the GIL
//! (releasing it would cost more than the work).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use rpcudp_proto::rpc::{
    self, CallFailure, CallId, CallOptions, CallRefused, EndpointConfig, Event, RequestToken,
};
use rpcudp_proto::wire::rpc::Dialect;

use crate::value::{to_py, to_value};

/// One RPC endpoint on one asyncio datagram transport.
/// Most datagrams read from the socket after the one asyncio handed over, per call: a
/// bound on the work of one event-loop callback.
const MAX_DRAIN: usize = 64;

#[pyclass(module = "rpcudp_rs._native", unsendable)]
pub struct Endpoint {
    ep: rpc::Endpoint,
    options: CallOptions,
    io: Option<Io>,
    /// Futures of the calls in flight.
    pending: HashMap<CallId, Py<PyAny>>,
    /// The deadline `loop.call_at` is set for, and its handle.
    timer: Option<(Instant, Py<PyAny>)>,
    /// Where datagrams drained from the socket are read.
    recv_buf: Vec<u8>,
    /// Requests handed to Python and not yet answered, by the number Python holds.
    serving: HashMap<u64, RequestToken>,
    next_token: u64,
}

/// The Python side's transport and loop, from `Endpoint.attach`.
struct Io {
    /// A duplicate of the transport's socket: datagrams waiting after the one asyncio
    /// handed over are read here, and transmits sent here, without a Python call each
    /// (`transport.sendto` takes over when the socket buffer is full).
    sock: Option<UdpSocket>,
    sendto: Py<PyAny>,
    call_at: Py<PyAny>,
    on_timer: Py<PyAny>,
    /// `Instant` and `loop.time()` read together.
    base: Instant,
    base_loop: f64,
}

/// Parses a Python address tuple `(host, port)` or `(host, port, flow, scope)`.
pub fn parse_addr(addr: &Bound<'_, PyAny>) -> PyResult<SocketAddr> {
    let t = addr.cast::<PyTuple>()?;
    if t.len() < 2 {
        return Err(PyValueError::new_err("address must be (host, port)"));
    }
    let host: String = t.get_item(0)?.extract()?;
    let port: u16 = t.get_item(1)?.extract()?;
    let ip: IpAddr = host
        .parse()
        .map_err(|_| PyValueError::new_err(format!("not an IP address: {host:?}")))?;
    Ok(SocketAddr::new(ip, port))
}

/// A `SocketAddr` as Python's `(host, port)`.
pub fn addr_tuple(py: Python<'_>, addr: SocketAddr) -> PyResult<Bound<'_, PyTuple>> {
    (addr.ip().to_string(), addr.port()).into_pyobject(py)
}

fn dialect_of(name: &str) -> PyResult<Dialect> {
    match name {
        "rpcudp" => Ok(Dialect::Rpcudp),
        "storj" => Ok(Dialect::Storj),
        other => Err(PyValueError::new_err(format!(
            "unknown dialect {other:?} (expected \"rpcudp\" or \"storj\")"
        ))),
    }
}

#[pymethods]
impl Endpoint {
    /// A new endpoint. `wait_timeout` is the whole time a call may take; with `retries`
    /// resends it is split into `retries + 1` equal attempts (same message id each).
    #[new]
    #[pyo3(signature = (wait_timeout=5.0, retries=0, dialect="rpcudp", amplification_factor=None, max_concurrent_requests=None, max_requests_per_source=None, dedup_capacity=None, strict_local=None, seed=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        wait_timeout: f64,
        retries: u32,
        dialect: &str,
        amplification_factor: Option<usize>,
        max_concurrent_requests: Option<usize>,
        max_requests_per_source: Option<usize>,
        dedup_capacity: Option<usize>,
        strict_local: Option<bool>,
        seed: Option<u64>,
    ) -> PyResult<Self> {
        if !(wait_timeout.is_finite() && wait_timeout > 0.0) {
            return Err(PyValueError::new_err(
                "wait_timeout must be a positive number",
            ));
        }
        let mut config = EndpointConfig::for_dialect(dialect_of(dialect)?);
        // rpcudp 5.0.1 hands an error-shaped answer (`{"__rpcudp_error__": ...}`) to the
        // caller as the plain value it is: so does this drop-in.
        config.error_replies = false;
        if let Some(f) = amplification_factor {
            config.limits.amplification_factor = f;
        }
        if let Some(n) = max_concurrent_requests {
            config.max_concurrent_requests = n;
        }
        if let Some(n) = max_requests_per_source {
            config.limits.max_requests_per_source = n;
        }
        if let Some(n) = dedup_capacity {
            config.dedup_capacity = n;
        }
        if let Some(s) = strict_local {
            config.limits.strict_local = s;
        }
        let total = Duration::from_secs_f64(wait_timeout.min(1e9));
        let options = CallOptions {
            attempt_timeout: total / (retries.saturating_add(1)),
            retries,
            backoff: 1.0,
            jitter: 0.0,
            deadline: Some(total),
            ..CallOptions::default()
        };
        let seed = seed.unwrap_or_else(rand::random);
        Ok(Endpoint {
            ep: rpc::Endpoint::new(config, seed),
            options,
            io: None,
            pending: HashMap::new(),
            timer: None,
            serving: HashMap::new(),
            next_token: 0,
            recv_buf: vec![0; 65536],
        })
    }

    /// Connects the endpoint to `transport.sendto`, `loop.call_at`, the loop's current
    /// `loop.time()` and the callable to run at each deadline. `fd`, if given, is a
    /// duplicate of the transport's (non-blocking) socket that the endpoint takes over
    /// and closes in `close`.
    #[pyo3(signature = (sendto, call_at, loop_now, on_timer, fd=None))]
    fn attach(
        &mut self,
        sendto: Py<PyAny>,
        call_at: Py<PyAny>,
        loop_now: f64,
        on_timer: Py<PyAny>,
        fd: Option<i32>,
    ) {
        let sock = fd.filter(|fd| *fd >= 0).map(|fd| {
            // SAFETY: the Python side passes a descriptor fresh from os.dup() that nothing
            // else owns or closes: the OwnedFd is its only owner from here on.
            #[allow(unsafe_code)]
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            UdpSocket::from(owned)
        });
        self.io = Some(Io {
            sock,
            sendto,
            call_at,
            on_timer,
            base: Instant::now(),
            base_loop: loop_now,
        });
    }

    /// One datagram from `addr`, then (up to `MAX_DRAIN` more) the datagrams already
    /// waiting on the socket. Returns the requests they carry, as `(token, method, args,
    /// sender)`, for the Python side to serve, or None (answers, duplicates answered from
    /// the cache, or things dropped and counted).
    fn datagram<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        addr: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        let now = Instant::now();
        if let Ok(from) = parse_addr(addr) {
            self.ep.handle_datagram(now, from, data);
        }
        if let Some(sock) = self.io.as_ref().and_then(|io| io.sock.as_ref()) {
            let buf = &mut self.recv_buf;
            for _ in 0..MAX_DRAIN {
                match sock.recv_from(buf) {
                    Ok((n, from)) => self.ep.handle_datagram(now, from, &buf[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    // WouldBlock: drained. Another error (ICMP's ECONNREFUSED) is asyncio's
                    // to see on its next read.
                    Err(_) => break,
                }
            }
        }
        self.flush(py, now)
    }

    /// The deadline came (called by the timer set with `loop.call_at`).
    fn timeout(&mut self, py: Python<'_>) -> PyResult<()> {
        self.timer = None;
        let now = Instant::now();
        self.ep.handle_timeout(now);
        self.flush(py, now)?;
        Ok(())
    }

    /// Starts a call of `method(*args)` on `addr`; `future` gets `(True, value)` or
    /// `(False, None)`. Raises `ValueError` for a body over the dialect's limit,
    /// `TypeError` for an argument that cannot be sent.
    fn call(
        &mut self,
        py: Python<'_>,
        addr: &Bound<'_, PyAny>,
        method: &str,
        args: &Bound<'_, PyTuple>,
        future: Py<PyAny>,
    ) -> PyResult<()> {
        if self.io.is_none() {
            return Err(PyRuntimeError::new_err(
                "no transport: the protocol is not connected",
            ));
        }
        let to = parse_addr(addr)?;
        let args = args
            .iter()
            .map(|a| to_value(&a))
            .collect::<PyResult<Vec<_>>>()?;
        let now = Instant::now();
        let call = self
            .ep
            .call(now, to, method, &args, self.options.clone())
            .map_err(|e| match e {
                CallRefused::RequestTooLarge { .. } => PyValueError::new_err(e.to_string()),
                CallRefused::Unsendable(_) => pyo3::exceptions::PyTypeError::new_err(e.to_string()),
                CallRefused::TooManyOutstanding { .. } => PyRuntimeError::new_err(e.to_string()),
            })?;
        self.pending.insert(call, future);
        self.flush(py, now)?;
        Ok(())
    }

    /// Answers the request `token` with `value` (sent, or refused by the core's limits
    /// and counted). A value that cannot be serialized raises `TypeError`, and the
    /// request gets no answer.
    fn respond(&mut self, py: Python<'_>, token: u64, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let Some(token) = self.serving.remove(&token) else {
            return Ok(());
        };
        let now = Instant::now();
        let converted = to_value(value);
        match converted {
            Ok(ref v) => self.ep.respond(now, token, v),
            Err(_) => self.ep.abandon(now, token),
        }
        self.flush(py, now)?;
        converted.map(|_| ())
    }

    /// Sends no answer to the request `token` (unknown method, handler raised).
    fn abandon(&mut self, py: Python<'_>, token: u64) -> PyResult<()> {
        let Some(token) = self.serving.remove(&token) else {
            return Ok(());
        };
        let now = Instant::now();
        self.ep.abandon(now, token);
        self.flush(py, now)?;
        Ok(())
    }

    /// The transport is gone: every call in flight ends with `(False, None)`, the timer
    /// is cancelled and the references to the transport and loop are dropped.
    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some((_, handle)) = self.timer.take() {
            handle.call_method0(py, "cancel")?;
        }
        self.io = None;
        for (call, fut) in std::mem::take(&mut self.pending) {
            self.ep.cancel(call);
            resolve(py, &fut, None)?;
        }
        Ok(())
    }

    /// Calls in flight.
    fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// The core's counters, as a dict of ints (datagrams in and out, duplicates answered
    /// from the cache, drops by reason, timeouts, ...).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, value) in crate::stats::rpc_counters(self.ep.stats()) {
            d.set_item(name, value)?;
        }
        d.set_item("calls_outstanding", self.ep.outstanding_calls())?;
        d.set_item("dedup_entries", self.ep.dedup_entries())?;
        Ok(d)
    }
}

/// Sets `(True, value)` (or `(False, None)`) on a future unless it is already done
/// (cancelled by its awaiter).
fn resolve(py: Python<'_>, fut: &Py<PyAny>, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
    let fut = fut.bind(py);
    if fut.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    let result = match value {
        Some(v) => PyTuple::new(py, [true.into_pyobject(py)?.to_owned().into_any(), v])?,
        None => PyTuple::new(
            py,
            [
                false.into_pyobject(py)?.to_owned().into_any(),
                py.None().into_bound(py),
            ],
        )?,
    };
    fut.call_method1("set_result", (result,))?;
    Ok(())
}

impl Endpoint {
    /// Sends what the core queued, settles finished calls, re-arms the timer; returns the
    /// request to serve, if one came.
    fn flush<'py>(
        &mut self,
        py: Python<'py>,
        now: Instant,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        self.send_all(py)?;
        let mut requests: Option<Bound<'py, PyList>> = None;
        while let Some(event) = self.ep.poll_event() {
            match event {
                Event::Request {
                    token,
                    from,
                    method,
                    args,
                } => {
                    let converted = args
                        .iter()
                        .map(|a| to_py(py, a))
                        .collect::<PyResult<Vec<_>>>();
                    let Ok(converted) = converted else {
                        self.ep.abandon(now, token);
                        continue;
                    };
                    self.next_token += 1;
                    self.serving.insert(self.next_token, token);
                    let request = PyTuple::new(
                        py,
                        [
                            self.next_token.into_pyobject(py)?.into_any(),
                            method.into_pyobject(py)?.into_any(),
                            PyList::new(py, converted)?.into_any(),
                            addr_tuple(py, from)?.into_any(),
                        ],
                    )?;
                    match &requests {
                        Some(list) => list.append(request)?,
                        None => requests = Some(PyList::new(py, [request])?),
                    }
                }
                Event::CallSucceeded { call, value } => {
                    if let Some(fut) = self.pending.remove(&call) {
                        // An answer Python cannot represent (a map as a dict key) counts
                        // as no answer.
                        let v = to_py(py, &value).ok();
                        let failed = v.is_none();
                        resolve(py, &fut, v)?;
                        if failed {
                            tracing_free_log(py, "answer could not be converted to Python")?;
                        }
                    }
                }
                Event::CallFailed { call, error } => {
                    // With error replies off (as rpcudp 5.0.1, see `new`) only a timeout
                    // fails a call; a failure of any kind is `(False, None)` in Python.
                    let (CallFailure::Timeout | CallFailure::Remote { .. }) = error;
                    if let Some(fut) = self.pending.remove(&call) {
                        resolve(py, &fut, None)?;
                    }
                }
            }
        }
        self.send_all(py)?;
        self.arm(py)?;
        Ok(requests)
    }

    /// Sends every queued transmit: on the socket directly, through `transport.sendto`
    /// when that would block (asyncio buffers it) or without a socket.
    fn send_all(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(io) = &self.io else {
            while self.ep.poll_transmit().is_some() {}
            return Ok(());
        };
        while let Some(t) = self.ep.poll_transmit() {
            if let Some(sock) = &io.sock {
                match sock.send_to(&t.payload, t.destination) {
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    // Unreachable, refused: the datagram is lost, as a sent one may be; the
                    // core's timer covers it.
                    Err(_) => continue,
                }
            }
            let payload = pyo3::types::PyBytes::new(py, &t.payload);
            // A send error (closed transport) is the transport's to log.
            let _ = io
                .sendto
                .bind(py)
                .call1((payload, addr_tuple(py, t.destination)?));
        }
        Ok(())
    }

    /// Sets `loop.call_at` for the core's next deadline if it is sooner than the one set
    /// (a later one is left alone: firing early is harmless and re-arms).
    fn arm(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(io) = &self.io else { return Ok(()) };
        let Some(deadline) = self.ep.poll_timeout() else {
            return Ok(());
        };
        if let Some((set, _)) = &self.timer {
            if *set <= deadline {
                return Ok(());
            }
        }
        if let Some((_, old)) = self.timer.take() {
            old.call_method0(py, "cancel")?;
        }
        let at = io.base_loop + deadline.saturating_duration_since(io.base).as_secs_f64();
        let handle = io.call_at.call1(py, (at, io.on_timer.clone_ref(py)))?;
        self.timer = Some((deadline, handle));
        Ok(())
    }
}

/// Logs a warning through Python's `logging` (logger `rpcudp_rs.protocol`).
fn tracing_free_log(py: Python<'_>, message: &str) -> PyResult<()> {
    let logging = py.import("logging")?;
    let log = logging.call_method1("getLogger", ("rpcudp_rs.protocol",))?;
    log.call_method1("warning", (message,))?;
    Ok(())
}
