//! The DHT on the simulator with hostile nodes (`rpcudp_sim::hostile`): what disjoint
//! lookup paths and signed records defend. A few hundred nodes, so CI stays fast; the
//! 10,000-node figures are in BENCHMARKS.md ("Hostile networks").

use rpcudp_sim::dht;
use rpcudp_sim::hostile::Attack;

fn hostile(attack: Attack, signed: bool, paths: usize) -> dht::Scenario {
    let mut s = dht::Scenario {
        nodes: 300,
        gets: 40,
        adversarial: 0.2,
        attack,
        signed,
        ..dht::Scenario::default()
    };
    s.node.lookup_paths = paths;
    s
}

fn run(seed: u64, s: &dht::Scenario) -> dht::Report {
    dht::run(seed, s).unwrap_or_else(|e| panic!("{e}"))
}

fn found(r: &dht::Report) -> usize {
    r.found + r.found_new
}

#[test]
fn forgers_answering_every_find_value_get_no_forged_signed_record_accepted() {
    let r = run(1, &hostile(Attack::Forge, true, 2));
    assert_eq!(r.adversarial, 60);
    assert_eq!(r.forged_accepted, 0, "{r:?}");
    assert!(
        found(&r) * 100 >= 2 * r.gets * 95,
        "found {} of {}",
        found(&r),
        2 * r.gets
    );
}

#[test]
fn forgers_do_get_plain_values_accepted_which_is_why_records_are_signed() {
    let r = run(1, &hostile(Attack::Forge, false, 2));
    assert!(r.forged_accepted > 0, "{r:?}");
    assert_eq!(found(&r) + r.forged_accepted, 2 * r.gets - missing(&r));
}

/// Gets that returned nothing at all.
fn missing(r: &dht::Report) -> usize {
    2 * r.gets - found(r) - r.forged_accepted
}

#[test]
fn under_an_eclipse_two_disjoint_paths_find_more_than_one_and_accept_no_forgery() {
    let (mut one, mut two) = (0, 0);
    for seed in [1, 2] {
        let r1 = run(seed, &hostile(Attack::Eclipse, true, 1));
        let r2 = run(seed, &hostile(Attack::Eclipse, true, 2));
        assert_eq!(r1.forged_accepted + r2.forged_accepted, 0);
        one += found(&r1);
        two += found(&r2);
    }
    let gets = 2 * 2 * 40;
    assert!(
        two > one,
        "two paths found {two}, one path {one}, of {gets}"
    );
    assert!(two * 100 >= gets * 80, "two paths found {two} of {gets}");
}

#[test]
fn nodes_that_only_answer_pings_leave_almost_every_value_found() {
    let r = run(1, &hostile(Attack::Drop, false, 2));
    assert_eq!(r.forged_accepted, 0);
    assert!(
        found(&r) * 100 >= 2 * r.gets * 95,
        "found {} of {}",
        found(&r),
        2 * r.gets
    );
}
