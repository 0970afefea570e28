//! A cheap hasher for the tables keyed by values this endpoint chose itself: the message
//! ids of its own calls (160 random bits) and its request tokens (a counter).
//!
//! SipHash with a random key (std's default) exists so that a peer cannot pick keys that
//! all land in one bucket. A peer cannot insert anything into these tables: it can only
//! look up an id (a response), which probes once and stops at the first empty group, so
//! the defence buys nothing here and costs a SipHash per lookup. Keys the peer does
//! choose (the duplicate cache's) keep SipHash.

use std::hash::{BuildHasher, Hasher};

/// Builds [`OwnKeyHasher`]s.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct OwnKeys;

impl BuildHasher for OwnKeys {
    type Hasher = OwnKeyHasher;
    fn build_hasher(&self) -> OwnKeyHasher {
        OwnKeyHasher(0)
    }
}

/// Folds the bytes 8 at a time with a multiply, which spreads a counter's low bits over
/// the high ones (the table reads its tag from those) and keeps random bits random.
#[derive(Debug)]
pub(crate) struct OwnKeyHasher(u64);

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for OwnKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(23) ^ n).wrapping_mul(K);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::rpc::MessageId;
    use std::collections::HashSet;

    #[test]
    fn counters_and_ids_spread_over_the_high_bits() {
        // The table's 7-bit tag comes from the top of the hash: sequential tokens must
        // not all share one tag.
        let tags: HashSet<u64> = (0u64..1000).map(|n| OwnKeys.hash_one(n) >> 57).collect();
        assert!(tags.len() > 100, "{} distinct tags", tags.len());
        let a = OwnKeys.hash_one(MessageId([1; 20]));
        let mut other = [1; 20];
        other[19] = 2; // differs only in the last bytes, past the first word
        assert_ne!(a, OwnKeys.hash_one(MessageId(other)));
    }
}
