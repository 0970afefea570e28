//! Per-source limits and address validation: what keeps one source from taking the
//! endpoint, and the endpoint from being used as a reflector.
//!
//! Owned here (each refusal counted in [`Stats`](super::Stats)):
//! - **rate limits**: a token bucket per source subnet ([`SourceKey`]: IPv4 /24, IPv6
//!   /64) for request datagrams per second and request bytes per second, checked before
//!   the datagram is even decoded. A forger can send "from" any subnet, so a subnet's
//!   empty bucket refuses only **under load** (the endpoint-wide buckets
//!   [`LimitsConfig::load_requests_per_sec`] / [`LimitsConfig::load_bytes_per_sec`] are
//!   empty): while the endpoint has capacity to spare, a forged flood "from" a victim's
//!   subnet cannot make it refuse the victim. A validated address has a bucket of its
//!   own, apart from its subnet's unvalidated traffic;
//! - **handler slots** (`slots`): under contention, unvalidated requests give their slot
//!   up first, oldest of the subnet holding the most first;
//! - **destination budget**: answer bytes beyond 3× the request's own bytes (the
//!   amplified part) to one address are held to [`LimitsConfig::destination_bytes_per_sec`]
//!   with a burst, validated or not, so a validated peer cannot be made the target of a
//!   flood that others forge in its name;
//! - **anti-amplification** (QUIC's rule, RFC 9000 §8): to an address (IP and port) that
//!   has not proven it receives there, answers (fresh and cached) total at most
//!   [`LimitsConfig::amplification_factor`] (3) times the bytes received from it. An
//!   address proves it by answering a call this endpoint made (the call's random 160-bit
//!   message id is what an off-path forger cannot know), or the layer above marks it
//!   with [`Endpoint::mark_validated`](super::Endpoint::mark_validated). A bigger answer
//!   is dropped and counted, or, when a [`LimitsConfig::validation_probe`] is set, held
//!   (bounded) while the endpoint calls the probe method on the address, and sent once
//!   the probe is answered.
//!
//! Every table here is bounded (`GenMap`: two generations, the older dropped whole
//! when the newer fills), so a flood from many ports or addresses costs a fixed amount of
//! memory. Forgetting is always the safe direction: a forgotten rate bucket starts full
//! (as a new source would), a forgotten address budget starts at zero, a forgotten
//! validation must be proven again.
//!
//! Rate limits exempt local addresses ([`is_local`]) unless [`LimitsConfig::strict_local`];
//! handler slots, validation, the destination budget and the 3× rule apply to every
//! address.
//!
//! Not owned here: the global `max_concurrent_requests` check and the duplicate cache
//! (`endpoint`, `dedup`); what the layer above does while an address is unvalidated.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rmpv::Value;

use super::config::CallOptions;
use crate::subnet::{is_local, SourceKey};
use crate::wire::rpc::MessageId;

/// The per-source limits of an [`Endpoint`](super::Endpoint), part of
/// [`EndpointConfig`](super::EndpointConfig) (and so of `rpcudp::rpc::Config`).
///
/// Every limit is finite. The defaults let one honest peer do anything the reference
/// service and a DHT node need, while one subnet flooding gets a bounded share.
///
/// ```
/// use rpcudp_proto::rpc::{EndpointConfig, LimitsConfig};
/// let strict = EndpointConfig {
///     limits: LimitsConfig { strict_local: true, ..LimitsConfig::default() },
///     ..EndpointConfig::default()
/// };
/// assert_eq!(strict.limits.amplification_factor, 3);
/// assert_eq!(strict.limits.max_requests_per_source, 64);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LimitsConfig {
    /// Apply the per-source rate limits to loopback and private addresses too
    /// (`--strict-local`). Default false: local sources are exempt, so a test network of
    /// many nodes on 127.0.0.1 works. Handler slots, validation, the destination budget
    /// and the amplification rule apply either way.
    pub strict_local: bool,
    /// Request datagrams per second one source subnet may send (the bucket's refill).
    /// Default 1000.
    pub requests_per_sec: f64,
    /// Requests one subnet may send at once before the rate applies (the bucket's size).
    /// Default 2000.
    pub requests_burst: f64,
    /// Request bytes per second one subnet may send. Default 4 MiB.
    pub bytes_per_sec: f64,
    /// Request bytes one subnet may send at once. Default 8 MiB (more than any datagram).
    pub bytes_burst: f64,
    /// Kept for compatibility; no longer a hard cap. Handler slots are shared under
    /// contention only (see the `slots` rule in the module doc), so one source may use
    /// every slot nobody else wants, and never holds one against others while
    /// unvalidated. Default 64.
    pub max_requests_per_source: usize,
    /// Requests per second the whole endpoint takes before it counts as loaded; the
    /// per-subnet rate limits refuse only then. Default 50 000 (a release `serve`
    /// answers several times that).
    pub load_requests_per_sec: f64,
    /// Request bytes per second the whole endpoint takes before it counts as loaded.
    /// Default 64 MiB.
    pub load_bytes_per_sec: f64,
    /// Answer bytes per second to one address beyond 3× the bytes of the requests they
    /// answer (an answer no bigger than that never counts). Default 256 KiB: a real
    /// peer's lookups and stores never come near; a flood forged in its name gets at
    /// most this much reflected to it.
    pub destination_bytes_per_sec: f64,
    /// The burst of `destination_bytes_per_sec`. Default 256 KiB.
    pub destination_bytes_burst: f64,
    /// Most destinations whose budgets are remembered. Default 65 536.
    pub max_destinations: usize,
    /// Most subnets whose rate buckets are remembered. Default 65 536.
    pub max_sources: usize,
    /// Answers to an unvalidated address total at most this many times the bytes
    /// received from it. Default 3, QUIC's factor; 0 sends unvalidated addresses nothing.
    pub amplification_factor: usize,
    /// Most unvalidated addresses whose byte counts are remembered. Default 65 536.
    pub max_unvalidated_addresses: usize,
    /// Most validated addresses remembered. Default 65 536.
    pub max_validated_addresses: usize,
    /// A call that proves an address receives where it says (any answer proves it), made
    /// when an answer to it is over budget; the answer is held until the probe is
    /// answered, and dropped if it is not. `None` (the default): such answers are dropped.
    /// A Kademlia node sets `ping(own id)`, which every Kademlia peer answers.
    pub validation_probe: Option<ValidationProbe>,
    /// Most answers held for probed addresses, all addresses together. Default 1024.
    pub max_held_answers: usize,
    /// Most bytes of held answers. Default 4 MiB.
    pub max_held_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            strict_local: false,
            requests_per_sec: 1000.0,
            requests_burst: 2000.0,
            bytes_per_sec: (4 << 20) as f64,
            bytes_burst: (8 << 20) as f64,
            max_requests_per_source: 64,
            load_requests_per_sec: 50_000.0,
            load_bytes_per_sec: (64 << 20) as f64,
            destination_bytes_per_sec: (256 << 10) as f64,
            destination_bytes_burst: (256 << 10) as f64,
            max_destinations: 65_536,
            max_sources: 65_536,
            amplification_factor: 3,
            max_unvalidated_addresses: 65_536,
            max_validated_addresses: 65_536,
            validation_probe: None,
            max_held_answers: 1024,
            max_held_bytes: 4 << 20,
        }
    }
}

/// The call [`LimitsConfig::validation_probe`] makes to validate an address.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidationProbe {
    /// Method name (e.g. `"ping"`).
    pub method: String,
    /// Its arguments (e.g. the node's own id for a Kademlia ping).
    pub args: Vec<Value>,
    /// Its timing; when it fails, the held answers are dropped.
    pub options: CallOptions,
}

/// Why a request was refused before it was handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The subnet's request bucket is empty.
    Requests,
    /// The subnet's byte bucket is empty.
    Bytes,
}

/// A map of at most `cap` entries: two generations; a hit in the older moves the entry to
/// the newer, and when the newer holds `cap / 2` the older is dropped whole. An
/// approximate LRU with O(1) work per operation and no per-entry list.
#[derive(Debug)]
pub(crate) struct GenMap<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
    half: usize,
}

impl<K: Hash + Eq + Copy, V> GenMap<K, V> {
    pub(crate) fn new(cap: usize) -> Self {
        GenMap {
            young: HashMap::new(),
            old: HashMap::new(),
            half: (cap / 2).max(1),
        }
    }

    /// The entry for `k`, made with `make` if absent (possibly dropping the older
    /// generation to make room).
    pub(crate) fn entry(&mut self, k: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.young.contains_key(&k) && self.young.len() >= self.half {
            let carried = self.old.remove(&k);
            self.old = std::mem::take(&mut self.young);
            if let Some(v) = carried {
                self.young.insert(k, v);
            }
        }
        let old = &mut self.old;
        self.young
            .entry(k)
            .or_insert_with(|| old.remove(&k).unwrap_or_else(make))
    }

    pub(crate) fn get(&self, k: &K) -> Option<&V> {
        self.young.get(k).or_else(|| self.old.get(k))
    }

    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        self.young.remove(k).or_else(|| self.old.remove(k))
    }

    pub(crate) fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    pub(crate) tokens: f64,
    pub(crate) last: Instant,
}

impl TokenBucket {
    /// Takes `amount` tokens if the bucket (refilled to `now`) holds them.
    pub(crate) fn take(&mut self, now: Instant, rate: f64, burst: f64, amount: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        if self.tokens >= amount {
            self.tokens -= amount;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Rates {
    requests: TokenBucket,
    bytes: TokenBucket,
}

impl Rates {
    /// Full buckets as of `now`.
    fn full(now: Instant, requests: f64, bytes: f64) -> Rates {
        let bucket = |tokens| TokenBucket { tokens, last: now };
        Rates {
            requests: bucket(requests),
            bytes: bucket(bytes),
        }
    }
}

/// Whose rate bucket a request draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum RateKey {
    /// Unvalidated sources of one /24 or /64 together.
    Subnet(SourceKey),
    /// A validated address on its own.
    Validated(SocketAddr),
}

/// Bytes exchanged with an address not yet validated.
#[derive(Debug, Clone, Copy, Default)]
struct Path {
    received: u64,
    sent: u64,
}

/// A held answer and the local address it must leave from.
pub(crate) type HeldAnswer = (Vec<u8>, Option<IpAddr>);

#[derive(Debug, Default)]
struct Held {
    /// Answers, each with the local address it must leave from.
    answers: Vec<HeldAnswer>,
    probe: Option<MessageId>,
}

/// What [`Limits::offer_answer`] decided about an answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AnswerVerdict {
    /// Within budget (or validated): send it.
    Send,
    /// Over budget: dropped.
    Drop,
    /// Over budget: held; if `probe` is true the caller must start the probe call and
    /// report its id with [`Limits::probe_started`].
    Held { probe: bool },
}

/// The limits' state. All tables bounded by [`LimitsConfig`].
#[derive(Debug)]
pub(crate) struct Limits {
    pub(crate) config: LimitsConfig,
    rates: GenMap<RateKey, Rates>,
    /// The endpoint-wide buckets (made full at the first request): empty = loaded.
    load: Option<Rates>,
    /// Amplified answer bytes per destination.
    destinations: GenMap<SocketAddr, TokenBucket>,
    paths: GenMap<SocketAddr, Path>,
    validated: GenMap<SocketAddr, ()>,
    held: HashMap<SocketAddr, Held>,
    held_count: usize,
    held_bytes: usize,
    probes: HashMap<MessageId, SocketAddr>,
}

impl Limits {
    pub(crate) fn new(config: LimitsConfig) -> Self {
        Limits {
            rates: GenMap::new(config.max_sources),
            load: None,
            destinations: GenMap::new(config.max_destinations),
            paths: GenMap::new(config.max_unvalidated_addresses),
            validated: GenMap::new(config.max_validated_addresses),
            held: HashMap::new(),
            held_count: 0,
            held_bytes: 0,
            probes: HashMap::new(),
            config,
        }
    }

    /// Whether the per-source limits skip `addr`.
    fn exempt(&self, addr: SocketAddr) -> bool {
        !self.config.strict_local && is_local(addr.ip())
    }

    /// Counts `len` bytes received from `addr` (any datagram: QUIC counts them all).
    pub(crate) fn on_received(&mut self, addr: SocketAddr, len: usize) {
        if self.validated.get(&addr).is_some() {
            return;
        }
        let p = self.paths.entry(addr, Path::default);
        p.received = p.received.saturating_add(len as u64);
    }

    /// Counts `len` bytes of answers sent to `addr`. Our own requests (calls, probes) are
    /// not counted: whom to call is the layer above's choice, and a request it sends to an
    /// address that never answers must not cost that address its answers.
    pub(crate) fn on_sent(&mut self, addr: SocketAddr, len: usize) {
        if self.validated.get(&addr).is_some() {
            return;
        }
        let p = self.paths.entry(addr, Path::default);
        p.sent = p.sent.saturating_add(len as u64);
    }

    /// Takes one request of `len` bytes from `addr`'s buckets: its own if validated,
    /// else its subnet's. An empty bucket refuses only while the endpoint is loaded.
    pub(crate) fn admit_rate(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        len: usize,
    ) -> Result<(), Refusal> {
        let c = &self.config;
        let (lr, lb) = (c.load_requests_per_sec, c.load_bytes_per_sec);
        // Every request counts in the load, exempt or not.
        let load = self.load.get_or_insert_with(|| Rates::full(now, lr, lb));
        let calm_requests = load.requests.take(now, lr, lr, 1.0);
        let calm_bytes = load.bytes.take(now, lb, lb, len as f64);
        if self.exempt(addr) {
            return Ok(());
        }
        let c = &self.config;
        let (rps, rb, bps, bb) = (
            c.requests_per_sec,
            c.requests_burst,
            c.bytes_per_sec,
            c.bytes_burst,
        );
        let key = if self.validated.get(&addr).is_some() {
            RateKey::Validated(addr)
        } else {
            RateKey::Subnet(SourceKey::of(addr.ip()))
        };
        let r = self.rates.entry(key, || Rates::full(now, rb, bb));
        // Both buckets are always charged, so a source's history is kept; they refuse
        // only under load.
        let requests = r.requests.take(now, rps, rb, 1.0);
        let bytes = r.bytes.take(now, bps, bb, len as f64);
        let loaded = !(calm_requests && calm_bytes);
        match (loaded, requests, bytes) {
            (true, false, _) => Err(Refusal::Requests),
            (true, true, false) => Err(Refusal::Bytes),
            _ => Ok(()),
        }
    }

    /// Whether an answer of `len` bytes to `addr`, for a request of `request_len` bytes,
    /// fits `addr`'s destination budget (taken if it does). Only the part beyond 3× the
    /// request counts.
    pub(crate) fn take_destination(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        len: usize,
        request_len: usize,
    ) -> bool {
        let excess = len.saturating_sub(request_len.saturating_mul(3));
        if excess == 0 {
            return true;
        }
        let (rate, burst) = (
            self.config.destination_bytes_per_sec,
            self.config.destination_bytes_burst,
        );
        self.destinations
            .entry(addr, || TokenBucket {
                tokens: burst,
                last: now,
            })
            .take(now, rate, burst, excess as f64)
    }

    pub(crate) fn is_validated(&self, addr: SocketAddr) -> bool {
        self.validated.get(&addr).is_some()
    }

    /// Bytes that may still be sent to `addr`; `None` if validated (no limit).
    pub(crate) fn budget(&self, addr: SocketAddr) -> Option<usize> {
        if self.is_validated(addr) {
            return None;
        }
        let p = self.paths.get(&addr).copied().unwrap_or_default();
        let allowed = p
            .received
            .saturating_mul(self.config.amplification_factor as u64);
        Some(allowed.saturating_sub(p.sent).min(usize::MAX as u64) as usize)
    }

    /// Marks `addr` validated; returns the answers held for it (to send now).
    pub(crate) fn validate(&mut self, addr: SocketAddr) -> (bool, Vec<HeldAnswer>) {
        let newly = self.validated.get(&addr).is_none();
        self.validated.entry(addr, || ());
        self.paths.remove(&addr);
        let released = match self.held.remove(&addr) {
            // The probe, if any, stays in `probes`: its answer or timeout is still
            // swallowed there.
            Some(h) => {
                self.uncount(&h.answers);
                h.answers
            }
            None => Vec::new(),
        };
        (newly, released)
    }

    /// Decides about an answer of `len` bytes for `addr` (`hold`: the payload may be kept
    /// if a probe is configured; duplicates' answers are not held, only dropped).
    pub(crate) fn offer_answer(
        &mut self,
        addr: SocketAddr,
        payload: &[u8],
        source: Option<IpAddr>,
        may_hold: bool,
    ) -> AnswerVerdict {
        match self.budget(addr) {
            None => return AnswerVerdict::Send,
            Some(b) if payload.len() <= b => return AnswerVerdict::Send,
            Some(_) => {}
        }
        if !may_hold || self.config.validation_probe.is_none() {
            return AnswerVerdict::Drop;
        }
        let per_address = self.config.max_held_answers.min(8);
        if self.held_count >= self.config.max_held_answers
            || self.held_bytes + payload.len() > self.config.max_held_bytes
            || self
                .held
                .get(&addr)
                .is_some_and(|h| h.answers.len() >= per_address)
        {
            return AnswerVerdict::Drop;
        }
        let h = self.held.entry(addr).or_default();
        h.answers.push((payload.to_vec(), source));
        self.held_count += 1;
        self.held_bytes += payload.len();
        AnswerVerdict::Held {
            probe: h.probe.is_none(),
        }
    }

    /// Records the probe call started for `addr`'s held answers.
    pub(crate) fn probe_started(&mut self, addr: SocketAddr, id: MessageId) {
        if let Some(h) = self.held.get_mut(&addr) {
            h.probe = Some(id);
        }
        self.probes.insert(id, addr);
    }

    /// The probe could not be started: drops what was held for `addr`; how many.
    pub(crate) fn drop_held(&mut self, addr: SocketAddr) -> usize {
        match self.held.remove(&addr) {
            Some(h) => {
                self.uncount(&h.answers);
                h.answers.len()
            }
            None => 0,
        }
    }

    /// A new round of request `id` from `addr` starts (its duplicate entry was gone):
    /// drops the answers of earlier rounds still held for it, so that they never follow
    /// the new round's answer; how many. At most 8 are held per address.
    pub(crate) fn drop_held_round(&mut self, addr: SocketAddr, id: &MessageId) -> usize {
        let Some(h) = self.held.get_mut(&addr) else {
            return 0;
        };
        let (stale, kept): (Vec<HeldAnswer>, Vec<HeldAnswer>) = std::mem::take(&mut h.answers)
            .into_iter()
            .partition(|(a, _)| a.get(1..1 + id.0.len()) == Some(&id.0[..]));
        h.answers = kept;
        self.uncount(&stale);
        stale.len()
    }

    /// If `id` is a probe, forgets it and returns the address it probed.
    pub(crate) fn take_probe(&mut self, id: &MessageId) -> Option<SocketAddr> {
        self.probes.remove(id)
    }

    fn uncount(&mut self, answers: &[HeldAnswer]) {
        self.held_count -= answers.len();
        self.held_bytes -= answers.iter().map(|(a, _)| a.len()).sum::<usize>();
    }

    /// Sizes of the tables (for tests of the bounds).
    pub(crate) fn table_sizes(&self) -> TableSizes {
        TableSizes {
            sources: self.rates.len(),
            inflight_sources: 0,
            unvalidated: self.paths.len(),
            validated: self.validated.len(),
            held_answers: self.held_count,
            held_bytes: self.held_bytes,
        }
    }
}

/// How many entries the per-source tables hold, from
/// [`Endpoint::limit_tables`](super::Endpoint::limit_tables).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableSizes {
    /// Subnets with rate buckets (≤ `max_sources`).
    pub sources: usize,
    /// Subnets with requests in progress (≤ `max_concurrent_requests`).
    pub inflight_sources: usize,
    /// Unvalidated addresses with byte counts (≤ `max_unvalidated_addresses`).
    pub unvalidated: usize,
    /// Validated addresses (≤ `max_validated_addresses`).
    pub validated: usize,
    /// Answers held for probed addresses (≤ `max_held_answers`).
    pub held_answers: usize,
    /// Bytes of held answers (≤ `max_held_bytes`).
    pub held_bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_gen_map_never_holds_more_than_its_capacity() {
        let mut m: GenMap<u32, u32> = GenMap::new(100);
        for i in 0..10_000 {
            *m.entry(i, || 0) += 1;
            assert!(m.len() <= 100);
        }
        // The most recent entries are still there.
        assert!(m.get(&9_999).is_some());
        assert!(m.get(&0).is_none());
    }

    #[test]
    fn a_gen_map_keeps_an_entry_that_is_used_often() {
        let mut m: GenMap<u32, u32> = GenMap::new(10);
        for i in 0..1000 {
            *m.entry(7, || 0) += 1;
            m.entry(100 + i, || 0);
        }
        assert_eq!(m.get(&7), Some(&1000));
    }

    #[test]
    // An origin for virtual time; only differences from it matter.
    #[allow(clippy::disallowed_methods)]
    fn a_token_bucket_refills_at_its_rate_up_to_its_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket {
            tokens: 2.0,
            last: t0,
        };
        assert!(b.take(t0, 10.0, 2.0, 1.0));
        assert!(b.take(t0, 10.0, 2.0, 1.0));
        assert!(!b.take(t0, 10.0, 2.0, 1.0));
        assert!(b.take(t0 + Duration::from_millis(100), 10.0, 2.0, 1.0));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert!(b.take(later, 10.0, 2.0, 1.0));
        assert!(b.take(later, 10.0, 2.0, 1.0));
        assert!(!b.take(later, 10.0, 2.0, 1.0));
    }
}
