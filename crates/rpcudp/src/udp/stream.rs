//! [`Datagrams`]: an endpoint's incoming datagrams as a `futures::Stream`.

use super::endpoint::Endpoint;
use bytes::Bytes;
use futures::Stream;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

/// How many oversized datagrams one poll drops before yielding, so a flood of them
/// cannot starve other tasks.
const DROPS_PER_POLL: usize = 64;

/// The stream returned by [`Endpoint::datagrams`]. It never ends; errors are items, and
/// after one (for instance "connection refused") the stream goes on.
#[derive(Debug)]
pub struct Datagrams<'a> {
    endpoint: &'a Endpoint,
    buf: Vec<u8>,
}

impl Endpoint {
    /// Incoming datagrams as a stream of `(bytes, sender)`, with the same dropping and
    /// error rules as [`recv_from`](Self::recv_from). The endpoint stays usable for
    /// sending meanwhile.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use futures::StreamExt;
    /// let a = rpcudp::udp::Endpoint::bind("127.0.0.1:0".parse().unwrap()).await?;
    /// let b = rpcudp::udp::Endpoint::bind("127.0.0.1:0".parse().unwrap()).await?;
    /// a.send_to(b"one", b.local_addr()?).await?;
    /// a.send_to(b"two", b.local_addr()?).await?;
    /// let got: Vec<_> = b.datagrams().take(2).collect().await;
    /// assert_eq!(&got[1].as_ref().unwrap().0[..], b"two");
    /// # Ok(()) }
    /// ```
    pub fn datagrams(&self) -> Datagrams<'_> {
        Datagrams {
            endpoint: self,
            buf: vec![0u8; self.max_datagram() + 1],
        }
    }
}

impl Stream for Datagrams<'_> {
    type Item = io::Result<(Bytes, SocketAddr)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        for _ in 0..DROPS_PER_POLL {
            if let Err(e) = std::task::ready!(this.endpoint.socket().poll_recv_ready(cx)) {
                return Poll::Ready(Some(Err(e)));
            }
            match this.endpoint.try_recv_from(&mut this.buf) {
                Ok(Some((n, from))) => {
                    return Poll::Ready(Some(Ok((Bytes::copy_from_slice(&this.buf[..n]), from))))
                }
                Ok(None) => continue,
                // Readiness was stale; tokio cleared it, so poll again to re-register.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
