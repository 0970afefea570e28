//! `rpcudp lt ...` (docs/cli.md): length-type framed messages.
//!
//! `rpcudp lt echo` writes every frame back unchanged: over TCP to the connection it came
//! on (any number of connections, each in its own task, so one slow peer only slows
//! itself: a connection whose peer does not read stops being read, which is TCP's own
//! flow control), or with `--udp` to the sender of the datagram. A bad frame closes its
//! connection alone (TCP) or is dropped (UDP).

use crate::common::{self, HostPort};
use bytes::BytesMut;
use rpcudp::lt::{
    ConnLimits, Frame, FrameFormat, Guard, GuardedReader, LtCodec, LtSocket, MessageSet, Ticket,
    Width,
};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Subcommands of `rpcudp lt`.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Echo every frame back, unchanged (TCP by default, or UDP with --udp).
    Echo(EchoArgs),
}

/// Arguments of `rpcudp lt echo`.
#[derive(clap::Args, Debug)]
pub struct EchoArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:9999")]
    bind: HostPort,
    /// Width of the length field in bytes: 1, 2, 4 or 8.
    #[arg(long, default_value = "2", value_parser = parse_width)]
    len_width: Width,
    /// Width of the type field in bytes: 1, 2, 4 or 8.
    #[arg(long, default_value = "1", value_parser = parse_width)]
    type_width: Width,
    /// Largest frame accepted, header included (default: the largest length the length
    /// field can express, capped at 16 MiB).
    #[arg(long, value_name = "BYTES")]
    max_frame: Option<u64>,
    /// One frame per UDP datagram instead of TCP.
    #[arg(long)]
    udp: bool,
}

fn parse_width(s: &str) -> Result<Width, String> {
    s.parse::<usize>()
        .ok()
        .and_then(Width::from_bytes)
        .ok_or_else(|| format!("'{s}' is not a field width (1, 2, 4 or 8)"))
}

/// Runs an `rpcudp lt` subcommand.
pub async fn run(command: Command) -> u8 {
    match command {
        Command::Echo(args) => echo(args).await,
    }
}

/// The format from the options, or a usage error naming the bad value.
fn format_of(args: &EchoArgs) -> Result<FrameFormat, String> {
    let format = FrameFormat::new(args.len_width, args.type_width);
    let Some(max) = args.max_frame else {
        return Ok(format);
    };
    let expressible = args.len_width.max_value();
    if max > expressible {
        return Err(format!(
            "--max-frame {max}: a {}-byte length field can express at most {expressible}",
            args.len_width.bytes()
        ));
    }
    if max < format.header_len() as u64 {
        return Err(format!(
            "--max-frame {max}: smaller than the {}-byte header",
            format.header_len()
        ));
    }
    Ok(format.with_max_frame(max))
}

async fn echo(args: EchoArgs) -> u8 {
    let format = match format_of(&args) {
        Ok(f) => f,
        Err(msg) => {
            eprintln!("error: {msg}");
            return common::EXIT_USAGE;
        }
    };
    let addr = match args.bind.resolve_one().await {
        Ok(a) => a,
        Err(code) => return code,
    };
    if args.udp {
        echo_udp(addr, format).await
    } else {
        echo_tcp(addr, format).await
    }
}

async fn echo_udp(addr: SocketAddr, format: FrameFormat) -> u8 {
    let mut socket = match LtSocket::<Frame>::bind(addr, format).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot bind UDP {addr}: {e}");
            return common::EXIT_FAILURE;
        }
    };
    // Signal handlers before the `listening on` line: a signal right after it must
    // find them.
    let shutdown = common::shutdown_signal();
    match socket.local_addr() {
        Ok(a) => common::print_listening(a),
        Err(e) => {
            eprintln!("error: {e}");
            return common::EXIT_FAILURE;
        }
    }
    tokio::pin!(shutdown);
    loop {
        let received = tokio::select! {
            _ = &mut shutdown => break,
            r = socket.recv_from() => r,
        };
        match received {
            Ok((frame, from)) => {
                if let Err(e) = socket.send_to(&frame, from).await {
                    tracing::debug!("lt echo: cannot echo to {from}: {e}");
                }
            }
            Err(e) => {
                // E.g. an ICMP error surfaced by the socket: not fatal for a server.
                tracing::debug!("lt echo: receive error: {e}");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    tracing::info!(
        "lt echo: stopping; dropped {} bad datagram(s)",
        socket.stats().bad_frames
    );
    common::EXIT_OK
}

async fn echo_tcp(addr: SocketAddr, format: FrameFormat) -> u8 {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on TCP {addr}: {e}");
            return common::EXIT_FAILURE;
        }
    };
    // Signal handlers before the `listening on` line: a signal right after it must
    // find them.
    let shutdown = common::shutdown_signal();
    match listener.local_addr() {
        Ok(a) => common::print_listening(a),
        Err(e) => {
            eprintln!("error: {e}");
            return common::EXIT_FAILURE;
        }
    }
    // Connection cap with eviction of idle ones, timeouts, buffer caps (SECURITY.md).
    let guard = Guard::new(ConnLimits::default());
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            // Reap finished connections so the set does not grow without bound.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    guard.accept_ok();
                    let Some(ticket) = guard.admit() else {
                        tracing::debug!("lt echo: refusing {peer}: connection limit reached");
                        continue;
                    };
                    tracing::debug!("lt echo: connection from {peer}");
                    tasks.spawn(echo_connection(stream, ticket, peer, format, stop.clone()));
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    let wait = guard.accept_failed(&e, "lt echo");
                    tokio::time::sleep(wait).await;
                }
            },
        }
    }
    drop(listener);
    stop.cancel();
    let drained = tokio::time::timeout(Duration::from_secs(2), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
    }
    tracing::info!("lt echo: stopping; connection limits: {:?}", guard.stats());
    common::EXIT_OK
}

/// How long a write of echoed frames may make no progress before the connection closes.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

async fn echo_connection(
    stream: TcpStream,
    ticket: Ticket,
    peer: SocketAddr,
    format: FrameFormat,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut frames = GuardedReader::new(rd, LtCodec::<Frame>::new(format), ticket);
    let mut out = BytesMut::new();
    loop {
        let item = tokio::select! {
            _ = stop.cancelled() => break,
            item = frames.next() => item,
        };
        match item {
            None => break,
            Some(Ok(frame)) => {
                if let Err(e) = frame.encode_frame(&format, &mut out) {
                    tracing::debug!("lt echo: {peer}: cannot echo: {e}");
                    break;
                }
                // Write once the input runs dry, so a burst is echoed in few writes.
                if frames.frame_ready() && out.len() < 64 << 10 {
                    continue;
                }
                let written = tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&out)).await;
                out.clear();
                if !matches!(written, Ok(Ok(()))) {
                    tracing::debug!("lt echo: {peer}: write failed or stalled");
                    break;
                }
            }
            Some(Err(e)) => {
                tracing::debug!("lt echo: closing {peer}: {e}");
                break;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
}
