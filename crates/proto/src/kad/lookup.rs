//! The iterative lookup as a state machine (after libp2p's closest-peers iterator): the
//! caller asks [`Lookup::next`] whom to contact, makes the RPC, and feeds the outcome back
//! with [`Lookup::on_success`] or [`Lookup::on_failure`].

use super::id::{Distance, NodeId};
use super::routing::Contact;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Parameters of a [`Lookup`].
#[derive(Clone, Debug)]
pub struct LookupConfig {
    /// How many closest nodes the lookup must hear from (k). Default 20.
    pub k: usize,
    /// How many RPCs may be in flight at once (alpha). Default 3.
    pub alpha: usize,
    /// How long a contacted node may take before the lookup stops waiting for it (it is
    /// then counted as failed, though a late answer is still used). Default 5 s.
    pub peer_timeout: Duration,
    /// Most candidates remembered (nearest kept), so hostile answers cannot grow a
    /// lookup without bound. Default 1000.
    pub max_candidates: usize,
    /// How many RPCs may be in flight once the lookup has converged (the alpha nearest
    /// candidates still in the running all answered): the rest of the k nearest are then
    /// asked together rather than alpha at a time, as Kademlia's last round does. A
    /// lookup that must hear from all k (a `set`'s) saves its last rounds; one that ends
    /// at the first value found gains nothing from it. Default 0: never more than alpha.
    pub final_alpha: usize,
    /// How many more of a contact's waits the lookup gives its late answer before it
    /// ends with fewer than k answers: a contact past its wait has usually lost a
    /// datagram (its call resends at the wait) or is slow, and its answer may hold the
    /// value or the nearest nodes, which a lookup that ends at once never sees (issue 9
    /// §4: one-shot gets missing values, sets storing on a few nodes). The caller wakes
    /// the lookup then (`next` says when). Default 0: it ends at once.
    pub late_grace: u32,
}

impl Default for LookupConfig {
    fn default() -> Self {
        LookupConfig {
            k: 20,
            alpha: 3,
            peer_timeout: Duration::from_secs(5),
            max_candidates: 1000,
            final_alpha: 0,
            late_grace: 0,
        }
    }
}

/// What the caller should do next, from [`Lookup::next`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LookupState {
    /// Send the RPC (`find_node` or `find_value`) to this contact, then report it.
    Contact(Contact),
    /// Nothing to send now: wait for an answer or until this instant (a peer timeout),
    /// then call `next` again.
    Waiting(Option<Instant>),
    /// Done: [`Lookup::closest`] holds the result.
    Finished,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PeerState {
    NotContacted,
    /// Contacted, until this instant, after a wait this long.
    Waiting(Instant, Duration),
    /// Timed out in the lookup's eyes; a late answer is still taken, and awaited until
    /// this instant (`late_grace`) before the lookup ends short of k answers.
    Unresponsive(Instant),
    Succeeded,
    Failed,
}

#[derive(Clone, Debug)]
struct Peer {
    contact: Contact,
    state: PeerState,
    /// 1 for a seed, one more than the peer that named it otherwise (hops reported by
    /// the node's queries).
    depth: u32,
}

/// An iterative Kademlia lookup for the nodes nearest a target, with at most alpha RPCs
/// in flight. It finishes when the k nearest nodes not known to have failed have all
/// answered, or when no candidate is left.
///
/// Call order: [`new`](Self::new) with the starting contacts (the routing table's
/// nearest), then loop: [`next`](Self::next) → `Contact` (send, later report with
/// [`on_success`](Self::on_success) / [`on_failure`](Self::on_failure)), `Waiting` (wait for
/// a report or the instant), `Finished`. A value lookup calls [`finish`](Self::finish)
/// as soon as a value arrives.
///
/// ```
/// use rpcudp_proto::kad::{Contact, Lookup, LookupConfig, LookupState, NodeId};
/// use std::time::Instant;
///
/// let now = Instant::now();
/// let a = Contact::new(NodeId::from_bytes([1; 20]), "127.0.0.1:1001".parse().unwrap());
/// let b = Contact::new(NodeId::from_bytes([2; 20]), "127.0.0.1:1002".parse().unwrap());
/// let mut lookup = Lookup::new(NodeId::from_bytes([0; 20]), None, [a], LookupConfig::default());
/// assert_eq!(lookup.next(now), LookupState::Contact(a));
/// // `a` answers with `b`, who is then asked in turn.
/// lookup.on_success(&a.id, [b]);
/// assert_eq!(lookup.next(now), LookupState::Contact(b));
/// lookup.on_failure(&b.id);
/// assert_eq!(lookup.next(now), LookupState::Finished);
/// assert_eq!(lookup.closest(), vec![a]);
/// ```
#[derive(Debug)]
pub struct Lookup {
    target: NodeId,
    local: Option<NodeId>,
    config: LookupConfig,
    peers: BTreeMap<Distance, Peer>,
    finished: bool,
}

impl Lookup {
    /// A lookup for `target` starting from `seeds`; `local` (the caller's own id) is never
    /// a candidate.
    pub fn new(
        target: NodeId,
        local: Option<NodeId>,
        seeds: impl IntoIterator<Item = Contact>,
        config: LookupConfig,
    ) -> Self {
        let config = LookupConfig {
            k: config.k.max(1),
            alpha: config.alpha.max(1),
            max_candidates: config.max_candidates.max(config.k.max(1)),
            ..config
        };
        let mut lookup = Lookup {
            target,
            local,
            config,
            peers: BTreeMap::new(),
            finished: false,
        };
        lookup.add(seeds, 1);
        lookup
    }

    /// The id searched for.
    pub fn target(&self) -> NodeId {
        self.target
    }

    fn add(&mut self, contacts: impl IntoIterator<Item = Contact>, depth: u32) {
        for contact in contacts {
            if Some(contact.id) == self.local {
                continue;
            }
            let d = contact.id.distance(&self.target);
            self.peers.entry(d).or_insert(Peer {
                contact,
                state: PeerState::NotContacted,
                depth,
            });
        }
        while self.peers.len() > self.config.max_candidates {
            self.peers.pop_last();
        }
    }

    /// Whom to contact next, whether to wait, or that the lookup is done.
    pub fn next(&mut self, now: Instant) -> LookupState {
        let timeout = self.config.peer_timeout;
        self.next_with(now, |_| timeout)
    }

    /// [`next`](Self::next) with a per-contact wait: the lookup stops waiting for a
    /// contacted node after `timeout(contact)` (its own retransmission timeout, say)
    /// instead of the configured `peer_timeout`; a late answer is still taken.
    pub fn next_with(
        &mut self,
        now: Instant,
        timeout: impl Fn(&Contact) -> Duration,
    ) -> LookupState {
        if self.finished {
            return LookupState::Finished;
        }
        for peer in self.peers.values_mut() {
            if let PeerState::Waiting(deadline, waited) = peer.state {
                if now >= deadline {
                    let grace = waited.saturating_mul(self.config.late_grace);
                    peer.state = PeerState::Unresponsive(deadline + grace);
                }
            }
        }
        let in_flight = self
            .peers
            .values()
            .filter(|p| matches!(p.state, PeerState::Waiting(..)))
            .count();
        let limit = if self.config.final_alpha > self.config.alpha && self.converged() {
            self.config.final_alpha
        } else {
            self.config.alpha
        };
        let mut slots = 0;
        let mut earliest: Option<Instant> = None;
        let mut contact = None;
        for peer in self.peers.values_mut() {
            match peer.state {
                PeerState::Succeeded => slots += 1,
                PeerState::Waiting(deadline, _) => {
                    slots += 1;
                    earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
                }
                PeerState::NotContacted => {
                    if in_flight < limit {
                        let wait = timeout(&peer.contact);
                        peer.state = PeerState::Waiting(now + wait, wait);
                        contact = Some(peer.contact);
                    }
                    break;
                }
                PeerState::Unresponsive(_) | PeerState::Failed => {}
            }
            if slots >= self.config.k {
                break;
            }
        }
        if let Some(c) = contact {
            return LookupState::Contact(c);
        }
        if in_flight == 0 || earliest.is_none() && slots >= self.config.k {
            // With no answer at all yet, a late one from a contact past its wait is all
            // there is to hope for: wait for it (or for its failure) rather than end
            // empty-handed because one datagram was lost.
            let nothing_yet = !self.peers.values().any(|p| p.state == PeerState::Succeeded);
            let late = self
                .peers
                .values()
                .any(|p| matches!(p.state, PeerState::Unresponsive(_)));
            if nothing_yet && late {
                return LookupState::Waiting(None);
            }
            if slots < self.config.k {
                let grace = self
                    .peers
                    .values()
                    .filter_map(|p| match p.state {
                        PeerState::Unresponsive(until) if until > now => Some(until),
                        _ => None,
                    })
                    .min();
                if grace.is_some() {
                    return LookupState::Waiting(grace);
                }
            }
            self.finished = true;
            return LookupState::Finished;
        }
        // Waiting on an in-flight peer (inside the window, or blocking the next
        // candidate because alpha RPCs are out): wake at the earliest peer deadline.
        let deadline = self
            .peers
            .values()
            .filter_map(|p| match p.state {
                PeerState::Waiting(d, _) => Some(d),
                _ => None,
            })
            .min();
        LookupState::Waiting(deadline)
    }

    /// Whether the alpha nearest candidates not known to have failed (nor past their
    /// wait) all answered: no closer node is waiting to be asked (libp2p's "stalled").
    fn converged(&self) -> bool {
        self.peers
            .values()
            .filter(|p| !matches!(p.state, PeerState::Failed | PeerState::Unresponsive(_)))
            .take(self.config.alpha)
            .all(|p| p.state == PeerState::Succeeded)
    }

    fn state_of(&mut self, id: &NodeId) -> Option<&mut PeerState> {
        let d = id.distance(&self.target);
        self.peers
            .get_mut(&d)
            .filter(|p| p.contact.id == *id)
            .map(|p| &mut p.state)
    }

    /// `id` answered with `closer` contacts (at most k of them are used). Returns false
    /// if `id` was never contacted by this lookup (the answer is then ignored).
    pub fn on_success(&mut self, id: &NodeId, closer: impl IntoIterator<Item = Contact>) -> bool {
        let d = id.distance(&self.target);
        let Some(peer) = self.peers.get_mut(&d).filter(|p| p.contact.id == *id) else {
            return false;
        };
        match peer.state {
            PeerState::Waiting(..) | PeerState::Unresponsive(_) => {
                peer.state = PeerState::Succeeded
            }
            _ => return false,
        }
        let (k, depth) = (self.config.k, peer.depth + 1);
        self.add(closer.into_iter().take(k), depth);
        true
    }

    /// How many hops away from the seeds `id` was found: 1 for a seed, one more than the
    /// contact that named it otherwise. `None` if the lookup never knew it.
    pub fn depth_of(&self, id: &NodeId) -> Option<u32> {
        let d = id.distance(&self.target);
        self.peers
            .get(&d)
            .filter(|p| p.contact.id == *id)
            .map(|p| p.depth)
    }

    /// Whether `id` was contacted and its wait has not passed nor been answered.
    pub fn is_waiting_for(&self, id: &NodeId) -> bool {
        let d = id.distance(&self.target);
        self.peers
            .get(&d)
            .is_some_and(|p| p.contact.id == *id && matches!(p.state, PeerState::Waiting(..)))
    }

    /// The hops of the lookup: the largest depth among the nodes in
    /// [`closest`](Self::closest) (0 if none answered).
    pub fn hops(&self) -> u32 {
        self.peers
            .values()
            .filter(|p| p.state == PeerState::Succeeded)
            .take(self.config.k)
            .map(|p| p.depth)
            .max()
            .unwrap_or(0)
    }

    /// `id` did not answer (or answered nonsense).
    pub fn on_failure(&mut self, id: &NodeId) {
        if let Some(state) = self.state_of(id) {
            if matches!(*state, PeerState::Waiting(..) | PeerState::Unresponsive(_)) {
                *state = PeerState::Failed;
            }
        }
    }

    /// Ends the lookup now (a value lookup that found its value).
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Whether the lookup is over.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The (at most k) nearest nodes that answered, nearest first: where `set` stores.
    pub fn closest(&self) -> Vec<Contact> {
        self.peers
            .values()
            .filter(|p| p.state == PeerState::Succeeded)
            .take(self.config.k)
            .map(|p| p.contact)
            .collect()
    }
}
