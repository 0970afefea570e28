//! Interop with Twisted (Python 3) inside a network namespace: Twisted's multicast
//! ping-pong server answers `rpcudp mcast ping`, and two `rpcudp mcast listen` sharing a
//! port both answer a Twisted client.

use rpcudp_testkit::{require_netns, require_python, workspace_root, Child, Netns};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rpcudp");
const START: Duration = Duration::from_secs(20);

fn netns(test: &str) -> Option<Netns> {
    let ns = require_netns(test, "mcpy")?;
    ns.exec_ok(&["ip", "route", "add", "224.0.0.0/4", "dev", "lo"])
        .unwrap();
    Some(ns)
}

fn script(name: &str) -> String {
    workspace_root().join("py").join(name).display().to_string()
}

#[test]
fn twisted_multicast_listener_answers_rpcudp_mcast_ping() {
    let test = "twisted_multicast_listener_answers_rpcudp_mcast_ping";
    let Some(python) = require_python(test) else {
        return;
    };
    let Some(ns) = netns(test) else { return };
    let mut server_cmd = ns.command(&python);
    server_cmd.args([
        script("twisted_mcast_server.py").as_str(),
        "228.0.0.5",
        "8005",
    ]);
    let mut twisted = Child::spawn("twisted server", server_cmd);
    twisted.wait_listening(START);
    // An rpcudp listener on the same port too: both answer, proving the port is shared.
    let mut ours_cmd = ns.command(BIN);
    ours_cmd.args(["mcast", "listen", "--group", "228.0.0.5", "--port", "8005"]);
    let mut ours = Child::spawn("rpcudp listener", ours_cmd);
    ours.wait_listening(START);

    let mut ping = ns.command(BIN);
    ping.args([
        "mcast",
        "ping",
        "--group",
        "228.0.0.5",
        "--port",
        "8005",
        "--timeout",
        "2",
    ]);
    ping.args(["--interface", "127.0.0.1"]);
    let mut ping = Child::spawn("rpcudp ping", ping);
    let status = ping.wait_exit(START).expect("ping ends");
    let lines = ping.all_lines(START);
    assert!(status.success(), "{status:?} {lines:?} {}", ping.stderr());
    assert_eq!(lines, vec!["pong from 127.0.0.1:8005"; 2]);
    twisted.wait_line(START, |l| {
        l.starts_with("127.0.0.1:") && l.ends_with(" Client: Ping")
    });
    ours.wait_line(START, |l| {
        l.starts_with("127.0.0.1:") && l.ends_with(" Client: Ping")
    });
}

#[test]
fn two_rpcudp_listeners_on_one_port_both_answer_a_twisted_client() {
    let test = "two_rpcudp_listeners_on_one_port_both_answer_a_twisted_client";
    let Some(python) = require_python(test) else {
        return;
    };
    let Some(ns) = netns(test) else { return };
    let mut listeners = Vec::new();
    for name in ["listener a", "listener b"] {
        let mut cmd = ns.command(BIN);
        cmd.args(["mcast", "listen", "--group", "228.0.0.5", "--port", "8005"]);
        let mut l = Child::spawn(name, cmd);
        assert_eq!(l.wait_listening(START).port(), 8005);
        listeners.push(l);
    }
    let mut client_cmd = ns.command(&python);
    client_cmd.args([
        script("twisted_mcast_client.py").as_str(),
        "228.0.0.5",
        "8005",
        "2",
    ]);
    let mut client = Child::spawn("twisted client", client_cmd);
    let status = client.wait_exit(START).expect("the Twisted client ends");
    let lines = client.all_lines(START);
    assert!(status.success(), "{status:?} {lines:?} {}", client.stderr());
    let pongs: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("pong from "))
        .collect();
    assert_eq!(
        pongs.len(),
        2,
        "one Server: Pong per rpcudp listener: {lines:?}"
    );
    assert!(pongs.iter().all(|l| l.ends_with(":8005")), "{pongs:?}");
    for l in &mut listeners {
        l.wait_line(START, |line| line.ends_with(" Client: Ping"));
        assert!(l.terminate(Duration::from_secs(10)).unwrap().success());
    }
}
