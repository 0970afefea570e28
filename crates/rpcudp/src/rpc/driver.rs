//! The one task per socket that runs the sans-IO core.
//!
//! It only moves things between the core and the world: transmits to the socket, requests
//! to handler tasks, answers and call results back. Whether a datagram is a duplicate,
//! when to retry and which response is genuine are decided by the core; none of it here.
//!
//! The loop: route events (running handlers), flush transmits, publish counters, then wait
//! for any of: datagrams, a call command, a control message, a finished handler, or the
//! core's next deadline. Every source that is ready is taken in the same round. Datagrams
//! are read in batches while the socket has them, many per system call
//! ([`Endpoint::try_recv_batch`](crate::udp::Endpoint::try_recv_batch), `recvmmsg` on
//! Linux), and the answers to a batch leave together
//! ([`Endpoint::try_send_batch`](crate::udp::Endpoint::try_send_batch): `sendmmsg`, or
//! one GSO send for a run to one peer); a handler that completes on its first poll is
//! answered inline, and only one that must wait gets its own task.

use super::error::CallError;
use super::handler::{HandlerResult, Handlers};
use super::NodeStats;
use crate::udp::{Endpoint as UdpEndpoint, RecvBatch};
use rmpv::Value;
use rpcudp_proto::rpc::{
    CallId, CallOptions, CallRefused, Endpoint, Event, RequestToken, Transmit,
};
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// A call handed from a [`Node`](super::Node) handle to the driver.
pub(crate) struct CallCommand {
    pub(crate) ticket: u64,
    pub(crate) to: SocketAddr,
    pub(crate) method: String,
    pub(crate) args: Vec<Value>,
    pub(crate) options: CallOptions,
    pub(crate) reply: oneshot::Sender<Result<Value, CallError>>,
}

/// Messages that must never wait behind a full call queue.
pub(crate) enum Control {
    /// The caller dropped its call future: forget the call (its late answer is counted).
    Cancel(u64),
    /// Stop: fail outstanding calls, give running handlers `grace` to finish.
    Shutdown {
        grace: Duration,
        done: oneshot::Sender<()>,
    },
}

struct Pending {
    ticket: u64,
    reply: oneshot::Sender<Result<Value, CallError>>,
    /// For the error message only; the core owns the real deadline.
    budget: Duration,
}

/// Driver-level counters, merged with the core's [`Stats`](rpcudp_proto::rpc::Stats)
/// into [`NodeStats`].
#[derive(Default)]
struct Counters {
    send_errors: u64,
    recv_errors: u64,
    unknown_methods: u64,
    handler_failures: u64,
    handler_panics: u64,
}

pub(crate) struct Driver {
    pub(crate) core: Endpoint,
    pub(crate) socket: UdpEndpoint,
    pub(crate) handlers: Handlers,
    pub(crate) stats: Arc<Mutex<NodeStats>>,
    pub(crate) calls_rx: mpsc::Receiver<CallCommand>,
    pub(crate) control_rx: mpsc::UnboundedReceiver<Control>,
    pub(crate) recv_buffer: usize,
}

/// Datagrams read per system call (`recvmmsg`): the whole queue of 32 callers in one go.
/// Answers to them leave together too, in one `sendmmsg`.
const RECV_SLOTS: usize = 32;

/// Receive system calls per readiness wake-up before the other sources get a turn
/// (up to 64 datagrams): enough to amortise the wake-up over a burst, few enough that
/// calls and timers are not starved.
const RECV_ROUNDS: usize = 2;

/// What woke the driver up: every source that was ready when it was polled (each one
/// polled once per wake-up, so none starves the others).
#[derive(Default)]
struct Wake {
    control: Option<Option<Control>>,
    handler: Option<Result<(tokio::task::Id, HandlerResult), tokio::task::JoinError>>,
    call: Option<Option<CallCommand>>,
    readable: Option<std::io::Result<()>>,
    timer: bool,
}

impl Wake {
    fn any(&self) -> bool {
        self.control.is_some()
            || self.handler.is_some()
            || self.call.is_some()
            || self.readable.is_some()
            || self.timer
    }
}

struct State {
    core: Endpoint,
    socket: UdpEndpoint,
    handlers: Handlers,
    stats: Arc<Mutex<NodeStats>>,
    counters: Counters,
    calls: HashMap<CallId, Pending>,
    tickets: HashMap<u64, CallId>,
    /// Handlers that did not finish on their first poll, each in its own task.
    running: JoinSet<HandlerResult>,
    /// Which served request each handler task answers, and its method (for logs).
    tasks: HashMap<tokio::task::Id, (RequestToken, String)>,
    /// Transmits taken from the core for one batched send (reused space).
    outbox: Vec<Transmit>,
}

impl Driver {
    /// Runs until shut down (explicitly, or because every [`Node`](super::Node) handle
    /// was dropped).
    pub(crate) async fn run(self) {
        let Driver {
            core,
            socket,
            handlers,
            stats,
            mut calls_rx,
            mut control_rx,
            recv_buffer,
        } = self;
        let mut st = State {
            core,
            socket,
            handlers,
            stats,
            counters: Counters::default(),
            calls: HashMap::new(),
            tickets: HashMap::new(),
            running: JoinSet::new(),
            tasks: HashMap::new(),
            outbox: Vec::new(),
        };
        let mut batch = RecvBatch::new(RECV_SLOTS, recv_buffer);
        let mut calls_open = true;
        let mut control_open = true;
        // One timer for the whole life of the driver, moved only when the core's next
        // deadline comes earlier than the one it is set for (a later deadline just lets
        // it fire early, and `handle_timeout` then finds nothing due). Re-arming a timer
        // per wake-up costs a trip through tokio's timer wheel for every datagram.
        let mut timer = Box::pin(tokio::time::sleep_until(tokio::time::Instant::now()));
        let mut timer_at: Option<Instant> = None;
        let (grace, done) = 'outer: loop {
            st.pump().await;
            st.publish();
            if !calls_open && !control_open {
                // Every handle is gone: nobody can call or wait for an answer any more.
                break (Duration::ZERO, None);
            }
            if let Some(at) = st.core.poll_timeout() {
                if timer_at.is_none_or(|t| at < t) {
                    timer_at = Some(at);
                    timer.as_mut().reset(tokio::time::Instant::from_std(at));
                }
            }
            let wake = poll_fn(|cx| {
                let mut w = Wake::default();
                if control_open {
                    if let Poll::Ready(c) = control_rx.poll_recv(cx) {
                        w.control = Some(c);
                    }
                }
                if !st.running.is_empty() {
                    if let Poll::Ready(Some(j)) = st.running.poll_join_next_with_id(cx) {
                        w.handler = Some(j);
                    }
                }
                if calls_open {
                    if let Poll::Ready(c) = calls_rx.poll_recv(cx) {
                        w.call = Some(c);
                    }
                }
                if let Poll::Ready(r) = st.socket.poll_recv_ready(cx) {
                    w.readable = Some(r);
                }
                if timer_at.is_some() && timer.as_mut().poll(cx).is_ready() {
                    w.timer = true;
                }
                if w.any() {
                    Poll::Ready(w)
                } else {
                    Poll::Pending
                }
            })
            .await;
            match wake.control {
                Some(Some(Control::Cancel(ticket))) => st.cancel(ticket),
                Some(Some(Control::Shutdown { grace, done })) => {
                    // What else was taken this round must not be lost: a taken call is
                    // refused below with the queued ones, a finished handler answered.
                    if let Some(Some(cmd)) = wake.call {
                        let _ = cmd.reply.send(Err(CallError::ShutDown));
                    }
                    if let Some(j) = wake.handler {
                        st.finish_handler(j);
                    }
                    break 'outer (grace, Some(done));
                }
                Some(None) => control_open = false,
                None => {}
            }
            if let Some(j) = wake.handler {
                st.finish_handler(j);
            }
            match wake.call {
                Some(Some(cmd)) => st.start_call(cmd).await,
                Some(None) => calls_open = false,
                None => {}
            }
            match wake.readable {
                Some(Ok(())) => st.receive(&mut batch).await,
                Some(Err(e)) => {
                    st.counters.recv_errors += 1;
                    tracing::debug!("receive readiness error: {e}");
                    // Should an error repeat at once, this bounds the loop to ~1000
                    // turns a second instead of spinning a core.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                None => {}
            }
            if wake.timer {
                // The timer has fired: it is polled again only once re-armed above.
                timer_at = None;
                st.core.handle_timeout(Instant::now());
            }
        };
        st.shut_down(grace).await;
        // Refuse what is still queued; dropping a command's reply sender reads as
        // ShutDown on the caller's side as well, this only makes it explicit.
        calls_rx.close();
        while let Ok(cmd) = calls_rx.try_recv() {
            let _ = cmd.reply.send(Err(CallError::ShutDown));
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }
}

/// Sends one datagram: straight away when the socket has room (the usual case, one
/// system call and no readiness bookkeeping), else once it has.
async fn send(socket: &UdpEndpoint, payload: &[u8], to: SocketAddr) -> std::io::Result<()> {
    match socket.try_send_to(payload, to) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            socket.send_to(payload, to).await.map(drop)
        }
        Err(e) => Err(e),
    }
}

/// The text of a panic payload, for the log.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

impl State {
    /// Serves the requests and routes the results the core has produced (handlers that
    /// finish at once answer right here), then sends every datagram it has queued.
    async fn pump(&mut self) {
        self.route_events();
        self.flush().await;
    }

    /// Sends every datagram the core has queued, many per system call (`sendmmsg`).
    /// A datagram the kernel refuses is counted and skipped; the others still go.
    async fn flush(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            self.outbox.push(t);
        }
        let mut next = 0;
        while next < self.outbox.len() {
            let rest = self.outbox[next..]
                .iter()
                .map(|t| (&t.payload[..], t.destination));
            match self.socket.try_send_batch(rest) {
                Ok(n) => next += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Err(e) = poll_fn(|cx| self.socket.poll_send_ready(cx)).await {
                        self.counters.send_errors += (self.outbox.len() - next) as u64;
                        tracing::debug!("cannot send: {e}");
                        break;
                    }
                }
                Err(e) => {
                    // `sendmmsg` reports an error only for the first datagram offered
                    // (later ones end the batch early and show up here on the retry).
                    let t = &self.outbox[next];
                    self.counters.send_errors += 1;
                    tracing::debug!(
                        "cannot send {} bytes to {}: {e}",
                        t.payload.len(),
                        t.destination
                    );
                    next += 1;
                }
            }
        }
        self.outbox.clear();
    }

    /// Reads the datagrams queued on the socket, [`RECV_SLOTS`] per system call and at
    /// most [`RECV_ROUNDS`] calls, serving each batch (handlers that finish at once
    /// answer inline) and sending all its answers together before the next read.
    async fn receive(&mut self, batch: &mut RecvBatch) {
        for _ in 0..RECV_ROUNDS {
            match self.socket.try_recv_batch(batch) {
                Ok(_) => {
                    let now = Instant::now();
                    for (datagram, from) in batch.iter() {
                        self.core.handle_datagram(now, from, datagram);
                        // Served per datagram, so the core's event queue stays short.
                        self.route_events();
                    }
                    self.flush().await;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Linux reports nothing here for unconnected UDP; other systems may
                    // surface ICMP errors. Either way the socket stays usable. Should an
                    // error repeat at once, the pause bounds the loop to ~1000 turns a
                    // second instead of spinning a core.
                    self.counters.recv_errors += 1;
                    tracing::debug!("receive error: {e}");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    return;
                }
            }
        }
    }

    async fn start_call(&mut self, cmd: CallCommand) {
        if cmd.reply.is_closed() {
            return; // the caller gave up while the command was queued
        }
        // Send what is already queued first, so the transmit that follows `call` is this
        // call's request and a send error can be reported to this caller as `Io`.
        self.flush().await;
        let budget = cmd.options.max_duration();
        let id = match self
            .core
            .call(Instant::now(), cmd.to, &cmd.method, &cmd.args, cmd.options)
        {
            Ok(id) => id,
            Err(CallRefused::RequestTooLarge { size, limit }) => {
                let _ = cmd
                    .reply
                    .send(Err(CallError::RequestTooLarge { size, limit }));
                return;
            }
            Err(CallRefused::TooManyOutstanding { limit }) => {
                let _ = cmd.reply.send(Err(CallError::Overloaded { limit }));
                return;
            }
            Err(CallRefused::Unsendable(e)) => {
                let _ = cmd.reply.send(Err(CallError::Unsendable(e)));
                return;
            }
        };
        if let Some(t) = self.core.poll_transmit() {
            if let Err(e) = send(&self.socket, &t.payload, t.destination).await {
                if t.destination == cmd.to {
                    self.core.cancel(id);
                    let _ = cmd.reply.send(Err(CallError::Io(e)));
                    return;
                }
                self.counters.send_errors += 1;
            }
        }
        self.tickets.insert(cmd.ticket, id);
        self.calls.insert(
            id,
            Pending {
                ticket: cmd.ticket,
                reply: cmd.reply,
                budget,
            },
        );
    }

    fn cancel(&mut self, ticket: u64) {
        if let Some(id) = self.tickets.remove(&ticket) {
            self.calls.remove(&id);
            self.core.cancel(id);
        }
    }

    fn route_events(&mut self) {
        while let Some(event) = self.core.poll_event() {
            match event {
                Event::Request {
                    token,
                    from,
                    method,
                    args,
                } => self.start_handler(token, from, method, args),
                Event::CallSucceeded { call, value } => {
                    if let Some(p) = self.calls.remove(&call) {
                        self.tickets.remove(&p.ticket);
                        let _ = p.reply.send(Ok(value));
                    }
                }
                Event::CallFailed { call, error } => {
                    if let Some(p) = self.calls.remove(&call) {
                        self.tickets.remove(&p.ticket);
                        tracing::debug!("call failed: {error:?}");
                        let _ = p.reply.send(Err(CallError::Timeout(p.budget)));
                    }
                }
            }
        }
    }

    fn start_handler(
        &mut self,
        token: RequestToken,
        from: SocketAddr,
        method: String,
        args: Vec<Value>,
    ) {
        let Some(handler) = self.handlers.get(&method) else {
            // As the Python peers: an unknown method gets no answer at all.
            self.counters.unknown_methods += 1;
            tracing::debug!("{from} called unknown method {method:?}; no answer");
            self.core.abandon(token);
            return;
        };
        // Polled once right here: a handler that needs no waiting (most do) answers
        // without a task, a channel or a wake-up of another thread. Only one that is
        // still pending gets a task, which polls it again with a real waker (a future
        // must accept a new waker on each poll, so the no-op one here is forgotten).
        // A panic, in creating the future or in this poll, is caught as a task's would be.
        let mut cx = Context::from_waker(Waker::noop());
        let first = catch_unwind(AssertUnwindSafe(|| {
            let mut fut = handler.call(from, args);
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(result) => Ok(result),
                Poll::Pending => Err(fut),
            }
        }));
        match first {
            Ok(Ok(result)) => self.answer(token, &method, result),
            Ok(Err(fut)) => {
                let task = self.running.spawn(fut);
                self.tasks.insert(task.id(), (token, method));
            }
            Err(payload) => {
                self.counters.handler_panics += 1;
                tracing::warn!(
                    "handler {method:?} panicked: {}",
                    panic_message(payload.as_ref())
                );
                self.core.abandon(token);
            }
        }
    }

    /// Answers a served request with its handler's result (an error: no answer).
    fn answer(&mut self, token: RequestToken, method: &str, result: HandlerResult) {
        match result {
            Ok(value) => self.core.respond(Instant::now(), token, &value),
            Err(e) => {
                self.counters.handler_failures += 1;
                tracing::debug!("handler {method:?} failed, no answer: {e}");
                self.core.abandon(token);
            }
        }
    }

    fn finish_handler(
        &mut self,
        result: Result<(tokio::task::Id, HandlerResult), tokio::task::JoinError>,
    ) {
        let id = match &result {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let Some((token, method)) = self.tasks.remove(&id) else {
            return;
        };
        match result {
            Ok((_, result)) => self.answer(token, &method, result),
            Err(e) => {
                self.counters.handler_panics += 1;
                tracing::warn!("handler {method:?} panicked or was cancelled: {e}");
                self.core.abandon(token);
            }
        }
    }

    fn publish(&self) {
        let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        s.core = self.core.stats().clone();
        s.send_errors = self.counters.send_errors;
        s.recv_errors = self.counters.recv_errors;
        s.unknown_methods = self.counters.unknown_methods;
        s.handler_failures = self.counters.handler_failures;
        s.handler_panics = self.counters.handler_panics;
        s.handlers_running = self.running.len();
        s.calls_outstanding = self.calls.len();
        s.dedup_entries = self.core.dedup_entries();
        s.dedup_bytes = self.core.dedup_bytes();
    }

    /// Fails outstanding calls, lets running handlers finish within `grace` (their
    /// answers are sent), then drops the rest.
    async fn shut_down(&mut self, grace: Duration) {
        for (id, p) in self.calls.drain() {
            self.core.cancel(id);
            let _ = p.reply.send(Err(CallError::ShutDown));
        }
        self.tickets.clear();
        let deadline = tokio::time::Instant::now() + grace;
        while !self.running.is_empty() {
            tokio::select! {
                Some(j) = self.running.join_next_with_id() => self.finish_handler(j),
                _ = tokio::time::sleep_until(deadline) => break,
            }
            self.flush().await;
        }
        // Requests that arrived meanwhile are not started: nobody will answer them.
        while let Some(event) = self.core.poll_event() {
            if let Event::Request { token, .. } = event {
                self.core.abandon(token);
            }
        }
        self.running.abort_all();
        self.flush().await;
        self.publish();
    }
}
