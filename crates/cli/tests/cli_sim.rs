//! `rpcudp sim dht` behaves as docs/cli.md says: options, defaults, JSON keys,
//! replay by seed, exit codes. Figures are checked for sense, never for speed.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_rpcudp");

/// Runs `rpcudp ARGS…` to completion (the simulation has no sockets and ends by itself).
fn rpcudp(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("rpcudp starts")
}

fn json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no output: {out:?}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
}

const SMALL: &[&str] = &["sim", "dht", "--nodes", "60", "--gets", "20", "--json"];

#[test]
fn sim_dht_json_has_every_contract_key_with_sensible_figures() {
    let out = rpcudp(SMALL);
    assert!(out.status.success(), "{out:?}");
    let v = json(&out);
    for key in [
        "nodes",
        "seed",
        "gets",
        "get_success_rate",
        "get_success_rate_new",
        "lookup_ms_p50",
        "lookup_ms_p99",
        "hops_mean",
        "messages_per_lookup",
        "wall_s",
    ] {
        assert!(v.get(key).is_some_and(|x| x.is_number()), "{key} in {v}");
    }
    assert_eq!(
        (v["nodes"].as_u64(), v["gets"].as_u64()),
        (Some(60), Some(20))
    );
    assert_eq!(v["seed"].as_u64(), Some(1), "the default seed");
    for rate in ["get_success_rate", "get_success_rate_new"] {
        let r = v[rate].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&r), "{rate} {r}");
    }
    let (p50, p99) = (
        v["lookup_ms_p50"].as_f64().unwrap(),
        v["lookup_ms_p99"].as_f64().unwrap(),
    );
    assert!(p50 <= p99, "{v}");
    assert!(v["messages_per_lookup"].as_f64().unwrap() > 0.0, "{v}");
    // The default kill is a quarter of the nodes.
    assert_eq!(v["killed"].as_u64(), Some(15), "{v}");
}

#[test]
fn sim_dht_replays_the_same_run_for_the_same_seed_and_another_for_another() {
    let figures = |seed: &str| {
        let mut args = SMALL.to_vec();
        args.extend([
            "--seed", seed, "--loss", "0.1", "--rtt-ms", "40", "--kill", "0.5",
        ]);
        let out = rpcudp(&args);
        assert!(out.status.success(), "{out:?}");
        let mut v = json(&out);
        let map = v.as_object_mut().unwrap();
        // Only the wall clock and the memory differ between two runs.
        for key in ["wall_s", "peak_memory_bytes", "memory_per_node_bytes"] {
            map.remove(key);
        }
        v
    };
    let a = figures("7");
    assert_eq!(a["seed"].as_u64(), Some(7));
    assert_eq!(a["killed"].as_u64(), Some(30));
    assert_eq!(a, figures("7"));
    assert_ne!(a["datagrams"], figures("8")["datagrams"]);
}

#[test]
fn sim_dht_prints_a_readable_report_without_json() {
    let out = rpcudp(&["sim", "dht", "--nodes", "30", "--gets", "5"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("30 nodes"), "{text}");
    assert!(text.contains("values stored before the kill"), "{text}");
    assert!(text.contains("values stored after the kill"), "{text}");
    assert!(text.contains("hops per lookup"), "{text}");
}

#[test]
fn sim_dht_mistakes_exit_2_naming_the_input() {
    for (args, names) in [
        (&["--kill", "1.5"][..], "1.5"),
        (&["--loss=-0.1"][..], "-0.1"),
        (&["--rtt-ms", "0"][..], "'0'"),
        (&["--nodes", "1"][..], "--nodes"),
        (&["--gets", "x"][..], "--gets"),
        (&["--adversarial", "2"][..], "'2'"),
        (&["--attack", "sybil"][..], "sybil"),
    ] {
        let mut all = vec!["sim", "dht"];
        all.extend_from_slice(args);
        let out = rpcudp(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(names), "{all:?}: {err}");
    }
}

#[test]
fn sim_dht_with_hostile_forgers_reports_the_attack_and_no_forged_signed_record_accepted() {
    let mut args = SMALL.to_vec();
    args.extend(["--adversarial", "0.2", "--attack", "forge", "--signed"]);
    let out = rpcudp(&args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out);
    assert_eq!(v["adversarial"], serde_json::json!(0.2));
    assert_eq!(v["attack"], "forge");
    assert_eq!(v["signed"], true);
    assert_eq!(v["forged_accepted"], 0, "{v}");
    for key in [
        "nodes",
        "seed",
        "gets",
        "get_success_rate",
        "get_success_rate_new",
        "lookup_ms_p50",
        "lookup_ms_p99",
        "hops_mean",
        "messages_per_lookup",
        "wall_s",
    ] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
    // Plain values have no defence against forgers: some gets take the forgery.
    let mut args = SMALL.to_vec();
    args.extend(["--adversarial", "0.2", "--attack", "forge"]);
    let v = json(&rpcudp(&args));
    assert_eq!(v["signed"], false);
    assert!(v["forged_accepted"].as_u64().unwrap() > 0, "{v}");
}
