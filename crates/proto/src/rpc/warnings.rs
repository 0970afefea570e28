//! The budget of warning lines: failures a peer can cause at will (an unknown method,
//! wrong arguments, a failing handler) are worth a warning, but a flood of them must not
//! fill the log. Owns one window's count and the count of lines left out; reads no clock
//! (the time is an argument) and logs nothing itself.

use std::time::{Duration, Instant};

/// At most `per_sec` lines per second; the lines left out are counted and reported by
/// the next line let through.
///
/// The window is fixed (it starts at the first line after the previous one ended), so
/// a steady flood yields exactly `per_sec` lines a second, each later window's first
/// line saying how many were suppressed since the previous line.
///
/// ```
/// use std::time::{Duration, Instant};
/// use rpcudp_proto::rpc::WarnLimiter;
/// let mut w = WarnLimiter::new(2);
/// let t = Instant::now();
/// assert_eq!(w.admit(t), Some(0)); // log it; nothing was left out before it
/// assert_eq!(w.admit(t), Some(0));
/// assert_eq!(w.admit(t), None); // over the budget: leave it out
/// assert_eq!(w.admit(t + Duration::from_millis(500)), None);
/// assert_eq!(w.admit(t + Duration::from_secs(1)), Some(2)); // "2 suppressed"
/// ```
#[derive(Clone, Debug)]
pub struct WarnLimiter {
    per_sec: u32,
    window_start: Option<Instant>,
    used: u32,
    suppressed: u64,
}

/// The length of one window.
const WINDOW: Duration = Duration::from_secs(1);

impl WarnLimiter {
    /// A budget of `per_sec` lines a second (0: none are let through, all are counted).
    pub fn new(per_sec: u32) -> Self {
        WarnLimiter {
            per_sec,
            window_start: None,
            used: 0,
            suppressed: 0,
        }
    }

    /// Whether a line may be logged at `now`: `Some(n)` yes, `n` lines having been left
    /// out since the last one logged (the line should say so); `None` no (it is counted).
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        let expired = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= WINDOW);
        if expired {
            self.window_start = Some(now);
            self.used = 0;
        }
        if self.used < self.per_sec {
            self.used += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// Lines left out since the last one let through.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An arbitrary origin for virtual time (the one permitted clock read).
    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_flood_yields_per_sec_lines_a_second_and_counts_the_rest() {
        let mut w = WarnLimiter::new(10);
        let t0 = t0();
        let (mut logged, mut reported) = (0u64, 0u64);
        // 100 000 attempts spread evenly over 5 seconds.
        for i in 0..100_000u64 {
            let now = t0 + Duration::from_micros(i * 50);
            if let Some(n) = w.admit(now) {
                logged += 1;
                reported += n;
            }
        }
        assert_eq!(logged, 50, "10 lines in each of 5 windows");
        assert_eq!(
            reported + w.suppressed(),
            100_000 - 50,
            "every line left out is counted"
        );
        assert!(reported > 0);
    }

    #[test]
    fn a_zero_budget_logs_nothing_and_counts_everything() {
        let mut w = WarnLimiter::new(0);
        let t0 = t0();
        for i in 0..5 {
            assert_eq!(w.admit(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(w.suppressed(), 5);
    }
}
