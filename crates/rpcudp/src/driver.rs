//! The one tokio driver for every sans-IO protocol: [`Driver`] runs anything that
//! implements [`rpcudp_proto::Protocol`] on a [`udp::Socket`](crate::udp::Socket).
//!
//! Owns: moving datagrams between the socket and the protocol (in batches: `recvmmsg`,
//! `sendmmsg`, UDP GSO, with the local address of each datagram on wildcard-bound
//! sockets), reading the clock, arming the protocol's timer, and handing events and
//! commands to an [`Application`]. Does not own: what any event means (the application
//! decides: the RPC [`Node`](crate::rpc::Endpoint) runs handlers and answers callers, the
//! benchmark records latencies, the Kademlia node answers lookups), nor any protocol
//! decision (duplicates, retries, which answer is genuine: all in the core).
//!
//! The loop has quinn's shape. Each time the driver task is woken it runs rounds of:
//! 1. `drive_commands`: commands from [`DriverHandle`]s, urgent ones first;
//! 2. `drive_app`: the application's own work ([`Application::poll_work`], e.g.
//!    handler tasks that finished);
//! 3. `drive_timers`: [`Protocol::handle_timeout`] once the deadline from
//!    [`Protocol::poll_timeout`] has come;
//! 4. `drive_recv`: datagrams, many per system call, each fed to
//!    [`Protocol::handle_datagram`] with its sender and the address it came to;
//! 5. `forward_events`: [`Protocol::poll_event`] to [`Application::on_event`] (after
//!    each of the steps above, so the protocol's event queue stays short);
//! 6. `drive_transmit`: [`Protocol::poll_transmit`] to the socket, many per system call,
//!    each from its [`Transmit::source`];
//!
//! until a round finds nothing to do (then it sleeps until a source is ready), or for at
//! most a few rounds before it yields to the other tasks. Every step is bounded: a
//! flood on the socket cannot starve commands or timers.
//!
//! Time comes from tokio's clock (`tokio::time::Instant::now().into_std()`), so tests
//! run it in paused time (`#[tokio::test(start_paused = true)]`): a 5 s timeout takes
//! no real time.
//!
//! ```
//! use rpcudp::driver::{Application, Driver, Flow};
//! use rpcudp::proto::rpc::{Endpoint, EndpointConfig, Event};
//! use rmpv::Value;
//! use std::time::Instant;
//!
//! /// Answers `ping()` with "pong"; `Stop` ends the driver.
//! struct Pong;
//!
//! enum Command {
//!     Stop,
//! }
//!
//! impl Application<Endpoint> for Pong {
//!     type Command = Command;
//!     fn on_event(&mut self, core: &mut Endpoint, now: Instant, event: Event) {
//!         if let Event::Request { token, method, .. } = event {
//!             match method.as_str() {
//!                 "ping" => core.respond(now, token, &Value::from("pong")),
//!                 _ => core.abandon(now, token),
//!             }
//!         }
//!     }
//!     fn on_command(&mut self, _: &mut Endpoint, _: Instant, command: Command) -> Flow {
//!         match command {
//!             Command::Stop => Flow::Stop,
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let socket = rpcudp::udp::Socket::bind("127.0.0.1:0".parse()?).await?;
//! let addr = socket.local_addr()?;
//! let core = Endpoint::new(EndpointConfig::default(), 7);
//! let (driver, handle) = Driver::new(socket, core, Pong, 16);
//! let task = tokio::spawn(driver.run());
//!
//! // Any rpcudp peer can call it; here a Node.
//! let client = rpcudp::rpc::Endpoint::bind("127.0.0.1:0".parse()?).await?;
//! assert_eq!(client.call(addr, "ping", vec![]).await?, Value::from("pong"));
//!
//! handle.send(Command::Stop).await.ok();
//! let _pong: Pong = task.await?; // the driver hands the application back
//! # client.shutdown().await;
//! # Ok(()) }
//! ```

use crate::udp::{RecvBatch, Socket as UdpSocket};
use rpcudp_proto::{Protocol, Transmit};
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What an [`Application`] wants the driver to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep running.
    Continue,
    /// Stop: the driver refuses further commands (each queued one is still handed to
    /// [`Application::on_command`], which should refuse it), sends what the protocol has
    /// queued, calls [`Application::on_stop`] and returns the application.
    Stop,
}

/// What a [`Driver`] runs around its protocol: the code that acts on the protocol's
/// events and on commands from the [`DriverHandle`]s.
///
/// Every method gets the protocol (`&mut P`, to call its commands: `respond`, `call`,
/// `start_get`, ...) and the driver's current time, read once per round from tokio's
/// clock; pass that `now` on to the protocol. Transmits and events the protocol queues
/// meanwhile are taken by the driver after the method returns.
pub trait Application<P: Protocol> {
    /// What handles send to the driver (typically an enum whose variants carry a
    /// `oneshot::Sender` for the answer).
    type Command;

    /// An event from the protocol, oldest first.
    fn on_event(&mut self, protocol: &mut P, now: Instant, event: P::Event);

    /// A command from a [`DriverHandle`]. Also called for commands still queued after
    /// the driver decided to stop, so that each one can be answered (refused).
    fn on_command(&mut self, protocol: &mut P, now: Instant, command: Self::Command) -> Flow;

    /// The application's own sources of work (tasks it spawned, timers of its own),
    /// polled once per round. Register `cx`'s waker for them as any future does and
    /// return `Pending` when nothing is ready; `Ready(_)` means work was done (the
    /// driver then runs another round). The default has no such sources.
    fn poll_work(&mut self, cx: &mut Context<'_>, protocol: &mut P, now: Instant) -> Poll<Flow> {
        let _ = (cx, protocol, now);
        Poll::Pending
    }

    /// The kernel refused `transmit` (counted in [`DriverStats::send_errors`]). The
    /// protocol may say whose datagram it was (e.g. `rpc::Endpoint::call_of`), so that
    /// the one caller concerned gets the error. The default only logs it.
    fn on_send_error(
        &mut self,
        protocol: &mut P,
        now: Instant,
        transmit: &Transmit,
        error: io::Error,
    ) {
        let _ = (protocol, now);
        tracing::debug!(
            "cannot send {} bytes to {}: {error}",
            transmit.payload.len(),
            transmit.destination
        );
    }

    /// Every [`DriverHandle`] was dropped: nobody can send commands any more. The
    /// default stops; an application that runs on its own (a benchmark) continues.
    fn on_handles_dropped(&mut self, protocol: &mut P, now: Instant) -> Flow {
        let _ = (protocol, now);
        Flow::Stop
    }

    /// Called at the end of every round, before the driver sleeps: the place to
    /// publish counters (the protocol's and the driver's) for handles to read.
    fn on_round(&mut self, protocol: &P, io: &DriverStats) {
        let _ = (protocol, io);
    }

    /// The driver is stopping: last chance to answer or fail what is pending. What the
    /// protocol queues here is still sent.
    fn on_stop(&mut self, protocol: &mut P, now: Instant) {
        let _ = (protocol, now);
    }
}

/// The driver's own counters (the protocol keeps its own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverStats {
    /// Datagrams the kernel refused to send.
    pub send_errors: u64,
    /// Errors reported while receiving (the socket stays in use).
    pub recv_errors: u64,
}

/// Where commands for a [`Driver`] are sent. Cheap to clone; when every clone is
/// dropped the driver calls [`Application::on_handles_dropped`].
///
/// Two queues: [`send`](Self::send) waits while `queue` commands are pending
/// (backpressure for a burst of callers), [`send_urgent`](Self::send_urgent) never
/// waits (for what must not wait behind them: cancellations, shutdown). Urgent
/// commands are taken first.
#[derive(Debug)]
pub struct DriverHandle<C> {
    commands: mpsc::Sender<C>,
    urgent: mpsc::UnboundedSender<C>,
}

impl<C> Clone for DriverHandle<C> {
    fn clone(&self) -> Self {
        DriverHandle {
            commands: self.commands.clone(),
            urgent: self.urgent.clone(),
        }
    }
}

impl<C> DriverHandle<C> {
    /// Queues `command`, waiting while the queue is full. Gives it back if the driver
    /// has stopped.
    pub async fn send(&self, command: C) -> Result<(), C> {
        self.commands.send(command).await.map_err(|e| e.0)
    }

    /// Queues `command` at once, ahead of those from [`send`](Self::send). Gives it
    /// back if the driver has stopped.
    pub fn send_urgent(&self, command: C) -> Result<(), C> {
        self.urgent.send(command).map_err(|e| e.0)
    }

    /// True once the driver has stopped taking commands.
    pub fn is_closed(&self) -> bool {
        self.urgent.is_closed()
    }
}

/// Datagrams read per system call (`recvmmsg`): the whole queue of 32 callers in one go.
const RECV_SLOTS: usize = 32;

/// Receive system calls per round (up to 64 datagrams): enough to amortise a wake-up
/// over a burst, few enough that commands and timers get their turn.
const RECV_ROUNDS: usize = 2;

/// Commands taken from each queue per round.
const COMMANDS_PER_ROUND: usize = 64;

/// Rounds per wake-up before the driver yields to other tasks (waking itself again).
const MAX_ROUNDS: usize = 8;

/// Datagrams waiting for room in the socket's send buffer beyond which the driver reads
/// no more requests (whose answers would only queue here): memory stays bounded and
/// the senders' own retries take over.
const OUTBOX_LIMIT: usize = 1024;

/// After a receive error, the pause before the socket is read again: an error that
/// repeats at once costs ~1000 turns a second, not a spinning core.
const RECV_ERROR_PAUSE: Duration = Duration::from_millis(1);

/// Runs a sans-IO [`Protocol`] `P` on a UDP socket, with an [`Application`] `A` acting
/// on its events. See the [module docs](self) for the loop and an example.
pub struct Driver<P: Protocol, A: Application<P>> {
    socket: UdpSocket,
    protocol: P,
    app: A,
    commands: mpsc::Receiver<A::Command>,
    urgent: mpsc::UnboundedReceiver<A::Command>,
    commands_open: bool,
    urgent_open: bool,
    batch: RecvBatch,
    /// Transmits taken from the protocol and not yet sent; `sent` of them went.
    outbox: Vec<Transmit>,
    sent: usize,
    /// One timer for the driver's whole life, moved only when the protocol's deadline
    /// comes earlier than the one it is set for (a later deadline lets it fire early,
    /// and `handle_timeout` then finds nothing due): re-arming per datagram costs a
    /// trip through tokio's timer wheel.
    timer: Pin<Box<tokio::time::Sleep>>,
    timer_at: Option<Instant>,
    recv_pause: Option<Pin<Box<tokio::time::Sleep>>>,
    stats: DriverStats,
    stopping: bool,
}

/// The driver's clock: tokio's, so that paused time in tests pauses the driver too.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl<P: Protocol, A: Application<P>> Driver<P, A> {
    /// A driver for `protocol` on `socket`, with `app` acting on its events, and a
    /// handle to send it commands (`queue`: how many [`DriverHandle::send`] may have
    /// pending before it waits; at least 1). Nothing runs until [`run`](Self::run) is
    /// awaited (or spawned).
    ///
    /// On a socket bound to a wildcard address (`0.0.0.0`, `::`) the driver asks the
    /// kernel for each datagram's destination address, and sends each transmit from its
    /// [`Transmit::source`], so that answers leave from the address that was called.
    pub fn new(
        socket: UdpSocket,
        protocol: P,
        app: A,
        queue: usize,
    ) -> (Self, DriverHandle<A::Command>) {
        Self::with_recv_buffer(socket, protocol, app, queue, 65_536)
    }

    /// [`new`](Self::new) with receive slots of `recv_buffer` bytes (a datagram is read
    /// whole up to the smaller of this and the socket's
    /// [`max_datagram`](UdpSocket::max_datagram); longer ones are dropped and counted).
    pub fn with_recv_buffer(
        socket: UdpSocket,
        protocol: P,
        app: A,
        queue: usize,
        recv_buffer: usize,
    ) -> (Self, DriverHandle<A::Command>) {
        if let Err(e) = socket.enable_local_addr() {
            // Answers then leave from the kernel's choice, as before pktinfo.
            tracing::debug!("cannot ask for destination addresses: {e}");
        }
        let (commands_tx, commands) = mpsc::channel(queue.max(1));
        let (urgent_tx, urgent) = mpsc::unbounded_channel();
        let slot = recv_buffer.clamp(1, socket.max_datagram().max(1));
        let driver = Driver {
            socket,
            protocol,
            app,
            commands,
            urgent,
            commands_open: true,
            urgent_open: true,
            batch: RecvBatch::new(RECV_SLOTS, slot),
            outbox: Vec::new(),
            sent: 0,
            timer: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            timer_at: None,
            recv_pause: None,
            stats: DriverStats::default(),
            stopping: false,
        };
        let handle = DriverHandle {
            commands: commands_tx,
            urgent: urgent_tx,
        };
        (driver, handle)
    }

    /// The socket the driver runs on.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Runs until the application says [`Flow::Stop`] (or every handle is dropped and
    /// it agrees), then returns it.
    pub async fn run(mut self) -> A {
        poll_fn(|cx| self.poll_rounds(cx)).await;
        self.finish().await;
        self.app
    }

    fn poll_rounds(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..MAX_ROUNDS {
            let now = now();
            let mut busy = self.drive_commands(cx, now);
            busy |= self.drive_app(cx, now);
            busy |= self.drive_timers(cx, now);
            busy |= self.drive_recv(cx, now);
            self.forward_events(now);
            self.drive_transmit(cx, now);
            self.app.on_round(&self.protocol, &self.stats);
            if self.stopping {
                return Poll::Ready(());
            }
            if !busy {
                return Poll::Pending;
            }
        }
        // Still busy: let the other tasks run, and come back at once.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Takes up to [`COMMANDS_PER_ROUND`] from each queue, urgent first. True if any
    /// was taken (more may be queued).
    fn drive_commands(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut busy = false;
        for urgent in [true, false] {
            for _ in 0..COMMANDS_PER_ROUND {
                if self.stopping {
                    return busy;
                }
                let (open, polled) = if urgent {
                    (&mut self.urgent_open, self.urgent.poll_recv(cx))
                } else {
                    (&mut self.commands_open, self.commands.poll_recv(cx))
                };
                if !*open {
                    break;
                }
                match polled {
                    Poll::Ready(Some(cmd)) => {
                        busy = true;
                        let flow = self.app.on_command(&mut self.protocol, now, cmd);
                        self.forward_events(now);
                        self.stop_if(flow);
                    }
                    Poll::Ready(None) => {
                        *open = false;
                        if !self.commands_open && !self.urgent_open {
                            let flow = self.app.on_handles_dropped(&mut self.protocol, now);
                            self.stop_if(flow);
                        }
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        busy
    }

    fn drive_app(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        match self.app.poll_work(cx, &mut self.protocol, now) {
            Poll::Ready(flow) => {
                self.forward_events(now);
                self.stop_if(flow);
                true
            }
            Poll::Pending => false,
        }
    }

    fn stop_if(&mut self, flow: Flow) {
        if flow == Flow::Stop {
            self.stopping = true;
        }
    }

    /// Runs the protocol's timers once their deadline has come; arms the one timer for
    /// the next. True if timers ran.
    fn drive_timers(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut fired = false;
        if self.timer_at.is_some() && self.timer.as_mut().poll(cx).is_ready() {
            // Fired: polled again only once re-armed below.
            self.timer_at = None;
            fired = true;
        }
        match self.protocol.poll_timeout() {
            Some(at) if at <= now => fired = true,
            Some(at) if self.timer_at.is_none_or(|t| at < t) => {
                self.timer_at = Some(at);
                self.timer
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(at));
                // A reset timer must be polled to register the waker.
                if self.timer.as_mut().poll(cx).is_ready() {
                    self.timer_at = None;
                    fired = true;
                }
            }
            _ => {}
        }
        if fired {
            self.protocol.handle_timeout(now);
            self.forward_events(now);
        }
        fired
    }

    /// Reads up to [`RECV_ROUNDS`] batches of datagrams, feeding each to the protocol
    /// and sending the answers to a batch before the next read. True if any came (the
    /// socket may have more, and the application new work to register a waker for).
    fn drive_recv(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        if let Some(pause) = &mut self.recv_pause {
            if pause.as_mut().poll(cx).is_pending() {
                return false;
            }
            self.recv_pause = None;
        }
        if self.outbox.len() - self.sent >= OUTBOX_LIMIT {
            return false; // woken by the send side once it has room
        }
        let mut rounds = 0;
        loop {
            match self.socket.poll_recv_ready(cx) {
                Poll::Pending => return rounds > 0,
                Poll::Ready(Err(e)) => {
                    self.recv_error(cx, e);
                    return rounds > 0;
                }
                Poll::Ready(Ok(())) => {}
            }
            match self.socket.try_recv_batch(&mut self.batch) {
                Ok(_) => {
                    for (datagram, from, local) in self.batch.iter_with_local() {
                        self.protocol.handle_datagram(now, from, local, datagram);
                        // Per datagram, so the protocol's event queue stays short.
                        forward(&mut self.protocol, &mut self.app, now);
                    }
                    self.drive_transmit(cx, now);
                    rounds += 1;
                    if rounds == RECV_ROUNDS {
                        return true;
                    }
                }
                // Readiness was stale and is now cleared: the next poll registers.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    // Linux reports nothing here for unconnected UDP; other systems may
                    // surface ICMP errors. Either way the socket stays usable.
                    self.recv_error(cx, e);
                    return rounds > 0;
                }
            }
        }
    }

    fn recv_error(&mut self, cx: &mut Context<'_>, e: io::Error) {
        self.stats.recv_errors += 1;
        tracing::debug!("receive error: {e}");
        let mut pause = Box::pin(tokio::time::sleep(RECV_ERROR_PAUSE));
        // Registers the waker, so the driver comes back after the pause.
        if pause.as_mut().poll(cx).is_pending() {
            self.recv_pause = Some(pause);
        }
    }

    fn forward_events(&mut self, now: Instant) {
        forward(&mut self.protocol, &mut self.app, now);
    }

    /// Sends every datagram the protocol has queued, many per system call. A datagram
    /// the kernel refuses is counted, reported to the application, and skipped; at a
    /// full send buffer the rest waits (the socket's writability wakes the driver).
    fn drive_transmit(&mut self, cx: &mut Context<'_>, now: Instant) {
        loop {
            while let Some(t) = self.protocol.poll_transmit() {
                self.outbox.push(t);
            }
            if self.sent == self.outbox.len() {
                self.outbox.clear();
                self.sent = 0;
                return;
            }
            match self.socket.poll_send_ready(cx) {
                Poll::Pending => return,
                Poll::Ready(Err(e)) => {
                    let t = self.outbox[self.sent].clone();
                    self.sent += 1;
                    self.send_error(now, &t, e);
                    continue;
                }
                Poll::Ready(Ok(())) => {}
            }
            let rest = self.outbox[self.sent..]
                .iter()
                .map(|t| (&t.payload[..], t.destination, t.source));
            match self.socket.try_send_batch_from(rest) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    // Only the first datagram offered failed (later ones would have
                    // ended the batch early, and show up on the next try).
                    let t = self.outbox[self.sent].clone();
                    self.sent += 1;
                    self.send_error(now, &t, e);
                }
            }
        }
    }

    fn send_error(&mut self, now: Instant, t: &Transmit, e: io::Error) {
        self.stats.send_errors += 1;
        self.app.on_send_error(&mut self.protocol, now, t, e);
        self.forward_events(now);
    }

    /// After the application said stop: every queued command is handed over (to be
    /// refused), the application's last words, and what the protocol still has to send
    /// (waiting for room in the send buffer at most a second).
    async fn finish(&mut self) {
        self.commands.close();
        self.urgent.close();
        let now = now();
        while let Ok(cmd) = self.urgent.try_recv() {
            self.app.on_command(&mut self.protocol, now, cmd);
        }
        while let Ok(cmd) = self.commands.try_recv() {
            self.app.on_command(&mut self.protocol, now, cmd);
        }
        self.app.on_stop(&mut self.protocol, now);
        self.forward_events(now);
        let flushed = poll_fn(|cx| {
            self.drive_transmit(cx, now);
            if self.sent == self.outbox.len() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        if tokio::time::timeout(Duration::from_secs(1), flushed)
            .await
            .is_err()
        {
            self.stats.send_errors += (self.outbox.len() - self.sent) as u64;
        }
        self.app.on_round(&self.protocol, &self.stats);
    }
}

fn forward<P: Protocol, A: Application<P>>(protocol: &mut P, app: &mut A, now: Instant) {
    while let Some(event) = protocol.poll_event() {
        app.on_event(protocol, now, event);
    }
}

impl<P: Protocol, A: Application<P>> std::fmt::Debug for Driver<P, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("socket", &self.socket)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
