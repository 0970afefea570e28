//! [`Socket`]: a bound UDP socket with oversize detection and counters.

use super::batch::{self, RecvBatch};
use super::config::{BindError, SocketConfig, MAX_UDP_PAYLOAD};
use bytes::Bytes;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::Interest;

/// The limited broadcast address, Twisted's `"<broadcast>"`.
pub const BROADCAST: Ipv4Addr = Ipv4Addr::BROADCAST;

/// Counters of one endpoint, shared with whoever watches it (a [`Listening`](super::Listening)
/// handle keeps reading them after the socket closed).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    received: AtomicU64,
    sent: AtomicU64,
    oversized: AtomicU64,
    refused: AtomicU64,
    recv_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> SocketStats {
        SocketStats {
            datagrams_received: self.received.load(Ordering::Relaxed),
            datagrams_sent: self.sent.load(Ordering::Relaxed),
            oversized_dropped: self.oversized.load(Ordering::Relaxed),
            connection_refused: self.refused.load(Ordering::Relaxed),
            recv_errors: self.recv_errors.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_recv_error(&self) {
        self.recv_errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// What an endpoint has seen so far (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Datagrams handed to the application.
    pub datagrams_received: u64,
    /// Datagrams the kernel accepted for sending.
    pub datagrams_sent: u64,
    /// Datagrams dropped because they were larger than
    /// [`max_datagram`](Socket::max_datagram) or than the caller's buffer.
    pub oversized_dropped: u64,
    /// "Connection refused" reports (an ICMP port unreachable on a connected socket).
    pub connection_refused: u64,
    /// Other receive errors a [`Listening`](super::Listening) runner survived.
    pub recv_errors: u64,
}

/// A bound UDP socket: the equivalent of Twisted's UDP port and its transport.
///
/// Method kinds:
/// - create: [`bind`](Self::bind), [`bind_with`](Self::bind_with) (every option), or adopt an
///   existing socket with [`from_std`](Self::from_std) / [`from_fd`](Self::from_fd);
/// - unconnected traffic: [`send_to`](Self::send_to), [`recv_from`](Self::recv_from),
///   [`recv_datagram`](Self::recv_datagram), the stream [`datagrams`](Self::datagrams);
/// - connected UDP: [`connect`](Self::connect), then [`send`](Self::send) /
///   [`recv`](Self::recv); "connection refused" arrives as an error of kind
///   [`io::ErrorKind::ConnectionRefused`] and leaves the endpoint usable;
/// - multicast: [`join_multicast`](Self::join_multicast), TTL, loopback, interface;
/// - broadcast: [`set_broadcast`](Self::set_broadcast), [`send_broadcast`](Self::send_broadcast);
/// - watching: [`local_addr`](Self::local_addr), [`stats`](Self::stats).
///
/// Every receive path drops a datagram longer than [`max_datagram`](Self::max_datagram)
/// (or than the caller's buffer) and counts it in
/// [`SocketStats::oversized_dropped`]: nothing is ever handed over truncated.
///
/// To hand the endpoint to a [`DatagramHandler`](super::DatagramHandler), use
/// [`listen`](super::listen). Dropping the endpoint closes the socket.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let a = rpcudp::udp::Socket::bind("127.0.0.1:0".parse().unwrap()).await?;
/// let b = rpcudp::udp::Socket::bind("127.0.0.1:0".parse().unwrap()).await?;
/// a.send_to(b"hello", b.local_addr()?).await?;
/// let mut buf = [0u8; 64];
/// let (n, from) = b.recv_from(&mut buf).await?;
/// assert_eq!(&buf[..n], b"hello");
/// assert_eq!(from, a.local_addr()?);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Socket {
    socket: tokio::net::UdpSocket,
    max_datagram: usize,
    counters: Arc<Counters>,
    /// Receive space of `max_datagram + 1` bytes for callers whose own buffer is too
    /// small to tell "fits exactly" from "was truncated". Locked only around the
    /// non-blocking receive, never across an await.
    scratch: Mutex<Vec<u8>>,
    /// Whether [`try_send_batch`](Self::try_send_batch) may still use UDP GSO; turned
    /// off for good the first time the kernel refuses it.
    gso: AtomicBool,
    /// Whether receives ask for each datagram's local address (IP_PKTINFO); set by
    /// [`enable_local_addr`](Self::enable_local_addr).
    pktinfo: AtomicBool,
    /// The socket's family is IPv6 (its control messages are the IPv6 ones).
    v6: bool,
}

impl Socket {
    /// Binds a UDP socket to `addr` (port 0 picks any free port) with default options.
    pub async fn bind(addr: SocketAddr) -> Result<Self, BindError> {
        Socket::bind_with(addr, SocketConfig::default()).await
    }

    /// Binds a UDP socket to `addr` with the options of `config`, applied before the bind.
    pub async fn bind_with(addr: SocketAddr, config: SocketConfig) -> Result<Self, BindError> {
        // Binding a UDP socket never blocks, so this is async only to keep the door open
        // for options that would (and to match tokio's `UdpSocket::bind`).
        config.bind_now(addr)
    }

    pub(crate) fn from_tokio(socket: tokio::net::UdpSocket, max_datagram: usize) -> Self {
        let v6 = socket.local_addr().is_ok_and(|a| a.is_ipv6());
        Socket {
            socket,
            max_datagram,
            counters: Arc::new(Counters::default()),
            scratch: Mutex::new(Vec::new()),
            gso: AtomicBool::new(true),
            pktinfo: AtomicBool::new(false),
            v6,
        }
    }

    /// On a socket bound to a wildcard address (`0.0.0.0`, `::`): asks the kernel for
    /// the local address each datagram was sent to (`IP_PKTINFO` / `IPV6_RECVPKTINFO`),
    /// which [`RecvBatch::iter_with_local`] then yields, so that an answer can leave
    /// from the address that was called ([`try_send_batch_from`](Self::try_send_batch_from)).
    /// Without it, a server bound to `0.0.0.0` and called on 127.0.0.2 answers from
    /// the kernel's choice of source, and the caller, which accepts answers only from
    /// the address it called, drops them.
    ///
    /// Returns whether it is on. A socket bound to one address needs nothing (it always
    /// receives on and sends from that address): `Ok(false)`. Linux only (elsewhere an
    /// `Unsupported` error for a wildcard-bound socket).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let one = rpcudp::udp::Socket::bind("127.0.0.1:0".parse().unwrap()).await?;
    /// assert!(!one.enable_local_addr()?);
    /// # #[cfg(target_os = "linux")] {
    /// let any = rpcudp::udp::Socket::bind("0.0.0.0:0".parse().unwrap()).await?;
    /// assert!(any.enable_local_addr()?);
    /// # }
    /// # Ok(()) }
    /// ```
    pub fn enable_local_addr(&self) -> io::Result<bool> {
        if !self.local_addr()?.ip().is_unspecified() {
            return Ok(false);
        }
        batch::sys_enable_pktinfo(&self.socket, self.v6)?;
        self.pktinfo.store(true, Ordering::Relaxed);
        Ok(true)
    }

    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The address the socket is bound to, with the real port.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The largest datagram this endpoint hands over; larger ones are dropped and counted.
    pub fn max_datagram(&self) -> usize {
        self.max_datagram
    }

    /// Counters so far.
    pub fn stats(&self) -> SocketStats {
        self.counters.snapshot()
    }

    /// The tokio socket underneath, for options this type does not cover. Receiving
    /// through it bypasses oversize detection.
    pub fn socket(&self) -> &tokio::net::UdpSocket {
        &self.socket
    }

    /// A `socket2` view of the socket, for setting options.
    pub(crate) fn sock_ref(&self) -> socket2::SockRef<'_> {
        socket2::SockRef::from(&self.socket)
    }

    /// Sends one datagram to `target`.
    ///
    /// Sending to a broadcast address (`255.255.255.255`, a subnet's broadcast such as
    /// `127.255.255.255`) needs [`set_broadcast(true)`](Self::set_broadcast) first; without
    /// it the kernel refuses and the error (kind [`io::ErrorKind::PermissionDenied`]) says
    /// so.
    pub async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        let n = self
            .socket
            .send_to(buf, target)
            .await
            .map_err(|e| self.explain_send_error(e, target))?;
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        Ok(n)
    }

    /// The kernel refuses a datagram to a broadcast address with a bare EACCES when
    /// `SO_BROADCAST` is off; name the address and the remedy instead.
    fn explain_send_error(&self, e: io::Error, target: SocketAddr) -> io::Error {
        if e.kind() == io::ErrorKind::PermissionDenied
            && target.is_ipv4()
            && matches!(self.socket.broadcast(), Ok(false))
        {
            io::Error::new(
                e.kind(),
                format!(
                    "sending to {target} was refused ({e}); if it is a broadcast address, \
                     allow broadcasting first: Socket::set_broadcast(true), or \
                     `broadcast: true` in its SocketConfig"
                ),
            )
        } else {
            e
        }
    }

    /// Receives one datagram into `buf`, returning its length and sender.
    ///
    /// A datagram longer than `buf` or than [`max_datagram`](Self::max_datagram) is
    /// dropped, counted, and the wait goes on for the next one. On a connected socket an
    /// error of kind [`io::ErrorKind::ConnectionRefused`] reports an ICMP port
    /// unreachable; the endpoint stays usable.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        loop {
            // ERROR readiness too: an ICMP refusal on a connected socket raises EPOLLERR
            // alone, which plain readability would never wake up for.
            let ready = self
                .socket
                .ready(Interest::READABLE | Interest::ERROR)
                .await?;
            if ready.is_error() {
                if let Some(e) = self.socket.take_error()? {
                    self.count_error(&e);
                    return Err(e);
                }
                // Nothing pending after all: clear the stale readiness so the next
                // `ready` waits instead of spinning.
                let _ = self.socket.try_io(Interest::ERROR, || {
                    Err::<(), _>(io::ErrorKind::WouldBlock.into())
                });
            }
            if !ready.is_readable() {
                continue;
            }
            match self.try_recv_checked(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
                Ok(Some(got)) => return Ok(got),
                Ok(None) => continue, // oversized: dropped and counted
            }
        }
    }

    fn count_oversized(&self, len: usize, limit: usize, from: SocketAddr) {
        self.counters.oversized.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            len,
            limit,
            %from,
            "dropped an oversized datagram (at least this many bytes)"
        );
    }

    fn count_error(&self, e: &io::Error) {
        if e.kind() == io::ErrorKind::ConnectionRefused {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Receives one datagram if one is queued, without waiting: `WouldBlock` when none
    /// is. A driver drains the queue with it after [`poll_recv_ready`](Self::poll_recv_ready)
    /// before it waits again: one readiness wake-up for a batch of datagrams. Oversized
    /// datagrams are dropped and counted exactly as by [`recv_from`](Self::recv_from).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let a = rpcudp::udp::Socket::bind("127.0.0.1:0".parse().unwrap()).await?;
    /// let mut buf = [0u8; 64];
    /// let err = a.try_recv_from(&mut buf).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok(()) }
    /// ```
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        // Each `None` consumed one oversized datagram, so this ends when the queue does.
        loop {
            if let Some(got) = self.try_recv_checked(buf)? {
                return Ok(got);
            }
        }
    }

    /// Sends one datagram if the socket can take it now: `WouldBlock` when its send
    /// buffer is full (then [`send_to`](Self::send_to) waits for room).
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        let result = self.socket.try_send_to(buf, target);
        match &result {
            Ok(_) => {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.count_error(e),
        }
        result
    }

    /// Receives the datagrams queued on the socket, as many as `batch` offers slots
    /// (all its [`slots`](RecvBatch::slots) at first, then twice as many as the last
    /// receive took), without waiting: on Linux one `recvmmsg` system call. Returns how
    /// many were kept, which [`RecvBatch::iter`] then yields; at least one, else the
    /// error (`WouldBlock` when none is queued, which also clears a stale readiness of
    /// [`poll_recv_ready`](Self::poll_recv_ready)).
    ///
    /// A datagram longer than [`max_datagram`](Self::max_datagram) or than the batch's
    /// [`slot_len`](RecvBatch::slot_len) is dropped and counted in
    /// [`SocketStats::oversized_dropped`], exactly as by [`recv_from`](Self::recv_from),
    /// and the others of the same batch are kept. See [`RecvBatch`] for an example.
    pub fn try_recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        let window = self.max_datagram.min(batch.slot_len());
        let pktinfo = self.pktinfo.load(Ordering::Relaxed);
        let mut raw = std::mem::take(&mut batch.raw);
        batch.kept.clear();
        // Each turn that keeps nothing consumed at least one oversized datagram, so this
        // ends when the queue does (as `try_recv_from`).
        let result = loop {
            raw.clear();
            let got = self.socket.try_io(Interest::READABLE, || {
                batch::sys_recv(&self.socket, batch, window, pktinfo, &mut raw)
            });
            if let Err(e) = got {
                self.count_error(&e);
                break Err(e);
            }
            for s in raw.iter() {
                let Some(from) = s.from else {
                    // Unnamed: only a non-IP sender could be; not ours to hand over.
                    self.counters.recv_errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if s.truncated || s.len > window {
                    self.count_oversized(s.len, window, from);
                } else {
                    batch.kept.push((s.slot, s.len, from, s.local));
                }
            }
            if !raw.is_empty() {
                batch.recent = raw.len();
            }
            if !batch.kept.is_empty() {
                let n = batch.kept.len();
                self.counters
                    .received
                    .fetch_add(n as u64, Ordering::Relaxed);
                break Ok(n);
            }
        };
        batch.raw = raw;
        result
    }

    /// Sends the first datagrams of `datagrams` (at most
    /// [`SEND_BATCH_MAX`](super::SEND_BATCH_MAX)) without waiting: on Linux one
    /// `sendmmsg` system call, or, for a run of equal-size datagrams (up to 1200 bytes)
    /// to one destination, one UDP GSO `sendmsg` that the kernel cuts into exactly those
    /// datagrams (the first time the kernel refuses GSO, the endpoint stops using it).
    /// No socket option is changed for either.
    ///
    /// Returns how many the kernel took, always a prefix; offer the rest again. A call
    /// stops early at a full send buffer, at a datagram the kernel refuses, or where a
    /// GSO run begins or ends, and the next call tells which (`WouldBlock`, that
    /// datagram's own error, or more sent). An error is returned only when not even the
    /// first datagram went. Like [`try_send_to`](Self::try_send_to)
    /// it needs the socket to have been seen writable by the runtime (`WouldBlock` until
    /// then; see [`poll_send_ready`](Self::poll_send_ready)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use rpcudp::udp::Socket;
    /// let a = Socket::bind("127.0.0.1:0".parse().unwrap()).await?;
    /// let b = Socket::bind("127.0.0.1:0".parse().unwrap()).await?;
    /// let to = b.local_addr()?;
    /// a.socket().writable().await?; // a new socket is writable once the runtime saw it
    /// let sent = a.try_send_batch([(&b"one"[..], to), (&b"two"[..], to)])?;
    /// assert_eq!(sent, 2);
    /// let mut buf = [0u8; 16];
    /// let (n, _) = b.recv_from(&mut buf).await?;
    /// assert_eq!(&buf[..n], b"one");
    /// # Ok(()) }
    /// ```
    pub fn try_send_batch<'a>(
        &self,
        datagrams: impl IntoIterator<Item = (&'a [u8], SocketAddr)>,
    ) -> io::Result<usize> {
        self.try_send_batch_from(datagrams.into_iter().map(|(p, to)| (p, to, None)))
    }

    /// [`try_send_batch`](Self::try_send_batch) with the local address to send each
    /// datagram from (`None`: the kernel's choice), for a socket bound to a wildcard
    /// address that answers from the address it was called on (see
    /// [`enable_local_addr`](Self::enable_local_addr); Linux, elsewhere the source is
    /// ignored). One system call sends from one source, so a batch also stops where
    /// the source changes.
    pub fn try_send_batch_from<'a>(
        &self,
        datagrams: impl IntoIterator<Item = (&'a [u8], SocketAddr, Option<IpAddr>)>,
    ) -> io::Result<usize> {
        let mut datagrams = Some(datagrams);
        let result = self.socket.try_io(Interest::WRITABLE, || {
            // `try_io` runs this once; the `Option` only lets the iterator move in.
            batch::sys_send(
                &self.socket,
                &self.gso,
                self.v6,
                datagrams.take().into_iter().flatten(),
            )
        });
        match &result {
            Ok(n) => {
                self.counters.sent.fetch_add(*n as u64, Ordering::Relaxed);
            }
            Err(e) => self.count_error(e),
        }
        result
    }

    /// Ready once a datagram may be sent (the socket's send buffer has room); the waker
    /// of `cx` is woken when that happens.
    pub fn poll_send_ready(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        self.socket.poll_send_ready(cx)
    }

    /// Ready once a datagram may be received; the waker of `cx` is woken when that
    /// happens. (A readiness that turns out stale makes
    /// [`try_recv_from`](Self::try_recv_from) return `WouldBlock`, which clears it.)
    pub fn poll_recv_ready(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        self.socket.poll_recv_ready(cx)
    }

    /// One non-blocking receive. `Ok(None)`: a datagram came but was oversized.
    pub(crate) fn try_recv_checked(
        &self,
        buf: &mut [u8],
    ) -> io::Result<Option<(usize, SocketAddr)>> {
        let limit = self.max_datagram.min(buf.len());
        let got = if buf.len() > self.max_datagram {
            // The caller's buffer has room for max + 1 bytes: a datagram that fills more
            // than `max` is oversized, and the kernel's silent truncation cannot hide it.
            self.socket.try_recv_from(&mut buf[..self.max_datagram + 1])
        } else {
            let mut scratch = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
            scratch.resize(self.max_datagram + 1, 0);
            match self.socket.try_recv_from(&mut scratch) {
                Ok((n, from)) => {
                    if n <= limit {
                        buf[..n].copy_from_slice(&scratch[..n]);
                    }
                    Ok((n, from))
                }
                Err(e) => Err(e),
            }
        };
        match got {
            Ok((n, from)) if n > limit => {
                self.count_oversized(n, limit, from);
                Ok(None)
            }
            Ok((n, from)) => {
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                Ok(Some((n, from)))
            }
            Err(e) => {
                self.count_error(&e);
                Err(e)
            }
        }
    }

    /// Receives one datagram as [`Bytes`] (sized to the datagram), with its sender.
    /// Same dropping and error rules as [`recv_from`](Self::recv_from).
    pub async fn recv_datagram(&self) -> io::Result<(Bytes, SocketAddr)> {
        let mut buf = vec![0u8; self.max_datagram + 1];
        let (n, from) = self.recv_from(&mut buf).await?;
        buf.truncate(n);
        Ok((Bytes::from(buf), from))
    }

    /// Connects the socket to `peer`: from now on [`send`](Self::send) goes there, only
    /// datagrams from `peer` are received, and an ICMP port unreachable from it comes back
    /// as "connection refused" on the next send or receive.
    pub async fn connect(&self, peer: SocketAddr) -> io::Result<()> {
        self.socket.connect(peer).await
    }

    /// The peer of a connected socket (an error if not connected).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_addr()
    }

    /// Sends one datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let result = match self.socket.send(buf).await {
            Err(e) => match self.socket.peer_addr() {
                Ok(peer) => Err(self.explain_send_error(e, peer)),
                Err(_) => Err(e),
            },
            ok => ok,
        };
        match &result {
            Ok(_) => {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.count_error(e),
        }
        result
    }

    /// Receives one datagram from the connected peer into `buf` (same rules as
    /// [`recv_from`](Self::recv_from)).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_from(buf).await.map(|(n, _)| n)
    }

    /// Whether sending to broadcast addresses is allowed (`SO_BROADCAST`, Twisted's
    /// `getBroadcastAllowed`).
    pub fn broadcast(&self) -> io::Result<bool> {
        self.socket.broadcast()
    }

    /// Allows or forbids sending to broadcast addresses (Twisted's `setBroadcastAllowed`).
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.socket.set_broadcast(on)
    }

    /// Sends one datagram to `255.255.255.255:port` (Twisted's `("<broadcast>", port)`).
    /// Needs [`set_broadcast(true)`](Self::set_broadcast) and an IPv4 socket.
    pub async fn send_broadcast(&self, buf: &[u8], port: u16) -> io::Result<usize> {
        self.send_to(buf, SocketAddr::from((BROADCAST, port))).await
    }

    /// The unicast TTL (IPv4) or hop limit (IPv6) of outgoing datagrams.
    pub fn ttl(&self) -> io::Result<u32> {
        if self.local_addr()?.is_ipv4() {
            self.sock_ref().ttl_v4()
        } else {
            self.sock_ref().unicast_hops_v6()
        }
    }

    /// Sets the unicast TTL (IPv4) or hop limit (IPv6).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        if self.local_addr()?.is_ipv4() {
            self.sock_ref().set_ttl_v4(ttl)
        } else {
            self.sock_ref().set_unicast_hops_v6(ttl)
        }
    }

    /// The receive buffer size the kernel actually uses (`SO_RCVBUF`).
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        self.sock_ref().recv_buffer_size()
    }

    /// The send buffer size the kernel actually uses (`SO_SNDBUF`).
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        self.sock_ref().send_buffer_size()
    }
}

/// True when `e` is the "connection refused" a connected socket reports after an ICMP
/// port unreachable: a report about the peer, not a failure of the endpoint.
pub fn is_connection_refused(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::ConnectionRefused
}

// Compile-time guard: the receive scratch must hold MAX_UDP_PAYLOAD + 1 bytes.
const _: () = assert!(MAX_UDP_PAYLOAD < 65_536);
