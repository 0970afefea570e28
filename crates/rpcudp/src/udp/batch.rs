//! Batched receive and send: many datagrams per system call.
//!
//! On Linux [`Socket::try_recv_batch`](super::Socket::try_recv_batch) is one `recvmmsg(2)` and
//! [`Socket::try_send_batch`](super::Socket::try_send_batch) one `sendmmsg(2)`, through the `nix` crate's safe
//! wrappers over the socket's descriptor. No socket option is changed for it (unlike
//! `quinn-udp`, which forces the don't-fragment bit on every datagram): a batch is
//! exactly the datagrams one `recv_from` / `send_to` each would have moved.
//! Each receive offers twice as many slots as the last one filled, so a lone datagram
//! per wake-up does not pay for building 32 message headers. Elsewhere the
//! same methods loop over the one-datagram calls, so callers need no second code path.
//!
//! A run of datagrams of one size to one destination (a server's answers to a busy
//! client) goes as one UDP GSO send instead: one `sendmsg` with a `UDP_SEGMENT` control
//! message, which the kernel cuts into exactly those datagrams after a single trip
//! through the stack. Only runs of segments up to 1200 bytes (within any link's MTU)
//! qualify, and the first time the kernel refuses GSO the endpoint stops trying it.
//!
//! On a socket bound to a wildcard address (`0.0.0.0`, `::`) whose endpoint was asked
//! for it ([`Socket::enable_local_addr`](super::Socket::enable_local_addr)), each
//! received datagram also carries the local address it was sent to (`IP_PKTINFO`,
//! `IPV6_PKTINFO` control messages), and each datagram sent may name the local address
//! to send it from, as quinn-udp does: an answer then leaves from the address that was
//! called. One system call sends from one source only (a `sendmmsg` shares its control
//! messages), so batches and GSO runs end where the source changes.
//!
//! The oversize rule of [`Socket::recv_from`](super::Socket::recv_from) holds in a batch too: a datagram longer
//! than [`Socket::max_datagram`](super::Socket::max_datagram) or than the batch's slots is dropped and counted in
//! [`SocketStats::oversized_dropped`](super::SocketStats::oversized_dropped), never
//! handed over truncated (the kernel flags each truncated message with `MSG_TRUNC`).

use std::net::{IpAddr, SocketAddr};

/// Most datagrams one [`Socket::try_send_batch`](super::Socket::try_send_batch) hands to the kernel; longer inputs
/// are sent in part (the return value says how many went).
pub const SEND_BATCH_MAX: usize = 64;

/// Receive space for one [`Socket::try_recv_batch`](super::Socket::try_recv_batch): `slots` buffers of `slot_len`
/// bytes each, and after a receive the datagrams that were kept, in arrival order.
///
/// The buffers are allocated zeroed once and reused; a large `slot_len` costs address
/// space more than memory, since only the pages that datagrams were written to are ever
/// touched.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use rpcudp::udp::{Socket, RecvBatch};
/// let a = Socket::bind("127.0.0.1:0".parse().unwrap()).await?;
/// let b = Socket::bind("127.0.0.1:0".parse().unwrap()).await?;
/// for msg in [&b"one"[..], b"two", b"three"] {
///     a.send_to(msg, b.local_addr()?).await?;
/// }
/// let mut batch = RecvBatch::new(8, 1500);
/// let mut got = Vec::new();
/// // Loopback delivers at once, but wait for readiness as a driver would.
/// while got.len() < 3 {
///     b.socket().readable().await?;
///     match b.try_recv_batch(&mut batch) {
///         Ok(_) => got.extend(batch.iter().map(|(d, from)| (d.to_vec(), from))),
///         Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
///         Err(e) => return Err(e),
///     }
/// }
/// assert_eq!(got[2], (b"three".to_vec(), a.local_addr()?));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RecvBatch {
    storage: Vec<u8>,
    slot_len: usize,
    /// Bytes from one slot to the next: `slot_len + 1`, so that a receive can always
    /// offer one byte more than it accepts and tell "fits exactly" from "was cut".
    stride: usize,
    /// (slot, length, sender, local address it came to) of each datagram kept by the
    /// last receive.
    pub(crate) kept: Vec<(usize, usize, SocketAddr, Option<IpAddr>)>,
    /// What the system call reported, before the oversize check (reused space).
    pub(crate) raw: Vec<Slot>,
    /// How many datagrams the last receive that found any took: the next one offers
    /// twice that many slots (at least 2, at most all). A lone datagram per wake-up then
    /// costs small headers, and the empty receive that follows it too, while a queue that
    /// keeps filling up gets every slot within a few receives.
    pub(crate) recent: usize,
}

impl RecvBatch {
    /// Space for `slots` datagrams (at least one) of up to `slot_len` bytes (at least
    /// one) per receive.
    pub fn new(slots: usize, slot_len: usize) -> RecvBatch {
        let (slots, slot_len) = (slots.max(1), slot_len.max(1));
        RecvBatch {
            storage: vec![0u8; slots * (slot_len + 1)],
            slot_len,
            stride: slot_len + 1,
            kept: Vec::with_capacity(slots),
            raw: Vec::with_capacity(slots),
            recent: slots,
        }
    }

    /// How many datagrams one receive can take.
    pub fn slots(&self) -> usize {
        self.storage.len() / self.stride
    }

    /// Slots the next receive offers (see `recent`).
    pub(crate) fn offer(&self) -> usize {
        (2 * self.recent)
            .clamp(2, self.slots().max(2))
            .min(self.slots())
    }

    /// The largest datagram a slot holds.
    pub fn slot_len(&self) -> usize {
        self.slot_len
    }

    /// How many datagrams the last receive kept.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// True when the last receive kept none (or there was none yet).
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The `i`-th datagram kept by the last receive, with its sender.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let &(slot, len, from, _) = self.kept.get(i)?;
        let start = slot * self.stride;
        Some((&self.storage[start..start + len], from))
    }

    /// The datagrams kept by the last receive, in arrival order, with their senders.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], SocketAddr)> + '_ {
        self.kept.iter().map(move |&(slot, len, from, _)| {
            let start = slot * self.stride;
            (&self.storage[start..start + len], from)
        })
    }

    /// [`iter`](Self::iter) with the local address each datagram was sent to, when the
    /// endpoint asks for it ([`Socket::enable_local_addr`](super::Socket::enable_local_addr),
    /// Linux); `None` otherwise.
    pub fn iter_with_local(
        &self,
    ) -> impl ExactSizeIterator<Item = (&[u8], SocketAddr, Option<IpAddr>)> + '_ {
        self.kept.iter().map(move |&(slot, len, from, local)| {
            let start = slot * self.stride;
            (&self.storage[start..start + len], from, local)
        })
    }
}

/// What one receive system call produced for one slot.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) slot: usize,
    /// Bytes written into the slot: at most the receive window plus one.
    pub(crate) len: usize,
    /// The kernel cut the datagram short: it was longer than the space offered.
    pub(crate) truncated: bool,
    pub(crate) from: Option<SocketAddr>,
    /// The local address the datagram was sent to, when asked for and reported.
    pub(crate) local: Option<IpAddr>,
}

/// One datagram to send: payload, destination, and the local address to send it from
/// (`None`: the kernel's choice).
pub(crate) type Outgoing<'a> = (&'a [u8], SocketAddr, Option<IpAddr>);

#[cfg(target_os = "linux")]
mod sys {
    use super::{Outgoing, RecvBatch, Slot, SEND_BATCH_MAX};
    use nix::libc;
    use nix::sys::socket::{
        recvmmsg, sendmmsg, sendmsg, sendto, ControlMessage, ControlMessageOwned, MsgFlags,
        MultiHeaders, SockaddrStorage,
    };
    use std::io::{self, IoSlice, IoSliceMut};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    use std::os::fd::{AsRawFd, RawFd};
    use std::sync::atomic::{AtomicBool, Ordering};

    fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
        if let Some(v4) = addr.as_sockaddr_in() {
            Some(SocketAddr::from(*v4))
        } else {
            addr.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
        }
    }

    /// Asks the kernel for each datagram's destination address (`IP_PKTINFO`, or
    /// `IPV6_RECVPKTINFO`, which on a dual-stack socket covers IPv4 datagrams too, as
    /// IPv4-mapped addresses).
    pub(crate) fn enable_pktinfo(socket: &tokio::net::UdpSocket, v6: bool) -> io::Result<()> {
        use nix::sys::socket::{setsockopt, sockopt};
        if v6 {
            setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &true)?;
        } else {
            setsockopt(socket, sockopt::Ipv4PacketInfo, &true)?;
        }
        Ok(())
    }

    /// The local address a received datagram was sent to, from its control messages.
    /// For IPv4 the kernel's `ipi_spec_dst` (the local address it would answer from: the
    /// destination itself for unicast, an interface address for a broadcast); a
    /// multicast destination is no address to answer from, so `None`.
    fn local_of(msg: &nix::sys::socket::RecvMsg<'_, '_, SockaddrStorage>) -> Option<IpAddr> {
        // A truncated control buffer (MSG_CTRUNC) reads as "unknown".
        for cmsg in msg.cmsgs().ok()? {
            match cmsg {
                ControlMessageOwned::Ipv4PacketInfo(info) => {
                    let ip = Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr));
                    return (!ip.is_unspecified() && !ip.is_multicast()).then_some(ip.into());
                }
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    let ip = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                    let v4 = ip.to_ipv4_mapped();
                    let unicast = !ip.is_multicast() && v4.is_none_or(|v4| !v4.is_multicast());
                    return unicast.then_some(ip.into());
                }
                _ => {}
            }
        }
        None
    }

    /// One `recvmmsg` into the first `window` bytes of each slot of `batch` (`window` at
    /// most the slot length); with `pktinfo`, each slot's local address too.
    pub(crate) fn recv(
        socket: &tokio::net::UdpSocket,
        batch: &mut RecvBatch,
        window: usize,
        pktinfo: bool,
        out: &mut Vec<Slot>,
    ) -> io::Result<()> {
        let fd: RawFd = socket.as_raw_fd();
        let slots = batch.offer();
        // The headers hold raw pointers (not `Send`), so they live for one call only:
        // a driver keeps its batch across awaits. Two small allocations per system call
        // (three with control-message space).
        let cmsg = pktinfo.then(|| nix::cmsg_space!(libc::in6_pktinfo, libc::in_pktinfo));
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(slots, cmsg);
        let mut iovs: Vec<[IoSliceMut<'_>; 1]> = batch
            .storage
            .chunks_mut(batch.stride)
            .take(slots)
            .map(|slot| [IoSliceMut::new(&mut slot[..window + 1])])
            .collect();
        let results = recvmmsg(
            fd,
            &mut headers,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        for (slot, msg) in results.enumerate() {
            out.push(Slot {
                slot,
                len: msg.bytes,
                truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
                from: msg.address.as_ref().and_then(to_std),
                local: if pktinfo { local_of(&msg) } else { None },
            });
        }
        Ok(())
    }

    /// The control message that makes a datagram leave from `source`, in the form the
    /// socket's family takes (an IPv6 socket sends IPv4 from an IPv4-mapped address).
    enum Source {
        None,
        V4(libc::in_pktinfo),
        V6(libc::in6_pktinfo),
    }

    impl Source {
        fn new(source: Option<IpAddr>, v6_socket: bool) -> Source {
            match (source, v6_socket) {
                (None, _) => Source::None,
                (Some(IpAddr::V4(ip)), false) => Source::V4(libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(ip).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                }),
                (Some(ip), true) => {
                    let ip = match ip {
                        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                        IpAddr::V6(v6) => v6,
                    };
                    Source::V6(libc::in6_pktinfo {
                        ipi6_addr: libc::in6_addr {
                            s6_addr: ip.octets(),
                        },
                        ipi6_ifindex: 0,
                    })
                }
                // An IPv6 source on an IPv4 socket cannot be: the kernel chooses.
                (Some(IpAddr::V6(_)), false) => Source::None,
            }
        }

        fn cmsg(&self) -> Option<ControlMessage<'_>> {
            match self {
                Source::None => None,
                Source::V4(info) => Some(ControlMessage::Ipv4PacketInfo(info)),
                Source::V6(info) => Some(ControlMessage::Ipv6PacketInfo(info)),
            }
        }

        /// Control-message space for one header of a `sendmmsg`: exactly what the
        /// message takes (the kernel rejects a buffer with room left over).
        fn space(&self) -> Option<Vec<u8>> {
            match self {
                Source::None => None,
                Source::V4(_) => Some(nix::cmsg_space!(libc::in_pktinfo)),
                Source::V6(_) => Some(nix::cmsg_space!(libc::in6_pktinfo)),
            }
        }
    }

    /// Sends a prefix of up to [`SEND_BATCH_MAX`] datagrams in one system call and
    /// returns how many went: a run of equal-size datagrams to one destination from one
    /// source as one UDP GSO `sendmsg` (while `gso` holds), else every datagram up to
    /// the next such run, or to the next change of source, in one `sendmmsg`.
    pub(crate) fn send<'a>(
        socket: &tokio::net::UdpSocket,
        gso: &AtomicBool,
        v6_socket: bool,
        datagrams: impl IntoIterator<Item = Outgoing<'a>>,
    ) -> io::Result<usize> {
        let fd: RawFd = socket.as_raw_fd();
        let mut items: Vec<Outgoing<'a>> = datagrams.into_iter().take(SEND_BATCH_MAX).collect();
        let Some(&(_, _, source)) = items.first() else {
            return Ok(0);
        };
        // One source per system call.
        let same = items.iter().take_while(|i| i.2 == source).count();
        items.truncate(same);
        let source = Source::new(source, v6_socket);
        let use_gso = gso.load(Ordering::Relaxed);
        if use_gso {
            let run = gso_run(&items);
            if run >= 2 {
                match send_gso(fd, &items[..run], &source) {
                    Ok(()) => return Ok(run),
                    Err(e) if gso_refused(&e) => {
                        // Either this kernel or device cannot segment (too old, no
                        // checksum offload on the route's device), or the destination
                        // itself is bad (EINVAL too). Sent one by one, the run tells:
                        // if that works, GSO was the problem, and is not tried again.
                        let sent = send_each(fd, &items[..run], &source);
                        if sent.is_ok() {
                            tracing::debug!("UDP GSO refused ({e}); sending one by one");
                            gso.store(false, Ordering::Relaxed);
                        }
                        return sent;
                    }
                    Err(e) => return Err(e),
                }
            }
            // Singletons up to where the next run starts: that run gets its own call.
            let end = (1..items.len())
                .find(|&i| gso_run(&items[i..]) >= 2)
                .unwrap_or(items.len());
            return send_each(fd, &items[..end], &source);
        }
        send_each(fd, &items, &source)
    }

    /// Largest segment sent with GSO: every segment must fit the route's MTU, which is
    /// unknown here, and 1200 bytes fits any IPv6 link (1280) and any usual IPv4 one.
    /// Larger datagrams go one by one, exactly as without GSO.
    const GSO_MAX_SEGMENT: usize = 1200;
    /// Most segments in one GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 or more).
    const GSO_MAX_SEGMENTS: usize = 64;

    /// How many datagrams at the head of `items` can go as one GSO send: same
    /// destination and source, same size (a last shorter one ends the run), within the
    /// limits.
    pub(super) fn gso_run(items: &[Outgoing<'_>]) -> usize {
        let Some(&(first, to, from)) = items.first() else {
            return 0;
        };
        let size = first.len();
        if size == 0 || size > GSO_MAX_SEGMENT {
            return 1;
        }
        let mut n = 1;
        for &(payload, dest, source) in &items[1..] {
            if n == GSO_MAX_SEGMENTS
                || dest != to
                || source != from
                || payload.is_empty()
                || payload.len() > size
            {
                break;
            }
            n += 1;
            if payload.len() < size {
                break;
            }
        }
        n
    }

    /// Errors by which the kernel says it cannot segment this send, rather than that
    /// the destination or the socket failed.
    fn gso_refused(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(
                libc_errno::EIO
                    | libc_errno::EINVAL
                    | libc_errno::ENOPROTOOPT
                    | libc_errno::EOPNOTSUPP
            )
        )
    }

    mod libc_errno {
        use nix::errno::Errno;
        pub(super) const EIO: i32 = Errno::EIO as i32;
        pub(super) const EINVAL: i32 = Errno::EINVAL as i32;
        pub(super) const ENOPROTOOPT: i32 = Errno::ENOPROTOOPT as i32;
        pub(super) const EOPNOTSUPP: i32 = Errno::EOPNOTSUPP as i32;
    }

    /// One `sendmsg` of a run from [`gso_run`]: the kernel cuts the payloads (one iovec
    /// each, no copy) into datagrams of the first one's size. All or nothing.
    fn send_gso(fd: RawFd, run: &[Outgoing<'_>], source: &Source) -> io::Result<()> {
        let iovs: Vec<IoSlice<'_>> = run.iter().map(|(p, _, _)| IoSlice::new(p)).collect();
        let segment = run[0].0.len() as u16; // at most GSO_MAX_SEGMENT
        let to = SockaddrStorage::from(run[0].1);
        let mut cmsgs = vec![ControlMessage::UdpGsoSegments(&segment)];
        cmsgs.extend(source.cmsg());
        sendmsg(fd, &iovs, &cmsgs, MsgFlags::MSG_DONTWAIT, Some(&to))?;
        Ok(())
    }

    /// One `sendmmsg` of `items`, all from `source` (one `sendto`, or `sendmsg` with a
    /// source, for a lone datagram, which needs no headers built): how many the kernel
    /// took (a prefix).
    fn send_each(fd: RawFd, items: &[Outgoing<'_>], source: &Source) -> io::Result<usize> {
        if let [(payload, to, _)] = items {
            let to = SockaddrStorage::from(*to);
            match source.cmsg() {
                None => sendto(fd, payload, &to, MsgFlags::MSG_DONTWAIT)?,
                Some(cmsg) => sendmsg(
                    fd,
                    &[IoSlice::new(payload)],
                    &[cmsg],
                    MsgFlags::MSG_DONTWAIT,
                    Some(&to),
                )?,
            };
            return Ok(1);
        }
        let iovs: Vec<[IoSlice<'_>; 1]> = items.iter().map(|(p, _, _)| [IoSlice::new(p)]).collect();
        let addrs: Vec<Option<SockaddrStorage>> = items
            .iter()
            .map(|&(_, to, _)| Some(SockaddrStorage::from(to)))
            .collect();
        let cmsgs: Vec<ControlMessage<'_>> = source.cmsg().into_iter().collect();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(iovs.len(), source.space());
        let sent = sendmmsg(
            fd,
            &mut headers,
            iovs.iter(),
            &addrs,
            &cmsgs,
            MsgFlags::MSG_DONTWAIT,
        )?;
        Ok(sent.count())
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use super::{Outgoing, RecvBatch, Slot, SEND_BATCH_MAX};
    use std::io;

    /// The portable fallback: one `recv_from` per slot until the queue is empty.
    pub(crate) fn recv(
        socket: &tokio::net::UdpSocket,
        batch: &mut RecvBatch,
        window: usize,
        _pktinfo: bool,
        out: &mut Vec<Slot>,
    ) -> io::Result<()> {
        let stride = batch.stride;
        let slots = batch.offer();
        for (slot, buf) in batch.storage.chunks_mut(stride).take(slots).enumerate() {
            // One more byte than the window tells "fits" from "was cut" portably
            // (`window` is at most the slot length, one less than the stride).
            match socket.try_recv_from(&mut buf[..window + 1]) {
                Ok((n, from)) => out.push(Slot {
                    slot,
                    len: n,
                    truncated: false,
                    from: Some(from),
                    local: None,
                }),
                Err(e) if out.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// No destination addresses are asked for here: answers leave from the kernel's
    /// choice of source.
    pub(crate) fn enable_pktinfo(_socket: &tokio::net::UdpSocket, _v6: bool) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "destination addresses (IP_PKTINFO) are read on Linux only",
        ))
    }

    /// The portable fallback: one `send_to` per datagram, stopping at the first failure
    /// (reported only when nothing was sent, as `sendmmsg` does). The source is the
    /// kernel's choice.
    pub(crate) fn send<'a>(
        socket: &tokio::net::UdpSocket,
        _gso: &std::sync::atomic::AtomicBool,
        _v6_socket: bool,
        datagrams: impl IntoIterator<Item = Outgoing<'a>>,
    ) -> io::Result<usize> {
        let mut sent = 0;
        for (payload, to, _) in datagrams.into_iter().take(SEND_BATCH_MAX) {
            match socket.try_send_to(payload, to) {
                Ok(_) => sent += 1,
                Err(e) if sent == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(sent)
    }
}

pub(crate) use sys::{enable_pktinfo as sys_enable_pktinfo, recv as sys_recv, send as sys_send};

#[cfg(test)]
mod offer_tests {
    use super::RecvBatch;

    #[test]
    fn a_receive_offers_every_slot_first_then_twice_what_the_last_one_took() {
        let mut batch = RecvBatch::new(32, 8);
        assert_eq!(batch.offer(), 32);
        batch.recent = 1;
        assert_eq!(batch.offer(), 2, "a lone datagram: small headers next time");
        batch.recent = 2;
        assert_eq!(batch.offer(), 4);
        batch.recent = 20;
        assert_eq!(batch.offer(), 32, "never more than the slots");
        let mut one = RecvBatch::new(1, 8);
        one.recent = 1;
        assert_eq!(one.offer(), 1);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::sys::gso_run;
    use std::net::{IpAddr, SocketAddr};

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn from(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([127, 0, 0, last]))
    }

    #[test]
    fn a_gso_run_is_equal_sizes_to_one_destination_ended_by_a_shorter_one() {
        let (a, b, c) = ([1u8; 10], [2u8; 10], [3u8; 4]);
        let items = [
            (&a[..], at(1), None),
            (&b[..], at(1), None),
            (&c[..], at(1), None),
            (&a[..], at(1), None),
        ];
        assert_eq!(gso_run(&items), 3, "the shorter one is the last of the run");
        let items = [
            (&a[..], at(1), None),
            (&b[..], at(2), None),
            (&c[..], at(1), None),
        ];
        assert_eq!(gso_run(&items), 1, "another destination ends it");
        let items = [(&c[..], at(1), None), (&a[..], at(1), None)];
        assert_eq!(gso_run(&items), 1, "a longer one ends it");
        assert_eq!(gso_run(&[]), 0);
    }

    #[test]
    fn a_gso_run_is_one_source_too() {
        let a = [1u8; 10];
        let items = [
            (&a[..], at(1), from(2)),
            (&a[..], at(1), from(2)),
            (&a[..], at(1), from(3)),
        ];
        assert_eq!(gso_run(&items), 2, "another source ends it");
        let items = [(&a[..], at(1), None), (&a[..], at(1), from(2))];
        assert_eq!(
            gso_run(&items),
            1,
            "a named source is not the kernel's choice"
        );
    }

    #[test]
    fn a_gso_run_excludes_large_or_empty_segments_and_stops_at_64() {
        let big = [0u8; 1201];
        assert_eq!(
            gso_run(&[(&big[..], at(1), None), (&big[..], at(1), None)]),
            1
        );
        let empty: [u8; 0] = [];
        assert_eq!(
            gso_run(&[(&empty[..], at(1), None), (&empty[..], at(1), None)]),
            1
        );
        let small = [0u8; 1200];
        let many = vec![(&small[..], at(1), None); 100];
        assert_eq!(gso_run(&many), 64);
    }
}
