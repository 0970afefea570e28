//! The caller's side: one entry per call in flight and its retry schedule.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;

use super::config::CallOptions;

/// No single wait is longer than this, so `Instant + wait` cannot overflow whatever the
/// options say (a year is "forever" for an RPC).
const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// A call in flight, keyed in the table by its message id. About 160 bytes, plus the
/// request datagram while resends remain (see `datagram`).
#[derive(Debug)]
pub(crate) struct OutCall {
    /// Where the request went: the only address whose response is accepted.
    pub(crate) peer: SocketAddr,
    /// The request datagram, kept only while resends remain (never for `retries = 0`),
    /// so a resend is byte-identical without re-encoding.
    pub(crate) datagram: Option<Box<[u8]>>,
    /// When this call's timer fires next (its single live entry in the timer heap).
    pub(crate) timer: Instant,
    /// Absolute overall deadline, if the options set one.
    pub(crate) deadline: Option<Instant>,
    /// Index of the attempt in flight: 0 for the first send, `retries` for the last.
    pub(crate) attempt: u32,
    pub(crate) options: CallOptions,
}

impl OutCall {
    /// When the attempt now in flight (sent at `now`) ends: its nominal wait, shortened by
    /// jitter if a resend follows, and never past the overall deadline.
    pub(crate) fn attempt_end(&self, now: Instant, rng: &mut impl Rng) -> Instant {
        let nominal = self.options.attempt_wait(self.attempt).min(MAX_WAIT);
        let wait = if self.attempt < self.options.retries {
            let cut = self.options.jitter_fraction() * rng.random::<f64>();
            nominal.mul_f64(1.0 - cut)
        } else {
            nominal
        };
        let end = now.checked_add(wait).unwrap_or(now);
        match self.deadline {
            Some(d) => end.min(d),
            None => end,
        }
    }

    /// Whether the call must fail when its timer fires at `now` (rather than resend).
    pub(crate) fn is_over(&self, now: Instant) -> bool {
        self.attempt >= self.options.retries || self.deadline.is_some_and(|d| now >= d)
    }
}
