//! The datagram-endpoint step of `rpcudp demo`: plain datagrams, a handler, connected
//! UDP with "connection refused", oversize detection, and a multicast ping where the host
//! allows one. Loopback only.

use super::{say, StepResult};
use bytes::Bytes;
use rpcudp::udp::{listen, DatagramHandler, Interface, Socket, SocketConfig, Transport};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(2);

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn bind(addr: &str) -> Result<Socket, String> {
    Socket::bind(addr.parse().map_err(err)?).await.map_err(err)
}

async fn recv(ep: &Socket) -> Result<(Bytes, SocketAddr), String> {
    tokio::time::timeout(WAIT, ep.recv_datagram())
        .await
        .map_err(|_| "no datagram arrived within 2 s".to_string())?
        .map_err(err)
}

/// Twisted's Echo, as a handler.
struct Echo;

impl DatagramHandler for Echo {
    async fn datagram_received(&mut self, data: Bytes, from: SocketAddr, t: &Transport) {
        let _ = t.send_to(&data, from).await;
    }
}

/// Runs the step.
pub async fn step() -> StepResult {
    plain().await?;
    handler().await?;
    connected().await?;
    oversized().await?;
    match multicast().await {
        Ok(()) => {}
        Err(why) => say(format!(
            "multicast ping skipped: this host does not allow it on loopback ({why})"
        )),
    }
    Ok(())
}

async fn plain() -> Result<(), String> {
    let a = bind("127.0.0.1:0").await?;
    let b = bind("127.0.0.1:0").await?;
    let (a_addr, b_addr) = (a.local_addr().map_err(err)?, b.local_addr().map_err(err)?);
    say(format!("bound two UDP endpoints: {a_addr} and {b_addr}"));
    a.send_to(b"hello over UDP", b_addr).await.map_err(err)?;
    let (data, from) = recv(&b).await?;
    say(format!(
        "{b_addr} received {:?} from {from}",
        String::from_utf8_lossy(&data)
    ));
    Ok(())
}

async fn handler() -> Result<(), String> {
    let server = listen(bind("127.0.0.1:0").await?, Echo);
    let client = bind("127.0.0.1:0").await?;
    client
        .send_to(b"echo me", server.local_addr())
        .await
        .map_err(err)?;
    let (data, _) = recv(&client).await?;
    say(format!(
        "an Echo handler (Twisted's DatagramProtocol) on {} sent back {:?}",
        server.local_addr(),
        String::from_utf8_lossy(&data)
    ));
    server.stop().await.map_err(err)?;
    say("stopped it: its stop callback ran and the socket closed");
    Ok(())
}

async fn connected() -> Result<(), String> {
    // A port that was just closed: nobody listens there.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map_err(err)?;
    let helloer = bind("127.0.0.1:0").await?;
    helloer.connect(closed).await.map_err(err)?;
    helloer.send(b"hello").await.map_err(err)?;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(WAIT, helloer.recv(&mut buf)).await {
        Ok(Err(e)) if rpcudp::udp::is_connection_refused(&e) => say(format!(
            "connected to {closed} and said hello: \"connection refused\" (nobody listens)"
        )),
        Ok(Err(e)) => return Err(format!("expected connection refused, got {e}")),
        Ok(Ok(_)) => return Err("a closed port answered".into()),
        Err(_) => return Err("no connection-refused report within 2 s".into()),
    }
    // The endpoint survives the refusal: someone starts listening there.
    let peer = Socket::bind(closed).await.map_err(err)?;
    helloer.send(b"hello again").await.map_err(err)?;
    let (data, _) = recv(&peer).await?;
    say(format!(
        "the same endpoint goes on: {closed} now received {:?}",
        String::from_utf8_lossy(&data)
    ));
    Ok(())
}

async fn oversized() -> Result<(), String> {
    let small = Socket::bind_with(
        "127.0.0.1:0".parse().map_err(err)?,
        SocketConfig {
            max_datagram: 512,
            ..SocketConfig::default()
        },
    )
    .await
    .map_err(err)?;
    let to = small.local_addr().map_err(err)?;
    let sender = bind("127.0.0.1:0").await?;
    sender.send_to(&[0u8; 65_507], to).await.map_err(err)?;
    sender.send_to(b"small", to).await.map_err(err)?;
    let (data, _) = recv(&small).await?;
    say(format!(
        "an endpoint with max_datagram 512 got a 65,507-byte datagram and then {:?}: \
         the big one was dropped and counted ({} oversized), never truncated",
        String::from_utf8_lossy(&data),
        small.stats().oversized_dropped
    ));
    Ok(())
}

/// `rpcudp mcast listen` + `ping` in miniature, on the loopback interface only.
async fn multicast() -> Result<(), String> {
    let group: std::net::IpAddr = "228.0.0.5".parse().map_err(err)?;
    let lo = Interface::V4(Ipv4Addr::LOCALHOST);
    let mut listeners = Vec::new();
    let mut port = 0;
    for _ in 0..2 {
        let ep = Socket::bind_with(
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
            SocketConfig::listen_multiple(),
        )
        .await
        .map_err(err)?;
        ep.join_multicast(group, lo).map_err(err)?;
        port = ep.local_addr().map_err(err)?.port();
        listeners.push(ep);
    }
    let pinger = bind("0.0.0.0:0").await?;
    pinger.set_multicast_interface(lo).map_err(err)?;
    pinger
        .send_to(b"Client: Ping", SocketAddr::new(group, port))
        .await
        .map_err(err)?;
    for ep in &listeners {
        let (_, from) = recv(ep).await?;
        ep.send_to(b"Server: Pong", from).await.map_err(err)?;
    }
    let mut pongs = 0;
    while pongs < listeners.len() {
        recv(&pinger).await?;
        pongs += 1;
    }
    say(format!(
        "multicast: two listeners share port {port} in group {group}; one ping, {pongs} pongs by unicast"
    ));
    Ok(())
}
