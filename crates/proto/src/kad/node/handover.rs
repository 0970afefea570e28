//! Handing values to a newcomer (the paper's §2.5, Python's `welcome_if_new` rule: the
//! newcomer gets the value under a key if we are nearer the key than any contact and the
//! newcomer is within the k nearest's radius), incrementally and under a budget.
//!
//! Owns: the queue of hand-over jobs, their cursors and the budget. Does not own: the
//! rule itself ([`RoutingTable::should_replicate_to`](crate::kad::RoutingTable)) nor the
//! records.
//!
//! Which keys can qualify: a key we are the nearest to, with the newcomer within the k
//! nearest's radius, lies within that radius of both of us, so it shares with us at least
//! the bits we share with the newcomer (XOR: `cpl(a, c) >= min(cpl(a, b), cpl(b, c))`),
//! as soon as every bucket between is occupied. So a job walks only the key range of our
//! prefix of that length, in key order, `handover_keys_per_step` keys per step, and holds
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
        let shared = self.id.distance(&to.id).leading_zeros();
        let range = prefix_range(&self.id, shared);
        self.handover.jobs.push_back(Job {
            to,
            cursor: Some(*range.start()),
            range,
            ready: VecDeque::new(),
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
                let Some(held) = self.records.get(&key, now) else {
                    continue;
                };
                let args = [
                    wire::id_value(&self.id),
                    wire::id_value(&key),
                    (*held.value).clone(),
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
            let ready: Vec<NodeId> = keys
                .into_iter()
                .filter(|k| self.table.should_replicate_to(&to.id, k))
                .collect();
            if let Some(job) = self.handover.jobs.front_mut() {
                job.cursor = next;
                job.ready.extend(ready);
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
