//! `rpcudp serve [--bind ADDR] [--dialect rpcudp|storj] [--metrics ADDR] [--strict-local]` (docs/cli.md): the
//! reference service over UDP.

use super::call::DialectArg;
use crate::common::{self, HostPort};
use rmpv::Value;
use rpcudp::rpc::{Config, Endpoint, HandlerError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `rpcudp serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to listen: `IP:PORT`, `[IPV6]:PORT` or `NAME:PORT` (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:1234")]
    pub bind: HostPort,
    /// The wire dialect to speak.
    #[arg(long, value_enum, default_value_t = DialectArg::Rpcudp)]
    pub dialect: DialectArg,
    /// Also serve Prometheus metrics at `http://ADDR/metrics` and the status at
    /// `/status` (port 0: any free port).
    #[arg(long)]
    pub metrics: Option<HostPort>,
    /// Apply the per-source rate limits to loopback and private addresses too; handler
    /// slot sharing, address validation and the 3× rule apply always.
    #[arg(long)]
    pub strict_local: bool,
}

/// The runtime `serve` runs on: a single thread. The server is one driver task that
/// answers most requests inline; on a multi-threaded runtime every datagram's wake-up
/// may also wake a second, idle worker on another CPU to look for work, which costs
/// more than the whole request. Handlers that wait (`sleep`) still run concurrently, as
/// tasks on the same thread.
pub fn runtime() -> tokio::runtime::Builder {
    tokio::runtime::Builder::new_current_thread()
}

/// Runs `rpcudp serve` until SIGINT or SIGTERM.
pub async fn run(args: Args) -> u8 {
    let bind = match common::resolve(&args.bind).await {
        Ok(a) => a,
        Err(code) => return code,
    };
    let mut config = Config::for_dialect(args.dialect.into());
    config.endpoint.limits.strict_local = args.strict_local;
    let node = match Endpoint::bind_with(bind, config).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.bind);
            return common::EXIT_FAILURE;
        }
    };
    register_reference_service(&node);
    // Handlers first, then the line: a signal right after it must find them.
    let shutdown = common::shutdown_signal();
    common::print_listening(node.local_addr());
    let metrics = rpcudp::metrics::Metrics::new().with_node(&node);
    let _metrics = match crate::metrics_http::start(args.metrics.as_ref(), metrics).await {
        Ok(m) => m,
        Err(code) => {
            node.shutdown().await;
            return code;
        }
    };
    tracing::info!(
        "serving the reference service, {:?} dialect",
        node.dialect()
    );
    shutdown.await;
    tracing::info!("shutting down");
    node.shutdown().await;
    let s = node.stats();
    tracing::info!(
        "served: {} datagrams in, {} out, {} malformed, {} duplicates answered from cache",
        s.core.datagrams_in,
        s.core.datagrams_out,
        s.core.malformed,
        s.core.duplicates_answered
    );
    common::EXIT_OK
}

/// The longest `sleep` served; a longer one gets no answer rather than holding a
/// handler slot for hours.
const MAX_SLEEP_MS: f64 = 3_600_000.0;

/// Registers the reference service of cli.md on `node`: `ping`, `echo`, `add`, `sleep`,
/// `count`, `stun`. Wrong arguments get no answer ([`HandlerError::no_answer`]), as
/// with the Python peers, whose `rpc_*` methods raise then (logged at warn).
pub fn register_reference_service(node: &Endpoint) {
    node.register("ping", |_from, args: Vec<Value>| async move {
        no_args(&args)?;
        Ok(Value::from("pong"))
    });
    node.register("echo", |_from, args: Vec<Value>| async move {
        Ok(Value::Array(args))
    });
    node.register("add", |_from, args: Vec<Value>| async move {
        match args.as_slice() {
            [a, b] => add(a, b),
            _ => Err(HandlerError::no_answer(format!(
                "add takes 2 arguments, got {}",
                args.len()
            ))),
        }
    });
    node.register("sleep", |_from, args: Vec<Value>| async move {
        let [ms] = args.as_slice() else {
            return Err(HandlerError::no_answer("sleep takes 1 argument"));
        };
        let millis = number(ms)
            .ok_or_else(|| HandlerError::no_answer("sleep takes a number of milliseconds"))?;
        if !(0.0..=MAX_SLEEP_MS).contains(&millis) {
            return Err(HandlerError::no_answer(format!(
                "sleep takes 0 to {MAX_SLEEP_MS} ms"
            )));
        }
        // A timer, not a blocked thread: other calls are served meanwhile.
        tokio::time::sleep(Duration::from_secs_f64(millis / 1000.0)).await;
        Ok(ms.clone())
    });
    let counter = Arc::new(AtomicU64::new(0));
    node.register("count", move |_from, args: Vec<Value>| {
        let counter = counter.clone();
        async move {
            no_args(&args)?;
            Ok(Value::from(counter.fetch_add(1, Ordering::SeqCst) + 1))
        }
    });
    node.register("stun", |from, args: Vec<Value>| async move {
        no_args(&args)?;
        Ok(Value::Array(vec![
            Value::from(from.ip().to_string()),
            Value::from(from.port()),
        ]))
    });
}

fn no_args(args: &[Value]) -> Result<(), HandlerError> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(HandlerError::no_answer(format!(
            "takes no arguments, got {}",
            args.len()
        )))
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => i.as_f64(),
        Value::F32(f) => Some(f64::from(*f)),
        Value::F64(f) => Some(*f),
        _ => None,
    }
}

fn int128(v: &rmpv::Integer) -> Option<i128> {
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
}

/// `a + b` by cli.md's rules: two ints give the exact int when it fits int64 or uint64
/// (so `2^62 + 2^62` is `2^63`), else a float; a float on either side gives a float.
pub fn add(a: &Value, b: &Value) -> Result<Value, HandlerError> {
    if let (Value::Integer(x), Value::Integer(y)) = (a, b) {
        // Both fit in i128 (ints are at most 64 bits), so the sum cannot overflow.
        let (x, y) = (int128(x), int128(y));
        let sum = x
            .zip(y)
            .map(|(x, y)| x + y)
            .ok_or_else(|| HandlerError::no_answer("not an integer"))?;
        return Ok(if let Ok(v) = i64::try_from(sum) {
            Value::from(v)
        } else if let Ok(v) = u64::try_from(sum) {
            Value::from(v)
        } else {
            Value::F64(sum as f64)
        });
    }
    match (number(a), number(b)) {
        (Some(x), Some(y)) => Ok(Value::F64(x + y)),
        _ => Err(HandlerError::no_answer(format!(
            "add takes numbers, got {a} and {b}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i128) -> Value {
        if v < 0 {
            Value::from(v as i64)
        } else {
            Value::from(v as u64)
        }
    }

    #[test]
    fn add_of_ints_is_the_exact_int_when_it_fits_64_bits() {
        assert_eq!(add(&int(2), &int(3)).unwrap(), int(5));
        assert_eq!(add(&int(1 << 62), &int(1 << 62)).unwrap(), int(1 << 63));
        assert_eq!(add(&int(-5), &int(2)).unwrap(), int(-3));
        assert_eq!(
            add(&int(u64::MAX as i128), &int(-1)).unwrap(),
            int(u64::MAX as i128 - 1)
        );
        assert_eq!(
            add(&int(i64::MIN as i128), &int(0)).unwrap(),
            int(i64::MIN as i128)
        );
    }

    #[test]
    fn add_of_ints_beyond_64_bits_is_a_float() {
        assert_eq!(
            add(&int(u64::MAX as i128), &int(1)).unwrap(),
            Value::F64(18446744073709551616.0)
        );
        assert_eq!(
            add(&int(i64::MIN as i128), &int(-1)).unwrap(),
            Value::F64(-9223372036854775809.0)
        );
    }

    #[test]
    fn add_with_a_float_on_either_side_is_a_float() {
        assert_eq!(add(&int(1), &Value::F64(0.5)).unwrap(), Value::F64(1.5));
        assert_eq!(add(&Value::F64(1.0), &int(1)).unwrap(), Value::F64(2.0));
        assert_eq!(
            add(&Value::F32(0.5), &Value::F32(0.25)).unwrap(),
            Value::F64(0.75)
        );
    }

    #[test]
    fn add_of_non_numbers_gets_no_answer() {
        assert!(add(&Value::from("a"), &int(1)).is_err());
        assert!(add(&Value::Nil, &Value::Boolean(true)).is_err());
    }
}
