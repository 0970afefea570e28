//! Routing-table integrity tests: address changes, subnet limits, verified contacts.

use super::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    Instant::now()
}

fn id_with(first: u8, last: u8) -> NodeId {
    let mut b = [0u8; 20];
    b[0] = first;
    b[19] = last;
    NodeId::from_bytes(b)
}

fn public(a: u8, b: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([203, 0, a, b], port))
}

fn table() -> RoutingTable {
    RoutingTable::new(NodeId::from_bytes([0; 20]), RoutingConfig::default())
}

#[test]
fn forged_pings_with_honest_ids_repoint_none_of_them_while_the_old_addresses_answer() {
    let mut t = table();
    let now = t0();
    let mut rng = SmallRng::seed_from_u64(7);
    // 30 honest contacts, each on its own /24 and verified.
    let honest: Vec<Contact> = (0..30u8)
        .map(|i| Contact::new(NodeId::from_bytes(rng.random()), public(i, 1, 8468)))
        .collect();
    for c in &honest {
        t.insert_verified(*c, now);
    }
    let stored: Vec<Contact> = honest
        .iter()
        .filter(|c| t.contains(&c.id))
        .copied()
        .collect();
    assert!(stored.len() >= 25, "{}", stored.len());
    // The attacker claims every id from one port.
    let attacker = public(200, 9, 6666);
    for c in &stored {
        let outcome = t.insert(Contact::new(c.id, attacker), now);
        assert_eq!(outcome, InsertOutcome::CheckAddress { known: *c });
        // The caller pings the old address; the honest node answers.
        assert_eq!(t.on_address_check(&c.id, true), None);
    }
    for c in &stored {
        assert_eq!(t.find(&c.id), Some(*c));
        assert!(t.is_verified(&c.id));
    }
    let handed_out = t.closest_verified(&NodeId::from_bytes(rng.random()), 20);
    assert!(handed_out.iter().all(|c| c.addr != attacker));
}

#[test]
fn a_contact_moves_only_when_its_old_address_is_silent_and_keeps_verified_only_if_proven() {
    let mut t = table();
    let now = t0();
    let (old, new) = (public(1, 1, 1), public(2, 2, 2));
    let c = Contact::new(id_with(0x80, 1), old);
    t.insert_verified(c, now);
    // Offered unverified (a request from the new address): moves but is not verified.
    assert!(matches!(
        t.insert(Contact::new(c.id, new), now),
        InsertOutcome::CheckAddress { .. }
    ));
    assert_eq!(
        t.on_address_check(&c.id, false),
        Some(Contact::new(c.id, new))
    );
    assert!(!t.is_verified(&c.id));
    assert!(t.closest_verified(&c.id, 20).is_empty());
    // Offered verified (an answer from the newer address): moves verified.
    let newer = public(3, 3, 3);
    t.insert_verified(Contact::new(c.id, newer), now);
    assert_eq!(
        t.on_address_check(&c.id, false),
        Some(Contact::new(c.id, newer))
    );
    assert!(t.is_verified(&c.id));
    // A report with no check under way changes nothing.
    assert_eq!(t.on_address_check(&c.id, false), None);
    assert_eq!(t.find(&c.id), Some(Contact::new(c.id, newer)));
}

#[test]
fn a_second_claimant_waits_and_hearing_the_old_address_cancels_the_move() {
    let mut t = table();
    let now = t0();
    let c = Contact::new(id_with(0x80, 1), public(1, 1, 1));
    t.insert_verified(c, now);
    assert!(matches!(
        t.insert(Contact::new(c.id, public(2, 2, 2)), now),
        InsertOutcome::CheckAddress { .. }
    ));
    assert_eq!(
        t.insert(Contact::new(c.id, public(3, 3, 3)), now),
        InsertOutcome::Queued
    );
    // The old address speaks: it is alive, the move is off.
    assert_eq!(t.insert(c, now), InsertOutcome::Updated);
    assert_eq!(t.on_address_check(&c.id, false), None);
    assert_eq!(t.find(&c.id), Some(c));
    // A check never reported is asked for again (never taken as a failure).
    t.insert(Contact::new(c.id, public(2, 2, 2)), now);
    let later = now + Duration::from_secs(61);
    assert!(matches!(
        t.insert(Contact::new(c.id, public(4, 4, 4)), later),
        InsertOutcome::CheckAddress { .. }
    ));
    assert_eq!(t.find(&c.id), Some(c));
}

#[test]
fn one_24_gets_at_most_two_contacts_per_bucket_and_ten_per_table() {
    let mut t = table();
    let now = t0();
    let mut rng = SmallRng::seed_from_u64(1);
    // 3,200 chosen ids from one IP (many ports).
    let mut full = 0;
    for i in 0..3200u32 {
        let c = Contact::new(
            NodeId::from_bytes(rng.random()),
            public(9, 9, 1000 + i as u16),
        );
        if t.insert_verified(c, now) == InsertOutcome::SubnetFull {
            full += 1;
        }
    }
    assert_eq!(t.len(), 10);
    assert_eq!(t.max_contacts_per_subnet(), 10);
    assert!(full > 3000);
    // Per bucket: ids all in bucket 159 (first bit set), from another /24.
    let mut t = table();
    for i in 0..20u8 {
        t.insert_verified(Contact::new(id_with(0x80 | i, 1), public(7, i, 1)), now);
    }
    assert_eq!(t.len(), 2);
    // And an honest contact of another /24 still gets in.
    let honest = Contact::new(id_with(0xC0, 9), public(8, 1, 1));
    assert_eq!(t.insert_verified(honest, now), InsertOutcome::Inserted);
}

#[test]
fn ipv6_contacts_are_limited_per_64() {
    let mut t = table();
    let now = t0();
    for i in 0..20u8 {
        let addr: SocketAddr = format!("[2001:db8:5:6::{:x}]:4000", i + 1).parse().unwrap();
        t.insert(Contact::new(id_with(0x80 | i, 0), addr), now);
    }
    assert_eq!(t.len(), 2);
    let other: SocketAddr = "[2001:db8:5:7::1]:4000".parse().unwrap();
    assert_eq!(
        t.insert(Contact::new(id_with(0xF0, 0), other), now),
        InsertOutcome::Inserted
    );
}

#[test]
fn local_addresses_are_exempt_from_subnet_limits_unless_strict() {
    let now = t0();
    let mut lenient = table();
    let mut strict = RoutingTable::new(
        NodeId::from_bytes([0; 20]),
        RoutingConfig {
            strict_local: true,
            ..RoutingConfig::default()
        },
    );
    for i in 0..20u8 {
        let c = Contact::new(
            id_with(0x80 | i, 0),
            SocketAddr::from(([127, 0, 0, 1], 2000 + u16::from(i))),
        );
        lenient.insert(c, now);
        strict.insert(c, now);
    }
    assert_eq!(lenient.len(), 20);
    assert_eq!(strict.len(), 2);
}

#[test]
fn only_contacts_that_answered_us_are_handed_out() {
    let mut t = table();
    let now = t0();
    let heard = Contact::new(id_with(0x80, 1), public(1, 1, 1));
    let answered = Contact::new(id_with(0x80, 2), public(2, 2, 2));
    t.insert(heard, now);
    t.insert_verified(answered, now);
    let target = id_with(0x80, 0);
    assert_eq!(
        t.closest(&target, 20).len(),
        2,
        "our own lookups may use both"
    );
    assert_eq!(t.closest_verified(&target, 20), vec![answered]);
    // An answer from another address proves nothing about the stored one.
    assert!(!t.mark_verified(&heard.id, public(3, 3, 3)));
    assert!(!t.is_verified(&heard.id));
    assert!(t.mark_verified(&heard.id, heard.addr));
    assert_eq!(t.closest_verified(&target, 20).len(), 2);
    assert_eq!(
        t.closest_verified_filtered(&target, 20, |c| c.id != answered.id),
        vec![heard]
    );
    // Hearing a request from it later does not take the flag away.
    t.insert(heard, now);
    assert!(t.is_verified(&heard.id));
}

#[test]
fn a_promoted_replacement_still_obeys_the_subnet_limits() {
    let now = t0();
    let mut t = RoutingTable::new(
        NodeId::from_bytes([0; 20]),
        RoutingConfig {
            k: 2,
            max_per_subnet_table: 3,
            ..RoutingConfig::default()
        },
    );
    // Bucket 159: two contacts of subnet A.
    let a1 = Contact::new(id_with(0x80, 1), public(1, 1, 1));
    let a2 = Contact::new(id_with(0x81, 1), public(1, 2, 1));
    t.insert(a1, now);
    t.insert(a2, now);
    // A third of A is refused outright, even as a replacement.
    assert_eq!(
        t.insert(Contact::new(id_with(0x82, 1), public(1, 3, 1)), now),
        InsertOutcome::SubnetFull
    );
    // One of subnet B waits as a replacement.
    let b1 = Contact::new(id_with(0x83, 1), public(2, 1, 1));
    assert_eq!(t.insert(b1, now), InsertOutcome::PingOldest { oldest: a1 });
    // Bucket 158: one more of A fills A's table share (3).
    t.insert(Contact::new(id_with(0x40, 1), public(1, 4, 1)), now);
    assert_eq!(
        t.insert(Contact::new(id_with(0x20, 1), public(1, 5, 1)), now),
        InsertOutcome::SubnetFull
    );
    // a1 dies: b1 is promoted, and A's count drops so A may add one elsewhere.
    assert_eq!(t.on_ping_result(&a1.id, false), Some(b1));
    assert_eq!(
        t.insert(Contact::new(id_with(0x20, 1), public(1, 5, 1)), now),
        InsertOutcome::Inserted
    );
    assert_eq!(t.max_contacts_per_subnet(), 3);
    // Removing everything leaves no count behind.
    for c in t.contacts() {
        t.remove(&c.id);
    }
    assert_eq!(t.max_contacts_per_subnet(), 0);
}

#[test]
fn closest_walking_buckets_outward_returns_exactly_what_a_full_sort_returns() {
    let mut rng = SmallRng::seed_from_u64(99);
    let now = t0();
    for round in 0..8u16 {
        let local = NodeId::from_bytes(rng.random());
        let mut t = RoutingTable::new(local, RoutingConfig::default());
        // Contacts spread over many buckets (near ones too), up to full buckets.
        for i in 0..1500u16 {
            let id = if i % 3 == 0 {
                NodeId::from_bytes(rng.random())
            } else {
                local.random_at_prefix(rng.random_range(0..40), &mut rng)
            };
            let addr = SocketAddr::from(([127, 0, 0, 1], 1000 + i));
            if rng.random_bool(0.7) {
                t.insert_verified(Contact::new(id, addr), now);
            } else {
                t.insert(Contact::new(id, addr), now);
            }
        }
        let all = t.contacts();
        assert!(all.len() > 200, "round {round}: table has {}", all.len());
        for q in 0..30 {
            let target = match q {
                0 => local,
                1..=10 => local.random_at_prefix(rng.random_range(0..160), &mut rng),
                _ => NodeId::from_bytes(rng.random()),
            };
            for count in [0, 1, 3, 20, 25, 5000] {
                let mut want = all.clone();
                want.sort_by_key(|c| c.id.distance(&target));
                want.truncate(count);
                assert_eq!(t.closest(&target, count), want, "round {round}, query {q}");
                let mut want_v: Vec<Contact> = all
                    .iter()
                    .copied()
                    .filter(|c| t.is_verified(&c.id))
                    .collect();
                want_v.sort_by_key(|c| c.id.distance(&target));
                want_v.truncate(count);
                assert_eq!(t.closest_verified(&target, count), want_v);
            }
        }
    }
}
