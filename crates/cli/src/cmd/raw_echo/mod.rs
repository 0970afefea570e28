//! `rpcudp raw-echo [--bind ADDR] [--blocking]`: the UDP ceiling for `rpcudp bench --raw`.
//!
//! Every datagram is sent back to its sender unchanged, with one receive and one send per
//! datagram and no RPC at all: what is left of a round trip once the protocol costs
//! nothing. `bench/compare.sh` measures our RPC server against it.
//!
//! The default loop runs on the same tokio runtime and socket type as `rpcudp serve`, so
//! the difference between the two is the RPC work alone. `--blocking` uses a plain
//! blocking socket on its own thread (no readiness polling at all), the kernel's floor.
//! `--batched` receives up to 32 datagrams per system call (recvmmsg) and sends the
//! answers as batches (sendmmsg, or one GSO send for a run to one sender), through the
//! library's batch I/O (`rpcudp::udp::Socket::try_recv_batch` / `try_send_batch`, the
//! same path the RPC driver uses): the batched ceiling.
//! `--rpc-core` is not raw: it answers `ping`/`echo` RPCs with the sans-IO core on the
//! library's generic driver (`core.rs`), to tell the core's and the driver's cost from
//! the server's handler machinery.

mod core;

use crate::common;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

/// The pending shutdown signal, already listening.
type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

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
    #[arg(long, conflicts_with = "batched")]
    blocking: bool,
    /// Batch receives (recvmmsg) and sends (sendmmsg, GSO) with the library's batch I/O
    /// (with --rpc-core the driver always batches).
    #[arg(long)]
    batched: bool,
    /// Answer `ping`/`echo` RPCs with the sans-IO core on the library's driver (not raw:
    /// the core's and the driver's cost, without the server's handler machinery).
    #[arg(long, conflicts_with = "blocking")]
    rpc_core: bool,
    /// Wire dialect with `--rpc-core`.
    #[arg(long, value_enum, default_value_t = super::call::DialectArg::Rpcudp, requires = "rpc_core")]
    dialect: super::call::DialectArg,
}

/// Runs `rpcudp raw-echo` until SIGINT or SIGTERM.
pub async fn run(args: Args) -> u8 {
    let addr = match args.bind.resolve_one().await {
        Ok(a) => a,
        Err(code) => return code,
    };
    // Install the signal handlers before `listening on` is printed: a supervisor may send
    // SIGTERM as soon as it reads that line, and a handler installed later would miss it
    // (the default action kills the process with a non-zero status).
    let mut shutdown = Box::pin(common::shutdown_signal());
    let _ = futures::poll!(shutdown.as_mut());
    // The loop runs as a spawned task, on a runtime worker as the RPC server's driver
    // does: `block_on`'s own future lives on the main thread, where every readiness
    // event would cost a wake-up across threads.
    let (blocking, rpc_core, batched, dialect) = (
        args.blocking,
        args.rpc_core,
        args.batched,
        args.dialect.into(),
    );
    let task = tokio::spawn(async move {
        if blocking {
            run_blocking(addr, shutdown).await
        } else if rpc_core {
            core::run(addr, dialect, shutdown).await
        } else if batched {
            run_batched(addr, shutdown).await
        } else {
            run_tokio(addr, shutdown).await
        }
    });
    let result = task
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(format!("the echo task failed: {e}"))));
    match result {
        Ok(()) => common::EXIT_OK,
        Err(e) => {
            eprintln!("error: raw-echo on {}: {e}", args.bind);
            common::EXIT_FAILURE
        }
    }
}

async fn run_tokio(addr: SocketAddr, shutdown: Shutdown) -> std::io::Result<()> {
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
        () = shutdown => Ok(()),
    }
}

async fn run_blocking(addr: SocketAddr, shutdown: Shutdown) -> std::io::Result<()> {
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
    shutdown.await;
    Ok(())
}

async fn run_batched(addr: SocketAddr, shutdown: Shutdown) -> std::io::Result<()> {
    use rpcudp::udp::{RecvBatch, Socket};
    let socket = Socket::bind(addr).await?;
    common::print_listening(socket.local_addr()?);
    let echo = async {
        let mut batch = RecvBatch::new(32, MAX_DATAGRAM);
        loop {
            if let Err(e) = socket.socket().readable().await {
                tracing::debug!("raw-echo readiness: {e}");
                continue;
            }
            match socket.try_recv_batch(&mut batch) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    tracing::debug!("raw-echo receive: {e}");
                    continue;
                }
            }
            // Every datagram back to its sender; a run of equal sizes to one sender
            // goes as one GSO send.
            let mut next = 0;
            while next < batch.len() {
                let rest = (next..batch.len()).filter_map(|i| batch.get(i));
                match socket.try_send_batch(rest) {
                    Ok(n) => next += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if let Err(e) = socket.socket().writable().await {
                            tracing::debug!("raw-echo send: {e}");
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::debug!("raw-echo send: {e}");
                        next += 1;
                    }
                }
            }
        }
    };
    tokio::select! {
        () = echo => Ok(()),
        () = shutdown => Ok(()),
    }
}
