//! The iterative lookup, driven: RPCs for the sans-IO [`Lookup`] with alpha in flight.

use super::{is_storable, lock, wire, Contact, Dht, NodeId};
use futures::stream::{FuturesUnordered, StreamExt};
use rmpv::Value;
use rpcudp_proto::kad::{Lookup, LookupConfig, LookupState};
use std::time::Instant;
use wire::FindAnswer;

impl Dht {
    /// The iterative lookup: the k nearest nodes that answered, and for a value lookup
    /// the value if one was found.
    pub(super) async fn lookup(
        &self,
        target: NodeId,
        find_value: bool,
    ) -> (Vec<Contact>, Option<Value>) {
        let started = Instant::now();
        let k = self.inner.config.k.max(1);
        let seeds = {
            let mut table = lock(&self.inner.table);
            table.touch(&target, Instant::now());
            table.closest(&target, k)
        };
        let config = LookupConfig {
            k,
            alpha: self.inner.config.alpha.max(1),
            // The RPC's own timeout reports a silent node first (so it is dropped from
            // the table); the lookup's is only a safety net.
            peer_timeout: self.inner.config.rpc_timeout * 2,
            ..LookupConfig::default()
        };
        let mut lookup = Lookup::new(target, Some(self.inner.id), seeds, config);
        let method = if find_value {
            "find_value"
        } else {
            "find_node"
        };
        let mut in_flight = FuturesUnordered::new();
        let mut found = None;
        loop {
            match lookup.next(Instant::now()) {
                LookupState::Contact(c) => {
                    let node = self.inner.node.clone();
                    let args = vec![wire::id_value(&self.inner.id), wire::id_value(&target)];
                    let options = self.call_options();
                    in_flight.push(async move {
                        (c, node.call_with(c.addr, method, args, options).await)
                    });
                }
                LookupState::Waiting(deadline) => {
                    let sleep = async {
                        match deadline {
                            Some(d) => tokio::time::sleep_until(d.into()).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        answer = in_flight.next() => {
                            let Some((c, answer)) = answer else { continue };
                            let parsed = answer.ok().and_then(|v| wire::parse_find_answer(v, k));
                            self.on_answer(c, parsed.is_some());
                            match parsed {
                                Some(FindAnswer::Value(v)) if find_value && is_storable(&v) => {
                                    found = Some(v);
                                    lookup.finish();
                                }
                                Some(FindAnswer::Contacts(cs)) => {
                                    lookup.on_success(&c.id, cs);
                                }
                                _ => lookup.on_failure(&c.id),
                            }
                        }
                        _ = sleep => {}
                    }
                }
                LookupState::Finished => break,
            }
        }
        let closest = lookup.closest();
        let found_it = found.is_some();
        self.inner
            .lookups
            .record(find_value, closest.len(), found_it, started.elapsed());
        (closest, found)
    }
}
