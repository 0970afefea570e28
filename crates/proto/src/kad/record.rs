//! Records nobody can forge (`docs/wire.md` §3.1): Ed25519-signed mutable records
//! ([`SignedRecord`], as BEP 44's mutable items) and hash-named immutable records
//! ([`ImmutableRecord`]), each one MessagePack `bin` on the wire so that Python
//! `kademlia` nodes store and return it like any other value.
//!
//! Owns: the encoding, verification ([`classify`]), the rule a node applies before it
//! stores a value under a key ([`admit`]: keep the highest valid seq, refuse forgeries,
//! refuse a plain value over a held record) with its counters ([`RecordRefusals`]), and
//! a reader's choice among the answers of a lookup ([`RecordPick`]: only what verifies,
//! the highest seq). Does not own: the store path that calls [`admit`] (the node's
//! `serve`), nor the lookup that feeds a [`RecordPick`] (the node's queries).
//!
//! ```
//! use rpcudp_proto::kad::record::{self, Certified, RecordPick, SignedRecord};
//!
//! let secret = [7u8; 32];
//! let rec = SignedRecord::sign(&secret, b"salt", 1, "hello".into()).unwrap();
//! let key = rec.target();
//! assert_eq!(key, record::signed_target(&record::public_key(&secret), b"salt"));
//!
//! // What a node stores, and what a reader accepts.
//! let wire = rec.to_value();
//! assert!(record::admit(&key, None, &wire).is_ok());
//! let mut pick = RecordPick::signed(rec.public_key, b"salt".to_vec());
//! assert_eq!(pick.offer(&wire), record::Offer::Best);
//! assert!(matches!(pick.best(), Some(Certified::Signed(r)) if r.seq == 1));
//!
//! // The same record with its value altered verifies no more.
//! let forged = SignedRecord { value: "forged".into(), ..rec }.to_value();
//! assert!(record::admit(&key, Some(&wire), &forged).is_err());
//! assert_eq!(pick.offer(&forged), record::Offer::Rejected);
//! ```

use super::store::is_storable;
use super::NodeId;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rmpv::Value;
use sha1::{Digest, Sha1};

/// The first element of a signed record's array.
pub const SIGNED_TAG: &str = "rpcudp.signed.v1";
/// The first element of an immutable record's array.
pub const IMMUTABLE_TAG: &str = "rpcudp.immutable.v1";
/// Longest salt, in bytes (as BEP 44).
pub const MAX_SALT: usize = 64;
/// What the signed bytes begin with, so that a signature made for anything else never
/// verifies as a record's.
pub const SIGNATURE_DOMAIN: &[u8] = b"rpcudp.signed.v1\0";

/// The target of a signed record: `sha1(public key ‖ salt)`.
///
/// ```
/// let t = rpcudp_proto::kad::record::signed_target(&[0; 32], b"");
/// assert_eq!(t.to_string(), "de8a847bff8c343d69b853a215e6ee775ef2ef96");
/// ```
pub fn signed_target(public_key: &[u8; 32], salt: &[u8]) -> NodeId {
    let mut h = Sha1::new();
    h.update(public_key);
    h.update(salt);
    NodeId(h.finalize().into())
}

/// The target of an immutable record: the sha1 of its bytes (a str's UTF-8).
///
/// ```
/// let t = rpcudp_proto::kad::record::immutable_target(b"hello");
/// assert_eq!(t.to_string(), "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
/// ```
pub fn immutable_target(bytes: &[u8]) -> NodeId {
    NodeId(Sha1::digest(bytes).into())
}

/// The Ed25519 public key of a 32-byte secret seed.
///
/// ```
/// let pk = rpcudp_proto::kad::record::public_key(&[1; 32]);
/// assert_eq!(pk.len(), 32);
/// ```
pub fn public_key(secret: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(secret).verifying_key().to_bytes()
}

/// Why a record cannot be made, or why bytes are not a valid record under a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A signed record's value must be an int, float, bool, str or bin; an immutable
    /// record's a str or bin. Remedy: store another kind.
    #[error("a record's value must be an int, float, bool, str or bin (immutable: str or bin)")]
    BadValue,
    /// The salt is over [`MAX_SALT`] bytes. Remedy: a shorter salt.
    #[error("the salt is over {MAX_SALT} bytes")]
    SaltTooLong,
    /// The bytes claim to be a record (they begin with its tag) but are not one in the
    /// canonical encoding of `docs/wire.md` §3.1.
    #[error("a malformed record")]
    Malformed,
    /// The signature does not verify under the record's public key.
    #[error("the record's signature does not verify")]
    BadSignature,
    /// An immutable record whose bytes do not hash to the key it is stored under.
    #[error("the immutable record's bytes do not hash to its key")]
    BadHash,
    /// A signed record whose public key and salt do not hash to the key it is stored
    /// under.
    #[error("the signed record's key and salt do not hash to its key")]
    WrongTarget,
}

/// An Ed25519-signed mutable record: the holder of the secret key may replace it with a
/// higher `seq`; nobody else can make one that verifies.
#[derive(Clone, Debug, PartialEq)]
pub struct SignedRecord {
    /// The signer's Ed25519 public key.
    pub public_key: [u8; 32],
    /// Up to [`MAX_SALT`] bytes: one key pair may sign many targets.
    pub salt: Vec<u8>,
    /// The sequence number: a higher one replaces a lower.
    pub seq: u64,
    /// The value: int, float, bool, str or bin.
    pub value: Value,
    /// Ed25519 over [`SignedRecord::signed_bytes`].
    pub signature: [u8; 64],
}

impl SignedRecord {
    /// Signs `value` with the 32-byte secret seed `secret`, under `salt`, as `seq`.
    ///
    /// # Errors
    /// [`RecordError::BadValue`] for a value that is not a scalar Python `kademlia`
    /// stores, [`RecordError::SaltTooLong`].
    pub fn sign(
        secret: &[u8; 32],
        salt: &[u8],
        seq: u64,
        value: Value,
    ) -> Result<SignedRecord, RecordError> {
        if !is_storable(&value) {
            return Err(RecordError::BadValue);
        }
        if salt.len() > MAX_SALT {
            return Err(RecordError::SaltTooLong);
        }
        let key = SigningKey::from_bytes(secret);
        let signature = key.sign(&signed_bytes(salt, seq, &value)).to_bytes();
        Ok(SignedRecord {
            public_key: key.verifying_key().to_bytes(),
            salt: salt.to_vec(),
            seq,
            value,
            signature,
        })
    }

    /// The key it is stored under: `sha1(public key ‖ salt)`.
    pub fn target(&self) -> NodeId {
        signed_target(&self.public_key, &self.salt)
    }

    /// What the signature covers: [`SIGNATURE_DOMAIN`], the salt's length (one byte) and
    /// bytes, the seq (8 bytes, big-endian), the value's MessagePack encoding.
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(&self.salt, self.seq, &self.value)
    }

    /// Whether the signature verifies (strict Ed25519: no malleable signature, no weak
    /// key).
    ///
    /// # Errors
    /// [`RecordError::BadSignature`].
    pub fn verify(&self) -> Result<(), RecordError> {
        let key =
            VerifyingKey::from_bytes(&self.public_key).map_err(|_| RecordError::BadSignature)?;
        let sig = Signature::from_bytes(&self.signature);
        key.verify_strict(&self.signed_bytes(), &sig)
            .map_err(|_| RecordError::BadSignature)
    }

    /// The wire value: a `bin` holding the MessagePack array
    /// `[SIGNED_TAG, public key, salt, seq, value, signature]`.
    pub fn to_value(&self) -> Value {
        envelope(vec![
            Value::from(SIGNED_TAG),
            Value::Binary(self.public_key.to_vec()),
            Value::Binary(self.salt.clone()),
            Value::from(self.seq),
            self.value.clone(),
            Value::Binary(self.signature.to_vec()),
        ])
    }
}

fn signed_bytes(salt: &[u8], seq: u64, value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNATURE_DOMAIN.len() + 1 + salt.len() + 8 + 16);
    out.extend_from_slice(SIGNATURE_DOMAIN);
    // A salt is at most MAX_SALT (64) bytes: its length fits one byte.
    out.push(salt.len() as u8);
    out.extend_from_slice(salt);
    out.extend_from_slice(&seq.to_be_bytes());
    encode_into(&mut out, value);
    out
}

/// A hash-named immutable record: its key is the sha1 of its bytes, so it needs no
/// signature and cannot be replaced.
#[derive(Clone, Debug, PartialEq)]
pub struct ImmutableRecord {
    /// A str or bin.
    pub value: Value,
}

impl ImmutableRecord {
    /// The record of `value`.
    ///
    /// # Errors
    /// [`RecordError::BadValue`] unless `value` is a str or bin.
    pub fn new(value: Value) -> Result<ImmutableRecord, RecordError> {
        if immutable_bytes(&value).is_none() {
            return Err(RecordError::BadValue);
        }
        Ok(ImmutableRecord { value })
    }

    /// The bytes it is named by: a str's UTF-8, a bin's bytes.
    pub fn bytes(&self) -> &[u8] {
        immutable_bytes(&self.value).unwrap_or_default()
    }

    /// The key it is stored under: the sha1 of [`bytes`](Self::bytes).
    pub fn target(&self) -> NodeId {
        immutable_target(self.bytes())
    }

    /// The wire value: a `bin` holding the MessagePack array `[IMMUTABLE_TAG, value]`.
    pub fn to_value(&self) -> Value {
        envelope(vec![Value::from(IMMUTABLE_TAG), self.value.clone()])
    }
}

fn immutable_bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::String(s) => s.as_str().map(str::as_bytes),
        Value::Binary(b) => Some(b),
        _ => None,
    }
}

/// A record that verified.
#[derive(Clone, Debug, PartialEq)]
pub enum Certified {
    /// A signed mutable record.
    Signed(SignedRecord),
    /// An immutable record.
    Immutable(ImmutableRecord),
}

impl Certified {
    /// The value it carries.
    pub fn value(&self) -> &Value {
        match self {
            Certified::Signed(r) => &r.value,
            Certified::Immutable(r) => &r.value,
        }
    }

    /// The wire value.
    pub fn to_value(&self) -> Value {
        match self {
            Certified::Signed(r) => r.to_value(),
            Certified::Immutable(r) => r.to_value(),
        }
    }
}

fn encode_into(out: &mut Vec<u8>, value: &Value) {
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(out, value);
}

fn envelope(items: Vec<Value>) -> Value {
    let mut out = Vec::with_capacity(128);
    encode_into(&mut out, &Value::Array(items));
    Value::Binary(out)
}

/// Whether `value` claims to be a record (a `bin` beginning with a record's array
/// header and tag), valid or not. O(1).
pub fn is_record_claim(value: &Value) -> bool {
    let Value::Binary(b) = value else {
        return false;
    };
    starts_signed(b) || starts_immutable(b)
}

fn starts_signed(b: &[u8]) -> bool {
    // fixarray of 6, then fixstr of 16.
    b.len() > 18 && b[0] == 0x96 && b[1] == 0xa0 | 16 && &b[2..18] == SIGNED_TAG.as_bytes()
}

fn starts_immutable(b: &[u8]) -> bool {
    // fixarray of 2, then fixstr of 19.
    b.len() > 21 && b[0] == 0x92 && b[1] == 0xa0 | 19 && &b[2..21] == IMMUTABLE_TAG.as_bytes()
}

/// Decodes a record claim without checking its signature or hash: `None` for a plain
/// value, `Some(Err(Malformed))` for a claim that is not in the canonical encoding.
fn decode(value: &Value) -> Option<Result<Certified, RecordError>> {
    let Value::Binary(b) = value else {
        return None;
    };
    if !(starts_signed(b) || starts_immutable(b)) {
        return None;
    }
    Some(decode_bytes(b))
}

fn decode_bytes(b: &[u8]) -> Result<Certified, RecordError> {
    let mut rd = b;
    // The array and its scalar elements (rmpv counts several steps per level): anything
    // nested deeper is malformed, so a deep claim costs no recursion.
    let parsed =
        rmpv::decode::read_value_with_max_depth(&mut rd, 6).map_err(|_| RecordError::Malformed)?;
    if !rd.is_empty() {
        return Err(RecordError::Malformed);
    }
    let Value::Array(items) = parsed else {
        return Err(RecordError::Malformed);
    };
    let record = match items.as_slice() {
        [_, Value::Binary(pk), Value::Binary(salt), Value::Integer(seq), value, Value::Binary(sig)]
            if starts_signed(b) =>
        {
            let public_key = <[u8; 32]>::try_from(pk.as_slice());
            let signature = <[u8; 64]>::try_from(sig.as_slice());
            match (public_key, signature, seq.as_u64()) {
                (Ok(public_key), Ok(signature), Some(seq))
                    if salt.len() <= MAX_SALT && is_storable(value) =>
                {
                    Certified::Signed(SignedRecord {
                        public_key,
                        salt: salt.clone(),
                        seq,
                        value: value.clone(),
                        signature,
                    })
                }
                _ => return Err(RecordError::Malformed),
            }
        }
        [_, value] if starts_immutable(b) && immutable_bytes(value).is_some() => {
            Certified::Immutable(ImmutableRecord {
                value: value.clone(),
            })
        }
        _ => return Err(RecordError::Malformed),
    };
    // One encoding per record: a re-encoded copy (a seq as uint64 instead of a fixint)
    // would be a second, different-looking value of the same record.
    if record.to_value() != Value::Binary(b.to_vec()) {
        return Err(RecordError::Malformed);
    }
    Ok(record)
}

/// What `value` stored under `key` is: `Ok(None)` a plain value (not a record claim),
/// `Ok(Some(record))` a record that verifies for `key`, `Err` a claim that does not.
///
/// ```
/// use rpcudp_proto::kad::record::{classify, ImmutableRecord, RecordError};
/// use rpcudp_proto::kad::NodeId;
///
/// let rec = ImmutableRecord::new("hello".into()).unwrap();
/// assert!(classify(&rec.target(), &rec.to_value()).unwrap().is_some());
/// assert_eq!(classify(&NodeId([0; 20]), &rec.to_value()), Err(RecordError::BadHash));
/// assert_eq!(classify(&NodeId([0; 20]), &"plain".into()), Ok(None));
/// ```
pub fn classify(key: &NodeId, value: &Value) -> Result<Option<Certified>, RecordError> {
    let Some(decoded) = decode(value) else {
        return Ok(None);
    };
    let record = decoded?;
    match &record {
        Certified::Signed(r) => {
            if r.target() != *key {
                return Err(RecordError::WrongTarget);
            }
            r.verify()?;
        }
        Certified::Immutable(r) => {
            if r.target() != *key {
                return Err(RecordError::BadHash);
            }
        }
    }
    Ok(Some(record))
}

/// Why a node refused to store a value over what it holds (each counted in
/// [`RecordRefusals`]; the `store` is answered `false`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The value claims to be a record and is not a valid one for its key.
    #[error("{0}")]
    Invalid(RecordError),
    /// A valid signed record whose seq is not above the held one's (an equal seq with
    /// a different value included).
    #[error("the seq is not above the held record's ({held})")]
    SeqNotAbove {
        /// The held record's seq.
        held: u64,
    },
    /// A plain value (or another record) over a held record.
    #[error("a value other than a newer record over a held record")]
    OverRecord,
}

/// Whether a node holding `held` under `key` stores `incoming` there: `Ok` to store
/// (or keep, if equal), `Err` to refuse. A valid record replaces a plain value (else
/// whoever stored garbage first would keep a record out); a signed record replaces a
/// lower seq of itself; nothing else replaces a record. Verifies `incoming` (one
/// Ed25519 verification at most); `held` is trusted, as it was verified when stored.
///
/// # Errors
/// [`Refusal`], why.
pub fn admit(key: &NodeId, held: Option<&Value>, incoming: &Value) -> Result<(), Refusal> {
    if held == Some(incoming) {
        return Ok(());
    }
    let new = classify(key, incoming).map_err(Refusal::Invalid)?;
    let old = held.and_then(decode).and_then(Result::ok);
    match (old, new) {
        (None, _) => Ok(()),
        (Some(Certified::Signed(old)), Some(Certified::Signed(new))) if new.seq > old.seq => Ok(()),
        (Some(Certified::Signed(old)), Some(Certified::Signed(_))) => {
            Err(Refusal::SeqNotAbove { held: old.seq })
        }
        (Some(_), _) => Err(Refusal::OverRecord),
    }
}

/// The counts of [`Refusal`]s, by reason (a part of the node's stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordRefusals {
    /// Record claims not in the canonical encoding.
    pub malformed: u64,
    /// Signed records whose signature did not verify.
    pub bad_signature: u64,
    /// Signed records stored under a key that is not their target.
    pub wrong_target: u64,
    /// Immutable records whose bytes do not hash to their key.
    pub bad_hash: u64,
    /// Signed records whose seq was not above the held one.
    pub seq_not_above: u64,
    /// Plain values (or other records) stored over a held record.
    pub over_record: u64,
}

impl RecordRefusals {
    /// Counts `refusal`.
    pub fn count(&mut self, refusal: &Refusal) {
        let slot = match refusal {
            Refusal::Invalid(RecordError::BadSignature) => &mut self.bad_signature,
            Refusal::Invalid(RecordError::WrongTarget) => &mut self.wrong_target,
            Refusal::Invalid(RecordError::BadHash) => &mut self.bad_hash,
            Refusal::Invalid(_) => &mut self.malformed,
            Refusal::SeqNotAbove { .. } => &mut self.seq_not_above,
            Refusal::OverRecord => &mut self.over_record,
        };
        *slot += 1;
    }

    /// `(reason label, count)` for each reason, as the metrics name them.
    pub fn by_reason(&self) -> [(&'static str, u64); 6] {
        [
            ("record_malformed", self.malformed),
            ("record_bad_signature", self.bad_signature),
            ("record_wrong_target", self.wrong_target),
            ("record_bad_hash", self.bad_hash),
            ("record_seq_not_above", self.seq_not_above),
            ("record_over_record", self.over_record),
        ]
    }
}

/// What [`RecordPick::offer`] made of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// It verified and is the best so far.
    Best,
    /// It verified, but is no better than the best so far (a lower or equal seq).
    Valid,
    /// It is not a valid record of the wanted target (counted in `rejected`).
    Rejected,
}

/// What a reader wants: the records of one signer and salt, or one immutable record.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Wanted {
    Signed { public_key: [u8; 32], salt: Vec<u8> },
    Immutable { target: NodeId },
}

/// A reader's choice among the values a lookup's answers carry: it keeps only what
/// verifies for the wanted target, and of signed records the highest seq. Answers that
/// fail are counted and ignored, however many send them.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordPick {
    wanted: Wanted,
    best: Option<Certified>,
    /// Answers that carried a value that is not a valid wanted record.
    pub rejected: u32,
}

impl RecordPick {
    /// The signed records of `public_key` under `salt`.
    pub fn signed(public_key: [u8; 32], salt: Vec<u8>) -> RecordPick {
        RecordPick {
            wanted: Wanted::Signed { public_key, salt },
            best: None,
            rejected: 0,
        }
    }

    /// The immutable record named `target`.
    pub fn immutable(target: NodeId) -> RecordPick {
        RecordPick {
            wanted: Wanted::Immutable { target },
            best: None,
            rejected: 0,
        }
    }

    /// The key to look up.
    pub fn target(&self) -> NodeId {
        match &self.wanted {
            Wanted::Signed { public_key, salt } => signed_target(public_key, salt),
            Wanted::Immutable { target } => *target,
        }
    }

    /// Considers an answer's value.
    pub fn offer(&mut self, value: &Value) -> Offer {
        let Ok(Some(rec)) = classify(&self.target(), value) else {
            self.rejected += 1;
            return Offer::Rejected;
        };
        let better = match (&self.wanted, &rec, &self.best) {
            (Wanted::Signed { .. }, Certified::Signed(new), Some(Certified::Signed(old))) => {
                new.seq > old.seq
            }
            (Wanted::Signed { .. }, Certified::Signed(_), None) => true,
            (Wanted::Immutable { .. }, Certified::Immutable(_), None) => true,
            (Wanted::Immutable { .. }, Certified::Immutable(_), Some(_)) => false,
            _ => {
                // Unreachable by the target's hash (a signed record under an immutable
                // record's name): rejected all the same.
                self.rejected += 1;
                return Offer::Rejected;
            }
        };
        if better {
            self.best = Some(rec);
            Offer::Best
        } else {
            Offer::Valid
        }
    }

    /// Whether nothing better can come: an immutable record was found (a signed one may
    /// always have a higher seq elsewhere, so its lookup runs to the end).
    pub fn is_final(&self) -> bool {
        matches!(self.best, Some(Certified::Immutable(_)))
    }

    /// The best record so far.
    pub fn best(&self) -> Option<&Certified> {
        self.best.as_ref()
    }

    /// The best record so far, taken.
    pub fn into_best(self) -> Option<Certified> {
        self.best
    }
}

#[cfg(test)]
mod tests;
