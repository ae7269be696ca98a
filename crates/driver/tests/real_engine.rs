//! End-to-end against the real engine: two llama.cpp servers serving Gemma 3 270M
//! (`just serve-real`). Runs only when CHIMERAFORGE_REAL_E2E=1 (as .ci/run sets after
//! starting the servers); otherwise it says why it did nothing.
//!
//! The servers keep prompts cached across requests (and so across invocations), as users'
//! long-running servers do. The config is therefore run a second time against the same
//! servers: its prompts must be new to them (a fresh nonce), its TTFTs not a cache's, and
//! with `prompt_cache = "allow"` the repeat must be seen and flagged.

use chimeraforge_core::call::Basis;
use chimeraforge_core::record::{Phase, RunRecord};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const CONFIG: &str = "bench-configs/real-gemma3-270m.toml";

/// Below this, a second invocation's median first-call TTFT (paired per call with the
/// first's) is a prompt-cache hit, not noise. Measured on this 2-core machine (`-t 1`
/// servers, 2026-12-04, other builds loading it): two isolated invocations read medians of
/// 0.99 (12 pairs, 0.87-1.19), 0.81 (load changed between them) and 1.00; an allowed repeat 0.08
/// (4 pairs, 0.06-0.10: TTFT 105-134 ms instead of 1060-1709 ms), and at low load a cached
/// repeat is 93-146 ms instead of 454-653 ms, 0.2-0.3 (issue 13). 0.5 sits halfway, on a log
/// scale, between the worst cached case (0.25) and no change (1), with a margin of 1.6x to
/// the lowest isolated median seen (docs/methodology.md, "Prompt caches").
const CACHE_RATIO: f64 = 0.5;

fn bench(root: &Path, config: &Path, out: &Path, extra: &[&str]) -> Vec<RunRecord> {
    let started = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_chimeraforge"))
        .current_dir(root)
        .arg("bench")
        .arg(config)
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    let (records, warnings) = chimeraforge::results::read_runs(out).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    eprintln!(
        "real e2e: {} {} {}: {} runs in {:.0} s",
        config.display(),
        extra.join(" "),
        out.display(),
        records.len(),
        started.elapsed().as_secs_f64()
    );
    records
}

/// The TTFT of each agent's first call in each measured phase (the calls a repeated
/// invocation would find whole in the cache; later calls quote generated text), keyed by
/// cell, run, phase and agent.
fn ttfts(records: &[RunRecord]) -> BTreeMap<(String, String, u32, String, String), f64> {
    let mut out = BTreeMap::new();
    for r in records {
        for p in [&r.sequential, &r.concurrent].into_iter().flatten() {
            for a in &p.agents {
                let key = (
                    r.backend.clone(),
                    r.scenario.to_string(),
                    r.run_index,
                    format!("{:?}", p.phase),
                    a.agent_id.clone(),
                );
                out.insert(key, a.calls[0].ttft_ms.expect("a ttft"));
            }
        }
    }
    out
}

/// Median over first calls present in both of `later`'s TTFT / `first`'s.
fn median_ratio(first: &[RunRecord], later: &[RunRecord]) -> f64 {
    let a = ttfts(first);
    let mut ratios: Vec<f64> = ttfts(later)
        .iter()
        .filter_map(|(k, t)| a.get(k).map(|t0| t / t0))
        .collect();
    assert!(ratios.len() >= 4, "{} paired calls", ratios.len());
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

/// The first call's request body of every agent in every measured phase.
fn first_prompts(records: &[RunRecord]) -> HashSet<Vec<u8>> {
    let mut out = HashSet::new();
    for r in records {
        for phase in [Phase::Sequential, Phase::Concurrent] {
            for i in 0..r.agents.len() {
                assert!(
                    out.insert(r.request_body(phase, i, 0, "")),
                    "a prompt repeats within one invocation"
                );
            }
        }
    }
    out
}

#[test]
fn real_servers_every_backend_server_reported_tokens_and_timings() {
    if std::env::var("CHIMERAFORGE_REAL_E2E").as_deref() != Ok("1") {
        eprintln!("skipped: set CHIMERAFORGE_REAL_E2E=1 with `just serve-real` running");
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = tempfile::tempdir().unwrap();
    let records = bench(
        &root,
        Path::new(CONFIG),
        &out.path().join("res"),
        &["--runs", "1", "--backends", "all"],
    );
    let backends = chimeraforge::backends::selectable_names().len();
    assert_eq!(records.len(), backends * 3);
    for r in &records {
        assert!(r.is_ok(), "{}: {:?}", r.backend, r.status);
        let m = r.metrics.as_ref().unwrap();
        // Two separate servers on two cores: concurrency must help. No upper bound: the
        // server's own timings below are what rule out a client-side artefact.
        assert!(
            m.speedup.value > 1.0,
            "{}: speedup {} on two separate servers",
            r.backend,
            m.speedup.value
        );
        assert!(!m.flags.prompt_cache, "{}: {:?}", r.backend, m.flags);
        for phase in [&r.sequential, &r.concurrent] {
            for a in &phase.as_ref().unwrap().agents {
                for c in &a.calls {
                    let t = c.output_tokens.expect("tokens");
                    assert_eq!(t.basis, Basis::Measured, "{}: {c:?}", r.backend);
                    let s = c.server.as_ref().expect("server stats");
                    // The client saw the whole call, so it lasted at least the server's work.
                    let server_ms = s.prompt_eval_ms.unwrap_or(0.0) + s.eval_ms.unwrap_or(0.0);
                    assert!(
                        c.e2e_ms + 1.0 >= server_ms,
                        "{}: call took {} ms at the client but {server_ms} ms at the server",
                        r.backend,
                        c.e2e_ms
                    );
                    assert!(
                        s.eval_ms.is_some() && s.prompt_eval_ms.is_some(),
                        "{}: {s:?}",
                        r.backend
                    );
                    // llama.cpp says how much of each prompt it had cached, and its own rate
                    // is the rate recorded.
                    assert!(s.cached_prompt_tokens.is_some(), "{}: {s:?}", r.backend);
                    assert_eq!(c.server_decode_tok_s, s.reported_decode_tok_s);
                }
            }
        }
    }

    // The same config again, against the same (now warm) servers: one backend keeps it lean.
    let again = bench(
        &root,
        Path::new(CONFIG),
        &out.path().join("again"),
        &["--runs", "1", "--backends", "tokio-default"],
    );
    assert_eq!(again.len(), 3);
    let nonce = |rs: &[RunRecord]| -> HashSet<String> {
        rs.iter().map(|r| r.prompt_nonce.clone()).collect()
    };
    assert_eq!(nonce(&records).len(), 1);
    assert!(nonce(&records).is_disjoint(&nonce(&again)));
    assert!(!nonce(&again).contains(""));
    assert!(first_prompts(&records).is_disjoint(&first_prompts(&again)));
    for r in &again {
        assert!(r.is_ok(), "{:?}", r.status);
        assert!(!r.metrics.as_ref().unwrap().flags.prompt_cache, "{r:?}");
    }
    let isolated = median_ratio(&records, &again);
    eprintln!("real e2e: second isolated invocation, median TTFT ratio {isolated:.2}");
    assert!(
        isolated > CACHE_RATIO,
        "the second invocation's TTFTs are {isolated:.2} of the first's: a prompt cache served it"
    );

    // Deliberately allowed: the repeat is served from the cache, flagged, and the ratio
    // criterion above would have caught it. Without a nonce a prompt stays cached across
    // every invocation ever sent to these servers, so agents with ids new to them make sure
    // the first of the two is cold.
    let text = std::fs::read_to_string(root.join(CONFIG)).unwrap();
    let fresh = format!(
        "{}x{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros()
    );
    let agent = |n: usize, endpoint: &str| {
        format!(
            "\n[[agents]]\nid = \"probe-{fresh}-{n}\"\nsystem = \"You are a concise telemetry analyst. You gather benchmark measurements and state them as facts with numbers.\"\nendpoint = \"{endpoint}\"\ncalls = [{{ name = \"analysis\", prompt = \"Two LLM agents ran concurrently against two local model servers; per-agent decode rate, time to first token and wall time were recorded over five runs. List the five patterns in such data that matter most for capacity planning, one sentence each.\" }}]\n"
        )
    };
    let allow =
        text.replace(
            "warmup_tokens = 8",
            "warmup_tokens = 8\nprompt_cache = \"allow\"",
        )
        .replace(
            "scenarios = [\"baseline-vs-chimera\", \"chimera-hetero\", \"chimera-homo\"]",
            "scenarios = [\"chimera-homo\"]",
        ) + &agent(0, "llama-11434")
            + &agent(1, "llama-11435");
    assert!(allow.contains("prompt_cache = \"allow\"") && allow.contains("[\"chimera-homo\"]"));
    let allow_path = out.path().join("allow.toml");
    std::fs::write(&allow_path, allow).unwrap();
    let args = ["--runs", "1", "--backends", "tokio-default"];
    let first = bench(&root, &allow_path, &out.path().join("allow-1"), &args);
    let repeat = bench(&root, &allow_path, &out.path().join("allow-2"), &args);
    assert!(nonce(&first).contains("") && first_prompts(&first) == first_prompts(&repeat));
    let m = repeat[0].metrics.as_ref().unwrap();
    assert!(m.flags.prompt_cache, "{:?}", m.flags);
    let cached: Vec<u64> = repeat[0]
        .concurrent
        .iter()
        .chain(&repeat[0].sequential)
        .flat_map(|p| &p.agents)
        .filter_map(|a| a.calls[0].server.as_ref()?.cached_prompt_tokens)
        .collect();
    eprintln!("real e2e: allowed repeat, cached prompt tokens of first calls {cached:?}");
    let warm = median_ratio(&first, &repeat);
    eprintln!("real e2e: allowed repeat, median TTFT ratio {warm:.2}");
    assert!(warm < CACHE_RATIO, "a cached repeat read {warm:.2}");
}

/// llama.cpp closes a kept-alive connection idle for 5 s (`Keep-Alive: timeout=5`), and this
/// build closes it after every streamed response too (curl shows the same: it reuses the
/// connection after a non-streamed response, not after a streamed one). An agent whose tool
/// step waits longer than that finds its connection closed at its next call: under
/// keep-alive (the default) every backend replaces it inside that call and counts it as a
/// reconnect, and the run completes. The tool is prompt-driven (`offer = false`): these
/// servers run without `--jinja`, so they take no `tools`.
#[test]
fn real_servers_calls_more_than_five_seconds_apart_reconnect_under_keep_alive() {
    if std::env::var("CHIMERAFORGE_REAL_E2E").as_deref() != Ok("1") {
        eprintln!("skipped: set CHIMERAFORGE_REAL_E2E=1 with `just serve-real` running");
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root.join(CONFIG)).unwrap();
    let config = text
        .replace(
            "scenarios = [\"baseline-vs-chimera\", \"chimera-hetero\", \"chimera-homo\"]",
            "scenarios = [\"chimera-homo\"]",
        )
        .replace("num_predict = 32", "num_predict = 12")
        + "\n[[agents]]\nid = \"idle\"\nendpoint = \"llama-11434\"\ncalls = [\n  { name = \"look\", prompt = \"Name one metric of LLM serving.\", tool = { name = \"lookup\", latency_ms = 5600, offer = false } },\n  { name = \"answer\", prompt = \"Say what the lookup found in one sentence.\" },\n]\n";
    assert!(config.contains("[\"chimera-homo\"]") && config.contains("num_predict = 12"));
    let path = out.path().join("idle.toml");
    std::fs::write(&path, config).unwrap();
    let records = bench(
        &root,
        &path,
        &out.path().join("idle"),
        &["--runs", "1", "--backends", "all"],
    );
    assert_eq!(
        records.len(),
        chimeraforge::backends::selectable_names().len()
    );
    for r in &records {
        assert!(r.is_ok(), "{}: {:?}", r.backend, r.status);
        for phase in [&r.sequential, &r.concurrent] {
            let calls = &phase.as_ref().unwrap().agents[0].calls;
            let (look, answer) = (&calls[0], &calls[1]);
            let waited = look.tool_wait_ms.expect("the tool step's wait");
            assert!(waited >= 5600.0, "{}: waited {waited} ms", r.backend);
            // Under keep-alive a measured call opens a connection only to replace its
            // agent's closed one (here: closed after the previous streamed response).
            assert!(
                look.connections_opened <= 1 && look.reconnects == look.connections_opened,
                "{}: {} opened, {} reconnects",
                r.backend,
                look.connections_opened,
                look.reconnects
            );
            assert_eq!(
                (answer.connections_opened, answer.reconnects),
                (1, 1),
                "{}: the call after the wait replaces the closed connection",
                r.backend
            );
        }
    }
    eprintln!(
        "real e2e: calls 5.6 s apart under keep-alive: {} backends, one reconnect per call after the wait",
        records.len()
    );
}
