//! Source subnets and local addresses: the unit that per-source limits count by.
//!
//! One attacker usually holds one address but any number of ports, and often a whole
//! IPv4 /24 or IPv6 /64 (one customer's allocation). So every per-source limit in this
//! crate (the RPC endpoint's rate limits and handler shares, the routing table's contacts
//! per subnet) counts by [`SourceKey`]: the /24 of an IPv4 address or the /64 of an IPv6
//! one, IPv4-mapped IPv6 counted as IPv4.
//!
//! [`is_local`] says which addresses those limits exempt unless told to be strict
//! (`--strict-local`): loopback, private, link-local and unique-local ranges, where test
//! networks run many nodes on one address.
//!
//! This module owns only the arithmetic; the limits themselves live with the state they
//! protect (`rpc::limits`, `kad::routing`).

use std::net::IpAddr;

/// The subnet a source is counted in: an IPv4 /24 or an IPv6 /64.
///
/// ```
/// use rpcudp_proto::subnet::SourceKey;
/// let a = SourceKey::of("203.0.113.7".parse().unwrap());
/// let b = SourceKey::of("203.0.113.200".parse().unwrap());
/// let c = SourceKey::of("203.0.114.7".parse().unwrap());
/// assert_eq!(a, b);
/// assert_ne!(a, c);
/// // IPv4-mapped IPv6 is the same source as the IPv4 address.
/// assert_eq!(a, SourceKey::of("::ffff:203.0.113.9".parse().unwrap()));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKey {
    /// The first three octets of an IPv4 address.
    V4([u8; 3]),
    /// The first eight bytes of an IPv6 address.
    V6([u8; 8]),
}

impl SourceKey {
    /// The subnet of `ip`.
    pub fn of(ip: IpAddr) -> SourceKey {
        match canonical_ip(ip) {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                SourceKey::V4([o[0], o[1], o[2]])
            }
            IpAddr::V6(v6) => {
                let o = v6.octets();
                let mut k = [0u8; 8];
                k.copy_from_slice(&o[..8]);
                SourceKey::V6(k)
            }
        }
    }
}

/// `ip` with IPv4-mapped IPv6 written as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Whether `ip` is loopback, private (10/8, 172.16/12, 192.168/16, 100.64/10 shared),
/// link-local (169.254/16, fe80::/10), unique-local (fc00::/7) or unspecified: the
/// ranges per-address limits exempt unless strict.
///
/// ```
/// use rpcudp_proto::subnet::is_local;
/// assert!(is_local("127.0.2.1".parse().unwrap()));
/// assert!(is_local("192.168.1.9".parse().unwrap()));
/// assert!(is_local("fd00::1".parse().unwrap()));
/// assert!(!is_local("203.0.113.7".parse().unwrap()));
/// assert!(!is_local("2001:db8::1".parse().unwrap()));
/// ```
pub fn is_local(ip: IpAddr) -> bool {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (o[0] == 100 && (o[1] & 0xC0) == 64)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xFE00) == 0xFC00
                || (s[0] & 0xFFC0) == 0xFE80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sources_are_counted_by_their_64() {
        let a = SourceKey::of("2001:db8:1:2::1".parse().unwrap());
        let b = SourceKey::of("2001:db8:1:2:ffff::9".parse().unwrap());
        let c = SourceKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn shared_and_link_local_ranges_are_local_and_public_ones_are_not() {
        for local in [
            "100.64.0.1",
            "169.254.3.4",
            "172.31.0.1",
            "10.1.2.3",
            "::1",
            "fe80::1",
        ] {
            assert!(is_local(local.parse().unwrap()), "{local}");
        }
        for public in ["100.128.0.1", "172.32.0.1", "8.8.8.8", "2606:4700::1"] {
            assert!(!is_local(public.parse().unwrap()), "{public}");
        }
        assert!(is_local("::ffff:127.0.0.1".parse().unwrap()));
    }
}
