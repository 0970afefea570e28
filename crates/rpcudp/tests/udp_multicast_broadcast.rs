//! Multicast and broadcast over real sockets.
//!
//! Option getters and setters run on the host (they send nothing). Traffic runs inside
//! network namespaces this test creates: the test re-executes its own binary inside the
//! namespace (`ip netns exec`) to run one of the `child_*` functions, which are marked
//! `#[ignore]` so they run only that way. Skips with a printed reason without root;
//! as root they must run.

use rpcudp::udp::{Interface, IpStack, Socket, SocketConfig};
use rpcudp_testkit::{require_netns, Child, Netns};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);
const CHILD_ENV: &str = "RPCUDP_NETNS_CHILD";

/// Runs `child` (one of the ignored tests below) inside `ns` and fails with its output
/// unless it passes.
fn run_child(ns: &Netns, child: &str, env: &[(&str, String)]) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = ns.command(exe);
    cmd.args([
        child,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut proc = Child::spawn(child, cmd);
    let (status, out) = proc
        .wait_output(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{child} did not finish within 60 s"));
    assert!(
        status.success(),
        "{child} failed in {}: {status:?}\nstdout: {out:#?}\nstderr: {}",
        ns.name(),
        proc.stderr()
    );
    assert!(
        out.iter().any(|l| l.contains("1 passed")),
        "{child} did not run: {out:#?}"
    );
}

/// True when this process is a child started by [`run_child`]; otherwise says why the
/// child body does nothing.
fn in_child() -> bool {
    let yes = std::env::var(CHILD_ENV).is_ok();
    if !yes {
        eprintln!("not started by run_child inside a namespace: nothing to do");
    }
    yes
}

async fn recv(ep: &Socket) -> (Vec<u8>, SocketAddr) {
    let (data, from) = tokio::time::timeout(WAIT, ep.recv_datagram())
        .await
        .expect("a datagram within 5 s")
        .expect("recv");
    (data.to_vec(), from)
}

/// Asserts that the next datagram `ep` receives is `expected`: sent after one that must
/// not arrive, by the same sender on the same path, it proves that one was not delivered
/// (datagrams between two sockets over one link keep their order).
async fn assert_next_is(ep: &Socket, expected: &[u8]) {
    let (data, _) = recv(ep).await;
    assert_eq!(
        String::from_utf8_lossy(&data),
        String::from_utf8_lossy(expected),
        "a group datagram arrived that should not have"
    );
}

async fn shared_listeners(bind: SocketAddr) -> (Socket, Socket) {
    let cfg = SocketConfig {
        ip_stack: IpStack::V6Only,
        ..SocketConfig::listen_multiple()
    };
    let a = Socket::bind_with(bind, cfg.clone()).await.unwrap();
    let port = a.local_addr().unwrap().port();
    let b = Socket::bind_with(SocketAddr::new(bind.ip(), port), cfg)
        .await
        .unwrap();
    (a, b)
}

// ---- option getters and setters (no traffic) ----

#[tokio::test]
async fn ipv4_multicast_options_read_back_what_was_set() {
    let ep = Socket::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert_eq!(
        ep.multicast_ttl().unwrap(),
        1,
        "the default TTL stays on the link"
    );
    ep.set_multicast_ttl(5).unwrap();
    assert_eq!(ep.multicast_ttl().unwrap(), 5);
    assert!(ep.multicast_loop().unwrap());
    ep.set_multicast_loop(false).unwrap();
    assert!(!ep.multicast_loop().unwrap());
    assert_eq!(ep.multicast_interface().unwrap(), Interface::Any);
    ep.set_multicast_interface(Interface::V4(Ipv4Addr::LOCALHOST))
        .unwrap();
    assert_eq!(
        ep.multicast_interface().unwrap(),
        Interface::V4(Ipv4Addr::LOCALHOST)
    );
    let err = ep.set_multicast_interface(Interface::Index(1)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn ipv6_multicast_options_read_back_what_was_set() {
    let ep = Socket::bind("[::1]:0".parse().unwrap()).await.unwrap();
    ep.set_multicast_ttl(4).unwrap();
    assert_eq!(ep.multicast_ttl().unwrap(), 4);
    ep.set_multicast_loop(false).unwrap();
    assert!(!ep.multicast_loop().unwrap());
    let lo = Interface::by_name("lo").unwrap();
    ep.set_multicast_interface(lo).unwrap();
    assert_eq!(ep.multicast_interface().unwrap(), lo);
    let err = ep
        .set_multicast_interface(Interface::V4(Ipv4Addr::LOCALHOST))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn joining_a_unicast_address_is_refused() {
    let ep = Socket::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let err = ep
        .join_multicast("10.0.0.1".parse().unwrap(), Interface::Any)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("10.0.0.1"));
}

#[tokio::test]
async fn broadcast_flag_can_be_read_and_set_at_bind_or_later() {
    let ep = Socket::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert!(!ep.broadcast().unwrap());
    ep.set_broadcast(true).unwrap();
    assert!(ep.broadcast().unwrap());
    ep.set_broadcast(false).unwrap();
    assert!(!ep.broadcast().unwrap());
    let on = Socket::bind_with(
        "127.0.0.1:0".parse().unwrap(),
        SocketConfig {
            broadcast: true,
            ..SocketConfig::default()
        },
    )
    .await
    .unwrap();
    assert!(on.broadcast().unwrap());
}

#[test]
fn interface_names_and_indexes_parse() {
    assert_eq!(
        "lo".parse::<Interface>().unwrap(),
        Interface::by_name("lo").unwrap()
    );
    assert!(matches!(Interface::by_name("lo").unwrap(), Interface::Index(i) if i > 0));
    assert_eq!("0.0.0.0".parse::<Interface>().unwrap(), Interface::Any);
    let err = Interface::by_name("../etc").unwrap_err();
    assert!(err.to_string().contains("../etc"));
}

// ---- IPv4 multicast over lo, in a namespace ----

#[test]
fn ipv4_multicast_reaches_every_member_and_respects_leave_and_loopback_mode() {
    let Some(ns) = require_netns("ipv4_multicast_reaches_every_member", "udp4") else {
        return;
    };
    // A veth rather than lo: on lo a datagram sent "out" comes straight back in, so the
    // loopback mode could not be observed.
    ns.add_veth("m0", "m1").unwrap();
    ns.exec_ok(&["ip", "addr", "add", "10.78.0.1/24", "dev", "m0"])
        .unwrap();
    ns.exec_ok(&["ip", "route", "add", "224.0.0.0/4", "dev", "m0"])
        .unwrap();
    run_child(&ns, "child_ipv4_multicast", &[]);
}

#[tokio::test]
#[ignore = "runs only inside a namespace, started by ipv4_multicast_reaches_every_member_..."]
async fn child_ipv4_multicast() {
    if !in_child() {
        return;
    }
    let m0 = Interface::by_name("m0").unwrap();
    let m0_addr = Interface::V4("10.78.0.1".parse().unwrap());
    let (g1, g2): (IpAddr, IpAddr) = ("228.0.0.7".parse().unwrap(), "228.0.0.8".parse().unwrap());
    let (a, b) = shared_listeners("0.0.0.0:0".parse().unwrap()).await;
    let port = a.local_addr().unwrap().port();
    // By address and by index: both name m0.
    a.join_multicast(g1, m0_addr).unwrap();
    b.join_multicast(g1, m0).unwrap();
    b.join_multicast(g2, m0).unwrap();
    let sender = Socket::bind("0.0.0.0:0".parse().unwrap()).await.unwrap();
    sender.set_multicast_interface(m0_addr).unwrap();
    sender.set_multicast_ttl(3).unwrap();
    let (t1, t2) = (SocketAddr::new(g1, port), SocketAddr::new(g2, port));

    sender.send_to(b"to all", t1).await.unwrap();
    for ep in [&a, &b] {
        let (data, from) = recv(ep).await;
        assert_eq!(data, b"to all");
        assert_eq!(
            from,
            SocketAddr::new(
                "10.78.0.1".parse().unwrap(),
                sender.local_addr().unwrap().port()
            )
        );
    }

    b.leave_multicast(g1, m0).unwrap();
    sender.send_to(b"after leave", t1).await.unwrap();
    sender.send_to(b"g2 marker", t2).await.unwrap();
    assert_eq!(recv(&a).await.0, b"after leave");
    assert_next_is(&b, b"g2 marker").await;

    sender.set_multicast_loop(false).unwrap();
    sender.send_to(b"not looped", t1).await.unwrap();
    sender.set_multicast_loop(true).unwrap();
    sender.send_to(b"looped", t1).await.unwrap();
    assert_next_is(&a, b"looped").await;
    println!("ipv4 multicast ok");
}

// ---- IPv6 multicast over a veth pair, in a namespace ----

#[test]
fn ipv6_multicast_reaches_every_member_and_respects_leave_and_loopback_mode() {
    let test = "ipv6_multicast_reaches_every_member";
    let Some(ns) = require_netns(test, "udp6") else {
        return;
    };
    if let Err(why) = ns.add_veth("m0", "m1") {
        eprintln!("SKIP {test}: the kernel cannot make a veth pair for IPv6 multicast: {why}");
        return;
    }
    ns.wait_link_local("m0", Duration::from_secs(10)).unwrap();
    let index = ns.ifindex("m0").unwrap();
    run_child(
        &ns,
        "child_ipv6_multicast",
        &[("M0_INDEX", index.to_string())],
    );
}

#[tokio::test]
#[ignore = "runs only inside a namespace, started by ipv6_multicast_reaches_every_member_..."]
async fn child_ipv6_multicast() {
    if !in_child() {
        return;
    }
    let index: u32 = std::env::var("M0_INDEX").unwrap().parse().unwrap();
    assert_eq!(Interface::by_name("m0").unwrap(), Interface::Index(index));
    let m0 = Interface::Index(index);
    let (g1, g2): (IpAddr, IpAddr) = ("ff02::1:7".parse().unwrap(), "ff02::1:8".parse().unwrap());
    let (a, b) = shared_listeners("[::]:0".parse().unwrap()).await;
    let port = a.local_addr().unwrap().port();
    a.join_multicast(g1, m0).unwrap();
    b.join_multicast(g1, m0).unwrap();
    b.join_multicast(g2, m0).unwrap();
    let sender = Socket::bind("[::]:0".parse().unwrap()).await.unwrap();
    sender.set_multicast_interface(m0).unwrap();
    sender.set_multicast_ttl(2).unwrap();
    let to = |g: IpAddr| -> SocketAddr {
        let IpAddr::V6(g) = g else { unreachable!() };
        SocketAddrV6::new(g, port, 0, index).into()
    };

    sender.send_to(b"to all six", to(g1)).await.unwrap();
    for ep in [&a, &b] {
        let (data, from) = recv(ep).await;
        assert_eq!(data, b"to all six");
        assert!(from.ip().to_string().starts_with("fe80::"), "{from}");
    }

    b.leave_multicast(g1, m0).unwrap();
    sender.send_to(b"after leave", to(g1)).await.unwrap();
    sender.send_to(b"g2 marker", to(g2)).await.unwrap();
    assert_eq!(recv(&a).await.0, b"after leave");
    assert_next_is(&b, b"g2 marker").await;

    sender.set_multicast_loop(false).unwrap();
    sender.send_to(b"not looped", to(g1)).await.unwrap();
    sender.set_multicast_loop(true).unwrap();
    sender.send_to(b"looped", to(g1)).await.unwrap();
    assert_next_is(&a, b"looped").await;
    println!("ipv6 multicast ok");
}

// ---- broadcast over a veth pair, in a namespace ----

#[test]
fn broadcast_to_255_255_255_255_needs_permission_and_then_arrives() {
    let test = "broadcast_to_255_255_255_255";
    let Some(ns) = require_netns(test, "bcast") else {
        return;
    };
    ns.add_veth("b0", "b1").unwrap();
    ns.exec_ok(&["ip", "addr", "add", "10.77.0.1/24", "dev", "b0"])
        .unwrap();
    // 255.255.255.255 leaves by the default route.
    ns.exec_ok(&["ip", "route", "add", "default", "dev", "b0"])
        .unwrap();
    run_child(&ns, "child_broadcast", &[]);
}

#[tokio::test]
#[ignore = "runs only inside a namespace, started by broadcast_to_255_255_255_255_..."]
async fn child_broadcast() {
    if !in_child() {
        return;
    }
    let receiver = Socket::bind("0.0.0.0:0".parse().unwrap()).await.unwrap();
    let port = receiver.local_addr().unwrap().port();
    let sender = Socket::bind("0.0.0.0:0".parse().unwrap()).await.unwrap();
    assert!(!sender.broadcast().unwrap());
    let err = sender.send_broadcast(b"denied", port).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");

    sender.set_broadcast(true).unwrap();
    assert!(sender.broadcast().unwrap());
    sender
        .send_broadcast(b"hello everyone", port)
        .await
        .unwrap();
    let (data, from) = recv(&receiver).await;
    assert_eq!(data, b"hello everyone");
    assert_eq!(from.ip().to_string(), "10.77.0.1");
    assert_eq!(from.port(), sender.local_addr().unwrap().port());

    // Allowed from the start through the builder, too.
    let sender2 = Socket::bind_with(
        "0.0.0.0:0".parse().unwrap(),
        SocketConfig {
            broadcast: true,
            ..SocketConfig::default()
        },
    )
    .await
    .unwrap();
    sender2.send_broadcast(b"again", port).await.unwrap();
    assert_eq!(recv(&receiver).await.0, b"again");
    println!("broadcast ok");
}
