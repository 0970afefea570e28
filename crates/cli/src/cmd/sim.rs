//! `rpcudp sim dht` (docs/cli.md): a Kademlia network on the simulated network, in
//! virtual time, with the same node code as `rpcudp dht run`.
//!
//! Owns: parsing the options, running [`dht::run`], timing it on the
//! wall clock and printing the report (readable, or one JSON object). Does not own: the
//! scenario (in `rpcudp-sim`) or the node (in `rpcudp-proto`).

use crate::common;
use rpcudp_sim::dht;
use rpcudp_sim::hostile::Attack;
use std::time::{Duration, Instant};

/// `rpcudp sim …`.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Run a Kademlia network of N nodes on the simulated network, in virtual time:
    /// store, kill a fraction without warning, look every value up, store and look up
    /// again; report success rates, lookup times, hops and messages.
    Dht(DhtArgs),
}

/// Arguments of `rpcudp sim dht`.
#[derive(clap::Args, Debug)]
pub struct DhtArgs {
    /// Nodes in the network.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(2..=10_000_000))]
    pub nodes: u64,
    /// Values stored before the kill, and again after it (each looked up once).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub gets: u64,
    /// Fraction of the nodes killed at once, without warning (0 to 1).
    #[arg(long, default_value = "0.25", value_parser = parse_fraction)]
    pub kill: f64,
    /// Probability that a datagram is lost (0 to 1).
    #[arg(long, default_value = "0.05", value_parser = parse_fraction)]
    pub loss: f64,
    /// Median round trip in milliseconds (round trips are log-normal around it).
    #[arg(long, default_value = "80", value_parser = parse_rtt_ms)]
    pub rtt_ms: f64,
    /// The seed: the same seed replays the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fraction of the nodes that are hostile from the start (0 to 1), chosen by the
    /// seed and never killed.
    #[arg(long, default_value = "0", value_parser = parse_fraction)]
    pub adversarial: f64,
    /// What hostile nodes do: eclipse (answer lookups with each other, drop stores),
    /// drop (answer pings only) or forge (answer every find_value with a forged value).
    #[arg(long, default_value = "eclipse", value_parser = parse_attack)]
    pub attack: Attack,
    /// Store the values as signed records; gets verify them.
    #[arg(long)]
    pub signed: bool,
    /// Disjoint paths per get or set lookup (default: the node's, `kad::NodeConfig`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub paths: Option<u64>,
    /// RPCs in flight per lookup path (default: the node's, `kad::NodeConfig::alpha`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub alpha: Option<u64>,
    /// Print one JSON object instead of the readable report.
    #[arg(long)]
    pub json: bool,
}

/// An attack's name.
fn parse_attack(text: &str) -> Result<Attack, String> {
    Attack::from_name(text)
        .ok_or_else(|| format!("'{text}' is not an attack: eclipse, drop or forge"))
}

/// A probability or fraction: a number from 0 to 1.
fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("'{text}' is not a number from 0 to 1")),
    }
}

/// Milliseconds over 0 and at most a minute.
fn parse_rtt_ms(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ms) if ms.is_finite() && ms > 0.0 && ms <= 60_000.0 => Ok(ms),
        _ => Err(format!(
            "'{text}' is not a number of milliseconds over 0 and at most 60000"
        )),
    }
}

/// Runs `rpcudp sim …`; returns the exit code.
pub async fn run(command: Command) -> u8 {
    match command {
        Command::Dht(args) => dht(args),
    }
}

fn dht(args: DhtArgs) -> u8 {
    let mut scenario = dht::Scenario {
        nodes: args.nodes as usize,
        gets: args.gets as usize,
        kill: args.kill,
        loss: args.loss,
        rtt: Duration::from_secs_f64(args.rtt_ms / 1000.0),
        adversarial: args.adversarial,
        attack: args.attack,
        signed: args.signed,
        ..dht::Scenario::default()
    };
    if let Some(alpha) = args.alpha {
        scenario.node.alpha = alpha as usize;
    }
    if let Some(paths) = args.paths {
        scenario.node.lookup_paths = paths as usize;
    }
    // Wall time is the CLI's to measure: the simulator itself never reads a clock.
    let started = Instant::now();
    let report = match dht::run(args.seed, &scenario) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: the simulation could not complete: {e}");
            return common::EXIT_FAILURE;
        }
    };
    let wall_s = started.elapsed().as_secs_f64();
    let peak = peak_memory_bytes();
    if args.json {
        let mut out = json(&report, wall_s, peak);
        out["adversarial"] = serde_json::json!(args.adversarial);
        out["attack"] = serde_json::json!(args.attack.name());
        out["signed"] = serde_json::json!(args.signed);
        out["forged_accepted"] = serde_json::json!(report.forged_accepted);
        out["adversarial_nodes"] = serde_json::json!(report.adversarial);
        out["honest_holders_mean"] = serde_json::json!(report.honest_holders_mean);
        out["table_hostile_share"] = serde_json::json!(report.table_hostile_share);
        out["lookup_paths"] = serde_json::json!(scenario.node.lookup_paths);
        println!("{out}");
    } else {
        print!("{}", readable(&report, wall_s, peak));
    }
    common::EXIT_OK
}

/// The process's peak resident memory (VmHWM), where the OS tells it (Linux).
fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn json(r: &dht::Report, wall_s: f64, peak: Option<u64>) -> serde_json::Value {
    serde_json::json!({
        "nodes": r.nodes,
        "seed": r.seed,
        "gets": r.gets,
        "get_success_rate": r.get_success_rate,
        "get_success_rate_new": r.get_success_rate_new,
        "lookup_ms_p50": r.lookup_latency.p50_ms,
        "lookup_ms_p99": r.lookup_latency.p99_ms,
        "hops_mean": r.hops_mean,
        "messages_per_lookup": r.messages_per_lookup,
        "wall_s": wall_s,
        "lookup_ms_p90": r.lookup_latency.p90_ms,
        "lookup_ms_max": r.lookup_latency.max_ms,
        "lookup_ms_p99_after_kill": r.lookup_latency_after_kill.p99_ms,
        "found": r.found,
        "found_new": r.found_new,
        "joined": r.joined,
        "killed": r.killed,
        "sets_acknowledged": r.sets_acknowledged,
        "sets_acknowledged_new": r.sets_acknowledged_new,
        "acks_mean": r.acks_mean,
        "set_ms_p50": r.set_latency.p50_ms,
        "set_ms_p99": r.set_latency.p99_ms,
        "refused": r.refused,
        "virtual_s": r.virtual_time.as_secs_f64(),
        "datagrams": r.datagrams,
        "lost": r.lost,
        "steps": r.steps,
        "table_p10": r.table_p10,
        "table_p50": r.table_p50,
        "small_tables": r.small_tables,
        "evicted_joining": r.evicted_joining,
        "evicted": r.evicted,
        "peak_memory_bytes": peak,
        "memory_per_node_bytes": peak.map(|p| p / r.nodes.max(1) as u64),
    })
}

fn readable(r: &dht::Report, wall_s: f64, peak: Option<u64>) -> String {
    let pct = |x: f64| format!("{:.2}%", x * 100.0);
    let lat = |l: &rpcudp_sim::dht::Latency| {
        format!(
            "p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
        )
    };
    let mut out = format!(
        "simulated DHT: {} nodes ({} joined), seed {}, {} values per round\n",
        r.nodes, r.joined, r.seed, r.gets
    );
    out += &format!(
        "routing tables once settled: p10 {} contacts, median {}; {} nodes below k; {} contacts evicted while joining\n",
        r.table_p10, r.table_p50, r.small_tables, r.evicted_joining
    );
    if r.adversarial > 0 {
        out += &format!(
            "hostile nodes: {} ({} attack); gets that returned a forged value: {}\n",
            r.adversarial,
            r.attack.name(),
            r.forged_accepted
        );
    }
    out += &format!("killed {} nodes at once without warning\n", r.killed);
    out += &format!(
        "values stored before the kill: {}/{} found ({})\n",
        r.found,
        r.gets,
        pct(r.get_success_rate)
    );
    out += &format!(
        "values stored after the kill:  {}/{} found ({})\n",
        r.found_new,
        r.gets,
        pct(r.get_success_rate_new)
    );
    out += &format!("lookups: {} (virtual time)\n", lat(&r.lookup_latency));
    out += &format!(
        "lookups right after the kill: {}\n",
        lat(&r.lookup_latency_after_kill)
    );
    out += &format!(
        "hops per lookup: {:.2} mean; messages per lookup: {:.1}\n",
        r.hops_mean, r.messages_per_lookup
    );
    out += &format!(
        "stores: {} (acknowledged by {:.1} nodes on average)\n",
        lat(&r.set_latency),
        r.acks_mean
    );
    out += &format!(
        "network: {} datagrams, {} lost; {:.0} s of virtual time in {:.1} s wall\n",
        r.datagrams,
        r.lost,
        r.virtual_time.as_secs_f64(),
        wall_s
    );
    if let Some(p) = peak {
        out += &format!(
            "peak memory: {:.1} MiB ({} bytes per node)\n",
            p as f64 / (1024.0 * 1024.0),
            p / r.nodes.max(1) as u64
        );
    }
    out
}
