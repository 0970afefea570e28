//! `rpcudp raw-echo --rpc-core`: the sans-IO RPC core with nothing around it.
//!
//! One task drives one `rpcudp_proto::rpc::Endpoint` on one socket and answers `ping()`
//! and `echo(*args)` inline, the moment their request event comes out: no handler task,
//! no channel, no per-iteration timer, every queued datagram read before waiting again.
//! It is a measuring stick, not a server: it bounds what `rpcudp serve` (the tokio
//! `Node`, with its general handler machinery) could reach with the same core, so the
//! benchmark can tell the core's cost from the driver's.
//!
//! With `--batched` it receives with recvmmsg and sends the answers to one client as GSO
//! batches (quinn-udp), as `raw-echo --batched` does: what the same core reaches when
//! the driver batches its system calls.

use super::{Batch, Group, Shutdown};
use crate::common;
use rmpv::Value;
use rpcudp_proto::rpc::{Endpoint, EndpointConfig, Event};
use rpcudp_proto::wire::rpc::Dialect;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Serves `ping` and `echo` on `addr` until `shutdown`.
pub async fn run(addr: SocketAddr, dialect: Dialect, shutdown: Shutdown) -> io::Result<()> {
    let socket = tokio::net::UdpSocket::bind(addr).await?;
    common::print_listening(socket.local_addr()?);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut ep = Endpoint::new(EndpointConfig::for_dialect(dialect), seed);
    let serve = async {
        let mut buf = vec![0u8; 65_536];
        let pong = Value::from("pong");
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let mut timer_at = far;
        let mut timer = Box::pin(tokio::time::sleep_until(far.into()));
        loop {
            loop {
                let (n, from) = match socket.try_recv_from(&mut buf) {
                    Ok(x) => x,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::debug!("receive: {e}");
                        continue;
                    }
                };
                let now = Instant::now();
                ep.handle_datagram(now, from, &buf[..n]);
                answer(&mut ep, now, &pong);
                flush(&socket, &mut ep).await;
            }
            // The core's timers (duplicate-cache expiry) are honoured lazily: the sleep
            // only ever moves earlier, and an early wake-up finds nothing due.
            if let Some(at) = ep.poll_timeout() {
                if at < timer_at {
                    timer_at = at;
                    timer.as_mut().reset(at.into());
                }
            }
            tokio::select! {
                biased;
                ready = socket.readable() => ready?,
                () = &mut timer => {
                    let now = Instant::now();
                    ep.handle_timeout(now);
                    timer_at = ep.poll_timeout().unwrap_or(far);
                    timer.as_mut().reset(timer_at.into());
                    answer(&mut ep, now, &pong);
                    flush(&socket, &mut ep).await;
                }
            }
        }
    };
    tokio::select! {
        r = serve => r,
        () = shutdown => Ok(()),
    }
}

/// Answers the requests the core handed out: `ping()` and `echo(*args)`; anything else
/// gets no answer, as an unknown method gets none from the Python peers.
fn answer(ep: &mut Endpoint, now: Instant, pong: &Value) {
    while let Some(event) = ep.poll_event() {
        if let Event::Request {
            token,
            method,
            args,
            ..
        } = event
        {
            match method.as_str() {
                "ping" if args.is_empty() => ep.respond(now, token, pong),
                "echo" => ep.respond(now, token, &Value::Array(args)),
                _ => ep.abandon(token),
            }
        }
    }
}

async fn flush(socket: &tokio::net::UdpSocket, ep: &mut Endpoint) {
    while let Some(t) = ep.poll_transmit() {
        let sent = match socket.try_send_to(&t.payload, t.destination) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                socket.send_to(&t.payload, t.destination).await.map(drop)
            }
            other => other.map(drop),
        };
        if let Err(e) = sent {
            tracing::debug!("send to {}: {e}", t.destination);
        }
    }
}

/// [`run`] with batched receives (recvmmsg) and sends (GSO).
pub async fn run_batched(addr: SocketAddr, dialect: Dialect, shutdown: Shutdown) -> io::Result<()> {
    let socket = tokio::net::UdpSocket::bind(addr).await?;
    let state = quinn_udp::UdpSocketState::new((&socket).into())?;
    common::print_listening(socket.local_addr()?);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut ep = Endpoint::new(EndpointConfig::for_dialect(dialect), seed);
    let serve = async {
        let mut rx = Batch::new();
        let mut out = Vec::with_capacity(super::MAX_DATAGRAM);
        let pong = Value::from("pong");
        loop {
            // The duplicate cache expires as datagrams arrive (handle_datagram), so an
            // idle server needs no timer here; nothing else in this core is timed.
            let n = rx.recv(&socket, &state).await;
            let now = Instant::now();
            for (from, datagram) in rx.datagrams(n) {
                ep.handle_datagram(now, from, datagram);
                answer(&mut ep, now, &pong);
            }
            let mut group = Group::default();
            while let Some(t) = ep.poll_transmit() {
                if !group.accepts(t.destination, t.payload.len(), state.max_gso_segments()) {
                    group.flush(&socket, &state, &mut out).await;
                }
                group.push(t.destination, &t.payload, &mut out);
            }
            group.flush(&socket, &state, &mut out).await;
        }
    };
    tokio::select! {
        () = serve => Ok(()),
        () = shutdown => Ok(()),
    }
}
