//! The RPC examples run as programs and do what their docs say: the sayhi client of
//! rpcudp's README greets through the sayhi server (and through the Python rpcudp server,
//! and the README's Python client greets through ours), reports "Response not received."
//! when nobody answers, and the structured-data example runs to its end.

mod support;

use rpcudp_testkit::{require_python, workspace_root, Child};
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;
use support::{example, START};

/// Long enough for a call with the default 5 s timeout on a loaded machine.
const FINISH: Duration = Duration::from_secs(30);

fn sayhi_server() -> (Child, SocketAddr) {
    let mut cmd = Command::new(example("sayhi_server"));
    cmd.arg("127.0.0.1:0");
    let mut server = Child::spawn("sayhi_server", cmd);
    let addr = server.wait_listening(START);
    (server, addr)
}

/// Runs the sayhi client against `server` and returns its one line of output.
fn sayhi_client(server: SocketAddr, name: &str) -> String {
    let mut cmd = Command::new(example("sayhi_client"));
    cmd.arg(server.to_string()).arg(name);
    let mut client = Child::spawn("sayhi_client", cmd);
    let status = client.wait_exit(FINISH).expect("sayhi_client exits");
    assert!(status.success(), "{}", client.stderr());
    let lines = client.all_lines(FINISH);
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines[0].clone()
}

fn greeting(name: &str) -> impl Fn(&str) -> bool + '_ {
    move |line: &str| {
        let Some(rest) = line.strip_prefix(&format!("Success! Hello {name} you live at ")) else {
            return false;
        };
        rest.parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback() && a.port() != 0)
    }
}

#[test]
fn sayhi_client_is_greeted_by_the_sayhi_server() {
    let (_server, addr) = sayhi_server();
    let line = sayhi_client(addr, "Snake Plissken");
    assert!(greeting("Snake Plissken")(&line), "{line}");
}

#[test]
fn sayhi_client_reports_no_response_when_nobody_listens() {
    // A port just released: nothing listens there, and unconnected UDP sockets get no
    // error for it, so the client waits out its 5 s timeout.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert_eq!(sayhi_client(closed, "nobody"), "Response not received.");
}

#[test]
fn sayhi_client_is_greeted_by_the_python_rpcudp_server() {
    let Some(python) = require_python("sayhi_client_is_greeted_by_the_python_rpcudp_server") else {
        return;
    };
    let mut cmd = Command::new(python);
    cmd.arg(workspace_root().join("py/rpcudp_server.py"))
        .arg("127.0.0.1:0");
    let mut server = Child::spawn("python rpcudp server", cmd);
    let addr = server.wait_listening(START);
    let line = sayhi_client(addr, "Snake Plissken");
    assert!(greeting("Snake Plissken")(&line), "{line}");
}

/// The client of rpcudp's README, as printed there (the asyncio form of 5.0.1).
const README_CLIENT: &str = r#"
import asyncio, sys
from rpcudp.protocol import RPCProtocol

async def main(port):
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        RPCProtocol, local_addr=("127.0.0.1", 0))
    result = await protocol.sayhi(("127.0.0.1", port), "Snake Plissken")
    print("Success! %s" % result[1] if result[0] else "Response not received.", flush=True)
    transport.close()

asyncio.run(main(int(sys.argv[1])))
"#;

#[test]
fn the_python_readme_client_is_greeted_by_the_sayhi_server() {
    let Some(python) = require_python("the_python_readme_client_is_greeted_by_the_sayhi_server")
    else {
        return;
    };
    let (_server, addr) = sayhi_server();
    let mut cmd = Command::new(python);
    cmd.args(["-c", README_CLIENT, &addr.port().to_string()]);
    let mut client = Child::spawn("python README client", cmd);
    let status = client.wait_exit(FINISH).expect("the Python client exits");
    assert!(status.success(), "{}", client.stderr());
    let lines = client.all_lines(FINISH);
    assert!(
        lines.iter().any(|l| greeting("Snake Plissken")(l)),
        "{lines:?}"
    );
}

#[test]
fn structured_data_records_readings_and_reports_their_mean() {
    let mut run = Child::spawn("structured_data", Command::new(example("structured_data")));
    let status = run.wait_exit(FINISH).expect("structured_data exits");
    // The example asserts its own report before exiting 0.
    assert!(status.success(), "{}", run.stderr());
    let lines = run.all_lines(FINISH);
    assert!(
        lines[0].starts_with("weather server listening on 127.0.0.1:"),
        "{lines:?}"
    );
    for n in 1..=3 {
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with(&format!(": {n} reading(s) stored"))),
            "{lines:?}"
        );
    }
    let report = lines
        .iter()
        .find(|l| l.starts_with("report: "))
        .unwrap_or_else(|| panic!("no report line: {lines:?}"));
    assert!(report.contains("mean_celsius: Some(13.125)"), "{report}");
}
