//! What N agents cost: the end-of-bench scaling table (speedup, efficiency and per-agent
//! slowdown against N, per backend), and the warning when the client itself was the
//! bottleneck of a run, so a runtime is never blamed for a saturated machine.

use chimeraforge_core::record::{Phase, RunRecord};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A phase is client-bound when its CPU seconds per wall second reach this share of the
/// cores it could use (the backend's polling threads, or the machine's cores).
const SATURATION: f64 = 0.85;

/// Phases shorter than this are too short for CPU/wall to mean anything, s.
const MIN_WALL_S: f64 = 0.05;

/// Cores this machine offers.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A warning when a measured phase kept the client busy near the cores it can use: the
/// numbers of that phase then measure the machine, not the runtime.
pub fn bottleneck_warning(r: &RunRecord) -> Option<String> {
    let client = r.client.as_ref()?;
    let cores = cores() as f64;
    let threads = match r.runtime.worker_threads {
        0 => cores,
        n => (n as f64).min(cores),
    };
    client
        .phases
        .iter()
        .filter(|p| p.phase != Phase::Warmup && p.wall_s >= MIN_WALL_S)
        .find_map(|p| {
            let busy = p.busy_cores()?;
            let limit = if busy >= SATURATION * threads {
                format!("its {threads:.0} polling thread(s)")
            } else if busy >= SATURATION * cores {
                format!("the machine's {cores:.0} core(s)")
            } else {
                return None;
            };
            Some(format!(
                "client-bound: the {} client used {busy:.2} CPU-s per wall-s in the {:?} phase, near {limit}; this run measures a saturated client, not the runtime's scheduling",
                r.backend, p.phase
            ))
        })
}

/// One row of the scaling table: a (backend, model, scenario) at N agents.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingRow {
    pub backend: String,
    pub model: String,
    pub scenario: String,
    pub agents: usize,
    pub runs: usize,
    pub speedup: f64,
    pub efficiency: f64,
    /// Mean over runs of the mean per-agent slowdown T_i(conc) / T_i(alone).
    pub mean_slowdown: f64,
    /// Worst per-agent slowdown seen.
    pub max_slowdown: f64,
    /// Concurrent-phase output tokens per client CPU-second (mean over runs).
    pub tokens_per_cpu_s: Option<f64>,
}

/// Rows for every (backend, model, scenario, N) with successful runs, N ascending.
pub fn rows(records: &[RunRecord]) -> Vec<ScalingRow> {
    let mut groups: BTreeMap<(String, String, String, usize), Vec<&RunRecord>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.is_ok() && r.metrics.is_some()) {
        groups
            .entry((
                r.backend.clone(),
                r.model.clone(),
                r.scenario.name().to_owned(),
                r.agents.len(),
            ))
            .or_default()
            .push(r);
    }
    groups
        .into_iter()
        .map(|((backend, model, scenario, agents), rs)| {
            let n = rs.len() as f64;
            let ms: Vec<_> = rs.iter().filter_map(|r| r.metrics.as_ref()).collect();
            let mean = |f: &dyn Fn(&chimeraforge_core::metrics::RunMetrics) -> f64| {
                ms.iter().map(|m| f(m)).sum::<f64>() / n
            };
            let slow = |m: &chimeraforge_core::metrics::RunMetrics| {
                let s: Vec<f64> = m.per_agent.iter().map(|a| a.slowdown).collect();
                s.iter().sum::<f64>() / s.len().max(1) as f64
            };
            let tpc: Vec<f64> = rs
                .iter()
                .filter_map(|r| r.client.as_ref())
                .filter_map(|c| c.phases.iter().find(|p| p.phase == Phase::Concurrent))
                .filter_map(|p| p.tokens_per_cpu_s())
                .collect();
            ScalingRow {
                backend,
                model,
                scenario,
                agents,
                runs: rs.len(),
                speedup: mean(&|m| m.speedup.value),
                efficiency: mean(&|m| m.efficiency.value),
                mean_slowdown: mean(&slow),
                max_slowdown: ms
                    .iter()
                    .flat_map(|m| m.per_agent.iter().map(|a| a.slowdown))
                    .fold(0.0, f64::max),
                tokens_per_cpu_s: (!tpc.is_empty())
                    .then(|| tpc.iter().sum::<f64>() / tpc.len() as f64),
            }
        })
        .collect()
}

/// The scaling table for the terminal, or `None` when every cell ran at one N.
pub fn table(records: &[RunRecord]) -> Option<String> {
    let rows = rows(records);
    let mut counts: Vec<usize> = rows.iter().map(|r| r.agents).collect();
    counts.sort_unstable();
    counts.dedup();
    if counts.len() < 2 {
        return None;
    }
    let mut out = String::from(
        "scaling (measured: speedup = Σ T_alone / T_conc; efficiency = speedup / N; slowdown = T_conc / T_alone per agent)\n",
    );
    let _ = writeln!(
        out,
        "  {:<14} {:<24} {:<19} {:>5} {:>4} {:>9} {:>10} {:>14} {:>13} {:>13}",
        "backend",
        "model",
        "scenario",
        "N",
        "runs",
        "speedup",
        "efficiency",
        "slowdown mean",
        "slowdown max",
        "tok/CPU-s"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "  {:<14} {:<24} {:<19} {:>5} {:>4} {:>8.2}x {:>9.1}% {:>13.3}x {:>12.3}x {:>13}",
            r.backend,
            r.model,
            r.scenario,
            r.agents,
            r.runs,
            r.speedup,
            r.efficiency * 100.0,
            r.mean_slowdown,
            r.max_slowdown,
            r.tokens_per_cpu_s.map_or("-".into(), |v| format!("{v:.0}")),
        );
    }
    Some(out)
}
