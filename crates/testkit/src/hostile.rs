//! Helpers for the hostile tests (issue 10, SECURITY.md): raw UDP sockets that craft RPC
//! datagrams with `rpcudp_proto`'s encoders, an honest client that times its calls, what
//! `/proc` says about the process under attack (peak memory, CPU time), and a DHT state
//! file written directly (to start a node that already holds many values).
//!
//! Owns only the test side of an attack; the limits under test live in `rpcudp_proto`.
//! Everything here is bounded in time (read timeouts on every receive).

use rmpv::Value;
use rpcudp_proto::wire::rpc::{
    decode_packet, encode_request, DecodeLimits, Dialect, MessageId, Packet,
};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A UDP socket on `ip` (any port), e.g. `127.0.2.1`: loopback binds anywhere in
/// 127.0.0.0/8, so attacker and honest client can sit on different /24s.
pub fn bind(ip: &str) -> UdpSocket {
    UdpSocket::bind(format!("{ip}:0")).unwrap_or_else(|e| panic!("bind {ip}: {e}"))
}

/// An rpcudp-dialect request datagram whose message id is `tag` repeated with `n` in
/// its first 8 bytes (distinct per `n`, recognisable per sender).
pub fn request(n: u64, tag: u8, method: &str, args: &[Value]) -> Vec<u8> {
    let mut id = [tag; 20];
    id[..8].copy_from_slice(&n.to_be_bytes());
    let mut out = Vec::new();
    encode_request(Dialect::Rpcudp, &MessageId(id), method, args, &mut out);
    out
}

/// The message id of a datagram built by [`request`] (its bytes 1..21).
pub fn message_id(datagram: &[u8]) -> MessageId {
    MessageId(datagram[1..21].try_into().expect("a request datagram"))
}

/// An honest caller: `calls` requests `method(args)`, one after another with `pause`
/// before each, from one socket on `ip`. Returns how many got an answer from `server`,
/// with the request's message id and a value `accept` takes, within `within` (other
/// datagrams, such as the server's own requests to this socket, are skipped).
pub fn honest_client(
    ip: &str,
    server: SocketAddr,
    calls: u32,
    pause: Duration,
    within: Duration,
    (method, args): (&str, &[Value]),
    accept: impl Fn(&Value) -> bool,
) -> u32 {
    let sock = bind(ip);
    let mut answered = 0;
    let mut buf = vec![0u8; 65_536];
    for n in 0..u64::from(calls) {
        std::thread::sleep(pause);
        let req = request(n, 0x11, method, args);
        let want = message_id(&req);
        sock.send_to(&req, server).unwrap();
        let sent = Instant::now();
        loop {
            let left = within.saturating_sub(sent.elapsed());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left)).unwrap();
            let Ok((len, from)) = sock.recv_from(&mut buf) else {
                break;
            };
            let ok = from == server
                && matches!(
                    decode_packet(Dialect::Rpcudp, &buf[..len], &DecodeLimits::default()),
                    Ok(Packet::Response { id, value }) if id == want && accept(&value)
                );
            if ok {
                answered += 1;
                break;
            }
        }
    }
    answered
}

/// Peak resident memory of process `pid` in KiB (`VmHWM` in `/proc/PID/status`).
pub fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM line")
}

/// CPU time process `pid` used so far, user and system (`utime + stime` in
/// `/proc/PID/stat`, in clock ticks of `getconf CLK_TCK`, 100 if that is unknown).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // The command name (field 2) is in parentheses and may hold spaces: count from the
    // last ')'. Fields 14 and 15 (utime, stime) are then the 12th and 13th.
    let rest = &stat[stat.rfind(')').expect("stat has (comm)") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&hz| hz > 0)
        .unwrap_or(100);
    Duration::from_millis(ticks * 1000 / hz)
}

/// The copies table of `rpcudp dht run --state`: key (20 bytes) → MessagePack
/// `[expires_at_unix_ms, value]` (the layout `rpcudp::kad`'s persistence keeps).
const COPIES: redb::TableDefinition<'_, &[u8], &[u8]> = redb::TableDefinition::new("copies");

/// Writes `copies` (key, value) into the state folder `dir` (created if missing) as
/// copies held by the node, expiring `ttl` from now, in one transaction. Written
/// directly, so that a test can start a node holding 100,000 values, or values from
/// before a limit existed, without storing them through the wire.
pub fn write_dht_copies(
    dir: &Path,
    copies: impl IntoIterator<Item = ([u8; 20], Value)>,
    ttl: Duration,
) {
    std::fs::create_dir_all(dir).unwrap();
    let db = redb::Database::create(dir.join("dht.redb")).unwrap();
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + ttl.as_millis() as u64;
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(COPIES).unwrap();
        let mut row = Vec::new();
        for (key, value) in copies {
            row.clear();
            let copy = Value::Array(vec![Value::from(expires), value]);
            rmpv::encode::write_value(&mut row, &copy).unwrap();
            table.insert(&key[..], row.as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
}
