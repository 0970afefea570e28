//! The RPC datagram decoder (`rpcudp_proto::wire::rpc::decode_packet`), both dialects.
//!
//! Input: the first byte picks `max_depth` (0..=80), the rest is one datagram, decoded as
//! `rpcudp` and as `storj`. Checks:
//! - at most one dialect accepts it (their kind bytes are disjoint), and the kind byte
//!   says which; shorter than 22 bytes is always `TooShort`;
//! - what is accepted re-encodes (`encode_request` / `encode_response`) to a datagram
//!   that decodes to the same packet, and re-encoding that is a fixed point;
//! - the id is the datagram's bytes 1..21.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpcudp_fuzz::{assert_reencodes, encoded};
use rpcudp_proto::wire::rpc::{
    decode_packet, encode_request, encode_response, DecodeError, DecodeLimits, Dialect, Packet,
    MIN_DATAGRAM_LEN,
};

fn reencode(dialect: Dialect, p: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    match p {
        Packet::Request { id, method, args } => encode_request(dialect, id, method, args, &mut out),
        Packet::Response { id, value } => encode_response(dialect, id, value, &mut out),
    }
    out
}

/// Packets compared by their encodings (a NaN argument is not equal to itself).
fn same(dialect: Dialect, a: &Packet, b: &Packet) -> bool {
    reencode(dialect, a) == reencode(dialect, b)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, datagram)) = data.split_first() else {
        return;
    };
    let limits = DecodeLimits {
        max_depth: usize::from(first % 81),
    };
    let mut accepted = 0;
    for dialect in [Dialect::Rpcudp, Dialect::Storj] {
        let result = decode_packet(dialect, datagram, &limits);
        if datagram.len() < MIN_DATAGRAM_LEN {
            assert_eq!(
                result,
                Err(DecodeError::TooShort {
                    len: datagram.len()
                })
            );
            continue;
        }
        let kind = datagram[0];
        if kind != dialect.request_kind() && kind != dialect.response_kind() {
            assert_eq!(result, Err(DecodeError::UnknownKind { kind }));
            continue;
        }
        let Ok(packet) = result else { continue };
        accepted += 1;
        assert_eq!(&packet.id().0[..], &datagram[1..21]);
        match &packet {
            Packet::Request { args, .. } => {
                assert_eq!(kind, dialect.request_kind());
                // The body [method, args] is two levels; each argument re-encodes alone.
                let arg_limits = DecodeLimits {
                    max_depth: limits.max_depth.saturating_sub(2),
                };
                for a in args {
                    assert_reencodes(a, &arg_limits);
                }
            }
            Packet::Response { value, .. } => {
                assert_eq!(kind, dialect.response_kind());
                assert_reencodes(value, &limits);
                // The body is the value's encoding, trailing bytes aside.
                let body = encoded(value);
                assert!(body.len() <= datagram.len() - 21);
            }
        }
        let bytes = reencode(dialect, &packet);
        let again = decode_packet(dialect, &bytes, &limits)
            .unwrap_or_else(|e| panic!("our own datagram does not decode: {e}"));
        assert!(
            same(dialect, &packet, &again),
            "re-decoded to another packet"
        );
        assert_eq!(reencode(dialect, &again), bytes, "not a fixed point");
    }
    assert!(accepted <= 1, "both dialects accepted one datagram");
});
