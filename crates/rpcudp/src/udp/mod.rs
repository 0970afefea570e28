//! Datagram endpoints on tokio + socket2: everything Twisted's UDP support offers.
//!
//! This module owns sockets: binding, options, sending and receiving datagrams. It knows
//! nothing of what the bytes mean.
//!
//! | Twisted | here |
//! | --- | --- |
//! | `reactor.listenUDP(port, proto, interface)` | [`Endpoint::bind`] / [`Endpoint::bind_with`] and a [`SocketConfig`], then [`listen`] |
//! | `reactor.listenMulticast(port, proto, listenMultiple=True)` | [`SocketConfig::listen_multiple`] |
//! | `reactor.adoptDatagramPort(fd, family, proto)` | [`Endpoint::from_fd`], [`Endpoint::from_std`] |
//! | `DatagramProtocol` (`startProtocol`, `datagramReceived`, `connectionRefused`, `stopProtocol`) | [`DatagramHandler`] |
//! | `transport.write(data, addr)` | [`Endpoint::send_to`] |
//! | `transport.connect(host, port)`, `write(data)` | [`Endpoint::connect`], [`Endpoint::send`] |
//! | `joinGroup`, `leaveGroup`, `setTTL`, `setLoopbackMode`, `setOutgoingInterface` | [`Endpoint::join_multicast`], [`Endpoint::leave_multicast`], [`Endpoint::set_multicast_ttl`], [`Endpoint::set_multicast_loop`], [`Endpoint::set_multicast_interface`] |
//! | `setBroadcastAllowed`, `getBroadcastAllowed`, `"<broadcast>"` | [`Endpoint::set_broadcast`], [`Endpoint::broadcast`], [`BROADCAST`] |
//! | `port.stopListening()` | [`Listening::stop`], [`Transport::stop_listening`] |
//! | `reactor.resolve(name)` | [`resolve`], [`resolve_ip`] |
//!
//! Beyond Twisted: a `Stream` of datagrams ([`Endpoint::datagrams`]), an explicit
//! dual-stack / v6-only choice ([`IpStack`]), buffer sizes, and a configurable largest
//! datagram: anything longer is dropped and counted ([`EndpointStats`]), never truncated.
//!
//! Not supported (yet): source-specific multicast; naming the IPv4 *outgoing* multicast
//! interface by index (give its address); interface names outside Linux (give the
//! index); ICMP errors on unconnected sockets (`IP_RECVERR`), which Twisted does not
//! report either.

mod adopt;
mod batch;
mod config;
mod endpoint;
mod handler;
mod multicast;
mod resolve;
mod stream;

pub use batch::{RecvBatch, SEND_BATCH_MAX};
/// The byte buffer [`Endpoint::recv_datagram`] and [`Datagrams`] hand out.
pub use bytes::Bytes;
pub use config::{BindError, IpStack, SocketConfig, MAX_UDP_PAYLOAD};
pub use endpoint::{is_connection_refused, Endpoint, EndpointStats, BROADCAST};
pub use handler::{listen, DatagramHandler, Listening, RunError, StopHandle, Transport};
pub use multicast::{is_link_local_multicast_v6, Interface, InterfaceError};
pub use resolve::{resolve, resolve_ip, ResolveError};
pub use stream::Datagrams;
