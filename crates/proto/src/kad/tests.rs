//! Unit tests of the sans-IO Kademlia pieces, with time driven by hand.

use super::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn id_with(first: u8, last: u8) -> NodeId {
    let mut b = [0u8; 20];
    b[0] = first;
    b[19] = last;
    NodeId::from_bytes(b)
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn contact(first: u8, last: u8) -> Contact {
    Contact::new(
        id_with(first, last),
        addr(1000 + u16::from(first) * 256 + u16::from(last)),
    )
}

/// The one clock read of these tests: every later instant is derived from it by hand.
#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    Instant::now()
}

fn zero() -> NodeId {
    NodeId::from_bytes([0; 20])
}

fn small_table(k: usize, replacements: usize) -> RoutingTable {
    let config = RoutingConfig {
        k,
        replacements,
        ..RoutingConfig::default()
    };
    RoutingTable::new(zero(), config)
}

// ---- ids -------------------------------------------------------------------------

#[test]
fn distance_is_xor_ordered_as_a_big_endian_integer() {
    let a = id_with(0x80, 0);
    let b = id_with(0x01, 0xff);
    assert!(zero().distance(&b) < zero().distance(&a));
    assert_eq!(a.distance(&b), b.distance(&a));
    assert_eq!(a.distance(&a), Distance([0; 20]));
}

#[test]
fn bucket_index_is_the_highest_differing_bit() {
    assert_eq!(zero().distance(&id_with(0x80, 0)).bucket_index(), Some(159));
    assert_eq!(zero().distance(&id_with(0x01, 0)).bucket_index(), Some(152));
    assert_eq!(zero().distance(&id_with(0, 1)).bucket_index(), Some(0));
    assert_eq!(zero().distance(&zero()).bucket_index(), None);
}

#[test]
fn hex_round_trips_and_rejects_bad_text() {
    let id = id_with(0xab, 0xcd);
    let text = id.to_string();
    assert_eq!(text.len(), 40);
    assert_eq!(NodeId::from_hex(&text), Some(id));
    assert_eq!(NodeId::from_hex(&text.to_uppercase()), Some(id));
    assert_eq!(NodeId::from_hex("abc"), None);
    assert_eq!(NodeId::from_hex(&"zz".repeat(20)), None);
    assert_eq!(NodeId::from_slice(&[1u8; 19]), None);
    assert_eq!(
        NodeId::from_slice(&[1u8; 20]),
        Some(NodeId::from_bytes([1; 20]))
    );
}

#[test]
fn random_at_prefix_lands_in_the_asked_bucket() {
    let mut rng = SmallRng::seed_from_u64(7);
    let local = NodeId::random(&mut rng);
    for lz in [0usize, 1, 7, 8, 100, 159] {
        for _ in 0..20 {
            let id = local.random_at_prefix(lz, &mut rng);
            assert_eq!(local.distance(&id).leading_zeros(), lz);
        }
    }
}

// ---- routing table -----------------------------------------------------------------

#[test]
fn own_id_is_never_stored() {
    let mut t = small_table(20, 20);
    let now = t0();
    assert_eq!(
        t.insert(Contact::new(zero(), addr(1)), now),
        InsertOutcome::Ignored
    );
    assert!(t.is_empty());
}

#[test]
fn known_contact_takes_a_new_address_only_after_the_old_one_fails_a_check() {
    let mut t = small_table(2, 5);
    let now = t0();
    let (a, b) = (contact(0x80, 1), contact(0x80, 2));
    t.insert(a, now);
    t.insert(b, now);
    let moved = Contact::new(a.id, addr(9));
    assert_eq!(
        t.insert(moved, now),
        InsertOutcome::CheckAddress { known: a }
    );
    assert_eq!(
        t.find(&a.id),
        Some(a),
        "the old address stays until checked"
    );
    assert_eq!(t.on_address_check(&a.id, false), Some(moved));
    assert_eq!(t.find(&a.id), Some(moved));
    assert_eq!(t.insert(moved, now), InsertOutcome::Updated);
    // `b` is now the oldest: a full bucket asks to ping it, not `a`.
    let c = contact(0x80, 3);
    assert_eq!(t.insert(c, now), InsertOutcome::PingOldest { oldest: b });
}

#[test]
fn full_bucket_asks_to_ping_the_oldest_once_and_queues_the_rest() {
    let mut t = small_table(2, 5);
    let now = t0();
    let (a, b, c, d) = (
        contact(0x80, 1),
        contact(0x80, 2),
        contact(0x80, 3),
        contact(0x80, 4),
    );
    assert_eq!(t.insert(a, now), InsertOutcome::Inserted);
    assert_eq!(t.insert(b, now), InsertOutcome::Inserted);
    assert_eq!(t.insert(c, now), InsertOutcome::PingOldest { oldest: a });
    assert_eq!(t.insert(d, now), InsertOutcome::Queued);
    assert!(!t.contains(&c.id) && !t.contains(&d.id));
    // Other buckets are unaffected.
    assert_eq!(t.insert(contact(0x40, 1), now), InsertOutcome::Inserted);
}

#[test]
fn oldest_that_answers_the_ping_stays_and_the_candidate_waits() {
    let mut t = small_table(2, 5);
    let now = t0();
    let (a, b, c) = (contact(0x80, 1), contact(0x80, 2), contact(0x80, 3));
    t.insert(a, now);
    t.insert(b, now);
    t.insert(c, now);
    assert_eq!(t.on_ping_result(&a.id, true), None);
    assert!(t.contains(&a.id) && t.contains(&b.id) && !t.contains(&c.id));
    // `a` is now the most recent, so the next full insert pings `b`.
    assert_eq!(
        t.insert(contact(0x80, 4), now),
        InsertOutcome::PingOldest { oldest: b }
    );
}

#[test]
fn oldest_that_misses_the_ping_is_replaced_by_the_freshest_candidate() {
    let mut t = small_table(2, 5);
    let now = t0();
    let (a, b, c, d) = (
        contact(0x80, 1),
        contact(0x80, 2),
        contact(0x80, 3),
        contact(0x80, 4),
    );
    t.insert(a, now);
    t.insert(b, now);
    t.insert(c, now);
    t.insert(d, now);
    t.on_ping_result(&a.id, false);
    assert!(!t.contains(&a.id));
    assert!(
        t.contains(&d.id),
        "the most recently offered candidate is promoted"
    );
    assert!(!t.contains(&c.id));
    assert_eq!(t.len(), 2);
}

#[test]
fn unreported_ping_counts_as_dead_after_the_pending_timeout() {
    let mut t = small_table(1, 5);
    let now = t0();
    let (a, b, c) = (contact(0x80, 1), contact(0x80, 2), contact(0x80, 3));
    t.insert(a, now);
    assert_eq!(t.insert(b, now), InsertOutcome::PingOldest { oldest: a });
    assert_eq!(
        t.insert(c, now + Duration::from_secs(59)),
        InsertOutcome::Queued
    );
    // A minute later the oldest is taken for dead: the freshest candidate (c) moves in
    // and the newcomer asks for a ping of it.
    let e = contact(0x80, 5);
    assert_eq!(
        t.insert(e, now + Duration::from_secs(60)),
        InsertOutcome::PingOldest { oldest: c }
    );
    assert!(!t.contains(&a.id));
}

#[test]
fn hearing_from_the_pinged_contact_answers_the_ping() {
    let mut t = small_table(1, 5);
    let now = t0();
    let (a, b, c) = (contact(0x80, 1), contact(0x80, 2), contact(0x80, 3));
    t.insert(a, now);
    t.insert(b, now);
    assert_eq!(t.insert(a, now), InsertOutcome::Updated);
    assert_eq!(t.insert(c, now), InsertOutcome::PingOldest { oldest: a });
}

#[test]
fn replacement_cache_is_bounded_and_keeps_the_freshest() {
    let mut t = small_table(1, 2);
    let now = t0();
    let a = contact(0x80, 1);
    t.insert(a, now);
    for last in 2..=6 {
        t.insert(contact(0x80, last), now);
    }
    assert_eq!(t.on_ping_result(&a.id, false), Some(contact(0x80, 6)));
    t.remove(&id_with(0x80, 6));
    assert!(t.contains(&id_with(0x80, 5)));
    t.remove(&id_with(0x80, 5));
    assert!(t.is_empty(), "only two candidates were kept");
}

#[test]
fn removing_a_failed_contact_promotes_a_replacement() {
    let mut t = small_table(1, 5);
    let now = t0();
    let (a, b) = (contact(0x80, 1), contact(0x80, 2));
    t.insert(a, now);
    t.insert(b, now);
    assert_eq!(t.remove(&a.id), Some(Some(b)), "b is promoted");
    assert_eq!(t.contacts(), vec![b]);
    assert_eq!(t.remove(&a.id), None);
    assert_eq!(t.remove(&b.id), Some(None), "no replacement left");
}

#[test]
fn closest_sorts_by_xor_distance_and_filters() {
    let mut t = small_table(20, 20);
    let now = t0();
    let all: Vec<Contact> = (1..=40u8).map(|i| contact(i, i)).collect();
    for c in &all {
        t.insert(*c, now);
    }
    let target = id_with(7, 0);
    let got = t.closest(&target, 5);
    let mut expected = all.clone();
    expected.sort_by_key(|c| c.id.distance(&target));
    assert_eq!(got, expected[..5].to_vec());
    let filtered = t.closest_filtered(&target, 5, |c| c.id != expected[0].id);
    assert_eq!(filtered, expected[1..6].to_vec());
}

#[test]
fn values_go_to_a_newcomer_nearer_than_our_farthest_when_we_are_nearest() {
    let mut t = small_table(2, 5);
    let now = t0();
    let key = id_with(0, 0x0f);
    // Empty table: everyone gets everything.
    assert!(t.should_replicate_to(&id_with(0x80, 0), &key));
    t.insert(contact(0x40, 0), now);
    t.insert(contact(0x20, 0), now);
    // We (0x00..) are nearer than both; a newcomer nearer than 0x40.. gets it.
    assert!(t.should_replicate_to(&id_with(0x10, 0), &key));
    assert!(!t.should_replicate_to(&id_with(0x80, 0), &key));
    // A contact nearer than us exists: that one is responsible, not us.
    t.insert(contact(0, 0x0e), now);
    assert!(!t.should_replicate_to(&id_with(0x10, 0), &key));
}

#[test]
fn buckets_needing_refresh_are_the_stale_non_empty_ones() {
    let mut t = small_table(20, 20);
    let now = t0();
    let hour = Duration::from_secs(3600);
    assert!(t.buckets_to_refresh(now, hour).is_empty());
    t.insert(contact(0x80, 1), now);
    t.insert(contact(0x01, 1), now);
    assert_eq!(t.buckets_to_refresh(now, hour), vec![152, 159]);
    t.touch(&id_with(0x80, 9), now);
    assert_eq!(t.buckets_to_refresh(now + hour / 2, hour), vec![152]);
    assert_eq!(t.buckets_to_refresh(now + hour, hour), vec![152, 159]);
}

// ---- lookup ------------------------------------------------------------------------

/// A simulated network: every node knows every other; `find_node` answers with the k
/// closest to the target among them (as a real node would).
struct Net {
    nodes: Vec<Contact>,
    dead: Vec<NodeId>,
}

impl Net {
    fn new(n: usize, seed: u64) -> Net {
        let mut rng = SmallRng::seed_from_u64(seed);
        let nodes = (0..n)
            .map(|i| Contact::new(NodeId::random(&mut rng), addr(2000 + i as u16)))
            .collect();
        Net {
            nodes,
            dead: Vec::new(),
        }
    }
    fn answer(&self, target: &NodeId, k: usize) -> Vec<Contact> {
        let mut v = self.nodes.clone();
        v.sort_by_key(|c| c.id.distance(target));
        v.truncate(k);
        v
    }
}

fn config(k: usize, alpha: usize) -> LookupConfig {
    LookupConfig {
        k,
        alpha,
        peer_timeout: Duration::from_secs(5),
        ..LookupConfig::default()
    }
}

/// Drives a lookup to the end, answering synchronously; returns the contacts asked.
fn drive(lookup: &mut Lookup, net: &Net, now: Instant) -> Vec<Contact> {
    let mut asked = Vec::new();
    for _ in 0..10_000 {
        match lookup.next(now) {
            LookupState::Contact(c) => {
                asked.push(c);
                if net.dead.contains(&c.id) {
                    lookup.on_failure(&c.id);
                } else {
                    lookup.on_success(&c.id, net.answer(&lookup.target(), 20));
                }
            }
            LookupState::Waiting(_) => panic!("a synchronous network never leaves it waiting"),
            LookupState::Finished => return asked,
        }
    }
    panic!("lookup did not finish");
}

#[test]
fn lookup_finds_the_k_closest_of_a_network_from_one_seed() {
    let net = Net::new(200, 1);
    let target = NodeId::random(&mut SmallRng::seed_from_u64(99));
    let mut lookup = Lookup::new(target, None, [net.nodes[0]], config(20, 3));
    let now = t0();
    drive(&mut lookup, &net, now);
    assert_eq!(lookup.closest(), net.answer(&target, 20));
}

#[test]
fn disjoint_paths_never_ask_a_node_twice_and_still_find_the_k_closest() {
    let net = Net::new(300, 5);
    let target = NodeId::random(&mut SmallRng::seed_from_u64(7));
    let c = LookupConfig {
        paths: 3,
        ..config(20, 3)
    };
    let seeds: Vec<Contact> = net.nodes.iter().take(12).copied().collect();
    let mut lookup = Lookup::new(target, None, seeds, c);
    let asked = drive(&mut lookup, &net, t0());
    let mut ids: Vec<NodeId> = asked.iter().map(|c| c.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), asked.len(), "a node was asked by two paths");
    assert_eq!(lookup.closest(), net.answer(&target, 20));
}

/// Hostile nodes nearer the target than any honest one, each answering with the others
/// only (an eclipse): one of them among the seeds captures a one-path lookup, which
/// never asks the honest nodes nearest the target; with two paths, the path it did not
/// seed asks them all.
#[test]
fn a_hostile_seed_captures_one_path_but_not_the_other() {
    let net = Net::new(200, 6);
    let target = NodeId::random(&mut SmallRng::seed_from_u64(8));
    let hostile: Vec<Contact> = (0..20u8)
        .map(|i| {
            let mut b = target.0;
            b[19] ^= i + 1; // differs from the target in the last bits only
            Contact::new(NodeId::from_bytes(b), addr(100 + u16::from(i)))
        })
        .collect();
    let honest_nearest = net.answer(&target, 20);
    let asked_with = |paths: usize| {
        let c = LookupConfig {
            paths,
            ..config(20, 3)
        };
        // The hostile seed is the nearest, so it seeds the first path.
        let seeds = [hostile[0], net.nodes[0], net.nodes[1]];
        let mut lookup = Lookup::new(target, None, seeds, c);
        let mut asked = Vec::new();
        for _ in 0..10_000 {
            match lookup.next(t0()) {
                LookupState::Contact(c) => {
                    asked.push(c.id);
                    let answer = if hostile.contains(&c) {
                        hostile.clone()
                    } else {
                        net.answer(&target, 20)
                    };
                    lookup.on_success(&c.id, answer);
                }
                LookupState::Waiting(_) => panic!("synchronous"),
                LookupState::Finished => return asked,
            }
        }
        panic!("lookup did not finish");
    };
    let reached = |asked: &[NodeId]| {
        honest_nearest
            .iter()
            .filter(|c| asked.contains(&c.id))
            .count()
    };
    assert!(reached(&asked_with(1)) < 20, "one path was not captured");
    assert_eq!(reached(&asked_with(2)), 20);
}

#[test]
fn lookup_keeps_at_most_alpha_requests_in_flight() {
    let net = Net::new(50, 2);
    let target = id_with(1, 2);
    let mut lookup = Lookup::new(target, None, net.nodes.clone(), config(20, 3));
    let now = t0();
    let mut sent = Vec::new();
    for _ in 0..3 {
        match lookup.next(now) {
            LookupState::Contact(c) => sent.push(c),
            other => panic!("expected a contact, got {other:?}"),
        }
    }
    assert_eq!(
        lookup.next(now),
        LookupState::Waiting(Some(now + Duration::from_secs(5)))
    );
    lookup.on_success(&sent[0].id, []);
    assert!(matches!(lookup.next(now), LookupState::Contact(_)));
}

#[test]
fn a_converged_lookup_asks_the_rest_of_the_k_nearest_at_once_with_final_alpha() {
    let net = Net::new(50, 2);
    let target = id_with(1, 2);
    let c = LookupConfig {
        final_alpha: 20,
        ..config(20, 3)
    };
    let mut lookup = Lookup::new(target, None, net.nodes.clone(), c);
    let now = t0();
    let nearest = net.answer(&target, 20);
    for expected in &nearest[..3] {
        assert_eq!(lookup.next(now), LookupState::Contact(*expected));
    }
    // Not converged while the nearest three have not all answered: alpha holds.
    lookup.on_success(&nearest[0].id, []);
    lookup.on_success(&nearest[1].id, []);
    assert_eq!(lookup.next(now), LookupState::Contact(nearest[3]));
    assert_eq!(lookup.next(now), LookupState::Contact(nearest[4]));
    assert!(matches!(lookup.next(now), LookupState::Waiting(_)));
    // The nearest three answered: the other 15 of the 20 go out together.
    lookup.on_success(&nearest[2].id, []);
    let mut asked = Vec::new();
    while let LookupState::Contact(c) = lookup.next(now) {
        asked.push(c);
    }
    assert_eq!(asked, nearest[5..].to_vec());
}

#[test]
fn lookup_asks_nearest_candidates_first() {
    let net = Net::new(30, 3);
    let target = id_with(0xaa, 0);
    let mut lookup = Lookup::new(target, None, net.nodes.clone(), config(20, 3));
    let now = t0();
    let nearest = net.answer(&target, 3);
    for expected in nearest {
        assert_eq!(lookup.next(now), LookupState::Contact(expected));
    }
}

#[test]
fn dead_peers_are_skipped_and_do_not_count_among_the_closest() {
    let mut net = Net::new(100, 4);
    let target = NodeId::random(&mut SmallRng::seed_from_u64(5));
    let nearest = net.answer(&target, 5);
    net.dead = nearest.iter().map(|c| c.id).collect();
    // Seeded with every node (a full routing table), so the dead ones are candidates.
    let mut lookup = Lookup::new(target, None, net.nodes.clone(), config(20, 3));
    let asked = drive(&mut lookup, &net, t0());
    assert!(
        nearest.iter().all(|d| asked.contains(d)),
        "the dead were tried"
    );
    let closest = lookup.closest();
    assert_eq!(closest.len(), 20);
    assert!(closest.iter().all(|c| !net.dead.contains(&c.id)));
    let alive: Vec<Contact> = net
        .answer(&target, 25)
        .into_iter()
        .filter(|c| !net.dead.contains(&c.id))
        .collect();
    assert_eq!(closest, alive);
}

#[test]
fn silent_peer_times_out_by_hand_driven_time_and_a_late_answer_still_counts() {
    let a = contact(0x10, 1);
    let b = contact(0x20, 1);
    let mut lookup = Lookup::new(zero(), None, [a, b], config(20, 1));
    let t0 = t0();
    assert_eq!(lookup.next(t0), LookupState::Contact(a));
    let deadline = t0 + Duration::from_secs(5);
    assert_eq!(
        lookup.next(t0 + Duration::from_secs(1)),
        LookupState::Waiting(Some(deadline))
    );
    // At the deadline `a` no longer holds the single slot: `b` is asked.
    assert_eq!(lookup.next(deadline), LookupState::Contact(b));
    lookup.on_success(&b.id, []);
    // `a` answers late: it is used, and the lookup can finish with both.
    assert!(lookup.on_success(&a.id, []));
    assert_eq!(lookup.next(deadline), LookupState::Finished);
    assert_eq!(lookup.closest(), vec![a, b]);
}

#[test]
fn a_lookup_short_of_k_answers_awaits_a_late_answer_for_its_grace_then_ends() {
    let a = contact(0x10, 1);
    let b = contact(0x20, 1);
    let c = LookupConfig {
        late_grace: 2,
        ..config(20, 1)
    };
    let t0 = t0();
    let wait = Duration::from_secs(5);
    for answers in [true, false] {
        let mut lookup = Lookup::new(zero(), None, [a, b], c.clone());
        assert_eq!(lookup.next(t0), LookupState::Contact(a));
        assert_eq!(lookup.next(t0 + wait), LookupState::Contact(b));
        lookup.on_success(&b.id, []);
        // Nothing left to ask, one answer of k: it waits two more of `a`'s waits.
        let grace = t0 + wait * 3;
        assert_eq!(lookup.next(t0 + wait), LookupState::Waiting(Some(grace)));
        if answers {
            assert!(lookup.on_success(&a.id, []));
            assert_eq!(lookup.next(t0 + wait * 2), LookupState::Finished);
            assert_eq!(lookup.closest(), vec![a, b]);
        } else {
            assert_eq!(lookup.next(grace), LookupState::Finished);
            assert_eq!(lookup.closest(), vec![b]);
        }
    }
}

#[test]
fn answers_from_strangers_and_repeated_answers_are_ignored() {
    let a = contact(0x10, 1);
    let stranger = contact(0x01, 1);
    let mut lookup = Lookup::new(zero(), None, [a], config(20, 3));
    let now = t0();
    assert!(!lookup.on_success(&stranger.id, [stranger]));
    assert_eq!(lookup.next(now), LookupState::Contact(a));
    assert!(lookup.on_success(&a.id, []));
    assert!(
        !lookup.on_success(&a.id, [stranger]),
        "a second answer is not taken"
    );
    assert_eq!(lookup.next(now), LookupState::Finished);
}

#[test]
fn lookup_never_contacts_the_local_node() {
    let me = contact(0x10, 1);
    let other = contact(0x20, 1);
    let mut lookup = Lookup::new(zero(), Some(me.id), [me, other], config(20, 3));
    let now = t0();
    assert_eq!(lookup.next(now), LookupState::Contact(other));
    lookup.on_success(&other.id, [me]);
    assert_eq!(lookup.next(now), LookupState::Finished);
    assert_eq!(lookup.closest(), vec![other]);
}

#[test]
fn lookup_with_no_seeds_finishes_at_once_empty() {
    let mut lookup = Lookup::new(zero(), None, [], config(20, 3));
    assert_eq!(lookup.next(t0()), LookupState::Finished);
    assert!(lookup.closest().is_empty());
}

#[test]
fn finish_ends_a_value_lookup_early() {
    let net = Net::new(30, 6);
    let mut lookup = Lookup::new(zero(), None, net.nodes.clone(), config(20, 3));
    let now = t0();
    assert!(matches!(lookup.next(now), LookupState::Contact(_)));
    lookup.finish();
    assert!(lookup.is_finished());
    assert_eq!(lookup.next(now), LookupState::Finished);
}

#[test]
fn hostile_answers_cannot_grow_the_candidate_set_without_bound() {
    let c = LookupConfig {
        max_candidates: 50,
        ..config(20, 3)
    };
    let a = contact(0x10, 1);
    let mut lookup = Lookup::new(zero(), None, [a], c);
    let now = t0();
    let mut rng = SmallRng::seed_from_u64(8);
    assert_eq!(lookup.next(now), LookupState::Contact(a));
    let flood: Vec<Contact> = (0..10_000)
        .map(|i| Contact::new(NodeId::random(&mut rng), addr(i as u16)))
        .collect();
    lookup.on_success(&a.id, flood);
    // Only k of the answer are taken, and never more than the cap overall.
    let mut asked = 0;
    while let LookupState::Contact(c) = lookup.next(now) {
        lookup.on_success(&c.id, []);
        asked += 1;
    }
    assert!(asked <= 20, "asked {asked}");
}

#[test]
fn k_answers_finish_the_lookup_without_asking_farther_nodes() {
    let net = Net::new(60, 9);
    let target = NodeId::random(&mut SmallRng::seed_from_u64(10));
    let mut lookup = Lookup::new(target, None, net.nodes.clone(), config(5, 3));
    let asked = drive(&mut lookup, &net, t0());
    assert_eq!(asked.len(), 5, "only the 5 nearest are asked");
    assert_eq!(lookup.closest(), net.answer(&target, 5));
}

// ---- store -------------------------------------------------------------------------

#[test]
fn only_python_kademlia_value_kinds_are_storable() {
    use rmpv::Value;
    for ok in [
        Value::from(1),
        Value::F64(1.5),
        Value::from(true),
        Value::from("s"),
        Value::Binary(vec![1]),
    ] {
        assert!(is_storable(&ok), "{ok}");
    }
    for bad in [
        Value::Nil,
        Value::Array(vec![]),
        Value::Map(vec![]),
        Value::Ext(1, vec![]),
    ] {
        assert!(!is_storable(&bad), "{bad}");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the network and whoever is dead: the lookup ends, asks each node at
        /// most once, never returns a dead node, and returns the nearest live ones it
        /// heard of, nearest first, at most k.
        #[test]
        fn lookup_ends_and_returns_only_live_nodes_nearest_first(
            seed in any::<u64>(),
            n in 1usize..120,
            dead_every in 2usize..6,
            k in 1usize..25,
            alpha in 1usize..5,
        ) {
            let mut net = Net::new(n, seed);
            net.dead = net.nodes.iter().step_by(dead_every).map(|c| c.id).collect();
            let target = NodeId::random(&mut SmallRng::seed_from_u64(seed ^ 0xdead));
            let seeds: Vec<Contact> = net.nodes.iter().rev().take(3).copied().collect();
            let mut lookup = Lookup::new(target, None, seeds, config(k, alpha));
            let asked = drive(&mut lookup, &net, t0());
            let mut unique = asked.clone();
            unique.sort_by_key(|c| c.id);
            unique.dedup();
            prop_assert_eq!(unique.len(), asked.len(), "a node was asked twice");
            let closest = lookup.closest();
            prop_assert!(closest.len() <= k);
            prop_assert!(closest.iter().all(|c| !net.dead.contains(&c.id)));
            prop_assert!(closest.windows(2).all(|w| w[0].id.distance(&target) < w[1].id.distance(&target)));
            // Every live node that was asked and is nearer than the farthest returned
            // is among the returned.
            if let Some(far) = closest.last().map(|c| c.id.distance(&target)) {
                for c in asked.iter().filter(|c| !net.dead.contains(&c.id)) {
                    if c.id.distance(&target) < far {
                        prop_assert!(closest.contains(c));
                    }
                }
            }
        }

        /// The table never holds more than k per bucket, never its own id, and `closest`
        /// is sorted and without duplicates, whatever is inserted or removed.
        #[test]
        fn routing_table_keeps_its_invariants(
            ops in proptest::collection::vec((any::<[u8; 20]>(), any::<bool>()), 1..300),
            k in 1usize..6,
        ) {
            let mut t = small_table(k, 3);
            let now = t0();
            for (bytes, insert) in ops {
                let id = NodeId::from_bytes(bytes);
                if insert {
                    if let InsertOutcome::PingOldest { oldest } =
                        t.insert(Contact::new(id, addr(1)), now)
                    {
                        t.on_ping_result(&oldest.id, bytes[0] % 2 == 0);
                    }
                } else {
                    t.remove(&id);
                }
            }
            let all = t.contacts();
            prop_assert!(!all.iter().any(|c| c.id == zero()));
            let mut per_bucket = std::collections::HashMap::new();
            for c in &all {
                *per_bucket.entry(zero().distance(&c.id).bucket_index()).or_insert(0) += 1;
            }
            prop_assert!(per_bucket.values().all(|&n| n <= k));
            let target = NodeId::from_bytes([0x5a; 20]);
            let closest = t.closest(&target, all.len());
            prop_assert_eq!(closest.len(), all.len());
            prop_assert!(closest.windows(2).all(|w| w[0].id.distance(&target) < w[1].id.distance(&target)));
        }
    }
}
