//! Scaling: a `[scaling]` config runs each cell at every agent count, each run with exactly
//! N agents (replicated templates with distinct ids), and the per-phase client cost is
//! recorded. Structure and gross sanity only: no timing thresholds beyond "ideal scales".
//! One sweep at a time: on a 2-core machine two test threads, each with eight agents and two
//! simulators, would measure each other's CPU, not the backend (with 100 ms calls and a busy
//! neighbour, N = 8 read 0.88). Calls last 200 ms, so a fresh connection per call is a small
//! part of each.

use chimeraforge::child::run_job;
use chimeraforge::config::{parse, Source};
use chimeraforge::matrix::{job_for, schedule};
use chimeraforge::simulators::start_simulators;
use chimeraforge_core::record::{Phase, RunRecord};
use chimeraforge_core::Backend;

const CONFIG: &str = r#"
name = "scaling-test"
runs = 1
models = ["gemma3:latest"]
scenarios = ["chimera-homo"]
warmup_tokens = 2
[options]
num_predict = 16
seed = 7
[simulator]
profile = "fixed"
device = "ideal"
[scaling]
agents = [1, 8]
[[endpoints]]
name = "a"
url = "sim"
[[endpoints]]
name = "b"
url = "sim"
"#;

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn sweep<B: Backend>() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = parse(&Source {
        path: "scaling-test.toml".into(),
        text: CONFIG.into(),
    })
    .expect("config parses");
    let (endpoints, _sims) = start_simulators(&cfg).expect("simulators start");
    let order = schedule(&cfg, &[B::NAME.into()]);
    assert_eq!(order.len(), 2);
    let mut records: Vec<RunRecord> = Vec::new();
    for slot in &order {
        let n = slot.cell.agents.expect("a sweep puts N in the cell");
        let job = job_for(&cfg, &endpoints, slot, None);
        assert_eq!(job.plan.agents.len(), n);
        let r = run_job::<B>(&job).expect("backend builds");
        assert!(r.is_ok(), "{}: N={n} failed: {:?}", B::NAME, r.status);
        let m = r.metrics.as_ref().expect("both phases ran");
        assert_eq!(m.per_agent.len(), n);
        assert_eq!(r.concurrent.as_ref().unwrap().agents.len(), n);
        assert_eq!(r.sequential.as_ref().unwrap().agents.len(), n);
        let ids: std::collections::BTreeSet<_> = r.agents.iter().map(|a| &a.id).collect();
        assert_eq!(ids.len(), n, "distinct agent ids");
        let seeds: std::collections::BTreeSet<_> =
            r.agents.iter().map(|a| a.options.seed).collect();
        assert_eq!(seeds.len(), n, "distinct seeds");
        let phases: Vec<Phase> = r
            .client
            .as_ref()
            .expect("client cost recorded")
            .phases
            .iter()
            .map(|p| p.phase)
            .collect();
        assert!(phases.contains(&Phase::Warmup) && phases.contains(&Phase::Concurrent));
        assert_eq!(phases.len(), 3, "{phases:?}");
        if n == 8 {
            eprintln!("{} N=8 efficiency {:.4}", B::NAME, m.efficiency.value);
            assert!(
                m.efficiency.value > 0.9,
                "{}: ideal-device efficiency at N=8 is {}",
                B::NAME,
                m.efficiency.value
            );
        }
        records.push(r);
    }
    let table = chimeraforge::scaling::table(&records).expect("two agent counts");
    assert!(table.contains(B::NAME), "{table}");
    let rows = chimeraforge::scaling::rows(&records);
    assert_eq!(rows.iter().map(|r| r.agents).collect::<Vec<_>>(), [1, 8]);
}

macro_rules! scaling {
    ($modname:ident, $backend:ty) => {
        #[test]
        fn $modname() {
            sweep::<$backend>();
        }
    };
}

#[cfg(feature = "tokio-default")]
scaling!(tokio_default, chimeraforge_backend_tokio::TokioDefault);
#[cfg(feature = "tokio-localset")]
scaling!(tokio_localset, chimeraforge_backend_tokio::TokioLocalSet);
#[cfg(feature = "smol-1kb")]
scaling!(smol_1kb, chimeraforge_backend_smol::Smol1Kb);
#[cfg(feature = "async-std")]
scaling!(async_std, chimeraforge_backend_async_std::AsyncStd);
