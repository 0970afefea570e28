//! The node's contacts: what it knows of each address (round trips, failures), and what
//! happens when a contact answers, is inserted, fails or turns out to carry our own id.
//! Owns no state of its own: these are `Node` methods, split out of `mod.rs` by concern.

use super::*;

impl Node {
    pub(super) fn peer(&mut self, addr: SocketAddr) -> &mut PeerInfo {
        if self.peers.len() >= self.peer_cap() && !self.peers.contains_key(&addr) {
            // Amortized: once per `peer_cap` new addresses, keep only table contacts.
            let in_table: HashSet<SocketAddr> =
                self.table.contacts().iter().map(|c| c.addr).collect();
            self.peers.retain(|a, _| in_table.contains(a));
        }
        self.peers.entry(addr).or_default()
    }

    pub(super) fn peer_cap(&self) -> usize {
        (self.config.k * 160 * 2).max(1024)
    }

    /// A contact answered one of our requests at `now`.
    pub(super) fn contact_answered(
        &mut self,
        now: Instant,
        contact: Contact,
        rtt: Option<Duration>,
    ) {
        if contact.id == self.id {
            self.own_id_seen(contact.addr);
            return;
        }
        let p = self.peer(contact.addr);
        p.failures = 0;
        p.suspect = false;
        p.last_seen = Some(now);
        if let Some(rtt) = rtt {
            p.rtt.sample(rtt);
            self.rtt_all.sample(rtt);
            self.rtt_samples += 1;
        }
        let known = self.table.find(&contact.id);
        // It answered our request at this address: verified (may be handed out).
        let outcome = self.table.insert_verified(contact, now);
        self.on_insert(now, contact, known, outcome);
    }

    pub(super) fn on_insert(
        &mut self,
        now: Instant,
        contact: Contact,
        known: Option<Contact>,
        outcome: InsertOutcome,
    ) {
        match outcome {
            InsertOutcome::Inserted => {
                self.contact_event(Event::ContactAdded(contact));
                self.start_handover(contact);
            }
            InsertOutcome::Updated if known.is_some_and(|k| k.addr != contact.addr) => {
                self.contact_event(Event::ContactAdded(contact));
            }
            InsertOutcome::PingOldest { oldest } => {
                let args = [super::super::wire::id_value(&self.id)];
                if self
                    .send_rpc(
                        now,
                        oldest.addr,
                        Some(oldest.id),
                        "ping",
                        &args,
                        CallKind::PingOldest,
                    )
                    .is_none()
                {
                    let promoted = self.table.on_ping_result(&oldest.id, true);
                    debug_assert!(promoted.is_none());
                }
            }
            InsertOutcome::CheckAddress { known } => {
                self.stats.address_checks += 1;
                let args = [super::super::wire::id_value(&self.id)];
                if self
                    .send_rpc(
                        now,
                        known.addr,
                        Some(known.id),
                        "ping",
                        &args,
                        CallKind::CheckAddress,
                    )
                    .is_none()
                {
                    // Could not ask: the old address stays.
                    self.table.on_address_check(&known.id, true);
                }
            }
            InsertOutcome::SubnetFull => self.stats.contacts_refused_subnet += 1,
            _ => {}
        }
    }

    pub(super) fn contact_event(&mut self, e: Event) {
        if self.config.persistence {
            self.events.push_back(e);
        }
    }

    pub(super) fn own_id_seen(&mut self, addr: SocketAddr) {
        self.stats.own_id_contacts += 1;
        self.events.push_back(Event::OwnIdSeen { addr });
    }

    /// Not heard from for `recheck_after`, and not being rechecked nor queued for it.
    pub(super) fn is_stale(&self, now: Instant, addr: &SocketAddr) -> bool {
        self.peers.get(addr).is_none_or(|p| {
            !p.recheck_in_flight
                && !p.recheck_queued
                && p.last_seen
                    .is_none_or(|t| now.saturating_duration_since(t) >= self.config.recheck_after)
        })
    }

    /// Pings a stale contact we hand out, or queues it while every recheck slot is
    /// taken (the queue full: the next hand-out tries again).
    pub(super) fn recheck(&mut self, now: Instant, addr: SocketAddr, id: NodeId) {
        if self.rechecks_in_flight >= MAX_RECHECKS {
            if self.recheck_queue.len() < MAX_QUEUED_RECHECKS {
                self.recheck_queue.push_back((addr, id));
                self.peer(addr).recheck_queued = true;
            }
            return;
        }
        self.send_recheck(now, addr, id);
    }

    /// Pings `addr` (id `id`) as a recheck, taking one of the MAX_RECHECKS slots.
    fn send_recheck(&mut self, now: Instant, addr: SocketAddr, id: NodeId) {
        let args = [super::super::wire::id_value(&self.id)];
        if self
            .send_rpc(now, addr, Some(id), "ping", &args, CallKind::Recheck)
            .is_some()
        {
            self.rechecks_in_flight += 1;
            self.peer(addr).recheck_in_flight = true;
        }
    }

    /// A recheck slot freed: ping the next queued contact still in the table at that
    /// address and still stale (looking at a bounded number of entries).
    pub(super) fn recheck_next_queued(&mut self, now: Instant) {
        for _ in 0..RECHECK_QUEUE_SKIPS {
            let Some((addr, id)) = self.recheck_queue.pop_front() else {
                return;
            };
            if let Some(p) = self.peers.get_mut(&addr) {
                p.recheck_queued = false;
            }
            let in_table = self.table.find(&id).is_some_and(|c| c.addr == addr);
            if in_table && self.is_stale(now, &addr) {
                self.recheck(now, addr, id);
                return;
            }
        }
    }

    /// An RPC to `addr` (id `id` if known) went unanswered.
    /// A lost datagram must not cost a good contact, a dead one must go soon: a failure
    /// short of `max_failures` pings the contact once (if it is in the table); that ping
    /// failing too evicts it.
    pub(super) fn contact_failed(&mut self, now: Instant, id: Option<NodeId>, addr: SocketAddr) {
        let max = self.config.max_failures.max(1);
        let p = self.peer(addr);
        p.failures = p.failures.saturating_add(1);
        p.suspect = true;
        let (failures, rechecking) = (p.failures, p.recheck_in_flight);
        let Some(id) = id else { return };
        let in_table = self.table.find(&id).is_some_and(|c| c.addr == addr);
        // An address that never answered us (a joining caller inserted at once, whose
        // ping failed) gets a second ping (and its resends) only if what it sent leaves
        // room for them within 3×: a real joiner, which sent its lookups too, does; a
        // forged join, which sent one request, is evicted now.
        let room = self
            .ep
            .amplification_budget(addr)
            .is_none_or(|b| b >= (1 + super::RPC_RESENDS as usize) * super::VERIFY_PING_BYTES);
        if failures < max && room {
            if in_table && !rechecking && self.rechecks_in_flight < MAX_RECHECKS {
                self.send_recheck(now, addr, id);
            }
            return;
        }
        if in_table {
            if let Some(promoted) = self.table.remove(&id) {
                self.stats.evicted += 1;
                self.peers.remove(&addr);
                self.contact_event(Event::ContactRemoved(id));
                if let Some(p) = promoted {
                    self.contact_event(Event::ContactAdded(p));
                    self.start_handover(p);
                }
            }
        }
    }
}
