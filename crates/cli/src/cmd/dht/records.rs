//! `rpcudp dht keygen`, `dht put` and `dht get --signed|--immutable` (docs/cli.md,
//! "Records that cannot be forged"): Ed25519-signed and hash-named records, made and
//! verified by the core (`rpcudp_proto::kad::record`) through the tokio `Dht`.

use super::{join, print_value, read_value, GetArgs};
use crate::cmd::call::parse_secs;
use crate::common::{self, HostPort};
use rmpv::Value;
use rpcudp::kad::{record, NodeId, PutError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `rpcudp dht keygen`.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the secret seed (64 hex digits and a newline; mode 0600).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `rpcudp dht put`.
#[derive(clap::Args, Debug)]
pub struct PutArgs {
    /// The node to join through.
    #[arg(long)]
    pub bootstrap: HostPort,
    /// The secret seed to sign with (as `dht keygen` writes it).
    #[arg(long, required_unless_present = "immutable")]
    pub key_file: Option<PathBuf>,
    /// Salt: one key pair signs one record per salt (at most 64 bytes).
    #[arg(long, conflicts_with = "immutable")]
    pub salt: Option<String>,
    /// The sequence number (default: one more than the highest the network holds).
    #[arg(long, conflicts_with = "immutable")]
    pub seq: Option<u64>,
    /// Store VALUE as an immutable record under the sha1 of its bytes instead.
    #[arg(long, conflicts_with = "key_file")]
    pub immutable: bool,
    /// The value: a str, or with `--json` an int, float, bool, str or `{"$bin": "<hex>"}`
    /// (immutable: a str or `$bin`).
    #[arg(allow_negative_numbers = true)]
    pub value: String,
    /// Read VALUE as JSON.
    #[arg(long)]
    pub json: bool,
    /// Seconds each RPC waits for its answer.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    pub timeout: Duration,
}

/// The record options of `rpcudp dht get`.
#[derive(clap::Args, Debug)]
pub struct GetRecordArgs {
    /// Look up the signed record of this Ed25519 public key (64 hex digits) instead of
    /// KEY: the highest seq whose signature verifies.
    #[arg(long, value_name = "PUBKEY", value_parser = parse_public_key,
          conflicts_with_all = ["key", "immutable"])]
    pub signed: Option<[u8; 32]>,
    /// The signed record's salt.
    #[arg(long, conflicts_with_all = ["key", "immutable"])]
    pub salt: Option<String>,
    /// Look up the immutable record named TARGET (40 hex digits) instead of KEY.
    #[arg(long, value_name = "TARGET", value_parser = parse_target, conflicts_with = "key")]
    pub immutable: Option<NodeId>,
}

fn parse_hex<const N: usize>(text: &str, what: &str) -> Result<[u8; N], String> {
    let bad = || format!("'{text}' is not {what} ({} hex digits)", 2 * N);
    let t = text.as_bytes();
    if t.len() != 2 * N {
        return Err(bad());
    }
    let mut out = [0u8; N];
    for (i, pair) in t.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16).ok_or_else(bad)?;
        let lo = (pair[1] as char).to_digit(16).ok_or_else(bad)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Ok(out)
}

fn parse_public_key(text: &str) -> Result<[u8; 32], String> {
    parse_hex::<32>(text, "an Ed25519 public key")
}

fn parse_target(text: &str) -> Result<NodeId, String> {
    parse_hex::<20>(text, "a target").map(NodeId)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `rpcudp dht keygen`.
pub fn keygen(args: KeygenArgs) -> u8 {
    use rand::TryRngCore;
    let mut seed = [0u8; 32];
    if let Err(e) = rand::rngs::OsRng.try_fill_bytes(&mut seed) {
        eprintln!("error: the system's random source failed: {e}");
        return common::EXIT_FAILURE;
    }
    if let Err((code, msg)) = write_secret(&args.out, args.force, &seed) {
        eprintln!("error: {msg}");
        return code;
    }
    println!("public key {}", hex(&record::public_key(&seed)));
    common::EXIT_OK
}

/// Writes the seed as 64 hex digits and a newline to a file only its owner can read.
fn write_secret(path: &Path, force: bool, seed: &[u8; 32]) -> Result<(), (u8, String)> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let shown = path.display();
    let mut open = std::fs::OpenOptions::new();
    open.write(true).mode(0o600);
    if force {
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    let mut file = open.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => (
            common::EXIT_USAGE,
            format!("'{shown}' exists: not replaced without --force"),
        ),
        _ => (
            common::EXIT_FAILURE,
            format!("cannot create '{shown}': {e}"),
        ),
    })?;
    // An existing file replaced with --force keeps its mode: made 0600 before the secret
    // is written into it.
    let fail = |e: std::io::Error| (common::EXIT_FAILURE, format!("cannot write '{shown}': {e}"));
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(fail)?;
    writeln!(file, "{}", hex(seed)).map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// Reads a secret seed as `dht keygen` writes it.
fn read_secret(path: &Path) -> Result<[u8; 32], String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read key file '{shown}': {e}"))?;
    parse_hex::<32>(text.trim(), "a secret key")
        .map_err(|_| format!("key file '{shown}' does not hold 64 hex digits"))
}

/// Runs `rpcudp dht put`.
pub async fn put(args: PutArgs) -> u8 {
    let value = match read_value(&args.value, args.json) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let made = match &args.key_file {
        _ if args.immutable => record::ImmutableRecord::new(value.clone())
            .map(|r| (r.target(), None))
            .map_err(|_| format!("'{}': an immutable record is a str or a $bin", args.value)),
        Some(path) => read_secret(path).and_then(|secret| {
            let salt = args.salt.as_deref().unwrap_or_default().as_bytes();
            // Checked now (seq 0: any), so that a bad salt costs no traffic.
            record::SignedRecord::sign(&secret, salt, 0, value.clone())
                .map(|r| (r.target(), Some(secret)))
                .map_err(|e| format!("{e}"))
        }),
        None => Err("--key-file is needed (or --immutable)".into()),
    };
    let (target, secret) = match made {
        Ok(m) => m,
        Err(msg) => {
            eprintln!("error: {msg}");
            return common::EXIT_USAGE;
        }
    };
    let dht = match join(&args.bootstrap, args.timeout).await {
        Ok(d) => d,
        Err(common::EXIT_FAILURE) => {
            // Nobody to store on: the lines the contract promises, with zero nodes.
            println!("target {target}");
            if secret.is_some() {
                println!("seq {}", args.seq.unwrap_or(1));
            }
            println!("stored on 0 nodes");
            return common::EXIT_FAILURE;
        }
        Err(code) => return code,
    };
    let salt = args.salt.as_deref().unwrap_or_default().as_bytes();
    let result = match &secret {
        Some(secret) => dht.put_signed(secret, salt, args.seq, value).await,
        None => dht.put_immutable(value).await,
    };
    dht.shutdown().await;
    match result {
        Ok(put) => {
            println!("target {}", put.target);
            if let Some(seq) = put.seq {
                println!("seq {seq}");
            }
            println!("stored on {} nodes", put.stored_on);
            if put.stored_on > 0 {
                common::EXIT_OK
            } else {
                common::EXIT_FAILURE
            }
        }
        Err(PutError::SeqNotAbove { asked, found }) => {
            eprintln!(
                "error: --seq {asked} is not above seq {found}, the highest the network \
                 holds for target {target}"
            );
            common::EXIT_FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            common::EXIT_FAILURE
        }
    }
}

/// Runs `rpcudp dht get --signed PUBKEY [--salt STR]` or `dht get --immutable TARGET`.
pub async fn get(args: &GetArgs) -> u8 {
    let dht = match join(&args.bootstrap, args.timeout).await {
        Ok(d) => d,
        Err(code) => return code,
    };
    let r = &args.record;
    let (result, what): (Result<Option<Value>, _>, String) = match (&r.signed, &r.immutable) {
        (Some(pk), _) => {
            let salt = r.salt.as_deref().unwrap_or_default().as_bytes();
            let found = dht.get_signed(pk, salt).await;
            (
                found.map(|o| o.map(|rec| rec.value)),
                format!("public key {}", hex(pk)),
            )
        }
        (None, Some(target)) => (dht.get_immutable(*target).await, format!("target {target}")),
        (None, None) => {
            // clap requires KEY, --signed or --immutable: not reached.
            eprintln!("error: give KEY, --signed PUBKEY or --immutable TARGET");
            dht.shutdown().await;
            return common::EXIT_USAGE;
        }
    };
    dht.shutdown().await;
    match result {
        Ok(Some(v)) => {
            print_value(&v);
            common::EXIT_OK
        }
        Ok(None) => {
            eprintln!("not found: no answer for {what} verifies");
            common::EXIT_FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            common::EXIT_FAILURE
        }
    }
}
