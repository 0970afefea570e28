//! The DHT step of `rpcudp demo`: a small Kademlia network on loopback stores a key from
//! one node and finds it from another, then goes on after one node stops.

use super::{say, StepResult};
use crate::json_value::to_json;
use rmpv::Value;
use rpcudp::kad::{key_digest, Dht, DhtConfig, NodeConfig};
use std::time::Duration;

/// How many nodes the demo network has.
const NODES: usize = 6;

/// Runs the DHT step.
pub async fn step() -> StepResult {
    let config = DhtConfig {
        node: NodeConfig {
            refresh_interval: None,
            // Loopback answers in microseconds; a short timeout keeps the dead-node part
            // quick.
            rpc_timeout: Duration::from_millis(300),
            ..NodeConfig::default()
        },
        ..DhtConfig::default()
    };
    let mut nodes: Vec<Dht> = Vec::new();
    for _ in 0..NODES {
        let dht = Dht::start("127.0.0.1:0".parse().unwrap(), config.clone())
            .await
            .map_err(|e| format!("cannot start a DHT node: {e}"))?;
        if let Some(first) = nodes.first() {
            if dht.bootstrap(&[first.local_addr()]).await.unwrap_or(0) == 0 {
                return Err("a node could not join through the first".into());
            }
        }
        nodes.push(dht);
    }
    say(format!(
        "{NODES} Kademlia nodes on loopback (k=20, alpha=3, the Python kademlia 2.2.3 protocol), \
         each joined through {}",
        nodes[0].local_addr()
    ));
    for n in &nodes {
        say(format!(
            "  node {} at {} knows {} others",
            n.id(),
            n.local_addr(),
            n.contacts().len()
        ));
    }
    let result = run(&nodes).await;
    for n in &nodes {
        n.shutdown().await;
    }
    result
}

async fn run(nodes: &[Dht]) -> StepResult {
    let (key, value) = ("greeting", Value::from("hello from rpcudp-rs"));
    say(format!(
        "key '{key}' is stored under sha1 = {}",
        key_digest(key)
    ));
    let acked = nodes[1]
        .set(key, value.clone())
        .await
        .map_err(|e| format!("set failed: {e}"))?;
    say(format!(
        "node 1 set '{key}' = {}: acknowledged by {acked} nodes (each after its write)",
        to_json(&value)
    ));
    let last = nodes.len() - 1;
    let found = nodes[last]
        .get(key)
        .await
        .map_err(|e| format!("get failed: {e}"))?;
    say(format!(
        "node {last} looked '{key}' up: {}",
        found.as_ref().map_or("nothing".into(), to_json)
    ));
    if found != Some(value.clone()) {
        return Err("the value was not found".into());
    }
    nodes[2].shutdown().await;
    say("node 2 stops. Node 3 still answers from its own copy (every node here holds one):");
    let again = nodes[3]
        .get(key)
        .await
        .map_err(|e| format!("get failed: {e}"))?;
    if again != Some(value) {
        return Err("the value was lost with one node".into());
    }
    say(format!(
        "  found {}",
        again.as_ref().map_or("nothing".into(), to_json)
    ));
    let started = std::time::Instant::now();
    let missing = nodes[4]
        .get("never stored")
        .await
        .map_err(|e| format!("get failed: {e}"))?;
    if missing.is_some() {
        return Err("a key nobody stored was found".into());
    }
    let took = started.elapsed().as_millis();
    // The lookup stopped waiting for the stopped node after its RTO; the node is
    // dropped from the table once that RPC times out (300 ms): wait for that, bounded.
    let before = nodes[4].contacts().len();
    for _ in 0..100 {
        if nodes[4].contacts().len() < before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    say(format!(
        "node 4 looks up a key nobody stored: not found after asking every node in {took} ms, \
         the stopped one costing about its measured round-trip timeout, not the whole 300 ms \
         RPC timeout; once that RPC timed out it was dropped from node 4's table ({} contacts \
         left)",
        nodes[4].contacts().len()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn dht_step_stores_a_key_and_finds_it_from_another_node() {
        super::step().await.unwrap();
    }
}
