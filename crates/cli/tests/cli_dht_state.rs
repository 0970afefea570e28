//! `rpcudp dht run --state` with a large state: the values stay in the redb file and are
//! served from it; the node's memory holds only their index.

use rpcudp_testkit::hostile::{vm_hwm_kib, write_dht_copies};
use rpcudp_testkit::Child;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rpcudp");
const START: Duration = Duration::from_secs(60);

const VALUES: usize = 2_000;
const VALUE_BYTES: usize = 60_000;

/// The value stored under key `k{i}`: distinct per key, so a wrong row would show.
fn value_of(i: usize) -> String {
    let unit = format!("{i:05}-");
    unit.repeat(VALUE_BYTES / unit.len() + 1)[..VALUE_BYTES].to_string()
}

/// The state: `VALUES` copies of `VALUE_BYTES`, written directly, as a state from
/// before the 8 KiB value cap would hold such values (`set` refuses them now).
fn write_state(dir: &Path) {
    let copies = (0..VALUES).map(|i| {
        let key = rpcudp::kad::key_digest(format!("k{i}"));
        (key.0, rmpv::Value::from(value_of(i)))
    });
    write_dht_copies(dir, copies, Duration::from_secs(24 * 3600));
}

fn get(through: SocketAddr, key: &str) -> (i32, Vec<String>, String) {
    let mut cmd = Command::new(BIN);
    let through = through.to_string();
    cmd.args(["dht", "get", "--bootstrap", &through, key, "--timeout", "2"]);
    let mut child = Child::spawn("rpcudp dht get", cmd);
    let status = child
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("get {key} did not finish; stderr: {}", child.stderr()));
    // The reader threads may lag the exit by a moment.
    std::thread::sleep(Duration::from_millis(50));
    (
        status.code().unwrap_or(-1),
        child.lines_so_far(),
        child.stderr(),
    )
}

#[test]
fn a_node_restarted_on_a_large_state_serves_its_values_without_loading_them_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    write_state(&state);
    let state_bytes = std::fs::metadata(state.join("dht.redb")).unwrap().len();
    assert!(state_bytes > (VALUES * VALUE_BYTES) as u64, "{state_bytes}");

    let mut cmd = Command::new(BIN);
    cmd.args([
        "dht",
        "run",
        "--bind",
        "127.0.0.1:0",
        "--timeout",
        "2",
        "--state",
    ]);
    cmd.arg(&state);
    let mut node = Child::spawn("rpcudp dht run --state", cmd);
    let addr = node.wait_listening(START);
    let hwm = vm_hwm_kib(node.id());
    eprintln!(
        "state {} MB; VmHWM after start {} MB",
        state_bytes >> 20,
        hwm >> 10
    );
    assert!(
        hwm < 60 * 1024,
        "VmHWM {hwm} KiB after start on a {state_bytes}-byte state: values were loaded"
    );

    for i in [0, 1_234, VALUES - 1] {
        let (code, stdout, stderr) = get(addr, &format!("k{i}"));
        assert_eq!(code, 0, "get k{i}: {stderr}");
        assert_eq!(stdout.len(), 1, "one line: the value");
        assert!(stdout[0] == value_of(i), "k{i}: the value byte-exact");
    }
    let hwm_after = vm_hwm_kib(node.id());
    eprintln!("VmHWM after 3 gets {} MB", hwm_after >> 10);
    assert!(
        hwm_after < 60 * 1024,
        "VmHWM {hwm_after} KiB after the gets"
    );
    let (code, stdout, _) = get(addr, "not-stored");
    assert_eq!(code, 1, "a key not in the state is not found: {stdout:?}");
}

/// `dht run --state DIR` on a state folder whose `dht.redb` holds `bytes`: (exit code,
/// stderr).
fn run_on_state_file(bytes: &[u8]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dht.redb"), bytes).unwrap();
    let mut cmd = Command::new(BIN);
    let state = dir.path().to_str().unwrap();
    cmd.args(["dht", "run", "--bind", "127.0.0.1:0", "--state", state]);
    let mut child = Child::spawn("rpcudp dht run", cmd);
    let status = child
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("dht run did not exit; stderr: {}", child.stderr()));
    // The reader threads may lag the exit by a moment.
    std::thread::sleep(Duration::from_millis(50));
    (status.code(), child.stderr())
}

#[test]
fn a_garbage_or_truncated_state_file_is_a_one_line_error_naming_it_and_exit_1() {
    // A real state file, cut after its first 3,000 bytes.
    let good = tempfile::tempdir().unwrap();
    write_dht_copies(
        good.path(),
        (0..10u8).map(|i| ([i; 20], rmpv::Value::from(i))),
        Duration::from_secs(3600),
    );
    let full = std::fs::read(good.path().join("dht.redb")).unwrap();
    for (what, bytes) in [
        ("garbage", &b"garbage"[..]),
        ("truncated", &full[..3_000]),
        ("its first 5 bytes", &full[..5]),
    ] {
        let (code, stderr) = run_on_state_file(bytes);
        eprintln!("{what}: exit {code:?}: {stderr}");
        assert_eq!(code, Some(1), "{what}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{what}: one line: {stderr}");
        assert!(
            lines[0].contains("dht.redb"),
            "{what}: names the file: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    }
}
