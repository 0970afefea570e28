//! What keeps a length-type TCP listener from being held by connections that send
//! nothing, half a frame, or a file-descriptor flood: shared by [`Server`](super::Server)
//! and `rpcudp lt echo`.
//!
//! Owned here ([`ConnLimits`], each refusal counted in [`GuardStats`]):
//! - a **connection cap**, lowered to fit the process's open-file limit; at the cap a new
//!   connection **evicts the one idle longest** (no whole frame for at least
//!   [`ConnLimits::evict_after`]) instead of being refused, so idle connections cannot
//!   keep an honest one out;
//! - an **idle timeout** (no whole frame for [`ConnLimits::idle_timeout`]) and a
//!   **partial-frame timeout** (a frame begun and not finished within
//!   [`ConnLimits::frame_timeout`]);
//! - a cap on bytes **buffered per connection** and **in total**: over the total, a
//!   connection holding more than its fair share is closed;
//! - **accept errors** (out of file descriptors) back off (10 ms doubling to 1 s), are
//!   counted, and log one line per minute at most; each also evicts the idlest
//!   connection, to give the descriptor back.
//!
//! Not owned: framing (the codec), what is done with frames, writing.

use super::codec::{LtCodec, LtError};
use super::message::MessageSet;
use bytes::BytesMut;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

/// The limits of a length-type listener's connections.
///
/// ```
/// use rpcudp::lt::ConnLimits;
/// let l = ConnLimits::default();
/// assert_eq!(l.max_connections, 1024);
/// assert_eq!(l.frame_timeout.as_secs(), 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnLimits {
    /// Most live connections (lowered to the open-file limit minus a reserve, where
    /// `/proc/self/limits` tells it). Default 1024.
    pub max_connections: usize,
    /// A connection that has sent no whole frame for this long is closed. Default 300 s.
    pub idle_timeout: Duration,
    /// A frame begun must be whole within this long. Default 20 s.
    pub frame_timeout: Duration,
    /// At the cap, a connection idle at least this long may be evicted for a new one.
    /// Default 1 s.
    pub evict_after: Duration,
    /// Most bytes buffered for one connection's incoming frame (and never more than the
    /// max frame plus 64 KiB). Default 16 MiB + 64 KiB.
    pub max_buffered_per_connection: usize,
    /// Most bytes buffered for all connections together; past it, a connection holding
    /// more than its fair share (total / live connections) is closed. Default 32 MiB.
    pub max_buffered_total: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(20),
            evict_after: Duration::from_secs(1),
            max_buffered_per_connection: (16 << 20) + (64 << 10),
            max_buffered_total: 32 << 20,
        }
    }
}

/// Counters of a [`Guard`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Idle connections closed to make room for a new one (or for a descriptor).
    pub evicted: u64,
    /// Connections closed for sending no whole frame within the idle timeout.
    pub idle_timeouts: u64,
    /// Connections closed for a frame not finished within the frame timeout.
    pub frame_timeouts: u64,
    /// Connections closed for buffering more than allowed (their own cap, or their share
    /// of the total).
    pub over_buffer: u64,
    /// `accept` failures (usually out of file descriptors).
    pub accept_errors: u64,
}

#[derive(Default)]
struct Counters {
    evicted: AtomicU64,
    idle_timeouts: AtomicU64,
    frame_timeouts: AtomicU64,
    over_buffer: AtomicU64,
    accept_errors: AtomicU64,
}

struct Entry {
    /// The last whole frame (or the accept).
    last_active: Instant,
    kill: CancellationToken,
}

struct Inner {
    limits: ConnLimits,
    conns: Mutex<(u64, HashMap<u64, Entry>)>,
    buffered: AtomicUsize,
    counters: Counters,
    /// Accept backoff and log state: (consecutive failures, last log, failures since).
    accept: Mutex<(u32, Option<Instant>, u64)>,
}

/// The shared connection table of one listener. Cheap to clone.
#[derive(Clone)]
pub struct Guard(Arc<Inner>);

/// The open-file soft limit, from `/proc/self/limits` (Linux), if known.
fn nofile_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

impl Guard {
    /// A table with `limits`, the connection cap lowered to fit the open-file limit.
    pub fn new(mut limits: ConnLimits) -> Guard {
        if let Some(n) = nofile_limit() {
            let reserve = (n / 4).clamp(8, 64);
            limits.max_connections = limits.max_connections.min(n.saturating_sub(reserve).max(1));
        }
        Guard(Arc::new(Inner {
            limits,
            conns: Mutex::new((0, HashMap::new())),
            buffered: AtomicUsize::new(0),
            counters: Counters::default(),
            accept: Mutex::new((0, None, 0)),
        }))
    }

    /// The limits in force (the cap possibly lowered).
    pub fn limits(&self) -> &ConnLimits {
        &self.0.limits
    }

    /// The counters so far.
    pub fn stats(&self) -> GuardStats {
        let c = &self.0.counters;
        GuardStats {
            evicted: c.evicted.load(Ordering::Relaxed),
            idle_timeouts: c.idle_timeouts.load(Ordering::Relaxed),
            frame_timeouts: c.frame_timeouts.load(Ordering::Relaxed),
            over_buffer: c.over_buffer.load(Ordering::Relaxed),
            accept_errors: c.accept_errors.load(Ordering::Relaxed),
        }
    }

    /// Bytes buffered for all connections now.
    pub fn buffered(&self) -> usize {
        self.0.buffered.load(Ordering::Relaxed)
    }

    /// Live connections.
    pub fn live(&self) -> usize {
        self.lock().1.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, HashMap<u64, Entry>)> {
        self.0.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes the connection idle longest, if it has been idle at least `evict_after`.
    fn evict_idlest(&self, table: &mut HashMap<u64, Entry>, now: Instant) -> bool {
        let idlest = table
            .iter()
            .min_by_key(|(_, e)| e.last_active)
            .filter(|(_, e)| {
                now.saturating_duration_since(e.last_active) >= self.0.limits.evict_after
            })
            .map(|(&id, _)| id);
        match idlest.and_then(|id| table.remove(&id)) {
            Some(e) => {
                e.kill.cancel();
                self.0.counters.evicted.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Admits a new connection: a ticket, or `None` if the cap is reached and no
    /// connection is idle enough to evict (the caller closes the new one).
    pub fn admit(&self) -> Option<Ticket> {
        let now = Instant::now();
        let mut guard = self.lock();
        let (next, table) = &mut *guard;
        if table.len() >= self.0.limits.max_connections && !self.evict_idlest(table, now) {
            return None;
        }
        *next += 1;
        let id = *next;
        let kill = CancellationToken::new();
        table.insert(
            id,
            Entry {
                last_active: now,
                kill: kill.clone(),
            },
        );
        Some(Ticket {
            guard: self.clone(),
            id,
            kill,
            buffered: 0,
            last_active: now,
            partial_since: None,
        })
    }

    /// An accept succeeded: the backoff starts over.
    pub fn accept_ok(&self) {
        self.0.accept.lock().unwrap_or_else(|e| e.into_inner()).0 = 0;
    }

    /// An accept failed with `e`: counts it, evicts the idlest connection (to give a
    /// descriptor back), logs at most one line a minute, and returns how long to wait
    /// before accepting again.
    pub fn accept_failed(&self, e: &io::Error, what: &str) -> Duration {
        self.0
            .counters
            .accept_errors
            .fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        self.evict_idlest(&mut self.lock().1, now);
        let mut a = self.0.accept.lock().unwrap_or_else(|e| e.into_inner());
        a.0 = a.0.saturating_add(1);
        a.2 += 1;
        if a.1
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(60))
        {
            tracing::warn!(
                "{what}: accept failed: {e} ({} failure(s) since the last report; backing off)",
                a.2
            );
            a.1 = Some(now);
            a.2 = 0;
        }
        Duration::from_millis(10 << a.0.min(7).saturating_sub(1)).min(Duration::from_secs(1))
    }
}

/// Why a [`GuardedReader`] closed its connection.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// A bad frame or a socket error.
    #[error(transparent)]
    Lt(#[from] LtError),
    /// No whole frame within the idle timeout.
    #[error("idle for {0:?}")]
    IdleTimeout(Duration),
    /// A frame begun and not finished within the frame timeout.
    #[error("frame not finished within {0:?}")]
    FrameTimeout(Duration),
    /// Closed to make room for another connection.
    #[error("evicted: idle while the listener was full")]
    Evicted,
    /// Buffering more than allowed.
    #[error("over the buffer limit ({0} bytes buffered)")]
    OverBuffer(usize),
}

/// One admitted connection's place in its [`Guard`]; leaving the table when dropped.
pub struct Ticket {
    guard: Guard,
    id: u64,
    kill: CancellationToken,
    buffered: usize,
    last_active: Instant,
    partial_since: Option<Instant>,
}

impl Ticket {
    /// A whole frame arrived.
    fn active(&mut self, now: Instant) {
        self.last_active = now;
        if let Some(e) = self.guard.lock().1.get_mut(&self.id) {
            e.last_active = now;
        }
    }

    /// Accounts `n` bytes buffered now; an error if that is over a cap.
    fn set_buffered(&mut self, n: usize) -> Result<(), GuardError> {
        let g = &self.guard.0;
        if n >= self.buffered {
            g.buffered.fetch_add(n - self.buffered, Ordering::Relaxed);
        } else {
            g.buffered.fetch_sub(self.buffered - n, Ordering::Relaxed);
        }
        self.buffered = n;
        let total = g.buffered.load(Ordering::Relaxed);
        let share = g.limits.max_buffered_total / self.guard.live().max(1);
        let over = n > g.limits.max_buffered_per_connection
            || (total > g.limits.max_buffered_total && n > share);
        if over {
            g.counters.over_buffer.fetch_add(1, Ordering::Relaxed);
            return Err(GuardError::OverBuffer(n));
        }
        Ok(())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let _ = self.set_buffered(0);
        self.guard.lock().1.remove(&self.id);
    }
}

/// Reads frames of protocol `P` from one connection within its [`Ticket`]'s limits.
pub struct GuardedReader<R, P> {
    rd: R,
    codec: LtCodec<P>,
    buf: BytesMut,
    ticket: Ticket,
}

impl<R: AsyncRead + Unpin, P: MessageSet> GuardedReader<R, P> {
    /// Reads `rd` with `codec`, under `ticket`.
    pub fn new(rd: R, codec: LtCodec<P>, ticket: Ticket) -> Self {
        GuardedReader {
            rd,
            codec,
            buf: BytesMut::new(),
            ticket,
        }
    }

    /// Whether a whole frame is already buffered (the next `next` will not wait).
    pub fn frame_ready(&self) -> bool {
        matches!(
            self.codec.format().parse_header(&self.buf),
            Ok(Some((len, _))) if self.buf.len() as u64 >= len
        )
    }

    /// The next frame; `None` at a clean end of stream.
    pub async fn next(&mut self) -> Option<Result<P, GuardError>> {
        let limits = self.ticket.guard.0.limits.clone();
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(msg)) => {
                    self.ticket.active(Instant::now());
                    self.ticket.partial_since = None;
                    return Some(Ok(msg));
                }
                Ok(None) => {}
                Err(e) => return Some(Err(e.into())),
            }
            if self.buf.is_empty() && self.buf.capacity() > 128 << 10 {
                // A big frame went through: give its room back.
                self.buf = BytesMut::new();
            }
            if let Err(e) = self.ticket.set_buffered(self.buf.len()) {
                return Some(Err(e));
            }
            let now = Instant::now();
            let partial = !self.buf.is_empty() || !self.codec.is_idle();
            let deadline = match (partial, self.ticket.partial_since) {
                (true, Some(t)) => t + limits.frame_timeout,
                (true, None) => {
                    self.ticket.partial_since = Some(now);
                    now + limits.frame_timeout
                }
                (false, _) => {
                    self.ticket.partial_since = None;
                    self.ticket.last_active + limits.idle_timeout
                }
            };
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(16 << 10);
            }
            let read = tokio::select! {
                _ = self.ticket.kill.cancelled() => return Some(Err(GuardError::Evicted)),
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let c = &self.ticket.guard.0.counters;
                    return Some(Err(if partial {
                        c.frame_timeouts.fetch_add(1, Ordering::Relaxed);
                        GuardError::FrameTimeout(limits.frame_timeout)
                    } else {
                        c.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                        GuardError::IdleTimeout(limits.idle_timeout)
                    }));
                }
                r = self.rd.read_buf(&mut self.buf) => r,
            };
            match read {
                Ok(0) if partial => {
                    return Some(Err(LtError::TruncatedAtEof {
                        buffered: self.buf.len(),
                    }
                    .into()))
                }
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(LtError::Io(e).into())),
            }
        }
    }
}
