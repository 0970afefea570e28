//! Many-seed runs of the simulated network. A failure prints its seed; replay one with
//! `SIM_SEED=<seed> cargo test -p rpcudp-sim`; soak with more seeds with `SIM_SEEDS=<count>`.

use std::time::Duration;

use rpcudp_proto::rpc::{CallOptions, EndpointConfig};
use rpcudp_proto::wire::rpc::Dialect;
use rpcudp_sim::rpc::{run, Report, Scenario};
use rpcudp_sim::{Delay, LinkConfig};

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

/// Runs every seed, collecting all failures so one report lists every failing seed.
fn run_all(config: &Scenario, count: u64) -> Vec<Report> {
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for seed in seeds(count) {
        match run(seed, config) {
            Ok(r) => reports.push(r),
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

#[test]
fn lossy_network_calls_end_exactly_once_and_handlers_run_at_most_once() {
    let reports = run_all(&Scenario::default(), 200);
    assert!(
        reports.iter().all(|r| r.reruns_after_eviction == 0),
        "the default cache never evicts here"
    );
    let succeeded: u64 = reports.iter().map(|r| r.succeeded).sum();
    let calls: u64 = reports.iter().map(|r| r.calls).sum();
    let lost: u64 = reports.iter().map(|r| r.lost).sum();
    let duplicated: u64 = reports.iter().map(|r| r.duplicated).sum();
    let forged: u64 = reports.iter().map(|r| r.forged).sum();
    // The network really was hostile, and retries still got most calls through
    // (10% are to `nosuch` and must time out).
    assert!(
        lost > 0 && duplicated > 0 && forged > 0,
        "{lost} {duplicated} {forged}"
    );
    assert!(succeeded * 100 >= calls * 80, "{succeeded} of {calls}");
    let retries: u64 = reports
        .iter()
        .flat_map(|r| &r.stats)
        .map(|s| s.retries)
        .sum();
    let answered: u64 = reports
        .iter()
        .flat_map(|r| &r.stats)
        .map(|s| s.duplicates_answered)
        .sum();
    let spoofed: u64 = reports
        .iter()
        .flat_map(|r| &r.stats)
        .map(|s| s.spoofed_responses)
        .sum();
    assert!(
        retries > 0 && answered > 0 && spoofed > 0,
        "{retries} {answered} {spoofed}"
    );
}

#[test]
fn without_loss_every_call_to_a_known_method_succeeds() {
    let config = Scenario {
        link: LinkConfig {
            loss: 0.0,
            duplicate: 0.2,
            ..Scenario::default().link
        },
        spoof: 0.2,
        ..Scenario::default()
    };
    for r in run_all(&config, 50) {
        let nosuch: u64 = r.stats.iter().map(|s| s.requests_abandoned).sum();
        assert_eq!(r.succeeded + nosuch, r.calls, "{r:?}");
    }
}

#[test]
fn without_retries_calls_still_end_exactly_once() {
    let config = Scenario {
        call_options: CallOptions {
            attempt_timeout: Duration::from_millis(200),
            retries: 0,
            ..CallOptions::default()
        },
        link: LinkConfig {
            loss: 0.3,
            ..Scenario::default().link
        },
        ..Scenario::default()
    };
    let reports = run_all(&config, 100);
    assert!(reports
        .iter()
        .all(|r| r.stats.iter().all(|s| s.retries == 0)));
}

#[test]
fn total_loss_times_every_call_out_and_runs_no_handler() {
    let config = Scenario {
        link: LinkConfig {
            loss: 1.0,
            ..Scenario::default().link
        },
        ..Scenario::default()
    };
    for r in run_all(&config, 20) {
        assert_eq!((r.succeeded, r.handler_runs, r.timed_out), (0, 0, r.calls));
    }
}

#[test]
fn heavy_reordering_and_slow_handlers_keep_the_invariants() {
    let config = Scenario {
        link: LinkConfig {
            loss: 0.2,
            duplicate: 0.3,
            delay: Delay::Uniform {
                min: Duration::from_millis(1),
                max: Duration::from_millis(400),
            },
            ..Scenario::default().link
        },
        handler_delay: (Duration::from_millis(100), Duration::from_millis(900)),
        ..Scenario::default()
    };
    let reports = run_all(&config, 100);
    let in_progress: u64 = reports
        .iter()
        .flat_map(|r| &r.stats)
        .map(|s| s.duplicates_in_progress)
        .sum();
    assert!(
        in_progress > 0,
        "slow handlers see resends while in progress"
    );
}

#[test]
fn storj_dialect_keeps_the_invariants() {
    let config = Scenario {
        endpoint: EndpointConfig::for_dialect(Dialect::Storj),
        ..Scenario::default()
    };
    run_all(&config, 50);
}

#[test]
fn tight_limits_drop_and_refuse_but_never_break_the_invariants() {
    let config = Scenario {
        nodes: 3,
        calls_per_node: 40,
        start_window: Duration::from_millis(100),
        endpoint: EndpointConfig {
            max_concurrent_requests: 2,
            dedup_capacity: 4,
            ..EndpointConfig::default()
        },
        ..Scenario::default()
    };
    let reports = run_all(&config, 50);
    let dropped: u64 = reports
        .iter()
        .flat_map(|r| &r.stats)
        .map(|s| s.requests_dropped_overload)
        .sum();
    assert!(dropped > 0, "the concurrency limit was reached");
    // A 4-entry cache forgets answers a resend may still ask for: the one case where a
    // handler may run twice, and the simulator allows it only after an eviction.
    let evictions: u64 = reports
        .iter()
        .flat_map(|r| &r.stats)
        .map(|s| s.dedup_evictions)
        .sum();
    assert!(evictions > 0);
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let config = Scenario::default();
    for seed in [0, 1, 99] {
        assert_eq!(run(seed, &config).unwrap(), run(seed, &config).unwrap());
    }
    assert_ne!(run(0, &config).unwrap(), run(1, &config).unwrap());
}

#[test]
fn a_failing_run_names_its_seed_for_replay() {
    let config = Scenario {
        max_steps: 10,
        ..Scenario::default()
    };
    let err = run(1234, &config).unwrap_err();
    assert_eq!(err.seed, 1234);
    let text = err.to_string();
    assert!(
        text.contains("did not settle") && text.contains("SIM_SEED=1234"),
        "{text}"
    );
}
