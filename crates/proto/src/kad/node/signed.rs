//! The node's side of records nobody can forge ([`crate::kad::record`]): the commands
//! [`Node::put_record`] and [`Node::get_record`], and the hooks by which a get's answers
//! go through its [`RecordPick`].
//!
//! Owns: running a record get to its end (a signed record's lookup does not stop at the
//! first value: a higher seq may be elsewhere, and a forged answer must not end it). A
//! node that answers `find_value` with a value gives no contacts (as Python
//! `kademlia`): one whose value fails verification is asked `find_node` once, so that a
//! forger (or a Python node holding a forgery) between the asker and the genuine
//! holders cannot end the lookup.
//! Does not own: verification and the store rule (`record`), the lookup (`query`).

use super::super::wire::{self, FindAnswer};
use super::query::{CallKind, Phase};
use super::{CommandError, Event, Node, QueryId, QueryOutcome, QueryStats};
use crate::kad::record::{Certified, Offer, RecordPick};
use crate::kad::{Contact, NodeId};
use std::collections::HashSet;
use std::time::Instant;

/// A record get's state beside its lookup.
#[derive(Debug)]
pub(crate) struct RecordGet {
    pick: RecordPick,
    /// Nodes asked `find_node` after a value that failed (each once: a node that answers
    /// that with a value too is done with).
    followed: HashSet<NodeId>,
}

impl Node {
    /// Stores a verified record under its target, as [`set`](Self::set) stores a value
    /// (republished while the node runs). Nodes of this crate that hold a higher seq of
    /// it answer `false` and are not counted in [`QueryOutcome::Set`]'s
    /// `acknowledged`.
    ///
    /// ```
    /// use rpcudp_proto::kad::record::{Certified, SignedRecord};
    /// use rpcudp_proto::kad::{CommandError, Node, NodeConfig, NodeId};
    /// let mut node = Node::new(NodeConfig::default(), NodeId([1; 20]), 1);
    /// let rec = SignedRecord::sign(&[3; 32], b"", 1, "v".into()).unwrap();
    /// let now = std::time::Instant::now();
    /// // A node that knows nobody has nowhere to store it.
    /// let err = node.put_record(now, &Certified::Signed(rec)).unwrap_err();
    /// assert!(matches!(err, CommandError::NoContacts { .. }));
    /// ```
    ///
    /// # Errors
    /// As [`set`](Self::set).
    pub fn put_record(
        &mut self,
        now: Instant,
        record: &Certified,
    ) -> Result<QueryId, CommandError> {
        let key = match record {
            Certified::Signed(r) => r.target(),
            Certified::Immutable(r) => r.target(),
        };
        self.set(now, key, record.to_value())
    }

    /// Looks up the record `pick` wants: every answer is verified, those that fail are
    /// ignored and the lookup goes on past them; a signed record's lookup runs until the
    /// nearest nodes all answered and keeps the highest seq, an immutable record's ends
    /// at the first that verifies. The copy held here (or published from here) counts
    /// as one answer. Ends with [`QueryOutcome::Get`] whose value is the best record's
    /// wire value (decode it with [`record::classify`](crate::kad::record::classify)),
    /// or `None`.
    ///
    /// # Errors
    /// [`CommandError::ShutDown`]; [`CommandError::NoContacts`] when nothing here
    /// verifies and the node knows nobody to ask.
    pub fn get_record(
        &mut self,
        now: Instant,
        mut pick: RecordPick,
    ) -> Result<QueryId, CommandError> {
        if self.is_stopped() {
            return Err(CommandError::ShutDown);
        }
        let key = pick.target();
        if let Some(v) = self.local_value(&key, now) {
            pick.offer(&v);
        }
        if let Some(p) = self.records.publication(&key).map(|p| p.value.clone()) {
            pick.offer(&p);
        }
        let nobody = self.table.is_empty();
        if pick.is_final() || (nobody && pick.best().is_some()) {
            let id = self.fresh_query_id();
            let value = pick.best().map(Certified::to_value);
            self.events.push_back(Event::QueryFinished {
                id,
                result: Ok(QueryOutcome::Get { value }),
                stats: QueryStats {
                    hops: 0,
                    messages: 0,
                    started: now,
                    finished: now,
                },
            });
            return Ok(id);
        }
        self.no_contacts_check()?;
        let get = RecordGet {
            pick,
            followed: HashSet::new(),
        };
        let q = self.start_record_get(now, key, Some(Box::new(get)));
        self.after_input(now, None);
        Ok(q)
    }

    /// A find answer of query `q` from `from`: if `q` is a record get and the answer a
    /// value, it is offered to the pick here (true: handled; false: the usual path).
    pub(super) fn on_record_answer(
        &mut self,
        now: Instant,
        q: QueryId,
        from: Contact,
        found: &FindAnswer,
    ) -> bool {
        let FindAnswer::Value(value) = found else {
            return false;
        };
        let Some(query) = self.queries.get_mut(&q) else {
            return false;
        };
        let (Some(get), Phase::Lookup(lookup)) = (query.record.as_deref_mut(), &mut query.phase)
        else {
            return false;
        };
        let offer = get.pick.offer(value);
        if get.pick.is_final() {
            let hops = lookup.depth_of(&from.id).unwrap_or(1);
            lookup.finish();
            let value = get.pick.best().map(Certified::to_value);
            self.finish(now, q, Ok(QueryOutcome::Get { value }), hops);
            return true;
        }
        if offer == Offer::Rejected && get.followed.insert(from.id) {
            // Its contacts, then: the lookup waits for them as for the first answer.
            query.messages += 1;
            let args = [wire::id_value(&self.id), wire::id_value(&query.key)];
            let sent = self.send_rpc(
                now,
                from.addr,
                Some(from.id),
                "find_node",
                &args,
                CallKind::Find(q),
            );
            if sent.is_some() {
                return true;
            }
        }
        // No contacts in a value answer; the lookup goes on with the others (the caller
        // drives it).
        if let Some(Phase::Lookup(lookup)) = self.queries.get_mut(&q).map(|q| &mut q.phase) {
            lookup.on_success(&from.id, []);
        }
        true
    }

    /// The wire value of the best record query `q`'s answers carried, if it is a record
    /// get.
    pub(super) fn record_found(&self, q: QueryId) -> Option<rmpv::Value> {
        let get = self.queries.get(&q)?.record.as_ref()?;
        get.pick.best().map(Certified::to_value)
    }
}
