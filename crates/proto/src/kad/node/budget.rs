//! The answer budget per destination: bytes of answers this node sends to one IP
//! address, a token bucket of [`NodeConfig::answer_bytes_per_sec`] with a burst of
//! [`NodeConfig::answer_bytes_burst`]. A validated peer's address is handed out in
//! `find_node` answers, so anyone can forge requests "from" it; without this, each
//! forged 77-byte `find_value` of a big value made the node send that peer the value
//! (105×). Answers of at most [`SMALL_ANSWER`] bytes (ping and store
//! acknowledgements: smaller than the request that asked for them) always go, and are
//! charged.
//!
//! Keyed by IP, not IP and port: a forger aiming at a host gains nothing by varying the
//! port. Local addresses are exempt unless `strict_local` (as the endpoint's rate
//! limits). The table is a bounded `GenMap`: a forgotten bucket starts full, as for a
//! new destination. Owns only the budget; the node decides what to answer.
//!
//! [`NodeConfig::answer_bytes_per_sec`]: super::NodeConfig::answer_bytes_per_sec
//! [`NodeConfig::answer_bytes_burst`]: super::NodeConfig::answer_bytes_burst

use crate::rpc::limits::{GenMap, TokenBucket};
use std::net::IpAddr;
use std::time::Instant;

/// Answers of at most this many bytes (as encoded values) are never refused.
pub(crate) const SMALL_ANSWER: usize = 256;

/// The buckets, by destination IP.
#[derive(Debug)]
pub(crate) struct AnswerBudget {
    buckets: GenMap<IpAddr, TokenBucket>,
}

impl AnswerBudget {
    pub(crate) fn new(max_destinations: usize) -> Self {
        AnswerBudget {
            buckets: GenMap::new(max_destinations),
        }
    }

    /// Whether an answer of `bytes` may go to `ip` now (charging it if so).
    pub(crate) fn allow(
        &mut self,
        now: Instant,
        ip: IpAddr,
        bytes: usize,
        rate: f64,
        burst: f64,
    ) -> bool {
        let b = self.buckets.entry(ip, || TokenBucket {
            tokens: burst,
            last: now,
        });
        if b.take(now, rate, burst, bytes as f64) {
            return true;
        }
        if bytes <= SMALL_ANSWER {
            // Always sent; the debt is what the bucket has left.
            b.tokens = 0.0;
            return true;
        }
        false
    }
}

/// The encoded size of `v` (MessagePack), without building it.
pub(crate) fn encoded_len(v: &rmpv::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing to a counter cannot fail.
    let _ = rmpv::encode::write_value(&mut c, v);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    // An origin for virtual time; only differences from it matter.
    #[allow(clippy::disallowed_methods)]
    fn a_destination_gets_its_burst_then_its_rate_and_small_answers_always() {
        let t0 = Instant::now();
        let mut b = AnswerBudget::new(16);
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let (rate, burst) = (10_000.0, 30_000.0);
        let sent = (0..10)
            .filter(|_| b.allow(t0, ip, 8_000, rate, burst))
            .count();
        assert_eq!(sent, 3, "the burst");
        assert!(b.allow(t0, ip, 40, rate, burst), "a ping answer goes");
        assert!(!b.allow(t0, ip, 8_000, rate, burst));
        let later = t0 + Duration::from_millis(800);
        assert!(b.allow(later, ip, 8_000, rate, burst), "the rate refills");
        let other: IpAddr = "198.51.100.8".parse().unwrap();
        assert!(b.allow(later, other, 8_000, rate, burst), "another address");
    }

    #[test]
    fn the_encoded_length_is_that_of_the_encoding() {
        let v = rmpv::Value::Map(vec![(
            rmpv::Value::from("value"),
            rmpv::Value::Binary(vec![1; 8000]),
        )]);
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &v).unwrap();
        assert_eq!(encoded_len(&v), out.len());
    }
}
