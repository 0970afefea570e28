//! Duplicate suppression on the serving side.
//!
//! A request is known by `(peer address, message id)`. While its handler runs the entry
//! is *in progress* (a duplicate is dropped: the answer will come); once answered it is
//! *done* and holds the response datagram (a duplicate gets those same bytes, the handler
//! does not run again) or nothing if the request was abandoned or its answer could not be
//! sent (a duplicate is dropped, as the first got no answer either).
//!
//! In-progress entries are bounded by `max_concurrent_requests` and never evicted (else a
//! retransmission would run the handler a second time). Done entries sit in a FIFO by the
//! time they were answered and leave it when their lifetime runs out, or earliest-first
//! when the entry count or the bytes of cached responses exceed their limits.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::wire::rpc::MessageId;

pub(crate) type Key = (SocketAddr, MessageId);

/// What the cache knows of a request.
#[derive(Debug)]
pub(crate) enum Entry {
    InProgress,
    /// Answered (with these bytes) or given up (`None`). `seq` ties it to its FIFO slot.
    Done {
        answer: Option<Box<[u8]>>,
        seq: u64,
    },
}

/// Why an entry left the cache (for the counters).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Removed {
    pub(crate) expired: u64,
    pub(crate) evicted: u64,
}

#[derive(Debug)]
pub(crate) struct DedupCache {
    map: HashMap<Key, Entry>,
    /// Done entries, oldest first: (answered at, key, seq).
    order: VecDeque<(Instant, Key, u64)>,
    next_seq: u64,
    bytes: usize,
    capacity: usize,
    lifetime: Duration,
    max_bytes: usize,
}

impl DedupCache {
    pub(crate) fn new(capacity: usize, lifetime: Duration, max_bytes: usize) -> Self {
        DedupCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            bytes: 0,
            capacity,
            lifetime,
            max_bytes,
        }
    }

    pub(crate) fn get(&self, key: &Key) -> Option<&Entry> {
        self.map.get(key)
    }

    pub(crate) fn start(&mut self, key: Key) {
        self.map.insert(key, Entry::InProgress);
    }

    /// Marks `key` answered at `now` with `answer` (or given up), then enforces the
    /// capacity limits.
    pub(crate) fn finish(&mut self, now: Instant, key: Key, answer: Option<Box<[u8]>>) -> Removed {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += answer.as_ref().map_or(0, |a| a.len());
        self.map.insert(key, Entry::Done { answer, seq });
        self.order.push_back((now, key, seq));
        let mut removed = Removed::default();
        while self.order.len() > self.capacity || self.bytes > self.max_bytes {
            if !self.pop_oldest() {
                break;
            }
            removed.evicted += 1;
        }
        removed
    }

    /// Forgets done entries answered `lifetime` or longer before `now`.
    pub(crate) fn expire(&mut self, now: Instant) -> Removed {
        let mut removed = Removed::default();
        while let Some((at, _, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.lifetime {
                break;
            }
            self.pop_oldest();
            removed.expired += 1;
        }
        removed
    }

    /// When the oldest done entry expires (`None` also when the lifetime is so long that
    /// the instant cannot be represented: then nothing ever expires).
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.order
            .front()
            .and_then(|(at, _, _)| at.checked_add(self.lifetime))
    }

    fn pop_oldest(&mut self) -> bool {
        let Some((_, key, seq)) = self.order.pop_front() else {
            return false;
        };
        // Done entries and FIFO slots are one to one (a done entry is never replaced), the
        // seq check only guards that invariant.
        if let Some(Entry::Done { seq: s, answer }) = self.map.get(&key) {
            if *s == seq {
                self.bytes -= answer.as_ref().map_or(0, |a| a.len());
                self.map.remove(&key);
            }
        }
        true
    }

    /// Drops an in-progress entry (done entries leave through the FIFO only).
    pub(crate) fn forget(&mut self, key: &Key) {
        if matches!(self.map.get(key), Some(Entry::InProgress)) {
            self.map.remove(key);
        }
    }

    /// Entries in the cache, in progress and done.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Bytes of cached responses.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}
