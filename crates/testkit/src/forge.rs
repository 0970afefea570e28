//! UDP datagrams with a forged IPv4 source address, as an off-path attacker sends them:
//! a raw socket (`IPPROTO_RAW`, which implies `IP_HDRINCL`) writing the IPv4 and UDP
//! headers itself. Needs root (CAP_NET_RAW); [`Forger::new`] says so when it fails.
//!
//! Owns only the crafting; what is sent (and to whom: tests send to 127.0.0.0/8 only) is
//! the test's. The kernel fills in the IPv4 checksum and total length; the UDP checksum
//! is left 0 (none, allowed for IPv4).

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{SocketAddr, SocketAddrV4};

/// A raw socket for forged UDP datagrams.
pub struct Forger {
    sock: Socket,
    id: u16,
}

impl Forger {
    /// A raw socket, or why not (not root, no CAP_NET_RAW).
    pub fn new() -> std::io::Result<Forger> {
        let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))?;
        sock.set_header_included_v4(true)?;
        Ok(Forger { sock, id: 1 })
    }

    /// Sends `payload` to `to` as a UDP datagram from `from` (both IPv4); the bytes
    /// put on the wire (headers included).
    pub fn send(&mut self, from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> usize {
        let packet = udp_v4(from, to, payload, self.id);
        self.id = self.id.wrapping_add(1);
        let dest = SockAddr::from(SocketAddr::V4(to));
        self.sock.send_to(&packet, &dest).unwrap_or(0)
    }
}

/// An IPv4 packet carrying a UDP datagram from `from` to `to`.
fn udp_v4(from: SocketAddrV4, to: SocketAddrV4, payload: &[u8], id: u16) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x40, 0, 64, 17, 0, 0]); // don't fragment, TTL 64, UDP, checksum
    p.extend_from_slice(&from.ip().octets());
    p.extend_from_slice(&to.ip().octets());
    p.extend_from_slice(&from.port().to_be_bytes());
    p.extend_from_slice(&to.port().to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    #[test]
    fn a_forged_datagram_arrives_with_the_forged_source() {
        let mut f = Forger::new().expect("a raw socket (the tests run as root)");
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let SocketAddr::V4(to) = rx.local_addr().unwrap() else {
            unreachable!()
        };
        let from: SocketAddrV4 = "127.9.8.7:4242".parse().unwrap();
        assert_eq!(f.send(from, to, b"hello"), 33);
        let mut buf = [0u8; 64];
        let (n, src) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(src, SocketAddr::V4(from));
    }
}
