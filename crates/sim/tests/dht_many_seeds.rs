//! Many-seed runs of the Kademlia node (`rpcudp_proto::kad::Node`) on the simulated
//! network, with churn and loss. A failure prints its seed; replay one with
//! `SIM_SEED=<seed> cargo test -p rpcudp-sim --test dht_many_seeds`; soak with more seeds
//! with `SIM_SEEDS=<count>`.

use std::time::Duration;

use rpcudp_sim::dht;

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
    scenario: &dht::Scenario,
    count: u64,
    check: impl Fn(&dht::Report) -> Result<(), String>,
) -> Vec<dht::Report> {
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for seed in seeds(count) {
        match dht::run(seed, scenario) {
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

fn churned_lossy_500() -> dht::Scenario {
    dht::Scenario {
        nodes: 500,
        gets: 40,
        kill: 0.25,
        rejoin: 0.5,
        loss: 0.05,
        ..dht::Scenario::default()
    }
}

/// What the node achieves on this scenario on every seed, with margin (measured on seeds
/// 0-19 with kad::Node 06cc5c1: 70-97% found per round, p99 2.4-9.9 s, at most 1 node
/// of 500 not joined, at least 36 of 40 stores acknowledged): a regression floor. The
/// issue's targets are [`issue_9_targets_on_a_churned_lossy_network_of_500_nodes`].
/// 6 seeds by default to keep CI time down (about 7 s of CPU each in debug); soak with
/// `SIM_SEEDS=20` or more.
#[test]
fn a_churned_lossy_network_of_500_nodes_ends_every_query_and_finds_most_values() {
    let scenario = churned_lossy_500();
    let hops_bound = (scenario.nodes as f64).log2() / 2.0 + 2.0;
    let reports = run_all(&scenario, 6, |r| {
        let mut problems = Vec::new();
        if r.joined * 100 < r.nodes * 99 {
            problems.push(format!("{} of {} joined", r.joined, r.nodes));
        }
        if r.found * 100 < r.gets * 60 || r.found_new * 100 < r.gets * 60 {
            problems.push(format!(
                "found {}/{} before the kill, {}/{} after",
                r.found, r.gets, r.found_new, r.gets
            ));
        }
        // Every lookup ends within a few RPC timeouts (5 s each), never hangs.
        if r.lookup_latency.max_ms > 20_000.0 {
            problems.push(format!("slowest lookup {:.0} ms", r.lookup_latency.max_ms));
        }
        if r.hops_mean > hops_bound {
            problems.push(format!("{:.2} hops > {hops_bound:.2}", r.hops_mean));
        }
        if r.sets_acknowledged * 100 < r.gets * 80 || r.sets_acknowledged_new * 100 < r.gets * 80 {
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
        assert_eq!(r.killed, 125, "{r:?}");
        assert!(r.rejoined > 0 && r.rejoined <= 63, "{r:?}");
        assert!(r.lost > 0);
    }
    // Over all seeds, most values are found (measured: 88%).
    let found: usize = reports.iter().map(|r| r.found + r.found_new).sum();
    let asked: usize = reports.iter().map(|r| 2 * r.gets).sum();
    assert!(found * 100 >= asked * 80, "{found} of {asked} found");
}

/// Issue 9's targets on the same scenario: every value found before and after the kill,
/// lookup p99 within 1 s, mean hops within log2(N)/2 + 2, on every seed. Measured on
/// seeds 0-19 (helper `simperf`, aa0c880, release): 40/40 found in both rounds on every
/// seed, p99 437-953 ms, 1.62-2.00 hops, all 500 joined. 6 seeds by default, as the floor
/// above; soak with `SIM_SEEDS=20` or more.
#[test]
fn issue_9_targets_on_a_churned_lossy_network_of_500_nodes() {
    let scenario = churned_lossy_500();
    let hops_bound = (scenario.nodes as f64).log2() / 2.0 + 2.0;
    run_all(&scenario, 6, |r| {
        let mut problems = Vec::new();
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
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    });
}

#[test]
fn without_loss_or_kill_every_value_is_found() {
    let scenario = dht::Scenario {
        nodes: 200,
        gets: 50,
        kill: 0.0,
        loss: 0.0,
        ..dht::Scenario::default()
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
    let scenario = dht::Scenario {
        nodes: 100,
        gets: 20,
        rejoin: 0.5,
        ..dht::Scenario::default()
    };
    let a = dht::run(5, &scenario).unwrap();
    assert_eq!(a, dht::run(5, &scenario).unwrap());
    assert_ne!(a.datagrams, dht::run(6, &scenario).unwrap().datagrams);
}

#[test]
fn a_run_that_cannot_finish_its_queries_fails_naming_its_seed() {
    // Total loss: every bootstrap fails, and a round limit of zero leaves the first
    // queries pending, which the run reports as an error with its seed.
    let scenario = dht::Scenario {
        nodes: 10,
        gets: 1,
        loss: 1.0,
        round_limit: Duration::ZERO,
        ..dht::Scenario::default()
    };
    let err = dht::run(4242, &scenario).unwrap_err();
    assert_eq!(err.seed, 4242);
    let text = err.to_string();
    assert!(
        text.contains("never finished") && text.contains("SIM_SEED=4242"),
        "{text}"
    );
}
