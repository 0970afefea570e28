//! Length-type framed messages over TCP and UDP: the job of Python's `ltprotocol`, with
//! limits, a server that a slow peer cannot stall, and a client that reconnects.
//!
//! The frame format (a big-endian length counting the header, a big-endian type, the
//! body; each field 1, 2, 4 or 8 bytes) and its incremental decoder live in the sans-IO
//! crate, [`rpcudp_proto::wire::lt`], re-exported here. This module adds:
//!
//! | piece | what it is |
//! | --- | --- |
//! | [`LtMessage`], [`BinrwMessage`] | one message type: a type number and a body layout |
//! | [`MessageSet`], [`lt_messages!`](crate::lt_messages) | a set of messages plus header widths; unknown types arrive as [`Unknown`] |
//! | [`LtCodec`] | tokio-util `Decoder` / `Encoder`, for `Framed` on any byte stream |
//! | [`Server`], [`ServerHandle`] | TCP server: events, send, broadcast, live count, graceful shutdown |
//! | [`Client`] | TCP client that reconnects with backoff ([`ReconnectPolicy`]) |
//! | [`LtSocket`] | UDP: one frame per datagram on a [`crate::udp::Socket`] |
//!
//! # Declaring messages: why binrw
//!
//! `ltprotocol` gives "complete control over every byte" with `struct.pack`. Here a
//! message's body is either written by hand ([`LtMessage`]: two functions over bytes), or
//! declared with the [`binrw`] derive and [`BinrwMessage`] (a type number). We chose
//! binrw over deku because our layouts are byte-aligned like `struct`'s: binrw works
//! on bytes with `std::io` readers, reads and writes from one declaration (`#[binrw]`),
//! takes endianness per type or field (`#[brw(big)]`, and big-endian is our default as in
//! `'>...'`), and covers what `struct` formats need (integers of every width, fixed
//! arrays, counted and "rest of the body" vectors, magic values, padding), without deku's
//! bit-level machinery and its `bitvec` dependency that we would not use. Its errors name
//! the field and offset that failed. A body must be consumed whole: trailing bytes are an
//! error, so a layout mistake shows at once.
//!
//! `binrw` is re-exported as [`rpcudp::lt::binrw`](binrw): `use rpcudp::lt::binrw::{self,
//! binrw};` brings the attribute and the paths its expansion uses, so a program needs no
//! dependency of its own on it. A protocol's header widths are the inherent
//! `Msg::FORMAT` that [`lt_messages!`](crate::lt_messages) generates (no trait import).
//!
//! ```
//! use rpcudp::lt::binrw::{self, binrw};
//! use rpcudp::lt::BinrwMessage;
//!
//! /// `struct.pack(">I", num)`, type 1.
//! #[binrw]
//! #[derive(Debug, Clone, PartialEq)]
//! pub struct NumMsg { pub num: u32 }
//! impl BinrwMessage for NumMsg { const TYPE: u64 = 1; }
//!
//! /// A count-prefixed list of `(u16, u16)` pairs, type 3.
//! #[binrw]
//! #[derive(Debug, Clone, PartialEq)]
//! pub struct Pairs {
//!     #[bw(calc = items.len() as u8)]
//!     count: u8,
//!     #[br(count = count)]
//!     pub items: Vec<(u16, u16)>,
//! }
//! impl BinrwMessage for Pairs { const TYPE: u64 = 3; }
//!
//! rpcudp::lt_messages! {
//!     /// Our protocol.
//!     #[derive(Debug, Clone, PartialEq)]
//!     pub enum Msg {
//!         /// A number.
//!         Num(NumMsg),
//!         /// Pairs.
//!         Pairs(Pairs),
//!     }
//! }
//!
//! let bytes = rpcudp::lt::encode_to_bytes(&Msg::from(Pairs { items: vec![(1, 2)] }), &Msg::FORMAT).unwrap();
//! assert_eq!(&bytes[..], &[0, 8, 3, 1, 0, 1, 0, 2]);
//! ```
//!
//! # What it does not do
//! - No delivery guarantee beyond TCP's: a message written to a connection that then
//!   breaks may be lost; the client does not resend (see [`Client`]).
//! - No TLS, no authentication, no compression: wrap the stream yourself if you need them
//!   ([`LtCodec`] works on any `AsyncRead + AsyncWrite`).
//! - Over UDP, no fragmentation: a frame must fit one datagram (65507 bytes over IPv4).
//!
//! # Limits
//! Every buffer is bounded: incoming frames by the max frame (checked in the header,
//! before the body is read), outgoing queues by frames and bytes per connection
//! ([`ServerConfig`], [`ClientConfig`]), events by a bounded channel that pauses reading
//! when the application falls behind.

mod backoff;
mod client;
mod codec;
mod guard;
mod message;
mod server;
mod udp;

/// The `binrw` crate that [`BinrwMessage`] bodies are declared with, re-exported so that
/// `#[binrw]` works without a direct dependency: `use rpcudp::lt::binrw::{self, binrw};`.
pub use binrw;

pub use backoff::{Backoff, ReconnectPolicy};
pub use bytes::Bytes;
pub use client::{Client, ClientConfig, ClientEvent};
pub use codec::{LtCodec, LtError};
pub use guard::{ConnLimits, Guard, GuardError, GuardStats, GuardedReader, Ticket};
pub use message::{
    encode_to_bytes, BinrwMessage, BodyError, FrameEncodeError, LtMessage, MessageSet, Unknown,
};
pub use rpcudp_proto::wire::lt::{
    DatagramError, EncodeError, Frame, FrameDecoder, FrameError, FrameFormat, Width,
};
pub use server::{
    ConnId, Disconnect, Overflow, SendError, Server, ServerConfig, ServerEvent, ServerHandle,
    ServerStats,
};
pub use udp::{LtSocket, UdpStats};
