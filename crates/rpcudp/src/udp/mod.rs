//! Datagram endpoints on tokio + socket2: everything Twisted's UDP support offers.
//!
//! This module owns sockets: binding, options, sending and receiving datagrams. It knows
//! nothing of what the bytes mean.
//!
//! | Twisted | here |
//! | --- | --- |
//! | `reactor.listenUDP(port, proto, interface)` | [`Socket::bind`] / [`Socket::bind_with`] and a [`SocketConfig`], then [`listen`] |
//! | `reactor.listenMulticast(port, proto, listenMultiple=True)` | [`SocketConfig::listen_multiple`] |
//! | `reactor.adoptDatagramPort(fd, family, proto)` | [`Socket::from_fd`], [`Socket::from_std`] |
//! | `DatagramProtocol` (`startProtocol`, `datagramReceived`, `connectionRefused`, `stopProtocol`) | [`DatagramHandler`] |
//! | `transport.write(data, addr)` | [`Socket::send_to`] |
//! | `transport.connect(host, port)`, `write(data)` | [`Socket::connect`], [`Socket::send`] |
//! | `joinGroup`, `leaveGroup`, `setTTL`, `setLoopbackMode`, `setOutgoingInterface` | [`Socket::join_multicast`], [`Socket::leave_multicast`], [`Socket::set_multicast_ttl`], [`Socket::set_multicast_loop`], [`Socket::set_multicast_interface`] |
//! | `setBroadcastAllowed`, `getBroadcastAllowed`, `"<broadcast>"` | [`Socket::set_broadcast`], [`Socket::broadcast`], [`BROADCAST`] |
//! | `port.stopListening()` | [`Listening::stop`], [`Transport::stop_listening`] |
//! | `reactor.resolve(name)` | [`resolve`], [`resolve_ip`] |
//!
//! Beyond Twisted: a `Stream` of datagrams ([`Socket::datagrams`]), an explicit
//! dual-stack / v6-only choice ([`IpStack`]), buffer sizes, and a configurable largest
//! datagram: anything longer is dropped and counted ([`SocketStats`]), never truncated.
//!
//! Not supported (yet): source-specific multicast; naming the IPv4 *outgoing* multicast
//! interface by index (give its address); interface names outside Linux (give the
//! index); ICMP errors on unconnected sockets (`IP_RECVERR`), which Twisted does not
//! report either.

mod adopt;
mod batch;
mod config;
mod handler;
mod multicast;
mod resolve;
mod socket;
mod stream;

pub use batch::{RecvBatch, SEND_BATCH_MAX};
/// The byte buffer [`Socket::recv_datagram`] and [`Datagrams`] hand out.
pub use bytes::Bytes;
pub use config::{BindError, IpStack, SocketConfig, MAX_UDP_PAYLOAD};
pub use handler::{listen, DatagramHandler, Listening, RunError, StopHandle, Transport};
pub use multicast::{is_link_local_multicast_v6, Interface, InterfaceError};
pub use resolve::{resolve, resolve_ip, ResolveError};
pub use socket::{is_connection_refused, Socket, SocketStats, BROADCAST};
pub use stream::Datagrams;
