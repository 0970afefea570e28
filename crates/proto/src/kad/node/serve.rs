//! Serving the five DHT methods (`docs/wire.md` §3) the way Python `kademlia`
//! 2.2.3 answers them: `stun`, `ping`, `store`, `find_node`, `find_value`.
//!
//! Owns: argument checks, the answers' shapes, offering the caller as a contact (through
//! verification: see the node's docs), sending a `store` or a big `find_value` from an
//! unproven address to wait for its ping (`probation`) and every answer through its
//! destination's byte budget (`budget`). Does not own: durability (a `store` becomes
//! [`Event::StoreRequested`]) nor the routing table's order.

use super::super::wire;
use super::budget::encoded_len;
use super::probation::{Parked, Waiting};
use super::query::PendingStore;
use super::quota::value_size;
use super::{Event, Node, StoreToken};
use crate::kad::{is_storable, record, Contact, NodeId};
use crate::rpc::{CallId, CallOptions, RequestToken};
use crate::subnet::{is_local, SourceKey};
use rmpv::Value;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// Size of a `find_node` / `find_value` request: header 21, `[method, [id, key]]` 56.
const FIND_REQUEST_BYTES: usize = 77;

/// Most records evicted to make room for one store (a store far bigger than the records
/// it would displace is refused rather than emptying the store).
const MAX_EVICTIONS_PER_STORE: usize = 8;

/// Why a `store` was refused (each counted in its own stat).
enum Refusal {
    TooLarge,
    Share,
    Full,
}

impl Node {
    pub(super) fn serve(
        &mut self,
        now: Instant,
        token: RequestToken,
        from: SocketAddr,
        method: &str,
        args: Vec<Value>,
    ) {
        if self.stopped {
            self.stats.requests_after_stop += 1;
            self.ep.abandon(now, token);
            return;
        }
        let answer = match (method, args.as_slice()) {
            ("stun", []) => Some(wire::stun_value(from)),
            ("ping", [sender]) => match wire::parse_id(sender) {
                Some(id) => {
                    self.welcome(now, id, from, true);
                    Some(wire::id_value(&self.id))
                }
                None => None,
            },
            ("store", [sender, key, value]) => {
                match (wire::parse_id(sender), wire::parse_id(key)) {
                    (Some(id), Some(key)) => {
                        self.welcome(now, id, from, true);
                        if self.config.park_unproven
                            && self.store_source(from).is_some()
                            && !self.ep.is_validated(from)
                        {
                            // Kept only once `from` answers a ping (`probation`). Exempt
                            // local sources (as for the shares) are kept at once, so
                            // `rpcudp call` can still store on a local test node.
                            let request = Parked::Store {
                                key,
                                value: value.clone(),
                            };
                            self.park(now, token, from, request);
                            return;
                        }
                        // The answer comes from `serve_store`, now or once durable.
                        self.serve_store(now, token, from, key, value.clone());
                        return;
                    }
                    _ => None,
                }
            }
            ("find_node" | "find_value", [sender, key]) => {
                match (wire::parse_id(sender), wire::parse_id(key)) {
                    (Some(id), Some(key)) => {
                        let mut pinged = false;
                        if key == id && method == "find_node" && self.config.insert_joining {
                            // Looking up its own id is how a node joins (Kademlia's join,
                            // Python's bootstrap): a node, not a one-shot client, and it
                            // is alive right now. Inserted at once, so the network learns
                            // it without waiting for the verification ping. The answer
                            // to an unvalidated asker leaves room for that ping within 3×
                            // (each new id from one address costs it one).
                            pinged = self.insert_caller(now, id, from, true);
                        } else {
                            // No verification ping on top of a lookup's answer: with
                            // it, a forged find_* from a silent address would get
                            // more than the 3x amplification budget allows.
                            self.welcome(now, id, from, false);
                        }
                        if method == "find_value" && self.config.park_unproven {
                            if let Some(v) = self.records.value(&key, now) {
                                let answer = value_answer(&v);
                                let over = self.ep.amplification_budget(from).is_some_and(|b| {
                                    crate::wire::rpc::HEADER_LEN + encoded_len(&answer) > b
                                });
                                if over {
                                    // Sent once `from` answers a ping (`probation`).
                                    self.park(now, token, from, Parked::FindValue { key });
                                    return;
                                }
                                self.answer(now, token, from, &answer);
                                return;
                            }
                        }
                        let held = (method == "find_value")
                            .then(|| self.records.value(&key, now))
                            .flatten();
                        Some(match held {
                            Some(v) => value_answer(&v),
                            None => self.neighbours(now, &key, from, pinged),
                        })
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        match answer {
            Some(v) => self.answer(now, token, from, &v),
            None => {
                // Unknown method or wrong arguments: the Python peer raises and sends
                // nothing, so the caller times out.
                self.stats.bad_requests += 1;
                self.ep.abandon(now, token);
            }
        }
    }

    /// Answers `token` with `value`, within `to`'s answer budget (`budget`): over it,
    /// the answer is dropped and counted.
    fn answer(&mut self, now: Instant, token: RequestToken, to: SocketAddr, value: &Value) {
        let strict = self.config.endpoint.limits.strict_local;
        if strict || !is_local(to.ip()) {
            let (rate, burst) = (
                self.config.answer_bytes_per_sec,
                self.config.answer_bytes_burst,
            );
            let bytes = crate::wire::rpc::HEADER_LEN + encoded_len(value);
            let ip = crate::subnet::canonical_ip(to.ip());
            if !self.answer_budget.allow(now, ip, bytes, rate, burst) {
                self.stats.answers_dropped_destination_budget += 1;
                self.ep.abandon(now, token);
                return;
            }
        }
        self.respond(now, token, value);
    }

    /// Parks a request until `from` answers a ping (`probation`), starting that ping if
    /// none is in flight; what is given up for room is dropped unanswered and counted.
    fn park(&mut self, now: Instant, token: RequestToken, from: SocketAddr, request: Parked) {
        self.stats.requests_parked += 1;
        let w = Waiting {
            token,
            from,
            request,
        };
        // Exempt local sources (a test network on 127.0.0.1) share only the whole table.
        let per_source = match self.store_source(from) {
            Some(_) => self.config.max_parked_per_source,
            None => self.config.max_parked,
        };
        let parking = self.probation.park(w, per_source, self.config.max_parked);
        for old in parking.evicted.into_iter().chain(parking.refused) {
            self.stats.parked_evicted += 1;
            self.drop_parked(now, old);
        }
        if parking.probe {
            let args = [wire::id_value(&self.id)];
            let options = CallOptions {
                // Resent once: a lost probe would otherwise cost the request.
                attempt_timeout: self.config.initial_rto.min(self.config.rpc_timeout),
                retries: 1,
                backoff: 1.0,
                ..CallOptions::default()
            };
            self.flush_endpoint();
            match self.ep.call(now, from, "ping", &args, options) {
                Ok(call) => self.probation.probe_started(from, call),
                Err(_) => {
                    for w in self.probation.take(from) {
                        self.stats.parked_unproven += 1;
                        self.drop_parked(now, w);
                    }
                }
            }
            self.flush_endpoint();
        }
    }

    /// A waiting request goes unanswered.
    fn drop_parked(&mut self, now: Instant, w: Waiting) {
        if matches!(w.request, Parked::Store { .. }) {
            self.stats.stores_refused_unproven += 1;
        }
        self.ep.abandon(now, w.token);
    }

    /// The probe `call` of `probation` ended (`answered` or not): serves or drops the
    /// requests that waited for it. False if `call` is no probe.
    pub(super) fn probe_ended(&mut self, now: Instant, call: CallId, answered: bool) -> bool {
        let Some(waiting) = self.probation.probe_ended(call) else {
            return false;
        };
        for w in waiting {
            if !answered || self.stopped {
                self.stats.parked_unproven += 1;
                self.drop_parked(now, w);
                continue;
            }
            match w.request {
                Parked::Store { key, value } => self.serve_store(now, w.token, w.from, key, value),
                Parked::FindValue { key } => {
                    let answer = match self.records.value(&key, now) {
                        Some(v) => value_answer(&v),
                        None => self.neighbours(now, &key, w.from, false),
                    };
                    self.answer(now, w.token, w.from, &answer);
                }
            }
        }
        true
    }

    fn serve_store(
        &mut self,
        now: Instant,
        token: RequestToken,
        from: SocketAddr,
        key: NodeId,
        value: Value,
    ) {
        if !is_storable(&value) {
            self.stats.stores_refused_not_storable += 1;
            self.ep.abandon(now, token);
            return;
        }
        let held = self.records.value(&key, now);
        if let Err(refusal) = record::admit(&key, held.as_deref(), &value) {
            // Answered (not abandoned): the storer learns its record was refused.
            self.stats.record_refusals.count(&refusal);
            self.respond(now, token, &Value::Boolean(false));
            return;
        }
        if held.is_some_and(|v| *v == value) {
            // Held already (and durable): a replica or republish changes nothing.
            self.answer(now, token, from, &Value::Boolean(true));
            return;
        }
        let size = value_size(&value);
        let source = self.store_source(from);
        if let Err(refusal) = self.admit_store(&key, size, source) {
            match refusal {
                Refusal::TooLarge => self.stats.stores_refused_too_large += 1,
                Refusal::Share => self.stats.stores_refused_source_share += 1,
                Refusal::Full => self.stats.stores_refused_full += 1,
            }
            self.ep.abandon(now, token);
            return;
        }
        let value = Arc::new(value);
        let expires_at = now + self.config.value_ttl;
        if !self.config.persistence {
            self.keep_copy(now, key, value, now, expires_at, source);
            self.answer(now, token, from, &Value::Boolean(true));
            return;
        }
        let st = StoreToken(self.next_store);
        self.next_store += 1;
        self.stores.insert(
            st,
            PendingStore {
                request: token,
                key,
                value: value.clone(),
                since: now,
                expires_at,
                source,
            },
        );
        self.events.push_back(Event::StoreRequested {
            token: st,
            key,
            value,
            expires_at,
        });
    }

    /// The share a `store` from `from` counts in: its /24 or /64, or none for an exempt
    /// local address.
    fn store_source(&self, from: SocketAddr) -> Option<SourceKey> {
        let strict = self.config.endpoint.limits.strict_local;
        (strict || !is_local(from.ip())).then(|| SourceKey::of(from.ip()))
    }

    /// Whether a store of `size` bytes under `key` from `source` fits: the value cap,
    /// the source's share, then the store's caps, evicting (a bounded number of) the
    /// records this node is least responsible for to make room. O(log n) per eviction.
    fn admit_store(
        &mut self,
        key: &NodeId,
        size: usize,
        source: Option<SourceKey>,
    ) -> Result<(), Refusal> {
        if size > self.config.max_value_bytes {
            return Err(Refusal::TooLarge);
        }
        let replacing = self.records.peek(key).is_some();
        if let Some(s) = source {
            let (records, bytes) = self.records.quota().use_of(&s);
            if (!replacing && records >= self.config.max_records_per_source)
                || bytes + size > self.config.max_bytes_per_source
            {
                return Err(Refusal::Share);
            }
        }
        for _ in 0..MAX_EVICTIONS_PER_STORE {
            let count = self.records.len() + self.stores.len() + usize::from(!replacing);
            let bytes = self.records.quota().total_bytes() + size;
            if count <= self.config.max_records && bytes <= self.config.max_store_bytes {
                return Ok(());
            }
            let Some(victim) = self.records.quota().eviction_candidate() else {
                return Err(Refusal::Full);
            };
            if victim == *key {
                return Err(Refusal::Full);
            }
            self.records.remove(&victim);
            self.stats.records_evicted += 1;
            if self.config.persistence {
                self.events.push_back(Event::RecordRemoved { key: victim });
            }
        }
        Err(Refusal::Full)
    }

    /// The k nearest contacts to `key` that answered us and are not suspect, leaving out
    /// the asker (by address, as Python does) and a contact whose id is `key`. Those not
    /// heard from for `recheck_after` are pinged (a few at a time).
    /// With `pinged`, a ping went to the asker for this request: the answer leaves room
    /// for it within 3×.
    fn neighbours(&mut self, now: Instant, key: &NodeId, asker: SocketAddr, pinged: bool) -> Value {
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
            if self.is_stale(now, &c.addr) {
                self.recheck(now, c.addr, c.id);
            }
        }
        // To an asker that has not proven it receives at its address, the answer is cut
        // to the nearest contacts that fit 3× what it sent (the endpoint would drop a
        // bigger one, or hold it for a ping round trip): its lookup goes on at once, with
        // fewer contacts per answer.
        // At most what one request's bytes allow, even when earlier ones left a surplus:
        // a resend of the request (after a loss) then allows the cached answer again.
        let per_request = (FIND_REQUEST_BYTES * self.config.endpoint.limits.amplification_factor)
            .saturating_sub(if pinged { super::VERIFY_PING_BYTES } else { 0 });
        let budget = self
            .ep
            .amplification_budget(asker)
            .map(|b| b.min(per_request));
        let Some(b) = budget else {
            // Validated: the whole list, no sizes to reckon.
            return Value::Array(list.iter().map(wire::contact_value).collect());
        };
        // id (2 + 20) + ip str (1 + len) + port (≤ 3) + array header (1).
        let sizes: Vec<usize> = list
            .iter()
            .map(|c| 22 + 1 + ip_text_len(c.addr.ip()) + 3 + 1)
            .collect();
        let header = crate::wire::rpc::HEADER_LEN + 3;
        let mut fit = 0;
        let mut used = header;
        for size in &sizes {
            if used + size > b {
                break;
            }
            used += size;
            fit += 1;
        }
        let chosen: Vec<usize> = if fit < list.len() {
            self.stats.find_node_answers_cut += 1;
            // Three quarters of the room go to the nearest, the rest to a random sample
            // of the others: were every cut answer the same nearest few, an unvalidated
            // asker (a one-shot client) would only ever learn those few, its lookup
            // would run out of candidates after about six, and its `set` would store on
            // six nodes instead of k (58 of 100 one-shot sets on 60 nodes reached fewer
            // than 20, the least 6; with this, 21, the least 13). Half and half did
            // better there (2, the least 19) but cost the 10,000-node simulation 4% on
            // its lookup p99 (1058 ms against 1016) and 0.1 hops per lookup.
            let near = fit - fit / 4;
            let rest = list.len() - near;
            let mut picks: Vec<usize> = (0..near).collect();
            picks.extend(
                rand::seq::index::sample(&mut self.rng, rest, (fit - near).min(rest))
                    .into_iter()
                    .map(|i| i + near),
            );
            picks.sort_unstable();
            picks
        } else {
            (0..list.len()).collect()
        };
        let mut used = header;
        let mut out = Vec::with_capacity(chosen.len());
        for i in chosen {
            if used + sizes[i] > b {
                continue;
            }
            used += sizes[i];
            out.push(wire::contact_value(&list[i]));
        }
        Value::Array(out)
    }

    /// A node called us with id `id` from `from`: a known contact moves to most recently
    /// seen; an unknown one (or a known id at a new address) is pinged after
    /// `verify_delay`, and inserted only if it answers.
    fn welcome(&mut self, now: Instant, id: NodeId, from: SocketAddr, ping_now: bool) {
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
        if !self.config.verify_callers {
            // Python's rule: every caller is inserted at once.
            self.insert_caller(now, id, from, ping_now);
            return;
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

    /// Inserts a caller without verification (Python's rule, or a joining node); with
    /// `ping_now`, pings it at once so that it is verified (and handed out) as soon as it
    /// answers. Whether it sent that ping.
    fn insert_caller(
        &mut self,
        now: Instant,
        id: NodeId,
        from: SocketAddr,
        ping_now: bool,
    ) -> bool {
        if id == self.id {
            self.own_id_seen(from);
            return false;
        }
        let contact = Contact::new(id, from);
        let known = self.table.find(&id);
        let outcome = self.table.insert(contact, now);
        self.on_insert(now, contact, known, outcome);
        // Handed out only once verified: ping it now (it just called, so it is there).
        let stored_here = self.table.find(&id).is_some_and(|c| c.addr == from);
        // (Even if a verification is queued for later: it joined, it is there now.)
        if ping_now && stored_here && !self.table.is_verified(&id) {
            self.verify_pending.insert(from);
            let args = [wire::id_value(&self.id)];
            if self
                .send_rpc(
                    now,
                    from,
                    Some(id),
                    "ping",
                    &args,
                    super::query::CallKind::Verify,
                )
                .is_none()
            {
                self.verify_pending.remove(&from);
                return false;
            }
            return true;
        }
        false
    }
}

/// A `find_value` answer carrying `v`.
fn value_answer(v: &Value) -> Value {
    Value::Map(vec![(Value::from("value"), v.clone())])
}

/// The length of `ip` as text (what `ip.to_string().len()` gives), without building the
/// text for an IPv4 address: this runs per contact of every `find_node` answer to an
/// unvalidated asker.
fn ip_text_len(ip: IpAddr) -> usize {
    match ip {
        IpAddr::V4(v4) => {
            let digits = |o: u8| 1 + usize::from(o >= 10) + usize::from(o >= 100);
            3 + v4.octets().into_iter().map(digits).sum::<usize>()
        }
        IpAddr::V6(v6) => v6.to_string().len(),
    }
}

#[cfg(test)]
mod ip_text_tests {
    use super::ip_text_len;
    use std::net::IpAddr;

    #[test]
    fn the_text_length_of_an_address_is_that_of_its_display() {
        for ip in [
            "0.0.0.0",
            "10.0.3.255",
            "127.0.0.1",
            "255.255.255.255",
            "1.22.100.9",
            "::1",
            "fe80::1:2",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text_len(ip), ip.to_string().len(), "{ip}");
        }
    }
}
