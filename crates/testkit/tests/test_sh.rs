//! `scripts/test.sh`, run on stand-ins: a fake `cargo` printing canned libtest output,
//! fake system tools and a fake `apt-get` that records what it was asked. Checks the
//! closing summary line (also when cargo fails), the exit status, `--no-fail-fast`,
//! and the install branch: apt-get as root when a tool is missing, a printed reason
//! instead when not root, and `RPCUDP_REQUIRE_TOOLS` naming only the tools found.

use rpcudp_testkit::{which, workspace_root};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch tree: `scripts/test.sh` (the real one), a stub `setup-python.sh`, and a
/// `bin/` that is the whole `PATH`. Removed on drop.
struct Tree(PathBuf);

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// `uid`: what the fake `id -u` prints. `tools`: which of ip, nft, prometheus, promtool
/// exist. `cargo`: the fake cargo's body (its arguments are logged to `cargo.log`).
fn tree(name: &str, uid: u32, tools: &[&str], cargo: &str) -> Tree {
    let dir = std::env::temp_dir().join(format!("rpcudp-test-sh-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(dir.join("scripts")).unwrap();
    fs::copy(
        workspace_root().join("scripts/test.sh"),
        dir.join("scripts/test.sh"),
    )
    .unwrap();
    script(&dir.join("scripts/setup-python.sh"), "exit 0");
    script(&dir.join("scripts/test-python.sh"), "exit 0");
    for tool in [
        "bash", "dirname", "mktemp", "awk", "grep", "rm", "tee", "cat",
    ] {
        let real = which(tool).unwrap_or_else(|| panic!("{tool} not on PATH"));
        std::os::unix::fs::symlink(real, bin.join(tool)).unwrap();
    }
    for tool in tools {
        script(&bin.join(tool), "exit 0");
    }
    script(&bin.join("id"), &format!("echo {uid}"));
    let log = dir.join("apt.log");
    script(
        &bin.join("apt-get"),
        &format!("echo \"$@\" >> {}", log.display()),
    );
    let cargo_log = dir.join("cargo.log");
    script(
        &bin.join("cargo"),
        &format!(
            "echo \"$@ REQUIRE_TOOLS=$RPCUDP_REQUIRE_TOOLS\" >> {}\n{cargo}",
            cargo_log.display()
        ),
    );
    Tree(dir)
}

/// Runs the tree's test.sh: (exit code, stdout+stderr).
fn run(t: &Tree) -> (i32, String) {
    let out = Command::new(which("bash").unwrap())
        .arg(t.0.join("scripts/test.sh"))
        .env_clear()
        .env("PATH", t.0.join("bin"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn read(t: &Tree, file: &str) -> String {
    fs::read_to_string(t.0.join(file)).unwrap_or_default()
}

const ALL: &[&str] = &["ip", "nft", "prometheus", "promtool"];

/// The first run (all targets) fails one test and skips one at run time; the doc run passes.
const FAILING_CARGO: &str = r#"case "$*" in
*--doc*) echo "test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out" ;;
*) echo "test a ... ok"; echo "SKIP b: prometheus/promtool not installed"
   echo "test result: FAILED. 3 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out"
   exit 101 ;;
esac"#;

#[test]
fn a_failing_run_goes_on_to_the_doc_tests_and_ends_with_the_summary_and_a_failure_exit() {
    let t = tree("failing", 0, ALL, FAILING_CARGO);
    let (code, out) = run(&t);
    assert_ne!(code, 0, "{out}");
    assert_eq!(
        out.lines().last(),
        Some("summary: 7 passed, 1 failed, 3 skipped"),
        "{out}"
    );
    let cargo = read(&t, "cargo.log");
    assert_eq!(cargo.lines().count(), 2, "{cargo}");
    assert!(
        cargo.lines().all(|l| l.contains("--no-fail-fast")),
        "{cargo}"
    );
    assert_eq!(
        read(&t, "apt.log"),
        "",
        "nothing was missing, nothing installed"
    );
    assert!(cargo.contains("REQUIRE_TOOLS=ip prometheus nft"), "{cargo}");
}

#[test]
fn a_build_failure_still_prints_the_summary_and_says_a_step_failed() {
    let t = tree(
        "build",
        0,
        ALL,
        "echo 'error[E0425]: cannot find value'; exit 101",
    );
    let (code, out) = run(&t);
    assert_eq!(code, 101, "{out}");
    assert!(
        out.contains("summary: 0 passed, 0 failed, 0 skipped"),
        "{out}"
    );
    assert!(
        out.contains("a step failed outside the test counts (exit 101)"),
        "{out}"
    );
}

#[test]
fn a_green_run_exits_zero_with_the_summary() {
    let ok = r#"echo "test result: ok. 4 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out""#;
    let t = tree("green", 0, ALL, ok);
    let (code, out) = run(&t);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().last(),
        Some("summary: 8 passed, 0 failed, 2 skipped"),
        "{out}"
    );
}

#[test]
fn as_root_the_missing_tools_are_installed_with_apt_get() {
    let t = tree("root", 0, &["ip"], "exit 0");
    let (code, out) = run(&t);
    assert_eq!(code, 0, "{out}");
    let apt = read(&t, "apt.log");
    assert!(apt.contains("update"), "{apt}");
    assert!(apt.contains("install -y -qq prometheus nftables"), "{apt}");
    // The fake apt-get installed nothing: those tests skip rather than fail.
    assert!(read(&t, "cargo.log").contains("REQUIRE_TOOLS=ip\n"));
}

#[test]
fn without_root_nothing_is_installed_and_the_reason_is_printed() {
    let t = tree("user", 1000, &[], "exit 0");
    let (code, out) = run(&t);
    assert_eq!(code, 0, "{out}");
    assert_eq!(read(&t, "apt.log"), "");
    assert!(
        out.contains("iproute2 prometheus nftables missing"),
        "{out}"
    );
    assert!(out.contains("needs root and apt-get"), "{out}");
    assert!(read(&t, "cargo.log").contains("REQUIRE_TOOLS=\n"));
}

#[test]
fn an_interrupted_run_still_prints_the_summary_of_what_ran_and_fails() {
    let interrupt = r#"echo "test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out"
kill -INT $PPID"#;
    let t = tree("interrupt", 0, ALL, interrupt);
    let (code, out) = run(&t);
    assert_eq!(code, 130, "{out}");
    assert!(
        out.contains("summary: 2 passed, 0 failed, 0 skipped"),
        "{out}"
    );
    assert_eq!(
        read(&t, "cargo.log").lines().count(),
        1,
        "the doc tests did not start"
    );
}
