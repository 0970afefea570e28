//! [`Datagrams`]: an endpoint's incoming datagrams as a `futures::Stream`.

use super::socket::Socket;
use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The stream returned by [`Socket::datagrams`]. It never ends; errors are items, and
/// after one (for instance "connection refused") the stream goes on.
pub struct Datagrams<'a> {
    inner: BoxStream<'a, io::Result<(Bytes, SocketAddr)>>,
}

impl std::fmt::Debug for Datagrams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datagrams").finish_non_exhaustive()
    }
}

impl Socket {
    /// Incoming datagrams as a stream of `(bytes, sender)`, with the same dropping and
    /// error rules as [`recv_from`](Self::recv_from). The endpoint stays usable for
    /// sending meanwhile.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use futures::StreamExt;
    /// let a = rpcudp::udp::Socket::bind("127.0.0.1:0".parse().unwrap()).await?;
    /// let b = rpcudp::udp::Socket::bind("127.0.0.1:0".parse().unwrap()).await?;
    /// a.send_to(b"one", b.local_addr()?).await?;
    /// a.send_to(b"two", b.local_addr()?).await?;
    /// let got: Vec<_> = b.datagrams().take(2).collect().await;
    /// assert_eq!(&got[1].as_ref().unwrap().0[..], b"two");
    /// # Ok(()) }
    /// ```
    pub fn datagrams(&self) -> Datagrams<'_> {
        // One receive buffer for the stream's life, reused for every datagram.
        let buf = vec![0u8; self.max_datagram() + 1];
        let inner = futures::stream::unfold((self, buf), |(ep, mut buf)| async move {
            let item = ep
                .recv_from(&mut buf)
                .await
                .map(|(n, from)| (Bytes::copy_from_slice(&buf[..n]), from));
            Some((item, (ep, buf)))
        })
        .boxed();
        Datagrams { inner }
    }
}

impl Stream for Datagrams<'_> {
    type Item = io::Result<(Bytes, SocketAddr)>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}
