//! `rpcudp serve` and `rpcudp call` against shared/spec/cli.md: the reference service,
//! the JSON mapping on the command line, dialects, IPv6 and names, exit codes, signals.

use rpcudp_testkit::Child;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rpcudp");
const START: Duration = Duration::from_secs(20);

fn serve(extra: &[&str]) -> (Child, SocketAddr) {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve").args(extra);
    if !extra.contains(&"--bind") {
        cmd.args(["--bind", "127.0.0.1:0"]);
    }
    let mut child = Child::spawn("rpcudp serve", cmd);
    let addr = child.wait_listening(START);
    (child, addr)
}

fn call(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("call")
        .args(args)
        .output()
        .expect("run rpcudp call")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Calls and expects success with exactly this JSON line.
fn call_ok(args: &[&str], want: &str) {
    let o = call(args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    assert_eq!(stdout(&o), want, "{args:?}");
}

#[test]
fn serve_prints_listening_first_and_answers_ping() {
    let (mut server, addr) = serve(&[]);
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    assert_eq!(server.lines_so_far()[0], format!("listening on {addr}"));
    call_ok(&[&addr.to_string(), "ping"], r#""pong""#);
}

#[test]
fn echo_returns_every_json_form_exactly() {
    let (_server, addr) = serve(&[]);
    let a = addr.to_string();
    call_ok(&[&a, "echo"], "[]");
    call_ok(
        &[
            &a,
            "echo",
            "null",
            "true",
            "-5",
            "18446744073709551615",
            "-9223372036854775808",
            "1.0",
            "-2.5e-3",
            r#""text""#,
        ],
        r#"[null, true, -5, 18446744073709551615, -9223372036854775808, 1.0, -0.0025, "text"]"#,
    );
    call_ok(
        &[
            &a,
            "echo",
            r#"{"$bin": "00FF"}"#,
            r#"{"$float": "nan"}"#,
            r#"{"$float": "-inf"}"#,
            r#"{"$ext": [-1, "00000001"]}"#,
        ],
        r#"[{"$bin": "00ff"}, {"$float": "nan"}, {"$float": "-inf"}, {"$ext": [-1, "00000001"]}]"#,
    );
    call_ok(
        &[&a, "echo", r#"{"b": [1, {"c": null}], "a": "x"}"#],
        r#"[{"b": [1, {"c": null}], "a": "x"}]"#,
    );
    call_ok(
        &[
            &a,
            "echo",
            r#"{"$map": [[1, "one"], [{"$bin": "01"}, 2.5]]}"#,
        ],
        r#"[{"$map": [[1, "one"], [{"$bin": "01"}, 2.5]]}]"#,
    );
}

#[test]
fn negative_numbers_need_no_double_dash_and_options_may_follow() {
    let (_server, addr) = serve(&[]);
    call_ok(&[&addr.to_string(), "add", "-2", "-3.5"], "-5.5");
    call_ok(
        &[&addr.to_string(), "add", "-2", "-3", "--timeout", "2"],
        "-5",
    );
}

#[test]
fn add_follows_the_int_and_float_rules() {
    let (_server, addr) = serve(&[]);
    let a = addr.to_string();
    call_ok(&[&a, "add", "2", "3"], "5");
    call_ok(
        &[&a, "add", "4611686018427387904", "4611686018427387904"],
        "9223372036854775808",
    );
    call_ok(
        &[&a, "add", "18446744073709551615", "1"],
        "1.8446744073709552e19",
    );
    call_ok(
        &[&a, "add", "-9223372036854775808", "-1"],
        "-9.223372036854776e18",
    );
    call_ok(&[&a, "add", "1", "2.0"], "3.0");
    call_ok(&[&a, "add", "0.5", "0.25"], "0.75");
}

#[test]
fn count_counts_every_execution() {
    let (_server, addr) = serve(&[]);
    for i in 1..=3 {
        call_ok(&[&addr.to_string(), "count"], &i.to_string());
    }
}

#[test]
fn stun_returns_the_callers_address() {
    let (_server, addr) = serve(&[]);
    let o = call(&[&addr.to_string(), "stun"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let line = stdout(&o);
    assert!(line.starts_with(r#"["127.0.0.1", "#), "{line}");
    let port: u32 = line[r#"["127.0.0.1", "#.len()..line.len() - 1]
        .parse()
        .unwrap();
    assert!(port > 0 && port < 65536);
}

#[test]
fn sleep_answers_its_argument_and_does_not_block_other_calls() {
    let (_server, addr) = serve(&[]);
    // The sleep request goes first, by hand, so the server has it before the ping (the
    // server reads its socket in order); then a ping must be answered while it sleeps.
    let raw = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let id = [0x5a; 20];
    let mut request = vec![0x00];
    request.extend_from_slice(&id);
    // ["sleep", [4000]]
    request.extend_from_slice(&[
        0x92, 0xa5, b's', b'l', b'e', b'e', b'p', 0x91, 0xcd, 0x0f, 0xa0,
    ]);
    raw.send_to(&request, addr).unwrap();
    call_ok(&[&addr.to_string(), "ping"], r#""pong""#);
    raw.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    match raw.recv_from(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the sleep must still be running after the ping, got {other:?}"),
    }
    raw.set_nonblocking(false).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (n, _) = raw
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no sleep answer: {e} ({:?})", e.kind()));
    let mut answer = vec![0x01];
    answer.extend_from_slice(&id);
    answer.extend_from_slice(&[0xcd, 0x0f, 0xa0]); // 4000, as sent
    assert_eq!(&buf[..n], &answer[..]);
    // And through `rpcudp call`, the answer is the argument.
    call_ok(&[&addr.to_string(), "sleep", "10"], "10");
}

#[test]
fn an_unknown_method_exits_3_after_the_timeout() {
    let (_server, addr) = serve(&[]);
    let o = call(&[&addr.to_string(), "no_such_method", "--timeout", "0.3"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    assert!(stderr(&o).contains("no answer"), "{}", stderr(&o));
}

#[test]
fn retries_resend_and_still_end_with_exit_3_when_nobody_answers() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let o = call(&[&addr, "ping", "--timeout", "0.2", "--retries", "2"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut ids = Vec::new();
    let mut buf = [0u8; 512];
    for _ in 0..3 {
        let (n, _) = silent.recv_from(&mut buf).expect("a request per attempt");
        assert!(n > 21);
        ids.push(buf[1..21].to_vec());
    }
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "same message id on every attempt"
    );
}

#[test]
fn usage_errors_exit_2_and_name_the_bad_input() {
    for (args, bad) in [
        (vec!["nonsense", "ping"], "nonsense"),
        (vec!["127.0.0.1:99999", "ping"], "127.0.0.1:99999"),
        (vec!["127.0.0.1:9", "echo", "{oops"], "{oops"),
        (vec!["127.0.0.1:9", "echo", "[1,]"], "[1,]"),
        (
            vec!["127.0.0.1:9", "echo", "18446744073709551616"],
            "18446744073709551616",
        ),
        (vec!["127.0.0.1:9", "ping", "--timeout", "soon"], "soon"),
        (vec!["127.0.0.1:9", "ping", "--dialect", "xml"], "xml"),
        (vec!["127.0.0.1:9", "ping", "--bogus"], "--bogus"),
    ] {
        let o = call(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(bad),
            "{args:?}: stderr does not name {bad}: {}",
            stderr(&o)
        );
    }
    let o = Command::new(BIN)
        .args(["serve", "--bind", "not-an-addr"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not-an-addr"));
}

#[test]
fn a_request_over_the_size_limit_exits_1() {
    let (_server, addr) = serve(&[]);
    let big = format!("\"{}\"", "x".repeat(9000));
    let o = call(&[&addr.to_string(), "echo", &big]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("8192"), "{}", stderr(&o));
}

#[test]
fn ipv6_literals_work_for_serve_and_call() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIP ipv6_literals_work_for_serve_and_call: no IPv6 loopback");
        return;
    }
    let (_server, addr) = serve(&["--bind", "[::1]:0"]);
    assert!(addr.is_ipv6());
    call_ok(&[&addr.to_string(), "ping"], r#""pong""#);
    let o = call(&[&addr.to_string(), "stun"]);
    assert!(stdout(&o).starts_with(r#"["::1", "#), "{}", stdout(&o));
}

#[test]
fn host_names_are_resolved_for_serve_and_call() {
    let (_server, addr) = serve(&["--bind", "localhost:0"]);
    assert!(addr.ip().is_loopback());
    call_ok(
        &[&format!("localhost:{}", addr.port()), "ping"],
        r#""pong""#,
    );
}

#[test]
fn the_storj_dialect_is_served_and_called_and_dialects_do_not_mix() {
    let (_server, addr) = serve(&["--dialect", "storj"]);
    let a = addr.to_string();
    call_ok(&[&a, "ping", "--dialect", "storj"], r#""pong""#);
    let o = call(&[&a, "ping", "--timeout", "0.3"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "an rpcudp call to a storj server gets no answer"
    );
}

#[test]
fn serve_exits_0_on_sigterm_and_on_sigint() {
    for signal in ["-TERM", "-INT"] {
        let (mut server, addr) = serve(&[]);
        call_ok(&[&addr.to_string(), "ping"], r#""pong""#);
        Command::new("kill")
            .args([signal, &server.id().to_string()])
            .status()
            .unwrap();
        let status = server
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("serve did not exit on {signal}"));
        assert_eq!(status.code(), Some(0), "{signal}: {}", server.stderr());
    }
}

#[test]
fn the_server_keeps_answering_after_garbage_datagrams() {
    let (_server, addr) = serve(&[]);
    let raw = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for g in [
        &b""[..],
        b"\x00",
        &[0u8; 21],
        &[0xc1; 40],
        &[0x00; 30],
        &[0x01; 25],
    ] {
        raw.send_to(g, addr).unwrap();
    }
    call_ok(&[&addr.to_string(), "echo", "1"], "[1]");
}

#[test]
fn serve_on_a_port_in_use_exits_1_naming_the_address() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = Command::new(BIN)
        .args(["serve", "--bind", &addr])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&addr), "{}", stderr(&o));
}
