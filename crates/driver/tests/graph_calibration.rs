//! Calibration of agent graphs, as tests/calibration.rs does for the dual-agent matrix:
//! through the real HTTP path of every backend (and the Python ones when `.venv-py` exists,
//! as python_calibration.rs does), against the simulator whose timing is known.
//!
//! The graph: orchestrator -> three workers -> aggregator (tests/common/graph.rs).
//! - Ideal device: the concurrent phase takes exactly the critical path, so graph efficiency
//!   is 1.00 ± 0.02, whatever the graph's shape and a tool wait on one branch.
//! - Serial device: nothing overlaps, so the measured speedup is 1.00 ± 0.05, while the
//!   ceiling stays what the graph allows (5 calls' worth over a 3-agent chain's: > 1).
//!
//! Timing-sensitive: run on a quiet machine.

mod common;
#[path = "common/graph.rs"]
mod graph_common;

use chimeraforge::backends::{python_backend, EXTERNAL_NAMES};
use chimeraforge::child::run_job;
use chimeraforge::python::PYTHON_INSTALL_COMMAND;
use chimeraforge::spawn::run_child;
use chimeraforge_core::api::ApiKind;
use chimeraforge_core::record::RunRecord;
use chimeraforge_core::Backend;
use chimeraforge_sim::{Device, SimHandle};
use common::start;
use graph_common::graph_job;
use std::path::Path;

/// Output tokens per call: 50 ms + 23 × 10 ms = 280 ms on the `fixed` profile.
const TOKENS: u32 = 24;
/// Longer calls for the Python clients, whose per-call cost is several ms (see
/// python_calibration.rs): kept a small share of each call.
const PYTHON_TOKENS: u32 = 64;
/// w2's tool step on the ideal device, ms.
const TOOL_MS: f64 = 100.0;

/// What a backend is run through: in process (Rust) or as a child (Python).
type Runner = fn(&[&SimHandle], u32, ApiKind, u32, Option<f64>) -> RunRecord;

fn rust<B: Backend>(
    servers: &[&SimHandle],
    run_index: u32,
    api: ApiKind,
    tokens: u32,
    tool_ms: Option<f64>,
) -> RunRecord {
    let job = graph_job(B::NAME, servers, run_index, api, tokens, tool_ms);
    let r = run_job::<B>(&job).expect("backend builds");
    assert!(r.is_ok(), "{} run failed: {:?}", B::NAME, r.status);
    r
}

fn ideal(name: &str, runner: Runner, tokens: u32) {
    let s = start(Device::Ideal);
    for (run_index, api) in [(0, ApiKind::Ollama), (1, ApiKind::OpenaiChat)] {
        let r = runner(&[&s], run_index, api, tokens, Some(TOOL_MS));
        let m = r.metrics.unwrap();
        let eff = m.graph_efficiency.unwrap().value;
        eprintln!(
            "{name} ideal graph ({api:?}, run {run_index}): critical path {:.1} ms, makespan {:.1} ms, graph efficiency {eff:.4}, ceiling {:.3}, speedup {:.3}",
            m.critical_path_ms.unwrap(),
            m.concurrent_wall_ms,
            m.graph_ceiling.unwrap().value,
            m.speedup.value
        );
        assert!(
            (eff - 1.0).abs() <= 0.02,
            "{name}: ideal graph efficiency {eff} (run {run_index}, {api:?})"
        );
        // The tool wait is on the critical path's w2 branch, and counted in it.
        let w2 = m.per_agent.iter().find(|a| a.agent_id == "w2").unwrap();
        assert!(w2.alone_ms >= 2.0 * 280.0 + TOOL_MS - 1.0, "{w2:?}");
    }
}

fn serial(name: &str, runner: Runner, tokens: u32) {
    let s = start(Device::Serial);
    let r = runner(&[&s], 0, ApiKind::Ollama, tokens, None);
    let m = r.metrics.unwrap();
    let ceiling = m.graph_ceiling.unwrap().value;
    eprintln!(
        "{name} serial graph: speedup {:.4}, ceiling {ceiling:.3}, graph efficiency {:.3}",
        m.speedup.value,
        m.graph_efficiency.unwrap().value
    );
    assert!(
        (m.speedup.value - 1.0).abs() <= 0.05,
        "{name}: serial speedup {}",
        m.speedup.value
    );
    // Six calls of equal length, the longest chain four (orch, w2's two, agg): 6/4.
    assert!(
        (ceiling - 1.5).abs() <= 0.05,
        "{name}: the graph allows 1.5, ceiling {ceiling}"
    );
}

macro_rules! calibrate {
    ($modname:ident, $backend:ty) => {
        mod $modname {
            #[test]
            fn ideal_device_graph_efficiency_is_one() {
                super::ideal(
                    <$backend as chimeraforge_core::Backend>::NAME,
                    super::rust::<$backend>,
                    super::TOKENS,
                );
            }
            #[test]
            fn serial_device_speedup_is_one_under_the_graphs_ceiling() {
                super::serial(
                    <$backend as chimeraforge_core::Backend>::NAME,
                    super::rust::<$backend>,
                    super::TOKENS,
                );
            }
        }
    };
}

#[cfg(feature = "tokio-default")]
calibrate!(tokio_default, chimeraforge_backend_tokio::TokioDefault);
#[cfg(feature = "tokio-localset")]
calibrate!(tokio_localset, chimeraforge_backend_tokio::TokioLocalSet);
#[cfg(feature = "smol-1kb")]
calibrate!(smol_1kb, chimeraforge_backend_smol::Smol1Kb);
#[cfg(feature = "async-std")]
calibrate!(async_std, chimeraforge_backend_async_std::AsyncStd);

/// One Python child at a time (see python_calibration.rs).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn python_installed(backend: &str) -> bool {
    match python_backend(backend).unwrap().interpreter() {
        Ok(_) => true,
        Err(why) => {
            eprintln!(
                "SKIPPED {backend} graph calibration: {why}\n  (install: {PYTHON_INSTALL_COMMAND})"
            );
            false
        }
    }
}

fn python(
    backend: &str,
    servers: &[&SimHandle],
    run_index: u32,
    api: ApiKind,
    tokens: u32,
    tool_ms: Option<f64>,
) -> RunRecord {
    let job = graph_job(backend, servers, run_index, api, tokens, tool_ms);
    let r = run_child(Path::new("/nonexistent/chimeraforge"), &job)
        .unwrap_or_else(|e| panic!("{backend} child failed: {e}"));
    assert!(r.is_ok(), "{backend} run failed: {:?}", r.status);
    assert_eq!(r.sequential_order, job.plan.sequential_order);
    r
}

fn python_ideal(backend: &'static str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if python_installed(backend) {
        let runner: Runner = match backend {
            "python-asyncio" => |s, i, a, t, m| python("python-asyncio", s, i, a, t, m),
            _ => |s, i, a, t, m| python("python-uvloop", s, i, a, t, m),
        };
        ideal(backend, runner, PYTHON_TOKENS);
    }
}

fn python_serial(backend: &'static str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if python_installed(backend) {
        let runner: Runner = match backend {
            "python-asyncio" => |s, i, a, t, m| python("python-asyncio", s, i, a, t, m),
            _ => |s, i, a, t, m| python("python-uvloop", s, i, a, t, m),
        };
        serial(backend, runner, PYTHON_TOKENS);
    }
}

#[test]
fn the_python_backends_are_the_external_ones() {
    assert_eq!(EXTERNAL_NAMES, ["python-asyncio", "python-uvloop"]);
}

#[test]
fn python_asyncio_ideal_device_graph_efficiency_is_one() {
    python_ideal("python-asyncio");
}

#[test]
fn python_asyncio_serial_device_speedup_is_one_under_the_graphs_ceiling() {
    python_serial("python-asyncio");
}

#[test]
fn python_uvloop_ideal_device_graph_efficiency_is_one() {
    python_ideal("python-uvloop");
}

#[test]
fn python_uvloop_serial_device_speedup_is_one_under_the_graphs_ceiling() {
    python_serial("python-uvloop");
}
