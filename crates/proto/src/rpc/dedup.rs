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
//!
//! Cost: the cache holds tens of thousands of entries that are touched again only when
//! they leave, so each operation is a cache miss or two; what is avoidable is avoided.
//! The key is hashed once per request (SipHash with a random key, as std's `HashMap`:
//! the message ids are the peer's choice) and the hash is stored with the entry, so
//! finishing, evicting and growing the table never hash again; a FIFO slot names its
//! entry by hash and sequence number, 24 bytes rather than the whole key.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hashbrown::hash_table::{Entry as TableEntry, HashTable};

use crate::wire::rpc::MessageId;

pub(crate) type Key = (SocketAddr, MessageId);

/// What the cache knows of a request.
#[derive(Debug)]
pub(crate) enum Entry {
    InProgress,
    /// Answered (with these bytes) or given up (`None`). `seq` ties it to its FIFO slot.
    Done {
        answer: Option<Answer>,
        seq: u64,
    },
}

/// Answers up to this size are kept inside the entry.
const INLINE: usize = 38;

/// A remembered response datagram. Small ones (most: a `ping` answer is 26 bytes) live
/// in the entry itself: no allocation when answering, and no free of a long-untouched
/// block (a cache miss) when the entry leaves.
#[derive(Debug)]
pub(crate) enum Answer {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Answer {
    pub(crate) fn new(datagram: &[u8]) -> Answer {
        if datagram.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..datagram.len()].copy_from_slice(datagram);
            Answer::Inline {
                len: datagram.len() as u8,
                bytes,
            }
        } else {
            Answer::Heap(datagram.into())
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Answer::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Answer::Heap(b) => b,
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }
}

/// Why an entry left the cache (for the counters).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Removed {
    pub(crate) expired: u64,
    pub(crate) evicted: u64,
}

#[derive(Debug)]
struct Slot {
    hash: u64,
    key: Key,
    entry: Entry,
}

#[derive(Debug)]
pub(crate) struct DedupCache {
    table: HashTable<Slot>,
    hasher: std::collections::hash_map::RandomState,
    /// Done entries, oldest first: (answered at, hash, seq).
    order: VecDeque<(Instant, u64, u64)>,
    next_seq: u64,
    bytes: usize,
    capacity: usize,
    lifetime: Duration,
    max_bytes: usize,
}

impl DedupCache {
    pub(crate) fn new(capacity: usize, lifetime: Duration, max_bytes: usize) -> Self {
        DedupCache {
            table: HashTable::new(),
            hasher: Default::default(),
            order: VecDeque::new(),
            next_seq: 0,
            bytes: 0,
            capacity,
            lifetime,
            max_bytes,
        }
    }

    /// The hash every other method takes with the key.
    pub(crate) fn hash(&self, key: &Key) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(crate) fn get(&self, hash: u64, key: &Key) -> Option<&Entry> {
        self.table
            .find(hash, |s| s.hash == hash && s.key == *key)
            .map(|s| &s.entry)
    }

    /// Marks `key` in progress; it must not be in the cache (`get` said so).
    pub(crate) fn start(&mut self, hash: u64, key: Key) {
        self.table.insert_unique(
            hash,
            Slot {
                hash,
                key,
                entry: Entry::InProgress,
            },
            |s| s.hash,
        );
    }

    /// Forgets `key` if it is still in progress (its request was preempted: a resend
    /// must be served afresh, not dropped as a duplicate).
    pub(crate) fn forget_in_progress(&mut self, hash: u64, key: &Key) {
        if let Ok(o) = self
            .table
            .find_entry(hash, |s| s.hash == hash && s.key == *key)
        {
            if matches!(o.get().entry, Entry::InProgress) {
                o.remove();
            }
        }
    }

    /// Marks `key` answered at `now` with `answer` (or given up), then enforces the
    /// capacity limits.
    pub(crate) fn finish(
        &mut self,
        now: Instant,
        hash: u64,
        key: Key,
        answer: Option<Answer>,
    ) -> Removed {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += answer.as_ref().map_or(0, |a| a.len());
        let done = Entry::Done { answer, seq };
        match self
            .table
            .entry(hash, |s| s.hash == hash && s.key == key, |s| s.hash)
        {
            TableEntry::Occupied(mut o) => {
                // A done entry is never replaced: an in-progress one becomes done once.
                if let Entry::Done { answer, .. } = std::mem::replace(&mut o.get_mut().entry, done)
                {
                    self.bytes -= answer.map_or(0, |a| a.len());
                }
            }
            TableEntry::Vacant(v) => {
                v.insert(Slot {
                    hash,
                    key,
                    entry: done,
                });
            }
        }
        self.order.push_back((now, hash, seq));
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
        let Some((_, hash, seq)) = self.order.pop_front() else {
            return false;
        };
        // Done entries and FIFO slots are one to one (the seq is unique), so hash and seq
        // name the entry without its key.
        let found = self.table.find_entry(hash, |s| {
            s.hash == hash && matches!(s.entry, Entry::Done { seq: s2, .. } if s2 == seq)
        });
        if let Ok(o) = found {
            let (slot, _) = o.remove();
            if let Entry::Done { answer, .. } = slot.entry {
                self.bytes -= answer.map_or(0, |a| a.len());
            }
        }
        true
    }

    /// Entries in the cache, in progress and done.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Bytes of cached responses.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_small_and_large_give_back_their_exact_bytes() {
        for len in [0, 1, 26, INLINE, INLINE + 1, 1000] {
            let datagram: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let a = Answer::new(&datagram);
            assert_eq!(a.as_slice(), &datagram[..]);
            assert_eq!(
                matches!(a, Answer::Inline { .. }),
                len <= INLINE,
                "len {len}"
            );
        }
        assert!(std::mem::size_of::<Entry>() <= 48);
    }
}
