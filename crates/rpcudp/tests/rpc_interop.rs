//! Interop with the real Python peers from PyPI, both directions, both dialects:
//! Python `rpcudp` 5.0.1 (asyncio) and `storjrpcudp` 2.5 (Twisted), driven through the
//! helper scripts in `py/`.
//!
//! A corpus covering every MessagePack type and every int/str/bin/array/map/ext length
//! boundary that fits a request body is echoed through the peer, and the answers are
//! compared exactly: same variant (so `bin` stays `bin` and `str` stays `str`), same
//! value, float bits included. What the peer itself changes is stated in [`through_python`].
//!
//! Beside the corpus, each direction checks what a caller sees of a failure (a typed
//! `Err` is an error reply the Python caller receives as the map
//! `{"__rpcudp_error__": message}`; `Err(NoAnswer)` and a Python handler that raises
//! are silence; a Python handler returning that map is `CallError::Remote` to us) and
//! the named encoding (our structs and enums arrive as dicts, a Python dict decodes
//! into our struct).
//!
//! Without the venv these tests print SKIP, unless `RPCUDP_REQUIRE_INTEROP=1` (set by
//! `scripts/test.sh`), which turns a missing peer into a failure.

use rmpv::Value;
use rpcudp::rpc::{CallError, Config, Dialect, Endpoint, HandlerError, NoAnswer};
use rpcudp_testkit::Child;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

/// The peer flavours: (dialect, server script, client script).
const RPCUDP: (Dialect, &str, &str) = (Dialect::Rpcudp, "rpcudp_server.py", "rpcudp_client.py");
const STORJ: (Dialect, &str, &str) = (Dialect::Storj, "storj_server.py", "storj_client.py");

fn python_command(test: &str, dialect: Dialect, script: &str) -> Option<Command> {
    rpcudp_testkit::python_script(test, dialect == Dialect::Storj, script)
}

fn int(v: i128) -> Value {
    if v < 0 {
        Value::from(v as i64)
    } else {
        Value::from(v as u64)
    }
}

fn s(text: &str) -> Value {
    Value::String(text.into())
}

/// Every MessagePack type, and each format boundary that a request body (8192 bytes,
/// storj 8171) can carry. The str16/str32, bin16/bin32, array16/array32 and
/// map16/map32 boundaries (65 536 elements or bytes) cannot travel in one datagram and
/// are covered by the codec's own tests.
fn corpus() -> Vec<Value> {
    let mut c = vec![Value::Nil, Value::Boolean(true), Value::Boolean(false)];
    // Integers: both sides of every width boundary, positive and negative.
    for v in [
        0i128,
        1,
        127,
        128,
        255,
        256,
        65_535,
        65_536,
        (1 << 32) - 1,
        1 << 32,
        i64::MAX as i128,
        1 << 63,
        u64::MAX as i128,
        -1,
        -31,
        -32,
        -33,
        -127,
        -128,
        -129,
        -32_767,
        -32_768,
        -32_769,
        -(1 << 31),
        -(1 << 31) - 1,
        i64::MIN as i128,
    ] {
        c.push(int(v));
    }
    // Floats, 64 and 32 bit, including the special values.
    for f in [
        0.0,
        -0.0,
        1.5,
        -2.25e-300,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ] {
        c.push(Value::F64(f));
    }
    for f in [1.5f32, -0.0, f32::MAX, f32::INFINITY] {
        c.push(Value::F32(f));
    }
    // str by byte length around fixstr/str8/str16, ASCII and multibyte.
    for n in [0usize, 1, 31, 32, 255, 256, 8000] {
        c.push(s(&"a".repeat(n)));
    }
    c.push(s(&format!("{}a", "é".repeat(15)))); // 31 bytes, 16 chars
    c.push(s(&"é".repeat(16))); // 32 bytes
    c.push(s("😀 snowman ☃ null \u{0} end"));
    // bin around bin8/bin16.
    for n in [0usize, 1, 255, 256, 8000] {
        c.push(Value::Binary((0..n).map(|i| i as u8).collect()));
    }
    // Arrays around fixarray/array16, nested.
    for n in [0usize, 1, 15, 16, 100] {
        c.push(Value::Array((0..n).map(|i| int(i as i128)).collect()));
    }
    c.push(Value::Array(vec![
        Value::Array(vec![Value::Array(vec![s("deep")])]),
        Value::Binary(vec![0xff]),
        s("x"),
    ]));
    // Deep nesting: the Python peers unpack about 330 levels (u-msgpack-python recurses),
    // so 300 here, 302 in the request body; our default decode limit is 512.
    let mut deep = s("bottom");
    for _ in 0..300 {
        deep = Value::Array(vec![deep]);
    }
    c.push(deep);
    // Array keys: the Python peer makes them tuples, and sends the tuples back as arrays.
    c.push(Value::Map(vec![
        (Value::Array(vec![int(1), s("a")]), s("tuple key")),
        (Value::Array(vec![]), s("empty tuple key")),
        (
            Value::Array(vec![Value::Array(vec![Value::Binary(vec![9])]), Value::Nil]),
            Value::Array(vec![int(2)]),
        ),
    ]));
    // Maps around fixmap/map16, str keys in a set order, and keys of every scalar type.
    for n in [0usize, 1, 15, 16] {
        c.push(Value::Map(
            (0..n)
                .map(|i| (s(&format!("k{:02}", n - i)), int(i as i128)))
                .collect(),
        ));
    }
    c.push(Value::Map(vec![
        (Value::Nil, s("nil key")),
        (Value::Boolean(false), s("false key")),
        (int(7), s("int key")),
        (int(-5), s("negative key")),
        (Value::F64(1.5), s("float key")),
        (Value::Binary(vec![1, 2]), s("bin key")),
        (
            s("str"),
            Value::Map(vec![(s("nested"), Value::Array(vec![]))]),
        ),
    ]));
    // Ext: every fixext size, ext8/ext16 lengths, signed types.
    for (kind, n) in [
        (1i8, 1usize),
        (2, 2),
        (3, 4),
        (4, 8),
        (5, 16),
        (0, 0),
        (6, 3),
        (127, 17),
        (-128, 255),
        (-2, 256),
        (42, 1000),
    ] {
        c.push(Value::Ext(kind, (0..n).map(|i| (i * 7) as u8).collect()));
    }
    // Timestamps (ext -1) in their canonical forms (the peer turns them into datetimes
    // and back): 32-bit, 64-bit with microsecond-exact nanoseconds, 96-bit.
    c.push(Value::Ext(-1, 1_700_000_000u32.to_be_bytes().to_vec()));
    let ts64 = (123_456_000u64 << 34) | 1_700_000_000;
    c.push(Value::Ext(-1, ts64.to_be_bytes().to_vec()));
    let mut ts96 = 5_000u32.to_be_bytes().to_vec();
    ts96.extend_from_slice(&(-86_400i64).to_be_bytes());
    c.push(Value::Ext(-1, ts96));
    c
}

/// What a value looks like after the Python peer decoded and re-encoded it: a float 32
/// becomes a Python float and is sent back as float 64. Everything else is unchanged.
fn through_python(v: &Value) -> Value {
    match v {
        Value::F32(f) => Value::F64(f64::from(*f)),
        Value::Array(items) => Value::Array(items.iter().map(through_python).collect()),
        Value::Map(pairs) => Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (through_python(k), through_python(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Exact equality: same variants all the way down, floats compared by bits (NaN, -0.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
        (Value::F32(x), Value::F32(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| same(ka, kb) && same(va, vb))
        }
        (a, b) => a == b,
    }
}

fn short(v: &Value) -> String {
    let t = format!("{v:?}");
    if t.len() > 120 {
        format!("{}…", &t[..120])
    } else {
        t
    }
}

fn assert_echoed(sent: &Value, got: &Value) {
    let want = Value::Array(vec![through_python(sent)]);
    assert!(
        same(&want, got),
        "echo changed the value:\n sent {}\n got  {}",
        short(sent),
        short(got)
    );
}

async fn our_server(dialect: Dialect) -> Endpoint {
    let node = Endpoint::bind_with("127.0.0.1:0".parse().unwrap(), Config::for_dialect(dialect))
        .await
        .unwrap();
    node.register("echo", |_from, args: Vec<Value>| async move {
        Ok::<_, HandlerError>(Value::Array(args))
    });
    node.register_typed("add", |_from, (a, b): (i64, i64)| async move { a + b });
    node.register_typed("stun", |from: SocketAddr, ()| async move {
        (from.ip().to_string(), from.port())
    });
    node.register_typed("half", |_from, (x,): (i64,)| async move {
        if x % 2 == 0 {
            Ok(x / 2)
        } else {
            Err(format!("{x} is odd"))
        }
    });
    node.register_typed("silent", |_from, ()| async move { Err::<i64, _>(NoAnswer) });
    // A struct in (from a Python dict) and a struct and an enum out (as dicts).
    node.register_typed("mirror", |_from, p: Point| async move {
        (Point { x: p.y, y: p.x }, Shape::Circle { r: 2 }, Shape::Dot)
    });
    node
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Point {
    x: i64,
    y: i64,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
enum Shape {
    Dot,
    Circle { r: u8 },
}

fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| (s(k), v.clone())).collect())
}

fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).unwrap();
    out
}

/// Python client -> our server: the corpus as echo calls, then a few other methods.
async fn python_client_against_our_server(test: &str, peer: (Dialect, &str, &str)) {
    let (dialect, _, client_script) = peer;
    let Some(mut cmd) = python_command(test, dialect, client_script) else {
        return;
    };
    let server = our_server(dialect).await;
    let corpus = corpus();
    let mut calls: Vec<Value> = corpus
        .iter()
        .map(|v| Value::Array(vec![s("echo"), Value::Array(vec![v.clone()])]))
        .collect();
    calls.push(Value::Array(vec![
        s("add"),
        Value::Array(vec![int(40), int(2)]),
    ]));
    calls.push(Value::Array(vec![s("stun"), Value::Array(vec![])]));
    calls.push(Value::Array(vec![
        s("no_such_method"),
        Value::Array(vec![]),
    ]));
    // Errors and named structs (see the assertions below).
    for (method, args) in [
        ("half", vec![int(3)]),
        ("half", vec![int(4)]),
        ("silent", vec![]),
        ("mirror", vec![map(&[("x", int(1)), ("y", int(2))])]),
    ] {
        calls.push(Value::Array(vec![s(method), Value::Array(args)]));
    }
    let dir = tempfile::tempdir().unwrap();
    let calls_file = dir.path().join("calls.msgpack");
    let results_file = dir.path().join("results.msgpack");
    std::fs::write(&calls_file, encode(&Value::Array(calls))).unwrap();
    cmd.arg(server.local_addr().to_string())
        .arg("calls")
        .arg(&calls_file)
        .arg(&results_file)
        // Per-call timeout: every call but the last (an unknown method) must be answered,
        // so it leaves room for a loaded machine's stalls; the last one costs it once.
        .arg("3");
    let mut child = Child::spawn(test, cmd);
    // Polls so the async server keeps running on this runtime meanwhile.
    let mut status = None;
    for _ in 0..600 {
        if let Some(s) = child.wait_exit(Duration::from_millis(1)) {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = status.unwrap_or_else(|| panic!("{test}: the Python client hung"));
    assert!(
        status.success(),
        "{test}: client failed: {}",
        child.stderr()
    );
    let bytes = std::fs::read(&results_file).unwrap();
    let results = rmpv::decode::read_value(&mut bytes.as_slice()).unwrap();
    let Value::Array(results) = results else {
        panic!("results are not an array")
    };
    assert_eq!(results.len(), corpus.len() + 7);
    for (sent, result) in corpus.iter().zip(&results) {
        let Value::Array(r) = result else {
            panic!("bad result {result:?}")
        };
        assert_eq!(r[0], Value::Boolean(true), "no answer for {}", short(sent));
        assert_echoed(sent, &r[1]);
    }
    let tail = &results[corpus.len()..];
    assert_eq!(tail[0], Value::Array(vec![Value::Boolean(true), int(42)]));
    let Value::Array(stun) = &tail[1] else {
        panic!()
    };
    let Value::Array(addr) = &stun[1] else {
        panic!("stun answered {:?}", stun[1])
    };
    assert_eq!(addr[0], s("127.0.0.1"));
    assert_eq!(
        tail[2],
        Value::Array(vec![Value::Boolean(false), Value::Nil]),
        "an unknown method gets no answer"
    );
    assert_eq!(server.stats().unknown_methods, 1);
    // A failing handler: the Python caller got an answer (True, not its timeout's
    // False), the map it can test for the key.
    let answered = |v: Value| Value::Array(vec![Value::Boolean(true), v]);
    assert_eq!(
        tail[3],
        answered(map(&[("__rpcudp_error__", s("3 is odd"))])),
        "an Err is an error reply"
    );
    assert_eq!(tail[4], answered(int(2)));
    assert_eq!(
        tail[5],
        Value::Array(vec![Value::Boolean(false), Value::Nil]),
        "Err(NoAnswer) is silence"
    );
    // The dict decoded into our struct; ours came back as dicts with field names.
    assert_eq!(
        tail[6],
        answered(Value::Array(vec![
            map(&[("x", int(2)), ("y", int(1))]),
            map(&[("Circle", map(&[("r", int(2))]))]),
            s("Dot"),
        ]))
    );
    eprintln!(
        "{test}: {} corpus values echoed by our server to the Python client",
        corpus.len()
    );
}

/// Our client -> Python server: the corpus as echo calls, then the other methods.
async fn our_client_against_python_server(test: &str, peer: (Dialect, &str, &str)) {
    let (dialect, server_script, _) = peer;
    let Some(mut cmd) = python_command(test, dialect, server_script) else {
        return;
    };
    cmd.arg("127.0.0.1:0");
    let mut server = Child::spawn(test, cmd);
    let to = server.wait_listening(Duration::from_secs(20));
    let client = Endpoint::bind_with("127.0.0.1:0".parse().unwrap(), Config::for_dialect(dialect))
        .await
        .unwrap();
    let corpus = corpus();
    for v in &corpus {
        let got = client
            .call(to, "echo", vec![v.clone()])
            .await
            .unwrap_or_else(|e| panic!("{test}: echo of {} failed: {e}", short(v)));
        assert_echoed(v, &got);
    }
    let sum: i64 = client.call_typed(to, "add", (40, 2)).await.unwrap();
    assert_eq!(sum, 42);
    let (ip, port): (String, u16) = client.call_typed(to, "stun", ()).await.unwrap();
    assert_eq!(
        (ip.as_str(), port),
        ("127.0.0.1", client.local_addr().port())
    );
    let hi: String = client
        .call_typed(to, "sayhi", ("Snake Plissken",))
        .await
        .unwrap();
    assert_eq!(
        hi,
        format!(
            "Hello Snake Plissken you live at 127.0.0.1:{}",
            client.local_addr().port()
        )
    );
    let mut quick = client.default_call_options();
    quick.attempt_timeout = Duration::from_millis(300);
    let err = client
        .call_with(to, "no_such_method", vec![], quick.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout(_)), "{err:?}");
    // A Python handler returning the error-reply map is a remote error to us; one that
    // raises gets no answer (rpcudp's behaviour), so a timeout.
    let err = client
        .call(to, "fail", vec![s("no disk")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::Remote { message } if message == "no disk"),
        "{err:?}"
    );
    let err = client
        .call_with(to, "raise", vec![], quick)
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout(_)), "{err:?}");
    // Our struct reaches Python as a dict with its field names; a Python dict decodes
    // into our struct.
    let (kind, keys): (String, Vec<String>) = client
        .call_typed(to, "describe", (Point { x: 1, y: 2 },))
        .await
        .unwrap();
    assert_eq!(
        (kind.as_str(), keys),
        ("dict", vec!["x".into(), "y".into()])
    );
    let (kind, _): (String, Option<Vec<String>>) = client
        .call_typed(to, "describe", (Shape::Circle { r: 1 },))
        .await
        .unwrap();
    assert_eq!(kind, "dict");
    let p: Point = client.call_typed(to, "point", (5, 6)).await.unwrap();
    assert_eq!(p, Point { x: 5, y: 6 });
    let echoed: (Shape,) = client
        .call_typed(to, "echo", (Shape::Circle { r: 7 },))
        .await
        .unwrap();
    assert_eq!(echoed.0, Shape::Circle { r: 7 });
    eprintln!(
        "{test}: {} corpus values echoed by the Python server to our client",
        corpus.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_rpcudp_client_gets_every_corpus_value_back_from_our_server() {
    python_client_against_our_server(
        "python_rpcudp_client_gets_every_corpus_value_back_from_our_server",
        RPCUDP,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_gets_every_corpus_value_back_from_the_python_rpcudp_server() {
    our_client_against_python_server(
        "our_client_gets_every_corpus_value_back_from_the_python_rpcudp_server",
        RPCUDP,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_storj_client_gets_every_corpus_value_back_from_our_server() {
    python_client_against_our_server(
        "python_storj_client_gets_every_corpus_value_back_from_our_server",
        STORJ,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_gets_every_corpus_value_back_from_the_python_storj_server() {
    our_client_against_python_server(
        "our_client_gets_every_corpus_value_back_from_the_python_storj_server",
        STORJ,
    )
    .await;
}

#[test]
fn the_corpus_covers_every_messagepack_type_and_format_boundary() {
    let corpus = corpus();
    let first_bytes: std::collections::BTreeSet<u8> = corpus.iter().map(|v| encode(v)[0]).collect();
    // One of each format family the corpus claims (markers of the MessagePack spec).
    for marker in [
        0xc0u8, 0xc2, 0xc3, 0xc4, 0xc5, 0xc7, 0xc8, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1,
        0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdc, 0xde, 0x00, 0x7f, 0x80, 0x90,
        0xa0, 0xe0, 0xff,
    ] {
        assert!(
            first_bytes.contains(&marker),
            "no corpus value starts with 0x{marker:02x}"
        );
    }
    // Every value fits one request in the smaller (storj) dialect.
    for v in &corpus {
        assert!(encode(v).len() + 10 <= 8171, "{} too large", short(v));
    }
}
