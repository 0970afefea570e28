//! The real `rpcudp` binary under real kernel packet loss: RPC calls with retries and DHT
//! sets and gets, with the properties the simulator checks (right answers only, every
//! call ends, at least 99% success at 20% loss).
//!
//! The loss is made by nftables inside a network namespace the test creates (the kernel
//! here has no `netem`): a rule on the input hook drops each matching UDP datagram with
//! probability 1/5 (`numgen random mod 100 < 20`). On the namespace's loopback every
//! datagram passes the input hook once, so requests and answers are both lost at 20%.
//! The rules count what they drop, and each test checks the loss really happened.
//!
//! Skips (with the reason on stderr) when it cannot create a namespace (not root) or
//! `nft` is missing (`apt-get install nftables`; `scripts/test.sh` installs it as root);
//! when `RPCUDP_REQUIRE_TOOLS` names `nft` (test.sh found it) an unusable `nft` fails. Processes and the namespace go away on drop, also when
//! an assertion fails.

use rpcudp_testkit::{require_netns, run_parallel, skip, tool_required, Child, Netns};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rpcudp");
const START: Duration = Duration::from_secs(10);
/// Percent of the matching datagrams the rule drops.
const LOSS: u32 = 20;

/// A fresh namespace with `nft` usable in it, or `None` after saying why the test skips.
fn loss_netns(test: &str) -> Option<Netns> {
    let ns = require_netns(test, "loss")?;
    match ns.exec_ok(&["nft", "list", "ruleset"]) {
        Ok(_) => Some(ns),
        Err(why) if tool_required("nft") => {
            panic!("{test}: nft was found (RPCUDP_REQUIRE_TOOLS) but nftables is unusable: {why}")
        }
        Err(why) => {
            skip(
                test,
                &format!("needs nftables (apt-get install nftables): {why}"),
            );
            None
        }
    }
}

/// Adds table `inet loss` whose input chain drops `LOSS`% of the datagrams each `matcher`
/// selects (e.g. `udp dport 9000`), counting those seen and those dropped.
fn add_loss(ns: &Netns, matchers: &[&str]) {
    ns.exec_ok(&["nft", "add", "table", "inet", "loss"])
        .unwrap();
    ns.exec_ok(&[
        "nft",
        "add chain inet loss input { type filter hook input priority 0 ; policy accept ; }",
    ])
    .unwrap();
    for m in matchers {
        let seen = format!("add rule inet loss input {m} counter");
        ns.exec_ok(&["nft", &seen]).unwrap();
        let drop =
            format!("add rule inet loss input {m} numgen random mod 100 < {LOSS} counter drop");
        ns.exec_ok(&["nft", &drop]).unwrap();
    }
}

/// The packet counts of the loss rules: (seen, dropped), summed over the matchers.
fn loss_counters(ns: &Netns) -> (u64, u64) {
    let out = ns
        .exec_ok(&["nft", "list", "chain", "inet", "loss", "input"])
        .unwrap();
    let (mut seen, mut dropped) = (0, 0);
    for line in out.lines() {
        let Some(at) = line.find("counter packets ") else {
            continue;
        };
        let n: u64 = line[at + "counter packets ".len()..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unreadable counter line {line:?}"));
        if line.contains("drop") {
            dropped += n;
        } else {
            seen += n;
        }
    }
    (seen, dropped)
}

/// Runs `rpcudp ARGS…` in the namespace to its end: (exit code, stdout lines, stderr,
/// how long it took). Panics if it does not end within `bound`.
fn run_in(ns: &Netns, args: &[String], bound: Duration) -> (i32, Vec<String>, String, Duration) {
    let mut cmd = ns.command(BIN);
    cmd.args(args);
    let started = Instant::now();
    let mut child = Child::spawn(&args.join(" "), cmd);
    let (status, lines) = child
        .wait_output(bound)
        .unwrap_or_else(|| panic!("`rpcudp {}` did not end within {bound:?}", args.join(" ")));
    (
        status.code().unwrap_or(-1),
        lines,
        child.stderr(),
        started.elapsed(),
    )
}

#[test]
fn calls_with_retries_get_right_answers_at_20_percent_loss_both_ways() {
    let test = "calls_with_retries_get_right_answers_at_20_percent_loss_both_ways";
    let Some(ns) = loss_netns(test) else { return };
    let mut cmd = ns.command(BIN);
    cmd.args(["serve", "--bind", "127.0.0.1:0"]);
    let mut server = Child::spawn("serve", cmd);
    let addr: SocketAddr = server.wait_listening(START);
    let port = addr.port();
    // Requests are lost on their way in, answers on their way back.
    add_loss(
        &ns,
        &[&format!("udp dport {port}"), &format!("udp sport {port}")],
    );

    // A round trip survives with probability 0.8² = 0.64; with 6 resends a call fails
    // with probability 0.36⁷ ≈ 0.08%, so 200 calls fail at most twice (the 99% asked for)
    // but with odds of about 1 in 2000 (with 5 resends: about 1 in 100, too flaky).
    const CALLS: usize = 200;
    const RETRIES: u32 = 6;
    const TIMEOUT: f64 = 0.3;
    // Every call ends: by the schedule's end (cli.md: `--timeout` per attempt, every
    // attempt waits exactly that, so 7 × 0.3 s) plus room for a slow start on a loaded
    // machine.
    let schedule = Duration::from_secs_f64(TIMEOUT * f64::from(RETRIES + 1));
    let bound = schedule + Duration::from_secs(15);
    let started = Instant::now();
    let outcomes = run_parallel(CALLS, 10, |i| {
        let args: Vec<String> = [
            "call",
            &addr.to_string(),
            "add",
            &i.to_string(),
            "1000000",
            "--retries",
            &RETRIES.to_string(),
            "--timeout",
            &TIMEOUT.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        run_in(&ns, &args, bound)
    });
    let elapsed = started.elapsed();

    let mut answered = 0;
    let mut slowest = Duration::ZERO;
    for (i, (code, lines, stderr, took)) in outcomes.iter().enumerate() {
        slowest = slowest.max(*took);
        match code {
            0 => {
                // Right answers only: each call's own sum, never another call's.
                assert_eq!(
                    lines,
                    &vec![(1_000_000 + i).to_string()],
                    "call {i} answered wrongly; stderr: {stderr}"
                );
                answered += 1;
            }
            3 => assert!(
                lines.is_empty(),
                "call {i} printed {lines:?} with no answer"
            ),
            other => panic!("call {i} exited {other}: {stderr}"),
        }
    }
    let (seen, dropped) = loss_counters(&ns);
    eprintln!(
        "{test}: {answered}/{CALLS} answered in {elapsed:?} (slowest {slowest:?}); \
         the rules saw {seen} datagrams and dropped {dropped}"
    );
    assert!(
        answered * 100 >= CALLS * 99,
        "only {answered} of {CALLS} calls answered"
    );
    // The loss was real, and about the rate asked for (generous bounds: it is random).
    assert!(
        dropped > 0 && seen >= CALLS as u64 * 2,
        "seen {seen}, dropped {dropped}"
    );
    let rate = dropped as f64 / seen as f64;
    assert!((0.1..0.3).contains(&rate), "drop rate {rate:.3}");
    server.terminate(Duration::from_secs(5));
}

/// `rpcudp dht set|get` arguments through `via`.
fn dht_args(op: &str, via: SocketAddr, key: &str, value: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = ["dht", op, "--bootstrap", &via.to_string(), key]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(value.map(str::to_string));
    args.extend(["--timeout".to_string(), DHT_TIMEOUT.to_string()]);
    args
}

/// Per-RPC timeout of the DHT nodes and clients, in seconds.
const DHT_TIMEOUT: &str = "0.5";

/// Five nodes and one-shot clients, all with `--timeout 0.5`, 20% loss each way: at least
/// 99% of 20 sets and 100 gets together succeed, 99 of the 100 gets with the right value
/// (measured: 20/20 and 99-100/100 in each of 15 runs, one run 19/20 sets). What makes it
/// survive (`kad::Node`): a join resends its bootstrap ping 6 times within the timeout
/// (7 sends all lost: 0.08%), lookup and store RPCs resend at the RTO (at most a quarter
/// of the timeout) and twice more, a set with no acknowledgement at its stores' RTO waits
/// on for the resends' answers, and a get or set whose lookup heard from nobody runs it again
/// (twice at most). Before (main at 0256b71, one resend only when the RTO was under the
/// timeout, so none at 0.5 s): 12/20 sets, 35/100 gets.
#[test]
fn dht_gets_find_what_was_set_at_20_percent_loss() {
    let test = "dht_gets_find_what_was_set_at_20_percent_loss";
    let Some(ns) = loss_netns(test) else { return };
    const NODES: usize = 5;
    let mut nodes: Vec<(Child, SocketAddr)> = Vec::new();
    for i in 0..NODES {
        let mut cmd = ns.command(BIN);
        cmd.args([
            "dht",
            "run",
            "--bind",
            "127.0.0.1:0",
            "--timeout",
            DHT_TIMEOUT,
        ]);
        if let Some((_, first)) = nodes.first() {
            cmd.args(["--bootstrap", &first.to_string()]);
        }
        let mut child = Child::spawn(&format!("dht node {i}"), cmd);
        let addr = child.wait_listening(START);
        nodes.push((child, addr));
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|(_, a)| *a).collect();
    // The network is formed (before any loss) once a set through the last node reaches
    // all of them (bounded wait: joins on loopback take milliseconds).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let args = dht_args("set", addrs[NODES - 1], "warm-up", Some("x"));
        let (_, lines, _, _) = run_in(&ns, &args, Duration::from_secs(30));
        if lines == [format!("stored on {NODES} nodes")] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the network did not form: {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    add_loss(&ns, &["meta l4proto udp"]);
    const KEYS: usize = 20;
    const GETS_PER_KEY: usize = 5;
    let bound = Duration::from_secs(60);
    let sets = run_parallel(KEYS, 5, |i| {
        let args = dht_args(
            "set",
            addrs[i % NODES],
            &format!("key-{i}"),
            Some(&format!("value-{i}")),
        );
        run_in(&ns, &args, bound)
    });
    let mut stored = 0;
    for (i, (code, lines, stderr, _)) in sets.iter().enumerate() {
        match code {
            0 => stored += 1,
            1 => {}
            other => panic!("set {i} exited {other}: {stderr}"),
        }
        assert_eq!(lines.len(), 1, "set {i}: {lines:?} {stderr}");
        assert!(lines[0].starts_with("stored on "), "set {i}: {lines:?}");
    }
    let started = Instant::now();
    let gets = run_parallel(KEYS * GETS_PER_KEY, 10, |j| {
        let i = j % KEYS;
        // Through another node than the one the value was set through.
        let args = dht_args(
            "get",
            addrs[(i + 1 + j / KEYS) % NODES],
            &format!("key-{i}"),
            None,
        );
        run_in(&ns, &args, bound)
    });
    let elapsed = started.elapsed();
    let mut found = 0;
    let mut failures = Vec::new();
    for (j, (code, lines, stderr, _)) in gets.iter().enumerate() {
        let i = j % KEYS;
        match code {
            0 => {
                assert_eq!(
                    lines,
                    &vec![format!("value-{i}")],
                    "get {j} of key-{i}: wrong value"
                );
                found += 1;
            }
            1 => failures.push(format!("get {j} of key-{i}: {}", stderr.trim())),
            other => panic!("get {j} exited {other}: {stderr}"),
        }
    }
    let (seen, dropped) = loss_counters(&ns);
    let gets_n = KEYS * GETS_PER_KEY;
    eprintln!(
        "{test}: {stored}/{KEYS} sets acknowledged, {found}/{gets_n} gets found in {elapsed:?}; \
         the rule saw {seen} datagrams and dropped {dropped}; failures: {failures:#?}"
    );
    assert!(
        dropped > 0,
        "no datagram was dropped: the loss rule did not apply"
    );
    // Issue 10: at least 99% of the operations succeed (sets and gets together: one of
    // the 120 may fail), and at least 99% of the gets.
    assert!(
        (stored + found) * 100 >= (KEYS + gets_n) * 99,
        "only {stored} of {KEYS} sets acknowledged and {found} of {gets_n} gets found: \
         {failures:#?}"
    );
    assert!(
        found * 100 >= gets_n * 99,
        "only {found} of {gets_n} gets found: {failures:#?}"
    );
    for (child, _) in &mut nodes {
        child.terminate(Duration::from_secs(5));
    }
}
