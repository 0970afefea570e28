//! Datagram endpoints on tokio + socket2.
//!
//! This module owns sockets: binding, options, sending and receiving datagrams. It knows
//! nothing of what the bytes mean.

use std::io;
use std::net::SocketAddr;

/// A bound UDP socket.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let a = rpcudp::udp::Endpoint::bind("127.0.0.1:0".parse().unwrap()).await?;
/// let b = rpcudp::udp::Endpoint::bind("127.0.0.1:0".parse().unwrap()).await?;
/// a.send_to(b"hello", b.local_addr()?).await?;
/// let mut buf = [0u8; 64];
/// let (n, from) = b.recv_from(&mut buf).await?;
/// assert_eq!(&buf[..n], b"hello");
/// assert_eq!(from, a.local_addr()?);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Endpoint {
    socket: tokio::net::UdpSocket,
}

impl Endpoint {
    /// Binds a UDP socket to `addr` (port 0 picks any free port).
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = tokio::net::UdpSocket::bind(addr).await?;
        Ok(Self { socket })
    }

    /// The address the socket is bound to, with the real port.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends one datagram to `target`.
    pub async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.socket.send_to(buf, target).await
    }

    /// Receives one datagram into `buf`, returning its length and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf).await
    }
}
