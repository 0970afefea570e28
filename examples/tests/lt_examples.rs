//! The length-type examples run and do what their docs say: `lt_server` greets each
//! client with ltprotocol's three messages every second, `lt_client` prints them and says
//! hello, over loopback TCP.

mod support;

use rpcudp_testkit::Child;
use std::process::Command;
use support::{example, START};

#[test]
fn lt_client_receives_ltprotocols_three_messages_from_lt_server_and_says_hello() {
    let mut cmd = Command::new(example("lt_server"));
    cmd.arg("127.0.0.1:0");
    let mut server = Child::spawn("lt_server", cmd);
    let addr = server.wait_listening(START);

    let mut cmd = Command::new(example("lt_client"));
    cmd.args([addr.to_string(), "3".to_string()]);
    let mut client = Child::spawn("lt_client", cmd);
    let (status, lines) = client.wait_output(START).expect("the client ends");
    assert!(status.success(), "{status:?} {lines:?} {}", client.stderr());
    assert_eq!(lines[0], format!("connected to {addr}"), "{lines:?}");
    assert_eq!(
        lines[1..],
        [
            "client got: 200",
            "client got: hello world!",
            "client got: 7"
        ],
        "ltprotocol's periodic send, in order"
    );
    server.wait_line(START, |l| l.starts_with("connection "));
    server.wait_line(START, |l| l == "server got: hello from the client");
}
