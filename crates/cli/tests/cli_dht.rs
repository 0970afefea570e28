//! `rpcudp dht run|set|get` as docs/cli.md specifies them, on loopback, with
//! short RPC timeouts; and kill -9 durability of `--state`.

use rpcudp_testkit::Child;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rpcudp");
const START: Duration = Duration::from_secs(20);
const TIMEOUT: &str = "1";

/// A `dht run` node on a free loopback port; returns it, its address and its id line.
fn run_node(extra: &[&str]) -> (Child, SocketAddr, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["dht", "run", "--bind", "127.0.0.1:0", "--timeout", TIMEOUT]);
    cmd.args(extra);
    let mut child = Child::spawn("rpcudp dht run", cmd);
    let addr = child.wait_listening(START);
    let id = child.wait_line(START, |_| true);
    (child, addr, id)
}

struct Outcome {
    code: i32,
    stdout: Vec<String>,
    stderr: String,
}

/// Runs a one-shot command to its end (bounded) and collects its output.
fn run(args: &[&str]) -> Outcome {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    let mut child = Child::spawn("rpcudp dht (one-shot)", cmd);
    let status = child
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{args:?} did not finish; stderr: {}", child.stderr()));
    // The reader threads may lag the exit by a moment.
    std::thread::sleep(Duration::from_millis(50));
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout: child.lines_so_far(),
        stderr: child.stderr(),
    }
}

fn set(through: SocketAddr, key: &str, value: &str, json: bool) -> Outcome {
    let through = through.to_string();
    let mut args = vec![
        "dht",
        "set",
        "--bootstrap",
        &through,
        key,
        value,
        "--timeout",
        TIMEOUT,
    ];
    if json {
        args.push("--json");
    }
    run(&args)
}

fn get(through: SocketAddr, key: &str) -> Outcome {
    let through = through.to_string();
    run(&[
        "dht",
        "get",
        "--bootstrap",
        &through,
        key,
        "--timeout",
        TIMEOUT,
    ])
}

#[test]
fn run_prints_listening_then_the_node_id() {
    let (_node, addr, id_line) = run_node(&[]);
    assert!(addr.port() != 0);
    let hex = id_line.strip_prefix("node id ").expect(&id_line);
    assert_eq!(hex.len(), 40);
    assert!(
        hex.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{hex}"
    );
}

#[test]
fn run_exits_0_on_sigterm() {
    let (mut node, _, _) = run_node(&[]);
    let status = node.terminate(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn set_then_get_round_trips_every_value_kind() {
    let cases: [(&str, &str, bool, &str); 6] = [
        ("plain", "hello world", false, "hello world"),
        ("int", "-42", true, "-42"),
        ("float", "2.5", true, "2.5"),
        ("bool", "true", true, "true"),
        ("str-json", "\"quoted\"", true, "quoted"),
        ("bin", "{\"$bin\": \"00ff\"}", true, "{\"$bin\": \"00ff\"}"),
    ];
    // A fresh pair of nodes per case, in parallel: a one-shot node is gone once it has
    // run, and later lookups through the same nodes would each wait a timeout for it.
    let workers: Vec<_> = cases
        .into_iter()
        .map(|(key, value, json, shown)| {
            std::thread::spawn(move || {
                let (_a, a, _) = run_node(&[]);
                let (_b, b, _) = run_node(&["--bootstrap", &a.to_string()]);
                let s = set(a, key, value, json);
                assert_eq!(s.code, 0, "set {key}: {}", s.stderr);
                assert_eq!(s.stdout, vec!["stored on 2 nodes".to_string()], "set {key}");
                // Read back through the other node.
                let g = get(b, key);
                assert_eq!(g.code, 0, "get {key}: {}", g.stderr);
                assert_eq!(g.stdout, vec![shown.to_string()], "get {key}");
            })
        })
        .collect();
    for w in workers {
        w.join().expect("case passed");
    }
}

#[test]
fn get_of_a_key_nobody_stored_exits_1() {
    let (_a, a, _) = run_node(&[]);
    let g = get(a, "nothing here");
    assert_eq!(g.code, 1, "{}", g.stderr);
    assert!(g.stdout.is_empty(), "{:?}", g.stdout);
}

#[test]
fn usage_errors_exit_2_and_name_the_bad_input() {
    let (_a, a, _) = run_node(&[]);
    let a = a.to_string();
    for (args, bad) in [
        (
            vec!["dht", "set", "--bootstrap", &a, "k", "{nope", "--json"],
            "{nope",
        ),
        (
            vec!["dht", "set", "--bootstrap", &a, "k", "[1, 2]", "--json"],
            "[1, 2]",
        ),
        (
            vec!["dht", "set", "--bootstrap", &a, "k", "null", "--json"],
            "null",
        ),
        (
            vec!["dht", "get", "--bootstrap", "nonsense", "k"],
            "nonsense",
        ),
        (
            vec!["dht", "run", "--bind", "1.2.3.4:99999"],
            "1.2.3.4:99999",
        ),
        (
            vec!["dht", "get", "--bootstrap", &a, "k", "--timeout", "zero"],
            "zero",
        ),
    ] {
        let o = run(&args);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(
            o.stderr.contains(bad),
            "{args:?}: stderr {:?} names {bad}",
            o.stderr
        );
    }
}

#[test]
fn set_and_get_through_a_silent_address_exit_1() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let s = set(addr, "k", "v", false);
    assert_eq!(s.code, 1, "{}", s.stderr);
    assert_eq!(s.stdout, vec!["stored on 0 nodes".to_string()]);
    assert!(s.stderr.contains(&addr.to_string()), "{}", s.stderr);
    let g = get(addr, "k");
    assert_eq!(g.code, 1, "{}", g.stderr);
}

/// Polls `rpcudp call` until `accept` holds for its output line (bounded).
fn call_until(addr: SocketAddr, args: &[&str], accept: impl Fn(&str) -> bool) -> String {
    let addr = addr.to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut full = vec!["call", &addr];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--timeout", TIMEOUT]);
        let o = run(&full);
        last = o.stdout.first().cloned().unwrap_or_default();
        if o.code == 0 && accept(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no accepted answer from {addr} for {args:?}; last {last:?}");
}

fn kill9(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status();
    assert!(child.wait_exit(Duration::from_secs(10)).is_some(), "killed");
}

fn state_arg(dir: &Path) -> String {
    dir.join("state").to_string_lossy().into_owned()
}

#[test]
fn an_acknowledged_set_survives_kill_9_and_the_node_rejoins_through_saved_contacts() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_arg(dir.path());
    let (_b, b, _) = run_node(&[]);
    let (mut a, a_addr, a_id) = run_node(&["--state", &state, "--bootstrap", &b.to_string()]);
    // A learns B while joining; give it the promised second (and some) to save it.
    std::thread::sleep(Duration::from_millis(2000));
    let s = set(a_addr, "durable", "kept", false);
    assert_eq!(s.code, 0, "{}", s.stderr);
    // No grace at all: the acknowledgement itself must have been durable.
    kill9(&mut a);

    // Restarted on another port, without --bootstrap.
    let (_a2, a2, a2_id) = run_node(&["--state", &state]);
    assert_eq!(a2_id, a_id, "the node id is kept");
    // The value is served by the restarted node itself.
    let me = "{\"$bin\": \"1111111111111111111111111111111111111111\"}";
    let digest = format!("{{\"$bin\": \"{}\"}}", rpcudp::kad::key_digest("durable"));
    let found = call_until(a2, &["find_value", me, &digest], |l| l.contains("kept"));
    assert_eq!(found, "{\"value\": \"kept\"}");
    // It rejoined through B, whom it only knows from its saved contacts: B shows up in
    // its answers to find_node.
    let b_text = format!("\"{}\", {}]", b.ip(), b.port());
    call_until(a2, &["find_node", me, &digest], |l| l.contains(&b_text));
    // And the network serves the value through B too.
    let g = get(b, "durable");
    assert_eq!(g.stdout, vec!["kept".to_string()], "{}", g.stderr);
}

#[test]
fn ipv6_nodes_store_and_find_a_key() {
    let mut cmd = Command::new(BIN);
    cmd.args(["dht", "run", "--bind", "[::1]:0", "--timeout", TIMEOUT]);
    let mut node = Child::spawn("rpcudp dht run (IPv6)", cmd);
    let addr = node.wait_listening(START);
    assert!(addr.is_ipv6(), "{addr}");
    let s = set(addr, "six", "over ipv6", false);
    assert_eq!(
        s.stdout,
        vec!["stored on 1 nodes".to_string()],
        "{}",
        s.stderr
    );
    let g = get(addr, "six");
    assert_eq!(g.stdout, vec!["over ipv6".to_string()], "{}", g.stderr);
}
