//! A fixed-bucket latency histogram kept inside [`Stats`](super::Stats).
//!
//! It owns only the counting: fixed bounds (so recording is a short scan of 17 integers
//! and a snapshot is a plain copy), counts per bucket, the total and the sum. It does not
//! read a clock (durations come from the caller, computed from the `now` arguments of the
//! endpoint) and knows nothing of any export format; the metrics layer of the `rpcudp`
//! crate turns it into a Prometheus histogram.

use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (the last bucket, above the last bound,
/// is implied by [`LatencyHistogram::count`]). From 50 µs (an inline `ping`) to 10 s
/// (past any sensible handler; a longer `sleep` lands in the overflow).
pub const LATENCY_BOUNDS_MICROS: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Counts of durations by bucket, monotonic like the other counters.
///
/// ```
/// use rpcudp_proto::rpc::stats::{LatencyHistogram, LATENCY_BOUNDS_MICROS};
/// use std::time::Duration;
///
/// let mut h = LatencyHistogram::default();
/// h.record(Duration::from_micros(80));
/// h.record(Duration::from_secs(60));
/// assert_eq!(h.count, 2);
/// assert_eq!(h.buckets[1], 1); // 50 µs < 80 µs <= 100 µs
/// assert_eq!(h.buckets.iter().sum::<u64>(), 1); // 60 s is above every bound
/// assert_eq!(h.cumulative(LATENCY_BOUNDS_MICROS.len() - 1), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// `buckets[i]`: durations in `(bounds[i-1], bounds[i]]` of [`LATENCY_BOUNDS_MICROS`]
    /// (not cumulative).
    pub buckets: [u64; LATENCY_BOUNDS_MICROS.len()],
    /// Durations recorded, including those above the last bound.
    pub count: u64,
    /// Their sum, in microseconds (saturating).
    pub sum_micros: u64,
}

impl LatencyHistogram {
    /// Counts one duration.
    pub fn record(&mut self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.count += 1;
        self.sum_micros = self.sum_micros.saturating_add(micros);
        if let Some(i) = LATENCY_BOUNDS_MICROS.iter().position(|&b| micros <= b) {
            self.buckets[i] += 1;
        }
    }

    /// Durations at or below bound `i` (Prometheus' cumulative `le` count).
    pub fn cumulative(&self, i: usize) -> u64 {
        self.buckets[..=i.min(self.buckets.len() - 1)].iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{Endpoint, EndpointConfig, Event};
    use crate::wire::rpc::{encode_request, Dialect, MessageId};
    use rmpv::Value;
    use std::time::Instant;

    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        // Only differences from it matter; `Instant` has no other constructor.
        Instant::now()
    }

    fn request(e: &mut Endpoint, now: Instant, id: u8) -> crate::rpc::RequestToken {
        let mut bytes = Vec::new();
        let id = MessageId([id; 20]);
        encode_request(Dialect::Rpcudp, &id, "ping", &[], &mut bytes);
        e.handle_datagram(now, "127.0.0.1:9".parse().unwrap(), &bytes);
        match e.poll_event() {
            Some(Event::Request { token, .. }) => token,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn handler_latency_counts_the_time_from_arrival_to_answer_or_abandon() {
        let start = t0();
        let mut e = Endpoint::new(EndpointConfig::default(), 1);
        let answered = request(&mut e, start, 1);
        let abandoned = request(&mut e, start, 2);
        e.respond(
            start + Duration::from_millis(3),
            answered,
            &Value::from("pong"),
        );
        e.abandon(start + Duration::from_millis(40), abandoned);
        let h = &e.stats().handler_latency;
        assert_eq!(h.count, 2);
        assert_eq!(h.sum_micros, 43_000);
        let bucket_of = |micros: u64| LATENCY_BOUNDS_MICROS.iter().position(|&b| micros <= b);
        assert_eq!(h.buckets[bucket_of(3_000).unwrap()], 1);
        assert_eq!(h.buckets[bucket_of(40_000).unwrap()], 1);
        assert_eq!(h.buckets.iter().sum::<u64>(), 2);
    }

    #[test]
    fn a_duration_above_every_bound_counts_only_in_the_total() {
        let mut h = LatencyHistogram::default();
        h.record(Duration::from_secs(3600));
        h.record(Duration::ZERO);
        assert_eq!(h.count, 2);
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.cumulative(LATENCY_BOUNDS_MICROS.len() - 1), 1);
    }
}
