//! Node ids, keys and the XOR metric.

use std::fmt;

/// Length of node ids and keys in bytes (160 bits, a sha1 digest).
pub const ID_LEN: usize = 20;

/// A 160-bit node id or key. Python `kademlia` sends both as MessagePack `bin` of 20 bytes.
///
/// ```
/// use rpcudp_proto::kad::NodeId;
///
/// let a = NodeId::from_bytes([0u8; 20]);
/// let mut b = [0u8; 20];
/// b[19] = 5;
/// let b = NodeId::from_bytes(b);
/// // XOR distance: symmetric, zero only to itself.
/// assert_eq!(a.distance(&b), b.distance(&a));
/// assert_eq!(a.distance(&a).leading_zeros(), 160);
/// assert_eq!(b.to_string(), "0000000000000000000000000000000000000005");
/// assert_eq!(NodeId::from_hex(&b.to_string()), Some(b));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; ID_LEN]);

impl NodeId {
    /// The id with these bytes.
    pub const fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
        NodeId(bytes)
    }

    /// The id in a byte slice of exactly 20 bytes (as received in a `bin`), else `None`.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; ID_LEN]>::try_from(bytes).ok().map(NodeId)
    }

    /// Parses 40 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        let text = text.as_bytes();
        if text.len() != 2 * ID_LEN {
            return None;
        }
        let mut out = [0u8; ID_LEN];
        for (i, pair) in text.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(NodeId(out))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// The XOR distance to `other`.
    pub fn distance(&self, other: &NodeId) -> Distance {
        let mut d = [0u8; ID_LEN];
        for (i, out) in d.iter_mut().enumerate() {
            *out = self.0[i] ^ other.0[i];
        }
        Distance(d)
    }

    /// A uniformly random id drawn from `rng` (seedable, so tests are reproducible).
    pub fn random(rng: &mut impl rand::Rng) -> Self {
        let mut out = [0u8; ID_LEN];
        rng.fill(&mut out[..]);
        NodeId(out)
    }

    /// A random id whose distance to `self` has exactly `leading_zeros` leading zero bits,
    /// i.e. an id that falls in bucket `159 - leading_zeros` of a table centred on `self`
    /// (used to refresh a bucket). `leading_zeros` is capped at 159.
    pub fn random_at_prefix(&self, leading_zeros: usize, rng: &mut impl rand::Rng) -> Self {
        let lz = leading_zeros.min(ID_LEN * 8 - 1);
        let mut d = [0u8; ID_LEN];
        rng.fill(&mut d[..]);
        for bit in 0..=lz {
            let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
            if bit < lz {
                d[byte] &= !mask;
            } else {
                d[byte] |= mask;
            }
        }
        let mut out = [0u8; ID_LEN];
        for i in 0..ID_LEN {
            out[i] = self.0[i] ^ d[i];
        }
        NodeId(out)
    }
}

impl fmt::Display for NodeId {
    /// 40 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight digits tell ids apart in logs without flooding them.
        write!(
            f,
            "NodeId({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// The XOR distance between two ids, ordered as a 160-bit big-endian unsigned integer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Distance(pub [u8; ID_LEN]);

impl Distance {
    /// Leading zero bits (160 for the distance of an id to itself). Ids at distance with
    /// `n` leading zeros share an `n`-bit prefix.
    pub fn leading_zeros(&self) -> usize {
        let mut n = 0;
        for b in self.0 {
            if b == 0 {
                n += 8;
            } else {
                return n + b.leading_zeros() as usize;
            }
        }
        n
    }

    /// The k-bucket this distance falls in: `159 - leading_zeros`, or `None` for zero
    /// (an id is never in its own table).
    pub fn bucket_index(&self) -> Option<usize> {
        let lz = self.leading_zeros();
        (lz < ID_LEN * 8).then(|| ID_LEN * 8 - 1 - lz)
    }
}
