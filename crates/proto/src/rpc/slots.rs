//! Handler slots under contention: which request in progress gives up its slot when all
//! `max_concurrent_requests` are taken and another request arrives.
//!
//! A request from an address that has not proven it receives where it says (see
//! `limits`: it answered a call of ours, or the layer above marked it) may come from a
//! forger, who pays one datagram per slot. So it never holds a slot against anyone:
//! when the slots are full, a new request, from anyone, preempts the **oldest
//! unvalidated request of the subnet (/24, /64) that holds the most unvalidated slots**.
//! A forger must keep sending to keep slots, and a ping or short call always gets one;
//! an honest subnet holding few slots is the last to lose one to a forger spread over
//! few subnets. Only when no unvalidated request is in progress may a *validated*
//! newcomer preempt a validated request, and only from a subnet holding at least two
//! more slots than its own (max-min fairness: the share binds only under contention, so
//! one local benchmark may still use the whole server when nobody else wants it).
//! An unvalidated newcomer never preempts a validated request.
//!
//! Owned here: the bookkeeping and the choice (O(log n) per request). Not owned: giving
//! the slot up (the endpoint forgets the request and tells the driver, which cancels
//! its handler), the count of slots (`EndpointConfig::max_concurrent_requests`).

use std::collections::{BTreeSet, HashMap};

use crate::subnet::SourceKey;

#[derive(Debug, Default)]
struct Subnet {
    /// Tokens (in arrival order: tokens only grow) of this subnet's requests in progress.
    unvalidated: BTreeSet<u64>,
    validated: BTreeSet<u64>,
}

impl Subnet {
    fn total(&self) -> usize {
        self.unvalidated.len() + self.validated.len()
    }
}

/// The requests in progress, by subnet and validation.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    subnets: HashMap<SourceKey, Subnet>,
    tokens: HashMap<u64, (SourceKey, bool)>,
    /// (unvalidated requests in progress, subnet), for the subnet holding the most.
    by_unvalidated: BTreeSet<(usize, SourceKey)>,
    /// (requests in progress, subnet), for the validated fallback.
    by_total: BTreeSet<(usize, SourceKey)>,
}

impl Slots {
    fn reindex(&mut self, key: SourceKey, f: impl FnOnce(&mut Subnet)) {
        let sub = self.subnets.entry(key).or_default();
        let (u, t) = (sub.unvalidated.len(), sub.total());
        self.by_unvalidated.remove(&(u, key));
        self.by_total.remove(&(t, key));
        f(sub);
        let (u, t) = (sub.unvalidated.len(), sub.total());
        if t == 0 {
            self.subnets.remove(&key);
            return;
        }
        if u > 0 {
            self.by_unvalidated.insert((u, key));
        }
        self.by_total.insert((t, key));
    }

    /// Records that request `token` from `key` (validated or not) holds a slot.
    pub(crate) fn start(&mut self, token: u64, key: SourceKey, validated: bool) {
        self.tokens.insert(token, (key, validated));
        self.reindex(key, |s| {
            if validated {
                s.validated.insert(token);
            } else {
                s.unvalidated.insert(token);
            }
        });
    }

    /// Records that request `token` gave its slot back (answered, abandoned, preempted).
    pub(crate) fn end(&mut self, token: u64) {
        let Some((key, validated)) = self.tokens.remove(&token) else {
            return;
        };
        self.reindex(key, |s| {
            if validated {
                s.validated.remove(&token);
            } else {
                s.unvalidated.remove(&token);
            }
        });
    }

    /// Requests of `key` in progress.
    pub(crate) fn of(&self, key: SourceKey) -> usize {
        self.subnets.get(&key).map_or(0, Subnet::total)
    }

    /// The request to preempt for a newcomer from `key` when every slot is taken, if
    /// any (see the module doc for the rule).
    pub(crate) fn victim(&self, key: SourceKey, validated: bool) -> Option<u64> {
        if let Some(&(_, big)) = self.by_unvalidated.last() {
            return self.subnets[&big].unvalidated.first().copied();
        }
        if !validated {
            return None;
        }
        let &(most, big) = self.by_total.last()?;
        (most >= self.of(key) + 2)
            .then(|| self.subnets[&big].validated.first().copied())
            .flatten()
    }

    /// Subnets with requests in progress.
    pub(crate) fn subnets(&self) -> usize {
        self.subnets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SourceKey {
        SourceKey::V4([203, 0, n])
    }

    #[test]
    fn the_oldest_unvalidated_request_of_the_biggest_subnet_goes_first() {
        let mut s = Slots::default();
        s.start(1, key(1), false);
        s.start(2, key(2), false);
        s.start(3, key(2), false);
        s.start(4, key(3), true);
        assert_eq!(s.victim(key(9), false), Some(2));
        s.end(2);
        // Now 1 and 3 are alone in their subnets: either is fair; a validated one never.
        assert!(matches!(s.victim(key(9), false), Some(1 | 3)));
        s.end(1);
        s.end(3);
        assert_eq!(
            s.victim(key(9), false),
            None,
            "unvalidated never preempt validated"
        );
        assert_eq!(
            s.victim(key(9), true),
            None,
            "3 holds 1: not two more than 0"
        );
        s.start(5, key(3), true);
        assert_eq!(s.victim(key(9), true), Some(4));
        assert_eq!(
            s.victim(key(3), true),
            None,
            "not from the newcomer's own subnet"
        );
        s.end(4);
        s.end(5);
        assert_eq!((s.subnets(), s.of(key(3))), (0, 0));
        assert!(s.by_total.is_empty() && s.by_unvalidated.is_empty() && s.tokens.is_empty());
    }
}
