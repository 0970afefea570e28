//! The call timers: a binary min-heap of `(deadline, message id)` with lazy deletion.
//!
//! Each call owns exactly one live entry (its current `timer` instant). Finishing or
//! rescheduling a call does not search the heap (that would be O(n)); the old entry goes
//! stale and is recognised as such when it reaches the top, because the call is gone or
//! its timer moved. Stale entries on top are popped at once, so the top is always live
//! and `peek` is the true next deadline; stale entries deeper down are purged by a
//! rebuild when they outnumber the live ones, which keeps memory O(live calls) and the
//! cost amortised O(log n) per operation.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::wire::rpc::MessageId;

#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, MessageId)>>,
}

impl Timers {
    pub(crate) fn push(&mut self, at: Instant, id: MessageId) {
        self.heap.push(Reverse((at, id)));
    }

    /// The earliest entry, which `clean_top` keeps live.
    pub(crate) fn peek(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Pops the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, MessageId)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Pops stale entries off the top; `live(at, id)` says whether an entry still counts.
    pub(crate) fn clean_top(&mut self, mut live: impl FnMut(Instant, &MessageId) -> bool) {
        while let Some(Reverse((at, id))) = self.heap.peek() {
            if live(*at, id) {
                break;
            }
            self.heap.pop();
        }
    }

    /// Rebuilds the heap from the live entries when stale ones dominate.
    pub(crate) fn maybe_compact(
        &mut self,
        live_count: usize,
        live: impl FnMut(&Reverse<(Instant, MessageId)>) -> bool,
    ) {
        if self.heap.len() > 2 * live_count + 64 {
            let mut entries = std::mem::take(&mut self.heap).into_vec();
            entries.retain(live);
            self.heap = BinaryHeap::from(entries);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}
