//! `rpcudp serve` and `rpcudp call` against docs/cli.md: the reference service,
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
        &[&addr.to_string(), "add", "-2", "-3", "--timeout", "10"],
        "-5",
    );
    call_ok(
        &[
            &addr.to_string(),
            "echo",
            "-1",
            "-2.5",
            "-1e3",
            "-1E+2",
            "-0.0",
            r#"{"$float": "inf"}"#,
        ],
        r#"[-1, -2.5, -1000.0, -100.0, -0.0, {"$float": "inf"}]"#,
    );
}

/// `kind | id | body` in the rpcudp dialect.
fn datagram(kind: u8, id: u8, body: &[u8]) -> Vec<u8> {
    [&[kind][..], &[id; 20], body].concat()
}

/// Sends one raw datagram to `to` and returns the first datagram back.
fn raw_exchange(raw: &std::net::UdpSocket, to: SocketAddr, d: &[u8]) -> Vec<u8> {
    raw.send_to(d, to).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = raw.recv_from(&mut buf).expect("an answer");
    assert_eq!(from, to);
    buf[..n].to_vec()
}

#[test]
fn echo_answers_every_value_in_the_type_it_arrived_as() {
    let (_server, addr) = serve(&[]);
    let raw = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    raw.set_read_timeout(Some(START)).unwrap();
    // Each value as (bytes sent, bytes expected back): a float 32 stays float 32, str
    // stays str and bin stays bin even when short, ext keeps its signed type; integers
    // keep their value (the answer uses the smallest width, as the Python peers do).
    let values: [(&[u8], &[u8]); 8] = [
        (b"\xca\x3f\xc0\x00\x00", b"\xca\x3f\xc0\x00\x00"), // float 32 1.5
        (b"\xcb\x3f\xf8\0\0\0\0\0\0", b"\xcb\x3f\xf8\0\0\0\0\0\0"), // float 64 1.5
        (b"\xcf\0\0\0\0\0\0\0\x01", b"\x01"),               // 1 as uint 64
        (b"\xd0\xff", b"\xff"),                             // -1 as int 8
        (b"\xd9\x01a", b"\xa1a"),                           // "a" as str 8
        (b"\xc4\x02\x01\x02", b"\xc4\x02\x01\x02"),         // bin 8
        (b"\xd4\x05\xaa", b"\xd4\x05\xaa"),                 // fixext 1, type 5
        (b"\xd6\xff\0\0\0\x01", b"\xd6\xff\0\0\0\x01"),     // timestamp 32 (ext -1)
    ];
    let mut body = b"\x92\xa4echo\x98".to_vec();
    let mut want = vec![0x98];
    for (sent, back) in values {
        body.extend_from_slice(sent);
        want.extend_from_slice(back);
    }
    let answer = raw_exchange(&raw, addr, &datagram(0x00, 0x31, &body));
    assert_eq!(answer, datagram(0x01, 0x31, &want));
}

#[test]
fn a_repeated_request_is_answered_from_cache_and_count_runs_once() {
    let (_server, addr) = serve(&[]);
    let raw = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    raw.set_read_timeout(Some(START)).unwrap();
    let count = |id| datagram(0x00, id, b"\x92\xa5count\x90");
    // The same message id twice (a retry): the same answer, from one execution.
    assert_eq!(
        raw_exchange(&raw, addr, &count(1)),
        datagram(0x01, 1, b"\x01")
    );
    assert_eq!(
        raw_exchange(&raw, addr, &count(1)),
        datagram(0x01, 1, b"\x01")
    );
    // A new id is a new call.
    assert_eq!(
        raw_exchange(&raw, addr, &count(2)),
        datagram(0x01, 2, b"\x02")
    );
    call_ok(&[&addr.to_string(), "count"], "3");
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
    // Proven by order alone, never by a clock: the sleep request goes first and the ping
    // second, from one socket, so the server reads them in that order; the pong must
    // still come back before the sleep's answer. A server that blocked on the sleep
    // would answer the sleep first however loaded the machine is.
    let raw = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    raw.set_read_timeout(Some(START)).unwrap();
    let datagram = |kind: u8, id: u8, body: &[u8]| [&[kind][..], &[id; 20], body].concat();
    // ["sleep", [1500]] then ["ping", []]
    let sleep = datagram(0x00, 0x5a, b"\x92\xa5sleep\x91\xcd\x05\xdc");
    let ping = datagram(0x00, 0x5b, b"\x92\xa4ping\x90");
    raw.send_to(&sleep, addr).unwrap();
    raw.send_to(&ping, addr).unwrap();
    let mut answers = Vec::new();
    let mut buf = [0u8; 64];
    for _ in 0..2 {
        let (n, _) = raw
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("answers so far {answers:?}, then: {e}"));
        answers.push(buf[..n].to_vec());
    }
    assert_eq!(
        answers,
        [
            datagram(0x01, 0x5b, b"\xa4pong"),
            datagram(0x01, 0x5a, b"\xcd\x05\xdc"), // 1500, as sent
        ]
    );
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
        // An option's negative value is refused for what it is, quoted as typed.
        (vec!["127.0.0.1:9", "ping", "--timeout", "-1"], "'-1'"),
        (
            vec!["127.0.0.1:9", "ping", "--timeout", "-2.5e-3"],
            "'-2.5e-3'",
        ),
        (vec!["127.0.0.1:9", "ping", "--retries", "-1"], "'-1'"),
        (vec!["127.0.0.1:9", "echo", "-1", "--retries", "-1"], "'-1'"),
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
fn a_signal_sent_as_soon_as_the_listening_line_is_read_still_exits_0() {
    // "listening on" promises readiness, signal handling included: a harness may stop the
    // server the moment it reads the line. (Handlers installed after the line let about
    // half of these die of the signal instead.)
    for round in 0..12 {
        let signal = if round % 2 == 0 { "-TERM" } else { "-INT" };
        let (mut server, _addr) = serve(&[]);
        Command::new("kill")
            .args([signal, &server.id().to_string()])
            .status()
            .unwrap();
        let status = server
            .wait_exit(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("serve did not exit on {signal}"));
        assert_eq!(
            status.code(),
            Some(0),
            "round {round}, {signal}: {status:?} {}",
            server.stderr()
        );
    }
}

/// Hostile datagram bodies behind a valid request header: none may be answered.
fn hostile_bodies() -> Vec<Vec<u8>> {
    let echo_of = |arg: &[u8]| [&b"\x92\xa4echo\x91"[..], arg].concat();
    vec![
        [&b"\x92\xa4echo"[..], &[0x91; 5000], b"\x01"].concat(), // 5000 levels deep
        b"\x92\xa4echo\xdd\xff\xff\xff\xff".to_vec(),            // array of 2^32-1
        echo_of(b"\xdb\xff\xff\xff\xff"),                        // str of 2^32-1 bytes
        echo_of(b"\xc6\xff\xff\xff\xff"),                        // bin of 2^32-1 bytes
        echo_of(b"\xdf\xff\xff\xff\xff"),                        // map of 2^32-1 pairs
        echo_of(b"\xc9\xff\xff\xff\xff\x01"),                    // ext of 2^32-1 bytes
        b"\x92\xa2\xff\xfe\x90".to_vec(),                        // method not UTF-8
        echo_of(b"\xa2\xc3\x28"),                                // argument not UTF-8
        b"\x92\x01\x90".to_vec(),                                // method not a str
        b"\x92\xa4echo\x01".to_vec(),                            // args not an array
        b"\x93\xa4echo\x90\x01".to_vec(),                        // three elements
        b"\x91\xa4ping".to_vec(),                                // one element
        b"\x81\xa4ping\x90".to_vec(),                            // a map, not an array
        b"\xc0".to_vec(),                                        // nil
        b"\xc1".to_vec(),                                        // reserved marker
        b"\x92\xa4ec".to_vec(),                                  // truncated
        echo_of(b"\x82\x01\x01\x01\x02"), // duplicate keys: the answer is unsendable
        echo_of(b"\x81\x80\x01"),         // a map as a key: likewise
        echo_of(b"\x81\x91\x80\x01"),     // an array holding a map as a key: likewise
        b"\x92\xa4ping\x91\x01".to_vec(), // wrong arguments
        b"\x92\xa7no_such\x90".to_vec(),  // unknown method
    ]
}

#[test]
fn the_server_answers_no_hostile_datagram_and_keeps_answering_in_both_dialects() {
    for (dialect, request, response) in [("rpcudp", 0u8, 1u8), ("storj", 2, 3)] {
        let (_server, addr) = serve(&["--dialect", dialect]);
        let raw = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        raw.set_read_timeout(Some(START)).unwrap();
        let ping = b"\x92\xa4ping\x90";
        let with = |kind: u8, id: u8, body: &[u8]| [&[kind][..], &[id; 20], body].concat();
        let mut garbage: Vec<Vec<u8>> = (0..22).map(|n| vec![request; n]).collect(); // short
        for (i, body) in hostile_bodies().into_iter().enumerate() {
            garbage.push(with(request, i as u8, &body));
        }
        // The other dialect's kinds, a response nobody asked for, unknown kinds.
        for kind in [request ^ 2, response ^ 2, response, 4, 0xff] {
            garbage.push(with(kind, 0x77, ping));
        }
        for g in &garbage {
            raw.send_to(g, addr).unwrap();
        }
        // Datagrams from one socket over loopback arrive in order and the server reads
        // them in order, so any answer to the garbage would come back before the pong.
        for round in [0xa0u8, 0xa1] {
            raw.send_to(&with(request, round, ping), addr).unwrap();
            let mut buf = [0u8; 2048];
            let (n, from) = raw.recv_from(&mut buf).expect("the server still answers");
            assert_eq!(from, addr);
            assert_eq!(
                &buf[..n],
                &with(response, round, b"\xa4pong")[..],
                "{dialect}: the first datagram back must be the pong"
            );
        }
    }
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

#[test]
fn logs_go_to_stderr_as_plain_text_when_it_is_not_a_terminal() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let o = Command::new(BIN)
        .args(["-v", "call", &addr, "ping", "--timeout", "0.2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).is_empty(), "results only on stdout");
    let err = stderr(&o);
    assert!(err.contains("calling ping"), "-v logs at info: {err}");
    assert!(
        !err.contains('\u{1b}'),
        "no colour codes in a pipe: {err:?}"
    );
}

#[test]
fn serve_defaults_to_127_0_0_1_port_1234_and_the_rpcudp_dialect() {
    // The fixed default port is only used inside a private network namespace.
    let Some(ns) = rpcudp_testkit::require_netns("serve_defaults", "srvdef") else {
        return;
    };
    let mut cmd = ns.command(BIN);
    cmd.arg("serve");
    let mut server = Child::spawn("rpcudp serve (defaults)", cmd);
    assert_eq!(
        server.wait_listening(START),
        "127.0.0.1:1234".parse::<SocketAddr>().unwrap()
    );
    let in_ns = |args: &[&str]| ns.command(BIN).arg("call").args(args).output().unwrap();
    let o = in_ns(&["127.0.0.1:1234", "ping"]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), r#""pong""#),
        "{}",
        stderr(&o)
    );
    // The server speaks rpcudp: a storj caller gets no answer.
    let o = in_ns(&[
        "127.0.0.1:1234",
        "ping",
        "--dialect",
        "storj",
        "--timeout",
        "0.3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(
        server
            .terminate(Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
}

#[test]
fn call_defaults_to_one_attempt_of_five_seconds() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = std::time::Instant::now();
    let o = call(&[&addr, "ping"]);
    // A lower bound only: a loaded machine can make it longer, never shorter.
    let waited = started.elapsed();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(waited >= Duration::from_millis(4900), "{waited:?}");
    assert!(stderr(&o).contains("within 5.000 s"), "{}", stderr(&o));
    // Exactly one request (no retries by default), in the rpcudp dialect (kind 0).
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = silent.recv_from(&mut buf).expect("one request arrived");
    assert!(n > 21 && buf[0] == 0x00, "{:?}", &buf[..n]);
    assert_eq!(&buf[21..n], b"\x92\xa4ping\x90");
    assert!(silent.recv_from(&mut buf).is_err(), "a second datagram");
}

#[test]
fn an_unwritable_stdout_is_a_failure_exit_1_not_a_panic() {
    let Ok(full) = std::fs::File::create("/dev/full") else {
        eprintln!("SKIP an_unwritable_stdout_is_a_failure_exit_1_not_a_panic: no /dev/full");
        return;
    };
    let (_server, addr) = serve(&[]);
    let o = Command::new(BIN)
        .args(["call", &addr.to_string(), "ping"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot write the result"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn an_answer_from_another_address_is_refused_and_the_no_answer_message_says_so() {
    // A fake server that answers from a second socket, as a server bound to a wildcard
    // address answers from another of its addresses than the one called.
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    server.set_read_timeout(Some(START)).unwrap();
    let addr = server.local_addr().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["call", &addr.to_string(), "ping", "--timeout", "3"]);
    let mut caller = Child::spawn("rpcudp call", cmd);
    let mut buf = [0u8; 512];
    let (n, from) = server.recv_from(&mut buf).expect("the request");
    assert!(n > 21);
    let answer = [&[0x01][..], &buf[1..21], b"\xa4pong"].concat();
    other.send_to(&answer, from).unwrap();
    let status = caller.wait_exit(START).expect("call ends");
    assert_eq!(status.code(), Some(3), "{}", caller.stderr());
    assert!(caller.all_lines(START).is_empty(), "no result on stdout");
    // stderr is read on a thread: wait, bounded, for its last line to be handed over.
    let want = "1 answer(s) came from another address";
    for _ in 0..400 {
        if caller.stderr().contains(want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = caller.stderr();
    assert!(err.contains(want), "{err}");
    assert!(err.contains("no answer from"), "{err}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_wildcard_bound_server_answers_from_the_called_address() {
    let (_server, addr) = serve(&["--bind", "0.0.0.0:0"]);
    assert!(addr.ip().is_unspecified(), "{addr}");
    // `call` accepts answers only from the address it called: 127.0.0.2, which the
    // kernel would not pick on its own to answer a caller on 127.0.0.1.
    for ip in ["127.0.0.2", "127.0.0.1"] {
        let to = format!("{ip}:{}", addr.port());
        call_ok(&[&to, "ping", "--timeout", "3"], r#""pong""#);
    }
}

/// An unknown-method request datagram with message id `i`.
fn unknown_method_request(i: u32) -> Vec<u8> {
    let mut d = vec![0x00];
    d.extend_from_slice(&i.to_be_bytes());
    d.extend_from_slice(&[0; 16]);
    d.extend_from_slice(b"\x92\xaeno_such_method\x90");
    d
}

#[test]
fn a_flood_of_unknown_methods_logs_few_warn_lines_naming_method_and_peer() {
    let (mut server, addr) = serve(&[]);
    let attacker = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let started = std::time::Instant::now();
    for i in 0..3_000u32 {
        attacker.send_to(&unknown_method_request(i), addr).unwrap();
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(2)); // let the server read
        }
    }
    // An honest call still answered, right after the flood.
    call_ok(&[&addr.to_string(), "ping"], r#""pong""#);
    let secs = started.elapsed().as_secs_f64();
    let status = server.terminate(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    let err = server.stderr();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("unknown method"))
        .collect();
    assert!(!lines.is_empty(), "no warn line at all: {err}");
    assert!(
        lines.len() <= 10 * (secs.ceil() as usize + 1),
        "{} warn lines in {secs:.2} s",
        lines.len()
    );
    for l in &lines {
        assert!(l.contains("WARN"), "{l}");
        assert!(l.contains(r#"method="no_such_method""#), "{l}");
        assert!(
            l.contains(&format!("peer={}", attacker.local_addr().unwrap())),
            "{l}"
        );
    }
    eprintln!(
        "3000 unknown-method requests in {secs:.2} s: {} warn lines on stderr",
        lines.len()
    );
}
