//! A run's agent graph as the report sees it: the critical path from the record itself (so
//! records written before `critical_path_ms` existed gain the figure too), and the graph's
//! ceiling and efficiency from it.

use chimeraforge_core::graph::{CriticalPath, Graph};
use chimeraforge_core::record::RunRecord;

/// The critical path of `r` from its own record: its agents' `after` and the sequential
/// phase's agent `duration_ms` (tool waits included). `None` without a sequential phase, when
/// an agent has no duration there, or when the agents do not form a graph.
pub fn critical_path(r: &RunRecord) -> Option<CriticalPath> {
    let graph = Graph::of(&r.agents).ok()?;
    let seq = r.sequential.as_ref()?;
    // Matched by id: the phase lists agents in agent order, but the id says so for sure.
    let durations: Vec<f64> = r
        .agents
        .iter()
        .map(|a| {
            seq.agents
                .iter()
                .find(|p| p.agent_id == a.id)
                .map(|p| p.duration_ms)
        })
        .collect::<Option<_>>()?;
    graph.critical_path(&durations)
}

/// The critical path, graph ceiling and graph efficiency of one successful run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphFigures {
    /// ms.
    pub critical_path_ms: f64,
    /// Σ T_i(alone) / critical path, ×.
    pub ceiling: Option<f64>,
    /// critical path / T_conc, a ratio (1 = what an infinitely parallel server gives).
    pub efficiency: Option<f64>,
}

/// The run's graph figures: as recorded where the record has them, else computed from the
/// record by [`critical_path`]. `None` for a run without metrics or a critical path.
pub fn graph_figures(r: &RunRecord) -> Option<GraphFigures> {
    let m = r.metrics.as_ref()?;
    let cp = m
        .critical_path_ms
        .or_else(|| critical_path(r).map(|c| c.ms))?;
    let ratio = |num: f64, den: f64| (den > 0.0).then(|| num / den);
    Some(GraphFigures {
        critical_path_ms: cp,
        ceiling: m
            .graph_ceiling
            .map(|f| f.value)
            .or_else(|| ratio(m.sequential_sum_ms, cp)),
        efficiency: m
            .graph_efficiency
            .map(|f| f.value)
            .or_else(|| ratio(cp, m.concurrent_wall_ms)),
    })
}

/// Whether `r`'s agents form more than independent agents: some agent waits on another, or
/// some call of a measured phase was followed by a tool step.
pub fn has_graph(r: &RunRecord) -> bool {
    r.agents.iter().any(|a| !a.after.is_empty())
        || [&r.sequential, &r.concurrent]
            .into_iter()
            .flatten()
            .flat_map(|p| &p.agents)
            .flat_map(|a| &a.calls)
            .any(|c| c.tool_wait_ms.is_some())
}
