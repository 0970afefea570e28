//! What a bench run measured, and how it is printed: the latency histogram, the counters,
//! the optional progress bar, the text and JSON reports.

use hdrhistogram::Histogram;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Counts and latencies of one run. Latencies are recorded in nanoseconds.
pub struct Recorder {
    latency_ns: Histogram<u64>,
    /// Calls answered.
    pub calls: u64,
    /// Calls that got no answer within the timeout.
    pub timeouts: u64,
    /// Socket errors (sends or receives that failed, e.g. ICMP "port unreachable") and
    /// error replies from the server.
    pub errors: u64,
    /// Datagrams received that matched no call in flight (late or stray).
    pub stray: u64,
    started: Instant,
    duration: Duration,
    progress: Option<indicatif::ProgressBar>,
    /// CPU time of the load thread at the start, when the system tells it.
    cpu_at_start: Option<Duration>,
}

/// CPU time the calling thread has used so far (Linux: /proc/thread-self/schedstat,
/// nanoseconds on CPU), or `None` where that is not available.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

impl Recorder {
    /// A recorder for a run of `duration` starting at `started`; it draws a progress bar
    /// on stderr only when stderr is a terminal (never into a pipe or a log file).
    pub fn new(started: Instant, duration: Duration) -> Recorder {
        // 1 ns .. 1 hour with 3 significant digits: any latency a bench can see.
        let latency_ns = Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
            .expect("static histogram bounds are valid");
        let progress = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(duration.as_millis().max(1) as u64);
            bar.set_style(
                indicatif::ProgressStyle::default_bar()
                    .template("{bar:40} {elapsed}/{duration} {msg}")
                    .expect("the template is valid"),
            );
            bar
        });
        Recorder {
            latency_ns,
            calls: 0,
            timeouts: 0,
            errors: 0,
            stray: 0,
            started,
            duration,
            progress,
            cpu_at_start: thread_cpu(),
        }
    }

    /// When the run started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// One call answered after `latency`.
    #[inline]
    pub fn answered(&mut self, latency: Duration) {
        self.calls += 1;
        self.latency_ns
            .saturating_record(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1));
    }

    /// Refreshes the progress bar (cheap; called from the run's periodic tick).
    pub fn tick(&self, now: Instant) {
        if let Some(bar) = &self.progress {
            let elapsed = now.saturating_duration_since(self.started);
            bar.set_position(elapsed.min(self.duration).as_millis() as u64);
            let secs = elapsed.as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{} calls, {:.0} calls/s, {} timeouts",
                self.calls,
                self.calls as f64 / secs,
                self.timeouts
            ));
        }
    }

    /// Ends the run at `ended` and sums it up.
    pub fn finish(
        self,
        ended: Instant,
        mode: &'static str,
        label: String,
        concurrency: usize,
    ) -> Summary {
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
        let q = |q: f64| {
            if self.latency_ns.is_empty() {
                0.0
            } else {
                self.latency_ns.value_at_quantile(q) as f64 / 1000.0
            }
        };
        let elapsed = ended.saturating_duration_since(self.started);
        // Must be called on the load thread, as `new` was.
        let client_cpu_us_per_call = match (self.cpu_at_start, thread_cpu()) {
            (Some(a), Some(b)) if self.calls > 0 => {
                Some(b.saturating_sub(a).as_secs_f64() * 1e6 / self.calls as f64)
            }
            _ => None,
        };
        Summary {
            mode,
            label,
            concurrency,
            elapsed_s: elapsed.as_secs_f64(),
            calls: self.calls,
            calls_per_sec: self.calls as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            max_us: if self.latency_ns.is_empty() {
                0.0
            } else {
                self.latency_ns.max() as f64 / 1000.0
            },
            mean_us: if self.latency_ns.is_empty() {
                0.0
            } else {
                self.latency_ns.mean() / 1000.0
            },
            timeouts: self.timeouts,
            errors: self.errors,
            stray: self.stray,
            client_cpu_us_per_call,
        }
    }
}

/// The result of a run, as printed.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    /// `rpc` or `raw`.
    pub mode: &'static str,
    /// What was called (`ping`), or the raw datagram size.
    pub label: String,
    /// Calls kept in flight.
    pub concurrency: usize,
    /// Wall time from the first send until the last call ended (answered or timed out).
    pub elapsed_s: f64,
    /// Calls answered.
    pub calls: u64,
    /// Calls answered per second of `elapsed_s`.
    pub calls_per_sec: f64,
    /// Latency percentiles of answered calls, in microseconds.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest answered call.
    pub max_us: f64,
    /// Mean latency.
    pub mean_us: f64,
    /// Calls that got no answer within the timeout.
    pub timeouts: u64,
    /// Socket errors.
    pub errors: u64,
    /// Datagrams that matched no call in flight.
    pub stray: u64,
    /// CPU time of the load thread per answered call, in microseconds (Linux only):
    /// what this client costs, apart from the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cpu_us_per_call: Option<f64>,
}

impl Summary {
    /// The one-line JSON object of `--json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a summary always serializes")
    }

    /// The human report.
    pub fn to_text(&self) -> String {
        format!(
            "{mode} {label}, {n} in flight, {secs:.2} s\n\
             calls      {calls} ({rate:.0} calls/s)\n\
             latency    p50 {p50:.1} us, p90 {p90:.1} us, p99 {p99:.1} us, max {max:.1} us\n\
             timeouts   {timeouts}\n\
             errors     {errors}\n",
            mode = self.mode,
            label = self.label,
            n = self.concurrency,
            secs = self.elapsed_s,
            calls = self.calls,
            rate = self.calls_per_sec,
            p50 = self.p50_us,
            p90 = self.p90_us,
            p99 = self.p99_us,
            max = self.max_us,
            timeouts = self.timeouts,
            errors = self.errors,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reports_percentiles_in_microseconds() {
        let t0 = Instant::now();
        let mut r = Recorder::new(t0, Duration::from_secs(1));
        for us in 1..=100u64 {
            r.answered(Duration::from_micros(us));
        }
        r.timeouts = 2;
        let s = r.finish(t0 + Duration::from_secs(2), "rpc", "ping".into(), 4);
        assert_eq!(s.calls, 100);
        assert!((s.calls_per_sec - 50.0).abs() < 1e-9);
        assert!((s.p50_us - 50.0).abs() < 0.1, "p50 {}", s.p50_us);
        assert!((s.p99_us - 99.0).abs() < 0.1, "p99 {}", s.p99_us);
        assert!((s.max_us - 100.0).abs() < 0.1, "max {}", s.max_us);
        let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        for key in ["calls", "calls_per_sec", "p50_us", "p99_us", "timeouts"] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
        assert_eq!(json["timeouts"], 2);
    }

    #[test]
    fn summary_of_a_run_with_no_answers_has_zero_latencies() {
        let t0 = Instant::now();
        let mut r = Recorder::new(t0, Duration::from_secs(1));
        r.timeouts = 3;
        let s = r.finish(t0 + Duration::from_secs(1), "raw", "28 bytes".into(), 3);
        assert_eq!((s.calls, s.timeouts), (0, 3));
        assert_eq!((s.p50_us, s.p99_us, s.max_us), (0.0, 0.0, 0.0));
        assert!(s.to_text().contains("timeouts   3"));
    }
}
