//! Interop with a Python 3 peer that frames exactly like ltprotocol 0.2.1 (`struct`
//! `'>HB'`, on Twisted): py/lt_peer.py, run with the venv's Python.

mod lt_common;

use lt_common::*;
use rpcudp::lt::{Client, ClientConfig, ClientEvent, ServerConfig, ServerEvent, Unknown};
use rpcudp_testkit::{require_python, workspace_root, Child};
use std::process::Command;
use std::time::Duration;

fn peer(python: &std::path::Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(workspace_root().join("py/lt_peer.py"));
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_ltprotocol_client_talks_to_our_server() {
    let Some(python) = require_python("a_python_ltprotocol_client_talks_to_our_server") else {
        return;
    };
    // Our server answers NumMsg(n) with n + 1, StrMsg(s) with s in upper case, and sends an
    // unknown frame back unchanged.
    let (addr, handle, _task) = spawn_server::<TestMessage, _>(ServerConfig::default(), |h, ev| {
        if let ServerEvent::Message { conn, msg } = ev {
            let reply = match msg {
                TestMessage::Num(n) => num(n.num + 1),
                TestMessage::Str(s) => text(&String::from_utf8_lossy(&s.text).to_uppercase()),
                unknown @ TestMessage::Unknown(_) => unknown,
            };
            h.send(conn, &reply).unwrap();
        }
    })
    .await;
    let mut cmd = peer(&python);
    cmd.arg("client").arg(addr.port().to_string());
    let lines = tokio::task::spawn_blocking(move || {
        let mut child = Child::spawn("lt_peer.py client", cmd);
        child.wait_line(Duration::from_secs(20), |l| l == "done");
        child.lines_so_far()
    })
    .await
    .unwrap();
    assert_eq!(
        lines,
        vec![
            "num 201",
            "str HELLO WORLD!",
            "num 8",
            "unknown 9 010203",
            "done"
        ]
    );
    assert_eq!(handle.stats().bad_frames, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_talks_to_a_python_ltprotocol_server() {
    let Some(python) = require_python("our_client_talks_to_a_python_ltprotocol_server") else {
        return;
    };
    let mut cmd = peer(&python);
    cmd.arg("server");
    let mut child = Child::spawn("lt_peer.py server", cmd);
    let addr = child.wait_listening(Duration::from_secs(20));

    let mut client = Client::<TestMessage>::connect(addr, ClientConfig::default());
    let mut got = Vec::new();
    while got.len() < 3 {
        match within(10, "the server's messages", client.next_event()).await {
            Some(ClientEvent::Message(m)) => got.push(m),
            Some(ClientEvent::Connected { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, vec![num(200), text("hello world!"), num(7)]);
    client.send(&num(42)).unwrap();
    client
        .send(&TestMessage::Unknown(Unknown {
            msg_type: 77,
            body: vec![0xBE, 0xEF].into(),
        }))
        .unwrap();
    client.send(&text("from rust")).unwrap();
    client.send(&text("bye")).unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        child.wait_line(Duration::from_secs(20), |l| l == "str bye");
        child.lines_so_far()
    })
    .await
    .unwrap();
    assert_eq!(
        lines[1..],
        [
            "connected",
            "num 42",
            "unknown 77 beef",
            "str from rust",
            "str bye"
        ]
    );
    client.close().await;
}
