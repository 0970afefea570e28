//! The UDP examples run and do what their docs say: echo servers echo (IPv4, IPv6,
//! adopted fd), the Helloer is told "connection refused", the multicast client gets a
//! pong from the server, broadcast arrives. Multicast and broadcast run inside network
//! namespaces created here (fixed ports are fine there).

mod support;

use rpcudp_testkit::{require_netns, Child};
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;
use support::{example, START};

fn assert_echoes(addr: SocketAddr, bind: &str) {
    let s = UdpSocket::bind(bind).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.send_to(b"echo?", addr).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = s.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"echo?");
    assert_eq!(from, addr);
}

#[test]
fn echo_server_ipv6_echo_and_adopt_socket_echo_datagrams() {
    for (name, bind_arg, client_bind) in [
        ("echo_server", "127.0.0.1:0", "127.0.0.1:0"),
        ("adopt_socket", "127.0.0.1:0", "127.0.0.1:0"),
        ("ipv6_echo", "[::1]:0", "[::1]:0"),
    ] {
        let mut cmd = Command::new(example(name));
        cmd.arg(bind_arg);
        let mut server = Child::spawn(name, cmd);
        let addr = server.wait_listening(START);
        assert_echoes(addr, client_bind);
        server.wait_line(START, |l| l.starts_with("received \"echo?\" from "));
    }
}

#[test]
fn helloer_is_told_connection_refused_or_gets_an_answer() {
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cmd = Command::new(example("helloer"));
    cmd.arg(closed.to_string());
    let mut helloer = Child::spawn("helloer", cmd);
    helloer.wait_line(START, |l| l == "No one listening");
    assert!(helloer.wait_exit(START).unwrap().success());

    let mut cmd = Command::new(example("echo_server"));
    cmd.arg("127.0.0.1:0");
    let mut echo = Child::spawn("echo_server", cmd);
    let addr = echo.wait_listening(START);
    let mut cmd = Command::new(example("helloer"));
    cmd.arg(addr.to_string());
    let mut helloer = Child::spawn("helloer", cmd);
    helloer.wait_line(START, |l| l == format!("received \"hello\" from {addr}"));
}

#[test]
fn multicast_client_gets_a_pong_from_each_multicast_server() {
    let Some(ns) = require_netns("multicast_client_gets_a_pong", "exmc") else {
        return;
    };
    ns.exec_ok(&["ip", "route", "add", "224.0.0.0/4", "dev", "lo"])
        .unwrap();
    let mut servers = Vec::new();
    for name in ["server a", "server b"] {
        let mut s = Child::spawn(name, ns.command(example("multicast_server")));
        assert_eq!(s.wait_listening(START).port(), 8005);
        servers.push(s);
    }
    let mut client = Child::spawn("multicast_client", ns.command(example("multicast_client")));
    let (status, lines) = client.wait_output(START).expect("the client ends");
    assert!(status.success(), "{}", client.stderr());
    let pongs = lines
        .into_iter()
        .filter(|l| l.starts_with("datagram \"Server: Pong\" received from "))
        .count();
    assert_eq!(pongs, 2);
    for s in &mut servers {
        s.wait_line(START, |l| {
            l.starts_with("datagram \"Client: Ping\" received from ")
        });
    }
}

#[test]
fn broadcast_sender_reaches_every_broadcast_receiver() {
    let Some(ns) = require_netns("broadcast_sender_reaches_every_receiver", "exbc") else {
        return;
    };
    ns.add_veth("e0", "e1").unwrap();
    ns.exec_ok(&["ip", "addr", "add", "10.79.0.1/24", "dev", "e0"])
        .unwrap();
    ns.exec_ok(&["ip", "route", "add", "default", "dev", "e0"])
        .unwrap();
    let mut receivers = Vec::new();
    for name in ["receiver a", "receiver b"] {
        let mut cmd = ns.command(example("broadcast_receiver"));
        cmd.arg("8555");
        let mut r = Child::spawn(name, cmd);
        r.wait_listening(START);
        receivers.push(r);
    }
    let mut cmd = ns.command(example("broadcast_sender"));
    cmd.arg("8555");
    let mut sender = Child::spawn("broadcast_sender", cmd);
    assert!(
        sender.wait_exit(START).unwrap().success(),
        "{}",
        sender.stderr()
    );
    for r in &mut receivers {
        for i in 1..=3 {
            r.wait_line(START, |l| {
                l.starts_with(&format!("received \"broadcast {i}\" from 10.79.0.1:"))
            });
        }
    }
}
