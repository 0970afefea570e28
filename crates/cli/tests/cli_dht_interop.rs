//! The DHT against Python `kademlia` 2.2.3 nodes (py/kademlia_node.py): a mixed network
//! bootstrapped both ways, our set found by Python's get and Python's set found by our
//! get, for str, int, float and bin values.
//!
//! Without the venv these tests print SKIP, unless `RPCUDP_REQUIRE_INTEROP=1` (set by
//! `scripts/test.sh`), which turns a missing peer into a failure.

use rpcudp_testkit::{require_python, workspace_root, Child};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rpcudp");
const START: Duration = Duration::from_secs(30);
/// Per-RPC timeout on both sides: one-shot nodes are gone once they ran, and each later
/// lookup that meets one waits this long for it.
const TIMEOUT: &str = "1";

fn script() -> PathBuf {
    workspace_root().join("py").join("kademlia_node.py")
}

fn python_node(python: &Path, bootstrap: &[SocketAddr]) -> (Child, SocketAddr) {
    let mut cmd = Command::new(python);
    cmd.arg(script()).args(["serve", "--timeout", TIMEOUT]);
    cmd.args(bootstrap.iter().map(|a| a.to_string()));
    let mut child = Child::spawn("python kademlia node", cmd);
    let addr = child.wait_listening(START);
    child.wait_line(START, |l| l.starts_with("node id "));
    (child, addr)
}

fn our_node(bootstrap: &[SocketAddr]) -> (Child, SocketAddr) {
    let mut cmd = Command::new(BIN);
    cmd.args(["dht", "run", "--bind", "127.0.0.1:0", "--timeout", TIMEOUT]);
    for b in bootstrap {
        cmd.args(["--bootstrap", &b.to_string()]);
    }
    let mut child = Child::spawn("rpcudp dht run", cmd);
    let addr = child.wait_listening(START);
    child.wait_line(START, |l| l.starts_with("node id "));
    (child, addr)
}

/// Runs a one-shot command (bounded); returns its exit code and stdout lines.
fn one_shot(name: &str, cmd: Command) -> (i32, Vec<String>, String) {
    let mut child = Child::spawn(name, cmd);
    let status = child
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{name} did not finish; stderr: {}", child.stderr()));
    std::thread::sleep(Duration::from_millis(50));
    (
        status.code().unwrap_or(-1),
        child.lines_so_far(),
        child.stderr(),
    )
}

fn our_set(through: SocketAddr, key: &str, value: &str, json: bool) -> Vec<String> {
    let mut cmd = Command::new(BIN);
    let through = through.to_string();
    cmd.args([
        "dht",
        "set",
        "--bootstrap",
        &through,
        key,
        value,
        "--timeout",
        TIMEOUT,
    ]);
    if json {
        cmd.arg("--json");
    }
    let (code, out, err) = one_shot("rpcudp dht set", cmd);
    assert_eq!(code, 0, "set {key}: {err}");
    out
}

fn our_get(through: SocketAddr, key: &str) -> Vec<String> {
    let mut cmd = Command::new(BIN);
    let through = through.to_string();
    cmd.args([
        "dht",
        "get",
        "--bootstrap",
        &through,
        key,
        "--timeout",
        TIMEOUT,
    ]);
    let (code, out, err) = one_shot("rpcudp dht get", cmd);
    assert_eq!(code, 0, "get {key}: {err}");
    out
}

/// One Python one-shot node storing every `(key, type, value)`.
fn python_set(python: &Path, through: SocketAddr, items: &[(&str, &str, &str)]) -> Vec<String> {
    let mut cmd = Command::new(python);
    cmd.arg(script())
        .args(["set", "--timeout", TIMEOUT, &through.to_string()]);
    for (key, kind, value) in items {
        cmd.args([key, kind, value]);
    }
    let (code, out, err) = one_shot("python kademlia set", cmd);
    assert_eq!(code, 0, "python set: {err}");
    out
}

/// One Python one-shot node looking every key up.
fn python_get(python: &Path, through: SocketAddr, keys: &[&str]) -> Vec<String> {
    let mut cmd = Command::new(python);
    cmd.arg(script())
        .args(["get", "--timeout", TIMEOUT, &through.to_string()]);
    cmd.args(keys);
    let (code, out, err) = one_shot("python kademlia get", cmd);
    assert_eq!(code, 0, "python get: {err}");
    out
}

#[test]
fn values_cross_a_mixed_network_in_both_directions() {
    let Some(python) = require_python("values_cross_a_mixed_network_in_both_directions") else {
        return;
    };
    // Python first, ours joining through it, another Python node joining through ours.
    let (_p1, p1) = python_node(&python, &[]);
    let (_r1, r1) = our_node(&[p1]);
    let (_p2, p2) = python_node(&python, &[r1]);

    // Ours → Python.
    assert_eq!(
        our_set(p2, "from-rust", "hello python", false),
        vec!["stored on 3 nodes"]
    );
    our_set(r1, "rust-int", "-7", true);
    our_set(p1, "rust-bin", "{\"$bin\": \"00ff10\"}", true);
    assert_eq!(
        python_get(&python, p1, &["from-rust", "rust-int", "rust-bin"]),
        vec![
            "value str 'hello python'",
            "value int -7",
            "value bin 00ff10"
        ]
    );

    // Python → ours.
    assert_eq!(
        python_set(
            &python,
            p1,
            &[
                ("from-python", "str", "hello rust"),
                ("py-float", "float", "2.5"),
                ("py-bin", "bin", "cafe")
            ]
        ),
        vec!["stored True"; 3]
    );
    assert_eq!(our_get(r1, "from-python"), vec!["hello rust"]);
    assert_eq!(our_get(p1, "py-float"), vec!["2.5"]);
    assert_eq!(our_get(p2, "py-bin"), vec!["{\"$bin\": \"cafe\"}"]);
}

#[test]
fn a_python_node_answers_our_raw_rpcs_in_the_shapes_we_serve() {
    let Some(python) = require_python("a_python_node_answers_our_raw_rpcs_in_the_shapes_we_serve")
    else {
        return;
    };
    // The same questions to a Python node and to ours: the answers have the same shape.
    let (_p, p) = python_node(&python, &[]);
    let (_r, r) = our_node(&[p]);
    let me = "{\"$bin\": \"1111111111111111111111111111111111111111\"}";
    let key = "{\"$bin\": \"2222222222222222222222222222222222222222\"}";
    for (addr, other) in [(p, r), (r, p)] {
        let call = |args: &[&str]| {
            let mut cmd = Command::new(BIN);
            cmd.arg("call")
                .arg(addr.to_string())
                .args(args)
                .args(["--timeout", "2"]);
            let (code, out, err) = one_shot("rpcudp call", cmd);
            assert_eq!(code, 0, "{args:?} to {addr}: {err}");
            out.join("\n")
        };
        let pong = call(&["ping", me]);
        assert!(
            pong.starts_with("{\"$bin\": \"") && pong.len() == 10 + 40 + 2,
            "{pong}"
        );
        // find_node lists the other node as [id, ip, port]. (The earlier `ping`'s one-shot
        // caller may be listed too, nearer or farther than the other node depending on
        // the random ids, so the order is not asserted.)
        let list = call(&["find_node", me, key]);
        let other_entry = format!("\"{}\", {}]", other.ip(), other.port());
        assert!(list.starts_with("[[{\"$bin\": \""), "{list}");
        assert!(list.contains(&other_entry), "{list} lists {other}");
        assert_eq!(call(&["store", me, key, "5"]), "true");
        assert_eq!(call(&["find_value", me, key]), "{\"value\": 5}");
    }
}

#[test]
fn a_python_nodes_set_through_a_strict_local_node_is_kept_once_its_address_answered_a_ping() {
    let Some(python) = require_python("a_python_nodes_set_through_a_strict_local_node") else {
        return;
    };
    // --strict-local: loopback is not exempt, so a store is kept only from an address
    // that answered one of the node's requests (its joining ping or the store's probe).
    let mut cmd = Command::new(BIN);
    cmd.args(["dht", "run", "--bind", "127.0.0.1:0", "--timeout", TIMEOUT]);
    cmd.args(["--strict-local", "--metrics", "127.0.0.1:0"]);
    let mut ours = Child::spawn("rpcudp dht run", cmd);
    let r = ours.wait_listening(START);
    let line = ours.wait_line(START, |l| l.starts_with("metrics on "));
    let metrics: SocketAddr = line["metrics on ".len()..].trim().parse().unwrap();
    assert_eq!(
        python_set(&python, r, &[("proven-python", "str", "kept")]),
        vec!["stored True"]
    );
    assert_eq!(our_get(r, "proven-python"), vec!["kept"]);
    let (code, body) =
        rpcudp_testkit::prometheus::http_get(metrics, "/metrics", Duration::from_secs(10)).unwrap();
    assert_eq!(code, 200);
    let sample = |name: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let unproven = sample(r#"rpcudp_dht_stores_refused_total{reason="unproven"}"#);
    let parked = sample("rpcudp_dht_requests_parked_total");
    eprintln!("Python set through a --strict-local node: kept; {parked} requests parked");
    assert_eq!(unproven, 0.0);
    assert_eq!(sample("rpcudp_dht_records"), 1.0);
}
