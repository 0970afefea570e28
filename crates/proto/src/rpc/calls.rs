//! The caller's side: one entry per call in flight and its retry schedule.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;

use super::config::CallOptions;

/// No single wait is longer than this, so `Instant + wait` cannot overflow whatever the
/// options say (a year is "forever" for an RPC).
const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// A call in flight, keyed in the table by its message id: 64 bytes (88 with its key),
/// because most calls have no resends (`retries = 0`, the Python peers' behaviour) and
/// need nothing but the peer and one instant. What resends need lives in a box only the
/// calls that have them pay for.
#[derive(Debug)]
pub(crate) struct OutCall {
    /// Where the request went: the only address whose response is accepted.
    pub(crate) peer: SocketAddr,
    /// When this call's timer fires next (its single live entry in the timer heap).
    pub(crate) timer: Instant,
    /// Index of the attempt in flight: 0 for the first send, `retries` for the last.
    pub(crate) attempt: u32,
    /// `None`: no resend is left (the call fails when `timer` fires).
    pub(crate) resends: Option<Box<Resends>>,
}

/// What a call with resends left keeps.
#[derive(Debug)]
pub(crate) struct Resends {
    /// The request datagram, so a resend is byte-identical without re-encoding.
    pub(crate) datagram: Box<[u8]>,
    /// Absolute overall deadline, if the options set one.
    pub(crate) deadline: Option<Instant>,
    pub(crate) options: CallOptions,
}

impl OutCall {
    /// A call whose first attempt is sent at `now`.
    pub(crate) fn start(
        now: Instant,
        peer: SocketAddr,
        datagram: &[u8],
        options: CallOptions,
        rng: &mut impl Rng,
    ) -> OutCall {
        let deadline = options.deadline.and_then(|d| now.checked_add(d));
        let timer = attempt_end(&options, 0, deadline, now, rng);
        let resends = (options.retries > 0).then(|| {
            Box::new(Resends {
                datagram: datagram.into(),
                deadline,
                options,
            })
        });
        OutCall {
            peer,
            timer,
            attempt: 0,
            resends,
        }
    }

    /// Whether the call must fail when its timer fires at `now` (rather than resend).
    pub(crate) fn is_over(&self, now: Instant) -> bool {
        match &self.resends {
            None => true,
            Some(r) => self.attempt >= r.options.retries || r.deadline.is_some_and(|d| now >= d),
        }
    }

    /// Moves to the next attempt, sent at `now` (the call is not over): sets its timer
    /// and returns the datagram to send again (the last resend takes it, for nothing
    /// needs it afterwards).
    pub(crate) fn next_attempt(&mut self, now: Instant, rng: &mut impl Rng) -> Option<Box<[u8]>> {
        let r = self.resends.take()?;
        self.attempt += 1;
        self.timer = attempt_end(&r.options, self.attempt, r.deadline, now, rng);
        if self.attempt >= r.options.retries {
            Some(r.datagram)
        } else {
            let payload = r.datagram.clone();
            self.resends = Some(r);
            Some(payload)
        }
    }
}

/// When attempt `attempt` (sent at `now`) ends: its nominal wait, shortened by jitter if
/// a resend follows, and never past the overall deadline.
fn attempt_end(
    options: &CallOptions,
    attempt: u32,
    deadline: Option<Instant>,
    now: Instant,
    rng: &mut impl Rng,
) -> Instant {
    let nominal = options.attempt_wait(attempt).min(MAX_WAIT);
    let wait = if attempt < options.retries {
        let cut = options.jitter_fraction() * rng.random::<f64>();
        nominal.mul_f64(1.0 - cut)
    } else {
        nominal
    };
    let end = now.checked_add(wait).unwrap_or(now);
    match deadline {
        Some(d) => end.min(d),
        None => end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use std::time::Duration;

    /// Any instant will do: the call only adds durations to it.
    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_call_without_resends_keeps_no_datagram_and_fits_64_bytes() {
        assert!(std::mem::size_of::<OutCall>() <= 64);
        let now = t0();
        let mut rng = SmallRng::seed_from_u64(1);
        let peer = "127.0.0.1:9".parse().unwrap();
        let mut once = OutCall::start(now, peer, b"req", CallOptions::default(), &mut rng);
        assert!(once.resends.is_none());
        assert_eq!(once.timer, now + Duration::from_secs(5));
        assert!(once.is_over(once.timer));
        assert_eq!(once.next_attempt(once.timer, &mut rng), None);
    }

    #[test]
    fn resends_return_the_same_bytes_and_the_last_one_releases_them() {
        let now = t0();
        let mut rng = SmallRng::seed_from_u64(1);
        let peer = "127.0.0.1:9".parse().unwrap();
        let options = CallOptions {
            retries: 2,
            jitter: 0.0,
            backoff: 1.0,
            attempt_timeout: Duration::from_secs(1),
            ..CallOptions::default()
        };
        let mut call = OutCall::start(now, peer, b"req", options, &mut rng);
        assert_eq!(call.timer, now + Duration::from_secs(1));
        assert!(!call.is_over(call.timer));
        let t1 = call.timer;
        assert_eq!(
            call.next_attempt(t1, &mut rng).as_deref(),
            Some(&b"req"[..])
        );
        assert_eq!((call.attempt, call.timer), (1, t1 + Duration::from_secs(1)));
        assert!(call.resends.is_some());
        let t2 = call.timer;
        assert_eq!(
            call.next_attempt(t2, &mut rng).as_deref(),
            Some(&b"req"[..])
        );
        assert!(
            call.resends.is_none(),
            "the last resend releases the datagram"
        );
        assert!(call.is_over(call.timer));
    }
}
