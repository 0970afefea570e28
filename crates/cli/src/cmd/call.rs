//! `rpcudp call ADDR METHOD [ARG…] [--timeout SECS] [--retries N] [--dialect D]`
//! (docs/cli.md): one call, its answer printed as one JSON line.

use crate::common::{self, HostPort};
use crate::json_value;
use rmpv::Value;
use rpcudp::rpc::{CallError, CallOptions, Config, Dialect, Endpoint};
use std::net::SocketAddr;
use std::time::Duration;

/// The wire dialect, as `--dialect` spells it.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DialectArg {
    /// Python rpcudp 5.0.1 (kind bytes 0/1).
    #[default]
    Rpcudp,
    /// Python storjrpcudp 2.5 (kind bytes 2/3, datagrams of at most 8192 bytes).
    Storj,
}

impl From<DialectArg> for Dialect {
    fn from(d: DialectArg) -> Dialect {
        match d {
            DialectArg::Rpcudp => Dialect::Rpcudp,
            DialectArg::Storj => Dialect::Storj,
        }
    }
}

/// Arguments of `rpcudp call`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The server: `IP:PORT`, `[IPV6]:PORT` or `NAME:PORT`.
    pub addr: HostPort,
    /// The method to call.
    pub method: String,
    /// The arguments, each one JSON value (with the `$float`, `$bin`, `$map`, `$ext`
    /// extensions). Negative numbers need no `--`.
    #[arg(value_parser = json_value::parse_arg, allow_negative_numbers = true)]
    pub args: Vec<Value>,
    /// Seconds to wait for an answer, per attempt.
    // Hyphen values reach the parser, so `--timeout -1` is refused for its value (naming
    // it) rather than reported as an unknown option `-1`.
    #[arg(long, default_value = "5", value_parser = parse_secs, allow_hyphen_values = true)]
    pub timeout: Duration,
    /// How many times to resend the same request (same message id) before giving up.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub retries: u32,
    /// The wire dialect of the server.
    #[arg(long, value_enum, default_value_t = DialectArg::Rpcudp)]
    pub dialect: DialectArg,
}

/// Parses a positive number of seconds (`0.5`, `5`).
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(format!(
            "'{text}': seconds must be over 0 and at most 86400"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Makes every negative JSON number after the `call` subcommand reach clap as a value.
///
/// clap's `allow_negative_numbers` recognises `-5` and `-1.5e3` but not `-2.5e-3` or
/// `-1E+2` (a sign in the exponent), which it would report as an unknown option. Those
/// get a leading space, which clap does not take for a flag and the JSON parser skips,
/// so the value is exactly the one typed. Nothing else is touched, in particular not the
/// value of an option (`--timeout -1` must be refused naming `-1`, not ` -1`).
pub fn protect_negative_numbers(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let mut seen_call = false;
    let mut option_value_next = false;
    args.into_iter()
        .enumerate()
        .map(|(i, arg)| {
            let Some(text) = arg.to_str() else { return arg };
            let is_option_value = std::mem::replace(
                &mut option_value_next,
                seen_call && matches!(text, "--timeout" | "--retries" | "--dialect"),
            );
            if i > 0 && !seen_call && text == "call" {
                seen_call = true;
            } else if seen_call
                && !is_option_value
                && text.starts_with('-')
                && matches!(
                    json_value::parse(text),
                    Ok(Value::Integer(_) | Value::F64(_))
                )
            {
                return format!(" {text}").into();
            }
            arg
        })
        .collect()
}

/// The one address-resolution policy of every command (see [`common::resolve`]); kept
/// here under its old name for the commands that import it from `call`.
pub use crate::common::resolve;

/// The call options of cli.md: `timeout` is per attempt, so every attempt waits exactly
/// that long: no backoff growth, and no jitter (which would shorten the waits before the
/// resends below what `--timeout` says).
pub fn per_attempt_options(
    mut options: CallOptions,
    timeout: Duration,
    retries: u32,
) -> CallOptions {
    options.attempt_timeout = timeout;
    options.max_attempt_timeout = timeout;
    options.retries = retries;
    options.backoff = 1.0;
    options.jitter = 0.0;
    options.deadline = None;
    options
}

/// Runs `rpcudp call`.
pub async fn run(args: Args) -> u8 {
    let to = match resolve(&args.addr).await {
        Ok(a) => a,
        Err(code) => return code,
    };
    let local: SocketAddr = if to.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let mut config = Config::for_dialect(args.dialect.into());
    config.shutdown_grace = Duration::ZERO;
    let node = match Endpoint::bind_with(local, config).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: cannot bind a UDP socket on {local}: {e}");
            return common::EXIT_FAILURE;
        }
    };
    let options = per_attempt_options(node.default_call_options(), args.timeout, args.retries);
    tracing::info!(
        "calling {} on {to} ({:?} dialect, {:?} per attempt, {} retries)",
        args.method,
        node.dialect(),
        args.timeout,
        args.retries
    );
    let result = node.call_with(to, &args.method, args.args, options).await;
    node.shutdown().await;
    let spoofed = node.stats().core.spoofed_responses;
    match result {
        Ok(value) => {
            // Not println!, which panics (exit 101) when stdout cannot be written.
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{}", json_value::to_json(&value)).and_then(|()| out.flush()) {
                Ok(()) => common::EXIT_OK,
                Err(e) => {
                    eprintln!("error: cannot write the result to stdout: {e}");
                    common::EXIT_FAILURE
                }
            }
        }
        Err(CallError::Timeout(waited)) => {
            eprintln!(
                "error: no answer from {} to {} within {:.3} s ({} attempt(s))",
                args.addr,
                args.method,
                waited.as_secs_f64(),
                u64::from(args.retries) + 1
            );
            if spoofed > 0 {
                // The classic cause: a server bound to a wildcard address answers from
                // another of its addresses than the one called. Such answers are refused
                // on purpose (anyone could send them), so say what happened.
                eprintln!(
                    "note: {spoofed} answer(s) came from another address than {to} and were \
                     ignored; if the server is bound to a wildcard address, call it at the \
                     address it answers from, or bind it to the one you call"
                );
            }
            common::EXIT_NO_ANSWER
        }
        Err(CallError::Remote { message }) => {
            // `{:?}`: the peer's text, escaped, so it cannot drive the terminal.
            eprintln!(
                "error: {} on {} answered with a remote error: {message:?}",
                args.method, args.addr
            );
            common::EXIT_FAILURE
        }
        Err(e) => {
            eprintln!("error: calling {} on {}: {e}", args.method, args.addr);
            common::EXIT_FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_numbers_after_call_are_protected_and_nothing_else() {
        let argv = |v: &[&str]| {
            v.iter()
                .map(|s| s.into())
                .collect::<Vec<std::ffi::OsString>>()
        };
        let out = protect_negative_numbers(argv(&[
            "rpcudp",
            "-v",
            "call",
            "h:1",
            "add",
            "-2.5e-3",
            "-1",
            "--timeout",
            "-1",
            "--retries",
            "-2",
            "-3",
            "-x",
        ]));
        assert_eq!(
            out,
            argv(&[
                "rpcudp",
                "-v",
                "call",
                "h:1",
                "add",
                " -2.5e-3",
                " -1",
                "--timeout",
                "-1",
                "--retries",
                "-2",
                " -3",
                "-x"
            ])
        );
        let other = argv(&["rpcudp", "serve", "-5"]);
        assert_eq!(protect_negative_numbers(other.clone()), other);
    }

    #[test]
    fn every_attempt_waits_exactly_the_timeout_without_jitter_or_backoff() {
        let t = Duration::from_millis(700);
        let o = per_attempt_options(CallOptions::default(), t, 3);
        assert_eq!(o.jitter, 0.0, "jitter would cut the waits before resends");
        for attempt in 0..=3 {
            assert_eq!(o.attempt_wait(attempt), t, "attempt {attempt}");
        }
        assert_eq!(o.max_duration(), t * 4);
    }

    #[test]
    fn seconds_must_be_positive_and_finite() {
        assert_eq!(parse_secs("0.25").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_secs("5").unwrap(), Duration::from_secs(5));
        for bad in ["0", "-1", "nan", "inf", "soon"] {
            assert!(parse_secs(bad).unwrap_err().contains(bad), "{bad}");
        }
    }
}
