//! The one shape every sans-IO state machine in this crate has, so that one driver (the
//! tokio loop in `rpcudp`) and one simulator (`rpcudp-sim`) can run any of them.
//!
//! Owns: the [`Protocol`] trait and the [`Transmit`] it hands out. Does not own: any
//! protocol's commands (`call`, `respond`, `set`, `get`, ...), which stay inherent methods
//! of each state machine and are reached through `&mut P`.
//!
//! The order of calls, for a driver or a simulator:
//! 1. feed inputs: [`Protocol::handle_datagram`] for each datagram that arrived,
//!    [`Protocol::handle_timeout`] once the deadline from `poll_timeout` has passed, and
//!    any protocol-specific command;
//! 2. drain outputs: [`Protocol::poll_transmit`] until `None` (send each),
//!    [`Protocol::poll_event`] until `None` (act on each);
//! 3. sleep until [`Protocol::poll_timeout`] or the next datagram, whichever comes first.
//!
//! Time is always an argument: nothing here reads a clock.
//!
//! ```
//! use std::time::Instant;
//! use rpcudp_proto::rpc::{CallOptions, Endpoint, EndpointConfig};
//! use rpcudp_proto::Protocol;
//!
//! fn drain<P: Protocol>(p: &mut P) -> usize {
//!     let mut sent = 0;
//!     while let Some(_t) = p.poll_transmit() {
//!         sent += 1;
//!     }
//!     sent
//! }
//!
//! let now = Instant::now(); // the caller's clock, not the core's
//! let mut ep = Endpoint::new(EndpointConfig::default(), 7);
//! let to = "127.0.0.1:9000".parse().unwrap();
//! ep.call(now, to, "ping", &[], CallOptions::default()).unwrap();
//! assert_eq!(drain(&mut ep), 1);
//! assert!(Protocol::poll_timeout(&ep).is_some()); // the call's timeout
//! ```

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The local address to send it from, when it matters: an answer goes out from the
    /// address its request came to, so that a socket bound to a wildcard address
    /// (`0.0.0.0`, `::`) answers a caller that called 127.0.0.2 from 127.0.0.2 (the
    /// caller accepts answers only from the address it called). `None`: let the kernel
    /// choose (a socket bound to one address always sends from it).
    pub source: Option<IpAddr>,
    /// The whole datagram.
    pub payload: Vec<u8>,
}

/// A sans-IO protocol state machine: datagrams and time in, datagrams, events and the
/// next deadline out. See the [module docs](self) for the order of calls.
pub trait Protocol {
    /// What the application must act on (a request to serve, a finished call or query,
    /// a record to make durable, ...).
    type Event;

    /// A datagram arrived at `now` from `from`. `local` is the local address it was sent
    /// to, when the driver knows it (IP_PKTINFO / IPV6_RECVPKTINFO); answers to it should
    /// carry it as their [`Transmit::source`].
    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: Option<IpAddr>,
        datagram: &[u8],
    );

    /// The deadline from [`poll_timeout`](Self::poll_timeout) has passed (calling it
    /// early, or more often, is harmless).
    fn handle_timeout(&mut self, now: Instant);

    /// The next datagram to send, oldest first.
    fn poll_transmit(&mut self) -> Option<Transmit>;

    /// The next event, oldest first.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// When [`handle_timeout`](Self::handle_timeout) must be called next; `None`:
    /// nothing is scheduled.
    fn poll_timeout(&self) -> Option<Instant>;
}
