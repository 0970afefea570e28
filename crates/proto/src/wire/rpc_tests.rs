use super::*;
use proptest::prelude::*;

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

fn request(dialect: Dialect, id: MessageId, method: &str, args: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(dialect, &id, method, args, &mut out);
    out
}

fn response(dialect: Dialect, id: MessageId, value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_response(dialect, &id, value, &mut out);
    out
}

#[test]
fn request_bytes_match_what_the_python_caller_sends() {
    // umsgpack.packb(["sayhi", ("you",)]) == b"\x92\xa5sayhi\x91\xa3you"
    let id = MessageId([0xab; 20]);
    let bytes = request(Dialect::Rpcudp, id, "sayhi", &[Value::from("you")]);
    let mut expected = vec![0x00];
    expected.extend([0xab; 20]);
    expected.extend(b"\x92\xa5sayhi\x91\xa3you");
    assert_eq!(bytes, expected);

    let storj = request(Dialect::Storj, id, "sayhi", &[Value::from("you")]);
    assert_eq!(storj[0], 0x02);
    assert_eq!(storj[1..], expected[1..]);
}

#[test]
fn request_args_use_array16_beyond_fifteen() {
    let args = vec![Value::Nil; 16];
    let bytes = request(Dialect::Rpcudp, MessageId([0; 20]), "m", &args);
    assert_eq!(&bytes[21..26], &[0x92, 0xa1, b'm', 0xdc, 0x00]);
    assert_eq!(bytes[26], 16);
    let Packet::Request { args: back, .. } =
        decode_packet(Dialect::Rpcudp, &bytes, &limits()).unwrap()
    else {
        panic!("not a request")
    };
    assert_eq!(back, args);
}

#[test]
fn response_bytes_are_kind_id_value() {
    let id = MessageId([1; 20]);
    let bytes = response(Dialect::Rpcudp, id, &Value::from("hello"));
    assert_eq!(bytes[0], 0x01);
    assert_eq!(&bytes[21..], b"\xa5hello");
    assert_eq!(response(Dialect::Storj, id, &Value::Nil)[0], 0x03);
}

#[test]
fn both_dialects_round_trip_requests_and_responses() {
    for dialect in [Dialect::Rpcudp, Dialect::Storj] {
        let id = MessageId([9; 20]);
        let args = vec![Value::from(1), Value::Binary(vec![0, 1]), Value::from("s")];
        let got = decode_packet(dialect, &request(dialect, id, "m", &args), &limits()).unwrap();
        assert_eq!(
            got,
            Packet::Request {
                id,
                method: "m".into(),
                args
            }
        );
        let value = Value::Map(vec![(Value::from("k"), Value::F64(1.5))]);
        let got = decode_packet(dialect, &response(dialect, id, &value), &limits()).unwrap();
        assert_eq!(got, Packet::Response { id, value });
    }
}

#[test]
fn datagrams_shorter_than_22_bytes_are_refused() {
    for len in 0..22 {
        let d = vec![0u8; len];
        assert_eq!(
            decode_packet(Dialect::Rpcudp, &d, &limits()),
            Err(DecodeError::TooShort { len })
        );
    }
    // 22 bytes: a response whose body is one byte.
    let mut d = vec![1u8];
    d.extend([0; 20]);
    d.push(0x07);
    assert_eq!(
        decode_packet(Dialect::Rpcudp, &d, &limits()),
        Ok(Packet::Response {
            id: MessageId([0; 20]),
            value: Value::from(7)
        })
    );
}

#[test]
fn kind_bytes_of_the_other_dialect_or_none_are_unknown() {
    for kind in 0..=255u8 {
        let mut d = vec![kind];
        d.extend([0; 20]);
        d.push(0xc0);
        for dialect in [Dialect::Rpcudp, Dialect::Storj] {
            let got = decode_packet(dialect, &d, &limits());
            if kind == dialect.response_kind() {
                assert!(got.is_ok());
            } else if kind == dialect.request_kind() {
                // nil is not a request body
                assert_eq!(got, Err(DecodeError::MalformedRequest));
            } else {
                assert_eq!(
                    got,
                    Err(DecodeError::UnknownKind { kind }),
                    "{dialect} {kind}"
                );
            }
        }
    }
}

#[test]
fn trailing_bytes_after_the_body_are_ignored() {
    let id = MessageId([3; 20]);
    let mut d = request(Dialect::Rpcudp, id, "ping", &[]);
    d.extend(b"\xc1\xff garbage");
    assert_eq!(
        decode_packet(Dialect::Rpcudp, &d, &limits()),
        Ok(Packet::Request {
            id,
            method: "ping".into(),
            args: vec![]
        })
    );
}

#[test]
fn request_bodies_that_are_not_method_and_args_are_malformed() {
    let id = MessageId([0; 20]);
    let bodies: &[&[u8]] = &[
        b"\x91\xa1m",         // [m]
        b"\x93\xa1m\x90\xc0", // [m, [], nil]
        b"\x92\x01\x90",      // [1, []]
        b"\x92\xc4\x01m\x90", // [bin m, []]
        b"\x92\xa1m\xc0",     // [m, nil]
        b"\x92\xa1m\xa1x",    // [m, "x"]
        b"\x81\xa1m\x90",     // {m: []}
        b"\xc0",              // nil
    ];
    for body in bodies {
        let mut d = vec![0];
        d.extend(id.0);
        d.extend(*body);
        assert_eq!(
            decode_packet(Dialect::Rpcudp, &d, &limits()),
            Err(DecodeError::MalformedRequest),
            "{body:02x?}"
        );
    }
    let mut d = vec![0];
    d.extend(id.0);
    d.extend(b"\x92\xa1\xff\x90");
    assert_eq!(
        decode_packet(Dialect::Rpcudp, &d, &limits()),
        Err(DecodeError::InvalidUtf8)
    );
}

#[test]
fn body_errors_propagate_from_the_value_decoder() {
    let mut d = vec![1];
    d.extend([0; 20]);
    d.extend([0xdd, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(
        decode_packet(Dialect::Rpcudp, &d, &limits()),
        Err(DecodeError::Truncated)
    );
    let mut d = vec![1];
    d.extend([0; 20]);
    d.extend([0x91; 600]);
    assert_eq!(
        decode_packet(Dialect::Rpcudp, &d, &limits()),
        Err(DecodeError::TooDeep { limit: 512 })
    );
}

#[test]
fn max_body_is_8192_for_rpcudp_and_8171_for_storj() {
    assert_eq!(Dialect::Rpcudp.max_body(), 8192);
    assert_eq!(Dialect::Storj.max_body(), 8171);
    assert_eq!(HEADER_LEN + Dialect::Storj.max_body(), 8192);
    assert_eq!(Dialect::default(), Dialect::Rpcudp);
}

#[test]
fn message_id_prints_as_hex() {
    let mut id = [0u8; 20];
    id[0] = 0xab;
    id[19] = 0x01;
    let id = MessageId(id);
    assert_eq!(id.to_string(), format!("ab{}01", "00".repeat(18)));
    assert_eq!(
        format!("{id:?}"),
        format!("MessageId(ab{}01)", "00".repeat(18))
    );
}

proptest! {
    #[test]
    fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        for dialect in [Dialect::Rpcudp, Dialect::Storj] {
            let _ = decode_packet(dialect, &bytes, &limits());
        }
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(kind in 0u8..4, body in proptest::collection::vec(any::<u8>(), 1..120)) {
        let mut d = vec![kind];
        d.extend([5; 20]);
        d.extend(body);
        for dialect in [Dialect::Rpcudp, Dialect::Storj] {
            let _ = decode_packet(dialect, &d, &limits());
        }
    }

    #[test]
    fn requests_with_any_args_round_trip(args in proptest::collection::vec(crate::wire::value::tests::arb_value(), 0..20), id in any::<[u8; 20]>()) {
        let id = MessageId(id);
        let d = request(Dialect::Storj, id, "method", &args);
        prop_assert_eq!(decode_packet(Dialect::Storj, &d, &limits()), Ok(Packet::Request { id, method: "method".into(), args }));
    }
}
