//! `rpcudp bench` and `rpcudp raw-echo` behave as docs/cli.md says. These tests
//! check behaviour (keys, counts, exit codes), never speed: the machine may be loaded.

use rpcudp_testkit::{require_python, workspace_root, Child};
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rpcudp");
const START: Duration = Duration::from_secs(20);

/// Runs `rpcudp ARGS…` to completion, killing it if it outlives `limit`.
fn rpcudp(args: &[&str], limit: Duration) -> (ExitStatus, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rpcudp starts");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rpcudp {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The outputs are a few lines: they fit the pipes, so reading after exit is safe.
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, out, err)
}

fn json_report(out: &str) -> serde_json::Value {
    let line = out
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no output: {out:?}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
}

fn start_raw_echo(extra: &[&str]) -> (Child, SocketAddr) {
    let mut cmd = Command::new(BIN);
    cmd.args(["raw-echo", "--bind", "127.0.0.1:0"]).args(extra);
    let mut server = Child::spawn("raw-echo", cmd);
    let addr = server.wait_listening(START);
    (server, addr)
}

#[test]
fn bench_json_against_a_python_rpcudp_server_has_the_keys_and_answered_calls() {
    let Some(python) = require_python("bench_json_against_a_python_rpcudp_server") else {
        return;
    };
    let mut cmd = Command::new(python);
    cmd.arg(workspace_root().join("py/rpcudp_server.py"))
        .arg("127.0.0.1:0");
    let mut server = Child::spawn("python rpcudp server", cmd);
    let addr = server.wait_listening(START).to_string();
    let (status, out, err) = rpcudp(
        &[
            "bench",
            &addr,
            "--json",
            "--duration",
            "1",
            "--concurrency",
            "4",
        ],
        Duration::from_secs(30),
    );
    assert!(status.success(), "exit {status}: {err}");
    let report = json_report(&out);
    for key in ["calls", "calls_per_sec", "p50_us", "p99_us", "timeouts"] {
        assert!(report.get(key).is_some(), "{key} missing from {report}");
    }
    assert!(report["calls"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["timeouts"], 0, "{report}");
    assert!(report["p50_us"].as_f64().unwrap() > 0.0, "{report}");
    assert!(
        report["p99_us"].as_f64() >= report["p50_us"].as_f64(),
        "{report}"
    );
}

#[test]
fn bench_passes_method_and_args_to_every_call() {
    let Some(python) = require_python("bench_passes_method_and_args") else {
        return;
    };
    let mut cmd = Command::new(python);
    cmd.arg(workspace_root().join("py/rpcudp_server.py"))
        .arg("127.0.0.1:0");
    let mut server = Child::spawn("python rpcudp server", cmd);
    let addr = server.wait_listening(START).to_string();
    // `add` needs exactly two arguments: wrong args would get no answer (timeouts).
    let (status, out, err) = rpcudp(
        &[
            "bench",
            &addr,
            "--method",
            "add",
            "--args",
            "[-2, 40]",
            "--json",
            "-d",
            "0.5",
            "-c",
            "2",
            "--timeout",
            "2",
        ],
        Duration::from_secs(30),
    );
    assert!(status.success(), "exit {status}: {err}");
    let report = json_report(&out);
    assert!(report["calls"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["timeouts"], 0, "{report}");
}

#[test]
fn bench_counts_timeouts_against_a_server_that_never_answers() {
    // A bound socket that never reads: requests are delivered and never answered.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let (status, out, err) = rpcudp(
        &[
            "bench",
            &addr,
            "--json",
            "-d",
            "0.5",
            "-c",
            "3",
            "--timeout",
            "0.3",
        ],
        Duration::from_secs(30),
    );
    assert!(status.success(), "exit {status}: {err}");
    let report = json_report(&out);
    assert_eq!(report["calls"], 0, "{report}");
    // Each of the 3 slots times out at least once before the run ends.
    assert!(report["timeouts"].as_u64().unwrap() >= 3, "{report}");
    drop(silent);
}

#[test]
fn bench_raw_against_raw_echo_gets_every_datagram_back() {
    for mode in [&[][..], &["--blocking"][..], &["--batched"][..]] {
        let (_server, addr) = start_raw_echo(mode);
        let (status, out, err) = rpcudp(
            &[
                "bench",
                &addr.to_string(),
                "--raw",
                "--json",
                "-d",
                "0.5",
                "-c",
                "8",
            ],
            Duration::from_secs(30),
        );
        assert!(status.success(), "{mode:?}: exit {status}: {err}");
        let report = json_report(&out);
        assert!(report["calls"].as_u64().unwrap() > 0, "{mode:?}: {report}");
        assert_eq!(report["timeouts"], 0, "{mode:?}: {report}");
        assert_eq!(report["stray"], 0, "{mode:?}: {report}");
    }
}

#[test]
fn bench_text_report_names_rate_latency_and_timeouts() {
    let (_server, addr) = start_raw_echo(&[]);
    let (status, out, err) = rpcudp(
        &["bench", &addr.to_string(), "--raw", "-d", "0.3", "-c", "1"],
        Duration::from_secs(30),
    );
    assert!(status.success(), "exit {status}: {err}");
    for word in ["calls/s", "p50", "p90", "p99", "max", "timeouts"] {
        assert!(out.contains(word), "{word} missing from {out:?}");
    }
    // No progress bar when stderr is not a terminal.
    assert!(
        !err.contains('█') && !err.contains("calls/s"),
        "stderr: {err:?}"
    );
}

#[test]
fn raw_echo_prints_listening_on_and_exits_0_on_sigterm() {
    let (mut server, addr) = start_raw_echo(&[]);
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    let status = server
        .terminate(Duration::from_secs(10))
        .expect("raw-echo exits");
    assert!(status.success(), "exit {status}");
}

#[test]
fn bench_usage_errors_exit_2_and_name_the_bad_input() {
    let cases: &[(&[&str], &str)] = &[
        (&["bench", "nonsense"], "nonsense"),
        (&["bench", "127.0.0.1:9", "--concurrency", "0"], "0"),
        (&["bench", "127.0.0.1:9", "--duration", "-1"], "-1"),
        (&["bench", "127.0.0.1:9", "--duration", "soon"], "soon"),
        (&["bench", "127.0.0.1:9", "--args", "[1,"], "[1,"),
        (
            &["bench", "127.0.0.1:9", "--args", "{\"a\":1}"],
            "{\"a\":1}",
        ),
        (&["bench", "127.0.0.1:9", "--dialect", "grpc"], "grpc"),
        (&["bench", "127.0.0.1:9", "--bogus"], "--bogus"),
    ];
    for (args, bad) in cases {
        let (status, _out, err) = rpcudp(args, Duration::from_secs(20));
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(bad),
            "{args:?}: stderr should name {bad}: {err}"
        );
    }
}

fn start_serve(dialect: &str) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--dialect", dialect]);
    let mut server = Child::spawn("rpcudp serve", cmd);
    let addr = server.wait_listening(START).to_string();
    (server, addr)
}

#[test]
fn bench_against_rpcudp_serve_answers_every_call_in_both_dialects() {
    for dialect in ["rpcudp", "storj"] {
        let (_server, addr) = start_serve(dialect);
        let (status, out, err) = rpcudp(
            &[
                "bench",
                &addr,
                "--dialect",
                dialect,
                "--json",
                "-d",
                "0.5",
                "-c",
                "16",
            ],
            Duration::from_secs(30),
        );
        assert!(status.success(), "{dialect}: exit {status}: {err}");
        let report = json_report(&out);
        assert!(report["calls"].as_u64().unwrap() > 0, "{dialect}: {report}");
        assert_eq!(report["timeouts"], 0, "{dialect}: {report}");
    }
}

#[test]
fn bench_in_the_wrong_dialect_gets_only_timeouts() {
    // A storj request carries kind 2, which an rpcudp server drops as unknown.
    let (_server, addr) = start_serve("rpcudp");
    let (status, out, err) = rpcudp(
        &[
            "bench",
            &addr,
            "--dialect",
            "storj",
            "--json",
            "-d",
            "0.3",
            "-c",
            "2",
            "--timeout",
            "0.2",
        ],
        Duration::from_secs(30),
    );
    assert!(status.success(), "exit {status}: {err}");
    let report = json_report(&out);
    assert_eq!(report["calls"], 0, "{report}");
    assert!(report["timeouts"].as_u64().unwrap() >= 2, "{report}");
}

#[test]
fn raw_echo_rpc_core_answers_ping_and_echo_but_not_other_methods() {
    for mode in [&["--rpc-core"][..], &["--rpc-core", "--batched"][..]] {
        let (_server, addr) = start_raw_echo(mode);
        let addr = addr.to_string();
        for (method, args, answered) in [
            ("ping", "[]", true),
            ("echo", "[1, \"a\"]", true),
            ("add", "[1, 2]", false),
        ] {
            let (status, out, err) = rpcudp(
                &[
                    "bench",
                    &addr,
                    "--method",
                    method,
                    "--args",
                    args,
                    "--json",
                    "-d",
                    "0.3",
                    "-c",
                    "2",
                    "--timeout",
                    "0.2",
                ],
                Duration::from_secs(30),
            );
            assert!(status.success(), "{mode:?} {method}: exit {status}: {err}");
            let report = json_report(&out);
            let calls = report["calls"].as_u64().unwrap();
            assert_eq!(calls > 0, answered, "{mode:?} {method}: {report}");
            let timeouts = report["timeouts"].as_u64().unwrap();
            assert_eq!(timeouts > 0, !answered, "{mode:?} {method}: {report}");
        }
    }
}

#[test]
fn bench_through_the_library_node_answers_calls_and_counts_timeouts() {
    let (_server, addr) = start_serve("rpcudp");
    let (status, out, err) = rpcudp(
        &["bench", &addr, "--node", "--json", "-d", "0.3", "-c", "4"],
        Duration::from_secs(30),
    );
    assert!(status.success(), "exit {status}: {err}");
    let report = json_report(&out);
    assert_eq!(report["mode"], "node", "{report}");
    assert!(report["calls"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["timeouts"], 0, "{report}");
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let (status, out, err) = rpcudp(
        &[
            "bench",
            &silent_addr,
            "--node",
            "--json",
            "-d",
            "0.3",
            "-c",
            "2",
            "--timeout",
            "0.2",
        ],
        Duration::from_secs(30),
    );
    assert!(status.success(), "exit {status}: {err}");
    let report = json_report(&out);
    assert_eq!(report["calls"], 0, "{report}");
    assert!(report["timeouts"].as_u64().unwrap() >= 2, "{report}");
}
