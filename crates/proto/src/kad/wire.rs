//! The DHT's RPC shapes (`docs/wire.md` §3, Python `kademlia` 2.2.3): checked
//! parsing of what peers send, and the values we send back. Anything that does not fit is
//! rejected, never a panic.
//!
//! Owns: the MessagePack shapes of ids, contacts, `find_*` answers and `stun` answers.
//! Does not own: the datagram framing (the RPC layer, [`crate::wire::rpc`]) nor what the
//! node does with them ([`super::Node`]).

use super::{Contact, NodeId};
use rmpv::Value;
use std::net::{IpAddr, SocketAddr};

/// An id or key as sent on the wire: `bin` of 20 bytes.
pub fn id_value(id: &NodeId) -> Value {
    Value::Binary(id.0.to_vec())
}

/// Reads a 20-byte `bin` id.
pub fn parse_id(v: &Value) -> Option<NodeId> {
    match v {
        Value::Binary(b) => NodeId::from_slice(b),
        _ => None,
    }
}

/// A contact as `find_node` returns it: `[id, ip, port]`.
pub fn contact_value(c: &Contact) -> Value {
    Value::Array(vec![
        id_value(&c.id),
        Value::from(c.addr.ip().to_string()),
        Value::from(c.addr.port()),
    ])
}

/// Parses one `[id, ip, port]` triple (Python sends tuples as arrays).
pub fn parse_contact(v: &Value) -> Option<Contact> {
    let Value::Array(items) = v else { return None };
    let [id, ip, port] = items.as_slice() else {
        return None;
    };
    let id = parse_id(id)?;
    let ip: IpAddr = ip.as_str()?.parse().ok()?;
    let port = u16::try_from(port.as_u64()?).ok()?;
    if port == 0 {
        return None;
    }
    Some(Contact::new(id, SocketAddr::new(ip, port)))
}

/// What a `find_node` / `find_value` answer holds.
pub enum FindAnswer {
    /// `{"value": v}`: the asked node holds the value.
    Value(Value),
    /// A list of contacts nearer the key (malformed entries skipped).
    Contacts(Vec<Contact>),
}

/// Parses an answer to `find_node` or `find_value`: `{"value": v}` or a list of contacts
/// (malformed entries are skipped, at most `limit` kept). `None` if it is neither.
pub fn parse_find_answer(v: Value, limit: usize) -> Option<FindAnswer> {
    match v {
        Value::Map(pairs) => pairs
            .into_iter()
            .find(|(k, _)| k.as_str() == Some("value"))
            .map(|(_, v)| FindAnswer::Value(v)),
        Value::Array(items) => Some(FindAnswer::Contacts(
            items.iter().filter_map(parse_contact).take(limit).collect(),
        )),
        _ => None,
    }
}

/// The `stun` answer: the sender's address as `[ip, port]`.
pub fn stun_value(from: SocketAddr) -> Value {
    Value::Array(vec![
        Value::from(from.ip().to_string()),
        Value::from(from.port()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_round_trip_and_malformed_ones_are_refused() {
        let c = Contact::new(NodeId::from_bytes([3; 20]), "127.0.0.1:9".parse().unwrap());
        assert_eq!(parse_contact(&contact_value(&c)), Some(c));
        let v6 = Contact::new(NodeId::from_bytes([4; 20]), "[::1]:9".parse().unwrap());
        assert_eq!(parse_contact(&contact_value(&v6)), Some(v6));
        let bad = [
            Value::Nil,
            Value::Array(vec![]),
            Value::Array(vec![
                Value::Binary(vec![1; 19]),
                "127.0.0.1".into(),
                1.into(),
            ]),
            Value::Array(vec![Value::Binary(vec![1; 20]), "nohost".into(), 1.into()]),
            Value::Array(vec![
                Value::Binary(vec![1; 20]),
                "127.0.0.1".into(),
                70000.into(),
            ]),
            Value::Array(vec![
                Value::Binary(vec![1; 20]),
                "127.0.0.1".into(),
                0.into(),
            ]),
            Value::Array(vec![
                Value::from("x".repeat(20)),
                "127.0.0.1".into(),
                1.into(),
            ]),
        ];
        for b in bad {
            assert_eq!(parse_contact(&b), None, "{b}");
        }
    }

    #[test]
    fn find_answers_are_a_value_map_or_a_contact_list() {
        let v = Value::Map(vec![("value".into(), 5.into())]);
        assert!(
            matches!(parse_find_answer(v, 20), Some(FindAnswer::Value(x)) if x == Value::from(5))
        );
        let c = Contact::new(NodeId::from_bytes([3; 20]), "127.0.0.1:9".parse().unwrap());
        let list = Value::Array(vec![contact_value(&c), Value::Nil, contact_value(&c)]);
        match parse_find_answer(list, 1) {
            Some(FindAnswer::Contacts(cs)) => assert_eq!(cs, vec![c]),
            _ => panic!("expected contacts"),
        }
        assert!(parse_find_answer(Value::from(true), 20).is_none());
        assert!(parse_find_answer(Value::Map(vec![]), 20).is_none());
    }
}
