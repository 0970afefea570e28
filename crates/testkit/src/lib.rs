//! Test helpers shared by the workspace's tests (never by library code):
//! - [`python`] / [`require_python`]: the venv with the real Python peers, with the
//!   skip-or-fail policy (`RPCUDP_REQUIRE_INTEROP=1`, set by `scripts/test.sh`, turns a
//!   missing venv into a failure instead of a printed skip; without it each test binary
//!   prints one line saying its interop tests skipped);
//! - [`skip`] / [`tool_required`]: a skip printed past libtest's capture, and the
//!   skip-or-fail policy for system tools (`RPCUDP_REQUIRE_TOOLS`, set by
//!   `scripts/test.sh` to the tools it found or installed);
//! - [`Child`]: a spawned process that is killed and reaped on drop, also on panic, with
//!   bounded waits for its output lines;
//! - [`Netns`]: a network namespace that is deleted on drop, [`netns_available`], and
//!   [`require_netns`] (skip with a reason, or fail as root where it must work);
//! - [`rpcudp_bin`]: the path of the built `rpcudp` binary;
//! - [`prometheus`]: a real Prometheus server, `promtool`, a bounded HTTP GET;
//! - [`hostile`]: raw sockets crafting RPC datagrams, a timed honest client, peak memory
//!   and CPU time from `/proc`, a DHT state file written directly;
//! - [`forge`]: UDP datagrams with a forged IPv4 source (a raw `IP_HDRINCL` socket; root).
//!
//! Everything here bounds its waits in time, so a broken peer fails a test instead of
//! hanging it.

pub mod forge;
pub mod hostile;
pub mod prometheus;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The workspace root (the folder holding `Cargo.lock`).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|p| p.join("Cargo.lock").exists() || p.join(".ci").exists())
        .unwrap_or(here)
        .to_path_buf()
}

/// The Python interpreter of the peers' venv, if it is installed.
///
/// Looks at `RPCUDP_PYTHON`, then `<workspace>/.venv/bin/python`.
pub fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("RPCUDP_PYTHON") {
        let p = PathBuf::from(p);
        if p.exists() {
            return Some(p);
        }
    }
    let p = workspace_root().join(".venv/bin/python");
    p.exists().then_some(p)
}

/// Where `storjrpcudp` is installed (to put on `PYTHONPATH`), if it is.
pub fn storj_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("RPCUDP_STORJ_PATH") {
        let p = PathBuf::from(p);
        if p.exists() {
            return Some(p);
        }
    }
    let p = workspace_root().join(".venv/storj");
    p.exists().then_some(p)
}

/// True when a missing prerequisite must fail the test rather than skip it.
pub fn interop_required() -> bool {
    std::env::var("RPCUDP_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Prints `SKIP {test}: {reason}` on the process's real stderr, past libtest's output
/// capture, so a skip shows in a plain `cargo test` run, and `scripts/test.sh` counts it
/// among the skipped tests of its summary line. Call it once per skipped test.
pub fn skip(test: &str, reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIP {test}: {reason}");
}

/// The name of the running test binary (`rpc_interop`), without cargo's hash suffix.
fn test_binary() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe.file_stem().and_then(|s| s.to_str()).unwrap_or("tests");
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
        _ => stem.to_string(),
    }
}

/// The line printed once per test binary whose interop tests skip: it says they pass
/// without a peer and names the variable that turns the skip into a failure.
pub fn interop_group_skip_line(binary: &str) -> String {
    format!(
        "SKIPPED GROUP {binary}: the Python peers are not installed, so its interop tests \
         pass without running; run scripts/setup-python.sh, or set RPCUDP_REQUIRE_INTEROP=1 \
         (scripts/test.sh does) to make them fail instead"
    )
}

/// The venv's Python, or `None` after printing why the test skips: the test's own line
/// (captured by libtest) and, once per test binary, [`interop_group_skip_line`] on the
/// real stderr, so a green run without the peers cannot be mistaken for an interop run.
///
/// Panics instead of skipping when [`interop_required`] is true.
pub fn require_python(test: &str) -> Option<PathBuf> {
    match python() {
        Some(p) => Some(p),
        None if interop_required() => {
            panic!("{test}: the Python peers are not installed; run scripts/setup-python.sh")
        }
        None => {
            interop_group_skipped();
            eprintln!(
                "SKIP {test}: the Python peers are not installed (run scripts/setup-python.sh, \
                 or the README's test command, which does)"
            );
            None
        }
    }
}

/// Prints [`interop_group_skip_line`] on the real stderr, once per test binary; every
/// interop test that skips for a missing peer calls it.
pub fn interop_group_skipped() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::io::Write;
        let line = interop_group_skip_line(&test_binary());
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    });
}

/// True when the system tool `tool` (`ip`, `nft`, `prometheus`) must work, so that a
/// test finding it missing or unusable fails instead of skipping. `scripts/test.sh` sets
/// `RPCUDP_REQUIRE_TOOLS` to the tools it found (after installing the missing ones as
/// root), space-separated; without it every such test skips with the reason.
pub fn tool_required(tool: &str) -> bool {
    std::env::var("RPCUDP_REQUIRE_TOOLS").is_ok_and(|v| v.split([' ', ',']).any(|t| t == tool))
}

/// A command running the helper script `py/<script>` with the venv's Python; for a
/// storjrpcudp peer (`storj`), with `PYTHONPATH` set to where it is installed. `None`
/// after printing why the test skips (a panic when [`interop_required`]).
pub fn python_script(test: &str, storj: bool, script: &str) -> Option<std::process::Command> {
    let python = require_python(test)?;
    let mut cmd = std::process::Command::new(python);
    cmd.arg(workspace_root().join("py").join(script));
    if storj {
        match storj_path() {
            Some(p) => {
                cmd.env("PYTHONPATH", p);
            }
            None if interop_required() => {
                panic!("{test}: storjrpcudp is not installed; run scripts/setup-python.sh")
            }
            None => {
                interop_group_skipped();
                eprintln!("SKIP {test}: storjrpcudp is not installed");
                return None;
            }
        }
    }
    Some(cmd)
}

/// The path of the `rpcudp` binary built for this test run (debug profile).
///
/// Integration tests inside the cli crate should prefer `env!("CARGO_BIN_EXE_rpcudp")`.
pub fn rpcudp_bin() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    target.join("debug").join("rpcudp")
}

/// A child process that is killed and reaped when dropped.
///
/// Its stdout is read line by line on a thread; [`Child::wait_line`] waits, bounded,
/// for a line matching a predicate. Its stderr is collected for failure messages.
pub struct Child {
    name: String,
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// Set by the stderr reader once stderr reached its end.
    stderr_done: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Child {
    /// Spawns `cmd` with piped stdout/stderr and null stdin.
    pub fn spawn(name: &str, mut cmd: Command) -> Child {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let err_buf = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let err_buf2 = err_buf.clone();
        let stderr_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stderr_done2 = stderr_done.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut b = err_buf2.lock().unwrap();
                if b.len() < 64 * 1024 {
                    b.push_str(&line);
                    b.push('\n');
                }
            }
            stderr_done2.store(true, Ordering::Release);
        });
        Child {
            name: name.to_string(),
            child,
            lines: rx,
            seen: Vec::new(),
            stderr: err_buf,
            stderr_done,
        }
    }

    /// Waits up to `timeout` for a stdout line for which `pred` holds and returns it.
    /// Panics with the output seen so far when it does not come.
    pub fn wait_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no expected line within {timeout:?}; stdout so far: {:?}; stderr: {}",
                    self.name,
                    self.seen,
                    self.stderr()
                ),
            }
        }
    }

    /// Waits for the `listening on IP:PORT` line and returns the address.
    pub fn wait_listening(&mut self, timeout: Duration) -> std::net::SocketAddr {
        let line = self.wait_line(timeout, |l| l.starts_with("listening on "));
        line["listening on ".len()..]
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{}: bad listening line {line:?}: {e}", self.name))
    }

    /// Every stdout line received so far (including ones consumed by `wait_line`), after
    /// draining what is already buffered.
    pub fn lines_so_far(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }

    /// Every stdout line the process wrote, once its stdout is closed (normally: it
    /// exited), waiting at most `timeout` for that. Unlike [`Child::lines_so_far`] right
    /// after [`Child::wait_exit`], this cannot miss lines the reader thread has not
    /// passed on yet. Panics with what was seen if stdout stays open.
    pub fn all_lines(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return self.seen.clone(),
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "{}: stdout still open after {timeout:?}; stdout so far: {:?}",
                    self.name, self.seen
                ),
            }
        }
    }

    /// What the process wrote to stderr so far (capped at 64 KiB).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (through `kill`) and waits, bounded, for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.wait_exit(timeout)
    }

    /// Waits, bounded, for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Waits, bounded, for the process to exit and its stdout and stderr to end, and
    /// returns the exit status with every stdout line it wrote (those already consumed by
    /// `wait_line` included); [`Child::stderr`] then holds all of stderr. Reading both to
    /// their end, rather than sleeping after the exit, is what makes sure no last line is
    /// still in flight on a loaded machine. `None` if that does not happen within `timeout`.
    pub fn wait_output(
        &mut self,
        timeout: Duration,
    ) -> Option<(std::process::ExitStatus, Vec<String>)> {
        let deadline = Instant::now() + timeout;
        let status = self.wait_exit(timeout)?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => return None,
            }
        }
        while !self.stderr_done.load(Ordering::Acquire) {
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Some((status, self.seen.clone()))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this process can create network namespaces (root with `ip` available).
/// Returns the reason when it cannot.
pub fn netns_available() -> Result<(), String> {
    let name = unique_name("probe");
    let add = Command::new("ip").args(["netns", "add", &name]).output();
    match add {
        Err(e) => Err(format!("`ip` is not available: {e}")),
        Ok(out) if !out.status.success() => Err(format!(
            "cannot create a network namespace (needs root): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
            Ok(())
        }
    }
}

/// A network namespace created for one test, deleted (with its processes) on drop.
pub struct Netns {
    name: String,
}

fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "rpcudp-{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl Netns {
    /// Creates a namespace with `lo` up. Returns the reason if that is impossible.
    pub fn new(prefix: &str) -> Result<Netns, String> {
        netns_available()?;
        let name = unique_name(prefix);
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .map_err(|e| e.to_string())?;
        if !ok.success() {
            return Err(format!("ip netns add {name} failed"));
        }
        let ns = Netns { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `Command` that runs `program` inside the namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs a command in the namespace and fails with its stderr if it fails.
    pub fn exec_ok(&self, argv: &[&str]) -> Result<String, String> {
        let out = self
            .command(argv[0])
            .args(&argv[1..])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{:?} in {} failed: {}",
                argv,
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill whatever still runs inside, then delete the namespace.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Whether this process runs as root (uid 0), read from `/proc/self/status`.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// A fresh namespace (with `lo` up) for `test`, or `None` after printing why the test
/// skips ([`skip`]). As root failing to create one panics (there the namespace tests
/// must run, not skip), unless `ip` itself is missing and not [`tool_required`].
pub fn require_netns(test: &str, prefix: &str) -> Option<Netns> {
    match Netns::new(prefix) {
        Ok(ns) => Some(ns),
        Err(why) if is_root() && (which("ip").is_some() || tool_required("ip")) => {
            panic!("{test}: running as root but {why}")
        }
        Err(why) => {
            skip(
                test,
                &format!("needs a network namespace (root and iproute2's `ip`): {why}"),
            );
            None
        }
    }
}

/// The path of `program` on `PATH`, if it is there.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

impl Netns {
    /// Adds a veth pair `a`/`b` inside the namespace, both up, with IPv6 duplicate
    /// address detection off so link-local addresses work at once. Multicast sent out of
    /// `a` loops back to local members and reaches `b`.
    pub fn add_veth(&self, a: &str, b: &str) -> Result<(), String> {
        self.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"])?;
        self.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"])?;
        self.exec_ok(&["ip", "link", "add", a, "type", "veth", "peer", "name", b])?;
        self.exec_ok(&["ip", "link", "set", a, "up"])?;
        self.exec_ok(&["ip", "link", "set", b, "up"])?;
        Ok(())
    }

    /// The index of interface `name` inside the namespace.
    pub fn ifindex(&self, name: &str) -> Result<u32, String> {
        let out = self.exec_ok(&["cat", &format!("/sys/class/net/{name}/ifindex")])?;
        out.trim()
            .parse()
            .map_err(|e| format!("ifindex of {name}: {e}"))
    }

    /// Waits (bounded) until `name` has a usable IPv6 link-local address.
    pub fn wait_link_local(&self, name: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.exec_ok(&["ip", "-6", "addr", "show", "dev", name, "scope", "link"])?;
            if out.contains("fe80") && !out.contains("tentative") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{name} got no IPv6 link-local address: {out}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs `jobs` on `workers` threads, each taking the next job when it is done, and
/// returns the results in job order (for tests that run many one-shot CLI clients).
///
/// ```
/// let squares = rpcudp_testkit::run_parallel(5, 2, |i| i * i);
/// assert_eq!(squares, vec![0, 1, 4, 9, 16]);
/// ```
pub fn run_parallel<T: Send>(
    jobs: usize,
    workers: usize,
    job: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= jobs {
                    break;
                }
                let r = job(i);
                results.lock().unwrap().push((i, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
