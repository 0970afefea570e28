//! Requests that wait for their source to prove its address: a `store` from an address
//! that has not proven it receives there, and a `find_value` whose answer (the value) is
//! over what the amplification rule lets go to that address. Both wait here while the
//! node pings the address (the probe); an answer to it (it carries our random message
//! id, which an off-path forger cannot see) validates the address and releases them; a
//! probe that fails drops them, unanswered. So a forged `store` is never kept nor charged
//! to anyone's share, and a forged `find_value` gets no value.
//!
//! The table is bounded, and shared per source subnet (IPv4 /24, IPv6 /64): at most
//! [`NodeConfig::max_parked_per_source`](super::NodeConfig::max_parked_per_source) of a
//! subnet wait at once, the oldest of that subnet given up (counted) for a newer one, so
//! a subnet forging requests holds only its own share, and a real client on that subnet
//! still gets in (the forger must keep paying to keep it out, and the real client's
//! probe is answered within a round trip, after which its requests skip this table).
//! When the whole table ([`NodeConfig::max_parked`](super::NodeConfig::max_parked)) is
//! full, the oldest request of the subnet holding the most goes. At most 8 requests of
//! one address wait. Every step is O(the subnet's share) at most.
//!
//! Owns: the waiting requests and the probe calls. Does not own: sending the probe
//! (the node does, through its endpoint), what a released request does (`serve`).

use crate::kad::NodeId;
use crate::rpc::{CallId, RequestToken};
use crate::subnet::SourceKey;
use rmpv::Value;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// Most requests of one address waiting for its probe.
const MAX_PER_ADDRESS: usize = 8;

/// What a request waiting for its source's probe will do once released.
#[derive(Debug)]
pub(crate) enum Parked {
    /// A `store` of `value` under `key`.
    Store { key: NodeId, value: Value },
    /// A `find_value` of `key` (whose value was too big for the unvalidated budget).
    FindValue { key: NodeId },
}

/// One waiting request.
#[derive(Debug)]
pub(crate) struct Waiting {
    pub(crate) token: RequestToken,
    pub(crate) from: SocketAddr,
    pub(crate) request: Parked,
}

/// What [`Probation::park`] did.
#[derive(Debug, Default)]
pub(crate) struct Parking {
    /// Whether the node must start a probe of the address (none in flight for it).
    pub(crate) probe: bool,
    /// Requests given up to make room (abandon them).
    pub(crate) evicted: Vec<Waiting>,
    /// The request itself, refused (its address has `MAX_PER_ADDRESS` waiting).
    pub(crate) refused: Option<Waiting>,
}

/// The waiting requests and probes in flight.
#[derive(Debug, Default)]
pub(crate) struct Probation {
    /// By source subnet, oldest first.
    by_source: HashMap<SourceKey, VecDeque<Waiting>>,
    total: usize,
    /// Probe calls in flight, by call and by address.
    probes: HashMap<CallId, SocketAddr>,
    probing: HashMap<SocketAddr, CallId>,
}

impl Probation {
    /// Parks `w` (at most `per_source` of its subnet, `max` in all).
    pub(crate) fn park(&mut self, w: Waiting, per_source: usize, max: usize) -> Parking {
        let mut out = Parking::default();
        let (per_source, max) = (per_source.max(1), max.max(1));
        let source = SourceKey::of(w.from.ip());
        let queue = self.by_source.entry(source).or_default();
        if queue.iter().filter(|q| q.from == w.from).count() >= MAX_PER_ADDRESS {
            out.refused = Some(w);
            return out;
        }
        if queue.len() >= per_source {
            if let Some(old) = queue.pop_front() {
                self.total -= 1;
                out.evicted.push(old);
            }
        }
        while self.total >= max {
            // The subnet holding the most (O(subnets waiting) ≤ `max`).
            let Some(largest) = self
                .by_source
                .iter()
                .max_by_key(|(_, q)| q.len())
                .map(|(k, _)| *k)
            else {
                break;
            };
            let q = self.by_source.get_mut(&largest).expect("present");
            match q.pop_front() {
                Some(old) => {
                    self.total -= 1;
                    out.evicted.push(old);
                }
                None => {
                    self.by_source.remove(&largest);
                }
            }
        }
        out.probe = !self.probing.contains_key(&w.from);
        self.total += 1;
        self.by_source.entry(source).or_default().push_back(w);
        self.by_source.retain(|_, q| !q.is_empty());
        out
    }

    /// Records the probe call started for `addr`.
    pub(crate) fn probe_started(&mut self, addr: SocketAddr, call: CallId) {
        self.probes.insert(call, addr);
        self.probing.insert(addr, call);
    }

    /// If `call` is a probe: ends it and takes the requests of its address (to serve if
    /// it answered, to drop if not). `None` if `call` is no probe.
    pub(crate) fn probe_ended(&mut self, call: CallId) -> Option<Vec<Waiting>> {
        let addr = self.probes.remove(&call)?;
        self.probing.remove(&addr);
        Some(self.take(addr))
    }

    /// Takes every request of `addr` (O(its subnet's share)).
    pub(crate) fn take(&mut self, addr: SocketAddr) -> Vec<Waiting> {
        let source = SourceKey::of(addr.ip());
        let Some(q) = self.by_source.get_mut(&source) else {
            return Vec::new();
        };
        let (mine, rest): (VecDeque<Waiting>, VecDeque<Waiting>) =
            std::mem::take(q).into_iter().partition(|w| w.from == addr);
        *q = rest;
        if q.is_empty() {
            self.by_source.remove(&source);
        }
        self.total -= mine.len();
        mine.into()
    }

    /// Takes everything (the node stops).
    pub(crate) fn drain(&mut self) -> Vec<Waiting> {
        self.probes.clear();
        self.probing.clear();
        self.total = 0;
        self.by_source.drain().flat_map(|(_, q)| q).collect()
    }

    /// Requests waiting, all subnets together.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.total
    }

    /// The most requests of one subnet waiting.
    #[cfg(test)]
    pub(crate) fn largest_share(&self) -> usize {
        self.by_source
            .values()
            .map(VecDeque::len)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(n: u64, from: &str) -> Waiting {
        Waiting {
            token: RequestToken(n),
            from: from.parse().unwrap(),
            request: Parked::FindValue {
                key: NodeId::from_bytes([0; 20]),
            },
        }
    }

    #[test]
    fn a_subnet_holds_its_share_its_oldest_going_first_and_others_keep_theirs() {
        let mut p = Probation::default();
        let other = p.park(w(0, "198.51.100.1:1"), 4, 10);
        assert!(other.probe && other.evicted.is_empty());
        for n in 1..=20u64 {
            let got = p.park(w(n, &format!("203.0.113.{n}:1")), 4, 10);
            assert!(got.refused.is_none());
            if n > 4 {
                assert_eq!(got.evicted.len(), 1);
                assert_eq!(got.evicted[0].token, RequestToken(n - 4), "oldest first");
            }
        }
        assert_eq!((p.len(), p.largest_share()), (5, 4));
        // The other /24's request is still there.
        let taken = p.take("198.51.100.1:1".parse().unwrap());
        assert_eq!(taken.len(), 1);
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn a_full_table_gives_up_the_largest_subnets_oldest_and_one_address_waits_at_most_8() {
        let mut p = Probation::default();
        for n in 0..6u64 {
            p.park(w(n, &format!("203.0.113.{n}:1")), 100, 8);
        }
        p.park(w(10, "198.51.100.1:1"), 100, 8);
        p.park(w(11, "198.51.100.2:1"), 100, 8);
        let got = p.park(w(12, "192.0.2.1:1"), 100, 8);
        assert_eq!(got.evicted.len(), 1);
        assert_eq!(got.evicted[0].token, RequestToken(0));
        assert_eq!(p.len(), 8);
        let mut q = Probation::default();
        for n in 0..8u64 {
            assert!(q.park(w(n, "192.0.2.9:1"), 100, 100).refused.is_none());
        }
        assert!(q.park(w(8, "192.0.2.9:1"), 100, 100).refused.is_some());
    }

    #[test]
    fn one_probe_per_address_and_its_end_takes_that_addresss_requests_only() {
        let mut p = Probation::default();
        let a: SocketAddr = "203.0.113.1:1".parse().unwrap();
        assert!(p.park(w(0, "203.0.113.1:1"), 16, 16).probe);
        let call = CallId(crate::wire::rpc::MessageId([7; 20]));
        p.probe_started(a, call);
        assert!(!p.park(w(1, "203.0.113.1:1"), 16, 16).probe);
        assert!(p.park(w(2, "203.0.113.2:1"), 16, 16).probe);
        let ended = p.probe_ended(call).unwrap();
        assert_eq!(ended.len(), 2);
        assert_eq!(p.len(), 1);
        assert!(p.probe_ended(call).is_none());
        assert_eq!(p.drain().len(), 1);
        assert_eq!(p.len(), 0);
    }
}
