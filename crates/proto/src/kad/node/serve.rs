//! Serving the five DHT methods (`shared/spec/wire.md` §3) the way Python `kademlia`
//! 2.2.3 answers them: `stun`, `ping`, `store`, `find_node`, `find_value`.
//!
//! Owns: argument checks, the answers' shapes, offering the caller as a contact (through
//! verification: see the node's docs). Does not own: durability (a `store` becomes
//! [`Event::StoreRequested`]) nor the routing table's order.

use super::super::wire;
use super::query::PendingStore;
use super::{Event, Node, StoreToken};
use crate::kad::{is_storable, Contact, NodeId};
use crate::rpc::RequestToken;
use rmpv::Value;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

impl Node {
    pub(super) fn serve(
        &mut self,
        now: Instant,
        token: RequestToken,
        from: SocketAddr,
        local: Option<IpAddr>,
        method: &str,
        args: Vec<Value>,
    ) {
        if self.stopped {
            self.stats.requests_after_stop += 1;
            self.ep.abandon(token);
            return;
        }
        let answer = match (method, args.as_slice()) {
            ("stun", []) => Some(wire::stun_value(from)),
            ("ping", [sender]) => match wire::parse_id(sender) {
                Some(id) => {
                    self.welcome(now, id, from);
                    Some(wire::id_value(&self.id))
                }
                None => None,
            },
            ("store", [sender, key, value]) => {
                match (wire::parse_id(sender), wire::parse_id(key)) {
                    (Some(id), Some(key)) => {
                        self.welcome(now, id, from);
                        // The answer comes from `serve_store`, now or once durable.
                        self.serve_store(now, token, local, key, value.clone());
                        return;
                    }
                    _ => None,
                }
            }
            ("find_node" | "find_value", [sender, key]) => {
                match (wire::parse_id(sender), wire::parse_id(key)) {
                    (Some(id), Some(key)) => {
                        self.welcome(now, id, from);
                        let held = (method == "find_value")
                            .then(|| self.records.get(&key, now).map(|h| h.value.clone()))
                            .flatten();
                        Some(match held {
                            Some(v) => Value::Map(vec![(Value::from("value"), (*v).clone())]),
                            None => self.neighbours(now, &key, from),
                        })
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        match answer {
            Some(v) => self.respond(now, token, &v, local),
            None => {
                // Unknown method or wrong arguments: the Python peer raises and sends
                // nothing, so the caller times out.
                self.stats.bad_requests += 1;
                self.ep.abandon(token);
            }
        }
    }

    fn serve_store(
        &mut self,
        now: Instant,
        token: RequestToken,
        local: Option<IpAddr>,
        key: NodeId,
        value: Value,
    ) {
        if !is_storable(&value) {
            self.stats.stores_refused_not_storable += 1;
            self.ep.abandon(token);
            return;
        }
        if let Some(h) = self.records.get(&key, now) {
            if *h.value == value {
                // Held already (and durable): a replica or republish changes nothing.
                self.respond(now, token, &Value::Boolean(true), local);
                return;
            }
        } else if self.records.len() + self.stores.len() >= self.config.max_records {
            self.stats.stores_refused_full += 1;
            self.ep.abandon(token);
            return;
        }
        let value = Arc::new(value);
        let expires_at = now + self.config.value_ttl;
        if !self.config.persistence {
            self.keep_copy(now, key, value, now, expires_at);
            self.respond(now, token, &Value::Boolean(true), local);
            return;
        }
        let st = StoreToken(self.next_store);
        self.next_store += 1;
        self.stores.insert(
            st,
            PendingStore {
                request: token,
                local,
                key,
                value: value.clone(),
                since: now,
                expires_at,
            },
        );
        self.events.push_back(Event::StoreRequested {
            token: st,
            key,
            value,
            expires_at,
        });
    }

    /// The k nearest contacts to `key` that answered us and are not suspect, leaving out
    /// the asker (by address, as Python does) and a contact whose id is `key`. Those not
    /// heard from for `recheck_after` are pinged (a few at a time).
    fn neighbours(&mut self, now: Instant, key: &NodeId, asker: SocketAddr) -> Value {
        let list = {
            let peers = &self.peers;
            self.table
                .closest_verified_filtered(key, self.config.k, |c| {
                    c.addr != asker
                        && c.id != *key
                        && !peers.get(&c.addr).is_some_and(|p| p.suspect)
                })
        };
        for c in &list {
            if self.rechecks_in_flight >= super::MAX_RECHECKS {
                break;
            }
            let stale = self.peers.get(&c.addr).is_none_or(|p| {
                !p.recheck_in_flight
                    && p.last_seen.is_none_or(|t| {
                        now.saturating_duration_since(t) >= self.config.recheck_after
                    })
            });
            if stale {
                let args = [wire::id_value(&self.id)];
                if self
                    .send_rpc(
                        now,
                        c.addr,
                        Some(c.id),
                        "ping",
                        &args,
                        super::query::CallKind::Recheck,
                    )
                    .is_some()
                {
                    self.rechecks_in_flight += 1;
                    self.peer(c.addr).recheck_in_flight = true;
                }
            }
        }
        Value::Array(list.iter().map(wire::contact_value).collect())
    }

    /// A node called us with id `id` from `from`: a known contact moves to most recently
    /// seen; an unknown one (or a known id at a new address) is pinged after
    /// `verify_delay`, and inserted only if it answers.
    fn welcome(&mut self, now: Instant, id: NodeId, from: SocketAddr) {
        if id == self.id {
            self.own_id_seen(from);
            return;
        }
        if let Some(known) = self.table.find(&id) {
            if known.addr == from {
                let outcome = self.table.insert(known, now);
                self.on_insert(now, known, Some(known), outcome);
                return;
            }
        }
        if self.verify_pending.contains(&from) {
            return;
        }
        if self.verify_queue.len() >= self.config.max_pending_verifications {
            self.stats.verifications_dropped += 1;
            return;
        }
        self.verify_pending.insert(from);
        self.verify_queue
            .push_back((now + self.config.verify_delay, Contact::new(id, from)));
    }
}
