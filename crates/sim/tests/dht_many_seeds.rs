//! Many-seed runs of the Kademlia node (`rpcudp_proto::kad::Node`) on the simulated
//! network, with churn and loss. A failure prints its seed; replay one with
//! `SIM_SEED=<seed> cargo test -p rpcudp-sim --test dht_many_seeds`; soak with more seeds
//! with `SIM_SEEDS=<count>`.

use std::time::Duration;

use rpcudp_sim::dht::{run_dht, DhtReport, DhtScenario};

/// The seeds to run: `SIM_SEED` alone if set, else `0..count` (`SIM_SEEDS` overrides
/// `count`).
fn seeds(count: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("SIM_SEED") {
        return vec![s.parse().expect("SIM_SEED must be a number")];
    }
    let count = std::env::var("SIM_SEEDS")
        .map_or(count, |s| s.parse().expect("SIM_SEEDS must be a number"));
    (0..count).collect()
}

/// Runs every seed and checks each report, collecting every failure (with its seed) so
/// one assertion lists them all.
fn run_all(
    scenario: &DhtScenario,
    count: u64,
    check: impl Fn(&DhtReport) -> Result<(), String>,
) -> Vec<DhtReport> {
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for seed in seeds(count) {
        match run_dht(seed, scenario) {
            Ok(r) => {
                if let Err(e) = check(&r) {
                    failures.push(format!("seed {seed}: {e} (replay with SIM_SEED={seed})"));
                }
                reports.push(r);
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing seeds:\n{}",
        failures.len(),
        failures.join("\n")
    );
    reports
}

fn churned_lossy_500() -> DhtScenario {
    DhtScenario {
        nodes: 500,
        gets: 40,
        kill: 0.25,
        rejoin: 0.5,
        loss: 0.05,
        ..DhtScenario::default()
    }
}

#[test]
fn a_churned_lossy_network_of_500_nodes_finds_its_values_quickly_on_every_seed() {
    let scenario = churned_lossy_500();
    let hops_bound = (scenario.nodes as f64).log2() / 2.0 + 2.0;
    let reports = run_all(&scenario, 20, |r| {
        let mut problems = Vec::new();
        if r.joined != r.nodes {
            problems.push(format!("{} of {} joined", r.joined, r.nodes));
        }
        if r.found < r.gets || r.found_new < r.gets {
            problems.push(format!(
                "found {}/{} before the kill, {}/{} after",
                r.found, r.gets, r.found_new, r.gets
            ));
        }
        if r.lookup_latency.p99_ms > 1000.0 {
            problems.push(format!("lookup p99 {:.0} ms", r.lookup_latency.p99_ms));
        }
        if r.hops_mean > hops_bound {
            problems.push(format!("{:.2} hops > {hops_bound:.2}", r.hops_mean));
        }
        if r.sets_acknowledged < r.gets || r.sets_acknowledged_new < r.gets {
            problems.push(format!(
                "{}+{} stores acknowledged",
                r.sets_acknowledged, r.sets_acknowledged_new
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    });
    // The script really did churn: a quarter killed, half of them back as newcomers,
    // and the links lost datagrams.
    for r in &reports {
        assert_eq!((r.killed, r.rejoined), (125, 62), "{r:?}");
        assert!(r.lost > 0);
    }
}

#[test]
fn without_loss_or_kill_every_value_is_found() {
    let scenario = DhtScenario {
        nodes: 200,
        gets: 50,
        kill: 0.0,
        loss: 0.0,
        ..DhtScenario::default()
    };
    run_all(&scenario, 3, |r| {
        if (r.found, r.found_new, r.killed) == (r.gets, r.gets, 0) {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    });
}

#[test]
fn the_same_seed_replays_the_same_dht_run() {
    let scenario = DhtScenario {
        nodes: 100,
        gets: 20,
        rejoin: 0.5,
        ..DhtScenario::default()
    };
    let a = run_dht(5, &scenario).unwrap();
    assert_eq!(a, run_dht(5, &scenario).unwrap());
    assert_ne!(a.datagrams, run_dht(6, &scenario).unwrap().datagrams);
}

#[test]
fn a_run_that_cannot_finish_its_queries_fails_naming_its_seed() {
    // Total loss: every bootstrap fails, and a round limit of zero leaves the first
    // queries pending, which the run reports as an error with its seed.
    let scenario = DhtScenario {
        nodes: 10,
        gets: 1,
        loss: 1.0,
        round_limit: Duration::ZERO,
        ..DhtScenario::default()
    };
    let err = run_dht(4242, &scenario).unwrap_err();
    assert_eq!(err.seed, 4242);
    let text = err.to_string();
    assert!(
        text.contains("never finished") && text.contains("SIM_SEED=4242"),
        "{text}"
    );
}
