//! Pure parse/emit of the wire formats described in [docs/wire.md](https://github.com/rpcudp-rs/rpcudp-rs/blob/main/docs/wire.md).
//!
//! Untrusted bytes go through one checked parse; after it nothing panics.
//!
//! - [`value`]: bounded MessagePack decoding of untrusted bytes, smallest-width encoding
//!   (as `u-msgpack-python` does), and the check that a value is safe to send to the peers.
//! - [`lt`]: length-type frames.
//! - [`rpc`]: RPC datagrams (`kind | message id | body`) in the `rpcudp` and `storj` dialects.

pub mod lt;
pub mod rpc;
pub mod value;
