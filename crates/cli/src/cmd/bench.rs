//! `rpcudp bench` (docs/cli.md): keeps N calls in flight against a server for a
//! while and reports throughput and latency.
//!
//! The load runs in ONE task on ONE connected socket, on a current-thread runtime of its
//! own thread: a single task needs no cross-thread wake-ups, and the calls share the
//! socket the way a real client's do. Each mode is a loop that reads every datagram
//! already queued before waiting again, and refills a call's slot as soon as it ends:
//! - `rpc` (default, `bench/rpc.rs`) runs the sans-IO `rpcudp_proto::rpc::Endpoint` on
//!   the library's generic `rpcudp::driver::Driver` with a load-making application, so
//!   the bench measures the same call table, codecs and batched I/O as the library;
//! - `--raw` (`bench/raw.rs`) sends bare datagrams to `rpcudp raw-echo`: the ceiling;
//! - `--node` (`bench/node.rs`) makes the calls through the library's tokio `Node`, to
//!   measure what its driver costs a client.
//!
//! When the duration is over, no new call starts and the run waits (at most one timeout)
//! for the calls in flight; the ones still unanswered count as timeouts.

mod node;
mod raw;
mod report;
mod rpc;

use crate::common;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::time::{Duration, Instant};

/// How often the progress bar and the timeout scan run.
const TICK: Duration = Duration::from_millis(100);

/// Arguments of `rpcudp bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The server to load (`host:port`).
    addr: common::HostPort,
    /// Method to call.
    #[arg(long, default_value = "ping")]
    method: String,
    /// Arguments of each call, as a JSON array (see `rpcudp call` for the `$` extensions).
    #[arg(
        long,
        default_value = "[]",
        value_name = "JSON",
        allow_hyphen_values = true
    )]
    args: String,
    /// Calls kept in flight.
    #[arg(long, short = 'c', default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    concurrency: u32,
    /// How long to keep starting calls, in seconds.
    #[arg(long, short = 'd', default_value = "10", value_name = "SECS", value_parser = parse_secs)]
    duration: Duration,
    /// Wire dialect of the server.
    #[arg(long, default_value = "rpcudp", value_parser = ["rpcudp", "storj"])]
    dialect: String,
    /// Per-call timeout in seconds; an unanswered call counts as a timeout and its slot
    /// starts a new call.
    #[arg(long, default_value = "5", value_name = "SECS", value_parser = parse_secs)]
    timeout: Duration,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
    /// Send bare datagrams to `rpcudp raw-echo` instead of RPC calls (the UDP ceiling).
    #[arg(long, conflicts_with = "node")]
    raw: bool,
    /// Make the calls through the library's `Node` (one future per call) instead of
    /// driving the sans-IO core directly.
    #[arg(long)]
    node: bool,
    /// With `--raw`: make each datagram a length-type frame (2-byte length, 1-byte type),
    /// to load `rpcudp lt echo --udp`.
    #[arg(long, requires = "raw")]
    lt: bool,
    /// Datagram size with `--raw`, in bytes (default: the size of a `ping` request).
    #[arg(long, default_value_t = 28, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(8..=65_507))]
    size: u32,
}

fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("'{text}': seconds must be > 0 and at most 86400"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// What to run: shared by the modes.
pub struct Plan {
    server: SocketAddr,
    concurrency: usize,
    duration: Duration,
    timeout: Duration,
}

impl Plan {
    /// A socket on an ephemeral port, connected to the server: the kernel then filters
    /// other senders and skips the per-send route lookup, for both modes alike.
    async fn connect(&self) -> io::Result<tokio::net::UdpSocket> {
        let any: IpAddr = match self.server {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let socket = tokio::net::UdpSocket::bind(SocketAddr::new(any, 0)).await?;
        socket.connect(self.server).await?;
        Ok(socket)
    }
}

/// The run's clock: wakes the loop every [`TICK`] and at the end of the duration, then
/// says when to stop starting calls and when to give up waiting for the last ones.
struct Tick {
    sleep: Pin<Box<tokio::time::Sleep>>,
    end: Instant,
    /// No new call starts once set.
    stopping: bool,
}

impl Tick {
    fn new(plan: &Plan, started: Instant) -> Tick {
        let end = started + plan.duration;
        Tick {
            sleep: Box::pin(tokio::time::sleep_until((started + TICK).min(end).into())),
            end,
            stopping: false,
        }
    }

    /// Waits for the next tick. Cancel-safe: the deadline lives in `self`.
    async fn wait(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// [`wait`](Self::wait) for a hand-written poll loop: ready at the next tick (and
    /// then armed for the one after), else the waker of `cx` is woken then.
    fn poll_tick(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Instant> {
        if self.sleep.as_mut().poll(cx).is_pending() {
            return std::task::Poll::Pending;
        }
        let now = Instant::now();
        if now >= self.end {
            self.stopping = true;
        }
        let next = if self.stopping {
            now + TICK
        } else {
            (now + TICK).min(self.end)
        };
        self.sleep.as_mut().reset(next.into());
        std::task::Poll::Ready(now)
    }
}

/// Sends one datagram on the connected socket, waiting only if the send buffer is full.
async fn send(socket: &tokio::net::UdpSocket, datagram: &[u8]) -> io::Result<()> {
    match socket.try_send(datagram) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.send(datagram).await.map(drop),
        Err(e) => Err(e),
    }
}

/// Runs `rpcudp bench`.
pub async fn run(args: Args) -> u8 {
    let server = match args.addr.resolve_one().await {
        Ok(a) => a,
        Err(code) => return code,
    };
    let mode = if args.raw {
        Mode::Raw {
            size: args.size as usize,
            lt_frames: args.lt,
        }
    } else {
        match rpc::Calls::from_cli(&args.method, &args.args, &args.dialect) {
            Ok(calls) if args.node => Mode::Node(calls),
            Ok(calls) => Mode::Rpc(calls),
            Err(msg) => {
                eprintln!("error: {msg}");
                return common::EXIT_USAGE;
            }
        }
    };
    let plan = Plan {
        server,
        concurrency: args.concurrency as usize,
        duration: args.duration,
        timeout: args.timeout,
    };
    // The load loop gets a thread and a current-thread runtime of its own (see the
    // module doc); the main runtime only waits for it.
    let joined = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(run_plan(&plan, mode))
    })
    .await;
    let summary = match joined {
        Ok(Ok(summary)) => summary,
        Ok(Err(e)) => {
            eprintln!("error: bench against {}: {e}", args.addr);
            return common::EXIT_FAILURE;
        }
        Err(e) => {
            eprintln!("error: the bench thread failed: {e}");
            return common::EXIT_FAILURE;
        }
    };
    if args.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.to_text());
    }
    common::EXIT_OK
}

enum Mode {
    Raw { size: usize, lt_frames: bool },
    Rpc(rpc::Calls),
    Node(rpc::Calls),
}

async fn run_plan(plan: &Plan, mode: Mode) -> io::Result<report::Summary> {
    let started = Instant::now();
    let mut rec = report::Recorder::new(started, plan.duration);
    match mode {
        Mode::Raw { size, lt_frames } => {
            let ended = raw::run(plan, size, lt_frames, &mut rec).await?;
            let what = if lt_frames {
                "length-type frames"
            } else {
                "datagrams"
            };
            Ok(rec.finish(
                ended,
                "raw",
                format!("{size}-byte {what}"),
                plan.concurrency,
            ))
        }
        Mode::Rpc(calls) => {
            let label = calls.label();
            let ended = rpc::run(plan, calls, &mut rec).await?;
            Ok(rec.finish(ended, "rpc", label, plan.concurrency))
        }
        Mode::Node(calls) => {
            let label = calls.label();
            let ended = node::run(plan, calls, &mut rec).await?;
            Ok(rec.finish(ended, "node", label, plan.concurrency))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_must_be_positive_numbers() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["0", "-1", "abc", "nan", "inf", "100000"] {
            let err = parse_secs(bad).unwrap_err();
            assert!(err.contains(bad), "{err} should name {bad}");
        }
    }
}
