//! The node's side of records nobody can forge ([`crate::kad::record`]): the commands
//! [`Node::put_record`] and [`Node::get_record`], and the hooks by which a get's answers
//! go through its [`RecordPick`].
//!
//! Owns: running a record get to its end (a signed record's lookup does not stop at the
//! first value: a higher seq may be elsewhere, and a forged answer must not end it).
//! Does not own: verification and the store rule (`record`), the lookup (`query`).

use super::query::Phase;
use super::{CommandError, Event, Node, QueryId, QueryOutcome, QueryStats};
use crate::kad::record::{Certified, RecordPick};
use crate::kad::NodeId;
use rmpv::Value;
use std::time::Instant;

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
        let q = self.start_record_get(now, key, Some(Box::new(pick)));
        self.after_input(now, None);
        Ok(q)
    }

    /// A value answered a record get's `find_value`: offered to its pick (true: handled
    /// here; false: not a record get).
    pub(super) fn on_record_value(
        &mut self,
        now: Instant,
        q: QueryId,
        from: NodeId,
        value: &Value,
    ) -> bool {
        let Some(query) = self.queries.get_mut(&q) else {
            return false;
        };
        let (Some(pick), Phase::Lookup(lookup)) = (query.record.as_deref_mut(), &mut query.phase)
        else {
            return false;
        };
        pick.offer(value);
        if !pick.is_final() {
            // No contacts in a value answer; the lookup goes on with the others.
            lookup.on_success(&from, []);
            return true;
        }
        let hops = lookup.depth_of(&from).unwrap_or(1);
        lookup.finish();
        let value = pick.best().map(Certified::to_value);
        self.finish(now, q, Ok(QueryOutcome::Get { value }), hops);
        true
    }

    /// The wire value of the best record query `q`'s answers carried, if it is a record
    /// get.
    pub(super) fn record_found(&self, q: QueryId) -> Option<Value> {
        let pick = self.queries.get(&q)?.record.as_ref()?;
        pick.best().map(Certified::to_value)
    }
}
