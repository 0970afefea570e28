//! The tokio DHT node under asyncio: [`Dht`], `rpcudp::kad::Dht` on a runtime thread of
//! its own, its answers handed back to the asyncio loop that asked.
//!
//! Owns: the runtime thread (one per node, started by `Dht(...)`, joined by
//! `Dht.stop()`), and the bridge: each command runs as a task on that runtime, and its
//! outcome reaches Python through `loop.call_soon_threadsafe(resolve, future, ok,
//! value)`, the one call made with the GIL on the runtime thread. Does not own any
//! Kademlia decision (the core's `kad::Node`) nor persistence (`rpcudp::kad`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{mpsc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use rpcudp::kad::{DhtConfig, NodeId};
use tokio::sync::oneshot;

use crate::endpoint::{addr_tuple, parse_addr};
use crate::value::{to_py, to_value};

/// A running DHT node.
#[pyclass(module = "rpcudp_rs._native")]
pub struct Dht {
    id: NodeId,
    local_addr: SocketAddr,
    /// `resolve(future, ok, value)`, a Python callable run on the asyncio loop.
    resolve: Py<PyAny>,
    /// Everything that holds the runtime, the socket or the state file: taken by `stop`.
    running: Mutex<Option<Running>>,
}

struct Running {
    dht: rpcudp::kad::Dht,
    handle: tokio::runtime::Handle,
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

/// What a command answers, converted to Python on the loop's side of the bridge.
enum Outcome {
    Count(usize),
    Value(Option<rmpv::Value>),
    /// A record's target (the 20-byte key it is stored under).
    Target(NodeId),
    Failed(String),
}

fn key32(bytes: &[u8], what: &str) -> PyResult<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| PyValueError::new_err(format!("the {what} is 32 bytes")))
}

fn node_id(key: &[u8]) -> PyResult<NodeId> {
    NodeId::from_slice(key).ok_or_else(|| PyValueError::new_err("a key or id is 20 bytes"))
}

#[pymethods]
impl Dht {
    /// Binds `(host, port)` and starts the node on a thread of its own.
    #[new]
    #[pyo3(signature = (host, port, resolve, ksize=20, alpha=3, node_id=None, state_dir=None, rpc_timeout=5.0, seed=None, verify_callers=true, strict_local=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        host: &str,
        port: u16,
        resolve: Py<PyAny>,
        ksize: usize,
        alpha: usize,
        node_id: Option<&[u8]>,
        state_dir: Option<PathBuf>,
        rpc_timeout: f64,
        seed: Option<u64>,
        verify_callers: bool,
        strict_local: bool,
    ) -> PyResult<Self> {
        let ip = host
            .parse()
            .map_err(|_| PyValueError::new_err(format!("not an IP address: {host:?}")))?;
        let addr = SocketAddr::new(ip, port);
        let mut config = DhtConfig {
            node_id: node_id.map(self::node_id).transpose()?,
            state_dir,
            seed,
            ..DhtConfig::default()
        };
        config.node.k = ksize;
        config.node.alpha = alpha;
        config.node.rpc_timeout = Duration::from_secs_f64(rpc_timeout.clamp(0.001, 1e6));
        config.node.verify_callers = verify_callers;
        config.node.endpoint.limits.strict_local = strict_local;
        let (started_tx, started) = mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("rpcudp-dht".into())
            .spawn(move || run(addr, config, started_tx, stop_rx))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let answer = py.detach(move || started.recv());
        match answer {
            Ok(Ok((dht, handle))) => Ok(Dht {
                id: dht.id(),
                local_addr: dht.local_addr(),
                resolve,
                running: Mutex::new(Some(Running {
                    dht,
                    handle,
                    stop: stop_tx,
                    thread,
                })),
            }),
            Ok(Err(e)) => {
                let _ = py.detach(move || thread.join());
                Err(PyOSError::new_err(e.to_string()))
            }
            Err(_) => Err(PyRuntimeError::new_err(
                "the DHT thread ended while starting",
            )),
        }
    }

    /// The node's 20-byte id.
    fn id<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.id.as_bytes())
    }

    /// The bound `(host, port)`.
    fn local_addr<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        addr_tuple(py, self.local_addr)
    }

    /// The routing table's contacts, as `(id, host, port)`.
    fn contacts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        contact_list(py, &self.node()?.contacts())
    }

    /// The contacts found in the state folder at start.
    fn saved_contacts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        contact_list(py, self.node()?.saved_contacts())
    }

    /// The value this node holds under the 20-byte `key`, without asking the network.
    fn local_value<'py>(&self, py: Python<'py>, key: &[u8]) -> PyResult<Option<Bound<'py, PyAny>>> {
        let key = node_id(key)?;
        let dht = self.node()?;
        let value = py.detach(|| dht.local_value(&key));
        value.map(|v| to_py(py, &v)).transpose()
    }

    /// Pings `addrs` and looks up its own id; `future` gets how many answered.
    fn bootstrap(
        &self,
        addrs: &Bound<'_, PyList>,
        event_loop: Py<PyAny>,
        future: Py<PyAny>,
    ) -> PyResult<()> {
        let addrs = addrs
            .iter()
            .map(|a| parse_addr(&a))
            .collect::<PyResult<Vec<_>>>()?;
        let dht = self.node()?;
        self.spawn(event_loop, future, async move {
            match dht.bootstrap(&addrs).await {
                Ok(n) => Outcome::Count(n),
                Err(e) => Outcome::Failed(e.to_string()),
            }
        })
    }

    /// Joins through the saved contacts; `future` gets how many answered.
    fn rejoin(&self, event_loop: Py<PyAny>, future: Py<PyAny>) -> PyResult<()> {
        let dht = self.node()?;
        self.spawn(event_loop, future, async move {
            match dht.rejoin().await {
                Ok(n) => Outcome::Count(n),
                Err(e) => Outcome::Failed(e.to_string()),
            }
        })
    }

    /// Stores `value` under the 20-byte `key`; `future` gets how many nodes acknowledged.
    fn set_digest(
        &self,
        key: &[u8],
        value: &Bound<'_, PyAny>,
        event_loop: Py<PyAny>,
        future: Py<PyAny>,
    ) -> PyResult<()> {
        let key = node_id(key)?;
        let value = to_value(value)?;
        let dht = self.node()?;
        self.spawn(event_loop, future, async move {
            match dht.set(key, value).await {
                Ok(n) => Outcome::Count(n),
                Err(e) => Outcome::Failed(e.to_string()),
            }
        })
    }

    /// Looks up the 20-byte `key`; `future` gets the value or None.
    fn get_digest(&self, key: &[u8], event_loop: Py<PyAny>, future: Py<PyAny>) -> PyResult<()> {
        let key = node_id(key)?;
        let dht = self.node()?;
        self.spawn(event_loop, future, async move {
            match dht.get(key).await {
                Ok(v) => Outcome::Value(v),
                Err(e) => Outcome::Failed(e.to_string()),
            }
        })
    }

    /// Signs `value` with the 32-byte Ed25519 secret seed under `salt` (the next seq
    /// above the one the network holds) and stores it; `future` gets how many nodes
    /// acknowledged.
    fn put_signed(
        &self,
        secret: &[u8],
        value: &Bound<'_, PyAny>,
        salt: Vec<u8>,
        event_loop: Py<PyAny>,
        future: Py<PyAny>,
    ) -> PyResult<()> {
        let secret = key32(secret, "secret key")?;
        let value = to_value(value)?;
        let dht = self.node()?;
        self.spawn(event_loop, future, async move {
            match dht.put_signed(&secret, &salt, None, value).await {
                Ok(put) => Outcome::Count(put.stored_on),
                Err(e) => Outcome::Failed(e.to_string()),
            }
        })
    }

    /// Looks up the record of the 32-byte public key under `salt`, verified; `future`
    /// gets its value, or None.
    fn get_signed(
        &self,
        public_key: &[u8],
        salt: Vec<u8>,
        event_loop: Py<PyAny>,
        future: Py<PyAny>,
    ) -> PyResult<()> {
        let public_key = key32(public_key, "public key")?;
        let dht = self.node()?;
        self.spawn(event_loop, future, async move {
            match dht.get_signed(&public_key, &salt).await {
                Ok(r) => Outcome::Value(r.map(|r| r.value)),
                Err(e) => Outcome::Failed(e.to_string()),
            }
        })
    }

    /// Stores `value` as an immutable record (named by its hash); `future` gets the
    /// 20-byte target to read it back with `get_immutable`.
    fn put_immutable(
        &self,
        value: &Bound<'_, PyAny>,
        event_loop: Py<PyAny>,
        future: Py<PyAny>,
    ) -> PyResult<()> {
        let value = to_value(value)?;
        let dht = self.node()?;
        self.spawn(event_loop, future, async move {
            match dht.put_immutable(value).await {
                Ok(put) if put.stored_on > 0 => Outcome::Target(put.target),
                Ok(_) => Outcome::Failed("no node stored the record".into()),
                Err(e) => Outcome::Failed(e.to_string()),
            }
        })
    }

    /// Looks up the immutable record under the 20-byte `target`, verified; `future` gets
    /// its value, or None.
    fn get_immutable(
        &self,
        target: &[u8],
        event_loop: Py<PyAny>,
        future: Py<PyAny>,
    ) -> PyResult<()> {
        let target = node_id(target)?;
        let dht = self.node()?;
        self.spawn(event_loop, future, async move {
            match dht.get_immutable(target).await {
                Ok(v) => Outcome::Value(v),
                Err(e) => Outcome::Failed(e.to_string()),
            }
        })
    }

    /// The 32-byte Ed25519 public key of a 32-byte secret seed.
    #[staticmethod]
    fn public_key<'py>(py: Python<'py>, secret: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let secret = key32(secret, "secret key")?;
        Ok(PyBytes::new(py, &rpcudp::kad::record::public_key(&secret)))
    }

    /// The node's metrics in the Prometheus text format (the families `dht run
    /// --metrics` serves).
    fn metrics(&self) -> PyResult<String> {
        Ok(rpcudp::metrics::Metrics::new()
            .with_dht(&self.node()?)
            .render())
    }

    /// How many values this node holds.
    fn stored_count(&self) -> PyResult<usize> {
        Ok(self.node()?.stored_count())
    }

    /// Stops the node: the socket is closed, the state file written and closed, and the
    /// runtime thread joined before this returns. Commands still pending never resolve
    /// (as with kademlia, whose transport just closes). Idempotent.
    fn stop(&self, py: Python<'_>) {
        let taken = self.running.lock().ok().and_then(|mut t| t.take());
        if let Some(Running {
            dht,
            handle,
            stop,
            thread,
        }) = taken
        {
            drop((dht, handle));
            let _ = stop.send(());
            let _ = py.detach(move || thread.join());
        }
    }
}

impl Drop for Dht {
    fn drop(&mut self) {
        // Not joined here (the thread may wait for the GIL this drop holds); it ends on
        // its own once told.
        if let Some(running) = self.running.get_mut().ok().and_then(|t| t.take()) {
            let _ = running.stop.send(());
        }
    }
}

impl Dht {
    /// The running node (a cheap clone), or `RuntimeError` once stopped.
    fn node(&self) -> PyResult<rpcudp::kad::Dht> {
        self.running
            .lock()
            .ok()
            .and_then(|r| r.as_ref().map(|r| r.dht.clone()))
            .ok_or_else(|| PyRuntimeError::new_err("the server is stopped"))
    }

    /// Runs `work` on the node's runtime, then hands its outcome to `resolve` on the loop.
    fn spawn(
        &self,
        event_loop: Py<PyAny>,
        future: Py<PyAny>,
        work: impl std::future::Future<Output = Outcome> + Send + 'static,
    ) -> PyResult<()> {
        let handle = self
            .running
            .lock()
            .ok()
            .and_then(|r| r.as_ref().map(|r| r.handle.clone()))
            .ok_or_else(|| PyRuntimeError::new_err("the server is stopped"))?;
        let resolve = Python::attach(|py| self.resolve.clone_ref(py));
        handle.spawn(async move {
            let outcome = work.await;
            Python::attach(|py| {
                let (ok, value) = match outcome {
                    Outcome::Count(n) => (true, Ok(n.into_pyobject(py)?.into_any())),
                    Outcome::Value(None) => (true, Ok(py.None().into_bound(py))),
                    Outcome::Value(Some(v)) => (true, to_py(py, &v)),
                    Outcome::Target(t) => (true, Ok(PyBytes::new(py, t.as_bytes()).into_any())),
                    Outcome::Failed(e) => (false, Ok(e.into_pyobject(py)?.into_any())),
                };
                let value = value.unwrap_or_else(|e| e.value(py).clone().into_any());
                // The loop may be closed by now: nobody is waiting then.
                let _ = event_loop.call_method1(
                    py,
                    "call_soon_threadsafe",
                    (resolve, future, ok, value),
                );
                PyResult::Ok(())
            })
            .ok();
        });
        Ok(())
    }
}

fn contact_list<'py>(
    py: Python<'py>,
    contacts: &[rpcudp::kad::Contact],
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for c in contacts {
        list.append((
            PyBytes::new(py, c.id.as_bytes()),
            c.addr.ip().to_string(),
            c.addr.port(),
        ))?;
    }
    Ok(list)
}

type Started = Result<(rpcudp::kad::Dht, tokio::runtime::Handle), String>;

/// The runtime thread: start the node, report, serve until told to stop, shut down.
fn run(
    addr: SocketAddr,
    config: DhtConfig,
    started: mpsc::Sender<Started>,
    stop: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = started.send(Err(e.to_string()));
            return;
        }
    };
    let dht = match runtime.block_on(rpcudp::kad::Dht::start(addr, config)) {
        Ok(d) => d,
        Err(e) => {
            let _ = started.send(Err(e.to_string()));
            return;
        }
    };
    if started
        .send(Ok((dht.clone(), runtime.handle().clone())))
        .is_err()
    {
        runtime.block_on(dht.shutdown());
        return;
    }
    runtime.block_on(async {
        let _ = stop.await;
        dht.shutdown().await;
    });
    drop(dht);
    // Pending command tasks are dropped with the runtime, their futures never resolved.
    runtime.shutdown_timeout(Duration::from_secs(1));
}
