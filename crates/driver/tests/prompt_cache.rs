//! Prompt caches across invocations, on a simulator that keeps one as llama.cpp does
//! (`SimConfig::prompt_cache`): a config run twice against one long-running server sends new
//! prompts each time (isolate, the default, resumed sessions included), and with
//! `prompt_cache = "allow"` the repeat is served from the cache, counted and flagged.

mod common;

use chimeraforge_core::record::{Phase, RunRecord};
use chimeraforge_sim::{SimConfig, SimHandle, SimServer};
use common::{run_bin, text};
use std::collections::HashSet;
use std::path::Path;

fn server() -> SimHandle {
    let mut cfg = SimConfig::profile("null").unwrap();
    cfg.prompt_cache = true;
    SimServer::start(cfg, "127.0.0.1:0".parse().unwrap()).unwrap()
}

fn config(dir: &Path, sim: &SimHandle, extra: &str) -> std::path::PathBuf {
    let path = dir.join(format!("c{}.toml", extra.len()));
    std::fs::write(
        &path,
        format!(
            r#"name = "cache"
runs = 2
backends = ["tokio-default"]
models = ["gemma3:latest"]
scenarios = ["chimera-homo"]
{extra}
[options]
num_predict = 4
seed = 1

[[endpoints]]
name = "a"
url = "{url}"
api = "openai-chat"
"#,
            url = sim.base_url()
        ),
    )
    .unwrap();
    path
}

fn bench(config: &Path, out: &Path) -> Vec<RunRecord> {
    let o = run_bin(
        &[
            "bench",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ],
        config.parent().unwrap(),
    );
    assert!(o.status.success(), "{}", text(&o));
    chimeraforge::results::read_runs(out).unwrap().0
}

fn first_prompts(records: &[RunRecord]) -> HashSet<Vec<u8>> {
    let mut out = HashSet::new();
    for r in records {
        for phase in [Phase::Sequential, Phase::Concurrent] {
            for i in 0..r.agents.len() {
                assert!(out.insert(r.request_body(phase, i, 0, "")));
            }
        }
    }
    out
}

/// Cached prompt tokens of every agent's first call, measured phases.
fn first_cached(records: &[RunRecord]) -> Vec<u64> {
    records
        .iter()
        .flat_map(|r| [&r.sequential, &r.concurrent])
        .flatten()
        .flat_map(|p| &p.agents)
        .map(|a| {
            a.calls[0]
                .server
                .as_ref()
                .and_then(|s| s.cached_prompt_tokens)
                .expect("the simulator reports cached tokens")
        })
        .collect()
}

fn flagged(records: &[RunRecord]) -> usize {
    records
        .iter()
        .filter(|r| r.metrics.as_ref().unwrap().flags.prompt_cache)
        .count()
}

#[test]
fn isolated_invocations_send_new_prompts_and_allowed_repeats_are_flagged() {
    let sim = server();
    let dir = tempfile::tempdir().unwrap();

    // isolate (the default): twice against the same server, nothing is served from cache.
    let isolate = config(dir.path(), &sim, "");
    let one = bench(&isolate, &dir.path().join("one"));
    let two = bench(&isolate, &dir.path().join("two"));
    assert_eq!((one.len(), two.len()), (2, 2));
    assert!(first_prompts(&one).is_disjoint(&first_prompts(&two)));
    assert_eq!(flagged(&one) + flagged(&two), 0);
    let nonce = |r: &[RunRecord]| r[0].prompt_nonce.clone();
    assert_eq!(nonce(&one).len(), 16);
    assert_ne!(nonce(&one), nonce(&two));
    // Each first call shares no more than a few words with anything sent before it.
    for c in first_cached(&two) {
        assert!(c <= 4, "{c} words cached");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("one/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["prompt_cache"], "isolate");
    assert_eq!(manifest["prompt_nonce"], nonce(&one).as_str());
    assert_eq!(
        manifest["sessions"][0]["prompt_nonce"],
        nonce(&one).as_str()
    );

    // --resume draws a fresh nonce: the slot re-run was never sent under it.
    let runs = dir.path().join("two/runs.jsonl");
    let kept: String = std::fs::read_to_string(&runs)
        .unwrap()
        .lines()
        .take(1)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&runs, kept).unwrap();
    let o = run_bin(
        &[
            "bench",
            "--resume",
            dir.path().join("two").to_str().unwrap(),
            "-q",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let resumed = chimeraforge::results::read_runs(&dir.path().join("two"))
        .unwrap()
        .0;
    assert_eq!(resumed.len(), 2);
    assert_ne!(resumed[0].prompt_nonce, resumed[1].prompt_nonce);
    assert_eq!(flagged(&resumed), 0);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("two/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(
        manifest["sessions"][1]["prompt_nonce"],
        resumed[1].prompt_nonce.as_str()
    );

    // allow: the same prompts again, served from the cache, counted and flagged.
    let allow = config(dir.path(), &sim, "prompt_cache = \"allow\"\n");
    let first = bench(&allow, &dir.path().join("allow-1"));
    let repeat = bench(&allow, &dir.path().join("allow-2"));
    assert_eq!(first_prompts(&first), first_prompts(&repeat));
    assert_eq!(nonce(&first), "");
    assert_eq!(flagged(&first), 0, "{:?}", first_cached(&first));
    assert_eq!(flagged(&repeat), 2, "{:?}", first_cached(&repeat));
    assert!(
        first_cached(&repeat).iter().all(|&c| c > 20),
        "{:?}",
        first_cached(&repeat)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("allow-2/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["prompt_cache"], "allow");
    assert!(manifest["prompt_nonce"].is_null());
    let report = std::fs::read_to_string(dir.path().join("allow-2/report.md")).unwrap();
    assert!(report.contains("Prompt cache: allow"), "{report}");
    assert!(report.contains("flagged prompt_cache"), "{report}");
}
