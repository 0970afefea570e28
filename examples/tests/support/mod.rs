//! Shared by the example tests: the examples built as programs, and how long one may
//! take to start.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// How long an example may take to print its first line (generous: a loaded CI machine).
#[allow(dead_code)] // not every test file starts a server
pub const START: Duration = Duration::from_secs(20);

/// `target/<profile>/examples/<name>`, built once per test run: `cargo test
/// --all-targets` builds the examples only as test harnesses, not as the programs
/// themselves, so this asks cargo (the one running the tests) to build them.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .ok_or("no target directory")?
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "rpcudp-examples", "--examples"]);
        // Into the directory this test runs from, even if it was given by a flag.
        if let Some(target_dir) = profile_dir.parent() {
            cmd.arg("--target-dir").arg(target_dir);
        }
        if profile_dir.ends_with("release") {
            cmd.arg("--release");
        }
        let out = cmd.output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(profile_dir.join("examples"))
    });
    let path = dir
        .as_ref()
        .unwrap_or_else(|e| panic!("cannot build the examples: {e}"))
        .join(name);
    assert!(path.exists(), "{} is not built", path.display());
    path
}
