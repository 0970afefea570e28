//! [`SocketConfig`]: every option that must be set before a socket is bound.

use super::socket::Socket;
use std::io;
use std::net::SocketAddr;

/// The largest UDP payload any IP datagram can carry (65,527; IPv4 tops out lower, at
/// 65,507). The default [`SocketConfig::max_datagram`], so by default nothing a real
/// network can deliver is ever dropped as oversized. (The core's constant, re-exported.)
pub use rpcudp_proto::wire::MAX_UDP_PAYLOAD;

/// How an IPv6 socket treats IPv4 traffic (`IPV6_V6ONLY`). Ignored for IPv4 addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpStack {
    /// Leave the system default (`/proc/sys/net/ipv6/bindv6only` on Linux, usually
    /// dual-stack).
    #[default]
    SystemDefault,
    /// One socket for both families: IPv4 peers appear as `::ffff:a.b.c.d`.
    DualStack,
    /// IPv6 only; an IPv4 socket may then bind the same port separately.
    V6Only,
}

/// Why [`Socket::bind`] / [`Socket::bind_with`] failed. Each variant names the step
/// that failed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The operating system refused to create a UDP socket (out of descriptors, or no
    /// IPv6 support for an IPv6 address). Remedy: check limits and the address family.
    #[error("cannot create a UDP socket for {addr}: {source}")]
    Socket {
        /// The address we meant to bind.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// A socket option could not be set (for instance `SO_REUSEPORT` on a system that
    /// lacks it, or a buffer size above the system limit).
    #[error("cannot set {option} on the UDP socket: {source}")]
    SetOption {
        /// The option, as the OS names it (`SO_REUSEADDR`, ...).
        option: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The bind itself failed: the port is taken (without address reuse), the address
    /// is not local, or a port below 1024 needs privileges.
    #[error("cannot bind UDP to {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The configuration contradicts itself (for instance `max_datagram: 0`).
    #[error("invalid UDP endpoint configuration: {0}")]
    Invalid(&'static str),
}

// `Dht::bind` binds its RPC node with `?`; it reports a failed bind as the I/O error it
// is (kept here, beside the io::Error conversion, so the DHT module need not change).
impl From<BindError> for crate::kad::DhtError {
    fn from(e: BindError) -> Self {
        io::Error::from(e).into()
    }
}

impl From<BindError> for io::Error {
    fn from(e: BindError) -> io::Error {
        let kind = match &e {
            BindError::Socket { source, .. }
            | BindError::SetOption { source, .. }
            | BindError::Bind { source, .. } => source.kind(),
            BindError::Invalid(_) => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

/// The options of a datagram socket, applied before binding (the equivalent of
/// `listenUDP(port, protocol, interface, maxPacketSize)` and
/// `listenMulticast(..., listenMultiple=True)`). A plain struct: set the fields you need
/// and take the rest from [`Default`], then [`Socket::bind_with`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use rpcudp::udp::{Socket, IpStack, SocketConfig};
/// let config = SocketConfig {
///     ip_stack: IpStack::V6Only,
///     reuse_address: true,
///     recv_buffer_size: Some(1 << 20),
///     max_datagram: 1500,
///     ..SocketConfig::default()
/// };
/// let endpoint = Socket::bind_with("[::1]:0".parse()?, config).await?;
/// assert!(endpoint.local_addr()?.is_ipv6());
/// assert_eq!(endpoint.max_datagram(), 1500);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketConfig {
    /// Dual-stack or IPv6-only, for IPv6 addresses (default: the system's choice).
    pub ip_stack: IpStack,
    /// `SO_REUSEADDR`: lets several sockets bind the same port (default off).
    pub reuse_address: bool,
    /// `SO_REUSEPORT` where the system has it (default off). Ignored elsewhere.
    pub reuse_port: bool,
    /// `SO_BROADCAST`: allow sending to broadcast addresses (default off). Can also be
    /// changed later with [`Socket::set_broadcast`].
    pub broadcast: bool,
    /// `SO_RCVBUF` in bytes (the kernel may double or cap it); `None` (default): the
    /// system's.
    pub recv_buffer_size: Option<usize>,
    /// `SO_SNDBUF` in bytes (the kernel may double or cap it); `None` (default): the
    /// system's.
    pub send_buffer_size: Option<usize>,
    /// The largest datagram accepted, in bytes, 1 to 65,535 (default
    /// [`MAX_UDP_PAYLOAD`]). A larger datagram is dropped and counted in
    /// [`SocketStats::oversized_dropped`](super::SocketStats), never handed over
    /// truncated.
    pub max_datagram: usize,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            ip_stack: IpStack::SystemDefault,
            reuse_address: false,
            reuse_port: false,
            broadcast: false,
            recv_buffer_size: None,
            send_buffer_size: None,
            max_datagram: MAX_UDP_PAYLOAD,
        }
    }
}

impl SocketConfig {
    /// Twisted's `listenMultiple=True`: the defaults plus `SO_REUSEADDR` and
    /// `SO_REUSEPORT` (where it exists), so several multicast listeners on one host share
    /// a port. Each of them gets a copy of every multicast datagram.
    pub fn listen_multiple() -> Self {
        SocketConfig {
            reuse_address: true,
            reuse_port: true,
            ..SocketConfig::default()
        }
    }

    /// Creates the socket, applies the options, binds it to `addr` (port 0: any free
    /// port) and registers it with tokio. Must run inside a tokio runtime.
    pub(crate) fn bind_now(self, addr: SocketAddr) -> Result<Socket, BindError> {
        use socket2::{Domain, Protocol, Type};
        if self.max_datagram == 0 || self.max_datagram > 65_535 {
            return Err(BindError::Invalid("max_datagram must be 1..=65535"));
        }
        let socket =
            socket2::Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
                .map_err(|source| BindError::Socket { addr, source })?;
        let opt = |option: &'static str| move |source| BindError::SetOption { option, source };
        if addr.is_ipv6() {
            match self.ip_stack {
                IpStack::SystemDefault => {}
                IpStack::DualStack => socket.set_only_v6(false).map_err(opt("IPV6_V6ONLY"))?,
                IpStack::V6Only => socket.set_only_v6(true).map_err(opt("IPV6_V6ONLY"))?,
            }
        }
        if self.reuse_address {
            socket
                .set_reuse_address(true)
                .map_err(opt("SO_REUSEADDR"))?;
        }
        if self.reuse_port {
            set_reuse_port(&socket).map_err(opt("SO_REUSEPORT"))?;
        }
        if self.broadcast {
            socket.set_broadcast(true).map_err(opt("SO_BROADCAST"))?;
        }
        if let Some(n) = self.recv_buffer_size {
            socket.set_recv_buffer_size(n).map_err(opt("SO_RCVBUF"))?;
        }
        if let Some(n) = self.send_buffer_size {
            socket.set_send_buffer_size(n).map_err(opt("SO_SNDBUF"))?;
        }
        socket.set_nonblocking(true).map_err(opt("O_NONBLOCK"))?;
        socket
            .bind(&addr.into())
            .map_err(|source| BindError::Bind { addr, source })?;
        let std: std::net::UdpSocket = socket.into();
        let tokio = tokio::net::UdpSocket::from_std(std)
            .map_err(|source| BindError::Socket { addr, source })?;
        Ok(Socket::from_tokio(tokio, self.max_datagram))
    }
}

#[cfg(all(
    unix,
    not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
))]
fn set_reuse_port(socket: &socket2::Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(not(all(
    unix,
    not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
)))]
fn set_reuse_port(_socket: &socket2::Socket) -> io::Result<()> {
    // "where it exists": SO_REUSEADDR alone already lets multicast listeners share.
    Ok(())
}
