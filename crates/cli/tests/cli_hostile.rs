//! `rpcudp serve` under attack, over loopback, as an attacker would try it (issue 10's
//! `serve` row): 1,100 `sleep(3600000)` from one socket, and a flood from many ports and
//! addresses of one /24. Attacker and honest client sit on different /24s of 127.0.0.0/8
//! and the server runs with `--strict-local`, so the per-source limits apply to loopback.
//!
//! Each test asserts what the honest client sees (≥ 95% of its calls answered within
//! 250 ms), what the attacker gets (bounded by the limits), and the server's peak memory
//! (VmHWM from /proc). The figures are printed (`--nocapture`) for SECURITY.md.

use rmpv::Value;
use rpcudp_testkit::hostile::{bind, request, vm_hwm_kib};
use rpcudp_testkit::Child;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rpcudp");
const START: Duration = Duration::from_secs(20);
/// What an honest caller may wait per call.
const WITHIN: Duration = Duration::from_millis(250);
const HONEST_CALLS: u32 = 200;

fn serve(bind: &str, strict: bool) -> (Child, SocketAddr) {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--bind", bind]);
    if strict {
        cmd.arg("--strict-local");
    }
    let mut child = Child::spawn("rpcudp serve", cmd);
    let addr = child.wait_listening(START);
    (child, addr)
}

/// `HONEST_CALLS` pings, one after another with `pause` between them, from a socket on
/// `ip`: how many were answered `pong` within `WITHIN`.
fn honest_client(ip: &str, server: SocketAddr, pause: Duration) -> u32 {
    rpcudp_testkit::hostile::honest_client(
        ip,
        server,
        HONEST_CALLS,
        pause,
        WITHIN,
        ("ping", &[]),
        |v| *v == Value::from("pong"),
    )
}

/// Whether a ping from a fresh socket on `ip` is answered within a second.
fn answered_once(ip: &str, server: SocketAddr) -> bool {
    let sock = bind(ip);
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    sock.send_to(&request(1, 0x22, "ping", &[]), server)
        .unwrap();
    let mut buf = [0u8; 2048];
    sock.recv_from(&mut buf).is_ok()
}

/// 1,100 `sleep(3600000)` from one socket on 127.0.2.1.
fn hold_slots(server: SocketAddr) -> UdpSocket {
    let attacker = bind("127.0.2.1");
    for n in 0..1100u64 {
        let req = request(n, 0x33, "sleep", &[Value::from(3_600_000)]);
        attacker.send_to(&req, server).unwrap();
        if n % 100 == 99 {
            // Let the server read them rather than the socket buffer overflow (the point
            // is the slots, not the buffer).
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    attacker
}

#[test]
fn sleeps_from_one_socket_leave_another_24_answered_with_strict_local() {
    let (server, addr) = serve("127.0.1.1:0", true);
    let before = vm_hwm_kib(server.id());
    let _attacker = hold_slots(addr);
    let answered = honest_client("127.0.3.1", addr, Duration::ZERO);
    let after = vm_hwm_kib(server.id());
    eprintln!(
        "serve --strict-local, 1100 sleeps from one socket: honest {answered}/{HONEST_CALLS} \
         within {WITHIN:?}; VmHWM {before} KiB -> {after} KiB"
    );
    assert!(
        answered * 100 >= HONEST_CALLS * 95,
        "only {answered}/{HONEST_CALLS} answered"
    );
    // Nothing is locked (issue 16): under contention the sleeps of the subnet holding
    // the most slots go first, so even a ping from the attacker's /24 is served.
    assert!(answered_once("127.0.2.9", addr));
    assert!(after < 64 * 1024, "VmHWM {after} KiB");
}

#[test]
fn without_strict_local_loopback_attackers_no_longer_take_every_slot() {
    // Issue 16: slots are shared under contention on loopback too (the exemption is
    // gone), so 1,100 sleeps from one loopback socket leave another /24 answered.
    let (_server, addr) = serve("127.0.1.1:0", false);
    let _attacker = hold_slots(addr);
    assert!(answered_once("127.0.3.1", addr));
}

#[test]
fn a_flood_from_many_ports_of_one_24_below_the_load_threshold_is_served_and_another_24_is_answered()
{
    let (server, addr) = serve("127.0.1.1:0", true);
    let before = vm_hwm_kib(server.id());
    // 32 sockets on 32 addresses of 127.0.2.0/24, about 19,000 pings a second in all
    // (19 × the per-subnet rate) for 3 s, while the honest client runs.
    let flood = {
        std::thread::spawn(move || {
            let socks: Vec<UdpSocket> = (1..=32).map(|i| bind(&format!("127.0.2.{i}"))).collect();
            for s in &socks {
                s.set_nonblocking(true).unwrap();
            }
            let (mut sent, mut answers) = (0u64, 0u64);
            let mut buf = [0u8; 2048];
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(3) {
                for (i, s) in socks.iter().enumerate() {
                    for _ in 0..6 {
                        let _ = s.send_to(&request(sent, i as u8, "ping", &[]), addr);
                        sent += 1;
                    }
                    while s.recv_from(&mut buf).is_ok() {
                        answers += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(200));
            for s in &socks {
                while s.recv_from(&mut buf).is_ok() {
                    answers += 1;
                }
            }
            (sent, answers, start.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    // 200 calls over about 2.5 s, inside the flood.
    let answered = honest_client("127.0.3.1", addr, Duration::from_millis(12));
    let (sent, answers, elapsed) = flood.join().unwrap();
    let after = vm_hwm_kib(server.id());
    eprintln!(
        "serve --strict-local, flood from 32 addresses of one /24: {sent} pings in {elapsed:?}, \
         {answers} answered; honest {answered}/{HONEST_CALLS} within {WITHIN:?}; \
         VmHWM {before} KiB -> {after} KiB"
    );
    assert!(
        answered * 100 >= HONEST_CALLS * 95,
        "only {answered}/{HONEST_CALLS} answered"
    );
    // The subnet's bucket (2000 at once, then 1000 a second) refuses only while the
    // server is loaded (over 50,000 requests a second, issue 16): a flood it can
    // answer is answered, beyond that bucket.
    let bucket = 2000.0 + 1000.0 * elapsed.as_secs_f64() * 1.1;
    assert!(
        sent as f64 > 2.0 * bucket,
        "the flood was too weak to test anything"
    );
    assert!(
        answers as f64 > bucket,
        "{answers} answers to the flood: the rate limit bound without load"
    );
    assert!(after < 64 * 1024, "VmHWM {after} KiB");
}

#[test]
fn no_reference_method_answers_more_than_three_times_what_it_was_sent() {
    let (_server, addr) = serve("127.0.1.1:0", true);
    let sock = bind("127.0.4.1");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let calls: Vec<(&str, Vec<Value>)> = vec![
        ("ping", vec![]),
        ("stun", vec![]),
        ("count", vec![]),
        ("add", vec![Value::from(1), Value::from(2)]),
        ("echo", vec![Value::Binary(vec![7; 4000])]),
        ("sleep", vec![Value::from(1)]),
    ];
    let (mut sent, mut received) = (0usize, 0usize);
    let mut buf = vec![0u8; 65_536];
    for (n, (method, args)) in calls.iter().enumerate() {
        let req = request(n as u64, 0x44, method, args);
        sent += req.len();
        sock.send_to(&req, addr).unwrap();
        if let Ok((len, _)) = sock.recv_from(&mut buf) {
            received += len;
        }
        assert!(
            received <= 3 * sent,
            "{method}: {received} B back for {sent} B"
        );
    }
    eprintln!("reference service: {sent} B sent, {received} B back");
    assert!(received > 0);
}
