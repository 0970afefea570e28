//! The CLI side of metrics: `--metrics ADDR` on `serve` and `dht run` (start the
//! listener of [`rpcudp::metrics::MetricsServer`], print `metrics on IP:PORT`), and
//! `rpcudp dht status`, which fetches `GET /status` and prints it readably.
//!
//! What is measured and how it is served is the library's (`rpcudp::metrics`); this file
//! only wires flags to it and formats the status for a terminal.

use crate::common::{self, HostPort};
use rpcudp::metrics::{Metrics, MetricsServer, Status};
use std::io::Write;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Binds the metrics listener on `addr` (if given) and prints `metrics on IP:PORT`.
/// `Ok(None)` without `--metrics`; the exit code after printing the error otherwise.
pub async fn start(addr: Option<&HostPort>, metrics: Metrics) -> Result<Option<MetricsServer>, u8> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let bind = crate::cmd::call::resolve(addr).await?;
    match MetricsServer::start(bind, metrics) {
        Ok(server) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "metrics on {}", server.local_addr());
            let _ = out.flush();
            Ok(Some(server))
        }
        Err(e) => {
            eprintln!("error: cannot serve metrics on {addr}: {e}");
            Err(common::EXIT_FAILURE)
        }
    }
}

/// Arguments of `rpcudp dht status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The `--metrics` address of the node (`IP:PORT`).
    #[arg(long)]
    pub metrics_addr: HostPort,
    /// Print the JSON as served instead of the readable form.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the answer.
    #[arg(long, default_value = "5", value_parser = crate::cmd::call::parse_secs)]
    pub timeout: Duration,
}

/// The largest status answer read (a full table of 160 buckets is far below it).
const MAX_STATUS: usize = 4 << 20;

/// Runs `rpcudp dht status`: exit 0 with the status printed, 1 if the node cannot be
/// reached or answers something else, 2 for an unusable address.
pub async fn status(args: StatusArgs) -> u8 {
    let addr = match crate::cmd::call::resolve(&args.metrics_addr).await {
        Ok(a) => a,
        Err(code) => return code,
    };
    let fetched = tokio::time::timeout(args.timeout, async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut raw = Vec::new();
        (&mut s)
            .take(MAX_STATUS as u64)
            .read_to_end(&mut raw)
            .await?;
        Ok::<_, std::io::Error>(raw)
    })
    .await;
    let raw = match fetched {
        Ok(Ok(raw)) => raw,
        Ok(Err(e)) => {
            eprintln!("error: cannot fetch http://{addr}/status: {e}");
            return common::EXIT_FAILURE;
        }
        Err(_) => {
            eprintln!(
                "error: no answer from http://{addr}/status within {:?}",
                args.timeout
            );
            return common::EXIT_FAILURE;
        }
    };
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        eprintln!("error: http://{addr}/status: not an HTTP answer");
        return common::EXIT_FAILURE;
    };
    if !head.starts_with("HTTP/1.1 200") {
        let line = head.lines().next().unwrap_or("");
        eprintln!("error: http://{addr}/status answered {line}");
        return common::EXIT_FAILURE;
    }
    let status: Status = match serde_json::from_str(body) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: http://{addr}/status: not a status view: {e}");
            return common::EXIT_FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = if args.json {
        writeln!(out, "{}", body.trim_end())
    } else {
        out.write_all(readable(&status).as_bytes())
    };
    let _ = out.flush();
    common::EXIT_OK
}

/// The status as aligned lines for a terminal.
pub fn readable(s: &Status) -> String {
    fn line(o: &mut String, k: &str, v: String) {
        o.push_str(&format!("{k:<16} {v}\n"));
    }
    let mut o = String::new();
    if let Some(id) = &s.node_id {
        line(&mut o, "node id", id.clone());
    }
    if let Some(a) = s.bound_address {
        line(&mut o, "bound address", a.to_string());
    }
    line(&mut o, "uptime", format!("{:.0} s", s.uptime_seconds));
    if let Some(r) = &s.rpc {
        line(
            &mut o,
            "datagrams",
            format!("{} in, {} out", r.datagrams_in, r.datagrams_out),
        );
        line(
            &mut o,
            "requests",
            format!(
                "{} received, {} answered",
                r.requests_received, r.responses_sent
            ),
        );
        line(
            &mut o,
            "in flight",
            format!(
                "{} calls, {} handlers running, {} in the duplicate cache",
                r.calls_in_flight, r.handlers_running, r.dedup_entries
            ),
        );
    }
    if s.top_drop_reasons.is_empty() {
        line(&mut o, "drops", "none".into());
    } else {
        let list: Vec<String> = s
            .top_drop_reasons
            .iter()
            .map(|d| format!("{} {}", d.reason, d.count))
            .collect();
        line(&mut o, "top drops", list.join(", "));
    }
    if let Some(st) = &s.store {
        let oldest = st
            .oldest_age_seconds
            .map_or("none".to_owned(), |a| format!("{a} s ago"));
        line(
            &mut o,
            "store",
            format!(
                "{} records, {} bytes, oldest stored {oldest}",
                st.records, st.bytes
            ),
        );
    }
    if let Some(t) = &s.routing_table {
        line(
            &mut o,
            "routing table",
            format!("{} contacts in {} buckets", t.contacts, t.buckets.len()),
        );
        for b in &t.buckets {
            o.push_str(&format!(
                "  bucket {:>3}: {:>3} contacts, oldest seen {} ({}), newest seen {} ({})\n",
                b.bucket,
                b.contacts,
                b.oldest_seen.address,
                &b.oldest_seen.id[..8.min(b.oldest_seen.id.len())],
                b.newest_seen.address,
                &b.newest_seen.id[..8.min(b.newest_seen.id.len())],
            ));
        }
    }
    o
}
