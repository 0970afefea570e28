use super::*;

/// The bytes a record's `bin` begins with: array header and tag.
fn prefix(len: u8, tag: &str) -> Vec<u8> {
    let mut p = vec![0x90 | len];
    encode_into(&mut p, &Value::from(tag));
    p
}

const SECRET: [u8; 32] = [42; 32];
const OTHER: [u8; 32] = [43; 32];

fn signed(seq: u64, value: &str) -> SignedRecord {
    SignedRecord::sign(&SECRET, b"s", seq, value.into()).unwrap()
}

fn bytes_of(v: &Value) -> Vec<u8> {
    match v {
        Value::Binary(b) => b.clone(),
        other => panic!("not a bin: {other:?}"),
    }
}

#[test]
fn a_signed_record_verifies_and_round_trips_through_its_wire_value() {
    let rec = signed(5, "v");
    assert_eq!(rec.verify(), Ok(()));
    let got = classify(&rec.target(), &rec.to_value()).unwrap().unwrap();
    assert_eq!(got, Certified::Signed(rec.clone()));
    assert_eq!(got.value(), &Value::from("v"));
    assert_eq!(rec.target(), signed_target(&public_key(&SECRET), b"s"));
}

#[test]
fn the_wire_value_is_one_bin_holding_the_documented_array() {
    let rec = signed(300, "v");
    let b = bytes_of(&rec.to_value());
    let inner = rmpv::decode::read_value(&mut &b[..]).unwrap();
    assert_eq!(
        inner,
        Value::Array(vec![
            SIGNED_TAG.into(),
            Value::Binary(rec.public_key.to_vec()),
            Value::Binary(b"s".to_vec()),
            300u64.into(),
            "v".into(),
            Value::Binary(rec.signature.to_vec()),
        ])
    );
    let imm = ImmutableRecord::new("x".into()).unwrap().to_value();
    let inner = rmpv::decode::read_value(&mut &bytes_of(&imm)[..]).unwrap();
    assert_eq!(inner, Value::Array(vec![IMMUTABLE_TAG.into(), "x".into()]));
}

#[test]
fn the_signature_covers_the_domain_salt_seq_and_value() {
    let rec = signed(7, "v");
    let mut expected = b"rpcudp.signed.v1\0".to_vec();
    expected.push(1);
    expected.push(b's');
    expected.extend_from_slice(&7u64.to_be_bytes());
    expected.extend_from_slice(&[0xa1, b'v']);
    assert_eq!(rec.signed_bytes(), expected);
    // Each part, changed, breaks the signature.
    for tampered in [
        SignedRecord {
            seq: 8,
            ..rec.clone()
        },
        SignedRecord {
            value: "w".into(),
            ..rec.clone()
        },
        SignedRecord {
            salt: b"t".to_vec(),
            ..rec.clone()
        },
        SignedRecord {
            public_key: public_key(&OTHER),
            ..rec.clone()
        },
    ] {
        assert_eq!(
            tampered.verify(),
            Err(RecordError::BadSignature),
            "{tampered:?}"
        );
    }
}

#[test]
fn a_flipped_byte_anywhere_in_a_record_is_refused() {
    let rec = signed(1, "value");
    let key = rec.target();
    let b = bytes_of(&rec.to_value());
    for i in 0..b.len() {
        let mut t = b.clone();
        t[i] ^= 0x01;
        let r = classify(&key, &Value::Binary(t));
        // Bytes 0..18 are the claim's header: flipped, the value is no claim (plain).
        if i < 18 {
            assert_eq!(r, Ok(None), "byte {i}");
        } else {
            assert!(r.is_err(), "byte {i}: {r:?}");
        }
    }
}

#[test]
fn a_record_under_another_key_is_refused_as_such() {
    let rec = signed(1, "v");
    let other = NodeId([9; 20]);
    assert_eq!(
        classify(&other, &rec.to_value()),
        Err(RecordError::WrongTarget)
    );
    let imm = ImmutableRecord::new(Value::Binary(vec![1, 2, 3])).unwrap();
    assert_eq!(imm.target(), immutable_target(&[1, 2, 3]));
    assert_eq!(classify(&other, &imm.to_value()), Err(RecordError::BadHash));
    assert!(classify(&imm.target(), &imm.to_value()).unwrap().is_some());
}

#[test]
fn a_non_canonical_or_truncated_record_is_malformed() {
    let rec = signed(1, "v");
    let key = rec.target();
    let b = bytes_of(&rec.to_value());
    // The seq 1 written as a uint64 instead of a fixint: same record, other bytes.
    let mut items: Vec<u8> = b[..18].to_vec();
    let mut rest = &b[18..];
    let pk = rmpv::decode::read_value(&mut rest).unwrap();
    let salt = rmpv::decode::read_value(&mut rest).unwrap();
    rmpv::encode::write_value(&mut items, &pk).unwrap();
    rmpv::encode::write_value(&mut items, &salt).unwrap();
    rmp::encode::write_u64(&mut items, 1).unwrap();
    items.extend_from_slice(&rest[1..]);
    assert_eq!(
        classify(&key, &Value::Binary(items)),
        Err(RecordError::Malformed)
    );
    assert_eq!(
        classify(&key, &Value::Binary(b[..b.len() - 1].to_vec())),
        Err(RecordError::Malformed)
    );
    let mut longer = b.clone();
    longer.push(0);
    assert_eq!(
        classify(&key, &Value::Binary(longer)),
        Err(RecordError::Malformed)
    );
}

#[test]
fn a_claim_nested_deeply_is_malformed_not_a_panic() {
    let mut b = prefix(6, SIGNED_TAG);
    b.extend(std::iter::repeat_n(0x91, 5000));
    b.push(0xc0);
    assert_eq!(
        classify(&NodeId([0; 20]), &Value::Binary(b)),
        Err(RecordError::Malformed)
    );
}

#[test]
fn plain_values_are_no_claims() {
    for v in [
        Value::from("hello"),
        Value::from(3),
        Value::Binary(vec![0x96, 1, 2]),
        Value::Binary(vec![]),
    ] {
        assert!(!is_record_claim(&v));
        assert_eq!(classify(&NodeId([1; 20]), &v), Ok(None));
    }
    assert!(is_record_claim(&signed(1, "v").to_value()));
}

#[test]
fn signing_refuses_a_long_salt_and_a_non_scalar_value() {
    assert_eq!(
        SignedRecord::sign(&SECRET, &[0; 65], 1, "v".into()),
        Err(RecordError::SaltTooLong)
    );
    assert!(SignedRecord::sign(&SECRET, &[0; 64], 1, "v".into()).is_ok());
    assert_eq!(
        SignedRecord::sign(&SECRET, b"", 1, Value::Array(vec![])),
        Err(RecordError::BadValue)
    );
    assert_eq!(
        ImmutableRecord::new(Value::from(1)),
        Err(RecordError::BadValue)
    );
}

#[test]
fn a_node_keeps_the_highest_seq_and_refuses_a_lower_or_equal_other() {
    let (r3, r4) = (signed(3, "three"), signed(4, "four"));
    let key = r3.target();
    let held = r3.to_value();
    assert_eq!(admit(&key, Some(&held), &r4.to_value()), Ok(()));
    assert_eq!(admit(&key, Some(&held), &held), Ok(()));
    assert_eq!(
        admit(&key, Some(&r4.to_value()), &held),
        Err(Refusal::SeqNotAbove { held: 4 })
    );
    let other3 = signed(3, "another three");
    assert_eq!(
        admit(&key, Some(&held), &other3.to_value()),
        Err(Refusal::SeqNotAbove { held: 3 })
    );
}

#[test]
fn a_plain_value_over_a_held_record_is_refused_but_a_record_replaces_a_plain_value() {
    let rec = signed(1, "v");
    let key = rec.target();
    assert_eq!(
        admit(&key, Some(&rec.to_value()), &"plain".into()),
        Err(Refusal::OverRecord)
    );
    assert_eq!(
        admit(&key, Some(&"garbage".into()), &rec.to_value()),
        Ok(())
    );
    assert_eq!(admit(&key, None, &"plain".into()), Ok(()));
    assert_eq!(admit(&key, Some(&"a".into()), &"b".into()), Ok(()));
    let imm = ImmutableRecord::new("x".into()).unwrap();
    assert_eq!(
        admit(&imm.target(), Some(&imm.to_value()), &Value::from("y")),
        Err(Refusal::OverRecord)
    );
}

#[test]
fn forgeries_are_refused_and_counted_by_reason() {
    let rec = signed(1, "v");
    let key = rec.target();
    let held = rec.to_value();
    let mut counts = RecordRefusals::default();
    let altered = SignedRecord {
        value: "forged".into(),
        seq: 9,
        ..rec.clone()
    };
    let mut garbage = prefix(6, SIGNED_TAG);
    garbage.extend_from_slice(b"\xff\xff");
    for (v, expected) in [
        (
            altered.to_value(),
            Refusal::Invalid(RecordError::BadSignature),
        ),
        (
            Value::Binary(garbage),
            Refusal::Invalid(RecordError::Malformed),
        ),
        (Value::from("plain"), Refusal::OverRecord),
    ] {
        let r = admit(&key, Some(&held), &v).unwrap_err();
        assert_eq!(r, expected);
        counts.count(&r);
    }
    assert_eq!(
        (counts.bad_signature, counts.malformed, counts.over_record),
        (1, 1, 1)
    );
    assert_eq!(counts.by_reason().iter().map(|(_, n)| n).sum::<u64>(), 3);
}

#[test]
fn a_reader_takes_the_highest_valid_seq_and_ignores_forgeries() {
    let mut pick = RecordPick::signed(public_key(&SECRET), b"s".to_vec());
    let forged_high = SignedRecord {
        seq: 100,
        value: "forged".into(),
        ..signed(1, "v")
    };
    let by_other = SignedRecord::sign(&OTHER, b"s", 50, "other".into()).unwrap();
    assert_eq!(pick.offer(&forged_high.to_value()), Offer::Rejected);
    assert_eq!(pick.offer(&signed(2, "two").to_value()), Offer::Best);
    assert_eq!(pick.offer(&Value::from("plain")), Offer::Rejected);
    assert_eq!(pick.offer(&by_other.to_value()), Offer::Rejected);
    assert_eq!(pick.offer(&signed(1, "one").to_value()), Offer::Valid);
    assert_eq!(pick.offer(&signed(2, "two").to_value()), Offer::Valid);
    assert_eq!(pick.offer(&signed(3, "three").to_value()), Offer::Best);
    assert_eq!(pick.rejected, 3);
    assert!(!pick.is_final());
    let best = pick.into_best().unwrap();
    assert_eq!(best.value(), &Value::from("three"));
}

#[test]
fn a_salt_names_another_target() {
    let a = SignedRecord::sign(&SECRET, b"a", 1, "v".into()).unwrap();
    let b = SignedRecord::sign(&SECRET, b"b", 1, "v".into()).unwrap();
    assert_ne!(a.target(), b.target());
    let mut pick = RecordPick::signed(public_key(&SECRET), b"a".to_vec());
    assert_eq!(pick.offer(&b.to_value()), Offer::Rejected);
    assert_eq!(pick.offer(&a.to_value()), Offer::Best);
}

#[test]
fn an_immutable_reader_is_done_at_the_first_valid_answer() {
    let rec = ImmutableRecord::new(Value::Binary(b"data".to_vec())).unwrap();
    let mut pick = RecordPick::immutable(rec.target());
    let wrong = ImmutableRecord::new("other".into()).unwrap();
    assert_eq!(pick.offer(&wrong.to_value()), Offer::Rejected);
    assert_eq!(
        pick.offer(&Value::Binary(b"data".to_vec())),
        Offer::Rejected
    );
    assert!(!pick.is_final());
    assert_eq!(pick.offer(&rec.to_value()), Offer::Best);
    assert_eq!(pick.offer(&rec.to_value()), Offer::Valid);
    assert!(pick.is_final());
    assert_eq!(
        pick.best().unwrap().value(),
        &Value::Binary(b"data".to_vec())
    );
}
