//! The RPC step of `rpcudp demo`: a server with the reference service on loopback, a few
//! calls, a retry story through a relay that loses the first datagram, and the counters.

use super::{say, StepResult};
use crate::cmd::serve::register_reference_service;
use crate::json_value::to_json;
use rmpv::Value;
use rpcudp::rpc::{Endpoint, EndpointStats};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

/// Runs the RPC step.
pub async fn step() -> StepResult {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let server = Endpoint::bind("127.0.0.1:0".parse().unwrap())
        .await
        .map_err(|e| err(&e))?;
    register_reference_service(&server);
    let client = Endpoint::bind("127.0.0.1:0".parse().unwrap())
        .await
        .map_err(|e| err(&e))?;
    let to = server.local_addr();
    say(format!(
        "RPC server (rpcudp dialect, wire-compatible with Python rpcudp) on {to}"
    ));

    let calls: Vec<(&str, Vec<Value>)> = vec![
        ("ping", vec![]),
        (
            "echo",
            vec![Value::from("a str"), Value::Binary(vec![0xca, 0xfe])],
        ),
        (
            "add",
            vec![Value::from(1u64 << 62), Value::from(1u64 << 62)],
        ),
        ("add", vec![Value::from(1), Value::F64(0.5)]),
        ("stun", vec![]),
    ];
    for (method, args) in calls {
        let shown: Vec<String> = args.iter().map(to_json).collect();
        let value = client
            .call(to, method, args)
            .await
            .map_err(|e| format!("{method} failed: {e}"))?;
        say(format!(
            "call {method}({}) -> {}",
            shown.join(", "),
            to_json(&value)
        ));
    }

    say("a sleep(300) call runs while another call is answered:");
    let c = client.clone();
    let sleeping = tokio::spawn(async move { c.call(to, "sleep", vec![Value::from(300)]).await });
    let pong = client.call(to, "ping", vec![]).await.map_err(|e| err(&e))?;
    say(format!(
        "  ping -> {} (sleep still running: {})",
        to_json(&pong),
        !sleeping.is_finished()
    ));
    let slept = sleeping.await.map_err(|e| err(&e))?.map_err(|e| err(&e))?;
    say(format!("  sleep -> {}", to_json(&slept)));

    let relay = lossy_relay(to).await.map_err(|e| err(&e))?;
    say(format!(
        "retry story: calling count through a relay at {relay} that loses the first datagram"
    ));
    let mut options = client.default_call_options();
    options.attempt_timeout = Duration::from_millis(250);
    options.retries = 3;
    let before = client.stats().core.retries;
    let n = client
        .call_with(relay, "count", vec![], options)
        .await
        .map_err(|e| format!("count through the lossy relay failed: {e}"))?;
    say(format!(
        "  count -> {} after {} resend(s) of the same message id; the handler ran once",
        to_json(&n),
        client.stats().core.retries - before
    ));

    let mut quick = client.default_call_options();
    quick.attempt_timeout = Duration::from_millis(200);
    match client.call_with(to, "no_such_method", vec![], quick).await {
        Err(e) => say(format!(
            "call no_such_method -> {e} (as the Python peers: no answer)"
        )),
        Ok(v) => return Err(format!("unknown method answered {}", to_json(&v))),
    }

    client.shutdown().await;
    server.shutdown().await;
    show("client counters", &client.stats());
    show("server counters", &server.stats());
    Ok(())
}

fn show(who: &str, s: &EndpointStats) {
    let c = &s.core;
    say(format!(
        "{who}: datagrams in {} out {}, malformed {}, timeouts {}, retries {}, \
         duplicates answered from cache {}, unknown methods {}",
        c.datagrams_in,
        c.datagrams_out,
        c.malformed,
        c.timeouts,
        c.retries,
        c.duplicates_answered,
        s.unknown_methods
    ));
}

/// A relay that forwards datagrams both ways but drops the first one towards `server`.
/// It stops by itself after 30 s of silence.
async fn lossy_relay(server: SocketAddr) -> std::io::Result<SocketAddr> {
    let front = UdpSocket::bind("127.0.0.1:0").await?;
    let back = UdpSocket::bind("127.0.0.1:0").await?;
    let addr = front.local_addr()?;
    tokio::spawn(async move {
        let (mut a, mut b) = (vec![0u8; 65_536], vec![0u8; 65_536]);
        let mut client = None;
        let mut dropped = false;
        loop {
            let idle = tokio::time::sleep(Duration::from_secs(30));
            tokio::select! {
                r = front.recv_from(&mut a) => {
                    let Ok((n, from)) = r else { return };
                    client = Some(from);
                    if !dropped {
                        dropped = true;
                        continue;
                    }
                    let _ = back.send_to(&a[..n], server).await;
                }
                r = back.recv_from(&mut b) => {
                    let Ok((n, _)) = r else { return };
                    if let Some(c) = client {
                        let _ = front.send_to(&b[..n], c).await;
                    }
                }
                _ = idle => return,
            }
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_rpc_demo_step_runs_to_done_on_loopback() {
        // Generous bound: the step itself waits at most a few seconds (its retry story
        // and the unknown-method timeout), even on a loaded machine.
        let outcome = tokio::time::timeout(Duration::from_secs(60), step())
            .await
            .expect("the step finishes");
        assert!(matches!(outcome, Ok(())), "{:?}", outcome.err());
    }

    #[tokio::test]
    async fn the_lossy_relay_drops_only_the_first_datagram() {
        let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let relay = lossy_relay(echo.local_addr().unwrap()).await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for payload in [&b"lost"[..], b"kept"] {
            client.send_to(payload, relay).await.unwrap();
        }
        let mut buf = [0u8; 16];
        let (n, _) = tokio::time::timeout(Duration::from_secs(10), echo.recv_from(&mut buf))
            .await
            .expect("the second datagram arrives")
            .unwrap();
        assert_eq!(&buf[..n], b"kept");
    }
}
