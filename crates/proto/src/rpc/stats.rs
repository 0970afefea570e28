//! Counters of everything the endpoint received, sent, dropped or refused.

pub use super::latency::{LatencyHistogram, LATENCY_BOUNDS_MICROS};

/// Counters, all monotonic since the endpoint was created (a `Node`'s
/// `stats().core` are these).
///
/// The first block is the contract's; the rest break some of them down. Where a counter
/// follows a core call, the name of what a `rpcudp::rpc::Endpoint` user sees comes first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent (requests, resends, responses, cached answers to duplicates).
    pub datagrams_out: u64,
    /// Datagrams dropped because they did not parse: too short, unknown kind byte, bad
    /// MessagePack, too deep, a request body that is not `[method, args]`.
    pub malformed: u64,
    /// Responses whose message id matches no call in flight: late (after a timeout or
    /// cancel), duplicated by the network after the first was accepted, or made up.
    pub unknown_responses: u64,
    /// Responses whose message id is in flight but which came from another address than
    /// the request went to. Dropped; the call goes on waiting for the real answer.
    pub spoofed_responses: u64,
    /// Calls that got no answer in time (`CallError::Timeout` from a `Node`,
    /// `CallFailure::Timeout` in the core).
    pub timeouts: u64,
    /// Resends of a request (same datagram, same message id).
    pub retries: u64,
    /// Duplicate requests answered from the cache with the bytes sent the first time.
    pub duplicates_answered: u64,
    /// Duplicate requests dropped because the first is still being handled.
    pub duplicates_in_progress: u64,
    /// Overload: requests dropped because `max_concurrent_requests` were being handled,
    /// plus calls refused because `max_outstanding_calls` were in flight.
    pub refused_overload: u64,

    /// Requests accepted for handling (each runs a handler in a `Node`; handed out as
    /// `Event::Request` by the core).
    pub requests_received: u64,
    /// Requests dropped for `max_concurrent_requests` (part of `refused_overload`).
    pub requests_dropped_overload: u64,
    /// Answers sent (`respond`), not counting cached answers to duplicates.
    pub responses_sent: u64,
    /// Requests left without an answer on purpose: in a `Node` an unknown method, a
    /// handler error or panic (`abandon` in the core).
    pub requests_abandoned: u64,
    /// Duplicates of an abandoned or unanswerable request, dropped (no answer, handler
    /// not run again).
    pub duplicates_abandoned: u64,
    /// Answers not sent because the value cannot be sent to the peers (a map with
    /// duplicate or unhashable keys, a non-UTF-8 str, too deep: see
    /// `wire::value::check_sendable`).
    pub unsendable_responses: u64,
    /// Answers not sent because their body exceeds `max_response_body`.
    pub responses_too_large: u64,
    /// Calls started.
    pub calls_started: u64,
    /// Calls that got their answer.
    pub calls_succeeded: u64,
    /// Requests answered with an error reply (`respond_error`; in a `Node`, a handler's
    /// error). Each also counts where its answer went: `responses_sent`, held, dropped.
    pub error_replies_sent: u64,
    /// Calls ended by an error reply from the peer (`CallError::Remote` from a `Node`,
    /// `CallFailure::Remote` in the core); not part of `calls_succeeded`.
    pub error_replies_received: u64,
    /// Calls withdrawn while in flight (a `Node` call future dropped; `cancel` in the
    /// core).
    pub calls_cancelled: u64,
    /// Calls refused for `max_outstanding_calls` (part of `refused_overload`).
    pub calls_refused_outstanding: u64,
    /// Calls refused because the request body was over the limit.
    pub calls_refused_too_large: u64,
    /// Calls refused because an argument cannot be sent to the peers.
    pub calls_refused_unsendable: u64,
    /// Answered requests forgotten early, because the cache was at its entry or byte
    /// capacity.
    pub dedup_evictions: u64,
    /// Answered requests forgotten because their lifetime ran out.
    pub dedup_expired: u64,

    /// How long requests took from arrival (`handle_datagram`) to their end (`respond`,
    /// answered or not sendable, or `abandon`): the handler's latency as the core sees it.
    pub handler_latency: LatencyHistogram,
    /// Bytes of the datagrams passed to `handle_datagram` (UDP payloads).
    pub bytes_in: u64,
    /// Bytes of the datagrams handed out by `poll_transmit` (UDP payloads).
    pub bytes_out: u64,
    /// Request datagrams dropped before decoding because their source subnet's
    /// requests-per-second bucket was empty (`LimitsConfig::requests_per_sec`).
    pub requests_rate_limited: u64,
    /// Request datagrams dropped before decoding because their source subnet's
    /// bytes-per-second bucket was empty (`LimitsConfig::bytes_per_sec`).
    pub bytes_rate_limited: u64,
    /// No longer counted (handler slots are shared by preemption now, see
    /// `requests_preempted`); kept for compatibility, always 0.
    pub requests_dropped_source_share: u64,
    /// Requests in progress whose handler slot was given to a newer request because
    /// every slot was taken (unvalidated ones first; `Endpoint::poll_preempted`).
    pub requests_preempted: u64,
    /// Answers not sent because their amplified part (beyond 3× the request) was over
    /// the destination's budget (`LimitsConfig::destination_bytes_per_sec`).
    pub answers_dropped_destination_budget: u64,
    /// Answers (fresh or cached) not sent because they were over the amplification budget
    /// of an address that has not proven it receives there, and were not held.
    pub answers_dropped_unvalidated: u64,
    /// Answers over budget held while a validation probe of their address runs.
    pub answers_held: u64,
    /// Held answers sent once their address was validated.
    pub answers_released: u64,
    /// Held answers dropped: the probe got no answer or could not be started.
    pub held_answers_dropped: u64,
    /// Validation probes sent (`LimitsConfig::validation_probe`).
    pub validation_probes_sent: u64,
    /// Addresses that became validated (answered a call of ours, or were marked).
    pub addresses_validated: u64,
}
