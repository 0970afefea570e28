//! Forged UDP sources for the hostile tests (issue 16): a raw `IP_HDRINCL` socket that
//! sends UDP datagrams with any IPv4 source address and port, as an off-path attacker
//! does. It never receives: whatever the target answers goes to the forged address
//! (on loopback, to a port nobody listens on).
//!
//! Needs root (`CAP_NET_RAW`); tests send only to 127.0.0.0/8.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::SocketAddrV4;

/// A raw socket that writes its own IPv4 and UDP headers.
pub struct Forger {
    sock: Socket,
    packet: Vec<u8>,
}

impl Forger {
    /// A raw socket with `IP_HDRINCL` (panics without `CAP_NET_RAW`, naming it).
    pub fn new() -> Forger {
        let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP))
            .unwrap_or_else(|e| panic!("raw socket (needs root / CAP_NET_RAW): {e}"));
        sock.set_header_included_v4(true)
            .expect("IP_HDRINCL on a raw socket");
        Forger {
            sock,
            packet: Vec::with_capacity(65_536),
        }
    }

    /// Sends `payload` to `to` as if from `from` (UDP checksum 0: optional over IPv4;
    /// the kernel fills the IP checksum and total length). The bytes put on the wire,
    /// headers included.
    pub fn send(
        &mut self,
        from: SocketAddrV4,
        to: SocketAddrV4,
        payload: &[u8],
    ) -> io::Result<usize> {
        let udp_len = 8 + payload.len();
        let total = 20 + udp_len;
        let p = &mut self.packet;
        p.clear();
        p.extend_from_slice(&[0x45, 0]);
        p.extend_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        p.extend_from_slice(&from.ip().octets());
        p.extend_from_slice(&to.ip().octets());
        p.extend_from_slice(&from.port().to_be_bytes());
        p.extend_from_slice(&to.port().to_be_bytes());
        p.extend_from_slice(&(udp_len as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        let dest = SockAddr::from(SocketAddrV4::new(*to.ip(), 0));
        self.sock.send_to(p, &dest)
    }
}

impl Default for Forger {
    fn default() -> Self {
        Forger::new()
    }
}
