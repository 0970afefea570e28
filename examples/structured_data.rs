//! Structured data in UDP packets: typed request and response structs instead of pickled
//! objects or hand-packed `struct` formats.
//!
//! The mailing-list answer this ports sketches a UDP RPC with a nonce per call and a table
//! of pending calls; `rpcudp::rpc::Endpoint` is that, done with MessagePack (readable from
//! any language), a 20-byte random message id, responses accepted only from the address
//! the request went to, timeouts, and optional retries of the same datagram.
//!
//! Run: `cargo run -p rpcudp-examples --example structured_data`
//! (a weather station server and a client in one process, on loopback).

use rpcudp::rpc::Endpoint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One measurement, sent by a sensor.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Reading {
    station: String,
    minute: u32,
    celsius: f64,
}

/// What a client asks for.
#[derive(Serialize, Deserialize, Debug)]
struct Query {
    station: String,
    from_minute: u32,
}

/// What the server answers.
#[derive(Serialize, Deserialize, Debug)]
struct Report {
    station: String,
    readings: Vec<Reading>,
    mean_celsius: Option<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = Endpoint::bind("127.0.0.1:0".parse()?).await?;
    let store: Arc<Mutex<BTreeMap<String, Vec<Reading>>>> = Arc::default();

    // On the wire a struct travels as a MessagePack map with its field names, so
    // `record(reading)` is the request body
    // ["record", [{"station": ..., "minute": ..., "celsius": ...}]]: a dict in Python.
    let s = store.clone();
    server.register_typed("record", move |_from, (reading,): (Reading,)| {
        let s = s.clone();
        async move {
            let mut map = s.lock().unwrap();
            let list = map.entry(reading.station.clone()).or_default();
            list.push(reading);
            list.len()
        }
    });
    let s = store.clone();
    server.register_typed("report", move |_from, (q,): (Query,)| {
        let s = s.clone();
        async move {
            let map = s.lock().unwrap();
            let readings: Vec<Reading> = map
                .get(&q.station)
                .into_iter()
                .flatten()
                .filter(|r| r.minute >= q.from_minute)
                .cloned()
                .collect();
            let mean_celsius = (!readings.is_empty())
                .then(|| readings.iter().map(|r| r.celsius).sum::<f64>() / readings.len() as f64);
            Report {
                station: q.station,
                readings,
                mean_celsius,
            }
        }
    });
    println!("weather server listening on {}", server.local_addr());

    let client = Endpoint::bind("127.0.0.1:0".parse()?).await?;
    let mut options = client.default_call_options();
    options.attempt_timeout = Duration::from_millis(500);
    options.retries = 2; // resend the same datagram if it was lost
    for (minute, celsius) in [(0, 11.5), (10, 12.25), (20, 14.0)] {
        let reading = Reading {
            station: "harbour".into(),
            minute,
            celsius,
        };
        let stored: usize = client
            .call_typed_with(server.local_addr(), "record", (reading,), options.clone())
            .await?;
        println!("recorded minute {minute}: {stored} reading(s) stored");
    }
    let query = Query {
        station: "harbour".into(),
        from_minute: 10,
    };
    let report: Report = client
        .call_typed_with(server.local_addr(), "report", (query,), options)
        .await?;
    println!("report: {report:?}");
    assert_eq!(report.readings.len(), 2);
    assert_eq!(report.mean_celsius, Some(13.125));
    client.shutdown().await;
    server.shutdown().await;
    Ok(())
}
