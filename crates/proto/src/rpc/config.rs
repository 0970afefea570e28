//! Configuration: the endpoint's limits and the per-call timing options.

use std::time::Duration;

use crate::wire::rpc::{Dialect, HEADER_LEN};
use crate::wire::value::DecodeLimits;
use crate::wire::MAX_UDP_PAYLOAD_V4;

use super::limits::LimitsConfig;

/// Limits and defaults of an [`Endpoint`](super::Endpoint). Every limit is finite.
///
/// [`Default`] is the `rpcudp` dialect with the Python peers' behaviour where one exists
/// (8192-byte request bodies, 5 s timeout, no retries); [`EndpointConfig::for_dialect`]
/// picks the body limits of another dialect. Whatever the fields say, the endpoint never
/// sends a body the dialect's peer cannot take: it uses the smaller of
/// [`max_request_body`](Self::max_request_body) and [`Dialect::max_body`] (same for
/// responses), so `EndpointConfig { dialect: Dialect::Storj, ..Default::default() }` is
/// safe too.
///
/// ```
/// use rpcudp_proto::rpc::EndpointConfig;
/// use rpcudp_proto::wire::rpc::Dialect;
/// let c = EndpointConfig::for_dialect(Dialect::Storj);
/// assert_eq!((c.max_request_body, c.max_response_body), (8171, 8171));
/// assert_eq!(EndpointConfig::default().max_request_body, 8192);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointConfig {
    /// Kind bytes and size limits of the peers spoken to.
    pub dialect: Dialect,
    /// Largest request body [`Endpoint::call`](super::Endpoint::call) sends; larger is
    /// refused with `CallRefused::RequestTooLarge`. 8192 (storj: 8171). Incoming requests
    /// are not held to it: they are already bounded by the datagram size.
    pub max_request_body: usize,
    /// Largest response body sent; a larger answer is not sent (the caller times out, as
    /// it would with the Python peers, which lose it) and is counted in
    /// `Stats::responses_too_large`. Default: the largest that fits an IPv4 UDP datagram
    /// (65486); storj: 8171, as its peer reads at most 8192 bytes per datagram.
    pub max_response_body: usize,
    /// Most calls in flight at once; more are refused (`CallError::Overloaded`
    /// from a `Node`, `CallRefused::TooManyOutstanding` in the core). Default 65 536.
    pub max_outstanding_calls: usize,
    /// Most requests being handled at once (handlers running, in a `Node`; in the core,
    /// handed out as [`Event::Request`](super::Event::Request) and not yet answered by
    /// `respond` / `abandon`); further requests are dropped and counted in
    /// `Stats::refused_overload`. Default 1024.
    pub max_concurrent_requests: usize,
    /// Most answered requests remembered for duplicate suppression; the oldest is
    /// forgotten first. Default 65 536.
    pub dedup_capacity: usize,
    /// How long an answered request is remembered (from the moment it was answered).
    /// Default 30 s: longer than a caller's usual retry schedule.
    pub dedup_lifetime: Duration,
    /// Most bytes of cached responses kept for duplicate suppression; the oldest entries
    /// are forgotten first. Default 16 MiB.
    pub dedup_max_bytes: usize,
    /// Limits for decoding incoming bodies (nesting depth). Outgoing values are held to
    /// the same depth, so our own peers can always read what we send.
    pub decode_limits: DecodeLimits,
    /// Options for calls made without specific ones (used by drivers; the endpoint's
    /// `call` takes explicit options).
    pub default_call: CallOptions,
    /// Per-source limits (rates, handler shares per /24 or /64), address validation and
    /// the 3× anti-amplification rule; see [`LimitsConfig`] and `SECURITY.md`.
    pub limits: LimitsConfig,
    /// Whether a response that is an error reply (`{"__rpcudp_error__": message}`,
    /// docs/wire.md section 1) ends its call with
    /// [`CallFailure::Remote`](super::CallFailure::Remote) (true, the default), or
    /// arrives as an ordinary [`Event::CallSucceeded`](super::Event::CallSucceeded) value
    /// (false: what a Python `rpcudp` caller sees, for a driver that mimics one).
    pub error_replies: bool,
    /// How many warning lines a second a driver logs for failures a peer can cause (an
    /// unknown method, wrong arguments, a handler's error or panic); the rest are
    /// counted and the next line says how many were left out
    /// ([`Endpoint::admit_warning`](super::Endpoint::admit_warning)). Default 10.
    pub warn_lines_per_sec: u32,
}

impl EndpointConfig {
    /// The defaults, with the body limits of `dialect`.
    pub fn for_dialect(dialect: Dialect) -> Self {
        EndpointConfig {
            dialect,
            max_request_body: dialect.max_body(),
            max_response_body: match dialect {
                Dialect::Rpcudp => MAX_UDP_PAYLOAD_V4 - HEADER_LEN,
                Dialect::Storj => dialect.max_body(),
            },
            max_outstanding_calls: 65_536,
            max_concurrent_requests: 1024,
            dedup_capacity: 65_536,
            dedup_lifetime: Duration::from_secs(30),
            dedup_max_bytes: 16 << 20,
            decode_limits: DecodeLimits::default(),
            default_call: CallOptions::default(),
            limits: LimitsConfig::default(),
            error_replies: true,
            warn_lines_per_sec: 10,
        }
    }

    /// The request body limit in force: the configured one, capped by the dialect's.
    pub fn effective_max_request_body(&self) -> usize {
        self.max_request_body.min(self.dialect.max_body())
    }

    /// The response body limit in force: the configured one, capped by what the dialect's
    /// peer can read (storj) or a UDP datagram can carry (rpcudp).
    pub fn effective_max_response_body(&self) -> usize {
        let cap = match self.dialect {
            Dialect::Rpcudp => MAX_UDP_PAYLOAD_V4 - HEADER_LEN,
            Dialect::Storj => self.dialect.max_body(),
        };
        self.max_response_body.min(cap)
    }
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig::for_dialect(Dialect::Rpcudp)
    }
}

/// Timing of one call: how long each attempt waits, how many resends, the overall bound.
///
/// # The schedule
/// The request is sent at `call` time (attempt 0). Attempt *i* waits
/// `wᵢ = min(attempt_timeout × backoffⁱ, max(attempt_timeout, max_attempt_timeout))`.
/// If no answer came and resends are left, the **same datagram** (same message id) is
/// sent again; the wait before a resend is shortened by a random fraction of up to
/// `jitter` (so that many callers who lost packets together do not resend together), the
/// last attempt waits its full `wᵢ`. After the last attempt's wait the call fails with a
/// timeout (`CallError::Timeout` from a `Node`, `CallFailure::Timeout` in the core). So with `retries = r` a call gives up at most
/// [`max_duration`](Self::max_duration) = `w₀ + … + w_r` after it started, and never
/// before `attempt_timeout` has passed since its last send (unless `deadline` cuts in).
///
/// `deadline`, when set, is an overall bound from the moment of `call`: the call fails
/// then even if attempts are left, and no resend is scheduled at or after it.
///
/// The CLI's `--timeout` is `attempt_timeout` and `--retries` is `retries`:
/// `--timeout 1 --retries 2` sends at 0 s, about 1 s and about 3 s and gives up at 7 s
/// (with the default `backoff` of 2; a driver wanting equal waits sets `backoff: 1.0`).
///
/// ```
/// use std::time::Duration;
/// use rpcudp_proto::rpc::CallOptions;
/// let o = CallOptions { attempt_timeout: Duration::from_secs(1), retries: 2, ..Default::default() };
/// assert_eq!(o.max_duration(), Duration::from_secs(7));
/// let flat = CallOptions { backoff: 1.0, ..o.clone() };
/// assert_eq!(flat.max_duration(), Duration::from_secs(3));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CallOptions {
    /// How long the first attempt waits for the answer. Default 5 s (the Python peers').
    pub attempt_timeout: Duration,
    /// How many times the same datagram is resent before giving up. Default 0.
    pub retries: u32,
    /// Factor by which each attempt's wait grows (values below 1 or not finite count as
    /// 1). Default 2.
    pub backoff: f64,
    /// Cap on an attempt's wait as it grows (never below `attempt_timeout`). Default 60 s.
    /// (Whatever the options, the endpoint waits at most a year per attempt, so huge
    /// values cannot overflow the clock.)
    pub max_attempt_timeout: Duration,
    /// Largest fraction (0 to 1) by which the wait before a resend is shortened at
    /// random. Default 0.1.
    pub jitter: f64,
    /// Overall bound from the moment of `call`, if any. Default none (the schedule's own
    /// end, [`max_duration`](Self::max_duration)).
    pub deadline: Option<Duration>,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            attempt_timeout: Duration::from_secs(5),
            retries: 0,
            backoff: 2.0,
            max_attempt_timeout: Duration::from_secs(60),
            jitter: 0.1,
            deadline: None,
        }
    }
}

impl CallOptions {
    /// The nominal wait of attempt `attempt` (0 = the first send), before jitter.
    pub fn attempt_wait(&self, attempt: u32) -> Duration {
        let cap = self.max_attempt_timeout.max(self.attempt_timeout);
        let factor = self.backoff_factor().powi(attempt.min(1024) as i32);
        let secs = self.attempt_timeout.as_secs_f64() * factor;
        if secs < cap.as_secs_f64() {
            Duration::try_from_secs_f64(secs).unwrap_or(cap)
        } else {
            cap
        }
    }

    /// The longest a call with these options can take before it fails: the sum of all
    /// attempts' waits, or `deadline` if that is sooner.
    pub fn max_duration(&self) -> Duration {
        let mut total = Duration::ZERO;
        for attempt in 0..=self.retries {
            total = total.saturating_add(self.attempt_wait(attempt));
            if self.deadline.is_some_and(|d| total >= d) {
                break;
            }
        }
        match self.deadline {
            Some(d) => total.min(d),
            None => total,
        }
    }

    pub(crate) fn backoff_factor(&self) -> f64 {
        if self.backoff.is_finite() && self.backoff >= 1.0 {
            self.backoff
        } else {
            1.0
        }
    }

    pub(crate) fn jitter_fraction(&self) -> f64 {
        if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}
