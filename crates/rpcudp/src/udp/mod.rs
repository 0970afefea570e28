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

    /// Receives one datagram if one is queued, without waiting: `WouldBlock` when none
    /// is (a driver drains the queue with it after [`poll_recv_ready`](Self::poll_recv_ready)
    /// before it waits again, one readiness wake-up for a batch of datagrams).
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.try_recv_from(buf)
    }

    /// Sends one datagram if the socket can take it now: `WouldBlock` when its send
    /// buffer is full (then [`send_to`](Self::send_to) waits for room).
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.socket.try_send_to(buf, target)
    }

    /// Ready once a datagram may be received; the waker of `cx` is woken when that
    /// happens. (A readiness that turns out stale makes `try_recv_from` return
    /// `WouldBlock`, which clears it.)
    pub fn poll_recv_ready(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        self.socket.poll_recv_ready(cx)
    }
}
