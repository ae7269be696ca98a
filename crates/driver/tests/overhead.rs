//! `chimeraforge overhead` as a user runs it: the probes it is asked for (on the floor
//! too, with each backend's ratios to it), under both connection policies unless
//! `--connection` names one, the simulator's share of the TTFT bias, CPU pinning, and a
//! clear error for an unknown probe.

use std::path::Path;
use std::process::{Command, Output};

fn overhead(args: &[&str], out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chimeraforge"))
        .arg("overhead")
        .args(["--backends", "tokio-default", "--quick", "--out"])
        .arg(out)
        .args(args)
        .output()
        .expect("binary runs")
}

/// The figures of `overhead.json` under each of `policies`, in the order they ran: per
/// policy the floor's (run first, on the same probes), then the one backend's.
fn figures(out: &Path, policies: &[&str]) -> Vec<(serde_json::Value, serde_json::Value)> {
    let text = std::fs::read_to_string(out.join("overhead.json")).expect("overhead.json");
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2 * policies.len(), "{all}");
    policies
        .iter()
        .enumerate()
        .map(|(i, policy)| {
            let (floor, backend) = (&all[2 * i], &all[2 * i + 1]);
            assert_eq!(floor["backend"], "floor", "{all}");
            assert_eq!(backend["backend"], "tokio-default", "{all}");
            assert_eq!(floor["connection"], *policy, "{all}");
            assert_eq!(backend["connection"], *policy, "{all}");
            (floor.clone(), backend.clone())
        })
        .collect()
}

/// The backend's figures of a run under keep-alive alone (see [`figures`]).
fn json(out: &Path) -> serde_json::Value {
    figures(out, &["keep-alive"]).remove(0).1
}

/// Every call's measured TTFT contains the server's lateness for that call (the schedule
/// starts at the request's arrival), so the measured bias dominates the server's share at
/// every percentile. A share taken from the wrong calls, or timed from the arrival instead
/// of the schedule (≥ 50 ms), breaks that.
fn assert_server_share_is_inside_the_bias(b: &serde_json::Value) {
    let f = |k: &str| {
        b[k].as_f64()
            .unwrap_or_else(|| panic!("{k} missing in {b}"))
    };
    assert!(f("server_p50_ms") >= 0.0, "{b}");
    assert!(f("server_p50_ms") <= f("p50_ms"), "{b}");
    assert!(f("server_p99_ms") <= f("p99_ms"), "{b}");
    assert!(f("p50_ms") < 50.0, "bias of a whole TTFT: {b}");
}

/// Both connection policies by default: every probe on the floor and the backend under
/// keep-alive, then under fresh, each backend divided by the floor of its own policy.
#[test]
fn runs_only_the_probes_asked_for_and_splits_the_bias() {
    let dir = tempfile::tempdir().unwrap();
    let o = overhead(&["--probes", "ttft-1,ideal-2,mem-64"], dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let measured = figures(dir.path(), &["keep-alive", "fresh"]);
    for (floor, r) in &measured {
        probes_and_ratios(floor, r);
    }
    // Under fresh every call opened its connection, under keep-alive only warm-up did.
    let runs = std::fs::read_to_string(dir.path().join("runs.jsonl")).unwrap();
    let opened = |policy: &str| -> u64 {
        runs.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["connection"] == policy && r["backend"] == "tokio-default")
            .flat_map(|r| {
                let calls: Vec<serde_json::Value> = r["concurrent"]["agents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|a| a["calls"].as_array().unwrap().clone())
                    .collect();
                calls
            })
            .map(|c| c["connections_opened"].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(opened("keep-alive"), 0, "keep-alive reconnected");
    // --quick: one run of ttft-1 (8 calls), ideal-2 (2 × 4) and mem-64 (64 × 1).
    assert_eq!(opened("fresh"), 8 + 8 + 64, "fresh reused connections");
    let md = std::fs::read_to_string(dir.path().join("overhead.md")).unwrap();
    assert!(md.contains("Against the floor"), "{md}");
    assert!(md.contains("The simulator's share"), "{md}");
    assert!(md.contains("shared every CPU"), "{md}");
    assert!(md.contains("| tokio-default | fresh |"), "{md}");
}

/// One policy's figures of `ttft-1,ideal-2,mem-64`: the backend's `r` and the `floor`'s.
fn probes_and_ratios(floor: &serde_json::Value, r: &serde_json::Value) {
    let bias = r["ttft_bias_ms"].as_array().unwrap();
    let ns: Vec<u64> = bias.iter().map(|b| b["agents"].as_u64().unwrap()).collect();
    assert_eq!(ns, [1, 2, 64], "{r}");
    // ttft-1: 8 calls in each of the two phases; ideal-2: 2 agents × 4 calls, concurrent;
    // mem-64: 64 agents × 1 call, concurrent only.
    assert_eq!(bias[0]["samples"], 16);
    assert_eq!(bias[1]["samples"], 8);
    assert_eq!(bias[2]["samples"], 64);
    // Spreads only for the one-call burst.
    assert!(bias[1]["arrival_spread_ms"].is_null(), "{r}");
    let spread = |k: &str| bias[2][k].as_f64().unwrap_or_else(|| panic!("{k}: {r}"));
    assert!(
        spread("send_spread_ms") > 0.0 && spread("arrival_spread_ms") > 0.0,
        "{r}"
    );
    bias.iter().for_each(assert_server_share_is_inside_the_bias);
    assert_eq!(r["efficiency"].as_array().unwrap().len(), 1, "{r}");
    let cpu = r["cpu_per_call_us"].as_array().unwrap();
    assert_eq!(cpu.len(), 3, "{r}");
    assert!(cpu.iter().all(|c| c[1].as_f64().unwrap() > 0.0), "{r}");
    assert!(
        r["ingest"].as_array().unwrap().is_empty(),
        "null probes ran: {r}"
    );
    assert!(r["pinned"].is_null());
    // The floor ran the same probes, and the backend's figures are divided by its.
    let floor_ns: Vec<u64> = floor["ttft_bias_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["agents"].as_u64().unwrap())
        .collect();
    assert_eq!(floor_ns, [1, 2, 64], "{floor}");
    assert!(floor["notes"].as_array().unwrap().is_empty(), "{floor}");
    assert!(floor["vs_floor"].is_null(), "{floor}");
    let ratios = r["vs_floor"]["ttft_bias"].as_array().expect("vs_floor");
    assert_eq!(ratios.len(), 3, "{r}");
    assert!(
        ratios.iter().all(|b| b["p99"].as_f64().unwrap() > 0.0),
        "{r}"
    );
    assert_eq!(
        r["vs_floor"]["cpu_per_call"].as_array().unwrap().len(),
        3,
        "{r}"
    );
}

#[test]
fn pin_gives_the_client_its_own_cpus() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = tempfile::tempdir().unwrap();
    let o = overhead(
        &["--pin", "--probes", "ttft-1", "--connection", "keep-alive"],
        dir.path(),
    );
    if cpus < 2 {
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("at least 2 CPUs"));
        return;
    }
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = json(dir.path());
    let client = r["pinned"]["client"].as_array().expect("pinned.client");
    let server = r["pinned"]["server"].as_array().expect("pinned.server");
    assert!(client.iter().all(|c| !server.contains(c)), "{r}");
    // tokio-default starts one worker per CPU it may use: the child saw only the client's.
    assert_eq!(
        r["worker_threads"].as_u64().unwrap() as usize,
        client.len(),
        "{r}"
    );
    assert_server_share_is_inside_the_bias(&r["ttft_bias_ms"][0]);
}

#[test]
fn unknown_probe_names_the_known_ones_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = overhead(&["--probes", "ttft-1,ideal-3"], &out);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown probe \"ideal-3\""), "{err}");
    assert!(
        err.contains("ideal-64") && err.contains("mem-1024"),
        "{err}"
    );
    assert!(!out.exists(), "created {}", out.display());
}
