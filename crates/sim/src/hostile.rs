//! Hostile Kademlia nodes for the simulator (`rpcudp sim dht --adversarial F --attack
//! KIND`, and tests): an ordinary [`kad::Node`] (so it joins, pings and stays in tables
//! like any other) wrapped in a [`SimNode`] whose [`Role`] answers some requests itself.
//!
//! Owns: the three attacks ([`Attack`]) and the hostile nodes' shared knowledge of each
//! other ([`Crowd`]). Does not own: which nodes are hostile or how success is counted
//! (the scenario, [`crate::dht`]), nor any honest behaviour (the wrapped node's).
//!
//! - [`Attack::Eclipse`]: every `find_node` and `find_value` is answered with the k
//!   hostile contacts nearest the key (never a value); every `store` is acknowledged and
//!   dropped. Pings get the node's honest answer, so it stays in tables.
//! - [`Attack::Drop`]: pings are answered, nothing else is.
//! - [`Attack::Forge`]: `find_value` of any key is answered with a forged value (the
//!   scenario says which: a plain value, or a well-formed signed record of a higher seq
//!   with a bad signature); everything else gets the node's honest answer.
//!
//! ```
//! use std::cell::RefCell;
//! use std::rc::Rc;
//! use rpcudp_proto::kad::{Contact, NodeId};
//! use rpcudp_sim::hostile::Crowd;
//!
//! let crowd = Rc::new(RefCell::new(Crowd::default()));
//! for n in [1u8, 2, 0x80, 0xff] {
//!     let addr = format!("10.0.0.{n}:1").parse().unwrap();
//!     crowd.borrow_mut().insert(Contact::new(NodeId::from_bytes([n; 20]), addr));
//! }
//! let near: Vec<u8> = crowd.borrow().nearest(&NodeId::from_bytes([0x81; 20]), 2)
//!     .iter().map(|c| c.id.0[0]).collect();
//! assert_eq!(near, [0x80, 0xff]);
//! ```

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use rmpv::Value;
use rpcudp_proto::kad::{self, wire, Contact, NodeId};
use rpcudp_proto::wire::rpc::{decode_packet, encode_response, Dialect, Packet};
use rpcudp_proto::wire::value::DecodeLimits;
use rpcudp_proto::{Protocol, Transmit};

/// What hostile nodes do (cli.md, `rpcudp sim dht --attack`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// Answer lookups with each other, never a value; acknowledge stores and drop them.
    Eclipse,
    /// Answer pings only.
    Drop,
    /// Answer `find_value` of any key with a forged value.
    Forge,
}

impl Attack {
    /// The name on the command line and in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Attack::Eclipse => "eclipse",
            Attack::Drop => "drop",
            Attack::Forge => "forge",
        }
    }

    /// The attack of that name.
    pub fn from_name(name: &str) -> Option<Attack> {
        [Attack::Eclipse, Attack::Drop, Attack::Forge]
            .into_iter()
            .find(|a| a.name() == name)
    }
}

/// The hostile nodes' contacts, which they all know (a colluding crowd): kept sorted by
/// id, so the k nearest a key are found in O(k log n).
#[derive(Debug, Default)]
pub struct Crowd {
    sorted: Vec<Contact>,
}

impl Crowd {
    /// Adds a hostile node's contact.
    pub fn insert(&mut self, contact: Contact) {
        let at = self.sorted.partition_point(|c| c.id < contact.id);
        self.sorted.insert(at, contact);
    }

    /// How many hostile nodes there are.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether `id` is a hostile node's.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.sorted.binary_search_by(|c| c.id.cmp(id)).is_ok()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The (at most) `k` hostile contacts nearest `target`, nearest first.
    pub fn nearest(&self, target: &NodeId, k: usize) -> Vec<Contact> {
        let mut out = Vec::with_capacity(k);
        nearest_in(&self.sorted, target, 0, k, &mut out);
        out.sort_by_key(|c| c.id.distance(target));
        out
    }
}

/// Bit `bit` of `id`, most significant first.
fn bit_of(id: &NodeId, bit: usize) -> bool {
    id.0[bit / 8] >> (7 - bit % 8) & 1 == 1
}

/// Collects into `out` (up to `k`) the contacts of `ids` (sorted, sharing their first
/// `bit` bits) nearest `target`: the half that agrees with `target` at `bit` is nearer
/// than the other, whatever the lower bits.
fn nearest_in(ids: &[Contact], target: &NodeId, bit: usize, k: usize, out: &mut Vec<Contact>) {
    let room = k.saturating_sub(out.len());
    if room == 0 || ids.is_empty() {
        return;
    }
    if ids.len() <= room || bit >= 8 * kad::ID_LEN {
        out.extend(ids.iter().take(room));
        return;
    }
    let split = ids.partition_point(|c| !bit_of(&c.id, bit));
    let (zeros, ones) = ids.split_at(split);
    let (near, far) = if bit_of(target, bit) {
        (ones, zeros)
    } else {
        (zeros, ones)
    };
    nearest_in(near, target, bit + 1, k, out);
    nearest_in(far, target, bit + 1, k, out);
}

/// Makes the forged value a forger answers for a key.
pub type Forger = Rc<dyn Fn(&NodeId) -> Value>;

/// What makes a [`SimNode`] hostile.
pub struct Role {
    attack: Attack,
    crowd: Rc<RefCell<Crowd>>,
    forger: Forger,
    k: usize,
    out: VecDeque<Transmit>,
    limits: DecodeLimits,
    /// Requests this node answered or dropped itself.
    pub intercepted: u64,
}

impl Role {
    /// A hostile role: `attack`, knowing `crowd`, answering `k` contacts, forging with
    /// `forger` (used by [`Attack::Forge`] only).
    pub fn new(attack: Attack, crowd: Rc<RefCell<Crowd>>, forger: Forger, k: usize) -> Role {
        Role {
            attack,
            crowd,
            forger,
            k,
            out: VecDeque::new(),
            limits: DecodeLimits::default(),
            intercepted: 0,
        }
    }

    /// The attack it plays.
    pub fn attack(&self) -> Attack {
        self.attack
    }

    /// Handles a datagram itself if the attack says so (true), else leaves it to the
    /// wrapped node (false).
    fn intercept(&mut self, from: SocketAddr, local: Option<IpAddr>, datagram: &[u8]) -> bool {
        let Ok(Packet::Request { id, method, args }) =
            decode_packet(Dialect::Rpcudp, datagram, &self.limits)
        else {
            return false; // answers to its own calls, and garbage: the node's
        };
        let key = args.get(1).and_then(wire::parse_id);
        let answer = match (self.attack, method.as_str()) {
            (Attack::Eclipse, "find_node" | "find_value") => {
                let Some(key) = key else { return false };
                let crowd = self.crowd.borrow();
                let near = crowd.nearest(&key, self.k);
                Some(Value::Array(near.iter().map(wire::contact_value).collect()))
            }
            (Attack::Eclipse, "store") => Some(Value::Boolean(true)),
            (Attack::Drop, "ping") => return false,
            (Attack::Drop, _) => None,
            (Attack::Forge, "find_value") => {
                let Some(key) = key else { return false };
                Some(Value::Map(vec![("value".into(), (self.forger)(&key))]))
            }
            _ => return false,
        };
        self.intercepted += 1;
        if let Some(value) = answer {
            let mut payload = Vec::new();
            encode_response(Dialect::Rpcudp, &id, &value, &mut payload);
            self.out.push_back(Transmit {
                destination: from,
                source: local,
                payload,
            });
        }
        true
    }
}

/// A node of the simulated DHT: an honest [`kad::Node`], or one with a hostile [`Role`].
pub struct SimNode {
    node: kad::Node,
    role: Option<Role>,
}

impl SimNode {
    /// An honest node.
    pub fn honest(node: kad::Node) -> SimNode {
        SimNode { node, role: None }
    }

    /// A hostile node: `node` does what `role` leaves to it.
    pub fn hostile(node: kad::Node, role: Role) -> SimNode {
        SimNode {
            node,
            role: Some(role),
        }
    }

    /// The wrapped Kademlia node.
    pub fn kad(&self) -> &kad::Node {
        &self.node
    }

    /// The wrapped Kademlia node, to command.
    pub fn kad_mut(&mut self) -> &mut kad::Node {
        &mut self.node
    }

    /// The hostile role, if any.
    pub fn role(&self) -> Option<&Role> {
        self.role.as_ref()
    }
}

impl Protocol for SimNode {
    type Event = kad::Event;

    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: Option<IpAddr>,
        datagram: &[u8],
    ) {
        if let Some(role) = &mut self.role {
            if role.intercept(from, local, datagram) {
                return;
            }
        }
        self.node.handle_datagram(now, from, local, datagram);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.node.handle_timeout(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.role.as_mut().and_then(|r| r.out.pop_front()) {
            return Some(t);
        }
        self.node.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<kad::Event> {
        self.node.poll_event()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.node.poll_timeout()
    }
}
