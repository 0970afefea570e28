//! Asynchronous name resolution (Twisted's `reactor.resolve`), with an error that says
//! which name failed and why.

use std::io;
use std::net::{IpAddr, SocketAddr};

/// Why a name did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The resolver failed: unknown name, no network, or a malformed name. Remedy: check
    /// the spelling and `/etc/resolv.conf` / `/etc/hosts`.
    #[error("cannot resolve '{host}': {source}")]
    Lookup {
        /// The name asked for.
        host: String,
        /// What the system resolver said.
        source: io::Error,
    },
    /// The name exists but has no address of a usable family.
    #[error("'{host}' resolved to no address")]
    NoAddress {
        /// The name asked for.
        host: String,
    },
}

/// Resolves `host` (a name or an IP literal) to socket addresses with `port`, without
/// blocking the runtime. Literals never touch the resolver.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let addrs = rpcudp::udp::resolve("127.0.0.1", 9).await.unwrap();
/// assert_eq!(addrs, vec!["127.0.0.1:9".parse().unwrap()]);
/// let err = rpcudp::udp::resolve("name.invalid", 9).await.unwrap_err();
/// assert!(err.to_string().contains("name.invalid"));
/// # }
/// ```
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| ResolveError::Lookup {
            host: host.to_string(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(ResolveError::NoAddress {
            host: host.to_string(),
        });
    }
    Ok(addrs)
}

/// Resolves `host` to its IP addresses, in resolver order (duplicates removed).
pub async fn resolve_ip(host: &str) -> Result<Vec<IpAddr>, ResolveError> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for a in resolve(host, 0).await? {
        if !ips.contains(&a.ip()) {
            ips.push(a.ip());
        }
    }
    Ok(ips)
}
