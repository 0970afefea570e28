//! Operating a node: Prometheus metrics and a JSON status view, read from snapshots.
//!
//! A [`Metrics`] holds handles to what it reports on (an RPC [`Endpoint`], a [`Dht`], a
//! length-type [`ServerHandle`]) and, at each scrape, reads their snapshots
//! ([`Endpoint::stats`], [`Dht::metrics_snapshot`], [`ServerHandle::stats`]) and turns them
//! into Prometheus metric families ([`Metrics::render`], the classic text format, encoded
//! by the `prometheus` crate) or a [`Status`] ([`Metrics::status`], serialized as JSON).
//! Nothing is counted here: the counters live in the sans-IO core and the drivers, so
//! exporting costs the UDP path nothing but a snapshot copy under a lock at scrape time.
//! [`MetricsServer`] serves both over HTTP on its own thread.
//!
//! It does not own the counters, their meaning (see [`Stats`](crate::rpc::Stats),
//! [`EndpointStats`]) or any per-peer detail: labels are bounded (a reason, an outcome, a
//! bucket index), never a peer address.
//!
//! ```
//! use rpcudp::metrics::Metrics;
//! use rpcudp::rpc::Endpoint;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Endpoint::bind("127.0.0.1:0".parse()?).await?;
//! let metrics = Metrics::new().with_node(&node);
//! let text = metrics.render();
//! assert!(text.contains("# TYPE rpcudp_rpc_datagrams_received_total counter"));
//! assert_eq!(metrics.status().bound_address, Some(node.local_addr()));
//! node.shutdown().await;
//! # Ok(()) }
//! ```

mod families;
mod http;

pub use http::{MetricsServer, MetricsServerConfig};

use crate::kad::{Contact, Dht, DhtSnapshot};
use crate::lt::{ServerHandle, ServerStats};
use crate::rpc::{Endpoint, EndpointStats};
use families::Families;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

type LtSource = Arc<dyn Fn() -> (ServerStats, usize) + Send + Sync>;

/// Where the RPC counters come from: an RPC [`Endpoint`], or a [`Dht`]'s own endpoint.
#[derive(Clone)]
enum RpcSource {
    Endpoint(Endpoint),
    Dht(Dht),
}

impl RpcSource {
    fn stats(&self) -> EndpointStats {
        match self {
            RpcSource::Endpoint(n) => n.stats(),
            RpcSource::Dht(d) => d.stats().rpc,
        }
    }

    fn local_addr(&self) -> SocketAddr {
        match self {
            RpcSource::Endpoint(n) => n.local_addr(),
            RpcSource::Dht(d) => d.local_addr(),
        }
    }
}

/// What to report on, read at each scrape. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    started: Instant,
    node: Option<RpcSource>,
    dht: Option<Dht>,
    lt: Option<LtSource>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("node", &self.node.as_ref().map(RpcSource::local_addr))
            .field("dht", &self.dht.as_ref().map(Dht::id))
            .field("lt", &self.lt.is_some())
            .finish()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Why datagrams or requests were dropped: `(reason label, count)`, every counted drop of
/// an RPC node. A new drop counter in [`Stats`](crate::rpc::Stats) or [`EndpointStats`] gets
/// its row here, and with it a `reason` of `rpcudp_rpc_dropped_total` and a place in the
/// status view's top drop reasons.
pub fn drop_reasons(s: &EndpointStats) -> Vec<(&'static str, u64)> {
    vec![
        ("malformed", s.core.malformed),
        ("unknown_response", s.core.unknown_responses),
        ("spoofed_response", s.core.spoofed_responses),
        ("duplicate_in_progress", s.core.duplicates_in_progress),
        ("duplicate_abandoned", s.core.duplicates_abandoned),
        ("overload", s.core.requests_dropped_overload),
        ("unknown_method", s.unknown_methods),
        ("handler_failed", s.handler_failures),
        ("handler_panicked", s.handler_panics),
        ("unsendable_response", s.core.unsendable_responses),
        ("response_too_large", s.core.responses_too_large),
        ("rate_limited_requests", s.core.requests_rate_limited),
        ("rate_limited_bytes", s.core.bytes_rate_limited),
        ("source_share", s.core.requests_dropped_source_share),
        ("unvalidated_answer", s.core.answers_dropped_unvalidated),
        ("held_answer_dropped", s.core.held_answers_dropped),
        ("preempted", s.core.requests_preempted),
        (
            "destination_budget",
            s.core.answers_dropped_destination_budget,
        ),
    ]
}

impl Metrics {
    /// Reports on nothing yet but its own uptime, counted from now.
    pub fn new() -> Self {
        Metrics {
            started: Instant::now(),
            node: None,
            dht: None,
            lt: None,
        }
    }

    /// Also reports on the RPC node `node` (`rpcudp_rpc_*`).
    pub fn with_node(mut self, node: &Endpoint) -> Self {
        self.node = Some(RpcSource::Endpoint(node.clone()));
        self
    }

    /// Also reports on the DHT node `dht` (`rpcudp_dht_*`) and its RPC node.
    pub fn with_dht(mut self, dht: &Dht) -> Self {
        self.node = Some(RpcSource::Dht(dht.clone()));
        self.dht = Some(dht.clone());
        self
    }

    /// Also reports on the length-type server behind `handle` (`rpcudp_lt_*`).
    pub fn with_lt_server<P: crate::lt::MessageSet>(mut self, handle: &ServerHandle<P>) -> Self {
        let h = handle.clone();
        self.lt = Some(Arc::new(move || (h.stats(), h.live_count())));
        self
    }

    fn families(&self) -> Families {
        let mut f = Families::default();
        f.gauge(
            "rpcudp_uptime_seconds",
            "Seconds since the metrics of this process started.",
            self.started.elapsed().as_secs_f64(),
        );
        if let Some(node) = &self.node {
            rpc_families(&mut f, &node.stats());
        }
        if let Some(dht) = &self.dht {
            dht_families(&mut f, &dht.metrics_snapshot());
            dht_store_families(&mut f, &dht.stats().node);
        }
        if let Some(lt) = &self.lt {
            let (s, live) = lt();
            lt_families(&mut f, &s, live);
        }
        f
    }

    /// Every metric, in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        // The families built here always have a name, a type and samples of that type,
        // which is all the encoder checks; an error would be a bug here, shown as such.
        prometheus::TextEncoder::new()
            .encode_to_string(&self.families().0)
            .unwrap_or_else(|e| format!("# rpcudp: metrics encoding failed: {e}\n"))
    }

    /// The status view (`GET /status`).
    pub fn status(&self) -> Status {
        let stats = self.node.as_ref().map(RpcSource::stats);
        let mut top: Vec<DropCount> = stats
            .as_ref()
            .map(|s| {
                drop_reasons(s)
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(reason, count)| DropCount {
                        reason: reason.to_owned(),
                        count,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(dht) = &self.dht {
            let node = dht.stats().node;
            let dht_drops = store_refusals(&node)
                .into_iter()
                .map(|(r, n)| (r, "store_", n));
            let dht_drops = dht_drops.chain(
                dht_drop_reasons(&node)
                    .into_iter()
                    .map(|(r, n)| (r, "dht_", n)),
            );
            top.extend(
                dht_drops
                    .filter(|(_, _, n)| *n > 0)
                    .map(|(r, prefix, count)| DropCount {
                        reason: format!("{prefix}{r}"),
                        count,
                    }),
            );
        }
        top.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
        top.truncate(5);
        let snapshot = self.dht.as_ref().map(Dht::metrics_snapshot);
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Status {
            node_id: snapshot.as_ref().map(|s| s.id.to_string()),
            bound_address: self.node.as_ref().map(RpcSource::local_addr),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            rpc: stats.as_ref().map(|s| RpcStatus {
                datagrams_in: s.core.datagrams_in,
                datagrams_out: s.core.datagrams_out,
                requests_received: s.core.requests_received,
                responses_sent: s.core.responses_sent,
                calls_in_flight: s.calls_outstanding,
                handlers_running: s.handlers_running,
                dedup_entries: s.dedup_entries,
            }),
            top_drop_reasons: top,
            routing_table: snapshot.as_ref().map(|s| RoutingStatus {
                contacts: s.contacts,
                buckets: s
                    .buckets
                    .iter()
                    .map(|b| BucketStatus {
                        bucket: b.index,
                        contacts: b.contacts,
                        oldest_seen: b.oldest_seen.into(),
                        newest_seen: b.newest_seen.into(),
                    })
                    .collect(),
            }),
            store: snapshot.as_ref().map(|s| StoreStatus {
                records: s.records,
                bytes: s.record_bytes,
                oldest_stored_unix: s.oldest_record_unix,
                oldest_age_seconds: s.oldest_record_unix.map(|t| now_unix.saturating_sub(t)),
            }),
            lookups: snapshot.as_ref().map(|s| {
                let counts = s.lookups.counts.iter();
                counts
                    .map(|(kind, outcome, count)| LookupCount {
                        kind: kind.as_str().to_owned(),
                        outcome: outcome.as_str().to_owned(),
                        count: *count,
                    })
                    .collect()
            }),
        }
    }
}

fn rpc_families(f: &mut Families, s: &EndpointStats) {
    let c = &s.core;
    f.counter(
        "rpcudp_rpc_datagrams_received_total",
        "UDP datagrams received by the RPC node.",
        c.datagrams_in,
    );
    f.counter(
        "rpcudp_rpc_datagrams_sent_total",
        "UDP datagrams sent by the RPC node (requests, resends, answers, cached answers).",
        c.datagrams_out,
    );
    f.counter(
        "rpcudp_rpc_received_bytes_total",
        "UDP payload bytes received by the RPC node.",
        c.bytes_in,
    );
    f.counter(
        "rpcudp_rpc_sent_bytes_total",
        "UDP payload bytes sent by the RPC node.",
        c.bytes_out,
    );
    f.counters_by(
        "rpcudp_rpc_dropped_total",
        "Datagrams and requests dropped without an answer, by reason.",
        "reason",
        &drop_reasons(s),
    );
    f.counter(
        "rpcudp_rpc_requests_received_total",
        "Requests handed to a handler (not counting duplicates).",
        c.requests_received,
    );
    f.counter(
        "rpcudp_rpc_responses_sent_total",
        "Answers sent by handlers (not counting cached answers to duplicates).",
        c.responses_sent,
    );
    f.counter(
        "rpcudp_rpc_requests_abandoned_total",
        "Requests given up without an answer (unknown method, panicked handler, a handler's \
         no-answer error, shutdown). All but shutdown also count in rpcudp_rpc_dropped_total \
         (unknown_method, handler_panicked, handler_failed): one event, two families.",
        c.requests_abandoned,
    );
    f.counter(
        "rpcudp_rpc_duplicates_answered_total",
        "Duplicate requests answered from the cache with the first answer's bytes.",
        c.duplicates_answered,
    );
    f.counter(
        "rpcudp_rpc_calls_started_total",
        "Calls made by this node and accepted.",
        c.calls_started,
    );
    f.counters(
        "rpcudp_rpc_calls_total",
        "Calls made by this node that ended, by outcome.",
        &[
            (&[("outcome", "succeeded")], c.calls_succeeded),
            (&[("outcome", "timed_out")], c.timeouts),
            (&[("outcome", "cancelled")], c.calls_cancelled),
            (
                &[("outcome", "refused_outstanding")],
                c.calls_refused_outstanding,
            ),
            (
                &[("outcome", "refused_too_large")],
                c.calls_refused_too_large,
            ),
            (
                &[("outcome", "refused_unsendable")],
                c.calls_refused_unsendable,
            ),
        ],
    );
    f.counter(
        "rpcudp_rpc_retries_total",
        "Resends of a request (same datagram, same message id).",
        c.retries,
    );
    f.counter(
        "rpcudp_rpc_answers_held_total",
        "Answers over an unvalidated address's budget held while a probe validates it.",
        c.answers_held,
    );
    f.counter(
        "rpcudp_rpc_answers_released_total",
        "Held answers sent once their address was validated.",
        c.answers_released,
    );
    f.counter(
        "rpcudp_rpc_validation_probes_sent_total",
        "Calls sent to prove that an address receives where it says.",
        c.validation_probes_sent,
    );
    f.counter(
        "rpcudp_rpc_addresses_validated_total",
        "Addresses that proved they receive where they say.",
        c.addresses_validated,
    );
    f.counter(
        "rpcudp_rpc_send_errors_total",
        "Datagrams the operating system refused to send.",
        s.send_errors,
    );
    f.counter(
        "rpcudp_rpc_receive_errors_total",
        "Errors reported while receiving (the socket stays in use).",
        s.recv_errors,
    );
    f.counters(
        "rpcudp_rpc_dedup_removed_total",
        "Answered requests forgotten by the duplicate cache, by reason.",
        &[
            (&[("reason", "capacity")], c.dedup_evictions),
            (&[("reason", "expired")], c.dedup_expired),
        ],
    );
    f.gauge(
        "rpcudp_rpc_dedup_entries",
        "Requests remembered by the duplicate cache.",
        s.dedup_entries as f64,
    );
    f.gauge(
        "rpcudp_rpc_dedup_bytes",
        "Bytes of answers held by the duplicate cache.",
        s.dedup_bytes as f64,
    );
    f.gauge(
        "rpcudp_rpc_handlers_running",
        "Handlers running now.",
        s.handlers_running as f64,
    );
    f.gauge(
        "rpcudp_rpc_calls_in_flight",
        "Calls made by this node and not finished.",
        s.calls_outstanding as f64,
    );
    f.histogram(
        "rpcudp_rpc_handler_duration_seconds",
        "Time from a request's arrival to its answer or abandonment.",
        &c.handler_latency,
    );
}

fn dht_families(f: &mut Families, s: &DhtSnapshot) {
    f.gauge(
        "rpcudp_dht_contacts",
        "Contacts in the routing table.",
        s.contacts as f64,
    );
    let names: Vec<String> = s.buckets.iter().map(|b| b.index.to_string()).collect();
    let labels: Vec<[(&str, &str); 1]> = names.iter().map(|n| [("bucket", n.as_str())]).collect();
    let samples: Vec<(&[(&str, &str)], f64)> = labels
        .iter()
        .zip(&s.buckets)
        .map(|(l, b)| (&l[..], b.contacts as f64))
        .collect();
    f.gauges(
        "rpcudp_dht_bucket_contacts",
        "Contacts in each non-empty k-bucket (bucket: highest set bit of the distance).",
        &samples,
    );
    f.gauge(
        "rpcudp_dht_records",
        "Values stored on this node.",
        s.records as f64,
    );
    f.gauge(
        "rpcudp_dht_record_bytes",
        "Bytes of the values stored on this node, as charged against --max-store-bytes (a str or bin: its bytes plus 5; a number or bool: 9).",
        s.record_bytes as f64,
    );
    let labels: Vec<[(&str, &str); 2]> = s
        .lookups
        .counts
        .iter()
        .map(|(k, o, _)| [("kind", k.as_str()), ("outcome", o.as_str())])
        .collect();
    let samples: Vec<(&[(&str, &str)], u64)> = labels
        .iter()
        .zip(&s.lookups.counts)
        .map(|(l, (_, _, n))| (&l[..], *n))
        .collect();
    f.counters(
        "rpcudp_dht_lookups_total",
        "Iterative lookups, by kind (find_node, find_value) and outcome: converged (a \
         find_node that some node answered), no_answer (no node answered), found / not_found \
         (a find_value). A bootstrap that ended at its pings looked nothing up: not counted.",
        &samples,
    );
    f.histogram(
        "rpcudp_dht_lookup_duration_seconds",
        "How long iterative lookups took.",
        &s.lookups.duration,
    );
}

/// Why `store`s were refused: `(reason label, count)`, every counted refusal of a DHT
/// node's store (see [`crate::kad::NodeStats`]). A new refusal counter gets its row here,
/// and with it a `reason` of `rpcudp_dht_stores_refused_total`.
pub fn store_refusals(s: &crate::kad::NodeStats) -> Vec<(&'static str, u64)> {
    let mut rows = vec![
        ("full", s.stores_refused_full),
        ("too_large", s.stores_refused_too_large),
        ("source_share", s.stores_refused_source_share),
        ("not_storable", s.stores_refused_not_storable),
        ("failed", s.stores_failed),
        ("unproven", s.stores_refused_unproven),
    ];
    // Answered `false` by the record rule: forged or malformed records, stale seqs,
    // values over a record (`record_*`).
    rows.extend(s.record_refusals.by_reason());
    rows
}

/// What a DHT node dropped or refused, other than stores: `(reason label, count)`, every
/// such counter of [`crate::kad::NodeStats`]. A new drop counter gets its row here, and
/// with it a `reason` of `rpcudp_dht_dropped_total`.
///
/// ```
/// let mut stats = rpcudp::kad::NodeStats::default();
/// stats.bad_requests = 2;
/// let reasons = rpcudp::metrics::dht_drop_reasons(&stats);
/// assert!(reasons.contains(&("bad_request", 2)));
/// ```
pub fn dht_drop_reasons(s: &crate::kad::NodeStats) -> Vec<(&'static str, u64)> {
    vec![
        ("bad_request", s.bad_requests),
        ("after_stop", s.requests_after_stop),
        ("own_id", s.own_id_contacts),
        ("malformed_answer", s.malformed_answers),
        ("verification_queue_full", s.verifications_dropped),
        ("verification_over_budget", s.verifications_skipped_budget),
        ("handover_queue_full", s.handover_jobs_dropped),
        ("subnet_limit", s.contacts_refused_subnet),
        ("unproven", s.parked_unproven),
        ("parked_evicted", s.parked_evicted),
        ("destination_budget", s.answers_dropped_destination_budget),
    ]
}

fn dht_store_families(f: &mut Families, s: &crate::kad::NodeStats) {
    f.counters_by(
        "rpcudp_dht_stores_refused_total",
        "Stores not acknowledged, by reason: the store full with nothing to evict, a \
         value over the size cap, the source subnet over its share, a value kind Python \
         kademlia does not store, the state file failing to save it, or (answered false) \
         a record that fails verification, a seq not above the held one, a value over a \
         held record, or its address never answering the node's ping (unproven).",
        "reason",
        &store_refusals(s),
    );
    f.counters_by(
        "rpcudp_dht_dropped_total",
        "Kademlia requests, answers and contacts dropped, by reason: a request of the \
         wrong shape or after stop, our own id, an answer of the wrong shape, a caller not \
         verified (queue full, or no room within 3x its bytes), a newcomer given no \
         hand-over (queue full), a contact over its subnet's share of a bucket or table, \
         a request whose address never answered the node's ping (unproven) or given up \
         for a newer one of its subnet (parked_evicted), an answer over its destination's \
         byte budget.",
        "reason",
        &dht_drop_reasons(s),
    );
    let events: [(&str, &str, u64); 6] = [
        (
            "rpcudp_dht_contacts_evicted_total",
            "Contacts evicted after failed RPCs.",
            s.evicted,
        ),
        (
            "rpcudp_dht_records_expired_total",
            "Values expired and removed.",
            s.expired,
        ),
        (
            "rpcudp_dht_handover_stores_total",
            "Values handed over to newcomers.",
            s.handover_stores,
        ),
        (
            "rpcudp_dht_address_checks_total",
            "Known ids heard from a new address (the old address pinged first).",
            s.address_checks,
        ),
        (
            "rpcudp_dht_contacts_moved_total",
            "Contacts moved to a new address after the old one failed its check.",
            s.contacts_moved,
        ),
        (
            "rpcudp_dht_find_node_answers_cut_total",
            "find_node answers cut to fit 3x what an unvalidated asker sent.",
            s.find_node_answers_cut,
        ),
    ];
    for (name, help, n) in events {
        f.counter(name, help, n);
    }
    f.counter(
        "rpcudp_dht_requests_parked_total",
        "Stores and big find_value requests from unproven addresses that waited for the \
         node's ping of the address (kept or answered only if it answered).",
        s.requests_parked,
    );
    f.counter(
        "rpcudp_dht_records_evicted_total",
        "Records given up to make room for a new store (the farthest keys of the source \
         subnet holding the most bytes first).",
        s.records_evicted,
    );
}

fn lt_families(f: &mut Families, s: &ServerStats, live: usize) {
    f.counter(
        "rpcudp_lt_connections_accepted_total",
        "Connections accepted by the length-type server.",
        s.accepted,
    );
    f.counter(
        "rpcudp_lt_connections_rejected_total",
        "Connections refused because the connection limit was reached.",
        s.rejected,
    );
    f.counter(
        "rpcudp_lt_bad_frames_total",
        "Connections closed for a bad frame.",
        s.bad_frames,
    );
    f.counter(
        "rpcudp_lt_dropped_frames_total",
        "Outgoing messages dropped on a full queue.",
        s.dropped_frames,
    );
    f.counter(
        "rpcudp_lt_slow_disconnects_total",
        "Connections closed as slow consumers.",
        s.slow_disconnects,
    );
    f.counters_by(
        "rpcudp_lt_guard_closed_total",
        "Connections closed by the connection limits (ConnLimits), by reason; \
         accept_error counts accept failures.",
        "reason",
        &[
            ("evicted", s.guard.evicted),
            ("idle_timeout", s.guard.idle_timeouts),
            ("frame_timeout", s.guard.frame_timeouts),
            ("over_buffer", s.guard.over_buffer),
            ("accept_error", s.guard.accept_errors),
        ],
    );
    f.gauge(
        "rpcudp_lt_connections",
        "Connections live now.",
        live as f64,
    );
}

/// The status view served at `GET /status`, as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The DHT node id (40 hex digits), for a DHT node.
    pub node_id: Option<String>,
    /// The RPC socket's bound address.
    pub bound_address: Option<SocketAddr>,
    /// Seconds since the metrics started (with the node).
    pub uptime_seconds: f64,
    /// The RPC node's traffic and what is in flight.
    pub rpc: Option<RpcStatus>,
    /// The most frequent drop reasons (at most 5, most first, zero counts left out).
    pub top_drop_reasons: Vec<DropCount>,
    /// The routing table, for a DHT node.
    pub routing_table: Option<RoutingStatus>,
    /// The store, for a DHT node.
    pub store: Option<StoreStatus>,
    /// The lookups so far by kind and outcome (as `rpcudp_dht_lookups_total`), for a
    /// DHT node; missing from a view served by an older version.
    #[serde(default)]
    pub lookups: Option<Vec<LookupCount>>,
}

/// One `(kind, outcome)` of [`Status::lookups`]: the labels of `rpcudp_dht_lookups_total`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupCount {
    /// `find_node` or `find_value`.
    pub kind: String,
    /// `converged`, `no_answer`, `found` or `not_found` ([`crate::kad::LookupOutcome`]).
    pub outcome: String,
    /// How many lookups ended so.
    pub count: u64,
}

/// The RPC part of [`Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcStatus {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Requests handed to handlers.
    pub requests_received: u64,
    /// Answers sent by handlers.
    pub responses_sent: u64,
    /// Calls made by this node and not finished.
    pub calls_in_flight: usize,
    /// Handlers running now.
    pub handlers_running: usize,
    /// Requests remembered by the duplicate cache.
    pub dedup_entries: usize,
}

/// One drop reason and its count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCount {
    /// The `reason` label of `rpcudp_rpc_dropped_total`.
    pub reason: String,
    /// How many were dropped for it.
    pub count: u64,
}

/// The routing-table part of [`Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingStatus {
    /// Contacts in the table.
    pub contacts: usize,
    /// Non-empty buckets, farthest first.
    pub buckets: Vec<BucketStatus>,
}

/// One bucket of [`RoutingStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketStatus {
    /// The bucket index (highest set bit of the distance; 159 is the farthest half).
    pub bucket: usize,
    /// Contacts in it.
    pub contacts: usize,
    /// Its least recently seen contact.
    pub oldest_seen: ContactStatus,
    /// Its most recently seen contact.
    pub newest_seen: ContactStatus,
}

/// A contact in [`BucketStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactStatus {
    /// Its node id (40 hex digits).
    pub id: String,
    /// Where it answers.
    pub address: SocketAddr,
}

impl From<Contact> for ContactStatus {
    fn from(c: Contact) -> Self {
        ContactStatus {
            id: c.id.to_string(),
            address: c.addr,
        }
    }
}

/// The store part of [`Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    /// Values stored here.
    pub records: usize,
    /// Their bytes as charged against the store's byte cap (a str or bin: its bytes
    /// plus 5; a number or bool: 9).
    pub bytes: u64,
    /// When the oldest was stored (or republished), Unix seconds.
    pub oldest_stored_unix: Option<u64>,
    /// How long ago that was, in seconds.
    pub oldest_age_seconds: Option<u64>,
}
