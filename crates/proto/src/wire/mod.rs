//! Pure parse/emit of the wire formats described in [docs/wire.md](https://github.com/rpcudp-rs/rpcudp-rs/blob/main/docs/wire.md).
//!
//! Untrusted bytes go through one checked parse; after it nothing panics.
//!
//! - [`value`]: bounded MessagePack decoding of untrusted bytes, smallest-width encoding
//!   (as `u-msgpack-python` does), and the check that a value is safe to send to the peers.
//! - [`lt`]: length-type frames.
//! - [`rpc`]: RPC datagrams (`kind | message id | body`) in the `rpcudp` and `storj` dialects,
//!   and the error reply.
//! - [`typed`]: serde types to values and back, structs as maps with their field names.

pub mod lt;
pub mod rpc;
pub mod typed;
pub mod value;

/// The largest UDP payload any IP datagram can carry without IPv6 jumbograms: 65,535
/// minus the 8-byte UDP header. (Over IPv4 the 20-byte IP header counts too, so there
/// the limit is [`MAX_UDP_PAYLOAD_V4`].) A receive buffer this large never truncates.
pub const MAX_UDP_PAYLOAD: usize = 65_527;

/// The largest UDP payload over IPv4: 65,535 minus the 20-byte IP and 8-byte UDP
/// headers. The RPC response body limit of the `rpcudp` dialect is this minus the
/// 21-byte RPC header, so an answer that fits the limit can be sent over either family.
pub const MAX_UDP_PAYLOAD_V4: usize = 65_507;
