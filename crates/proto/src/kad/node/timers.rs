//! The node's deadlines, handled in [`Protocol::handle_timeout`]: per-contact RTOs,
//! expiry, replication, republish and bucket refresh, each a bounded number per call.
//! Owns no state of its own: a `Node` method, split out of `mod.rs` by concern.

use super::*;

impl Node {
    pub(super) fn handle_timers(&mut self, now: Instant) {
        let max = self.config.max_due_per_timeout.max(1);
        // RTO timers: the lookup (or set) stops waiting for that contact.
        for _ in 0..max {
            let Some(Reverse((at, seq))) = self.rto_timers.peek().copied() else {
                break;
            };
            if at > now {
                break;
            }
            self.rto_timers.pop();
            if let Some(call) = self.rto_calls.remove(&seq) {
                self.on_rto(now, call);
            }
        }
        if self.rto_timers.len() > 64 && self.rto_timers.len() > 2 * self.rto_calls.len() {
            let live = &self.rto_calls;
            let kept: Vec<_> = self
                .rto_timers
                .drain()
                .filter(|Reverse((_, s))| live.contains_key(s))
                .collect();
            self.rto_timers = kept.into();
        }
        // New callers due for their verification ping.
        for _ in 0..max {
            match self.verify_queue.front() {
                Some((at, _)) if *at <= now => {}
                _ => break,
            }
            let Some((_, contact)) = self.verify_queue.pop_front() else {
                break;
            };
            self.verify_pending.remove(&contact.addr);
            // Inserted meanwhile and verified: nothing to check. (Inserted unverified, e.g.
            // by Python's rule, it is still pinged, so that it can be handed out.)
            if self
                .table
                .find(&contact.id)
                .is_some_and(|c| c.addr == contact.addr)
                && (self.table.is_verified(&contact.id) || !self.config.insert_joining)
            {
                continue;
            }
            // Only within what the caller's own bytes allow (3×, less the answers it got):
            // a forged request costs its source at most that, and a one-shot client that
            // used its budget on answers is not pinged (nor inserted) at all.
            if self
                .ep
                .amplification_budget(contact.addr)
                .is_some_and(|b| b < VERIFY_PING_BYTES)
            {
                self.stats.verifications_skipped_budget += 1;
                continue;
            }
            let args = [super::super::wire::id_value(&self.id)];
            self.send_rpc(
                now,
                contact.addr,
                Some(contact.id),
                "ping",
                &args,
                CallKind::Verify,
            );
        }
        // Value deadlines.
        for _ in 0..max {
            let Some(key) = self.records.pop_expired(now) else {
                break;
            };
            self.stats.expired += 1;
            if self.config.persistence {
                self.events.push_back(Event::RecordRemoved { key });
            }
        }
        for _ in 0..max {
            if self.maintenance_running >= self.config.max_maintenance_queries
                || self.table.is_empty()
            {
                break;
            }
            let Some((key, held)) = self.records.pop_replication(now) else {
                break;
            };
            let age = now.saturating_duration_since(held.since);
            let next = now + self.config.replicate_interval;
            if next.saturating_duration_since(held.since) < self.config.replicate_window {
                self.records.schedule_replication(key, next);
            }
            if age < self.config.replicate_window && held.expires_at > now {
                if let Some(value) = self.records.stored_value(&key) {
                    self.start_store_query(now, key, value, query::Purpose::Replicate);
                }
            }
        }
        for _ in 0..max {
            if self.maintenance_running >= self.config.max_maintenance_queries
                || self.table.is_empty()
            {
                break;
            }
            let Some((key, value, first)) = self.records.pop_republish(now) else {
                break;
            };
            let next = self.next_republish(now, first);
            self.records.publish(key, value.clone(), next, first);
            self.start_store_query(now, key, value, query::Purpose::Republish);
        }
        if let (Some(at), Some(interval)) = (self.next_refresh, self.config.refresh_interval) {
            if at <= now {
                self.next_refresh = Some(now + refresh_check_period(interval));
                let stale = self.table.buckets_to_refresh(now, interval);
                for bucket in stale {
                    if self.maintenance_running >= self.config.max_maintenance_queries {
                        break;
                    }
                    let target = self.id.random_at_prefix(159 - bucket, &mut self.rng);
                    self.start_refresh(now, target);
                }
            }
        }
    }
}
