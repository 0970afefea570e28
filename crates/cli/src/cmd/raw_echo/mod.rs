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
//! answers to one sender as one GSO send, through `quinn-udp`: the batched ceiling.
//! `--rpc-core` is not raw: it answers `ping`/`echo` RPCs with the sans-IO core driven
//! inline (`core.rs`), to tell the core's cost from the server driver's.

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
    /// Batch receives (recvmmsg) and sends (GSO) with quinn-udp (also with --rpc-core).
    #[arg(long)]
    batched: bool,
    /// Answer `ping`/`echo` RPCs with the sans-IO core driven inline (not raw: the
    /// core's own cost, without the server's handler machinery).
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
        } else if rpc_core && batched {
            core::run_batched(addr, dialect, shutdown).await
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
    let socket = tokio::net::UdpSocket::bind(addr).await?;
    let state = quinn_udp::UdpSocketState::new((&socket).into())?;
    common::print_listening(socket.local_addr()?);
    let echo = async {
        let mut rx = Batch::new();
        let mut out = Vec::with_capacity(MAX_DATAGRAM);
        loop {
            let n = rx.recv(&socket, &state).await;
            // Answers to one sender with equal sizes go out as one GSO send; anything
            // else closes the group.
            let mut group = Group::default();
            for (from, segment) in rx.datagrams(n) {
                if !group.accepts(from, segment.len(), state.max_gso_segments()) {
                    group.flush(&socket, &state, &mut out).await;
                }
                group.push(from, segment, &mut out);
            }
            group.flush(&socket, &state, &mut out).await;
        }
    };
    tokio::select! {
        () = echo => Ok(()),
        () = shutdown => Ok(()),
    }
}

/// Receive buffers for one recvmmsg: up to `quinn_udp::BATCH_SIZE` datagrams a call.
struct Batch {
    storage: Vec<u8>,
    metas: Vec<quinn_udp::RecvMeta>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            storage: vec![0u8; quinn_udp::BATCH_SIZE * MAX_DATAGRAM],
            metas: vec![quinn_udp::RecvMeta::default(); quinn_udp::BATCH_SIZE],
        }
    }

    /// Waits for datagrams and receives as many as are queued (one system call);
    /// returns how many buffers were filled. Errors are logged and waited out.
    async fn recv(
        &mut self,
        socket: &tokio::net::UdpSocket,
        state: &quinn_udp::UdpSocketState,
    ) -> usize {
        loop {
            if let Err(e) = socket.readable().await {
                tracing::debug!("raw-echo readiness: {e}");
                continue;
            }
            let (storage, metas) = (&mut self.storage, &mut self.metas);
            let received = socket.try_io(tokio::io::Interest::READABLE, || {
                let mut bufs: Vec<std::io::IoSliceMut<'_>> = storage
                    .chunks_mut(MAX_DATAGRAM)
                    .map(std::io::IoSliceMut::new)
                    .collect();
                state.recv(socket.into(), &mut bufs, metas)
            });
            match received {
                Ok(n) => return n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => tracing::debug!("raw-echo receive: {e}"),
            }
        }
    }

    /// The datagrams of the first `n` buffers, each with its sender (a buffer holds
    /// several when the kernel coalesced them, GRO: they are `stride` bytes apart).
    fn datagrams(&self, n: usize) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        self.metas[..n]
            .iter()
            .zip(self.storage.chunks(MAX_DATAGRAM))
            .flat_map(|(meta, buf)| {
                buf[..meta.len]
                    .chunks(meta.stride.max(1))
                    .map(move |segment| (meta.addr, segment))
            })
    }
}

/// Datagrams gathered for one GSO send: same destination, same size (the last one may
/// be shorter, which closes the group), at most the kernel's segment count.
#[derive(Default)]
struct Group {
    to: Option<SocketAddr>,
    size: usize,
    count: usize,
    closed: bool,
}

impl Group {
    fn accepts(&self, to: SocketAddr, len: usize, max_segments: usize) -> bool {
        match self.to {
            None => true,
            Some(t) => {
                t == to
                    && !self.closed
                    && len <= self.size
                    && self.count < max_segments
                    && (self.count + 1) * self.size <= MAX_DATAGRAM
            }
        }
    }

    fn push(&mut self, to: SocketAddr, segment: &[u8], out: &mut Vec<u8>) {
        if self.to.is_none() {
            self.to = Some(to);
            self.size = segment.len();
        }
        self.closed = segment.len() < self.size;
        self.count += 1;
        out.extend_from_slice(segment);
    }

    async fn flush(
        &mut self,
        socket: &tokio::net::UdpSocket,
        state: &quinn_udp::UdpSocketState,
        out: &mut Vec<u8>,
    ) {
        if let Some(to) = self.to {
            let transmit = quinn_udp::Transmit {
                destination: to,
                ecn: None,
                contents: out,
                segment_size: (self.count > 1).then_some(self.size),
                src_ip: None,
            };
            let sent = loop {
                match socket.try_io(tokio::io::Interest::WRITABLE, || {
                    state.try_send(socket.into(), &transmit)
                }) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if let Err(e) = socket.writable().await {
                            break Err(e);
                        }
                    }
                    other => break other,
                }
            };
            if let Err(e) = sent {
                tracing::debug!("raw-echo send to {to}: {e}");
            }
        }
        out.clear();
        *self = Group::default();
    }
}
