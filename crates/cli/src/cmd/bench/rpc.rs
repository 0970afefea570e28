//! `rpcudp bench` in RPC mode: one sans-IO [`Endpoint`] driven by hand on one connected
//! socket, in one task.
//!
//! This is the client the library's [`Endpoint`] makes when nothing stands between it and
//! the socket: per datagram, one receive, `handle_datagram`, the resulting event (a call
//! ended: record its latency, start the next one), and the next request's send, in that
//! order, before the next receive. No channel, no task per call, no oneshot. The core's
//! timers are honoured lazily: the sleep is only moved earlier, never re-armed per call.

use super::report::Recorder;
use super::{Plan, Tick};
use crate::json_value;
use rpcudp_proto::rpc::{CallFailure, CallId, CallOptions, Endpoint, EndpointConfig, Event};
use rpcudp_proto::wire::rpc::{encode_request, Dialect, MessageId, HEADER_LEN};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::time::{Duration, Instant};

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
    let socket = plan.connect().await?;
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
    let mut tick = Tick::new(plan, started_at);
    let mut load = Load {
        ep: &mut ep,
        calls: &calls,
        options,
        plan,
        in_flight: HashMap::with_capacity_and_hasher(plan.concurrency, Default::default()),
    };
    for _ in 0..plan.concurrency {
        load.start(started_at, rec)?;
    }
    load.flush(&socket, rec).await;
    let far = started_at + plan.duration + plan.timeout + Duration::from_secs(3600);
    let mut timer_at = far;
    let mut timer = Box::pin(tokio::time::sleep_until(far.into()));
    let mut buf = vec![0u8; 65_536];
    loop {
        loop {
            let n = match socket.try_recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!("bench receive: {e}");
                    rec.errors += 1;
                    continue;
                }
            };
            let now = Instant::now();
            load.ep.handle_datagram(now, plan.server, &buf[..n]);
            load.events(now, tick.stopping, rec)?;
            load.flush(&socket, rec).await;
        }
        if tick.stopping && load.in_flight.is_empty() {
            break;
        }
        // Move the core's timer earlier when it asks; a timer that fires early costs
        // one handle_timeout that finds nothing due.
        if let Some(at) = load.ep.poll_timeout() {
            if at < timer_at {
                timer_at = at;
                timer.as_mut().reset(at.into());
            }
        }
        tokio::select! {
            biased;
            ready = socket.readable() => ready?,
            () = &mut timer => {
                let now = Instant::now();
                load.ep.handle_timeout(now);
                timer_at = load.ep.poll_timeout().unwrap_or(far);
                timer.as_mut().reset(timer_at.into());
                load.events(now, tick.stopping, rec)?;
                load.flush(&socket, rec).await;
            }
            now = tick.wait() => {
                rec.tick(now);
                if tick.stopping && load.in_flight.is_empty() {
                    break;
                }
            }
        }
    }
    rec.stray += load.ep.stats().unknown_responses;
    Ok(Instant::now())
}

struct Load<'a> {
    ep: &'a mut Endpoint,
    calls: &'a Calls,
    options: CallOptions,
    plan: &'a Plan,
    /// When each call in flight started.
    in_flight: HashMap<CallId, Instant, BuildHasherDefault<IdHasher>>,
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
    fn start(&mut self, now: Instant, rec: &mut Recorder) -> io::Result<()> {
        match self.ep.call(
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
                rec.errors += 1;
                Err(io::Error::other(format!("the call cannot be made: {e}")))
            }
        }
    }

    /// Routes the core's events: an ended call is recorded and its slot starts the next.
    fn events(&mut self, now: Instant, stopping: bool, rec: &mut Recorder) -> io::Result<()> {
        while let Some(event) = self.ep.poll_event() {
            let ended = match event {
                Event::CallSucceeded { call, .. } => {
                    if let Some(t0) = self.in_flight.remove(&call) {
                        rec.answered(now.saturating_duration_since(t0));
                    }
                    true
                }
                Event::CallFailed { call, error } => {
                    self.in_flight.remove(&call);
                    match error {
                        CallFailure::Timeout => rec.timeouts += 1,
                        #[allow(unreachable_patterns)]
                        _ => rec.errors += 1,
                    }
                    true
                }
                // A bench client serves nothing; the server is not expected to call it.
                Event::Request { token, .. } => {
                    self.ep.abandon(token);
                    false
                }
            };
            if ended && !stopping {
                self.start(now, rec)?;
            }
        }
        Ok(())
    }

    /// Sends everything the core has queued.
    async fn flush(&mut self, socket: &tokio::net::UdpSocket, rec: &mut Recorder) {
        while let Some(t) = self.ep.poll_transmit() {
            let sent = if t.destination == self.plan.server {
                super::send(socket, &t.payload).await
            } else {
                socket.send_to(&t.payload, t.destination).await.map(drop)
            };
            if let Err(e) = sent {
                tracing::debug!("bench send: {e}");
                rec.errors += 1;
            }
        }
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
