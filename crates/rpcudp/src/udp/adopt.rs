//! Adopting a socket someone else created and bound (Twisted's `adoptDatagramPort`).

use super::config::MAX_UDP_PAYLOAD;
use super::socket::Socket;
use std::io;

impl Socket {
    /// Adopts an already-bound std socket (made non-blocking here). Its options and
    /// binding are kept as they are; [`max_datagram`](Self::max_datagram) is
    /// [`MAX_UDP_PAYLOAD`]. Must run inside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let std_socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let addr = std_socket.local_addr()?;
    /// let endpoint = rpcudp::udp::Socket::from_std(std_socket)?;
    /// assert_eq!(endpoint.local_addr()?, addr);
    /// # Ok(()) }
    /// ```
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<Socket> {
        Self::from_std_with_max(socket, MAX_UDP_PAYLOAD)
    }

    /// [`from_std`](Self::from_std) with a chosen largest datagram (1..=65535).
    pub fn from_std_with_max(
        socket: std::net::UdpSocket,
        max_datagram: usize,
    ) -> io::Result<Socket> {
        if max_datagram == 0 || max_datagram > 65_535 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "max_datagram must be 1..=65535",
            ));
        }
        socket.set_nonblocking(true)?;
        // An unbound socket would get a port only at the first send; adopting means
        // taking over a bound port, so say so now rather than later.
        socket.local_addr()?;
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        Ok(Socket::from_tokio(socket, max_datagram))
    }

    /// Adopts a bound datagram socket given as an owned file descriptor (for instance
    /// one passed by a parent process or by systemd). Fails with
    /// [`io::ErrorKind::InvalidInput`] if the descriptor is not a UDP socket.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use std::os::fd::OwnedFd;
    /// let fd: OwnedFd = std::net::UdpSocket::bind("127.0.0.1:0")?.into();
    /// let endpoint = rpcudp::udp::Socket::from_fd(fd)?;
    /// assert!(endpoint.local_addr()?.ip().is_loopback());
    /// # Ok(()) }
    /// ```
    #[cfg(unix)]
    pub fn from_fd(fd: std::os::fd::OwnedFd) -> io::Result<Socket> {
        let socket = socket2::Socket::from(fd);
        // SO_TYPE fails with ENOTSOCK for files and pipes; a TCP socket reports STREAM.
        let ty = socket.r#type()?;
        if ty != socket2::Type::DGRAM {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the adopted descriptor is not a datagram (UDP) socket",
            ));
        }
        Self::from_std(socket.into())
    }
}
