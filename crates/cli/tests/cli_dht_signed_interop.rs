//! Issue 17's real-socket target: a network of our `dht run` nodes and Python
//! `kademlia` 2.2.3 nodes (py/kademlia_node.py); a signed record put, then overwritten by
//! raw `store` RPCs at every node with a plain value, garbage, a truncated record and a
//! copy of the record with its value altered. `dht get --signed` still prints the
//! genuine value; our nodes answered `false` to each forgery (the Python nodes `true`:
//! they store anything) and the refusals show on `/metrics`.
//!
//! Without the venv this test prints SKIP, unless `RPCUDP_REQUIRE_INTEROP=1`.

use rmpv::Value;
use rpcudp_proto::kad::record::{self, Certified, SignedRecord};
use rpcudp_proto::kad::NodeId;
use rpcudp_testkit::prometheus::http_get;
use rpcudp_testkit::{require_python, workspace_root, Child};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rpcudp");
const START: Duration = Duration::from_secs(30);
const TIMEOUT: &str = "1";

fn python_node(python: &Path, bootstrap: &[SocketAddr]) -> (Child, SocketAddr) {
    let mut cmd = Command::new(python);
    cmd.arg(workspace_root().join("py").join("kademlia_node.py"))
        .args(["serve", "--timeout", TIMEOUT]);
    cmd.args(bootstrap.iter().map(|a| a.to_string()));
    let mut child = Child::spawn("python kademlia node", cmd);
    let addr = child.wait_listening(START);
    child.wait_line(START, |l| l.starts_with("node id "));
    (child, addr)
}

/// Our node with `--metrics`: the node, its address and its metrics address.
fn our_node(bootstrap: &[SocketAddr]) -> (Child, SocketAddr, SocketAddr) {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "dht",
        "run",
        "-v",
        "--bind",
        "127.0.0.1:0",
        "--timeout",
        TIMEOUT,
    ]);
    cmd.args(["--metrics", "127.0.0.1:0"]);
    for b in bootstrap {
        cmd.args(["--bootstrap", &b.to_string()]);
    }
    let mut child = Child::spawn("rpcudp dht run", cmd);
    let addr = child.wait_listening(START);
    child.wait_line(START, |l| l.starts_with("node id "));
    let line = child.wait_line(START, |l| l.starts_with("metrics on "));
    let metrics = line["metrics on ".len()..]
        .parse()
        .expect("metrics on IP:PORT");
    (child, addr, metrics)
}

fn run(args: &[&str]) -> (i32, Vec<String>, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    let mut child = Child::spawn("rpcudp (one-shot)", cmd);
    let status = child
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{args:?} did not finish; stderr: {}", child.stderr()));
    std::thread::sleep(Duration::from_millis(50));
    (
        status.code().unwrap_or(-1),
        child.lines_so_far(),
        child.stderr(),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn bin_json(bytes: &[u8]) -> String {
    format!("{{\"$bin\": \"{}\"}}", hex(bytes))
}

/// A raw RPC to `addr`: its printed answer.
fn call(addr: SocketAddr, method: &str, args: &[&str]) -> String {
    let addr = addr.to_string();
    let mut all = vec!["call", &addr, method];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--timeout", "2", "--retries", "2"]);
    let (code, out, err) = run(&all);
    assert_eq!(code, 0, "{method} to {addr}: {err}");
    out.join("\n")
}

/// The value of `rpcudp_dht_stores_refused_total{reason="…"}` on the node at `metrics`.
fn refused(metrics: SocketAddr, reason: &str) -> u64 {
    let (code, body) = http_get(metrics, "/metrics", Duration::from_secs(5)).unwrap();
    assert_eq!(code, 200);
    let prefix = format!("rpcudp_dht_stores_refused_total{{reason=\"{reason}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn forged_stores_at_every_node_of_a_mixed_network_leave_the_genuine_signed_value_found() {
    let Some(python) = require_python(
        "forged_stores_at_every_node_of_a_mixed_network_leave_the_genuine_signed_value_found",
    ) else {
        return;
    };
    // Three of ours, three of Python's, joined through one another.
    let (r1, r1_addr, r1_metrics) = our_node(&[]);
    let (p1, p1_addr) = python_node(&python, &[r1_addr]);
    let (r2, r2_addr, r2_metrics) = our_node(&[p1_addr]);
    let (p2, p2_addr) = python_node(&python, &[r1_addr, r2_addr]);
    let (r3, r3_addr, r3_metrics) = our_node(&[p2_addr, r1_addr]);
    let (p3, p3_addr) = python_node(&python, &[r3_addr]);
    let ours = [
        (r1_addr, r1_metrics),
        (r2_addr, r2_metrics),
        (r3_addr, r3_metrics),
    ];
    let pythons = [p1_addr, p2_addr, p3_addr];
    // Until r1 hands out the five others (ours hand out only contacts that answered
    // them), so that the put reaches every node.
    let me = bin_json(&[0x77; 20]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = call(r1_addr, "find_node", &[&me, &bin_json(&[0x11; 20])]);
        let known = list.matches("\"127.0.0.1\"").count();
        if known >= 5 {
            break;
        }
        assert!(Instant::now() < deadline, "r1 knows {known} of 5: {list}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    let key_path = key_file.to_str().unwrap();
    let (code, out, err) = run(&["dht", "keygen", "--out", key_path]);
    assert_eq!(code, 0, "{err}");
    let pk = out[0].strip_prefix("public key ").unwrap().to_string();
    let through = r1_addr.to_string();
    let (code, out, err) = run(&[
        "dht",
        "put",
        "--bootstrap",
        &through,
        "--key-file",
        key_path,
        "--timeout",
        TIMEOUT,
        "genuine",
    ]);
    assert_eq!(code, 0, "{err}");
    let target = NodeId::from_hex(out[0].strip_prefix("target ").unwrap()).unwrap();
    assert_eq!(out[1], "seq 1");
    let stored: usize = out[2]
        .strip_prefix("stored on ")
        .and_then(|s| s.strip_suffix(" nodes"))
        .unwrap()
        .parse()
        .unwrap();
    // A one-shot node's lookup may miss some of the six (answers to it are cut to 3x
    // what it sent): the rest get the record by a raw store below, as replication would.
    assert!(stored >= 3, "{out:?} {err}");

    // The genuine record as a node serves it (one MessagePack bin), and the forgeries.
    let key = bin_json(&target.0);
    let found = call(r1_addr, "find_value", &[&me, &key]);
    let json: serde_json::Value = serde_json::from_str(&found).unwrap();
    let genuine = unhex(json["value"]["$bin"].as_str().expect("a bin value"));
    let Ok(Some(Certified::Signed(rec))) =
        record::classify(&target, &Value::Binary(genuine.clone()))
    else {
        panic!("{found} is not the signed record")
    };
    assert_eq!(rec.value, Value::from("genuine"));
    let altered = match (SignedRecord {
        value: "altered".into(),
        seq: rec.seq + 1,
        ..rec.clone()
    })
    .to_value()
    {
        Value::Binary(b) => b,
        _ => unreachable!(),
    };
    // Every node holds the genuine record before the forgers come.
    let genuine_json = bin_json(&genuine);
    let held = format!("{{\"value\": {genuine_json}}}");
    for addr in ours.iter().map(|(a, _)| *a).chain(pythons) {
        if call(addr, "find_value", &[&me, &key]) != held {
            assert_eq!(call(addr, "store", &[&me, &key, &genuine_json]), "true");
        }
        assert_eq!(call(addr, "find_value", &[&me, &key]), held, "{addr}");
    }
    let forgeries = [
        "\"plain value\"".to_string(),
        bin_json(b"\x00garbage\xff"),
        bin_json(&genuine[..genuine.len() - 10]),
        bin_json(&altered),
    ];
    for (addr, _) in ours {
        for forged in &forgeries {
            assert_eq!(
                call(addr, "store", &[&me, &key, forged]),
                "false",
                "{addr} {forged}"
            );
        }
    }
    for addr in pythons {
        for forged in &forgeries {
            assert_eq!(
                call(addr, "store", &[&me, &key, forged]),
                "true",
                "{addr} {forged}"
            );
        }
        // Python holds the last write: the altered copy.
        let held = call(addr, "find_value", &[&me, &key]);
        assert_eq!(held, format!("{{\"value\": {}}}", bin_json(&altered)));
    }
    for (addr, metrics) in ours {
        assert_eq!(refused(metrics, "record_over_record"), 2, "{addr}");
        assert_eq!(refused(metrics, "record_malformed"), 1, "{addr}");
        assert_eq!(refused(metrics, "record_bad_signature"), 1, "{addr}");
        assert_eq!(call(addr, "find_value", &[&me, &key]), held, "{addr}");
    }

    // Through a Python node and through ours: the genuine value.
    for through in [p3_addr, r2_addr] {
        let (code, out, err) = run(&[
            "dht",
            "get",
            "--bootstrap",
            &through.to_string(),
            "--signed",
            &pk,
            "--timeout",
            TIMEOUT,
        ]);
        assert_eq!((code, out), (0, vec!["genuine".to_string()]), "{err}");
    }
    drop((r1, r2, r3, p1, p2, p3));
}
