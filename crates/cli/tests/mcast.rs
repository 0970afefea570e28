//! `rpcudp mcast listen` / `rpcudp mcast ping` against the contract in docs/cli.md.
//!
//! Usage errors and the unicast reply run on the host's loopback (joining a group on
//! 127.0.0.1 sends nothing off the host). Real multicast runs inside network namespaces
//! created here: IPv4 over `lo` with a multicast route, IPv6 over a veth pair.

use rpcudp_testkit::{require_netns, Child, Netns};
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rpcudp");
const START: Duration = Duration::from_secs(10);

fn rpcudp() -> Command {
    Command::new(BIN)
}

/// Runs a command that ends by itself; returns its exit code, stdout lines and stderr.
fn run_to_end(name: &str, cmd: Command) -> (i32, Vec<String>, String) {
    let mut child = Child::spawn(name, cmd);
    let (status, lines) = child
        .wait_output(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{name} did not exit within 20 s"));
    (status.code().unwrap_or(-1), lines, child.stderr())
}

fn listener_in(
    ns: &Netns,
    name: &str,
    group: &str,
    port: &str,
    iface: Option<&str>,
) -> (Child, SocketAddr) {
    let mut cmd = ns.command(BIN);
    cmd.args(["mcast", "listen", "--group", group, "--port", port]);
    if let Some(i) = iface {
        cmd.args(["--interface", i]);
    }
    let mut child = Child::spawn(name, cmd);
    let addr = child.wait_listening(START);
    (child, addr)
}

fn ping_in(ns: &Netns, args: &[&str]) -> (i32, Vec<String>, String) {
    let mut cmd = ns.command(BIN);
    cmd.args(["mcast", "ping"]).args(args);
    run_to_end("mcast ping", cmd)
}

#[test]
fn listen_answers_client_ping_by_unicast_and_prints_each_datagram() {
    let mut cmd = rpcudp();
    cmd.args([
        "mcast",
        "listen",
        "--group",
        "228.0.0.5",
        "--port",
        "0",
        "--interface",
        "127.0.0.1",
    ]);
    let mut listener = Child::spawn("mcast listen", cmd);
    let addr = listener.wait_listening(START);
    assert_eq!(
        addr.ip().to_string(),
        "0.0.0.0",
        "binds the wildcard like Twisted"
    );
    let to = SocketAddr::from(([127, 0, 0, 1], addr.port()));
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let me = client.local_addr().unwrap();

    client.send_to(b"Client: Ping", to).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"Server: Pong");
    assert_eq!(from.port(), addr.port());
    listener.wait_line(START, |l| l == format!("{me} Client: Ping"));

    // Anything else is printed but not answered.
    client.send_to(b"hello\nthere", to).unwrap();
    listener.wait_line(START, |l| l == format!("{me} hello\\nthere"));
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        client.recv_from(&mut buf).is_err(),
        "no reply to a non-ping"
    );

    let status = listener
        .terminate(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status:?}: {}", listener.stderr());
}

#[test]
fn non_multicast_group_is_a_usage_error_naming_it() {
    for sub in ["listen", "ping"] {
        let mut cmd = rpcudp();
        cmd.args(["mcast", sub, "--group", "10.1.2.3", "--port", "1"]);
        let (code, lines, err) = run_to_end(sub, cmd);
        assert_eq!(code, 2, "{sub}: {lines:?} {err}");
        assert!(err.contains("10.1.2.3"), "{err}");
    }
}

#[test]
fn unparsable_group_or_port_is_a_usage_error() {
    for args in [
        ["--group", "not-an-ip", "--port", "1"],
        ["--group", "228.0.0.5", "--port", "70000"],
    ] {
        let mut cmd = rpcudp();
        cmd.args(["mcast", "ping"]).args(args);
        let (code, _, err) = run_to_end("ping", cmd);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
}

#[test]
fn interface_of_the_wrong_kind_for_the_group_is_a_usage_error() {
    for (group, iface) in [
        ("228.0.0.5", "lo"),
        ("ff02::1:5", "127.0.0.1"),
        ("ff02::1:5", "no-such-if0"),
    ] {
        let mut cmd = rpcudp();
        cmd.args([
            "mcast",
            "ping",
            "--group",
            group,
            "--port",
            "1",
            "--interface",
            iface,
        ]);
        let (code, _, err) = run_to_end("ping", cmd);
        assert_eq!(code, 2, "{group} {iface}: {err}");
        assert!(err.contains(iface), "{err}");
    }
}

#[test]
fn ping_timeout_or_ttl_out_of_range_is_a_usage_error_naming_it() {
    // `--timeout 1e300` used to panic (exit 101) after sending, `--ttl 300` to exit 1.
    for (flag, value) in [
        ("--timeout", "1e300"),
        ("--timeout", "1e19"),
        ("--timeout", "-1"),
        ("--timeout", "nan"),
        ("--timeout", "soon"),
        ("--ttl", "256"),
        ("--ttl", "-1"),
    ] {
        let mut cmd = rpcudp();
        // By loopback: even a regression that sent the ping would not leave the host.
        cmd.args([
            "mcast",
            "ping",
            "--group",
            "228.0.0.5",
            "--port",
            "1",
            "--interface",
            "127.0.0.1",
            flag,
            value,
        ]);
        let (code, lines, err) = run_to_end("ping", cmd);
        assert_eq!(code, 2, "{flag} {value}: {lines:?} {err}");
        assert!(err.contains(&format!("'{value}'")), "{flag} {value}: {err}");
        assert!(lines.is_empty(), "{flag} {value}: {lines:?}");
    }
}

#[test]
fn listening_is_the_first_line_even_when_datagrams_are_already_arriving() {
    let listen = |name: &str, port: &str| {
        let mut cmd = rpcudp();
        cmd.args([
            "mcast",
            "listen",
            "--group",
            "228.0.0.5",
            "--port",
            port,
            "--interface",
            "127.0.0.1",
        ]);
        Child::spawn(name, cmd)
    };
    let mut a = listen("listener a", "0");
    let port = a.wait_listening(START).port();
    // Flood the shared port from many source ports (the kernel spreads unicast over the
    // listeners by source) while a second listener starts on it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let to = SocketAddr::from(([127, 0, 0, 1], port));
            let senders: Vec<UdpSocket> = (0..16)
                .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
                .collect();
            let until = std::time::Instant::now() + Duration::from_secs(30);
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && std::time::Instant::now() < until
            {
                for s in &senders {
                    let _ = s.send_to(b"early bird", to);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let mut b = listen("listener b", &port.to_string());
    b.wait_line(START, |l| l.ends_with(" early bird"));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    let lines = b.lines_so_far();
    assert_eq!(
        lines[0],
        format!("listening on 0.0.0.0:{port}"),
        "{lines:?}"
    );
    for l in [&mut a, &mut b] {
        assert!(l.terminate(START).unwrap().success());
    }
}

/// A namespace where IPv4 multicast works over `lo`.
fn ipv4_multicast_netns(test: &str) -> Option<Netns> {
    let ns = require_netns(test, "mc4")?;
    ns.exec_ok(&["ip", "route", "add", "224.0.0.0/4", "dev", "lo"])
        .unwrap();
    Some(ns)
}

#[test]
fn two_listeners_on_one_port_both_answer_a_ping() {
    let Some(ns) = ipv4_multicast_netns("two_listeners_on_one_port_both_answer_a_ping") else {
        return;
    };
    let (mut a, a_addr) = listener_in(&ns, "listener a", "228.0.0.5", "8005", None);
    let (mut b, b_addr) = listener_in(&ns, "listener b", "228.0.0.5", "8005", None);
    assert_eq!(a_addr.port(), 8005);
    assert_eq!(b_addr.port(), 8005);
    let (code, lines, err) = ping_in(
        &ns,
        &[
            "--group",
            "228.0.0.5",
            "--port",
            "8005",
            "--timeout",
            "2",
            "--interface",
            "127.0.0.1",
        ],
    );
    assert_eq!(code, 0, "{lines:?} {err}");
    assert_eq!(
        lines,
        vec!["pong from 127.0.0.1:8005"; 2],
        "one pong per listener"
    );
    for l in [&mut a, &mut b] {
        let line = l.wait_line(START, |l| l.ends_with(" Client: Ping"));
        let sender: SocketAddr = line.split(' ').next().unwrap().parse().unwrap();
        assert_ne!(sender.port(), 8005, "the ping comes from an ephemeral port");
    }
    for l in [&mut a, &mut b] {
        assert!(l.terminate(Duration::from_secs(10)).unwrap().success());
    }
}

#[test]
fn ping_with_nobody_listening_exits_3_after_the_timeout() {
    let Some(ns) = ipv4_multicast_netns("ping_with_nobody_listening_exits_3_after_the_timeout")
    else {
        return;
    };
    let started = std::time::Instant::now();
    let (code, lines, err) = ping_in(
        &ns,
        &["--group", "228.0.0.9", "--port", "8005", "--timeout", "0.5"],
    );
    assert_eq!(code, 3, "{lines:?} {err}");
    assert!(lines.is_empty(), "{lines:?}");
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[test]
fn listener_of_another_group_does_not_answer() {
    let Some(ns) = ipv4_multicast_netns("listener_of_another_group_does_not_answer") else {
        return;
    };
    let (_other, _) = listener_in(&ns, "listener", "228.0.0.6", "8005", None);
    let (code, lines, _) = ping_in(
        &ns,
        &[
            "--group",
            "228.0.0.5",
            "--port",
            "8005",
            "--timeout",
            "0.5",
            "--ttl",
            "2",
        ],
    );
    assert_eq!(code, 3, "{lines:?}");
}

#[test]
fn ipv6_listeners_answer_a_ping_with_the_interface_by_name_or_index() {
    let test = "ipv6_listeners_answer_a_ping_with_the_interface_by_name_or_index";
    let Some(ns) = require_netns(test, "mc6") else {
        return;
    };
    if let Err(why) = ns.add_veth("mc0", "mc1") {
        eprintln!("SKIP {test}: the kernel cannot make a veth pair for IPv6 multicast: {why}");
        return;
    }
    ns.wait_link_local("mc0", Duration::from_secs(10)).unwrap();
    let index = ns.ifindex("mc0").unwrap().to_string();
    let (mut a, a_addr) = listener_in(&ns, "listener a", "ff02::1:5", "8006", Some("mc0"));
    let (_b, _) = listener_in(&ns, "listener b", "ff02::1:5", "8006", Some(&index));
    assert_eq!(a_addr.to_string(), "[::]:8006");
    for iface in ["mc0", index.as_str()] {
        let (code, lines, err) = ping_in(
            &ns,
            &[
                "--group",
                "ff02::1:5",
                "--port",
                "8006",
                "--timeout",
                "2",
                "--interface",
                iface,
            ],
        );
        assert_eq!(code, 0, "{iface}: {lines:?} {err}");
        assert_eq!(lines.len(), 2, "{lines:?}");
        for l in &lines {
            let from: SocketAddr = l.strip_prefix("pong from ").unwrap().parse().unwrap();
            assert!(from.is_ipv6() && from.port() == 8006, "{l}");
        }
    }
    a.wait_line(START, |l| {
        l.starts_with("[fe80::") && l.ends_with(" Client: Ping")
    });
}
