//! Reconnection delays: exponential backoff with jitter and a ceiling, reset after a good
//! connection (Twisted's `ReconnectingClientFactory`). Pure: no clock, an injected RNG.

use rand::Rng;
use std::time::Duration;

/// How a [`Client`](super::Client) waits between connection attempts.
///
/// The n-th consecutive retry waits about `initial_delay * factor^(n-1)`, never more than
/// `max_delay`, each delay spread by ±`jitter` (a fraction) so that many clients cut off
/// together do not come back together. A successful connection starts over at
/// `initial_delay`. The factor and jitter defaults are Twisted's (`e` and 0.1196...);
/// the delays are shorter than Twisted's (1 s initial, 60 s max instead of 3600 s)
/// because a framed-message peer is usually a LAN service.
///
/// ```
/// use rpcudp::lt::{Backoff, ReconnectPolicy};
/// use std::time::Duration;
///
/// let policy = ReconnectPolicy {
///     initial_delay: Duration::from_millis(100),
///     max_delay: Duration::from_secs(1),
///     factor: 2.0,
///     jitter: 0.0,
///     max_retries: None,
/// };
/// let mut backoff = Backoff::new(policy);
/// let mut rng = rand::rng();
/// let delays: Vec<u128> = (0..6).map(|_| backoff.next_delay(&mut rng).unwrap().as_millis()).collect();
/// assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
/// backoff.reset(); // connected
/// assert_eq!(backoff.next_delay(&mut rng), Some(Duration::from_millis(100)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// The first delay after a connection is lost or refused. Default 1 s.
    pub initial_delay: Duration,
    /// The ceiling. Default 60 s.
    pub max_delay: Duration,
    /// Growth per failed attempt (>= 1). Default `e` (2.718...), as Twisted.
    pub factor: f64,
    /// Random spread as a fraction of the delay, in [0, 1). Default 0.11962656472, as
    /// Twisted.
    pub jitter: f64,
    /// Give up after this many consecutive failed attempts; `None` never gives up.
    pub max_retries: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            factor: std::f64::consts::E,
            jitter: 0.119_626_564_72,
            max_retries: None,
        }
    }
}

/// The state of a backoff: the next base delay and the retries since the last good
/// connection.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: ReconnectPolicy,
    base: Duration,
    retries: u32,
}

impl Backoff {
    /// A fresh backoff.
    pub fn new(policy: ReconnectPolicy) -> Self {
        Backoff {
            base: policy.initial_delay,
            policy,
            retries: 0,
        }
    }

    /// The delay before the next attempt, or `None` when `max_retries` are used up.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Option<Duration> {
        if self
            .policy
            .max_retries
            .is_some_and(|max| self.retries >= max)
        {
            return None;
        }
        self.retries += 1;
        let max = self.policy.max_delay;
        let jitter = self.policy.jitter.clamp(0.0, 0.99);
        let spread = if jitter > 0.0 {
            rng.random_range(1.0 - jitter..=1.0 + jitter)
        } else {
            1.0
        };
        let delay = self.base.mul_f64(spread).min(max);
        self.base = self.base.mul_f64(self.policy.factor.max(1.0)).min(max);
        Some(delay)
    }

    /// Starts over after a good connection.
    pub fn reset(&mut self) {
        self.base = self.policy.initial_delay;
        self.retries = 0;
    }

    /// Consecutive attempts since the last good connection.
    pub fn retries(&self) -> u32 {
        self.retries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn jittered_delays_stay_within_the_spread_and_under_the_ceiling() {
        let policy = ReconnectPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            ..ReconnectPolicy::default()
        };
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut b = Backoff::new(policy.clone());
        let mut base = 1.0f64;
        let mut saw_spread = false;
        for _ in 0..20 {
            let d = b.next_delay(&mut rng).unwrap().as_secs_f64();
            let want = base.min(30.0);
            assert!(d <= 30.0 + 1e-9, "{d} over the ceiling");
            assert!(d >= want * (1.0 - policy.jitter) - 1e-9, "{d} under {want}");
            assert!(d <= want * (1.0 + policy.jitter) + 1e-9, "{d} over {want}");
            saw_spread |= (d - want).abs() > 1e-6;
            base *= std::f64::consts::E;
        }
        assert!(saw_spread, "jitter changes the delays");
    }

    #[test]
    fn max_retries_gives_up_and_reset_restores_them() {
        let mut b = Backoff::new(ReconnectPolicy {
            max_retries: Some(2),
            jitter: 0.0,
            ..ReconnectPolicy::default()
        });
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        assert!(b.next_delay(&mut rng).is_some());
        assert!(b.next_delay(&mut rng).is_some());
        assert_eq!(b.next_delay(&mut rng), None);
        b.reset();
        assert_eq!(b.retries(), 0);
        assert_eq!(b.next_delay(&mut rng), Some(Duration::from_secs(1)));
    }
}
