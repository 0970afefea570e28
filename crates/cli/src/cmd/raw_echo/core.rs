//! `rpcudp raw-echo --rpc-core`: the sans-IO RPC core on the library's generic driver,
//! with nothing else around it.
//!
//! The one [`Driver`] every `Node` runs on drives one `rpcudp_proto::rpc::Endpoint` on
//! one socket, and a minimal application answers `ping()` and `echo(*args)` inline, the
//! moment their request event comes out: no handler table, no task, no channel. It is a
//! measuring stick, not a server: it bounds what `rpcudp serve` (the tokio `Node`, with
//! its general handler machinery, on the same driver) could reach, so the benchmark can
//! tell the core's and the driver's cost from the handlers'.
//!
//! The driver always batches its system calls (recvmmsg, sendmmsg / GSO on Linux), so
//! `--batched` changes nothing here.

use super::Shutdown;
use crate::common;
use rmpv::Value;
use rpcudp::driver::{Application, Driver, Flow};
use rpcudp_proto::rpc::{Endpoint, EndpointConfig, Event};
use rpcudp_proto::wire::rpc::Dialect;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

/// Answers `ping()` and `echo(*args)`; anything else gets no answer, as an unknown
/// method gets none from the Python peers.
struct PingEcho {
    pong: Value,
}

impl Application<Endpoint> for PingEcho {
    type Command = ();

    fn on_event(&mut self, ep: &mut Endpoint, now: Instant, event: Event) {
        if let Event::Request {
            token,
            method,
            args,
            ..
        } = event
        {
            match method.as_str() {
                "ping" if args.is_empty() => ep.respond(now, token, &self.pong),
                "echo" => ep.respond(now, token, &Value::Array(args)),
                _ => ep.abandon(now, token),
            }
        }
    }

    fn on_command(&mut self, _: &mut Endpoint, _: Instant, (): ()) -> Flow {
        Flow::Stop
    }
}

/// Serves `ping` and `echo` on `addr` until `shutdown`.
pub async fn run(addr: SocketAddr, dialect: Dialect, shutdown: Shutdown) -> io::Result<()> {
    let socket = rpcudp::udp::Socket::bind(addr).await?;
    common::print_listening(socket.local_addr()?);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let ep = Endpoint::new(EndpointConfig::for_dialect(dialect), seed);
    let pong = Value::from("pong");
    let (driver, handle) = Driver::new(socket, ep, PingEcho { pong }, 1);
    let serve = driver.run();
    tokio::pin!(serve);
    tokio::select! {
        _ = &mut serve => {}
        () = shutdown => {
            // Stop (sending what is queued), rather than drop the driver mid-batch.
            let _ = handle.send_urgent(());
            serve.await;
        }
    }
    Ok(())
}
