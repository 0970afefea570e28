//! The Kademlia message shapes (`rpcudp_proto::kad::wire`) on arbitrary MessagePack.
//!
//! Input: the first byte is the contact limit of `parse_find_answer`, the next 18 an
//! address for `stun_value`, the rest a MessagePack value (decoded with the bounded
//! decoder; bytes that do not decode are done). Checks:
//! - `parse_id` accepts exactly a 20-byte `bin`, and gives its bytes;
//! - a parsed contact has a port, and `contact_value` of it parses back to it;
//! - `parse_find_answer` keeps at most `limit` contacts, each one `parse_contact` accepts,
//!   and finds a value only in a map with a `"value"` key;
//! - `stun_value` gives `[ip, port]` that reads back as the address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rmpv::Value;
use rpcudp_fuzz::encoded;
use rpcudp_proto::kad::wire::{
    contact_value, id_value, parse_contact, parse_find_answer, parse_id, stun_value, FindAnswer,
};
use rpcudp_proto::wire::value::{decode_value, DecodeLimits};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

fuzz_target!(|data: &[u8]| {
    if data.len() < 19 {
        return;
    }
    let limit = usize::from(data[0] % 32);
    let (addr_bytes, bytes) = data[1..].split_at(18);
    let port = u16::from_be_bytes([addr_bytes[16], addr_bytes[17]]);
    let ip: IpAddr = if addr_bytes[0] & 1 == 0 {
        Ipv4Addr::new(addr_bytes[1], addr_bytes[2], addr_bytes[3], addr_bytes[4]).into()
    } else {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&addr_bytes[..16]);
        Ipv6Addr::from(octets).into()
    };
    let stun = stun_value(SocketAddr::new(ip, port));
    let Value::Array(parts) = &stun else {
        panic!("stun answer is not an array: {stun}")
    };
    assert_eq!(parts.len(), 2);
    assert_eq!(
        parts[0].as_str().and_then(|s| s.parse::<IpAddr>().ok()),
        Some(ip)
    );
    assert_eq!(parts[1].as_u64(), Some(u64::from(port)));

    let Ok((v, _)) = decode_value(bytes, &DecodeLimits::default()) else {
        return;
    };
    match parse_id(&v) {
        Some(id) => {
            assert!(matches!(&v, Value::Binary(b) if b.as_slice() == id.0.as_slice()));
            assert_eq!(id_value(&id), v);
        }
        None => assert!(!matches!(&v, Value::Binary(b) if b.len() == 20)),
    }
    if let Some(c) = parse_contact(&v) {
        assert_ne!(c.addr.port(), 0);
        assert_eq!(parse_contact(&contact_value(&c)), Some(c));
    }
    match parse_find_answer(v.clone(), limit) {
        Some(FindAnswer::Contacts(cs)) => {
            assert!(matches!(v, Value::Array(_)));
            assert!(cs.len() <= limit);
            for c in cs {
                assert_ne!(c.addr.port(), 0);
                assert_eq!(parse_contact(&contact_value(&c)), Some(c));
            }
        }
        Some(FindAnswer::Value(x)) => {
            let Value::Map(pairs) = &v else {
                panic!("a value found outside a map")
            };
            // The first "value" key's value (compared encoded: NaN is not equal to itself).
            let first = pairs.iter().find(|(k, _)| k.as_str() == Some("value"));
            assert_eq!(first.map(|(_, val)| encoded(val)), Some(encoded(&x)));
        }
        None => assert!(!matches!(v, Value::Array(_))),
    }
});
