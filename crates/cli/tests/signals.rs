//! cli.md: a long-running command "runs until SIGINT or SIGTERM and then exits 0". That
//! must hold from the moment it prints `listening on`, since whoever reads that line may
//! signal at once: the handlers used to be installed only after the line, so an early
//! signal killed the process by its default action (no exit code) about one time in five.

use rpcudp_testkit::Child;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
/// Rounds per command and signal: the race was lost about once in five tries.
const ROUNDS: usize = 8;

fn signal_at_once_after_listening(what: &str, args: &[&str]) {
    for signal in ["-INT", "-TERM"] {
        for round in 0..ROUNDS {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_rpcudp"));
            cmd.args(args);
            let mut child = Child::spawn(what, cmd);
            child.wait_listening(WAIT);
            Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .unwrap();
            let status = child
                .wait_exit(WAIT)
                .unwrap_or_else(|| panic!("{what}: still running {WAIT:?} after kill {signal}"));
            assert_eq!(
                status.code(),
                Some(0),
                "{what}, kill {signal} (round {round}): {status:?}; stderr: {}",
                child.stderr()
            );
        }
    }
}

#[test]
fn lt_echo_tcp_exits_0_when_signalled_right_after_listening() {
    signal_at_once_after_listening("lt echo", &["lt", "echo", "--bind", "127.0.0.1:0"]);
}

#[test]
fn lt_echo_udp_exits_0_when_signalled_right_after_listening() {
    signal_at_once_after_listening(
        "lt echo --udp",
        &["lt", "echo", "--bind", "127.0.0.1:0", "--udp"],
    );
}

#[test]
fn mcast_listen_exits_0_when_signalled_right_after_listening() {
    // Joined on loopback: nothing leaves the host.
    signal_at_once_after_listening(
        "mcast listen",
        &[
            "mcast",
            "listen",
            "--group",
            "228.0.0.5",
            "--port",
            "0",
            "--interface",
            "127.0.0.1",
        ],
    );
}

#[test]
fn dht_run_exits_0_when_signalled_right_after_listening() {
    signal_at_once_after_listening("dht run", &["dht", "run", "--bind", "127.0.0.1:0"]);
}

#[test]
fn serve_exits_0_when_signalled_right_after_listening() {
    signal_at_once_after_listening("serve", &["serve", "--bind", "127.0.0.1:0"]);
}
