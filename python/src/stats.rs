//! The cores' counters as (name, value) pairs for Python dicts.
//!
//! Owns: naming the counters of `rpc::Stats` for `Endpoint.stats()`. Does not own the
//! Prometheus rendering of a DHT node's metrics (`rpcudp::metrics`).

use rpcudp_proto::rpc::Stats;

/// The RPC endpoint's counters, by the names of their fields.
pub fn rpc_counters(s: &Stats) -> [(&'static str, u64); 24] {
    [
        ("datagrams_in", s.datagrams_in),
        ("datagrams_out", s.datagrams_out),
        ("bytes_in", s.bytes_in),
        ("bytes_out", s.bytes_out),
        ("malformed", s.malformed),
        ("unknown_responses", s.unknown_responses),
        ("spoofed_responses", s.spoofed_responses),
        ("timeouts", s.timeouts),
        ("retries", s.retries),
        ("duplicates_answered", s.duplicates_answered),
        ("duplicates_in_progress", s.duplicates_in_progress),
        ("refused_overload", s.refused_overload),
        ("requests_received", s.requests_received),
        ("responses_sent", s.responses_sent),
        ("requests_abandoned", s.requests_abandoned),
        ("responses_too_large", s.responses_too_large),
        ("calls_started", s.calls_started),
        ("calls_succeeded", s.calls_succeeded),
        ("requests_rate_limited", s.requests_rate_limited),
        ("bytes_rate_limited", s.bytes_rate_limited),
        (
            "requests_dropped_source_share",
            s.requests_dropped_source_share,
        ),
        ("answers_dropped_unvalidated", s.answers_dropped_unvalidated),
        ("answers_held", s.answers_held),
        ("addresses_validated", s.addresses_validated),
    ]
}
