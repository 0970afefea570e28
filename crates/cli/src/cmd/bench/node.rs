//! `rpcudp bench --node`: the same load made through the library's tokio
//! [`Endpoint`] (`Endpoint::call_with`, one future per call in flight) rather
//! than the hand-driven core, to measure what the `Endpoint`'s channels and driver task cost a
//! client. The default RPC mode (`rpc.rs`) stays the faster, lower-noise client.

use super::report::Recorder;
use super::rpc::Calls;
use super::{Plan, Tick};
use futures::stream::{FuturesUnordered, StreamExt};
use rpcudp::rpc::{CallError, CallOptions, Config, Endpoint};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

/// Runs the RPC load described by `plan` through a `Endpoint`.
pub async fn run(plan: &Plan, calls: Calls, rec: &mut Recorder) -> io::Result<Instant> {
    let any: IpAddr = match plan.server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let mut config = Config::for_dialect(calls.dialect);
    config.endpoint.max_outstanding_calls =
        config.endpoint.max_outstanding_calls.max(plan.concurrency);
    let node = Endpoint::bind_with(SocketAddr::new(any, 0), config).await?;
    let options = CallOptions {
        attempt_timeout: plan.timeout,
        retries: 0,
        ..node.default_call_options()
    };
    let (node_ref, calls_ref) = (&node, &calls);
    let call = |t0: Instant| {
        let options = options.clone();
        async move {
            let result = node_ref
                .call_with(
                    plan.server,
                    &calls_ref.method,
                    calls_ref.args.clone(),
                    options,
                )
                .await;
            (t0, result)
        }
    };
    let started = rec.started();
    let mut in_flight: FuturesUnordered<_> = (0..plan.concurrency).map(|_| call(started)).collect();
    let mut tick = Tick::new(plan, started);
    loop {
        tokio::select! {
            biased;
            Some((t0, result)) = in_flight.next() => {
                let now = Instant::now();
                match result {
                    Ok(_) => rec.answered(now.saturating_duration_since(t0)),
                    Err(CallError::Timeout(_)) => rec.timeouts += 1,
                    Err(e) => {
                        tracing::debug!("bench call: {e}");
                        rec.errors += 1;
                    }
                }
                if !tick.stopping {
                    in_flight.push(call(now));
                } else if in_flight.is_empty() {
                    break;
                }
            }
            now = tick.wait() => {
                rec.tick(now);
                if tick.stopping && in_flight.is_empty() {
                    break;
                }
            }
        }
    }
    let ended = Instant::now();
    drop(in_flight);
    node.shutdown().await;
    Ok(ended)
}
