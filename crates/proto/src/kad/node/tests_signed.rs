//! Records nobody can forge, on the in-file network of [`super::Net`]: nodes refuse
//! forged stores with `false` and count them; a record get verifies every answer, goes
//! on past forgeries and keeps the highest seq.

use super::*;
use crate::kad::record::{self, Certified, ImmutableRecord, RecordPick, SignedRecord};

const SECRET: [u8; 32] = [5; 32];

fn signed(seq: u64, value: &str) -> SignedRecord {
    SignedRecord::sign(&SECRET, b"salt", seq, value.into()).unwrap()
}

fn pick() -> RecordPick {
    RecordPick::signed(record::public_key(&SECRET), b"salt".to_vec())
}

fn get_record(net: &mut Net, i: usize, pick: RecordPick) -> Option<Certified> {
    let target = pick.target();
    let q = net.nodes[i].get_record(net.now, pick).unwrap();
    net.flush(i);
    let (r, _) = net.wait(i, q, Duration::from_secs(60));
    let Ok(QueryOutcome::Get { value }) = r else {
        panic!("{r:?}")
    };
    value.map(|v| record::classify(&target, &v).unwrap().unwrap())
}

fn put(net: &mut Net, i: usize, rec: &Certified) -> usize {
    let q = net.nodes[i].put_record(net.now, rec).unwrap();
    net.flush(i);
    let (r, _) = net.wait(i, q, Duration::from_secs(60));
    let Ok(QueryOutcome::Set { acknowledged, .. }) = r else {
        panic!("{r:?}")
    };
    acknowledged
}

#[test]
fn every_node_answers_false_to_each_forgery_and_a_get_still_finds_the_genuine_record() {
    let mut net = Net::new(30, quiet_config());
    net.join_all();
    let rec = signed(1, "genuine");
    let key = rec.target();
    assert!(put(&mut net, 4, &Certified::Signed(rec.clone())) >= 15);
    let altered = SignedRecord {
        value: "altered".into(),
        seq: 2,
        ..rec.clone()
    }
    .to_value();
    let mut garbage = match rec.to_value() {
        Value::Binary(b) => b,
        _ => unreachable!(),
    };
    garbage.truncate(40);
    let mut peer = Peer::new(SocketAddr::from(([127, 0, 0, 1], 9_999)));
    let me = bin(&NodeId([0xee; 20]));
    let mut refused = 0;
    for i in 0..30 {
        if net.nodes[i].local_value(&key, net.now).is_none() {
            continue;
        }
        for forged in [
            Value::from("plain"),
            Value::Binary(garbage.clone()),
            altered.clone(),
        ] {
            let args = [me.clone(), bin(&key), forged];
            let answer = net.ask(&mut peer, i, "store", &args);
            assert_eq!(answer, Some(Value::Boolean(false)), "node {i}");
            refused += 1;
        }
        let r = net.nodes[i].stats().record_refusals;
        assert_eq!(
            (r.over_record, r.malformed, r.bad_signature),
            (1, 1, 1),
            "node {i}"
        );
        assert_eq!(
            net.nodes[i].local_value(&key, net.now).as_deref(),
            Some(&rec.to_value())
        );
    }
    assert!(refused >= 45, "{refused} forgeries refused");
    let got = get_record(&mut net, 17, pick()).unwrap();
    assert_eq!(got, Certified::Signed(rec));
}

#[test]
fn a_get_goes_on_past_forged_answers_and_takes_the_highest_valid_seq() {
    let mut net = Net::new(30, quiet_config());
    net.join_all();
    let rec1 = signed(1, "one");
    let key = rec1.target();
    assert!(put(&mut net, 2, &Certified::Signed(rec1.clone())) >= 15);
    // Nodes that hold whatever they were sent (as Python `kademlia` does): a forged
    // higher seq on most holders, the genuine seq 2 on one of them only.
    let expires = net.now + Duration::from_secs(3600);
    let forged = SignedRecord {
        seq: 99,
        value: "forged".into(),
        ..rec1.clone()
    }
    .to_value();
    let holders: Vec<usize> = (0..30)
        .filter(|&i| net.nodes[i].local_value(&key, net.now).is_some())
        .collect();
    let rec2 = signed(2, "two");
    let (last, rest) = holders.split_last().unwrap();
    for &i in rest {
        net.nodes[i].load_record(net.now, key, forged.clone(), expires);
    }
    net.nodes[*last].load_record(net.now, key, rec2.to_value(), expires);
    // Asked from a node that holds a forgery itself (not the publisher, whose own copy
    // is seq 1): its own copy is one answer that fails.
    let asker = *rest.iter().find(|&&i| i != 2).unwrap();
    let got = get_record(&mut net, asker, pick()).unwrap();
    assert_eq!(got, Certified::Signed(rec2));
    // A plain get takes the first answer (here its own copy), forged or not.
    let (plain, _) = net.get(asker, key);
    assert_eq!(
        plain,
        Ok(QueryOutcome::Get {
            value: Some(forged)
        })
    );
}

#[test]
fn a_higher_seq_replaces_the_held_record_and_a_lower_one_is_refused() {
    let mut net = Net::new(25, quiet_config());
    net.join_all();
    assert!(put(&mut net, 1, &Certified::Signed(signed(5, "five"))) >= 15);
    assert!(put(&mut net, 9, &Certified::Signed(signed(6, "six"))) >= 15);
    // Seq 4 after 6: every holder other than the publisher's own copy refuses.
    let acked = put(&mut net, 11, &Certified::Signed(signed(4, "four")));
    assert_eq!(acked, 0);
    let refused: u64 = net
        .nodes
        .iter()
        .map(|n| n.stats().record_refusals.seq_not_above)
        .sum();
    assert!(refused >= 15, "{refused}");
    let got = get_record(&mut net, 20, pick()).unwrap();
    assert_eq!(got.value(), &Value::from("six"));
}

#[test]
fn an_immutable_record_is_found_by_its_hash_and_a_wrong_one_is_ignored() {
    let mut net = Net::new(25, quiet_config());
    net.join_all();
    let rec = ImmutableRecord::new(Value::Binary(b"content".to_vec())).unwrap();
    let target = rec.target();
    assert!(put(&mut net, 3, &Certified::Immutable(rec.clone())) >= 15);
    // A node made to hold other bytes under the target (as a Python node would).
    let holder = (0..25)
        .find(|&i| i != 3 && net.nodes[i].local_value(&target, net.now).is_some())
        .unwrap();
    let wrong = ImmutableRecord::new("other".into()).unwrap().to_value();
    let expires = net.now + Duration::from_secs(3600);
    net.nodes[holder].load_record(net.now, target, wrong, expires);
    let got = get_record(&mut net, 21, RecordPick::immutable(target)).unwrap();
    assert_eq!(got, Certified::Immutable(rec));
    // Nothing under an unknown target.
    let none = RecordPick::immutable(record::immutable_target(b"nobody stored this"));
    assert_eq!(get_record(&mut net, 21, none), None);
}

#[test]
fn a_client_whose_only_contact_holds_a_forgery_still_finds_the_genuine_record() {
    let mut net = Net::new(25, quiet_config());
    net.join_all();
    let rec = signed(1, "genuine");
    let key = rec.target();
    assert!(put(&mut net, 2, &Certified::Signed(rec.clone())) >= 15);
    // The one node the client knows answers `find_value` with a forgery (as a Python
    // node that was sent one would), and so no contacts.
    let liar = (0..25)
        .find(|&i| i != 2 && net.nodes[i].local_value(&key, net.now).is_some())
        .unwrap();
    let forged = SignedRecord {
        value: "forged".into(),
        ..rec.clone()
    };
    let expires = net.now + Duration::from_secs(3600);
    net.nodes[liar].load_record(net.now, key, forged.to_value(), expires);
    let client = net.add(quiet_config());
    let q = net.nodes[client].introduce(net.now, &[addr(liar)]).unwrap();
    net.flush(client);
    let (joined, _) = net.wait(client, q, Duration::from_secs(10));
    assert!(
        matches!(joined, Ok(QueryOutcome::Bootstrap { answered: 1, .. })),
        "{joined:?}"
    );
    let sent_before = net.sent[client];
    let got = get_record(&mut net, client, pick());
    assert_eq!(got, Some(Certified::Signed(rec)));
    // The liar was asked twice (find_value, then find_node), the others once.
    assert!(net.sent[client] - sent_before >= 3);
}
