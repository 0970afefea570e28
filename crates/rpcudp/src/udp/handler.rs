//! [`DatagramHandler`] (Twisted's `DatagramProtocol`) and [`listen`], the runner that
//! drives one on an [`Socket`] (Twisted's `listenUDP` / `listenMulticast`).

use super::socket::{Counters, Socket, SocketStats};
use bytes::Bytes;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What happens on a datagram endpoint, as callbacks: the Rust side of Twisted's
/// `DatagramProtocol`. [`listen`] calls them one at a time, in order, on one task, so a
/// handler needs no locking for its own state.
///
/// Every callback gets the [`Transport`]: the endpoint (send, connect, join groups...)
/// plus [`Transport::stop_listening`].
///
/// ```
/// use rpcudp::udp::{DatagramHandler, Transport};
/// use std::net::SocketAddr;
///
/// /// Twisted's Echo: every datagram goes back to its sender.
/// struct Echo;
///
/// impl DatagramHandler for Echo {
///     async fn datagram_received(&mut self, data: bytes::Bytes, from: SocketAddr, t: &Transport) {
///         let _ = t.send_to(&data, from).await;
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let server = rpcudp::udp::listen(rpcudp::udp::Socket::bind("127.0.0.1:0".parse().unwrap()).await?, Echo);
/// let client = rpcudp::udp::Socket::bind("127.0.0.1:0".parse().unwrap()).await?;
/// client.send_to(b"hi", server.local_addr()).await?;
/// let mut buf = [0u8; 16];
/// let (n, _) = client.recv_from(&mut buf).await?;
/// assert_eq!(&buf[..n], b"hi");
/// server.stop().await?;
/// # Ok(()) }
/// ```
pub trait DatagramHandler: Send + 'static {
    /// Runs once, before any datagram is delivered (Twisted's `startProtocol`): the place
    /// to connect, join groups or send a first datagram.
    fn start(&mut self, transport: &Transport) -> impl Future<Output = ()> + Send {
        let _ = transport;
        std::future::ready(())
    }

    /// One datagram arrived from `from` (Twisted's `datagramReceived`). Oversized
    /// datagrams never get here; they are dropped and counted.
    fn datagram_received(
        &mut self,
        data: Bytes,
        from: SocketAddr,
        transport: &Transport,
    ) -> impl Future<Output = ()> + Send;

    /// On a connected endpoint, the peer answered with an ICMP port unreachable: nobody
    /// listens there (Twisted's `connectionRefused`). The endpoint goes on.
    fn connection_refused(&mut self, transport: &Transport) -> impl Future<Output = ()> + Send {
        let _ = transport;
        std::future::ready(())
    }

    /// Runs once when the runner stops, before the socket closes (Twisted's
    /// `stopProtocol`): the last chance to send a goodbye or leave groups.
    fn stop(&mut self, transport: &Transport) -> impl Future<Output = ()> + Send {
        let _ = transport;
        std::future::ready(())
    }
}

/// What a [`DatagramHandler`] acts through: the [`Socket`] (through `Deref`) and a way
/// to stop the runner from inside (Twisted's `transport.stopListening()`).
#[derive(Debug)]
pub struct Transport {
    endpoint: Socket,
    stop: CancellationToken,
}

impl Transport {
    /// Asks the runner to stop after the current callback returns: the handler's
    /// [`stop`](DatagramHandler::stop) runs, then the socket closes.
    pub fn stop_listening(&self) {
        self.stop.cancel();
    }

    /// The endpoint (also reachable through `Deref`).
    pub fn endpoint(&self) -> &Socket {
        &self.endpoint
    }
}

impl Deref for Transport {
    type Target = Socket;
    fn deref(&self) -> &Socket {
        &self.endpoint
    }
}

/// Stops a running [`listen`] from anywhere; cheap to clone.
#[derive(Debug, Clone)]
pub struct StopHandle(CancellationToken);

impl StopHandle {
    /// Asks the runner to stop (idempotent).
    pub fn stop(&self) {
        self.0.cancel();
    }

    /// Whether a stop was asked for (by this handle, the [`Listening`] or the handler).
    pub fn is_stopped(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// Why a runner ended other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The socket failed for good (not a "connection refused" or another per-datagram
    /// report, which the runner survives). The handler's `stop` still ran.
    #[error("the UDP socket failed: {0}")]
    Socket(#[source] io::Error),
    /// A handler callback panicked; the socket is closed.
    #[error("the datagram handler panicked")]
    HandlerPanicked,
}

impl From<RunError> for io::Error {
    fn from(e: RunError) -> io::Error {
        match e {
            RunError::Socket(e) => e,
            other => io::Error::other(other),
        }
    }
}

/// A running handler, returned by [`listen`]. Dropping it stops the runner too (without
/// waiting); call [`stop`](Self::stop) to wait for the handler's `stop` and get the
/// handler back.
#[derive(Debug)]
pub struct Listening<H> {
    local_addr: SocketAddr,
    counters: Arc<Counters>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<(H, Option<io::Error>)>>,
}

/// Drives `handler` on `endpoint` on a new tokio task (Twisted's `listenUDP` with an
/// existing port): `start`, then one `datagram_received` per datagram and one
/// `connection_refused` per ICMP refusal, until stopped; then `stop`, then the socket
/// closes. Must be called inside a tokio runtime.
///
/// Receive errors that concern one datagram or one peer (refused, host or network
/// unreachable, reset) are counted and survived; any other socket error ends the runner.
pub fn listen<H: DatagramHandler>(endpoint: Socket, mut handler: H) -> Listening<H> {
    let local_addr = endpoint
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let counters = endpoint.counters().clone();
    let stop = CancellationToken::new();
    let transport = Transport {
        endpoint,
        stop: stop.clone(),
    };
    let task = tokio::spawn(async move {
        let error = run(&mut handler, &transport).await;
        handler.stop(&transport).await;
        // Dropping the transport closes the socket, after `stop` had its chance to send.
        drop(transport);
        (handler, error)
    });
    Listening {
        local_addr,
        counters,
        stop,
        task: Some(task),
    }
}

async fn run<H: DatagramHandler>(handler: &mut H, t: &Transport) -> Option<io::Error> {
    handler.start(t).await;
    let mut buf = vec![0u8; t.max_datagram() + 1];
    loop {
        if t.stop.is_cancelled() {
            return None;
        }
        let got = tokio::select! {
            biased;
            _ = t.stop.cancelled() => return None,
            got = t.recv_from(&mut buf) => got,
        };
        match got {
            Ok((n, from)) => {
                let data = Bytes::copy_from_slice(&buf[..n]);
                handler.datagram_received(data, from, t).await;
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                handler.connection_refused(t).await;
            }
            Err(e) if is_transient(&e) => {
                t.counters().count_recv_error();
                tracing::debug!(error = %e, "UDP receive error survived");
            }
            Err(e) => return Some(e),
        }
    }
}

/// Errors that report on one peer or one datagram (often a late ICMP), not on the socket.
fn is_transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | HostUnreachable | NetworkUnreachable | Interrupted | TimedOut
    )
}

impl<H> Listening<H> {
    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The endpoint's counters (also after it stopped).
    pub fn stats(&self) -> SocketStats {
        self.counters.snapshot()
    }

    /// A handle that can stop the runner from elsewhere.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Stops the runner and waits until the handler's `stop` ran and the socket is
    /// closed; returns the handler. An error says the runner had already ended badly.
    pub async fn stop(mut self) -> Result<H, RunError> {
        self.stop.cancel();
        self.join().await
    }

    /// Waits until the runner ends by itself (the handler called
    /// [`Transport::stop_listening`], a [`StopHandle`] was used, or the socket failed).
    pub async fn stopped(mut self) -> Result<H, RunError> {
        self.join().await
    }

    async fn join(&mut self) -> Result<H, RunError> {
        let task = self
            .task
            .take()
            .expect("joined once: stop/stopped take self");
        match task.await {
            Ok((handler, None)) => Ok(handler),
            Ok((_, Some(e))) => Err(RunError::Socket(e)),
            Err(_) => Err(RunError::HandlerPanicked),
        }
    }
}

impl<H> Drop for Listening<H> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
