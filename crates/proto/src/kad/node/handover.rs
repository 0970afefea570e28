//! Handing values to a newcomer (the paper's §2.5, Python's `welcome_if_new` rule: the
//! newcomer gets the value under a key if we are nearer the key than any contact and the
//! newcomer is within the k nearest's radius), incrementally and under a budget.
//!
//! Owns: the queue of hand-over jobs, their cursors and the budget, and a per-newcomer
//! form of the rule that gives the same answers as
//! [`RoutingTable::should_replicate_to`](crate::kad::RoutingTable::should_replicate_to)
//! on the job's key range without sorting the table per key (tested against it). Does
//! not own: the records. A job works on the table as it was when the newcomer arrived.
//!
//! Which keys can qualify: we must be nearer the key than every other contact. A contact
//! sharing `m` leading bits with us is nearer than us to every key sharing exactly `m`
//! bits with us, so with `M` the bits our nearest other contact shares with us, the keys
//! we are nearest to are those sharing more than `M` bits with us (plus keys under an
//! empty bucket between, which are left to the periodic replication and republish). That
//! is one contiguous key range, found with one pass over the table per newcomer, and the
//! newcomer-within-radius test then runs per key. So a job walks only that range, in key
//! order, `handover_keys_per_step` keys per step, and holds
//! at most that many keys ready to send. Stores go out at most `handover_in_flight` at a
//! time over all jobs, and at most `handover_jobs` newcomers wait (more get none and are
//! counted; the periodic replication and republish reach them later). A store sends the
//! held value, shared (`Arc`), never a copy per newcomer.

use super::super::wire;
use super::query::CallKind;
use super::Node;
use crate::kad::{Contact, NodeId, ID_LEN};
use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::time::Instant;

#[derive(Debug)]
pub(crate) struct Job {
    to: Contact,
    range: RangeInclusive<NodeId>,
    /// Next key to examine; `None` once the range is done.
    cursor: Option<NodeId>,
    ready: VecDeque<NodeId>,
    radius: Radius,
}

/// What decides "the newcomer is within the k nearest's radius" for every key of a job's
/// range, computed once per newcomer: the other contacts' ids, nearest us first, and
/// where the k-th nearest lies. For a key sharing more bits with us than any contact
/// does, a contact in a deeper bucket is always nearer the key than one in a shallower
/// bucket (their distances to the key differ first at their bucket's bit), so the k
/// nearest to the key are the contacts before `boundary` plus the nearest of the
/// boundary bucket (`boundary..boundary_end`): one O(k) selection per key, no sort of
/// the table per record.
#[derive(Debug)]
struct Radius {
    others: Vec<NodeId>,
    boundary: usize,
    boundary_end: usize,
    k: usize,
}

impl Radius {
    fn new(local: &NodeId, mut others: Vec<NodeId>, k: usize) -> Radius {
        others.sort_unstable_by_key(|id| local.distance(id));
        let k = k.max(1);
        let (boundary, boundary_end) = match others.get(k.min(others.len()).wrapping_sub(1)) {
            None => (0, 0),
            Some(last) if others.len() >= k => {
                let bucket = local.distance(last).leading_zeros();
                let same = |id: &NodeId| local.distance(id).leading_zeros() == bucket;
                let lo = others.iter().position(same).unwrap_or(0);
                let hi = others.iter().rposition(same).map_or(lo, |p| p + 1);
                (lo, hi)
            }
            Some(last) => {
                // Fewer than k: the rule compares with the farthest of them, which is in
                // the shallowest bucket.
                let bucket = local.distance(last).leading_zeros();
                let lo = others
                    .iter()
                    .position(|id| local.distance(id).leading_zeros() == bucket)
                    .unwrap_or(0);
                (lo, others.len())
            }
        };
        Radius {
            others,
            boundary,
            boundary_end,
            k,
        }
    }

    /// Whether `newcomer` is nearer `key` than the k-th nearest other contact (or than
    /// the farthest, with fewer than k); true with no other contact.
    fn admits(&self, newcomer: &NodeId, key: &NodeId) -> bool {
        if self.others.is_empty() {
            return true;
        }
        let mut bucket: Vec<_> = self.others[self.boundary..self.boundary_end]
            .iter()
            .map(|id| id.distance(key))
            .collect();
        let radius = if self.others.len() >= self.k {
            let nth = self.k - 1 - self.boundary;
            *bucket.select_nth_unstable(nth).1
        } else {
            bucket
                .into_iter()
                .max()
                .unwrap_or_else(|| newcomer.distance(key))
        };
        newcomer.distance(key) < radius
    }
}

#[derive(Debug, Default)]
pub(crate) struct Handover {
    jobs: VecDeque<Job>,
    pub in_flight: usize,
}

impl Handover {
    /// Newcomers waiting for (the rest of) their hand-over.
    pub fn jobs(&self) -> usize {
        self.jobs.len()
    }
}

/// The ids sharing the first `bits` bits with `id`.
fn prefix_range(id: &NodeId, bits: usize) -> RangeInclusive<NodeId> {
    let mut lo = id.0;
    let mut hi = id.0;
    for bit in bits..ID_LEN * 8 {
        let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
        lo[byte] &= !mask;
        hi[byte] |= mask;
    }
    NodeId(lo)..=NodeId(hi)
}

impl Node {
    /// Queues the hand-over to a contact just inserted.
    pub(super) fn start_handover(&mut self, to: Contact) {
        if self.records.len() == 0 || self.stopped {
            return;
        }
        if self.handover.jobs.len() >= self.config.handover_jobs {
            self.stats.handover_jobs_dropped += 1;
            return;
        }
        // Keys we are nearer than every other contact: those sharing more bits with us
        // than our nearest other contact does (see the module docs). One pass over the
        // table per newcomer.
        let others: Vec<NodeId> = self
            .table
            .contacts()
            .into_iter()
            .map(|c| c.id)
            .filter(|id| *id != to.id)
            .collect();
        let radius = Radius::new(&self.id, others, self.config.k);
        let bits = radius
            .others
            .first()
            .map_or(0, |id| self.id.distance(id).leading_zeros() + 1);
        let range = prefix_range(&self.id, bits);
        self.handover.jobs.push_back(Job {
            to,
            cursor: Some(*range.start()),
            range,
            ready: VecDeque::new(),
            radius,
        });
    }

    /// One bounded step of hand-over work: examines at most `handover_keys_per_step`
    /// keys and keeps at most `handover_in_flight` stores out.
    pub(super) fn pump_handover(&mut self, now: Instant) {
        let per_step = self.config.handover_keys_per_step.max(1);
        let mut examined = 0;
        // Each round sends one store, finishes a job, or examines keys: bounded by the
        // budgets below.
        for _ in 0..(per_step + self.config.handover_in_flight + 4) {
            if self.handover.in_flight >= self.config.handover_in_flight.max(1) {
                return;
            }
            let Some(job) = self.handover.jobs.front_mut() else {
                return;
            };
            let to = job.to;
            if let Some(key) = job.ready.pop_front() {
                let Some(value) = self.records.value(&key, now) else {
                    continue;
                };
                let args = [
                    wire::id_value(&self.id),
                    wire::id_value(&key),
                    (*value).clone(),
                ];
                if self
                    .send_rpc(
                        now,
                        to.addr,
                        Some(to.id),
                        "store",
                        &args,
                        CallKind::LooseStore { handover: true },
                    )
                    .is_some()
                {
                    self.handover.in_flight += 1;
                    self.stats.handover_stores += 1;
                }
                continue;
            }
            let Some(from) = job.cursor else {
                self.handover.jobs.pop_front();
                continue;
            };
            if examined >= per_step {
                return;
            }
            if !self.table.contains(&to.id) {
                // It left (or failed) meanwhile: nothing more for it.
                self.handover.jobs.pop_front();
                continue;
            }
            let (keys, next) = self.records.keys_in(&job.range, from, per_step - examined);
            examined += keys.len().max(1);
            if let Some(job) = self.handover.jobs.front_mut() {
                let ready = keys.into_iter().filter(|k| job.radius.admits(&to.id, k));
                job.ready.extend(ready);
                job.cursor = next;
            }
        }
    }

    /// Newcomers waiting for their hand-over (tests check the budget).
    pub fn handover_jobs(&self) -> usize {
        self.handover.jobs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kad::{RoutingConfig, RoutingTable};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use std::net::SocketAddr;
    use std::time::Instant;

    #[allow(clippy::disallowed_methods)]
    fn start() -> Instant {
        Instant::now()
    }

    #[test]
    fn the_per_newcomer_rule_answers_as_the_routing_tables_rule_on_its_key_range() {
        let now = start();
        let mut rng = SmallRng::seed_from_u64(11);
        let mut checked = 0;
        for round in 0..40 {
            let local = NodeId::random(&mut rng);
            let k = [1, 3, 20][round % 3];
            let mut table = RoutingTable::new(
                local,
                RoutingConfig {
                    k,
                    ..RoutingConfig::default()
                },
            );
            let n = [0, 2, 5, 30, 200][round % 5];
            for i in 0..n {
                // Ids near `local` too, so deep buckets are occupied.
                let id = local.random_at_prefix(rng.random_range(0..12), &mut rng);
                let addr = SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16));
                table.insert(Contact::new(id, addr), now);
            }
            let newcomer = local.random_at_prefix(rng.random_range(0..14), &mut rng);
            let others: Vec<NodeId> = table
                .contacts()
                .into_iter()
                .map(|c| c.id)
                .filter(|id| *id != newcomer)
                .collect();
            let radius = Radius::new(&local, others, k);
            let bits = radius
                .others
                .first()
                .map_or(0, |id| local.distance(id).leading_zeros() + 1);
            for _ in 0..50 {
                // A key in the job's range: shares `bits` leading bits with us.
                let key = if bits >= 160 {
                    local
                } else {
                    local.random_at_prefix(rng.random_range(bits..160), &mut rng)
                };
                assert!(prefix_range(&local, bits).contains(&key));
                assert_eq!(
                    radius.admits(&newcomer, &key),
                    table.should_replicate_to(&newcomer, &key),
                    "round {round}, k {k}, {n} contacts"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 2000);
    }

    #[test]
    fn a_prefix_range_spans_exactly_the_ids_sharing_the_prefix() {
        let id = NodeId::from_bytes([0b1010_1010; 20]);
        let r = prefix_range(&id, 3);
        assert_eq!(r.start().0[0], 0b1010_0000);
        assert_eq!(r.end().0[0], 0b1011_1111);
        assert!(r.start().0[1..].iter().all(|b| *b == 0));
        assert!(r.end().0[1..].iter().all(|b| *b == 0xff));
        let all = prefix_range(&id, 0);
        assert_eq!(*all.start(), NodeId::from_bytes([0; 20]));
        assert_eq!(*all.end(), NodeId::from_bytes([0xff; 20]));
        assert_eq!(prefix_range(&id, 160), id..=id);
    }
}
