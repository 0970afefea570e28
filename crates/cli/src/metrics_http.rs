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

/// `1 contact`, `2 contacts`: `n` and the noun, plural unless `n` is 1.
pub fn count(n: u64, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
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
                "{}, {} running, {} in the duplicate cache",
                count(r.calls_in_flight as u64, "call"),
                count(r.handlers_running as u64, "handler"),
                r.dedup_entries
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
                "{}, {}, oldest stored {oldest}",
                count(st.records as u64, "record"),
                count(st.bytes, "byte")
            ),
        );
    }
    if let Some(lookups) = &s.lookups {
        let list: Vec<String> = lookups
            .iter()
            .map(|l| format!("{} {} {}", l.kind, l.outcome, l.count))
            .collect();
        let list = if list.is_empty() {
            "none".into()
        } else {
            list.join(", ")
        };
        line(&mut o, "lookups", list);
    }
    if let Some(t) = &s.routing_table {
        line(
            &mut o,
            "routing table",
            format!(
                "{} in {}",
                count(t.contacts as u64, "contact"),
                count(t.buckets.len() as u64, "bucket")
            ),
        );
        for b in &t.buckets {
            o.push_str(&format!(
                "  bucket {:>3}: {:>12}, oldest seen {} ({}), newest seen {} ({})\n",
                b.bucket,
                count(b.contacts as u64, "contact"),
                b.oldest_seen.address,
                &b.oldest_seen.id[..8.min(b.oldest_seen.id.len())],
                b.newest_seen.address,
                &b.newest_seen.id[..8.min(b.newest_seen.id.len())],
            ));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_singular_for_one_only() {
        assert_eq!(count(0, "contact"), "0 contacts");
        assert_eq!(count(1, "contact"), "1 contact");
        assert_eq!(count(2, "bucket"), "2 buckets");
    }

    #[test]
    fn the_readable_status_says_1_contact_and_lists_the_lookups() {
        let contact =
            r#"{"id": "1a2b3c4d00000000000000000000000000000000", "address": "127.0.0.1:9"}"#;
        let json = format!(
            r#"{{"node_id": null, "bound_address": null, "uptime_seconds": 3.0, "rpc": null,
            "top_drop_reasons": [],
            "routing_table": {{"contacts": 1, "buckets": [{{"bucket": 159, "contacts": 1,
                "oldest_seen": {contact}, "newest_seen": {contact}}}]}},
            "store": {{"records": 1, "bytes": 1, "oldest_stored_unix": null, "oldest_age_seconds": null}},
            "lookups": [{{"kind": "find_node", "outcome": "converged", "count": 2}},
                        {{"kind": "find_value", "outcome": "not_found", "count": 1}}]}}"#
        );
        let text = readable(&serde_json::from_str(&json).unwrap());
        assert!(
            text.contains("routing table    1 contact in 1 bucket\n"),
            "{text}"
        );
        assert!(
            text.contains("bucket 159:    1 contact, oldest seen"),
            "{text}"
        );
        assert!(
            text.contains("store            1 record, 1 byte,"),
            "{text}"
        );
        assert!(
            text.contains("lookups          find_node converged 2, find_value not_found 1\n"),
            "{text}"
        );
        // A view without lookups (an older node) still reads.
        let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
        old.as_object_mut().unwrap().remove("lookups").unwrap();
        let text = readable(&serde_json::from_value(old).unwrap());
        assert!(!text.contains("lookups"), "{text}");
    }
}
