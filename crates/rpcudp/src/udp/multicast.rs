//! Multicast on an [`Socket`]: join/leave, TTL, loopback mode, outgoing interface
//! (Twisted's `IMulticastTransport`), and [`Interface`], the way to name a network
//! interface for it.

use super::socket::Socket;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A network interface for multicast: IPv4 names interfaces by one of their addresses,
/// IPv6 by index.
///
/// Parses from text as an IPv4 address, an index (`2`) or, on Linux, an interface name
/// (`eth0`, looked up in `/sys/class/net`).
///
/// ```
/// use rpcudp::udp::Interface;
/// assert_eq!("127.0.0.1".parse::<Interface>().unwrap(), Interface::V4("127.0.0.1".parse().unwrap()));
/// assert_eq!("3".parse::<Interface>().unwrap(), Interface::Index(3));
/// assert!("no-such-interface-xyz".parse::<Interface>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interface {
    /// Let the kernel choose (by the routing table).
    #[default]
    Any,
    /// The IPv4 interface holding this address.
    V4(Ipv4Addr),
    /// The interface with this index (IPv6, and IPv4 joins on Linux).
    Index(u32),
}

/// Why an interface name could not be used.
#[derive(Debug, thiserror::Error)]
pub enum InterfaceError {
    /// No interface has this name. Remedy: `ip link` lists the names.
    #[error("no network interface named '{0}'")]
    NotFound(String),
    /// This system offers no way (without `unsafe`) to look names up; pass the index.
    #[error("cannot look up interface names here; give the interface index instead of '{0}'")]
    Unsupported(String),
}

impl Interface {
    /// The interface called `name` (Linux: from `/sys/class/net/<name>/ifindex`).
    pub fn by_name(name: &str) -> Result<Interface, InterfaceError> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(InterfaceError::NotFound(name.to_string()));
        }
        if cfg!(target_os = "linux") {
            let path = format!("/sys/class/net/{name}/ifindex");
            std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .map(Interface::Index)
                .ok_or_else(|| InterfaceError::NotFound(name.to_string()))
        } else {
            Err(InterfaceError::Unsupported(name.to_string()))
        }
    }

    fn index_for_v6(self) -> io::Result<u32> {
        match self {
            Interface::Any => Ok(0),
            Interface::Index(i) => Ok(i),
            Interface::V4(a) => Err(invalid(format!(
                "IPv6 multicast names interfaces by index or name, not by the IPv4 address {a}"
            ))),
        }
    }
}

impl std::fmt::Display for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interface::Any => f.write_str("any interface"),
            Interface::V4(a) => write!(f, "the interface of {a}"),
            Interface::Index(i) => write!(f, "interface #{i}"),
        }
    }
}

impl std::str::FromStr for Interface {
    type Err = InterfaceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(a) = s.parse::<Ipv4Addr>() {
            return Ok(if a.is_unspecified() {
                Interface::Any
            } else {
                Interface::V4(a)
            });
        }
        if let Ok(i) = s.parse::<u32>() {
            return Ok(Interface::Index(i));
        }
        Interface::by_name(s)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl Socket {
    fn is_v4(&self) -> io::Result<bool> {
        Ok(self.local_addr()?.is_ipv4())
    }

    /// Joins multicast `group` on `interface` (Twisted's `joinGroup`). Datagrams sent to
    /// the group and this socket's port then arrive here, besides unicast ones.
    ///
    /// On Linux this also turns `IP_MULTICAST_ALL` / `IPV6_MULTICAST_ALL` off, so the
    /// socket receives only the groups *it* joined. Linux's default would also deliver
    /// groups that other sockets on the host joined on the same port, which makes
    /// [`leave_multicast`](Self::leave_multicast) appear not to work.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use rpcudp::udp::{Socket, Interface, SocketConfig};
    /// let ep = Socket::bind_with("0.0.0.0:8005".parse()?, SocketConfig::listen_multiple()).await?;
    /// ep.join_multicast("228.0.0.5".parse()?, Interface::Any)?;
    /// ep.set_multicast_ttl(5)?;
    /// # Ok(()) }
    /// ```
    pub fn join_multicast(&self, group: IpAddr, interface: Interface) -> io::Result<()> {
        self.membership(group, interface, true)
    }

    /// Leaves a group joined with [`join_multicast`](Self::join_multicast) (Twisted's
    /// `leaveGroup`).
    pub fn leave_multicast(&self, group: IpAddr, interface: Interface) -> io::Result<()> {
        self.membership(group, interface, false)
    }

    fn membership(&self, group: IpAddr, interface: Interface, join: bool) -> io::Result<()> {
        if !group.is_multicast() {
            return Err(invalid(format!("{group} is not a multicast group address")));
        }
        let sock = self.sock_ref();
        if join {
            only_joined_groups(&sock, group.is_ipv4());
        }
        match group {
            IpAddr::V4(g) => match interface {
                Interface::Any | Interface::V4(_) => {
                    let ifaddr = match interface {
                        Interface::V4(a) => a,
                        _ => Ipv4Addr::UNSPECIFIED,
                    };
                    if join {
                        sock.join_multicast_v4(&g, &ifaddr)
                    } else {
                        sock.leave_multicast_v4(&g, &ifaddr)
                    }
                }
                Interface::Index(i) => join_v4_by_index(&sock, g, i, join),
            },
            IpAddr::V6(g) => {
                let index = interface.index_for_v6()?;
                if join {
                    sock.join_multicast_v6(&g, index)
                } else {
                    sock.leave_multicast_v6(&g, index)
                }
            }
        }
    }

    /// The TTL (IPv4) or hop limit (IPv6) of outgoing multicast datagrams (default 1:
    /// they do not cross a router).
    pub fn multicast_ttl(&self) -> io::Result<u32> {
        if self.is_v4()? {
            self.sock_ref().multicast_ttl_v4()
        } else {
            self.sock_ref().multicast_hops_v6()
        }
    }

    /// Sets the multicast TTL / hop limit (Twisted's `setTTL`).
    pub fn set_multicast_ttl(&self, ttl: u32) -> io::Result<()> {
        if self.is_v4()? {
            self.sock_ref().set_multicast_ttl_v4(ttl)
        } else {
            self.sock_ref().set_multicast_hops_v6(ttl)
        }
    }

    /// Whether this host's own group members get a copy of what this socket sends to a
    /// group (default on).
    pub fn multicast_loop(&self) -> io::Result<bool> {
        if self.is_v4()? {
            self.sock_ref().multicast_loop_v4()
        } else {
            self.sock_ref().multicast_loop_v6()
        }
    }

    /// Sets the loopback mode (Twisted's `setLoopbackMode`).
    pub fn set_multicast_loop(&self, on: bool) -> io::Result<()> {
        if self.is_v4()? {
            self.sock_ref().set_multicast_loop_v4(on)
        } else {
            self.sock_ref().set_multicast_loop_v6(on)
        }
    }

    /// The interface outgoing multicast datagrams leave by (`Any`: routing decides).
    pub fn multicast_interface(&self) -> io::Result<Interface> {
        if self.is_v4()? {
            let a = self.sock_ref().multicast_if_v4()?;
            Ok(if a.is_unspecified() {
                Interface::Any
            } else {
                Interface::V4(a)
            })
        } else {
            let i = self.sock_ref().multicast_if_v6()?;
            Ok(if i == 0 {
                Interface::Any
            } else {
                Interface::Index(i)
            })
        }
    }

    /// Chooses the interface for outgoing multicast (Twisted's `setOutgoingInterface`):
    /// an IPv4 address for IPv4 sockets, an index for IPv6 ones.
    pub fn set_multicast_interface(&self, interface: Interface) -> io::Result<()> {
        if self.is_v4()? {
            let a = match interface {
                Interface::Any => Ipv4Addr::UNSPECIFIED,
                Interface::V4(a) => a,
                Interface::Index(i) => {
                    return Err(invalid(format!(
                        "the IPv4 outgoing multicast interface is named by an address, not by index {i}"
                    )))
                }
            };
            self.sock_ref().set_multicast_if_v4(&a)
        } else {
            self.sock_ref()
                .set_multicast_if_v6(interface.index_for_v6()?)
        }
    }
}

#[cfg(target_os = "linux")]
fn only_joined_groups(sock: &socket2::SockRef<'_>, v4: bool) {
    let result = if v4 {
        sock.set_multicast_all_v4(false)
    } else {
        sock.set_multicast_all_v6(false)
    };
    // Best effort: IPV6_MULTICAST_ALL needs Linux 4.20, and an IPv6 socket joining an
    // IPv4 group may not take the IPv4 option. Membership works either way.
    if let Err(e) = result {
        tracing::debug!(error = %e, "cannot restrict the socket to its own multicast groups");
    }
}

#[cfg(not(target_os = "linux"))]
fn only_joined_groups(_sock: &socket2::SockRef<'_>, _v4: bool) {
    // Other systems deliver only the socket's own memberships already.
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
fn join_v4_by_index(
    sock: &socket2::SockRef<'_>,
    group: Ipv4Addr,
    index: u32,
    join: bool,
) -> io::Result<()> {
    let iface = socket2::InterfaceIndexOrAddress::Index(index);
    if join {
        sock.join_multicast_v4_n(&group, &iface)
    } else {
        sock.leave_multicast_v4_n(&group, &iface)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "fuchsia")))]
fn join_v4_by_index(
    _sock: &socket2::SockRef<'_>,
    _group: Ipv4Addr,
    index: u32,
    _join: bool,
) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("joining an IPv4 group by interface index ({index}) needs Linux; give an address"),
    ))
}

/// Whether `ip` is an IPv6 multicast address with link-local scope (`ff02::/16`), which
/// needs an interface to mean anything.
pub fn is_link_local_multicast_v6(ip: &Ipv6Addr) -> bool {
    ip.segments()[0] & 0xff0f == 0xff02
}
