//! `rpcudp bench` in RPC mode: one sans-IO [`Endpoint`] on the library's generic
//! [`Driver`] (the one every `Node` runs on), on one connected socket, in one task.
//!
//! This is the client the library's [`Endpoint`] makes when nothing but the driver
//! stands between it and the socket: per batch of datagrams, one receive system call,
//! `handle_datagram` for each, the resulting events (a call ended: record its latency,
//! start the next one), and the next requests' sends, batched, before the next receive.
//! No channel, no task per call, no oneshot.

use super::report::Recorder;
use super::{Plan, Tick};
use crate::json_value;
use rpcudp::driver::{Application, Driver, Flow};
use rpcudp_proto::rpc::{CallFailure, CallId, CallOptions, Endpoint, EndpointConfig, Event};
use rpcudp_proto::wire::rpc::{encode_request, Dialect, MessageId, HEADER_LEN};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::task::{Context, Poll};
use std::time::Instant;

/// The call every slot makes.
pub struct Calls {
    pub(super) dialect: Dialect,
    pub(super) method: String,
    pub(super) args: Vec<rmpv::Value>,
}

impl Calls {
    /// From the command line's `--method`, `--args` and `--dialect`; the error names the
    /// bad input.
    pub fn from_cli(method: &str, args: &str, dialect: &str) -> Result<Calls, String> {
        let dialect = match dialect {
            "rpcudp" => Dialect::Rpcudp,
            "storj" => Dialect::Storj,
            other => return Err(format!("'{other}' is not a dialect (rpcudp or storj)")),
        };
        let text = args;
        let args = match json_value::parse_arg(text)? {
            rmpv::Value::Array(items) => items,
            _ => return Err(format!("--args '{text}' is not a JSON array")),
        };
        // Refuse here what every call would be refused: a usage error, not a failed run.
        let mut datagram = Vec::new();
        encode_request(dialect, &MessageId([0; 20]), method, &args, &mut datagram);
        let body = datagram.len() - HEADER_LEN;
        if body > dialect.max_body() {
            return Err(format!(
                "--method {method} --args of {} bytes: the request body is {body} bytes, \
                 over the {dialect} limit of {}",
                text.len(),
                dialect.max_body()
            ));
        }
        Ok(Calls {
            dialect,
            method: method.to_string(),
            args,
        })
    }

    /// What the report calls this load.
    pub fn label(&self) -> String {
        self.method.clone()
    }
}

/// Runs the RPC load described by `plan`; returns when the last call ended.
pub async fn run(plan: &Plan, calls: Calls, rec: &mut Recorder) -> io::Result<Instant> {
    let socket = rpcudp::udp::Socket::from_std(plan.connect().await?.into_std()?)?;
    let config = EndpointConfig {
        dialect: calls.dialect,
        max_outstanding_calls: EndpointConfig::default()
            .max_outstanding_calls
            .max(plan.concurrency),
        ..EndpointConfig::default()
    };
    let options = CallOptions {
        attempt_timeout: plan.timeout,
        retries: 0,
        ..config.default_call.clone()
    };
    let mut ep = Endpoint::new(config, seed());
    let started_at = rec.started();
    let mut load = Load {
        calls: &calls,
        options,
        plan,
        tick: Tick::new(plan, started_at),
        in_flight: HashMap::with_capacity_and_hasher(plan.concurrency, Default::default()),
        rec,
        failure: None,
    };
    for _ in 0..plan.concurrency {
        load.start(&mut ep, started_at)?;
    }
    // Nobody sends it commands: the load ends by itself (`poll_work`).
    let (driver, _) = Driver::new(socket, ep, load, 1);
    let load = driver.run().await;
    match load.failure {
        Some(e) => Err(e),
        None => Ok(Instant::now()),
    }
}

struct Load<'a> {
    calls: &'a Calls,
    options: CallOptions,
    plan: &'a Plan,
    tick: Tick,
    /// When each call in flight started.
    in_flight: HashMap<CallId, Instant, BuildHasherDefault<IdHasher>>,
    rec: &'a mut Recorder,
    /// Why the load stopped early (a call that cannot be made at all).
    failure: Option<io::Error>,
}

/// A multiply-rotate hasher for the in-flight map. Its keys are our own calls' random
/// message ids (drawn by the core's RNG, never chosen by a peer), so the flooding that
/// SipHash protects a map against cannot happen here, and this is a few times cheaper.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
}

impl Load<'_> {
    fn start(&mut self, ep: &mut Endpoint, now: Instant) -> io::Result<()> {
        match ep.call(
            now,
            self.plan.server,
            &self.calls.method,
            &self.calls.args,
            self.options.clone(),
        ) {
            Ok(id) => {
                self.in_flight.insert(id, now);
                Ok(())
            }
            // The request is refused whatever the server does: a usage problem, not load.
            Err(e) => {
                self.rec.errors += 1;
                Err(io::Error::other(format!("the call cannot be made: {e}")))
            }
        }
    }
}

impl Application<Endpoint> for Load<'_> {
    type Command = ();

    /// An ended call is recorded and its slot starts the next.
    fn on_event(&mut self, ep: &mut Endpoint, now: Instant, event: Event) {
        let ended = match event {
            Event::CallSucceeded { call, .. } => {
                if let Some(t0) = self.in_flight.remove(&call) {
                    self.rec.answered(now.saturating_duration_since(t0));
                }
                true
            }
            Event::CallFailed { call, error } => {
                self.in_flight.remove(&call);
                match error {
                    CallFailure::Timeout => self.rec.timeouts += 1,
                    CallFailure::Remote { .. } => self.rec.errors += 1,
                }
                true
            }
            // A bench client serves nothing; the server is not expected to call it.
            Event::Request { token, .. } => {
                ep.abandon(now, token);
                false
            }
        };
        if ended && !self.tick.stopping && self.failure.is_none() {
            if let Err(e) = self.start(ep, now) {
                self.failure = Some(e);
            }
        }
    }

    fn on_command(&mut self, _: &mut Endpoint, _: Instant, (): ()) -> Flow {
        Flow::Continue
    }

    /// The progress ticks, and the end: once the duration is over and every call in
    /// flight has ended (answered or timed out).
    fn poll_work(&mut self, cx: &mut Context<'_>, _: &mut Endpoint, _: Instant) -> Poll<Flow> {
        if self.failure.is_some() || (self.tick.stopping && self.in_flight.is_empty()) {
            return Poll::Ready(Flow::Stop);
        }
        match self.tick.poll_tick(cx) {
            Poll::Ready(now) => {
                self.rec.tick(now);
                Poll::Ready(Flow::Continue)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn on_send_error(
        &mut self,
        _: &mut Endpoint,
        _: Instant,
        _: &rpcudp_proto::Transmit,
        e: io::Error,
    ) {
        // The call stays in flight and times out, as a lost datagram would.
        tracing::debug!("bench send: {e}");
        self.rec.errors += 1;
    }

    fn on_handles_dropped(&mut self, _: &mut Endpoint, _: Instant) -> Flow {
        Flow::Continue
    }

    fn on_stop(&mut self, ep: &mut Endpoint, _: Instant) {
        self.rec.stray += ep.stats().unknown_responses;
    }
}

/// Message ids must differ between bench runs (a server's duplicate cache would answer a
/// repeated id from its cache); the clock and the pid make a fresh seed each time.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_hasher_spreads_ids_that_differ_in_any_byte() {
        let hash = |bytes: &[u8]| {
            let mut h = IdHasher::default();
            h.write(bytes);
            h.finish()
        };
        let base = [7u8; 20];
        let mut seen = std::collections::HashSet::new();
        seen.insert(hash(&base));
        for i in 0..20 {
            let mut id = base;
            id[i] ^= 1;
            assert!(seen.insert(hash(&id)), "byte {i} does not change the hash");
        }
    }

    #[test]
    fn args_must_be_a_json_array_and_errors_name_the_input() {
        let calls = Calls::from_cli("add", "[1, 2.5]", "storj").unwrap();
        assert_eq!(
            calls.args,
            vec![rmpv::Value::from(1), rmpv::Value::from(2.5)]
        );
        assert_eq!(calls.dialect, Dialect::Storj);
        let err = Calls::from_cli("add", "{\"a\": 1}", "rpcudp")
            .err()
            .unwrap();
        assert!(err.contains("{\"a\": 1}"), "{err}");
        let err = Calls::from_cli("add", "[1,", "rpcudp").err().unwrap();
        assert!(err.contains("[1,"), "{err}");
        let err = Calls::from_cli("ping", "[]", "grpc").err().unwrap();
        assert!(err.contains("grpc"), "{err}");
        // A body over the dialect's limit is refused up front, naming the limit.
        let big = format!("[\"{}\"]", "x".repeat(8180));
        assert!(Calls::from_cli("echo", &big, "rpcudp").is_ok());
        let err = Calls::from_cli("echo", &big, "storj").err().unwrap();
        assert!(err.contains("8171"), "{err}");
    }
}
