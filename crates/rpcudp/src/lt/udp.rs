//! Length-type messages over UDP: one frame per datagram.

use super::codec::LtError;
use super::message::{encode_to_bytes, MessageSet};
use crate::udp::{Socket, MAX_UDP_PAYLOAD};
use rpcudp_proto::wire::lt::FrameFormat;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of datagrams dropped by an [`LtSocket`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpStats {
    /// Datagrams received and delivered.
    pub delivered: u64,
    /// Datagrams dropped: shorter than a header, a length field that differs from the
    /// datagram's size, or over the max frame.
    pub bad_frames: u64,
    /// Datagrams dropped: a known type whose body does not match its layout.
    pub bad_bodies: u64,
}

/// Length-type messages on a UDP [`Socket`], one frame per datagram.
///
/// Receiving drops (and counts, in [`LtSocket::stats`]) every datagram that is not
/// exactly one acceptable frame, and goes on waiting for a good one.
///
/// ```
/// use rpcudp::lt::{Frame, LtSocket};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let format = rpcudp::lt::FrameFormat::default();
/// let mut a = LtSocket::<Frame>::bind("127.0.0.1:0".parse().unwrap(), format).await?;
/// let mut b = LtSocket::<Frame>::bind("127.0.0.1:0".parse().unwrap(), format).await?;
/// // A datagram whose length field (9) differs from its size (4) is dropped...
/// a.endpoint().send_to(&[0, 9, 1, b'x'], b.local_addr()?).await?;
/// // ...and the next good one is delivered.
/// a.send_to(&Frame::new(1, &b"x"[..]), b.local_addr()?).await.unwrap();
/// let (msg, from) = b.recv_from().await?;
/// assert_eq!((msg, from), (Frame::new(1, &b"x"[..]), a.local_addr()?));
/// assert_eq!(b.stats().bad_frames, 1);
/// # Ok(()) }
/// ```
pub struct LtSocket<P> {
    endpoint: Socket,
    format: FrameFormat,
    buf: Vec<u8>,
    delivered: AtomicU64,
    bad_frames: AtomicU64,
    bad_bodies: AtomicU64,
    _protocol: std::marker::PhantomData<fn() -> P>,
}

impl<P: MessageSet> LtSocket<P> {
    /// Binds a UDP endpoint to `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr, format: FrameFormat) -> io::Result<Self> {
        Ok(Self::new(Socket::bind(addr).await?, format))
    }

    /// Uses an existing endpoint.
    pub fn new(endpoint: Socket, format: FrameFormat) -> Self {
        LtSocket {
            endpoint,
            format,
            // Large enough for any UDP payload, so no datagram is truncated.
            buf: vec![0; MAX_UDP_PAYLOAD],
            delivered: AtomicU64::new(0),
            bad_frames: AtomicU64::new(0),
            bad_bodies: AtomicU64::new(0),
            _protocol: std::marker::PhantomData,
        }
    }

    /// The underlying endpoint.
    pub fn endpoint(&self) -> &Socket {
        &self.endpoint
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The format in use.
    pub fn format(&self) -> &FrameFormat {
        &self.format
    }

    /// Sends `msg` as one datagram.
    pub async fn send_to(&self, msg: &P, to: SocketAddr) -> Result<(), LtError> {
        let bytes = encode_to_bytes(msg, &self.format)?;
        self.endpoint.send_to(&bytes, to).await?;
        Ok(())
    }

    /// Waits for the next datagram that is one good frame; bad ones are dropped and
    /// counted.
    pub async fn recv_from(&mut self) -> io::Result<(P, SocketAddr)> {
        loop {
            let (n, from) = self.endpoint.recv_from(&mut self.buf).await?;
            let frame = match self.format.decode_datagram(&self.buf[..n]) {
                Ok(frame) => frame,
                Err(e) => {
                    self.bad_frames.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("lt udp: dropping a datagram from {from}: {e}");
                    continue;
                }
            };
            let msg_type = frame.msg_type;
            match P::decode(msg_type, frame.body) {
                Ok(msg) => {
                    self.delivered.fetch_add(1, Ordering::Relaxed);
                    return Ok((msg, from));
                }
                Err(e) => {
                    self.bad_bodies.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("lt udp: dropping type {msg_type} from {from}: {e}");
                }
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> UdpStats {
        UdpStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            bad_frames: self.bad_frames.load(Ordering::Relaxed),
            bad_bodies: self.bad_bodies.load(Ordering::Relaxed),
        }
    }
}
