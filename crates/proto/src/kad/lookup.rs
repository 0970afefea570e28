//! The iterative lookup as a state machine (after libp2p's closest-peers iterator): the
//! caller asks [`Lookup::next`] whom to contact, makes the RPC, and feeds the outcome back
//! with [`Lookup::on_success`] or [`Lookup::on_failure`].
//!
//! A lookup runs over one path (plain Kademlia) or over several disjoint ones
//! (S/Kademlia §4.4, [`LookupConfig::paths`]): the seeds are dealt out among the paths,
//! each path is a Kademlia lookup of its own fed only by the answers of the nodes it
//! asked, and a node is asked by one path only (the first that gets to it). A hostile
//! node can then steer the path that met it, not the others.
//!
//! Owns: the candidates of each path, their states and the claims that keep the paths
//! disjoint. Does not own: the RPCs, what an answer means (the node's queries), nor when
//! a value ends a get (the caller calls [`Lookup::finish`]).

use super::id::{Distance, NodeId};
use super::routing::Contact;
use std::collections::{BTreeMap, HashMap};
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
    /// Disjoint paths (d of S/Kademlia §4.4): each path keeps up to `alpha` RPCs in
    /// flight and ends when its own k nearest answered; no node is asked by two paths.
    /// The lookup ends when every path ended, [`Lookup::closest`] is the k nearest over
    /// all paths. Default 1: plain Kademlia. (A value lookup ends at the first value the
    /// caller accepts, whichever path found it.)
    pub paths: usize,
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
            paths: 1,
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
    /// Asked by another path: not this path's to ask, nor part of its result.
    Taken,
}

#[derive(Clone, Debug)]
struct Peer {
    contact: Contact,
    state: PeerState,
    /// 1 for a seed, one more than the peer that named it otherwise (hops reported by
    /// the node's queries).
    depth: u32,
}

/// An iterative Kademlia lookup for the nodes nearest a target, over one or more
/// disjoint paths ([`LookupConfig::paths`]), each with at most alpha RPCs in flight. A
/// path finishes when the k nearest nodes it knows that are not known to have failed
/// have all answered, or when it has no candidate left; the lookup, when all paths did.
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
///
/// Over two paths, `a` and `b` seed one path each, and a node both are told of is asked
/// once, by the path that gets to it first:
///
/// ```
/// use rpcudp_proto::kad::{Contact, Lookup, LookupConfig, LookupState, NodeId};
/// use std::time::Instant;
///
/// let now = Instant::now();
/// let c = |n: u8| Contact::new(NodeId::from_bytes([n; 20]), format!("127.0.0.1:{}", 1000 + n as u16).parse().unwrap());
/// let config = LookupConfig { paths: 2, alpha: 1, ..LookupConfig::default() };
/// let mut lookup = Lookup::new(NodeId::from_bytes([0; 20]), None, [c(4), c(5)], config);
/// assert_eq!(lookup.next(now), LookupState::Contact(c(4)));
/// assert_eq!(lookup.next(now), LookupState::Contact(c(5)));
/// lookup.on_success(&c(4).id, [c(1)]);
/// lookup.on_success(&c(5).id, [c(1)]);
/// assert_eq!(lookup.next(now), LookupState::Contact(c(1)));
/// lookup.on_success(&c(1).id, []);
/// assert_eq!(lookup.next(now), LookupState::Finished);
/// assert_eq!(lookup.closest(), vec![c(1), c(4), c(5)]);
/// ```
#[derive(Debug)]
pub struct Lookup {
    target: NodeId,
    local: Option<NodeId>,
    config: LookupConfig,
    paths: Vec<Path>,
    /// With several paths: which path asked each node (so no other path asks it).
    claims: HashMap<NodeId, usize>,
    /// The path `next` looks at first, rotated so that the paths take turns.
    turn: usize,
    finished: bool,
}

/// One path: a plain Kademlia lookup's candidates.
#[derive(Debug, Default)]
struct Path {
    peers: BTreeMap<Distance, Peer>,
    finished: bool,
}

impl Lookup {
    /// A lookup for `target` starting from `seeds`; `local` (the caller's own id) is never
    /// a candidate. With several paths, the seeds (nearest first) are dealt out among
    /// them in turn.
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
            paths: config.paths.max(1),
            ..config
        };
        let mut seeds: Vec<Contact> = seeds.into_iter().collect();
        seeds.sort_by_key(|c| c.id.distance(&target));
        seeds.dedup_by_key(|c| c.id);
        let mut lookup = Lookup {
            target,
            local,
            paths: (0..config.paths).map(|_| Path::default()).collect(),
            config,
            claims: HashMap::new(),
            turn: 0,
            finished: false,
        };
        let d = lookup.paths.len();
        for (i, seed) in seeds.into_iter().enumerate() {
            lookup.add(i % d, [seed], 1);
        }
        lookup
    }

    /// The id searched for.
    pub fn target(&self) -> NodeId {
        self.target
    }

    fn add(&mut self, path: usize, contacts: impl IntoIterator<Item = Contact>, depth: u32) {
        let p = &mut self.paths[path];
        for contact in contacts {
            if Some(contact.id) == self.local {
                continue;
            }
            let d = contact.id.distance(&self.target);
            p.peers.entry(d).or_insert(Peer {
                contact,
                state: PeerState::NotContacted,
                depth,
            });
        }
        while p.peers.len() > self.config.max_candidates {
            p.peers.pop_last();
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
        let d = self.paths.len();
        let mut wait: Option<Option<Instant>> = None;
        for step in 0..d {
            let i = (self.turn + step) % d;
            if self.paths[i].finished {
                continue;
            }
            let claims = (d > 1).then_some((&self.claims, i));
            match self.paths[i].next(now, &self.config, claims, &timeout) {
                LookupState::Contact(c) => {
                    if d > 1 {
                        self.claims.insert(c.id, i);
                    }
                    self.turn = (i + 1) % d;
                    return LookupState::Contact(c);
                }
                LookupState::Waiting(at) => {
                    wait = Some(match (wait.flatten(), at) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    });
                }
                LookupState::Finished => {}
            }
        }
        match wait {
            Some(at) => LookupState::Waiting(at),
            None => {
                self.finished = true;
                LookupState::Finished
            }
        }
    }

    /// The path that asked `id` (with one path, the only one).
    fn path_of(&self, id: &NodeId) -> Option<usize> {
        if self.paths.len() == 1 {
            return Some(0);
        }
        self.claims.get(id).copied()
    }

    fn peer(&self, id: &NodeId) -> Option<&Peer> {
        let d = id.distance(&self.target);
        self.paths[self.path_of(id)?]
            .peers
            .get(&d)
            .filter(|p| p.contact.id == *id)
    }

    /// `id` answered with `closer` contacts (at most k of them are used, and only by the
    /// path that asked `id`). Returns false if `id` was never contacted by this lookup
    /// (the answer is then ignored).
    pub fn on_success(&mut self, id: &NodeId, closer: impl IntoIterator<Item = Contact>) -> bool {
        let Some(path) = self.path_of(id) else {
            return false;
        };
        let d = id.distance(&self.target);
        let Some(peer) = self.paths[path]
            .peers
            .get_mut(&d)
            .filter(|p| p.contact.id == *id)
        else {
            return false;
        };
        match peer.state {
            PeerState::Waiting(..) | PeerState::Unresponsive(_) => {
                peer.state = PeerState::Succeeded
            }
            _ => return false,
        }
        let (k, depth) = (self.config.k, peer.depth + 1);
        self.add(path, closer.into_iter().take(k), depth);
        true
    }

    /// How many hops away from the seeds `id` was found: 1 for a seed, one more than the
    /// contact that named it otherwise. `None` if the lookup never asked it.
    pub fn depth_of(&self, id: &NodeId) -> Option<u32> {
        self.peer(id).map(|p| p.depth)
    }

    /// Whether `id` was contacted and its wait has not passed nor been answered.
    pub fn is_waiting_for(&self, id: &NodeId) -> bool {
        self.peer(id)
            .is_some_and(|p| matches!(p.state, PeerState::Waiting(..)))
    }

    /// The hops of the lookup: the largest depth among the nodes in
    /// [`closest`](Self::closest) (0 if none answered).
    pub fn hops(&self) -> u32 {
        self.succeeded()
            .take(self.config.k)
            .map(|(_, p)| p.depth)
            .max()
            .unwrap_or(0)
    }

    /// `id` did not answer (or answered nonsense).
    pub fn on_failure(&mut self, id: &NodeId) {
        let Some(path) = self.path_of(id) else {
            return;
        };
        let d = id.distance(&self.target);
        if let Some(peer) = self.paths[path]
            .peers
            .get_mut(&d)
            .filter(|p| p.contact.id == *id)
        {
            if matches!(
                peer.state,
                PeerState::Waiting(..) | PeerState::Unresponsive(_)
            ) {
                peer.state = PeerState::Failed;
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

    /// Every node that answered, over all paths, nearest first.
    fn succeeded(&self) -> impl Iterator<Item = (&Distance, &Peer)> {
        let mut all: Vec<(&Distance, &Peer)> = self
            .paths
            .iter()
            .flat_map(|p| p.peers.iter())
            .filter(|(_, p)| p.state == PeerState::Succeeded)
            .collect();
        if self.paths.len() > 1 {
            all.sort_unstable_by_key(|(d, _)| **d);
        }
        all.into_iter()
    }

    /// The (at most k) nearest nodes that answered, over all paths, nearest first: where
    /// `set` stores.
    pub fn closest(&self) -> Vec<Contact> {
        self.succeeded()
            .take(self.config.k)
            .map(|(_, p)| p.contact)
            .collect()
    }
}

impl Path {
    /// One path's next step: `claims` (with several paths) names the nodes other paths
    /// asked, which this one skips.
    fn next(
        &mut self,
        now: Instant,
        config: &LookupConfig,
        claims: Option<(&HashMap<NodeId, usize>, usize)>,
        timeout: &impl Fn(&Contact) -> Duration,
    ) -> LookupState {
        if self.finished {
            return LookupState::Finished;
        }
        for peer in self.peers.values_mut() {
            if let PeerState::Waiting(deadline, waited) = peer.state {
                if now >= deadline {
                    let grace = waited.saturating_mul(config.late_grace);
                    peer.state = PeerState::Unresponsive(deadline + grace);
                }
            }
        }
        let in_flight = self
            .peers
            .values()
            .filter(|p| matches!(p.state, PeerState::Waiting(..)))
            .count();
        let limit = if config.final_alpha > config.alpha && self.converged(config.alpha) {
            config.final_alpha
        } else {
            config.alpha
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
                    if let Some((claims, me)) = claims {
                        if claims.get(&peer.contact.id).is_some_and(|&p| p != me) {
                            peer.state = PeerState::Taken;
                            continue;
                        }
                    }
                    if in_flight < limit {
                        let wait = timeout(&peer.contact);
                        peer.state = PeerState::Waiting(now + wait, wait);
                        contact = Some(peer.contact);
                    }
                    break;
                }
                PeerState::Unresponsive(_) | PeerState::Failed | PeerState::Taken => {}
            }
            if slots >= config.k {
                break;
            }
        }
        if let Some(c) = contact {
            return LookupState::Contact(c);
        }
        if in_flight == 0 || earliest.is_none() && slots >= config.k {
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
            if slots < config.k {
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
    /// wait, nor another path's) all answered: no closer node is waiting to be asked
    /// (libp2p's "stalled").
    fn converged(&self, alpha: usize) -> bool {
        self.peers
            .values()
            .filter(|p| {
                !matches!(
                    p.state,
                    PeerState::Failed | PeerState::Unresponsive(_) | PeerState::Taken
                )
            })
            .take(alpha)
            .all(|p| p.state == PeerState::Succeeded)
    }
}
