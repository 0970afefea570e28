//! The one task per socket that runs the sans-IO core.
//!
//! It only moves things between the core and the world: transmits to the socket, requests
//! to handler tasks, answers and call results back. Whether a datagram is a duplicate,
//! when to retry and which response is genuine are decided by the core; none of it here.
//!
//! The loop: flush transmits, route events, publish counters, then wait (`select!`) for
//! one of: a datagram, a call command, a control message, a finished handler, or the
//! core's next deadline.

use super::error::CallError;
use super::handler::{HandlerResult, Handlers};
use super::NodeStats;
use crate::udp::Endpoint as UdpEndpoint;
use rmpv::Value;
use rpcudp_proto::rpc::{CallId, CallOptions, CallRefused, Endpoint, Event, RequestToken};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
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

/// What woke the driver up.
enum Wake {
    Datagram(std::io::Result<(usize, SocketAddr)>),
    Call(Option<CallCommand>),
    Control(Option<Control>),
    Handler(Result<(tokio::task::Id, HandlerResult), tokio::task::JoinError>),
    Timer,
}

struct State {
    core: Endpoint,
    socket: UdpEndpoint,
    handlers: Handlers,
    stats: Arc<Mutex<NodeStats>>,
    counters: Counters,
    calls: HashMap<CallId, Pending>,
    tickets: HashMap<u64, CallId>,
    running: JoinSet<HandlerResult>,
    /// Which served request each handler task answers, and its method (for logs).
    tasks: HashMap<tokio::task::Id, (RequestToken, String)>,
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
        };
        let mut buf = vec![0u8; recv_buffer];
        let mut calls_open = true;
        let mut control_open = true;
        let (grace, done) = loop {
            st.flush().await;
            st.route_events();
            st.publish();
            if !calls_open && !control_open {
                // Every handle is gone: nobody can call or wait for an answer any more.
                break (Duration::ZERO, None);
            }
            let deadline = st.core.poll_timeout();
            let sleep = tokio::time::sleep_until(
                deadline
                    .map(tokio::time::Instant::from_std)
                    // Far enough to never fire; the branch is disabled anyway.
                    .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600)),
            );
            let wake = tokio::select! {
                r = st.socket.recv_from(&mut buf) => Wake::Datagram(r),
                c = calls_rx.recv(), if calls_open => Wake::Call(c),
                c = control_rx.recv(), if control_open => Wake::Control(c),
                Some(j) = st.running.join_next_with_id(), if !st.running.is_empty() => Wake::Handler(j),
                _ = sleep, if deadline.is_some() => Wake::Timer,
            };
            match wake {
                Wake::Datagram(Ok((n, from))) => {
                    st.core.handle_datagram(Instant::now(), from, &buf[..n]);
                }
                Wake::Datagram(Err(e)) => {
                    // Linux reports nothing here for unconnected UDP; other systems may
                    // surface ICMP errors. Either way the socket stays usable.
                    st.counters.recv_errors += 1;
                    tracing::debug!("receive error: {e}");
                    // Should an error repeat at once, this bounds the loop to ~1000
                    // turns a second instead of spinning a core.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Wake::Call(Some(cmd)) => st.start_call(cmd).await,
                Wake::Call(None) => calls_open = false,
                Wake::Control(Some(Control::Cancel(ticket))) => st.cancel(ticket),
                Wake::Control(Some(Control::Shutdown { grace, done })) => {
                    break (grace, Some(done));
                }
                Wake::Control(None) => control_open = false,
                Wake::Handler(result) => st.finish_handler(result),
                Wake::Timer => st.core.handle_timeout(Instant::now()),
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

impl State {
    /// Sends every datagram the core has queued.
    async fn flush(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            if let Err(e) = self.socket.send_to(&t.payload, t.destination).await {
                self.counters.send_errors += 1;
                tracing::debug!(
                    "cannot send {} bytes to {}: {e}",
                    t.payload.len(),
                    t.destination
                );
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
            if let Err(e) = self.socket.send_to(&t.payload, t.destination).await {
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
        let fut = handler.call(from, args);
        let task = self.running.spawn(fut);
        self.tasks.insert(task.id(), (token, method));
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
            Ok((_, Ok(value))) => self.core.respond(Instant::now(), token, &value),
            Ok((_, Err(e))) => {
                self.counters.handler_failures += 1;
                tracing::debug!("handler {method:?} failed, no answer: {e}");
                self.core.abandon(token);
            }
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
