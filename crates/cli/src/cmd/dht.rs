//! `rpcudp dht run|set|get` (docs/cli.md): a Kademlia node that interoperates with
//! Python `kademlia` 2.2.3, and short-lived nodes that store or look up one key.
//! `dht keygen|put` and `dht get --signed|--immutable` (records nobody can forge) are
//! in `records`.

mod records;

use super::call::{parse_secs, resolve};
use crate::common::{self, HostPort};
use crate::json_value;
use rmpv::Value;
use rpcudp::kad::{is_storable, Dht, DhtConfig, NodeConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `rpcudp dht …`.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Run a DHT node until SIGINT or SIGTERM.
    Run(RunArgs),
    /// Join through a node, store VALUE under KEY on the nearest nodes, and leave.
    Set(SetArgs),
    /// Join through a node, look KEY up, print its value, and leave.
    Get(GetArgs),
    /// Make an Ed25519 key pair for signed records; write its secret seed to a file.
    Keygen(records::KeygenArgs),
    /// Join through a node, store a signed (or immutable) record, and leave.
    Put(records::PutArgs),
    /// Print the status view of a node started with `--metrics` (`GET /status`).
    Status(crate::metrics_http::StatusArgs),
}

/// Arguments of `rpcudp dht run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Where to listen: `IP:PORT`, `[IPV6]:PORT` or `NAME:PORT` (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8468")]
    pub bind: HostPort,
    /// A node to join through (repeatable). Without one, a node with saved state
    /// rejoins through its saved contacts.
    #[arg(long)]
    pub bootstrap: Vec<HostPort>,
    /// Folder for the node id, contacts and values (created if missing).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Contacts per bucket and nodes each value is stored on (k).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..))]
    pub ksize: u16,
    /// RPCs in flight per lookup.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    pub alpha: u16,
    /// Seconds each RPC waits for its answer.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Seconds a stored value lives without being stored again (default one week, as
    /// Python `kademlia`); an expired value is no longer returned.
    #[arg(long, default_value = "604800", value_parser = parse_ttl)]
    pub value_ttl: Duration,
    /// Apply the per-address limits (per-source rates and shares, contacts per subnet)
    /// to loopback and private addresses too; address validation and the 3× rule apply
    /// always.
    #[arg(long)]
    pub strict_local: bool,
    /// Also serve Prometheus metrics at `http://ADDR/metrics` and the status at
    /// `/status` (port 0: any free port).
    #[arg(long)]
    pub metrics: Option<HostPort>,
    /// Store caps: `--max-records`, `--max-store-bytes`, `--max-records-per-source`,
    /// `--max-bytes-per-source`, `--max-value-bytes`.
    #[command(flatten)]
    pub caps: StoreCaps,
}

/// The store's caps on `rpcudp dht run` (SECURITY.md, "Kademlia node"), each defaulting
/// to the library's ([`NodeConfig::default`]).
#[derive(clap::Args, Debug)]
pub struct StoreCaps {
    /// Most values stored for others; a store of a new key beyond it gives up the
    /// farthest key of the source subnet holding the most bytes.
    #[arg(long, value_name = "N", default_value_t = NodeConfig::default().max_records,
          value_parser = positive, allow_negative_numbers = true)]
    pub max_records: usize,
    /// Most bytes of values stored for others, all together (evicting as above).
    #[arg(long, value_name = "BYTES", default_value_t = NodeConfig::default().max_store_bytes,
          value_parser = positive, allow_negative_numbers = true)]
    pub max_store_bytes: usize,
    /// Most values one source subnet (IPv4 /24, IPv6 /64) may have stored here
    /// (loopback and private sources are exempt unless `--strict-local`).
    #[arg(long, value_name = "N",
          default_value_t = NodeConfig::default().max_records_per_source,
          value_parser = positive, allow_negative_numbers = true)]
    pub max_records_per_source: usize,
    /// Most bytes of values one source subnet may have stored here.
    #[arg(long, value_name = "BYTES",
          default_value_t = NodeConfig::default().max_bytes_per_source,
          value_parser = positive, allow_negative_numbers = true)]
    pub max_bytes_per_source: usize,
    /// Largest value stored (the bytes of a str or bin, plus 5; 9 for a number or bool):
    /// 6 to 8192, the largest the peers can send.
    #[arg(long, value_name = "BYTES", default_value_t = NodeConfig::default().max_value_bytes,
          value_parser = value_cap, allow_negative_numbers = true)]
    pub max_value_bytes: usize,
}

/// A count or size of at least 1, written as a plain integer.
fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{text}' is not a whole number of at least 1")),
    }
}

/// A value-size cap: 6 (an empty str or bin, as charged) to 8192 (the largest request
/// body a peer sends).
fn value_cap(text: &str) -> Result<usize, String> {
    let max = NodeConfig::default().max_value_bytes;
    match text.parse::<usize>() {
        Ok(n) if (6..=max).contains(&n) => Ok(n),
        _ => Err(format!("'{text}' is not a whole number from 6 to {max}")),
    }
}

/// Arguments of `rpcudp dht set`.
#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// The node to join through.
    #[arg(long)]
    pub bootstrap: HostPort,
    /// The key (stored under its sha1, as Python `kademlia` does).
    #[arg(allow_negative_numbers = true)]
    pub key: String,
    /// The value: a str, or with `--json` an int, float, bool, str or `{"$bin": "<hex>"}`.
    #[arg(allow_negative_numbers = true)]
    pub value: String,
    /// Read VALUE as JSON.
    #[arg(long)]
    pub json: bool,
    /// Seconds each RPC waits for its answer.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    pub timeout: Duration,
}

/// Arguments of `rpcudp dht get`.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// The node to join through.
    #[arg(long)]
    pub bootstrap: HostPort,
    /// The key to look up (not with `--signed` / `--immutable`).
    #[arg(allow_negative_numbers = true, required_unless_present_any = ["signed", "immutable"])]
    pub key: Option<String>,
    /// Seconds each RPC waits for its answer.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Look up the signed record of this public key (64 hex digits) instead.
    #[command(flatten)]
    pub record: records::GetRecordArgs,
}

/// A value lifetime in seconds: over 0, at most ten years (longer than any node runs).
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0 && secs <= 315_360_000.0) {
        return Err(format!(
            "'{text}': seconds must be over 0 and at most 315360000 (ten years)"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The node `rpcudp dht run` starts: the library's defaults ([`DhtConfig::default`],
/// the core's [`NodeConfig::default`]) with what the flags say.
fn run_config(args: &RunArgs) -> DhtConfig {
    let mut node = NodeConfig {
        k: usize::from(args.ksize),
        alpha: usize::from(args.alpha),
        rpc_timeout: args.timeout,
        value_ttl: args.value_ttl,
        max_records: args.caps.max_records,
        max_store_bytes: args.caps.max_store_bytes,
        max_records_per_source: args.caps.max_records_per_source,
        max_bytes_per_source: args.caps.max_bytes_per_source,
        max_value_bytes: args.caps.max_value_bytes,
        ..NodeConfig::default()
    };
    node.endpoint.limits.strict_local = args.strict_local;
    DhtConfig {
        node,
        state_dir: args.state.clone(),
        ..DhtConfig::default()
    }
}

/// The short-lived node of `rpcudp dht set|get`: the library's defaults, with no
/// refresh (it leaves after one lookup) and the given RPC timeout.
fn one_shot_config(timeout: Duration) -> DhtConfig {
    DhtConfig {
        node: NodeConfig {
            rpc_timeout: timeout,
            refresh_interval: None,
            ..NodeConfig::default()
        },
        ..DhtConfig::default()
    }
}

/// Runs `rpcudp dht …`.
pub async fn run(command: Command) -> u8 {
    match command {
        Command::Run(args) => run_node(args).await,
        Command::Set(args) => set(args).await,
        Command::Get(args) => get(args).await,
        Command::Keygen(args) => records::keygen(args),
        Command::Put(args) => records::put(args).await,
        Command::Status(args) => crate::metrics_http::status(args).await,
    }
}

async fn run_node(args: RunArgs) -> u8 {
    let bind = match resolve(&args.bind).await {
        Ok(a) => a,
        Err(code) => return code,
    };
    let mut bootstrap = Vec::new();
    for b in &args.bootstrap {
        match resolve(b).await {
            Ok(a) => bootstrap.push(a),
            Err(code) => return code,
        }
    }
    let dht = match Dht::start(bind, run_config(&args)).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot start the DHT node on {}: {e}", args.bind);
            return common::EXIT_FAILURE;
        }
    };
    // `print_listening` arms the SIGINT/SIGTERM handlers before it prints: a supervisor
    // that sends SIGTERM as soon as it reads `listening on` gets a clean shutdown.
    common::print_listening(dht.local_addr());
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "node id {}", dht.id());
        let _ = out.flush();
    }
    let metrics = rpcudp::metrics::Metrics::new().with_dht(&dht);
    let metrics = match crate::metrics_http::start(args.metrics.as_ref(), metrics).await {
        Ok(m) => m,
        Err(code) => {
            dht.shutdown().await;
            return code;
        }
    };
    // Joining runs beside the signal wait, so SIGTERM during a slow bootstrap still
    // shuts down at once.
    let joiner = dht.clone();
    let join = tokio::spawn(async move {
        let (how, answered, asked) = if bootstrap.is_empty() {
            let n = joiner.saved_contacts().len();
            ("saved contacts", joiner.rejoin().await, n)
        } else {
            (
                "bootstrap nodes",
                joiner.bootstrap(&bootstrap).await,
                bootstrap.len(),
            )
        };
        // Only a shutdown makes joining fail, and then nobody reads the log.
        let Ok(answered) = answered else { return };
        if asked > 0 {
            tracing::info!(
                "{answered} of {asked} {how} answered; {}",
                crate::metrics_http::count(joiner.contacts().len() as u64, "contact")
            );
            if answered == 0 {
                tracing::warn!(
                    "none of the {asked} {how} answered; serving alone until someone calls"
                );
            }
        }
    });
    common::shutdown_signal().await;
    tracing::info!("shutting down");
    join.abort();
    let _ = join.await;
    dht.shutdown().await;
    drop(metrics);
    common::EXIT_OK
}

/// Starts a short-lived node (no state, no refresh) beside `through` and joins.
async fn join(through: &HostPort, timeout: Duration) -> Result<Dht, u8> {
    let to = resolve(through).await?;
    let local: SocketAddr = if to.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let dht = Dht::start(local, one_shot_config(timeout))
        .await
        .map_err(|e| {
            eprintln!("error: cannot start a DHT node: {e}");
            common::EXIT_FAILURE
        })?;
    // One lookup follows (the key's), so the join skips the lookup of its own id.
    if dht.introduce(&[to]).await.unwrap_or(0) == 0 {
        eprintln!("error: no DHT node answered at {through}");
        dht.shutdown().await;
        return Err(common::EXIT_FAILURE);
    }
    Ok(dht)
}

/// VALUE as `dht set` reads it: a str, or with `--json` the int, float, bool, str or
/// `$bin` it denotes; anything else is a usage error (its message printed).
fn read_value(text: &str, json: bool) -> Result<Value, u8> {
    if !json {
        return Ok(Value::from(text));
    }
    match json_value::parse_arg(text) {
        Ok(v) if is_storable(&v) => Ok(v),
        Ok(v) => {
            eprintln!(
                "error: '{text}' is {}, but a DHT value must be an int, float, bool, str or $bin",
                json_value::to_json(&v)
            );
            Err(common::EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(common::EXIT_USAGE)
        }
    }
}

async fn set(args: SetArgs) -> u8 {
    let value = match read_value(&args.value, args.json) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let dht = match join(&args.bootstrap, args.timeout).await {
        Ok(d) => d,
        Err(common::EXIT_FAILURE) => {
            // Nobody to store on: the count the contract promises is zero.
            println!("stored on 0 nodes");
            return common::EXIT_FAILURE;
        }
        Err(code) => return code,
    };
    let result = dht.set(args.key.as_bytes(), value).await;
    dht.shutdown().await;
    let n = result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        0
    });
    println!("stored on {n} nodes");
    if n > 0 {
        common::EXIT_OK
    } else {
        common::EXIT_FAILURE
    }
}

async fn get(args: GetArgs) -> u8 {
    let Some(key) = args.key.as_deref() else {
        return records::get(&args).await;
    };
    let dht = match join(&args.bootstrap, args.timeout).await {
        Ok(d) => d,
        Err(code) => return code,
    };
    let result = dht.get(key.as_bytes()).await;
    dht.shutdown().await;
    match result {
        Ok(Some(v)) => {
            print_value(&v);
            common::EXIT_OK
        }
        Ok(None) => {
            eprintln!("not found: the network has no value for '{key}'");
            common::EXIT_FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            common::EXIT_FAILURE
        }
    }
}

/// Prints a found value as `dht get` does: a str as it is, any other value as JSON.
fn print_value(v: &Value) {
    match v {
        Value::String(s) if s.as_str().is_some() => println!("{}", s.as_str().unwrap_or_default()),
        v => println!("{}", json_value::to_json(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use rpcudp::kad::NodeSetup;

    #[derive(Parser)]
    struct Run {
        #[command(flatten)]
        args: RunArgs,
    }

    fn shown(config: &NodeConfig) -> String {
        format!("{config:?}")
    }

    #[test]
    fn dht_run_the_library_and_the_simulator_run_the_same_node_unless_told_otherwise() {
        let library = DhtConfig::default().node;
        let run = run_config(&Run::parse_from(["dht-run"]).args).node;
        let sim = rpcudp_sim::dht::Scenario::default().node;
        assert_eq!(shown(&run), shown(&library), "`dht run` without flags");
        assert_eq!(shown(&sim), shown(&library), "the simulator's scenario");
        // The safe rules, in all three: callers verified before they are handed out,
        // joining nodes learned at once.
        assert!(library.verify_callers && library.insert_joining);
        // And each starts it through the one constructor, so the derived settings agree.
        let (a, b) = (NodeSetup::new(run, 5), NodeSetup::new(sim, 5));
        assert_eq!(
            (shown(&a.config), a.id, a.seed),
            (shown(&b.config), b.id, b.seed)
        );
        // `dht set|get` differ in the timeout and refresh only.
        let one_shot = one_shot_config(Duration::from_secs(5)).node;
        assert_eq!(one_shot.refresh_interval, None);
        let aligned = NodeConfig {
            refresh_interval: library.refresh_interval,
            ..one_shot
        };
        assert_eq!(shown(&aligned), shown(&library));
    }

    #[test]
    fn dht_run_flags_reach_the_node_config() {
        let run = Run::parse_from([
            "dht-run",
            "--ksize",
            "7",
            "--strict-local",
            "--max-records",
            "9",
        ]);
        let config = run_config(&run.args);
        assert_eq!((config.node.k, config.node.max_records), (7, 9));
        assert!(config.node.endpoint.limits.strict_local);
    }
}
