//! Records nobody can forge on the tokio [`Dht`]: [`Dht::put_signed`],
//! [`Dht::get_signed`], [`Dht::put_immutable`], [`Dht::get_immutable`]. The encoding,
//! verification and the rule a node applies before it stores are the core's
//! ([`rpcudp_proto::kad::record`], `docs/wire.md` §3.1); this file only turns them into
//! commands of the node.
//!
//! ```
//! use rpcudp::kad::{Dht, DhtConfig};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = DhtConfig::default();
//! config.node.rpc_timeout = Duration::from_millis(500);
//! let first = Dht::start("127.0.0.1:0".parse()?, config.clone()).await?;
//! let second = Dht::start("127.0.0.1:0".parse()?, config).await?;
//! second.bootstrap(&[first.local_addr()]).await;
//!
//! let secret = [9u8; 32];
//! let put = second.put_signed(&secret, b"", None, "v1".into()).await?;
//! assert_eq!((put.seq, put.stored_on), (Some(1), 1));
//! let put = second.put_signed(&secret, b"", None, "v2".into()).await?;
//! assert_eq!(put.seq, Some(2));
//! let public_key = rpcudp::kad::record::public_key(&secret);
//! let got = first.get_signed(&public_key, b"").await?.unwrap();
//! assert_eq!((got.seq, got.value), (2, "v2".into()));
//! second.shutdown().await;
//! first.shutdown().await;
//! # Ok(()) }
//! ```

use super::{App, Command, Dht, DhtError, Reply};
use rmpv::Value;
use rpcudp_proto::kad::record::{
    self, Certified, ImmutableRecord, RecordError, RecordPick, SignedRecord,
};
use rpcudp_proto::kad::{CommandError, NodeId, QueryId};
use tokio::sync::oneshot;

/// What a [`Dht::put_signed`] or [`Dht::put_immutable`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// The key the record is stored under.
    pub target: NodeId,
    /// The signed record's seq (`None` for an immutable record).
    pub seq: Option<u64>,
    /// How many other nodes acknowledged the store.
    pub stored_on: usize,
}

/// Why a put failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PutError {
    /// The node could not run the lookup or the store (see [`DhtError`]).
    #[error(transparent)]
    Dht(#[from] DhtError),
    /// The record cannot be made: a value of the wrong kind, a salt too long.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The seq asked for is not above the highest the network holds for this target.
    /// Remedy: a higher seq, or none (one more than the highest found is taken).
    #[error("seq {asked} is not above seq {found}, the highest the network holds for this target")]
    SeqNotAbove {
        /// The seq asked for.
        asked: u64,
        /// The highest valid seq found.
        found: u64,
    },
}

impl Dht {
    /// The highest-seq record signed by `public_key` under `salt` that verifies, from the
    /// answers of every node the lookup asked (here included); `None` if none verifies.
    /// Answers that fail are ignored and the lookup goes on past them.
    pub async fn get_signed(
        &self,
        public_key: &[u8; 32],
        salt: &[u8],
    ) -> Result<Option<SignedRecord>, DhtError> {
        let pick = RecordPick::signed(*public_key, salt.to_vec());
        Ok(match self.get_record(pick).await? {
            Some(Certified::Signed(r)) => Some(r),
            _ => None,
        })
    }

    /// The value of the immutable record named `target` (a str or bin whose bytes hash to
    /// it), or `None`.
    pub async fn get_immutable(&self, target: NodeId) -> Result<Option<Value>, DhtError> {
        let pick = RecordPick::immutable(target);
        Ok(self.get_record(pick).await?.map(|r| r.value().clone()))
    }

    async fn get_record(&self, pick: RecordPick) -> Result<Option<Certified>, DhtError> {
        let target = pick.target();
        let found = self
            .command(|reply| Command::GetRecord { pick, reply })
            .await?;
        // The node hands back only what verified: decoding it again cannot fail.
        Ok(found.and_then(|v| record::classify(&target, &v).ok().flatten()))
    }

    /// Signs `value` with the 32-byte Ed25519 secret seed `secret` under `salt` and
    /// stores it on the nodes nearest its target `sha1(public key ‖ salt)`; this node
    /// republishes it while it runs. Without `seq`, one more than the highest seq the
    /// network holds (1 if none); a `seq` not above it is refused.
    ///
    /// # Errors
    /// [`PutError::SeqNotAbove`], [`PutError::Record`], [`PutError::Dht`].
    pub async fn put_signed(
        &self,
        secret: &[u8; 32],
        salt: &[u8],
        seq: Option<u64>,
        value: Value,
    ) -> Result<PutOutcome, PutError> {
        // Checked before the lookup: a bad value or salt costs no traffic.
        SignedRecord::sign(secret, salt, 0, value.clone())?;
        let found = self
            .get_signed(&record::public_key(secret), salt)
            .await?
            .map(|r| r.seq);
        let seq = match (seq, found) {
            (Some(asked), Some(found)) if asked <= found => {
                return Err(PutError::SeqNotAbove { asked, found })
            }
            (Some(asked), _) => asked,
            (None, Some(found)) => found.checked_add(1).ok_or(PutError::SeqNotAbove {
                asked: found,
                found,
            })?,
            (None, None) => 1,
        };
        let rec = SignedRecord::sign(secret, salt, seq, value)?;
        let target = rec.target();
        let stored_on = self.set(target, rec.to_value()).await?;
        Ok(PutOutcome {
            target,
            seq: Some(seq),
            stored_on,
        })
    }

    /// Stores `value` (a str or bin) as an immutable record under the sha1 of its bytes.
    ///
    /// # Errors
    /// [`PutError::Record`] for another kind of value, [`PutError::Dht`].
    pub async fn put_immutable(&self, value: Value) -> Result<PutOutcome, PutError> {
        let rec = ImmutableRecord::new(value)?;
        let target = rec.target();
        let stored_on = self.set(target, rec.to_value()).await?;
        Ok(PutOutcome {
            target,
            seq: None,
            stored_on,
        })
    }
}

impl App {
    /// Waits for a started get (plain or record) to answer `reply`, or answers its error.
    pub(super) fn reply_get(
        &mut self,
        started: Result<QueryId, CommandError>,
        reply: oneshot::Sender<Result<Option<Value>, DhtError>>,
    ) {
        match started {
            Ok(q) => {
                self.replies.insert(q, Reply::Get(reply));
            }
            Err(e) => {
                let _ = reply.send(Err(e.into()));
            }
        }
    }
}
