//! `rpcudp raw-echo [--bind ADDR] [--blocking]`: the UDP ceiling for `rpcudp bench --raw`.
//!
//! Every datagram is sent back to its sender unchanged, with one receive and one send per
//! datagram and no RPC at all: what is left of a round trip once the protocol costs
//! nothing. `bench/compare.sh` measures our RPC server against it.
//!
//! The default loop runs on the same tokio runtime and socket type as `rpcudp serve`, so
//! the difference between the two is the RPC work alone. `--blocking` uses a plain
//! blocking socket on its own thread (no readiness polling at all), the kernel's floor.

use crate::common;
use std::net::SocketAddr;

/// The largest datagram echoed whole (larger ones are truncated by the receive, as any
/// UDP receiver with a fixed buffer does).
const MAX_DATAGRAM: usize = 65_535;

/// Arguments of `rpcudp raw-echo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:1235", value_name = "ADDR")]
    bind: common::HostPort,
    /// Echo from a blocking socket on a dedicated thread instead of a tokio task.
    #[arg(long)]
    blocking: bool,
}

/// Runs `rpcudp raw-echo` until SIGINT or SIGTERM.
pub async fn run(args: Args) -> u8 {
    let addr = match args.bind.resolve_one().await {
        Ok(a) => a,
        Err(code) => return code,
    };
    let result = if args.blocking {
        run_blocking(addr).await
    } else {
        run_tokio(addr).await
    };
    match result {
        Ok(()) => common::EXIT_OK,
        Err(e) => {
            eprintln!("error: raw-echo on {}: {e}", args.bind);
            common::EXIT_FAILURE
        }
    }
}

async fn run_tokio(addr: SocketAddr) -> std::io::Result<()> {
    let socket = tokio::net::UdpSocket::bind(addr).await?;
    common::print_listening(socket.local_addr()?);
    let echo = async {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (n, from) = match socket.recv_from(&mut buf).await {
                Ok(x) => x,
                // An ICMP error from an earlier send (the peer went away) surfaces on
                // the next receive on some systems; it says nothing about this socket.
                Err(e) => {
                    tracing::debug!("raw-echo receive: {e}");
                    continue;
                }
            };
            if let Err(e) = socket.send_to(&buf[..n], from).await {
                tracing::debug!("raw-echo send to {from}: {e}");
            }
        }
    };
    tokio::select! {
        () = echo => Ok(()),
        () = common::shutdown_signal() => Ok(()),
    }
}

async fn run_blocking(addr: SocketAddr) -> std::io::Result<()> {
    let socket = std::net::UdpSocket::bind(addr)?;
    common::print_listening(socket.local_addr()?);
    // The thread is detached: it blocks in recv_from forever, and the process exits
    // (ending it) once the shutdown signal arrives.
    std::thread::Builder::new()
        .name("raw-echo".into())
        .spawn(move || {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                match socket.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        if let Err(e) = socket.send_to(&buf[..n], from) {
                            tracing::debug!("raw-echo send to {from}: {e}");
                        }
                    }
                    Err(e) => tracing::debug!("raw-echo receive: {e}"),
                }
            }
        })?;
    common::shutdown_signal().await;
    Ok(())
}
