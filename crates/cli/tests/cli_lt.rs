//! `rpcudp lt echo` exactly as docs/cli.md says.

use rpcudp_testkit::Child;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn echo(args: &[&str]) -> (Child, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rpcudp"));
    cmd.args(["lt", "echo", "--bind", "127.0.0.1:0"]).args(args);
    let mut child = Child::spawn("rpcudp lt echo", cmd);
    let addr = child.wait_listening(WAIT);
    let first = child.lines_so_far()[0].clone();
    assert_eq!(
        first,
        format!("listening on {addr}"),
        "the first stdout line"
    );
    (child, addr)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A frame with a 2-byte length and a 1-byte type (the defaults).
fn frame_hb(t: u8, body: &[u8]) -> Vec<u8> {
    let len = (3 + body.len()) as u16;
    let mut f = len.to_be_bytes().to_vec();
    f.push(t);
    f.extend_from_slice(body);
    f
}

fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// True when the server closed the connection (EOF or reset) rather than sending.
fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    }
}

#[test]
fn lt_echo_writes_every_frame_back_unchanged_on_each_connection() {
    let (mut child, addr) = echo(&[]);
    let mut a = connect(addr);
    let mut b = connect(addr);
    let mut stream_a = Vec::new();
    for i in 0..50u8 {
        stream_a.extend(frame_hb(i, &vec![i; usize::from(i) * 3]));
    }
    stream_a.extend(frame_hb(0, b"")); // an empty body
                                       // Written in odd-sized pieces: the split must not matter.
    for piece in stream_a.chunks(7) {
        a.write_all(piece).unwrap();
    }
    let fb = frame_hb(2, b"hello world!");
    b.write_all(&fb).unwrap();
    assert_eq!(read_exactly(&mut b, fb.len()), fb);
    assert_eq!(read_exactly(&mut a, stream_a.len()), stream_a);
    assert_eq!(child.terminate(WAIT).and_then(|s| s.code()), Some(0));
}

#[test]
fn lt_echo_keeps_every_frame_of_a_large_pipelined_burst() {
    let (_child, addr) = echo(&[]);
    let mut s = connect(addr);
    let mut stream = Vec::new();
    for i in 0..20_000u32 {
        stream.extend(frame_hb((i % 251) as u8, &i.to_be_bytes().repeat(25)));
    }
    let mut writer = s.try_clone().unwrap();
    let to_write = stream.clone();
    // Write everything without reading meanwhile (on another thread): echoes must wait
    // for the reader, not be dropped.
    let w = std::thread::spawn(move || writer.write_all(&to_write).unwrap());
    let got = read_exactly(&mut s, stream.len());
    w.join().unwrap();
    assert!(got == stream, "the echoed stream differs");
}

#[test]
fn lt_echo_bad_frame_closes_only_that_connection() {
    let (_child, addr) = echo(&[]);
    let mut good = connect(addr);
    let mut short = connect(addr);
    let mut long = connect(addr);
    short.write_all(&[0x00, 0x02, 0x01]).unwrap(); // length 2 < 3-byte header
    assert!(closed_by_peer(&mut short));
    let mut limited_server = echo(&["--max-frame", "100"]);
    let mut limited = connect(limited_server.1);
    limited.write_all(&[0x00, 0x65, 0x01]).unwrap(); // 101 > 100, from the header alone
    assert!(closed_by_peer(&mut limited));
    let ok = frame_hb(1, &[0; 97]); // exactly 100
    let mut limited2 = connect(limited_server.1);
    limited2.write_all(&ok).unwrap();
    assert_eq!(read_exactly(&mut limited2, ok.len()), ok);
    let _ = limited_server.0.terminate(WAIT);
    // The first server still serves the other connections.
    let f = frame_hb(3, b"still here");
    good.write_all(&f).unwrap();
    assert_eq!(read_exactly(&mut good, f.len()), f);
    long.write_all(&f).unwrap();
    assert_eq!(read_exactly(&mut long, f.len()), f);
}

#[test]
fn lt_echo_honours_other_widths_and_their_default_max_frame() {
    // 4-byte length, 2-byte type.
    let (_c, addr) = echo(&["--len-width", "4", "--type-width", "2"]);
    let mut s = connect(addr);
    let mut f = 9u32.to_be_bytes().to_vec();
    f.extend([0x12, 0x34, b'a', b'b', b'c']);
    s.write_all(&f).unwrap();
    assert_eq!(read_exactly(&mut s, f.len()), f);
    // 16 MiB cap by default for a 4-byte length: a header of 16 MiB + 1 is refused.
    let mut big = connect(addr);
    let mut h = (16 * 1024 * 1024 + 1u32).to_be_bytes().to_vec();
    h.extend([0, 1]);
    big.write_all(&h).unwrap();
    assert!(closed_by_peer(&mut big));

    // 1-byte length: the max frame is 255, which works.
    let (_c1, addr1) = echo(&["--len-width", "1", "--type-width", "8"]);
    let mut s1 = connect(addr1);
    let mut f1 = vec![255u8];
    f1.extend(7u64.to_be_bytes());
    f1.extend(vec![0xEE; 255 - 9]);
    s1.write_all(&f1).unwrap();
    assert_eq!(read_exactly(&mut s1, f1.len()), f1);
}

#[test]
fn lt_echo_udp_echoes_each_datagram_to_its_sender_and_drops_bad_ones() {
    let (mut child, addr) = echo(&["--udp"]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.send_to(&[0x00, 0x09, 0x01, b'x'], addr).unwrap(); // length 9, size 4: dropped
    sock.send_to(&[0x00], addr).unwrap(); // shorter than a header: dropped
    let good = frame_hb(5, b"ping");
    sock.send_to(&good, addr).unwrap();
    let mut buf = [0u8; 1024];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&good[..], addr));
    assert_eq!(child.terminate(WAIT).and_then(|s| s.code()), Some(0));
}

#[test]
fn lt_echo_exits_0_on_sigint() {
    let (mut child, _addr) = echo(&[]);
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait_exit(WAIT).and_then(|s| s.code()), Some(0));
}

#[test]
fn lt_echo_usage_errors_exit_2_and_name_the_bad_value() {
    for (args, needle) in [
        (&["--len-width", "3"][..], "'3'"),
        (&["--type-width", "16"][..], "'16'"),
        (&["--max-frame", "70000"][..], "70000"),
        (&["--max-frame", "2"][..], "--max-frame 2"),
        (&["--bind", "nonsense"][..], "nonsense"),
        (&["--frobnicate"][..], "frobnicate"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_rpcudp"))
            .args(["lt", "echo"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(needle),
            "{args:?}: stderr {err:?} should name {needle}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}

#[test]
fn lt_echo_binds_ipv6_literals_and_host_names_over_tcp_and_udp() {
    for (bind, udp) in [
        ("[::1]:0", false),
        ("[::1]:0", true),
        ("localhost:0", false),
        ("localhost:0", true),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rpcudp"));
        cmd.args(["lt", "echo", "--bind", bind]);
        if udp {
            cmd.arg("--udp");
        }
        let mut child = Child::spawn("rpcudp lt echo", cmd);
        let addr = child.wait_listening(WAIT);
        assert!(
            addr.ip().is_loopback() && addr.port() != 0,
            "{bind}: {addr}"
        );
        if bind.starts_with('[') {
            assert_eq!(
                child.lines_so_far()[0],
                format!("listening on [::1]:{}", addr.port())
            );
        }
        let f = frame_hb(4, bind.as_bytes());
        if udp {
            let any: SocketAddr = if addr.is_ipv6() {
                "[::1]:0".parse().unwrap()
            } else {
                "127.0.0.1:0".parse().unwrap()
            };
            let sock = UdpSocket::bind(any).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            sock.send_to(&f, addr).unwrap();
            let mut buf = [0u8; 256];
            let (n, from) = sock.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&f[..], addr), "{bind} --udp");
        } else {
            let mut s = connect(addr);
            s.write_all(&f).unwrap();
            assert_eq!(read_exactly(&mut s, f.len()), f, "{bind}");
        }
        assert_eq!(
            child.terminate(WAIT).and_then(|s| s.code()),
            Some(0),
            "{bind}"
        );
    }
}

#[test]
fn lt_echo_udp_drops_a_datagram_over_max_frame_and_echoes_one_at_it() {
    let (_child, addr) = echo(&["--udp", "--max-frame", "10"]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.send_to(&frame_hb(1, &[0xAB; 8]), addr).unwrap(); // 11 > 10: dropped
    let at_max = frame_hb(2, &[0xCD; 7]); // exactly 10
    sock.send_to(&at_max, addr).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &at_max[..], "the over-max datagram got no echo");
}

#[test]
fn lt_echo_answers_random_bytes_with_a_prefix_of_them_and_keeps_serving() {
    let (mut child, addr) = echo(&["--len-width", "1"]);
    // A fixed xorshift stream: reproducible garbage without a dependency.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..40 {
        let len = (next() % 300) as usize;
        let mut sent: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 0 {
            // Half the rounds start with a good frame, so some bytes do come back.
            let mut good = vec![5u8, 1, 0xAA, 0xBB, 0xCC];
            good.append(&mut sent);
            sent = good;
        }
        let mut s = connect(addr);
        s.write_all(&sent).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = Vec::new();
        let mut reset = false;
        let mut buf = [0u8; 512];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                // Closing with bytes still unread sends a reset, which may discard the
                // echo in flight: then only the prefix rule below can be checked.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    reset = true;
                    break;
                }
                Err(e) => panic!("round {round}: the server neither echoed nor closed: {e}"),
            }
        }
        // Whole frames come back unchanged up to the first bad header or the end.
        assert!(
            sent.starts_with(&got),
            "round {round}: {got:?} is not a prefix of {sent:?}"
        );
        if round % 2 == 0 && !reset {
            assert!(
                got.len() >= 5,
                "round {round}: the good first frame was not echoed"
            );
        }
    }
    let f = vec![4u8, 9, b'o', b'k'];
    let mut s = connect(addr);
    s.write_all(&f).unwrap();
    assert_eq!(read_exactly(&mut s, f.len()), f);
    assert_eq!(child.terminate(WAIT).and_then(|s| s.code()), Some(0));
}
