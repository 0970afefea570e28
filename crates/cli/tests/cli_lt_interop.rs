//! `rpcudp lt echo` against a Python 3 peer that frames exactly like ltprotocol 0.2.1
//! (py/lt_peer.py, `struct` '>HB' on Twisted).

use rpcudp_testkit::{require_python, workspace_root, Child};
use std::process::Command;
use std::time::Duration;

#[test]
fn lt_echo_sends_a_python_ltprotocol_client_its_own_messages_back() {
    let Some(python) =
        require_python("lt_echo_sends_a_python_ltprotocol_client_its_own_messages_back")
    else {
        return;
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rpcudp"));
    cmd.args(["lt", "echo", "--bind", "127.0.0.1:0"]);
    let mut server = Child::spawn("rpcudp lt echo", cmd);
    let addr = server.wait_listening(Duration::from_secs(20));
    let mut py = Command::new(python);
    py.arg(workspace_root().join("py/lt_peer.py"))
        .arg("client")
        .arg(addr.port().to_string());
    let mut client = Child::spawn("lt_peer.py client", py);
    client.wait_line(Duration::from_secs(20), |l| l == "done");
    assert_eq!(
        client.lines_so_far(),
        [
            "num 200",
            "str hello world!",
            "num 7",
            "unknown 9 010203",
            "done"
        ]
    );
    assert_eq!(
        server
            .terminate(Duration::from_secs(20))
            .and_then(|s| s.code()),
        Some(0)
    );
}
