//! The simulator example runs as a program and does what its docs say: a user's own
//! `Protocol` under 10% loss delivers every message exactly once, the network really
//! lost datagrams, and a seed replays its run exactly.

mod support;

use std::process::Command;
use support::example;

/// Runs `sim_own_protocol SEED`: its stdout, after checking it exited 0.
fn run(seed: u64) -> String {
    let out = Command::new(example("sim_own_protocol"))
        .arg(seed.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The two numbers of "seed S: N datagrams sent, L lost by the network".
fn sent_lost(report: &str) -> (u64, u64) {
    let line = report.lines().next().unwrap();
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[1], nums[2])
}

#[test]
fn a_users_own_protocol_delivers_every_message_once_under_ten_percent_loss() {
    for seed in 1..=3 {
        let report = run(seed);
        assert!(
            report.contains("100 messages: 100 delivered, 100 acknowledged, 0 given up"),
            "{report}"
        );
        let (sent, lost) = sent_lost(&report);
        // 10% of the datagrams lost, give or take: the resends really had work to do.
        assert!(
            lost * 100 >= sent * 5 && lost * 100 <= sent * 15,
            "{report}"
        );
    }
}

#[test]
fn a_seed_replays_the_same_run() {
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}
