//! The node's queries: `bootstrap`, `set`, `get` and its own refresh, republish and
//! replication, each a small state machine over the RPCs it made.
//!
//! Owns: what each outstanding RPC is for ([`Pending`]), the phases of a query and their
//! ends. Does not own: the lookup's candidate order ([`Lookup`](crate::kad::Lookup)) nor the serving of
//! requests (`serve`).

use super::super::wire::{self, FindAnswer};
use super::{Event, Node, QueryId, QueryOutcome, QueryStats};
use crate::kad::lookup::{Lookup, LookupConfig, LookupState};
use crate::kad::{is_storable, Contact, NodeId};
use crate::rpc::{CallId, RequestToken};
use rmpv::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Times a `get` or `set` whose lookup heard from nobody is run again (each within
/// `rpc_timeout`): at 20% loss each way an RPC's three sends are all lost 5% of the time.
const COMMAND_RELOOKUPS: u32 = 2;

/// What an outstanding RPC is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// A bootstrap ping of an address.
    BootstrapPing(QueryId),
    /// A `find_node` / `find_value` of a lookup.
    Find(QueryId),
    /// A `store` of a set, republish or replication.
    Store(QueryId),
    /// A `store` nobody waits for (hand-over, a get's copy to the nearest without it).
    LooseStore { handover: bool },
    /// The ping of a node that called us, to insert it if it answers.
    Verify,
    /// The ping of a full bucket's oldest contact.
    PingOldest,
    /// The ping of a contact's stored address, because its id was heard from another
    /// address (the table moves it only if this goes unanswered).
    CheckAddress,
    /// The ping of a handed-out contact not heard from for a while.
    Recheck,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    pub kind: CallKind,
    pub to: SocketAddr,
    pub id: Option<NodeId>,
    pub sent: Instant,
    pub seq: u64,
    /// When the same datagram is resent, if it is: an answer before then is a clean
    /// round-trip sample (Karn's rule), one after it is not.
    pub resend_at: Option<Instant>,
}

/// A `store` waiting for the driver's durability.
#[derive(Clone, Debug)]
pub(crate) struct PendingStore {
    pub request: RequestToken,
    pub key: NodeId,
    pub value: Arc<Value>,
    pub since: Instant,
    pub expires_at: Instant,
    /// The storer's subnet, for its share (`None`: exempt).
    pub source: Option<crate::subnet::SourceKey>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    Bootstrap,
    /// Bootstrap's pings without its lookup.
    Introduce,
    Set,
    Get,
    Refresh,
    Republish,
    Replicate,
}

impl Purpose {
    /// Whether a user command started it (it ends with an event).
    pub fn is_command(self) -> bool {
        matches!(
            self,
            Purpose::Bootstrap | Purpose::Introduce | Purpose::Set | Purpose::Get
        )
    }
}

#[derive(Debug)]
pub(crate) enum Phase {
    Ping {
        waiting: usize,
        answered: usize,
    },
    Lookup(Box<Lookup>),
    Store {
        /// Stores not yet answered whose RTO has not passed (or has, while none was
        /// acknowledged: see `overdue`).
        waiting: HashMap<CallId, NodeId>,
        /// Stores past their RTO kept waiting because nothing was acknowledged yet: under
        /// heavy loss the acknowledgement of a resend is all the set may get. Dropped
        /// from `waiting` at the first acknowledgement.
        overdue: Vec<CallId>,
        acks: usize,
        stored_locally: bool,
        hops: u32,
    },
}

#[derive(Debug)]
pub(crate) struct Query {
    pub purpose: Purpose,
    pub started: Instant,
    pub messages: u32,
    pub key: NodeId,
    pub value: Option<Arc<Value>>,
    pub phase: Phase,
    /// Bootstrap: the addresses that answered the pings.
    pub answered: usize,
    /// Bootstrap: lookups of our own id run again because one found nobody.
    pub relookups: u32,
    /// A get of a signed or immutable record: what verifies so far (`signed`).
    pub record: Option<Box<super::signed::RecordGet>>,
}

impl Node {
    fn new_query(
        &mut self,
        now: Instant,
        purpose: Purpose,
        key: NodeId,
        value: Option<Arc<Value>>,
        phase: Phase,
    ) -> QueryId {
        let id = self.fresh_query_id();
        if !purpose.is_command() {
            self.maintenance_running += 1;
        }
        self.queries.insert(
            id,
            Query {
                purpose,
                started: now,
                messages: 0,
                key,
                value,
                phase,
                answered: 0,
                relookups: 0,
                record: None,
            },
        );
        id
    }

    fn new_lookup(&mut self, now: Instant, target: NodeId, purpose: Purpose) -> Box<Lookup> {
        let k = self.config.k;
        self.table.touch(&target, now);
        let seeds = {
            let peers = &self.peers;
            let live = self.table.closest_filtered(&target, k, |c| {
                !peers.get(&c.addr).is_some_and(|p| p.suspect)
            });
            if live.len() >= self.config.alpha {
                live
            } else {
                // Too few contacts above suspicion (a small table after a lost datagram):
                // a suspect may well be alive, and is better than no lookup at all.
                self.table.closest(&target, k)
            }
        };
        let config = LookupConfig {
            k,
            alpha: self.config.alpha,
            peer_timeout: self.config.rpc_timeout,
            // A set stores on the k nearest that answered, so its lookup must hear from
            // all of them: once converged it asks the rest of them at once instead of
            // alpha at a time (issue 9 §4, simulator: a one-shot set's lookup was 5-9
            // rounds of alpha, most of the set's time).
            final_alpha: if purpose == Purpose::Set { k } else { 0 },
            late_grace: if purpose == Purpose::Get {
                super::LATE_GRACE
            } else {
                0
            },
            paths: match purpose {
                Purpose::Bootstrap | Purpose::Introduce | Purpose::Refresh => 1,
                Purpose::Get | Purpose::Set | Purpose::Republish | Purpose::Replicate => {
                    self.config.lookup_paths
                }
            },
            ..LookupConfig::default()
        };
        Box::new(Lookup::new(target, Some(self.id), seeds, config))
    }

    pub(super) fn start_bootstrap(&mut self, now: Instant, addrs: &[SocketAddr]) -> QueryId {
        self.start_pings(now, addrs, Purpose::Bootstrap)
    }

    /// Pings `addrs`; a bootstrap then looks up its own id, an introduction ends.
    pub(super) fn start_pings(
        &mut self,
        now: Instant,
        addrs: &[SocketAddr],
        purpose: Purpose,
    ) -> QueryId {
        let q = self.new_query(
            now,
            purpose,
            self.id,
            None,
            Phase::Ping {
                waiting: 0,
                answered: 0,
            },
        );
        let args = [wire::id_value(&self.id)];
        let mut sent = 0;
        for addr in addrs {
            if self
                .send_rpc(now, *addr, None, "ping", &args, CallKind::BootstrapPing(q))
                .is_some()
            {
                sent += 1;
            }
        }
        if let Some(query) = self.queries.get_mut(&q) {
            query.messages += sent;
            query.phase = Phase::Ping {
                waiting: sent as usize,
                answered: 0,
            };
        }
        self.drive(now, q);
        q
    }

    pub(super) fn start_get(&mut self, now: Instant, key: NodeId) -> QueryId {
        self.start_record_get(now, key, None)
    }

    /// A get whose answers go through `record` (a signed or immutable record's), if any.
    pub(super) fn start_record_get(
        &mut self,
        now: Instant,
        key: NodeId,
        record: Option<Box<super::signed::RecordGet>>,
    ) -> QueryId {
        let lookup = self.new_lookup(now, key, Purpose::Get);
        let q = self.new_query(now, Purpose::Get, key, None, Phase::Lookup(lookup));
        if let Some(query) = self.queries.get_mut(&q) {
            query.record = record;
        }
        self.drive(now, q);
        q
    }

    pub(super) fn start_refresh(&mut self, now: Instant, target: NodeId) -> QueryId {
        let lookup = self.new_lookup(now, target, Purpose::Refresh);
        let q = self.new_query(now, Purpose::Refresh, target, None, Phase::Lookup(lookup));
        self.drive(now, q);
        q
    }

    /// A lookup of `key`, then `store` on the nearest: set, republish, replicate.
    pub(super) fn start_store_query(
        &mut self,
        now: Instant,
        key: NodeId,
        value: Arc<Value>,
        purpose: Purpose,
    ) -> QueryId {
        let lookup = self.new_lookup(now, key, purpose);
        let q = self.new_query(now, purpose, key, Some(value), Phase::Lookup(lookup));
        self.drive(now, q);
        q
    }

    /// An RPC ended: `answer` is its value, or `None` if it failed.
    pub(super) fn on_answer(&mut self, now: Instant, call: CallId, answer: Option<Value>) {
        if self.probe_ended(now, call, answer.is_some()) {
            return;
        }
        let Some(p) = self.calls.remove(&call) else {
            return;
        };
        self.rto_calls.remove(&p.seq);
        let rtt = now.saturating_duration_since(p.sent);
        // Only an answer that came before any resend measures the round trip.
        let sample = p.resend_at.is_none_or(|at| now < at).then_some(rtt);
        match p.kind {
            CallKind::BootstrapPing(q) => {
                let id = answer.as_ref().and_then(wire::parse_id);
                match id {
                    // Only an answer before any resend is a sample (Karn's rule).
                    Some(id) => self.contact_answered(now, Contact::new(id, p.to), sample),
                    None => {
                        if answer.is_some() {
                            self.stats.malformed_answers += 1;
                        }
                    }
                }
                let ok = id.is_some_and(|id| id != self.id);
                if let Some(Query {
                    phase: Phase::Ping { waiting, answered },
                    ..
                }) = self.queries.get_mut(&q)
                {
                    *waiting = waiting.saturating_sub(1);
                    if ok {
                        *answered += 1;
                    }
                }
                self.drive(now, q);
            }
            CallKind::Find(q) => {
                let id = p.id.unwrap_or(self.id);
                let parsed = answer.map(|v| wire::parse_find_answer(v, self.config.k));
                match parsed {
                    Some(Some(found)) => {
                        let from = Contact::new(id, p.to);
                        self.contact_answered(now, from, sample);
                        if !self.on_record_answer(now, q, from, &found) {
                            self.on_find_answer(now, q, id, found);
                        }
                    }
                    Some(None) => {
                        // It answered (it lives) but not with a find answer.
                        self.stats.malformed_answers += 1;
                        self.contact_answered(now, Contact::new(id, p.to), sample);
                        if let Some(Phase::Lookup(l)) =
                            self.queries.get_mut(&q).map(|q| &mut q.phase)
                        {
                            l.on_failure(&id);
                        }
                    }
                    None => {
                        self.contact_failed(now, p.id, p.to);
                        if let Some(Phase::Lookup(l)) =
                            self.queries.get_mut(&q).map(|q| &mut q.phase)
                        {
                            l.on_failure(&id);
                        }
                    }
                }
                self.drive(now, q);
            }
            CallKind::Store(q) => {
                let acked = matches!(answer, Some(Value::Boolean(true)));
                match (answer.is_some(), p.id) {
                    (true, Some(id)) => self.contact_answered(now, Contact::new(id, p.to), sample),
                    (false, _) => self.contact_failed(now, p.id, p.to),
                    _ => {}
                }
                if let Some(Phase::Store {
                    waiting,
                    overdue,
                    acks,
                    ..
                }) = self.queries.get_mut(&q).map(|q| &mut q.phase)
                {
                    if waiting.remove(&call).is_some() && acked {
                        *acks += 1;
                    }
                    if *acks > 0 {
                        for c in overdue.drain(..) {
                            waiting.remove(&c);
                        }
                    }
                }
                self.drive(now, q);
            }
            CallKind::LooseStore { handover } => {
                if handover {
                    self.handover.in_flight = self.handover.in_flight.saturating_sub(1);
                }
                match (answer.is_some(), p.id) {
                    (true, Some(id)) => self.contact_answered(now, Contact::new(id, p.to), sample),
                    (false, _) => self.contact_failed(now, p.id, p.to),
                    _ => {}
                }
            }
            CallKind::Verify | CallKind::Recheck => {
                if p.kind == CallKind::Verify {
                    // A ping sent at once (`insert_caller`) is pending until it ends.
                    self.verify_pending.remove(&p.to);
                }
                if p.kind == CallKind::Recheck {
                    self.rechecks_in_flight = self.rechecks_in_flight.saturating_sub(1);
                    if let Some(info) = self.peers.get_mut(&p.to) {
                        info.recheck_in_flight = false;
                    }
                    self.recheck_next_queued(now);
                }
                match answer.as_ref().map(wire::parse_id) {
                    Some(Some(id)) if Some(id) == p.id || p.id.is_none() => {
                        self.contact_answered(now, Contact::new(id, p.to), sample)
                    }
                    Some(Some(id)) if id == self.id => self.own_id_seen(p.to),
                    // Another id answers there: the caller lied about its id, or the
                    // address changed hands. Not inserted under the claimed id.
                    Some(_) => self.stats.malformed_answers += 1,
                    None => self.contact_failed(now, p.id, p.to),
                }
            }
            CallKind::CheckAddress => {
                let Some(id) = p.id else { return };
                let alive = answer.as_ref().and_then(wire::parse_id) == Some(id);
                if alive {
                    if let Some(info) = self.peers.get_mut(&p.to) {
                        info.failures = 0;
                        info.suspect = false;
                        info.last_seen = Some(now);
                        info.rtt.sample(rtt);
                    }
                }
                match self.table.on_address_check(&id, alive) {
                    Some(moved) => {
                        self.stats.contacts_moved += 1;
                        self.peers.remove(&p.to);
                        self.contact_event(Event::ContactAdded(moved));
                    }
                    None if !alive && !self.table.contains(&id) => {
                        // Old address silent, new one's subnet full: dropped.
                        self.peers.remove(&p.to);
                        self.contact_event(Event::ContactRemoved(id));
                    }
                    None => {}
                }
            }
            CallKind::PingOldest => {
                let Some(oldest) = p.id else { return };
                let alive = answer.as_ref().and_then(wire::parse_id) == Some(oldest);
                if alive {
                    if let Some(info) = self.peers.get_mut(&p.to) {
                        info.failures = 0;
                        info.suspect = false;
                        info.last_seen = Some(now);
                        if let Some(rtt) = sample {
                            info.rtt.sample(rtt);
                        }
                    }
                    self.table.on_ping_result(&oldest, true);
                } else {
                    let promoted = self.table.on_ping_result(&oldest, false);
                    self.stats.evicted += 1;
                    self.peers.remove(&p.to);
                    self.contact_event(Event::ContactRemoved(oldest));
                    if let Some(c) = promoted {
                        self.contact_event(Event::ContactAdded(c));
                        self.start_handover(c);
                    }
                }
            }
        }
    }

    fn on_find_answer(&mut self, now: Instant, q: QueryId, from: NodeId, found: FindAnswer) {
        let Some(query) = self.queries.get_mut(&q) else {
            return;
        };
        let Phase::Lookup(lookup) = &mut query.phase else {
            return;
        };
        match found {
            FindAnswer::Value(v) if query.purpose == Purpose::Get && is_storable(&v) => {
                let hops = lookup.depth_of(&from).unwrap_or(1);
                lookup.finish();
                // As Python's value lookup: the nearest node that answered without the
                // value gets a copy, so the next lookup ends sooner.
                let nearest = lookup.closest().into_iter().find(|c| c.id != from);
                let key = query.key;
                if let Some(c) = nearest {
                    let args = [wire::id_value(&self.id), wire::id_value(&key), v.clone()];
                    if self
                        .send_rpc(
                            now,
                            c.addr,
                            Some(c.id),
                            "store",
                            &args,
                            CallKind::LooseStore { handover: false },
                        )
                        .is_some()
                    {
                        if let Some(query) = self.queries.get_mut(&q) {
                            query.messages += 1;
                        }
                    }
                }
                self.finish(now, q, Ok(QueryOutcome::Get { value: Some(v) }), hops);
            }
            FindAnswer::Value(_) => {
                // A value where contacts were asked for: no candidates from it.
                lookup.on_success(&from, []);
            }
            FindAnswer::Contacts(cs) => {
                lookup.on_success(&from, cs);
            }
        }
    }

    /// A call's RTO passed without an answer: its lookup (or set) stops waiting for it.
    pub(super) fn on_rto(&mut self, now: Instant, call: CallId) {
        let Some(p) = self.calls.get(&call).copied() else {
            return;
        };
        if let Some(info) = self.peers.get_mut(&p.to) {
            info.suspect = true;
        }
        match p.kind {
            CallKind::Find(q) => self.drive(now, q),
            CallKind::Store(q) => {
                if let Some(Phase::Store {
                    waiting,
                    overdue,
                    acks,
                    ..
                }) = self.queries.get_mut(&q).map(|q| &mut q.phase)
                {
                    if *acks > 0 {
                        waiting.remove(&call);
                    } else if waiting.contains_key(&call) {
                        overdue.push(call);
                    }
                }
                self.drive(now, q);
            }
            _ => {}
        }
    }

    /// Advances query `q` as far as it goes now.
    pub(super) fn drive(&mut self, now: Instant, q: QueryId) {
        // Each round either sends an RPC, waits, or changes phase; a phase change
        // happens at most twice, so the loop is bounded by the RPCs it may send.
        for _ in 0..1024 {
            let Some(query) = self.queries.get_mut(&q) else {
                return;
            };
            match &mut query.phase {
                Phase::Ping { waiting, answered } => {
                    if *waiting > 0 {
                        return;
                    }
                    let answered = *answered;
                    query.answered = answered;
                    if answered == 0 || self.table.is_empty() || query.purpose == Purpose::Introduce
                    {
                        self.finish(
                            now,
                            q,
                            Ok(QueryOutcome::Bootstrap {
                                answered,
                                contacts: Vec::new(),
                            }),
                            0,
                        );
                        return;
                    }
                    let lookup = self.new_lookup(now, self.id, Purpose::Bootstrap);
                    if let Some(query) = self.queries.get_mut(&q) {
                        query.phase = Phase::Lookup(lookup);
                    }
                }
                Phase::Lookup(lookup) => {
                    let (peers, rto, all, n) =
                        (&self.peers, &self.rto, &self.rtt_all, self.rtt_samples);
                    // The same wait as the call's timer (`send_rpc`), which wakes us then.
                    let state = lookup.next_with(now, |c| {
                        super::lookup_wait_from(peers, rto, all, n, &c.addr)
                    });
                    match state {
                        LookupState::Contact(c) => {
                            let method = if query.purpose == Purpose::Get {
                                "find_value"
                            } else {
                                "find_node"
                            };
                            let args = [wire::id_value(&self.id), wire::id_value(&query.key)];
                            query.messages += 1;
                            if self
                                .send_rpc(now, c.addr, Some(c.id), method, &args, CallKind::Find(q))
                                .is_none()
                            {
                                if let Some(Phase::Lookup(l)) =
                                    self.queries.get_mut(&q).map(|q| &mut q.phase)
                                {
                                    l.on_failure(&c.id);
                                }
                            }
                        }
                        LookupState::Waiting(_) => return,
                        LookupState::Finished => {
                            let closest = lookup.closest();
                            let hops = lookup.hops();
                            let relookups = match query.purpose {
                                Purpose::Bootstrap => self.config.bootstrap_retries,
                                // A one-shot client knows one node: if all its resends
                                // were lost, the get or set would end with nobody asked.
                                Purpose::Get | Purpose::Set => {
                                    self.config.bootstrap_retries.min(COMMAND_RELOOKUPS)
                                }
                                _ => 0,
                            };
                            if closest.is_empty()
                                && query.relookups < relookups
                                && !self.table.is_empty()
                            {
                                // The lookup found nobody (its datagrams were lost): a
                                // node left knowing only its bootstrap address is one
                                // lost datagram away from knowing no one.
                                query.relookups += 1;
                                let (key, purpose) = (query.key, query.purpose);
                                let lookup = self.new_lookup(now, key, purpose);
                                if let Some(query) = self.queries.get_mut(&q) {
                                    query.phase = Phase::Lookup(lookup);
                                }
                                continue;
                            }
                            self.lookup_finished(now, q, closest, hops);
                        }
                    }
                }
                Phase::Store {
                    waiting,
                    acks,
                    stored_locally,
                    hops,
                    ..
                } => {
                    if waiting.is_empty() {
                        let outcome = QueryOutcome::Set {
                            acknowledged: *acks,
                            stored_locally: *stored_locally,
                        };
                        let hops = *hops;
                        self.finish(now, q, Ok(outcome), hops);
                    }
                    return;
                }
            }
        }
    }

    fn lookup_finished(&mut self, now: Instant, q: QueryId, closest: Vec<Contact>, hops: u32) {
        let Some(query) = self.queries.get(&q) else {
            return;
        };
        let (purpose, key, value, answered) = (
            query.purpose,
            query.key,
            query.value.clone(),
            query.answered,
        );
        match purpose {
            Purpose::Bootstrap | Purpose::Introduce => {
                let outcome = QueryOutcome::Bootstrap {
                    answered,
                    contacts: closest,
                };
                self.finish(now, q, Ok(outcome), hops);
            }
            Purpose::Get => {
                let value = self.record_found(q);
                self.finish(now, q, Ok(QueryOutcome::Get { value }), hops)
            }
            Purpose::Refresh => self.finish(now, q, Ok(QueryOutcome::Get { value: None }), hops),
            Purpose::Set | Purpose::Republish | Purpose::Replicate => {
                let Some(value) = value else { return };
                let farthest = closest.iter().map(|c| c.id.distance(&key)).max();
                let ours = closest.len() < self.config.k
                    || farthest.is_none_or(|far| self.id.distance(&key) < far);
                let mut stored_locally = false;
                // Not over a newer record held here (a republish of an older seq).
                let held = self.records.value(&key, now);
                let admitted = crate::kad::record::admit(&key, held.as_deref(), &value).is_ok();
                if ours && purpose != Purpose::Replicate && admitted {
                    // The publisher's own copy: a new life at each of its publications.
                    let expires_at = now + self.config.value_ttl;
                    self.records.remove(&key);
                    self.keep_copy(now, key, value.clone(), now, expires_at, None);
                    stored_locally = true;
                    if self.config.persistence {
                        self.events.push_back(Event::RecordStored {
                            key,
                            value: value.clone(),
                            expires_at,
                        });
                    }
                }
                let mut waiting = HashMap::new();
                let args = [
                    wire::id_value(&self.id),
                    wire::id_value(&key),
                    (*value).clone(),
                ];
                let mut sent = 0;
                for c in &closest {
                    if let Some(call) =
                        self.send_rpc(now, c.addr, Some(c.id), "store", &args, CallKind::Store(q))
                    {
                        waiting.insert(call, c.id);
                        sent += 1;
                    }
                }
                if let Some(query) = self.queries.get_mut(&q) {
                    query.messages += sent;
                    query.phase = Phase::Store {
                        waiting,
                        overdue: Vec::new(),
                        acks: 0,
                        stored_locally,
                        hops,
                    };
                }
                self.drive(now, q);
            }
        }
    }

    /// Ends query `q`; a command's end becomes an event.
    pub(super) fn finish(
        &mut self,
        now: Instant,
        q: QueryId,
        result: Result<QueryOutcome, super::CommandError>,
        hops: u32,
    ) {
        let Some(query) = self.queries.remove(&q) else {
            return;
        };
        if !query.purpose.is_command() {
            self.maintenance_running = self.maintenance_running.saturating_sub(1);
            return;
        }
        self.events.push_back(Event::QueryFinished {
            id: q,
            result,
            stats: QueryStats {
                hops,
                messages: query.messages,
                // A query that never left its pings looked nothing up.
                lookup: !matches!(query.phase, Phase::Ping { .. }),
                started: query.started,
                finished: now,
            },
        });
    }
}
