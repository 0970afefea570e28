//! `bench-report RUNS.jsonl OUT_DIR`: turns the runs `bench/compare.sh` recorded into the
//! medians, ratios, JSON and chart that BENCHMARKS.md shows.
//!
//! Each input line is `{"case": ID, "n": N, "round": R, "result": {...}}`, where `result`
//! is what `rpcudp bench --json` or `py/bench_rpcudp_client.py` printed. Writes
//! `OUT_DIR/latest.json` and `OUT_DIR/chart.svg`, and prints a Markdown table.

mod chart;
mod summary;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [runs, out_dir] = args.as_slice() else {
        eprintln!("usage: bench-report RUNS.jsonl OUT_DIR");
        return ExitCode::from(2);
    };
    match run(runs, out_dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(runs: &str, out_dir: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(runs).map_err(|e| format!("cannot read {runs}: {e}"))?;
    let report = summary::Report::from_runs(&text, summary::Machine::read())?;
    let out = std::path::Path::new(out_dir);
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {out_dir}: {e}"))?;
    let json_path = out.join("latest.json");
    let json = serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?;
    std::fs::write(&json_path, json + "\n")
        .map_err(|e| format!("cannot write {}: {e}", json_path.display()))?;
    let svg_path = out.join("chart.svg");
    chart::draw(&report, &svg_path)?;
    print!("{}", report.to_markdown());
    eprintln!("wrote {} and {}", json_path.display(), svg_path.display());
    Ok(())
}
