use super::*;
use proptest::prelude::*;

fn enc(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(v, &mut out);
    out
}

fn dec(bytes: &[u8]) -> Result<(Value, usize), DecodeError> {
    decode_value(bytes, &DecodeLimits::default())
}

/// Encodes, checks the exact bytes expected, decodes back to the same value using every byte.
#[track_caller]
fn exact(v: Value, expected: &[u8]) {
    let bytes = enc(&v);
    assert_eq!(bytes, expected, "encoding of {v:?}");
    assert_eq!(dec(&bytes), Ok((v, expected.len())));
}

fn header(marker: u8, len_bytes: &[u8]) -> Vec<u8> {
    let mut h = vec![marker];
    h.extend_from_slice(len_bytes);
    h
}

#[test]
fn scalars_encode_as_u_msgpack_python_does() {
    exact(Value::Nil, &[0xc0]);
    exact(Value::Boolean(false), &[0xc2]);
    exact(Value::Boolean(true), &[0xc3]);
    exact(Value::F32(1.5), &[0xca, 0x3f, 0xc0, 0, 0]);
    exact(Value::F64(-2.0), &[0xcb, 0xc0, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn unsigned_integers_use_the_smallest_width_at_every_boundary() {
    let cases: &[(u64, &[u8])] = &[
        (0, &[0x00]),
        (127, &[0x7f]),
        (128, &[0xcc, 0x80]),
        (255, &[0xcc, 0xff]),
        (256, &[0xcd, 0x01, 0x00]),
        (65535, &[0xcd, 0xff, 0xff]),
        (65536, &[0xce, 0, 1, 0, 0]),
        (u32::MAX as u64, &[0xce, 0xff, 0xff, 0xff, 0xff]),
        (u32::MAX as u64 + 1, &[0xcf, 0, 0, 0, 1, 0, 0, 0, 0]),
        (
            u64::MAX,
            &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ),
    ];
    for (n, bytes) in cases {
        exact(Value::from(*n), bytes);
    }
}

#[test]
fn negative_integers_use_the_smallest_width_at_every_boundary() {
    let cases: &[(i64, &[u8])] = &[
        (-1, &[0xff]),
        (-32, &[0xe0]),
        (-33, &[0xd0, 0xdf]),
        (-128, &[0xd0, 0x80]),
        (-129, &[0xd1, 0xff, 0x7f]),
        (-32768, &[0xd1, 0x80, 0x00]),
        (-32769, &[0xd2, 0xff, 0xff, 0x7f, 0xff]),
        (i32::MIN as i64, &[0xd2, 0x80, 0, 0, 0]),
        (
            i32::MIN as i64 - 1,
            &[0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff],
        ),
        (i64::MIN, &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
    ];
    for (n, bytes) in cases {
        exact(Value::from(*n), bytes);
    }
}

#[test]
fn str_lengths_use_the_smallest_header_at_every_boundary() {
    let cases: &[(usize, Vec<u8>)] = &[
        (0, vec![0xa0]),
        (31, vec![0xbf]),
        (32, header(0xd9, &[32])),
        (255, header(0xd9, &[255])),
        (256, header(0xda, &[1, 0])),
        (65535, header(0xda, &[0xff, 0xff])),
        (65536, header(0xdb, &[0, 1, 0, 0])),
    ];
    for (len, head) in cases {
        let s = "x".repeat(*len);
        let mut expected = head.clone();
        expected.extend_from_slice(s.as_bytes());
        exact(Value::from(s), &expected);
    }
}

#[test]
fn bin_lengths_use_the_smallest_header_and_stay_bin() {
    let cases: &[(usize, Vec<u8>)] = &[
        (0, header(0xc4, &[0])),
        (31, header(0xc4, &[31])),
        (32, header(0xc4, &[32])),
        (255, header(0xc4, &[255])),
        (256, header(0xc5, &[1, 0])),
        (65535, header(0xc5, &[0xff, 0xff])),
        (65536, header(0xc6, &[0, 1, 0, 0])),
    ];
    for (len, head) in cases {
        let b = vec![0xabu8; *len];
        let mut expected = head.clone();
        expected.extend_from_slice(&b);
        exact(Value::Binary(b), &expected);
        let (back, _) = dec(&expected).unwrap();
        assert!(back.is_bin(), "bin of {len} bytes came back as {back:?}");
    }
}

#[test]
fn array_and_map_lengths_use_the_smallest_header_at_every_boundary() {
    let cases: &[(usize, u8, u8, Vec<u8>)] = &[
        (0, 0x90, 0x80, vec![]),
        (15, 0x9f, 0x8f, vec![]),
        (16, 0xdc, 0xde, vec![0, 16]),
        (255, 0xdc, 0xde, vec![0, 255]),
        (256, 0xdc, 0xde, vec![1, 0]),
        (65535, 0xdc, 0xde, vec![0xff, 0xff]),
        (65536, 0xdd, 0xdf, vec![0, 1, 0, 0]),
    ];
    for (len, array_marker, map_marker, len_bytes) in cases {
        let items = vec![Value::Nil; *len];
        let mut expected = header(*array_marker, len_bytes);
        expected.extend(std::iter::repeat_n(0xc0, *len));
        exact(Value::Array(items), &expected);

        let pairs: Vec<(Value, Value)> = (0..*len as u64)
            .map(|i| (Value::from(i), Value::Nil))
            .collect();
        let mut expected = header(*map_marker, len_bytes);
        for (k, _) in &pairs {
            encode_value(k, &mut expected);
            expected.push(0xc0);
        }
        exact(Value::Map(pairs), &expected);
    }
}

#[test]
fn ext_uses_fixext_for_sizes_1_2_4_8_16_and_ext8_16_32_otherwise() {
    for len in [0usize, 1, 2, 3, 4, 8, 16, 17, 255, 256, 65535, 65536] {
        let data = vec![0x11u8; len];
        let mut expected = match len {
            1 => vec![0xd4],
            2 => vec![0xd5],
            4 => vec![0xd6],
            8 => vec![0xd7],
            16 => vec![0xd8],
            0..=255 => vec![0xc7, len as u8],
            256..=65535 => header(0xc8, &(len as u16).to_be_bytes()),
            _ => header(0xc9, &(len as u32).to_be_bytes()),
        };
        expected.push((-5i8) as u8);
        expected.extend_from_slice(&data);
        exact(Value::Ext(-5, data), &expected);
    }
}

#[test]
fn non_minimal_widths_are_accepted() {
    let cases: &[(&[u8], Value)] = &[
        (&[0xcc, 0x05], Value::from(5)),
        (&[0xcd, 0, 5], Value::from(5)),
        (&[0xce, 0, 0, 0, 5], Value::from(5)),
        (&[0xcf, 0, 0, 0, 0, 0, 0, 0, 5], Value::from(5)),
        (&[0xd0, 0x05], Value::from(5)),
        (
            &[0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            Value::from(-1),
        ),
        (&[0xd9, 2, b'h', b'i'], Value::from("hi")),
        (&[0xdb, 0, 0, 0, 2, b'h', b'i'], Value::from("hi")),
        (&[0xc6, 0, 0, 0, 1, 9], Value::Binary(vec![9])),
        (&[0xdc, 0, 1, 0xc0], Value::Array(vec![Value::Nil])),
        (&[0xdd, 0, 0, 0, 1, 0xc0], Value::Array(vec![Value::Nil])),
        (
            &[0xdf, 0, 0, 0, 1, 0x01, 0x02],
            Value::Map(vec![(Value::from(1), Value::from(2))]),
        ),
        (&[0xc7, 1, 3, 0xaa], Value::Ext(3, vec![0xaa])),
    ];
    for (bytes, want) in cases {
        assert_eq!(dec(bytes), Ok((want.clone(), bytes.len())), "{bytes:02x?}");
    }
}

#[test]
fn trailing_bytes_are_left_alone_and_reported_unused() {
    assert_eq!(dec(&[0x01, 0xc1, 0xff, 0xff]), Ok((Value::from(1), 1)));
}

#[test]
fn empty_and_truncated_inputs_are_errors() {
    assert_eq!(dec(&[]), Err(DecodeError::Truncated));
    for bytes in [
        &[0xcd, 0x01][..],
        &[0xa3, b'a', b'b'],
        &[0x92, 0x01],
        &[0x81, 0x01],
        &[0xc4, 0x05, 1, 2],
        &[0xd6, 1, 2, 3],
        &[0xcb, 0, 0],
    ] {
        assert_eq!(dec(bytes), Err(DecodeError::Truncated), "{bytes:02x?}");
    }
}

#[test]
fn reserved_marker_is_an_error() {
    assert_eq!(dec(&[0xc1]), Err(DecodeError::ReservedMarker));
    assert_eq!(dec(&[0x91, 0xc1]), Err(DecodeError::ReservedMarker));
}

#[test]
fn invalid_utf8_str_is_an_error_not_a_bin() {
    assert_eq!(dec(&[0xa2, 0xff, 0xfe]), Err(DecodeError::InvalidUtf8));
}

#[test]
fn forged_huge_lengths_fail_without_reserving_memory() {
    // Each would ask for gigabytes if the declared length were believed.
    for bytes in [
        &[0xdd, 0xff, 0xff, 0xff, 0xff][..],
        &[0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02],
        &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
        &[0xc6, 0xff, 0xff, 0xff, 0xff, 0],
        &[0xc9, 0xff, 0xff, 0xff, 0xff, 1, 0],
    ] {
        assert_eq!(dec(bytes), Err(DecodeError::Truncated), "{bytes:02x?}");
    }
}

#[test]
fn nested_containers_cannot_each_claim_the_remaining_bytes() {
    // [array16 of 4, [array16 of 4, ...]] where the inner claims would only fit if the
    // outer's still-owed elements took no bytes: 6 bytes left after the second header,
    // the inner array claims 4 and the outer still owes 3 more elements.
    let bytes = [0xdc, 0, 4, 0xdc, 0, 4, 1, 2, 3, 4, 5, 6];
    assert_eq!(dec(&bytes), Err(DecodeError::Truncated));
    // With exactly enough bytes it decodes.
    let bytes = [0xdc, 0, 4, 0xdc, 0, 4, 1, 2, 3, 4, 5, 6, 7];
    let (v, used) = dec(&bytes).unwrap();
    assert_eq!(used, bytes.len());
    assert_eq!(v.as_array().unwrap().len(), 4);
}

#[test]
fn nesting_is_limited_by_max_depth_without_recursion() {
    let limits = DecodeLimits { max_depth: 3 };
    assert!(decode_value(&[0x91, 0x91, 0x91, 0x01], &limits).is_ok());
    assert!(decode_value(&[0x91, 0x91, 0x90], &limits).is_ok());
    assert_eq!(
        decode_value(&[0x91, 0x91, 0x91, 0x90], &limits),
        Err(DecodeError::TooDeep { limit: 3 })
    );
    assert_eq!(
        decode_value(&[0x91, 0x81, 0x01, 0x91, 0x80], &limits),
        Err(DecodeError::TooDeep { limit: 3 })
    );
    // A million nested arrays: refused at the limit, no stack overflow.
    let deep = vec![0x91u8; 1_000_000];
    assert_eq!(
        dec(&deep),
        Err(DecodeError::TooDeep {
            limit: DEFAULT_MAX_DEPTH
        })
    );
}

#[test]
fn deep_values_encode_without_recursion() {
    let mut v = Value::Nil;
    for _ in 0..100_000 {
        v = Value::Array(vec![v]);
    }
    let bytes = enc(&v);
    assert_eq!(bytes.len(), 100_001);
    let limits = DecodeLimits { max_depth: 100_000 };
    let (back, used) = decode_value(&bytes, &limits).unwrap();
    assert_eq!(used, bytes.len());
    // Drop both iteratively-built values without recursing through 100k levels.
    for value in [v, back] {
        let mut cur = value;
        while let Value::Array(mut items) = cur {
            cur = items.pop().unwrap_or(Value::Nil);
        }
    }
}

#[test]
fn maps_keep_duplicate_and_container_keys_on_receive() {
    let bytes = [0x82, 0x01, 0xc2, 0x01, 0xc3];
    let (v, _) = dec(&bytes).unwrap();
    assert_eq!(v.as_map().unwrap().len(), 2);
    let bytes = [0x81, 0x91, 0x01, 0xc0];
    let (v, _) = dec(&bytes).unwrap();
    assert!(v.as_map().unwrap()[0].0.is_array());
}

#[test]
fn check_sendable_refuses_keys_python_sees_as_equal() {
    let m = |k1: Value, k2: Value| Value::Map(vec![(k1, Value::Nil), (k2, Value::Nil)]);
    for (a, b) in [
        (Value::from(1), Value::from(1)),
        (Value::from(1), Value::Boolean(true)),
        (Value::from(0), Value::Boolean(false)),
        (Value::from(2), Value::F64(2.0)),
        (Value::from(0), Value::F64(-0.0)),
        (Value::F32(0.5), Value::F64(0.5)),
        (Value::from("k"), Value::from("k")),
        (Value::Binary(vec![1]), Value::Binary(vec![1])),
        (Value::Ext(1, vec![2]), Value::Ext(1, vec![2])),
        (Value::Nil, Value::Nil),
    ] {
        assert_eq!(
            check_sendable(&m(a.clone(), b.clone()), 64),
            Err(UnsendableValue::DuplicateMapKey),
            "{a:?} {b:?}"
        );
    }
    for (a, b) in [
        (Value::from("k"), Value::Binary(b"k".to_vec())),
        (Value::from(1), Value::from(2)),
        (Value::F64(f64::NAN), Value::F64(f64::NAN)),
        (Value::F64(0.1), Value::F32(0.1)),
        (Value::Ext(1, vec![2]), Value::Ext(2, vec![2])),
        (Value::from(u64::MAX), Value::from(-1)),
    ] {
        assert_eq!(
            check_sendable(&m(a.clone(), b.clone()), 64),
            Ok(()),
            "{a:?} {b:?}"
        );
    }
}

#[test]
fn check_sendable_refuses_map_keys_invalid_utf8_and_excess_depth() {
    let map_key = Value::Array(vec![Value::Map(vec![(Value::Map(vec![]), Value::Nil)])]);
    assert_eq!(
        check_sendable(&map_key, 64),
        Err(UnsendableValue::UnhashableMapKey)
    );

    let bad_bytes = rmpv::decode::read_value(&mut &[0xa1, 0xff][..]).unwrap();
    assert!(bad_bytes.as_str().is_none());
    assert_eq!(
        check_sendable(&Value::Array(vec![bad_bytes]), 64),
        Err(UnsendableValue::InvalidUtf8)
    );

    let deep = Value::Array(vec![Value::Array(vec![Value::Map(vec![])])]);
    assert_eq!(check_sendable(&deep, 3), Ok(()));
    assert_eq!(
        check_sendable(&deep, 2),
        Err(UnsendableValue::TooDeep { limit: 2 })
    );
    // Nested duplicates are found too.
    let nested = Value::Array(vec![Value::Map(vec![
        (Value::from("a"), Value::Nil),
        (Value::from("a"), Value::Nil),
    ])]);
    assert_eq!(
        check_sendable(&nested, 64),
        Err(UnsendableValue::DuplicateMapKey)
    );
}

/// Any MessagePack value our side can produce (keys unique per map are not required here).
pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Boolean),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f32>()
            .prop_filter("NaN != NaN", |f| !f.is_nan())
            .prop_map(Value::F32),
        any::<f64>()
            .prop_filter("NaN != NaN", |f| !f.is_nan())
            .prop_map(Value::F64),
        ".{0,40}".prop_map(Value::from),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Binary),
        (any::<i8>(), proptest::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(t, d)| Value::Ext(t, d)),
    ];
    leaf.prop_recursive(5, 64, 20, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..20).prop_map(Value::Array),
            proptest::collection::vec((inner.clone(), inner), 0..20).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_never_claim_more_than_they_hold(
        bytes in proptest::collection::vec(any::<u8>(), 0..200)
    ) {
        if let Ok((v, used)) = dec(&bytes) {
            prop_assert!(used <= bytes.len());
            // What decodes re-encodes to at most as many bytes (we only shrink widths).
            prop_assert!(enc(&v).len() <= used);
        }
    }

    #[test]
    fn every_value_round_trips_and_agrees_with_rmpv(v in arb_value()) {
        let bytes = enc(&v);
        prop_assert_eq!(dec(&bytes), Ok((v.clone(), bytes.len())));
        // rmpv's own writer also picks the smallest widths: same bytes.
        let mut theirs = Vec::new();
        rmpv::encode::write_value(&mut theirs, &v).unwrap();
        prop_assert_eq!(&bytes, &theirs);
    }

    #[test]
    fn bit_flipped_encodings_never_panic(v in arb_value(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut bytes = enc(&v);
        for (i, x) in flips {
            let at = i.index(bytes.len());
            bytes[at] ^= x;
        }
        let _ = dec(&bytes);
    }
}

/// `n` arrays nested in one another around `1`, as the Python peers send deep lists.
fn nested_arrays(n: usize) -> Value {
    let mut v = Value::from(1);
    for _ in 0..n {
        v = Value::Array(vec![v]);
    }
    v
}

/// Runs `f` on a thread with `kib` KiB of stack; a stack overflow aborts the test binary.
fn on_stack(kib: usize, f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(kib * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_value_at_the_default_depth_limit_decodes_checks_encodes_and_drops_on_a_256_kib_stack() {
    let depth = DecodeLimits::default().max_depth;
    assert!(depth >= 512, "the Python peers pack about 496 levels");
    let bytes = enc(&nested_arrays(depth));
    on_stack(256, move || {
        let (v, used) = dec(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(check_sendable(&v, depth), Ok(()));
        assert_eq!(enc(&v), bytes);
        drop(v);
        // One level more is refused, by the decoder and by the send check.
        let mut deeper = vec![0x91];
        deeper.extend_from_slice(&bytes);
        assert_eq!(dec(&deeper), Err(DecodeError::TooDeep { limit: depth }));
    });
}

#[test]
fn a_value_at_the_default_depth_limit_clones_compares_and_formats_on_a_tokio_worker_stack() {
    // rmpv's Clone, PartialEq and Debug recurse; a tokio worker thread has 2 MiB.
    let bytes = enc(&nested_arrays(DecodeLimits::default().max_depth));
    on_stack(2048, move || {
        let (v, _) = dec(&bytes).unwrap();
        let copy = v.clone();
        assert_eq!(copy, v);
        assert_eq!(format!("{v:?}").matches("Array").count(), 512);
    });
}

#[test]
fn array_keys_are_sendable_unless_they_hold_a_map() {
    let key = |k: Value| Value::Map(vec![(k, Value::Nil)]);
    let tuple = Value::Array(vec![Value::from(1), Value::from("a")]);
    assert_eq!(check_sendable(&key(tuple.clone()), 64), Ok(()));
    let nested = Value::Array(vec![Value::Array(vec![Value::Binary(vec![1])]), Value::Nil]);
    assert_eq!(check_sendable(&key(nested), 64), Ok(()));
    assert_eq!(check_sendable(&key(Value::Array(vec![])), 64), Ok(()));
    // Equal array keys are not refused: the Python peer does not check them either.
    let twice = Value::Map(vec![(tuple.clone(), Value::Nil), (tuple, Value::Nil)]);
    assert_eq!(check_sendable(&twice, 64), Ok(()));
    // A map anywhere inside the key makes it unhashable to Python.
    let deep_map = Value::Array(vec![Value::Array(vec![Value::Map(vec![])])]);
    assert_eq!(
        check_sendable(&key(deep_map), 64),
        Err(UnsendableValue::UnhashableMapKey)
    );
    // The key counts toward the depth limit like any value.
    let deep_key = key(Value::Array(vec![Value::Array(vec![])]));
    assert_eq!(check_sendable(&deep_key, 3), Ok(()));
    assert_eq!(
        check_sendable(&deep_key, 2),
        Err(UnsendableValue::TooDeep { limit: 2 })
    );
}
