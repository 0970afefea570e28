//! `rpcudp dht keygen`, `dht put` and `dht get --signed|--immutable` as docs/cli.md
//! ("Records that cannot be forged") specifies them, on a loopback network of
//! `dht run` nodes.

use rpcudp_proto::kad::record;
use rpcudp_testkit::Child;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rpcudp");
const START: Duration = Duration::from_secs(20);
const TIMEOUT: &str = "1";

fn run_node(bootstrap: Option<SocketAddr>) -> (Child, SocketAddr) {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "dht",
        "run",
        "-v",
        "--bind",
        "127.0.0.1:0",
        "--timeout",
        TIMEOUT,
    ]);
    if let Some(b) = bootstrap {
        cmd.args(["--bootstrap", &b.to_string()]);
    }
    let mut child = Child::spawn("rpcudp dht run", cmd);
    let addr = child.wait_listening(START);
    child.wait_line(START, |l| l.starts_with("node id "));
    (child, addr)
}

/// Three nodes, the later two joined through the first, and known to it (it hands out
/// only contacts that answered it).
fn network() -> (Vec<Child>, SocketAddr) {
    let (first, addr) = run_node(None);
    let mut nodes = vec![first];
    for _ in 0..2 {
        nodes.push(run_node(Some(addr)).0);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !nodes[1..].iter().all(|n| n.stderr().contains("answered;"))
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    (nodes, addr)
}

struct Outcome {
    code: i32,
    stdout: Vec<String>,
    stderr: String,
}

fn run(args: &[&str]) -> Outcome {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    let mut child = Child::spawn("rpcudp dht (one-shot)", cmd);
    let status = child
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{args:?} did not finish; stderr: {}", child.stderr()));
    std::thread::sleep(Duration::from_millis(50));
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout: child.lines_so_far(),
        stderr: child.stderr(),
    }
}

/// `dht <verb> --bootstrap THROUGH --timeout 1 ARGS…`.
fn dht(verb: &str, through: SocketAddr, args: &[&str]) -> Outcome {
    let through = through.to_string();
    let mut all = vec!["dht", verb, "--bootstrap", &through, "--timeout", TIMEOUT];
    all.extend_from_slice(args);
    run(&all)
}

fn keygen(path: &Path) -> String {
    let out = run(&["dht", "keygen", "--out", path.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.len(), 1, "{:?}", out.stdout);
    out.stdout[0]
        .strip_prefix("public key ")
        .expect("public key <hex>")
        .to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn seed_of(path: &Path) -> [u8; 32] {
    let text = std::fs::read_to_string(path).unwrap();
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    seed
}

#[test]
fn keygen_writes_a_0600_seed_prints_its_public_key_and_refuses_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    let pk = keygen(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.len(), 65, "{text:?}");
    assert!(text.ends_with('\n'));
    assert!(text[..64]
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(pk, hex(&record::public_key(&seed_of(&path))));
    assert_eq!(pk.len(), 64);

    // An existing file: refused, untouched, unless --force.
    let again = run(&["dht", "keygen", "--out", path.to_str().unwrap()]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains(path.to_str().unwrap()),
        "{}",
        again.stderr
    );
    assert!(again.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    // --force over a file of another mode: replaced, and 0600.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let forced = run(&["dht", "keygen", "--out", path.to_str().unwrap(), "--force"]);
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_ne!(std::fs::read_to_string(&path).unwrap(), text);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        forced.stdout,
        vec![format!(
            "public key {}",
            hex(&record::public_key(&seed_of(&path)))
        )]
    );
}

#[test]
fn put_takes_the_next_seq_and_get_signed_prints_the_latest_value() {
    let (_nodes, addr) = network();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    let pk = keygen(&key);
    let key = key.to_str().unwrap();
    let target = record::signed_target(&record::public_key(&seed_of(Path::new(key))), b"");

    let first = dht("put", addr, &["--key-file", key, "first value"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.stdout.len(), 3, "{:?}", first.stdout);
    assert_eq!(first.stdout[0], format!("target {target}"));
    assert_eq!(first.stdout[1], "seq 1");
    assert_eq!(first.stdout[2], "stored on 3 nodes");
    let second = dht(
        "put",
        addr,
        &["--key-file", key, "--json", "{\"$bin\": \"cafe\"}"],
    );
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.stdout[1], "seq 2");

    let got = dht("get", addr, &["--signed", &pk]);
    assert_eq!(got.code, 0, "{}", got.stderr);
    assert_eq!(got.stdout, vec!["{\"$bin\": \"cafe\"}"]);

    // A seq not above the network's: exit 1, naming the seq found.
    let stale = dht("put", addr, &["--key-file", key, "--seq", "2", "stale"]);
    assert_eq!(stale.code, 1);
    assert!(stale.stderr.contains("seq 2"), "{}", stale.stderr);
    let jump = dht(
        "put",
        addr,
        &["--key-file", key, "--seq", "7", "--json", "7"],
    );
    assert_eq!(jump.code, 0, "{}", jump.stderr);
    assert_eq!(jump.stdout[1], "seq 7");
    assert_eq!(dht("get", addr, &["--signed", &pk]).stdout, vec!["7"]);
    let next = dht("put", addr, &["--key-file", key, "eight"]);
    assert_eq!(next.stdout[1], "seq 8");
    assert_eq!(dht("get", addr, &["--signed", &pk]).stdout, vec!["eight"]);
}

#[test]
fn a_salt_names_another_record_of_the_same_key() {
    let (_nodes, addr) = network();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    let pk = keygen(&key);
    let seed = seed_of(&key);
    let key = key.to_str().unwrap();
    let put = dht(
        "put",
        addr,
        &["--key-file", key, "--salt", "blog", "salted"],
    );
    assert_eq!(put.code, 0, "{}", put.stderr);
    let target = record::signed_target(&record::public_key(&seed), b"blog");
    assert_eq!(put.stdout[0], format!("target {target}"));
    assert_eq!(put.stdout[1], "seq 1");
    let got = dht("get", addr, &["--signed", &pk, "--salt", "blog"]);
    assert_eq!((got.code, got.stdout), (0, vec!["salted".to_string()]));
    // Without the salt (or another one): nothing verifies.
    let none = dht("get", addr, &["--signed", &pk]);
    assert_eq!(none.code, 1);
    assert!(none.stdout.is_empty());
    assert_eq!(dht("get", addr, &["--signed", &pk, "--salt", "x"]).code, 1);
    // Someone else's key finds nothing under this salt either.
    let other = hex(&record::public_key(&[1; 32]));
    assert_eq!(
        dht("get", addr, &["--signed", &other, "--salt", "blog"]).code,
        1
    );
}

#[test]
fn an_immutable_record_is_stored_under_the_sha1_of_its_bytes() {
    let (_nodes, addr) = network();
    let put = dht("put", addr, &["--immutable", "hello"]);
    assert_eq!(put.code, 0, "{}", put.stderr);
    assert_eq!(
        put.stdout,
        vec![
            "target aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d".to_string(),
            "stored on 3 nodes".to_string()
        ]
    );
    let got = dht(
        "get",
        addr,
        &["--immutable", "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"],
    );
    assert_eq!((got.code, got.stdout), (0, vec!["hello".to_string()]));

    let bin = dht(
        "put",
        addr,
        &["--immutable", "--json", "{\"$bin\": \"00ff\"}"],
    );
    assert_eq!(bin.code, 0, "{}", bin.stderr);
    let target = record::immutable_target(&[0x00, 0xff]).to_string();
    assert_eq!(bin.stdout[0], format!("target {target}"));
    let got = dht("get", addr, &["--immutable", &target]);
    assert_eq!(got.stdout, vec!["{\"$bin\": \"00ff\"}"]);

    let missing = record::immutable_target(b"never stored").to_string();
    let none = dht("get", addr, &["--immutable", &missing]);
    assert_eq!(none.code, 1);
    assert!(none.stdout.is_empty());
}

#[test]
fn bad_input_exits_2_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let garbage = garbage.to_str().unwrap();
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    // Nothing listens there: every case fails before any traffic.
    let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
    for (args, names) in [
        (vec!["--immutable", "--json", "42"], "42"),
        (vec!["--immutable", "--json", "[1]"], "[1]"),
        (vec!["--immutable", "--json", "{\"a\": 1}"], "{\"a\": 1}"),
        (vec!["--key-file", garbage, "v"], garbage),
        (vec!["--key-file", missing, "v"], missing),
        (vec!["--key-file", garbage, "--json", "[1, 2]"], "[1, 2]"),
        (vec!["v"], "--key-file"),
    ] {
        let out = dht("put", nowhere, &args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(names), "{args:?}: {}", out.stderr);
    }
    let long_salt = "s".repeat(65);
    let key = dir.path().join("key");
    keygen(&key);
    let out = dht(
        "put",
        nowhere,
        &[
            "--key-file",
            key.to_str().unwrap(),
            "--salt",
            &long_salt,
            "v",
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("salt"), "{}", out.stderr);
    for (args, names) in [
        (vec!["--signed", "abcd"], "abcd"),
        (vec!["--signed", &"g".repeat(64)], "gggg"),
        (vec!["--immutable", "12"], "12"),
        (vec!["--salt", "x", "k"], "--salt"),
        (vec!["--salt", "x"], "KEY"),
    ] {
        let out = dht("get", nowhere, &args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(names), "{args:?}: {}", out.stderr);
    }
}
