//! `rpcudp mcast listen` and `rpcudp mcast ping` (docs/cli.md): Twisted's
//! multicast ping-pong server and client.

use crate::common;
use bytes::Bytes;
use rpcudp::udp::{
    is_link_local_multicast_v6, listen, DatagramHandler, Interface, IpStack, Socket, SocketConfig,
    Transport,
};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

/// What the pinger sends and the listener answers, as in Twisted's UDP guide.
pub const PING: &[u8] = b"Client: Ping";
/// The listener's unicast answer to [`PING`].
pub const PONG: &[u8] = b"Server: Pong";

/// Subcommands of `rpcudp mcast`.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Join a multicast group (sharing the port with other listeners) and answer
    /// `Client: Ping` with `Server: Pong` by unicast; print `<sender> <payload>` per datagram.
    Listen(ListenArgs),
    /// Send `Client: Ping` to a group from an ephemeral port and print `pong from IP:PORT`
    /// per reply until the timeout. Exits 0 if anyone answered, 3 if nobody did.
    Ping(PingArgs),
}

/// Arguments of `rpcudp mcast listen`.
#[derive(clap::Args, Debug)]
pub struct ListenArgs {
    /// The multicast group (IPv4 `224.0.0.0/4` or IPv6 `ff00::/8`).
    #[arg(long)]
    group: IpAddr,
    /// The UDP port, shared with other listeners on this host.
    #[arg(long)]
    port: u16,
    /// The interface to join on: an IPv4 address for IPv4 groups, a name or index for IPv6.
    #[arg(long)]
    interface: Option<String>,
}

/// Arguments of `rpcudp mcast ping`.
#[derive(clap::Args, Debug)]
pub struct PingArgs {
    /// The multicast group to ping.
    #[arg(long)]
    group: IpAddr,
    /// The group's port.
    #[arg(long)]
    port: u16,
    /// Multicast TTL / hop limit of the ping, 0 to 255 (1: stay on the local network).
    #[arg(
        long,
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(0..=255),
        allow_negative_numbers = true
    )]
    ttl: u32,
    /// Seconds to collect replies.
    #[arg(long, default_value = "2", value_parser = parse_timeout, allow_negative_numbers = true)]
    timeout: Duration,
    /// The interface to send by: an IPv4 address for IPv4 groups, a name or index for IPv6.
    #[arg(long)]
    interface: Option<String>,
}

/// Runs an `rpcudp mcast` subcommand.
pub async fn run(command: Command) -> u8 {
    let result = match command {
        Command::Listen(args) => run_listen(args).await,
        Command::Ping(args) => run_ping(args).await,
    };
    match result {
        Ok(code) => code,
        Err((code, msg)) => {
            eprintln!("error: {msg}");
            code
        }
    }
}

type Failure = (u8, String);

fn usage(msg: String) -> Failure {
    (common::EXIT_USAGE, msg)
}

fn failure(msg: String) -> Failure {
    (common::EXIT_FAILURE, msg)
}

fn check_group(group: IpAddr) -> Result<(), Failure> {
    if group.is_multicast() {
        Ok(())
    } else {
        Err(usage(format!(
            "--group {group}: not a multicast address (IPv4 224.0.0.0/4, IPv6 ff00::/8)"
        )))
    }
}

/// Parses `--interface` for `group`'s family: IPv4 wants an address, IPv6 a name or index.
fn parse_interface(group: IpAddr, text: Option<&str>) -> Result<Interface, Failure> {
    let Some(text) = text else {
        return Ok(Interface::Any);
    };
    match group {
        IpAddr::V4(_) => match text.parse::<Ipv4Addr>() {
            Ok(a) if a.is_unspecified() => Ok(Interface::Any),
            Ok(a) => Ok(Interface::V4(a)),
            Err(_) => Err(usage(format!(
                "--interface {text}: an IPv4 group needs the interface's IPv4 address"
            ))),
        },
        IpAddr::V6(_) => {
            if text.parse::<IpAddr>().is_ok() {
                return Err(usage(format!(
                    "--interface {text}: an IPv6 group needs an interface name or index, not an address"
                )));
            }
            text.parse::<Interface>()
                .map_err(|e| usage(format!("--interface {text}: {e}")))
        }
    }
}

/// Prints one line, escaping control characters so a datagram is always one line.
fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn printable(data: &[u8]) -> String {
    String::from_utf8_lossy(data)
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The listener's handler: Twisted's `MulticastPingPong`.
struct PingPong;

impl DatagramHandler for PingPong {
    async fn datagram_received(&mut self, data: Bytes, from: SocketAddr, t: &Transport) {
        print_line(&format!("{from} {}", printable(&data)));
        if &data[..] == PING {
            // Unicast to the sender's own port, never to the group.
            if let Err(e) = t.send_to(PONG, from).await {
                tracing::warn!(%from, error = %e, "cannot answer the ping");
            }
        }
    }
}

async fn run_listen(args: ListenArgs) -> Result<u8, Failure> {
    check_group(args.group)?;
    let interface = parse_interface(args.group, args.interface.as_deref())?;
    let bind: SocketAddr = match args.group {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, args.port).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, args.port).into(),
    };
    let endpoint = Socket::bind_with(
        bind,
        SocketConfig {
            ip_stack: IpStack::V6Only,
            ..SocketConfig::listen_multiple()
        },
    )
    .await
    .map_err(|e| failure(e.to_string()))?;
    endpoint
        .join_multicast(args.group, interface)
        .map_err(|e| failure(format!("cannot join {} on {interface}: {e}", args.group)))?;
    let local = endpoint.local_addr().map_err(|e| failure(e.to_string()))?;
    // Ready once joined: datagrams queue in the socket from here on. Say so before the
    // handler starts, so no datagram line can come before `listening on`.
    common::print_listening(local);
    let running = listen(endpoint, PingPong);
    common::shutdown_signal().await;
    running
        .stop()
        .await
        .map_err(|e| failure(format!("the listener failed: {e}")))?;
    Ok(common::EXIT_OK)
}

/// `--timeout` as a duration: a usage error (never a panic) when it is not a number,
/// negative, or over a year.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    // A year is far beyond any useful wait and far inside what `Instant` can add (a
    // deadline past that panicked).
    const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("'{text}' is not a number of seconds"));
    }
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d <= LONGEST => Ok(d),
        _ => Err(format!(
            "'{text}' is too long (at most {} seconds)",
            LONGEST.as_secs()
        )),
    }
}

async fn run_ping(args: PingArgs) -> Result<u8, Failure> {
    check_group(args.group)?;
    let interface = parse_interface(args.group, args.interface.as_deref())?;
    // An ephemeral port, never the group's: with address reuse the kernel could hand
    // the unicast replies to a listener sharing the group port on this host.
    let (bind, target): (SocketAddr, SocketAddr) = match args.group {
        IpAddr::V4(g) => ((Ipv4Addr::UNSPECIFIED, 0).into(), (g, args.port).into()),
        IpAddr::V6(g) => {
            let scope = match interface {
                Interface::Index(i) => i,
                _ => 0,
            };
            (
                (Ipv6Addr::UNSPECIFIED, 0).into(),
                SocketAddrV6::new(g, args.port, 0, scope).into(),
            )
        }
    };
    let endpoint = Socket::bind(bind)
        .await
        .map_err(|e| failure(format!("cannot bind {bind}: {e}")))?;
    endpoint
        .set_multicast_ttl(args.ttl)
        .map_err(|e| failure(format!("--ttl {}: {e}", args.ttl)))?;
    if interface != Interface::Any {
        endpoint
            .set_multicast_interface(interface)
            .map_err(|e| failure(format!("cannot send by {interface}: {e}")))?;
    }
    endpoint.send_to(PING, target).await.map_err(|e| {
        let hint = match args.group {
            IpAddr::V6(g) if is_link_local_multicast_v6(&g) && interface == Interface::Any => {
                " (a link-local IPv6 group needs --interface NAME or INDEX)"
            }
            _ => "",
        };
        failure(format!("cannot send to {target}: {e}{hint}"))
    })?;
    tracing::info!(%target, "ping sent; collecting replies");
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut replies = 0u64;
    let mut errors = 0u32;
    let mut buf = vec![0u8; 2048];
    loop {
        match tokio::time::timeout_at(deadline, endpoint.recv_from(&mut buf)).await {
            Err(_) => break,
            Ok(Ok((n, from))) => {
                tracing::debug!(%from, payload = %printable(&buf[..n]), "reply");
                print_line(&format!("pong from {from}"));
                replies += 1;
            }
            // Per-datagram reports (an ICMP error, say) do not end the wait.
            Ok(Err(e)) => {
                errors += 1;
                tracing::debug!(error = %e, "receive error while waiting");
                if errors > 100 {
                    return Err(failure(format!("receiving replies keeps failing: {e}")));
                }
            }
        }
    }
    if replies > 0 {
        Ok(common::EXIT_OK)
    } else {
        eprintln!(
            "no reply from {target} within {} s",
            args.timeout.as_secs_f64()
        );
        Ok(common::EXIT_NO_ANSWER)
    }
}
