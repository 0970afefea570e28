//! Medians per (case, N) over the rounds, and the ratios the issue's targets are about.

use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The cases compare.sh runs, in the order the table and chart show them:
/// (id, label).
pub const CASES: &[(&str, &str)] = &[
    ("raw", "raw UDP echo, tokio (1 recv + 1 send per datagram)"),
    ("raw-blocking", "raw UDP echo, blocking thread"),
    ("raw-batched", "raw UDP echo, batched (recvmmsg + GSO)"),
    (
        "core",
        "sans-IO core inline, no handler tasks (raw-echo --rpc-core) + our client",
    ),
    (
        "core-batched",
        "sans-IO core inline, recvmmsg + GSO (raw-echo --rpc-core --batched) + our client",
    ),
    ("ours", "our server + our client"),
    ("py-server", "Python rpcudp server + our client"),
    ("py-client-ours", "Python rpcudp client + our server"),
    ("py-client-py", "Python rpcudp client + Python server"),
    ("lt-udp", "length-type UDP echo + our client"),
];

/// The ratios reported, as (name, numerator case, denominator case, metric).
pub const RATIOS: &[(&str, &str, &str, &str)] = &[
    ("ours / raw, calls/s", "ours", "raw", "calls_per_sec"),
    (
        "ours / raw batched, calls/s",
        "ours",
        "raw-batched",
        "calls_per_sec",
    ),
    (
        "ours / Python server (our client), calls/s",
        "ours",
        "py-server",
        "calls_per_sec",
    ),
    (
        "ours / Python server (Python client), calls/s",
        "py-client-ours",
        "py-client-py",
        "calls_per_sec",
    ),
    ("ours / raw, p50 latency", "ours", "raw", "p50_us"),
    (
        "ours / raw, server CPU per call",
        "ours",
        "raw",
        "server_cpu_us_per_call",
    ),
    (
        "Python / ours, server CPU per call",
        "py-server",
        "ours",
        "server_cpu_us_per_call",
    ),
    ("core inline / raw, calls/s", "core", "raw", "calls_per_sec"),
    (
        "core batched / raw, calls/s",
        "core-batched",
        "raw",
        "calls_per_sec",
    ),
    (
        "core batched / raw batched, calls/s",
        "core-batched",
        "raw-batched",
        "calls_per_sec",
    ),
    (
        "ours / core inline, calls/s",
        "ours",
        "core",
        "calls_per_sec",
    ),
];

/// The metrics kept per run.
pub const METRICS: &[&str] = &[
    "calls_per_sec",
    "p50_us",
    "p90_us",
    "p99_us",
    "max_us",
    "timeouts",
    "client_cpu_us_per_call",
];

/// Where the numbers were measured.
pub struct Machine {
    /// CPUs available (`nproc`).
    pub nproc: usize,
    /// The CPU model from /proc/cpuinfo.
    pub cpu: String,
    /// The kernel release.
    pub kernel: String,
    /// What compare.sh said about the run (`BENCH_*` variables: rounds, duration, date,
    /// load average at start and end), by name.
    pub conditions: Vec<(String, String)>,
}

impl Machine {
    /// Reads this machine's facts (unknown ones say so).
    pub fn read() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let conditions = [
            "BENCH_DATE",
            "BENCH_ROUNDS",
            "BENCH_DURATION",
            "BENCH_PIN",
            "BENCH_LOADAVG_START",
            "BENCH_LOADAVG_END",
        ]
        .iter()
        .filter_map(|k| {
            let v = std::env::var(k).ok()?;
            Some((k.trim_start_matches("BENCH_").to_lowercase(), v))
        })
        .collect();
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            kernel,
            conditions,
        }
    }
}

/// One (case, N): every round's value of every metric.
#[derive(Default)]
pub struct Cell {
    /// metric -> values, one per round.
    pub values: BTreeMap<String, Vec<f64>>,
}

impl Cell {
    /// The median of a metric over the rounds (NaN when never measured).
    pub fn median(&self, metric: &str) -> f64 {
        self.values.get(metric).map_or(f64::NAN, |v| median(v))
    }

    /// How many rounds were measured.
    pub fn rounds(&self) -> usize {
        self.values.get("calls_per_sec").map_or(0, Vec::len)
    }
}

/// The median; the mean of the middle two for an even count.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Everything measured in one compare run.
pub struct Report {
    /// (case id, N) -> cell.
    pub cells: BTreeMap<(String, u64), Cell>,
    /// The N values seen, ascending.
    pub concurrencies: Vec<u64>,
    /// The machine.
    pub machine: Machine,
}

impl Report {
    /// Parses the runs file (one JSON object per line; blank lines ignored).
    pub fn from_runs(text: &str, machine: Machine) -> Result<Report, String> {
        let mut cells: BTreeMap<(String, u64), Cell> = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let run: Value =
                serde_json::from_str(line).map_err(|e| format!("line {}: not JSON: {e}", i + 1))?;
            let case = run["case"]
                .as_str()
                .ok_or_else(|| format!("line {}: no \"case\"", i + 1))?;
            let n = run["n"]
                .as_u64()
                .ok_or_else(|| format!("line {}: no \"n\"", i + 1))?;
            let cell = cells.entry((case.to_string(), n)).or_default();
            for metric in METRICS {
                if let Some(v) = run["result"][*metric].as_f64() {
                    cell.values.entry(metric.to_string()).or_default().push(v);
                }
            }
            // compare.sh measures the server's CPU seconds around each run.
            let calls = run["result"]["calls"].as_f64().unwrap_or(0.0);
            if let Some(cpu) = run["server_cpu_s"].as_f64().filter(|_| calls > 0.0) {
                cell.values
                    .entry("server_cpu_us_per_call".into())
                    .or_default()
                    .push(cpu * 1e6 / calls);
            }
        }
        if cells.is_empty() {
            return Err("no runs recorded".into());
        }
        let mut concurrencies: Vec<u64> = cells.keys().map(|(_, n)| *n).collect();
        concurrencies.sort_unstable();
        concurrencies.dedup();
        Ok(Report {
            cells,
            concurrencies,
            machine,
        })
    }

    /// The cases measured, in [`CASES`] order (unknown ids after, by name).
    pub fn cases(&self) -> Vec<(String, String)> {
        let mut seen: Vec<String> = self.cells.keys().map(|(c, _)| c.clone()).collect();
        seen.dedup();
        let mut out: Vec<(String, String)> = CASES
            .iter()
            .filter(|(id, _)| seen.iter().any(|s| s == id))
            .map(|(id, label)| (id.to_string(), label.to_string()))
            .collect();
        for s in seen {
            if !CASES.iter().any(|(id, _)| *id == s) {
                out.push((s.clone(), s));
            }
        }
        out
    }

    /// The median of `metric` for (case, n).
    pub fn median(&self, case: &str, n: u64, metric: &str) -> f64 {
        self.cells
            .get(&(case.to_string(), n))
            .map_or(f64::NAN, |c| c.median(metric))
    }

    /// The ratios of [`RATIOS`] at `n` whose two cases were both measured.
    pub fn ratios(&self, n: u64) -> Vec<(&'static str, f64)> {
        RATIOS
            .iter()
            .map(|(name, a, b, metric)| {
                (*name, self.median(a, n, metric) / self.median(b, n, metric))
            })
            .filter(|(_, r)| r.is_finite())
            .collect()
    }

    /// The JSON written to `latest.json`.
    pub fn to_json(&self) -> Value {
        let mut results = Vec::new();
        for (case, label) in self.cases() {
            for &n in &self.concurrencies {
                let Some(cell) = self.cells.get(&(case.clone(), n)) else {
                    continue;
                };
                let medians: serde_json::Map<String, Value> = METRICS
                    .iter()
                    .map(|m| (m.to_string(), json!(finite(cell.median(m)))))
                    .collect();
                results.push(json!({
                    "case": case, "label": label, "n": n, "rounds": cell.rounds(),
                    "median": medians, "runs": cell.values,
                }));
            }
        }
        let ratios: serde_json::Map<String, Value> = self
            .concurrencies
            .iter()
            .map(|n| {
                let r: serde_json::Map<String, Value> = self
                    .ratios(*n)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), json!(v)))
                    .collect();
                (format!("n={n}"), Value::Object(r))
            })
            .collect();
        json!({
            "machine": {"nproc": self.machine.nproc, "cpu": self.machine.cpu, "kernel": self.machine.kernel},
            "conditions": self.machine.conditions.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<String, Value>>(),
            "results": results,
            "ratios": ratios,
        })
    }

    /// The Markdown tables for BENCHMARKS.md.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "Machine: {} CPUs, {}, Linux {}\n",
            self.machine.nproc, self.machine.cpu, self.machine.kernel
        );
        if !self.machine.conditions.is_empty() {
            let c: Vec<String> = self
                .machine
                .conditions
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            out.push_str(&format!("Run: {}\n", c.join(", ")));
        }
        out.push('\n');
        out.push_str(
            "| case | N | calls/s | p50 µs | p90 µs | p99 µs | server CPU µs/call | client CPU µs/call | timeouts | rounds |\n",
        );
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for &n in &self.concurrencies {
            for (case, label) in self.cases() {
                let Some(cell) = self.cells.get(&(case, n)) else {
                    continue;
                };
                out.push_str(&format!(
                    "| {label} | {n} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.0} | {} |\n",
                    cell.median("calls_per_sec"),
                    cell.median("p50_us"),
                    cell.median("p90_us"),
                    cell.median("p99_us"),
                    cell.median("server_cpu_us_per_call"),
                    cell.median("client_cpu_us_per_call"),
                    cell.median("timeouts"),
                    cell.rounds(),
                ));
            }
        }
        out.push_str("\n| ratio (medians) |");
        for n in &self.concurrencies {
            out.push_str(&format!(" N={n} |"));
        }
        out.push_str("\n| --- |");
        for _ in &self.concurrencies {
            out.push_str(" ---: |");
        }
        out.push('\n');
        for (name, ..) in RATIOS {
            let row: Vec<String> = self
                .concurrencies
                .iter()
                .map(|n| {
                    self.ratios(*n)
                        .iter()
                        .find(|(k, _)| k == name)
                        .map_or("-".into(), |(_, v)| format!("{v:.2}x"))
                })
                .collect();
            if row.iter().all(|c| c == "-") {
                continue;
            }
            out.push_str(&format!("| {name} | {} |\n", row.join(" | ")));
        }
        out
    }
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            nproc: 2,
            cpu: "test cpu".into(),
            kernel: "6.0".into(),
            conditions: vec![("rounds".into(), "3".into())],
        }
    }

    const RUNS: &str = r#"
{"case":"raw","n":64,"round":1,"result":{"calls_per_sec":200000,"p50_us":300,"p99_us":900,"timeouts":0}}
{"case":"raw","n":64,"round":2,"result":{"calls_per_sec":100000,"p50_us":500,"p99_us":900,"timeouts":0}}
{"case":"raw","n":64,"round":3,"result":{"calls_per_sec":180000,"p50_us":400,"p99_us":900,"timeouts":0}}
{"case":"ours","n":64,"round":1,"server_cpu_s":0.5,"result":{"calls":100000,"calls_per_sec":90000,"p50_us":600,"p99_us":1000,"timeouts":1}}
{"case":"py-server","n":64,"round":1,"result":{"calls_per_sec":9000,"p50_us":6000,"p99_us":9000,"timeouts":0}}
"#;

    #[test]
    fn medians_are_taken_over_rounds() {
        let r = Report::from_runs(RUNS, machine()).unwrap();
        assert_eq!(r.median("raw", 64, "calls_per_sec"), 180000.0);
        assert_eq!(r.median("raw", 64, "p50_us"), 400.0);
        assert!(r.median("raw", 1, "calls_per_sec").is_nan());
        assert_eq!(median(&[1.0, 4.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn ratios_divide_medians_and_skip_missing_cases() {
        let r = Report::from_runs(RUNS, machine()).unwrap();
        let ratios = r.ratios(64);
        let get = |name: &str| ratios.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        assert_eq!(get("ours / raw, calls/s"), Some(0.5));
        assert_eq!(
            get("ours / Python server (our client), calls/s"),
            Some(10.0)
        );
        assert_eq!(get("ours / raw batched, calls/s"), None);
        // 0.5 s of server CPU over 100 000 calls.
        assert_eq!(r.median("ours", 64, "server_cpu_us_per_call"), 5.0);
        let md = r.to_markdown();
        assert!(md.contains("| ours / raw, calls/s | 0.50x |"), "{md}");
        assert!(md.contains("test cpu"));
        assert!(md.contains("Run: rounds 3"), "{md}");
        let json = r.to_json();
        assert_eq!(json["ratios"]["n=64"]["ours / raw, calls/s"], 0.5);
        assert_eq!(json["conditions"]["rounds"], "3");
        assert_eq!(json["results"][0]["case"], "raw");
    }

    #[test]
    fn a_line_without_a_case_is_an_error_naming_the_line() {
        let err = Report::from_runs("{\"n\":1}\n", machine()).err().unwrap();
        assert!(err.contains("line 1"), "{err}");
        assert!(Report::from_runs("\n", machine()).is_err());
    }
}
