//! What a [`Endpoint`](super::Endpoint) runs on the generic [`Driver`](crate::driver::Driver):
//! the [`Application`] that serves requests with the registered handlers and answers
//! the node's callers.
//!
//! It only routes: requests to handlers (a handler that completes on its first poll is
//! answered inline, only one that must wait gets its own task), call results to the
//! waiting callers, send errors to the caller whose request failed (the core says whose
//! it was). Duplicates, retries and which response is genuine are the core's.

use super::error::CallError;
use super::handler::{HandlerResult, Handlers};
use super::EndpointStats;
use crate::driver::{Application, DriverStats, Flow};
use rmpv::Value;
use rpcudp_proto::rpc::{
    CallFailure, CallId, CallOptions, CallRefused, Endpoint as CoreEndpoint, Event, RequestToken,
};
use rpcudp_proto::Transmit;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// What a [`Endpoint`](super::Endpoint) handle asks of its driver.
pub(crate) enum Command {
    /// Start a call (through the bounded queue: backpressure for a burst of callers).
    Call(CallCommand),
    /// The caller dropped its call future: forget the call (its late answer is counted).
    Cancel(u64),
    /// Stop: fail outstanding calls, give running handlers `grace` to finish.
    Shutdown {
        grace: Duration,
        done: oneshot::Sender<()>,
    },
}

/// A call handed from a [`Endpoint`](super::Endpoint) handle to the driver.
pub(crate) struct CallCommand {
    pub(crate) ticket: u64,
    pub(crate) to: SocketAddr,
    pub(crate) method: String,
    pub(crate) args: Vec<Value>,
    pub(crate) options: CallOptions,
    pub(crate) reply: oneshot::Sender<Result<Value, CallError>>,
}

struct Pending {
    ticket: u64,
    reply: oneshot::Sender<Result<Value, CallError>>,
    /// For the error message only; the core owns the real deadline.
    budget: Duration,
}

/// Endpoint-level counters, merged with the core's and the driver's into [`EndpointStats`].
#[derive(Default)]
struct Counters {
    unknown_methods: u64,
    handler_failures: u64,
    handler_panics: u64,
}

/// Where the node is in its life.
enum Phase {
    Running,
    /// Shut down: calls are refused, running handlers may finish until the deadline.
    Draining {
        deadline: Pin<Box<tokio::time::Sleep>>,
    },
    /// Stopped: everything is refused.
    Stopped,
}

/// The [`Application`] of a [`Endpoint`](super::Endpoint).
pub(crate) struct EndpointApp {
    handlers: Handlers,
    stats: Arc<Mutex<EndpointStats>>,
    counters: Counters,
    calls: HashMap<CallId, Pending>,
    tickets: HashMap<u64, CallId>,
    /// Handlers that did not finish on their first poll, each in its own task.
    running: JoinSet<HandlerResult>,
    /// Which served request each handler task answers, and its method and caller (for
    /// logs).
    tasks: HashMap<tokio::task::Id, (RequestToken, String, SocketAddr)>,
    /// The task of each served request that has one, to cancel it when the core gives
    /// its slot to a newer request.
    by_token: HashMap<RequestToken, tokio::task::AbortHandle>,
    phase: Phase,
    /// Who waits for the shutdown to finish.
    done: Vec<oneshot::Sender<()>>,
}

/// Finished handler tasks taken per round, so a burst of them does not starve the
/// socket.
const FINISHED_PER_ROUND: usize = 64;

impl EndpointApp {
    pub(crate) fn new(handlers: Handlers, stats: Arc<Mutex<EndpointStats>>) -> EndpointApp {
        EndpointApp {
            handlers,
            stats,
            counters: Counters::default(),
            calls: HashMap::new(),
            tickets: HashMap::new(),
            running: JoinSet::new(),
            tasks: HashMap::new(),
            by_token: HashMap::new(),
            phase: Phase::Running,
            done: Vec::new(),
        }
    }

    /// Tells whoever called `shutdown` that the driver has stopped.
    pub(crate) fn finished(self) {
        for done in self.done {
            let _ = done.send(());
        }
    }

    fn start_call(&mut self, core: &mut CoreEndpoint, now: Instant, cmd: CallCommand) {
        if cmd.reply.is_closed() {
            return; // the caller gave up while the command was queued
        }
        if !matches!(self.phase, Phase::Running) {
            let _ = cmd.reply.send(Err(CallError::ShutDown));
            return;
        }
        let budget = cmd.options.max_duration();
        let refused = match core.call(now, cmd.to, &cmd.method, &cmd.args, cmd.options) {
            Ok(id) => {
                self.tickets.insert(cmd.ticket, id);
                self.calls.insert(
                    id,
                    Pending {
                        ticket: cmd.ticket,
                        reply: cmd.reply,
                        budget,
                    },
                );
                return;
            }
            Err(CallRefused::RequestTooLarge { size, limit }) => {
                CallError::RequestTooLarge { size, limit }
            }
            Err(CallRefused::TooManyOutstanding { limit }) => CallError::Overloaded { limit },
            Err(CallRefused::Unsendable(e)) => CallError::Unsendable(e),
        };
        let _ = cmd.reply.send(Err(refused));
    }

    fn cancel(&mut self, core: &mut CoreEndpoint, ticket: u64) {
        if let Some(id) = self.tickets.remove(&ticket) {
            self.calls.remove(&id);
            core.cancel(id);
        }
    }

    fn fail_calls(&mut self, core: &mut CoreEndpoint) {
        for (id, p) in self.calls.drain() {
            core.cancel(id);
            let _ = p.reply.send(Err(CallError::ShutDown));
        }
        self.tickets.clear();
    }

    fn start_handler(
        &mut self,
        core: &mut CoreEndpoint,
        now: Instant,
        token: RequestToken,
        from: SocketAddr,
        method: String,
        args: Vec<Value>,
    ) {
        if !matches!(self.phase, Phase::Running) {
            // Shutting down: nobody will answer requests that arrive now.
            core.abandon(now, token);
            return;
        }
        let Some(handler) = self.handlers.get(&method) else {
            // As the Python peers: an unknown method gets no answer at all.
            self.counters.unknown_methods += 1;
            warn(core, now, from, &method, "unknown method; no answer");
            core.abandon(now, token);
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
            Ok(Ok(result)) => self.answer(core, now, token, &method, from, result),
            Ok(Err(fut)) => {
                let task = self.running.spawn(fut);
                self.tasks.insert(task.id(), (token, method, from));
                self.by_token.insert(token, task);
            }
            Err(payload) => {
                self.counters.handler_panics += 1;
                let what = format!(
                    "handler panicked: {}; no answer",
                    panic_message(payload.as_ref())
                );
                warn(core, now, from, &method, &what);
                core.abandon(now, token);
            }
        }
    }

    /// Answers a served request with its handler's result: a value, an error reply
    /// (the core encodes it), or nothing ([`HandlerError::no_answer`](super::HandlerError::no_answer)).
    fn answer(
        &mut self,
        core: &mut CoreEndpoint,
        now: Instant,
        token: RequestToken,
        method: &str,
        from: SocketAddr,
        result: HandlerResult,
    ) {
        let e = match result {
            Ok(value) => return core.respond(now, token, &value),
            Err(e) => e,
        };
        self.counters.handler_failures += 1;
        let outcome = match e.is_no_answer() {
            true => "no answer",
            false => "error reply sent",
        };
        warn(
            core,
            now,
            from,
            method,
            &format!("handler failed: {e}; {outcome}"),
        );
        match e.is_no_answer() {
            true => core.abandon(now, token),
            false => core.respond_error(now, token, e.message()),
        }
    }

    fn finish_handler(
        &mut self,
        core: &mut CoreEndpoint,
        now: Instant,
        result: Result<(tokio::task::Id, HandlerResult), tokio::task::JoinError>,
    ) {
        let id = match &result {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let Some((token, method, from)) = self.tasks.remove(&id) else {
            return; // preempted (cancelled on purpose)
        };
        self.by_token.remove(&token);
        match result {
            Ok((_, result)) => self.answer(core, now, token, &method, from, result),
            Err(e) => {
                self.counters.handler_panics += 1;
                let what = format!("handler panicked or was cancelled: {e}; no answer");
                warn(core, now, from, &method, &what);
                core.abandon(now, token);
            }
        }
    }
}

impl Application<CoreEndpoint> for EndpointApp {
    type Command = Command;

    fn on_event(&mut self, core: &mut CoreEndpoint, now: Instant, event: Event) {
        // Handlers whose slot went to a newer request: cancelled, nobody answers them.
        while let Some(token) = core.poll_preempted() {
            if let Some(task) = self.by_token.remove(&token) {
                self.tasks.remove(&task.id());
                task.abort();
            }
        }
        match event {
            Event::Request {
                token,
                from,
                method,
                args,
            } => self.start_handler(core, now, token, from, method, args),
            Event::CallSucceeded { call, value } => {
                if let Some(p) = self.calls.remove(&call) {
                    self.tickets.remove(&p.ticket);
                    let _ = p.reply.send(Ok(value));
                }
            }
            Event::CallFailed { call, error } => {
                if let Some(p) = self.calls.remove(&call) {
                    self.tickets.remove(&p.ticket);
                    let error = match error {
                        CallFailure::Timeout => CallError::Timeout(p.budget),
                        CallFailure::Remote { message } => CallError::Remote { message },
                    };
                    let _ = p.reply.send(Err(error));
                }
            }
        }
    }

    fn on_command(&mut self, core: &mut CoreEndpoint, now: Instant, command: Command) -> Flow {
        match command {
            Command::Call(cmd) => self.start_call(core, now, cmd),
            Command::Cancel(ticket) => self.cancel(core, ticket),
            Command::Shutdown { grace, done } => {
                self.done.push(done);
                if matches!(self.phase, Phase::Running) {
                    self.fail_calls(core);
                    let deadline = tokio::time::Instant::from_std(now) + grace;
                    self.phase = Phase::Draining {
                        deadline: Box::pin(tokio::time::sleep_until(deadline)),
                    };
                }
            }
        }
        // Stopping is decided in `poll_work`, once the handlers are done.
        Flow::Continue
    }

    fn poll_work(
        &mut self,
        cx: &mut Context<'_>,
        core: &mut CoreEndpoint,
        now: Instant,
    ) -> Poll<Flow> {
        let mut worked = false;
        for _ in 0..FINISHED_PER_ROUND {
            if self.running.is_empty() {
                break;
            }
            match self.running.poll_join_next_with_id(cx) {
                Poll::Ready(Some(j)) => {
                    self.finish_handler(core, now, j);
                    worked = true;
                }
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        if let Phase::Draining { deadline } = &mut self.phase {
            if self.running.is_empty() || deadline.as_mut().poll(cx).is_ready() {
                self.phase = Phase::Stopped;
                return Poll::Ready(Flow::Stop);
            }
        }
        if worked {
            Poll::Ready(Flow::Continue)
        } else {
            Poll::Pending
        }
    }

    fn on_send_error(
        &mut self,
        core: &mut CoreEndpoint,
        _now: Instant,
        t: &Transmit,
        error: io::Error,
    ) {
        // The core knows whose request this datagram is; that caller gets the error.
        if let Some(id) = core.call_of(t) {
            if let Some(p) = self.calls.remove(&id) {
                self.tickets.remove(&p.ticket);
                core.cancel(id);
                let _ = p.reply.send(Err(CallError::Io(error)));
                return;
            }
        }
        tracing::debug!(
            "cannot send {} bytes to {}: {error}",
            t.payload.len(),
            t.destination
        );
    }

    fn on_handles_dropped(&mut self, _core: &mut CoreEndpoint, _now: Instant) -> Flow {
        // Every handle is gone: nobody can call or wait for an answer any more.
        Flow::Stop
    }

    fn on_round(&mut self, core: &CoreEndpoint, io: &DriverStats) {
        let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        s.core = core.stats().clone();
        s.send_errors = io.send_errors;
        s.recv_errors = io.recv_errors;
        s.unknown_methods = self.counters.unknown_methods;
        s.handler_failures = self.counters.handler_failures;
        s.handler_panics = self.counters.handler_panics;
        s.handlers_running = self.running.len();
        s.calls_outstanding = self.calls.len();
        s.dedup_entries = core.dedup_entries();
        s.dedup_bytes = core.dedup_bytes();
    }

    fn on_stop(&mut self, core: &mut CoreEndpoint, now: Instant) {
        self.phase = Phase::Stopped;
        self.fail_calls(core);
        // Handlers that outlived the grace (or the handles) are dropped unanswered.
        for (_, (token, ..)) in self.tasks.drain() {
            core.abandon(now, token);
        }
        self.by_token.clear();
        self.running.abort_all();
    }
}

/// Logs a failure `from` caused at warn level, with the method and the peer, if the
/// core's budget of warning lines allows (a flood is counted, and the next line says
/// how many were left out).
fn warn(core: &mut CoreEndpoint, now: Instant, from: SocketAddr, method: &str, what: &str) {
    match core.admit_warning(now) {
        // `?method`: the peer's text, escaped (no control characters reach the log).
        Some(0) => tracing::warn!(method = ?method, peer = %from, "{what}"),
        Some(suppressed) => tracing::warn!(method = ?method, peer = %from, suppressed, "{what}"),
        None => {}
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
