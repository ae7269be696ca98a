//! Agent graphs end to end: the shipped graph configs through the binary, and a dependency
//! that fails, through the real HTTP path. Not timing-sensitive: orders and presence only
//! (graph_calibration.rs checks the figures against the simulator's known timing).

mod common;
#[path = "common/graph.rs"]
mod graph_common;

use chimeraforge::backends::{python_backend, EXTERNAL_NAMES};
use chimeraforge::child::{run_job, ChildJob};
use chimeraforge::spawn::run_child;
use chimeraforge_core::api::ApiKind;
use chimeraforge_core::graph::Graph;
use chimeraforge_core::metrics::run_metrics_with_graph;
use chimeraforge_core::record::{Phase, PhaseRecord, RunRecord, RunStatus};
use chimeraforge_core::workload::Endpoint;
use chimeraforge_sim::Device;
use common::{run_bin as run, start, text};
use std::path::Path;

/// `bench-configs/NAME.toml`, one run on tokio-default: its records.
fn bench(name: &str) -> Vec<RunRecord> {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("res");
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../bench-configs")
        .join(format!("{name}.toml"));
    let o = run(
        &[
            "bench",
            config.to_str().unwrap(),
            "--runs",
            "1",
            "--backends",
            "tokio-default",
            "--out",
            out.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let (records, warnings) = chimeraforge::results::read_runs(&out).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(!records.is_empty(), "{t}");
    for r in &records {
        assert!(r.is_ok(), "{:?}", r.status);
        let m = r.metrics.as_ref().unwrap();
        let cp = m.critical_path_ms.expect("critical_path_ms on every run");
        assert!(cp > 0.0 && cp <= m.sequential_sum_ms, "{m:?}");
        assert!(
            m.graph_efficiency.is_some() && m.graph_ceiling.is_some(),
            "{m:?}"
        );
        dependents_start_after_their_dependencies(r, r.concurrent.as_ref().unwrap());
        dependents_start_after_their_dependencies(r, r.sequential.as_ref().unwrap());
    }
    records
}

fn dependents_start_after_their_dependencies(r: &RunRecord, phase: &PhaseRecord) {
    let find = |id: &str| phase.agents.iter().find(|a| a.agent_id == id).unwrap();
    for agent in &r.agents {
        let started = find(&agent.id).start_ms;
        for dep in &agent.after {
            let d = find(dep);
            assert!(
                started >= d.start_ms + d.duration_ms - 1e-6,
                "{:?}: {} started at {started} ms, before {dep} ended at {} ms",
                phase.phase,
                agent.id,
                d.start_ms + d.duration_ms
            );
        }
    }
}

#[test]
fn agent_graph_records_its_critical_path_tool_waits_and_dependencies() {
    let records = bench("agent-graph");
    for r in &records {
        let conc = r.concurrent.as_ref().unwrap();
        let start_of = |id: &str| {
            conc.agents
                .iter()
                .find(|a| a.agent_id == id)
                .unwrap()
                .start_ms
        };
        // The four workers start together, when the orchestrator ends; not at the release.
        let workers = ["latency", "literature", "throughput", "experiment"];
        let first = workers.iter().map(|w| start_of(w)).fold(f64::MAX, f64::min);
        assert!(first > 10.0, "workers started at {first} ms");
        for phase in [&r.sequential, &r.concurrent] {
            let phase = phase.as_ref().unwrap();
            let calls: Vec<_> = phase.agents.iter().flat_map(|a| &a.calls).collect();
            for c in &calls {
                let tool = r
                    .agents
                    .iter()
                    .find(|a| a.id == c.agent_id)
                    .unwrap()
                    .calls
                    .iter()
                    .find(|s| s.name == c.call)
                    .unwrap()
                    .tool
                    .clone();
                match (tool, c.tool_wait_ms) {
                    (Some(_), Some(w)) => assert!(w >= 99.0, "{}: waited {w} ms", c.call),
                    (None, None) => {}
                    (t, w) => panic!("{} {}: tool {t:?}, wait {w:?}", c.agent_id, c.call),
                }
            }
            let search = calls.iter().find(|c| c.call == "search").unwrap();
            assert!(search.tool_wait_ms.unwrap() >= 149.0, "{search:?}");
        }
        // Both phases wait the same drawn latency.
        let design = |p: &Option<PhaseRecord>| {
            p.as_ref()
                .unwrap()
                .agents
                .iter()
                .flat_map(|a| &a.calls)
                .find(|c| c.call == "design")
                .unwrap()
                .tool_wait_ms
                .unwrap()
        };
        assert!((design(&r.sequential) - design(&r.concurrent)).abs() < 50.0);
        // The sequential phase ran every agent after its dependencies.
        assert_eq!(r.sequential_order[0], 0, "{:?}", r.sequential_order);
        assert_eq!(r.sequential_order[5], 5, "{:?}", r.sequential_order);
    }
}

#[test]
fn pipeline_history_prompts_grow_call_by_call() {
    let records = bench("pipeline-history");
    for r in &records {
        for phase in [&r.sequential, &r.concurrent] {
            for a in &phase.as_ref().unwrap().agents {
                let prompts: Vec<u64> = a
                    .calls
                    .iter()
                    .map(|c| c.server.as_ref().unwrap().prompt_tokens.unwrap())
                    .collect();
                assert!(
                    prompts.windows(2).all(|w| w[1] > w[0]),
                    "{}: prompt tokens {prompts:?}",
                    a.agent_id
                );
            }
        }
        let m = r.metrics.as_ref().unwrap();
        // A pipeline's critical path is the whole sequential sum.
        let cp = m.critical_path_ms.unwrap();
        assert!((cp - m.sequential_sum_ms).abs() < 1e-6, "{m:?}");
        assert!((m.graph_ceiling.unwrap().value - 1.0).abs() < 1e-9);
    }
}

/// The orchestrator's server is unreachable: no worker and no aggregator starts in the
/// concurrent phase (run 1 goes concurrent first); the run is failed there.
fn a_failed_dependency_starts_none_of_its_dependents<B: chimeraforge_core::Backend>() {
    let sim = start(Device::Ideal);
    let mut job: ChildJob =
        graph_common::graph_job(B::NAME, &[&sim], 1, ApiKind::Ollama, 4, Some(10.0));
    job.plan.warmup_tokens = 0;
    job.plan.agents[0].endpoint = Endpoint {
        name: "down".into(),
        base_url: "http://127.0.0.1:9".into(),
        api: ApiKind::Ollama,
        api_key_env: None,
        ca_file: None,
        tls_insecure: false,
    };
    let r = run_job::<B>(&job).expect("backend builds");
    let RunStatus::Failed {
        phase, agent_id, ..
    } = &r.status
    else {
        panic!("{}: the run should have failed: {:?}", B::NAME, r.status);
    };
    assert_eq!((*phase, agent_id.as_str()), (Phase::Concurrent, "orch"));
    let conc = r.concurrent.as_ref().unwrap();
    let ids: Vec<_> = conc.agents.iter().map(|a| a.agent_id.as_str()).collect();
    assert_eq!(ids, ["orch"], "{}", B::NAME);
    assert!(r.sequential.is_none());
    assert!(r.metrics.is_none());
}

/// The Python child runs the same graph (dependents after their dependencies, the tool wait
/// recorded) and its metrics are exactly what Rust computes from its phase records. Skipped,
/// with the reason printed, when the Python environment is not installed.
#[test]
fn python_graph_runs_and_its_metrics_equal_rusts() {
    let sim = start(Device::Ideal);
    for backend in EXTERNAL_NAMES {
        if let Err(why) = python_backend(backend).unwrap().interpreter() {
            eprintln!("SKIPPED {backend}: {why}");
            continue;
        }
        let job = graph_common::graph_job(backend, &[&sim], 1, ApiKind::OpenaiChat, 4, Some(20.0));
        let r = run_child(Path::new("/nonexistent/chimeraforge"), &job)
            .unwrap_or_else(|e| panic!("{backend} child failed: {e}"));
        assert!(r.is_ok(), "{backend}: {:?}", r.status);
        assert_eq!(r.sequential_order, job.plan.sequential_order);
        for phase in [&r.sequential, &r.concurrent] {
            let phase = phase.as_ref().unwrap();
            dependents_start_after_their_dependencies(&r, phase);
            let look = &phase.agents[2].calls[0];
            assert!(look.tool_wait_ms.unwrap() >= 19.0, "{backend}: {look:?}");
        }
        let rust = run_metrics_with_graph(
            r.sequential.as_ref().unwrap(),
            r.concurrent.as_ref().unwrap(),
            &Graph::of(&r.agents).unwrap(),
        );
        let have = r.metrics.as_ref().unwrap();
        assert_eq!(have.critical_path_ms, rust.critical_path_ms, "{backend}");
        assert_eq!(have.graph_ceiling, rust.graph_ceiling, "{backend}");
        assert_eq!(have.graph_efficiency, rust.graph_efficiency, "{backend}");
        assert!(
            have.critical_path_ms.unwrap() < have.sequential_sum_ms,
            "{backend}"
        );
    }
}

macro_rules! graph_tests {
    ($modname:ident, $backend:ty) => {
        mod $modname {
            #[test]
            fn a_failed_dependency_starts_none_of_its_dependents() {
                super::a_failed_dependency_starts_none_of_its_dependents::<$backend>();
            }
        }
    };
}

#[cfg(feature = "tokio-default")]
graph_tests!(tokio_default, chimeraforge_backend_tokio::TokioDefault);
#[cfg(feature = "tokio-localset")]
graph_tests!(tokio_localset, chimeraforge_backend_tokio::TokioLocalSet);
#[cfg(feature = "smol-1kb")]
graph_tests!(smol_1kb, chimeraforge_backend_smol::Smol1Kb);
#[cfg(feature = "async-std")]
graph_tests!(async_std, chimeraforge_backend_async_std::AsyncStd);
