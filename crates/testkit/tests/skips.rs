//! How a skip shows: past libtest's output capture, one line per interop group, and the
//! tool policy `scripts/test.sh` sets. The helpers below are `#[ignore]`d and re-run by
//! the outer tests in a child process of this binary, whose stderr is read.

use rpcudp_testkit::{interop_group_skipped, skip, tool_required};
use std::process::Command;

/// Runs the ignored test `name` of this binary in a child (output captured, as in a
/// plain `cargo test`) and returns its stderr.
fn run_helper(name: &str, env: &[(&str, &str)]) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", name, "--test-threads=1"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{name}: {out:?}");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
#[ignore = "run by a_skip_is_printed_past_the_output_capture"]
fn helper_skips_twice() {
    skip("first_test", "a tool is missing");
    skip("second_test", "another tool is missing");
}

#[test]
#[ignore = "run by the_interop_group_line_is_printed_once_and_names_the_variable"]
fn helper_interop_group_skips_three_times() {
    for _ in 0..3 {
        interop_group_skipped();
    }
}

#[test]
#[ignore = "run by tools_are_required_only_when_test_sh_names_them"]
fn helper_tool_policy() {
    assert!(tool_required("nft"));
    assert!(tool_required("prometheus"));
    assert!(!tool_required("ip"));
    assert!(!tool_required("prom"));
}

#[test]
fn a_skip_is_printed_past_the_output_capture() {
    let err = run_helper("helper_skips_twice", &[]);
    let skips: Vec<&str> = err.lines().filter(|l| l.starts_with("SKIP ")).collect();
    assert_eq!(
        skips,
        [
            "SKIP first_test: a tool is missing",
            "SKIP second_test: another tool is missing"
        ],
        "stderr: {err}"
    );
}

#[test]
fn the_interop_group_line_is_printed_once_and_names_the_variable() {
    let err = run_helper("helper_interop_group_skips_three_times", &[]);
    let groups: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("SKIPPED GROUP"))
        .collect();
    assert_eq!(groups.len(), 1, "stderr: {err}");
    // The group is this test binary, without cargo's hash suffix.
    assert!(
        groups[0].starts_with("SKIPPED GROUP skips: "),
        "{}",
        groups[0]
    );
    assert!(
        groups[0].contains("RPCUDP_REQUIRE_INTEROP=1"),
        "{}",
        groups[0]
    );
    assert!(groups[0].contains("not installed"), "{}", groups[0]);
}

#[test]
fn tools_are_required_only_when_test_sh_names_them() {
    run_helper(
        "helper_tool_policy",
        &[("RPCUDP_REQUIRE_TOOLS", "nft prometheus")],
    );
    run_helper(
        "helper_tool_policy",
        &[("RPCUDP_REQUIRE_TOOLS", "nft,prometheus")],
    );
}
