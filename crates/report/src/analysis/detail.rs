//! Per-call detail for the charts: TTFT and inter-chunk-gap distributions per cell, and the
//! timeline of one concurrent phase.

use super::cell::CellKey;
use super::graph::{critical_path, graph_figures, has_graph};
use crate::stats::percentile_sorted;
use chimeraforge_core::record::{PhaseRecord, RunRecord};
use serde::Serialize;

/// Strip plots show every value up to this many; above, only the box.
pub const MAX_POINTS: usize = 400;

/// Five-number summary plus tail percentiles (linear interpolation), in the values' unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BoxStats {
    pub n: usize,
    pub min: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl BoxStats {
    /// Statistics of `xs` (sorted in place); `None` when empty. Non-finite values are dropped.
    pub fn of(xs: &mut Vec<f64>) -> Option<BoxStats> {
        xs.retain(|x| x.is_finite());
        if xs.is_empty() {
            return None;
        }
        xs.sort_unstable_by(f64::total_cmp);
        let q = |p| percentile_sorted(xs, p);
        Some(BoxStats {
            n: xs.len(),
            min: xs[0],
            q1: q(25.0),
            median: q(50.0),
            q3: q(75.0),
            p90: q(90.0),
            p99: q(99.0),
            max: xs[xs.len() - 1],
        })
    }
}

/// Per-call distributions of one cell, concurrent phase of its successful runs.
#[derive(Debug, Clone, Serialize)]
pub struct CellDistributions {
    pub key: CellKey,
    /// Successful runs contributing.
    pub runs: usize,
    /// TTFT of each call, ms.
    pub ttft_ms: Option<BoxStats>,
    /// The TTFT values themselves when there are at most [`MAX_POINTS`], sorted.
    pub ttft_points: Vec<f64>,
    /// Raw gaps between consecutive text events of a call (not TPOT), ms.
    pub gap_ms: Option<BoxStats>,
    /// Calls contributing gaps (two text events or more).
    pub gap_calls: usize,
}

impl CellDistributions {
    pub(crate) fn of(key: CellKey, ok_runs: &[&RunRecord]) -> CellDistributions {
        let calls = ok_runs
            .iter()
            .filter_map(|r| r.concurrent.as_ref())
            .flat_map(|p| &p.agents)
            .flat_map(|a| &a.calls);
        let mut ttft = Vec::new();
        let mut gaps = Vec::new();
        let mut gap_calls = 0;
        for c in calls {
            ttft.extend(c.ttft_ms);
            if c.text_offsets_ms.len() > 1 {
                gap_calls += 1;
                gaps.extend(c.text_offsets_ms.windows(2).map(|w| w[1] - w[0]));
            }
        }
        let ttft_ms = BoxStats::of(&mut ttft);
        let ttft_points = if ttft.len() <= MAX_POINTS {
            ttft
        } else {
            Vec::new()
        };
        CellDistributions {
            key,
            runs: ok_runs.len(),
            ttft_ms,
            ttft_points,
            gap_ms: BoxStats::of(&mut gaps),
            gap_calls,
        }
    }
}

/// The start of one call's output (concurrent phase), as the server sent it.
#[derive(Debug, Clone, Serialize)]
pub struct OutputSample {
    pub key: CellKey,
    pub run_index: u32,
    pub agent_id: String,
    pub call: String,
    pub preview: String,
    pub error: Option<String>,
}

impl OutputSample {
    /// Every call of a timeline's run.
    pub(crate) fn of(t: &Timeline) -> Vec<OutputSample> {
        t.lanes
            .iter()
            .flat_map(|l| {
                l.calls.iter().map(|c| OutputSample {
                    key: t.key.clone(),
                    run_index: t.run_index,
                    agent_id: l.agent_id.clone(),
                    call: c.call.clone(),
                    preview: c.output_preview.clone(),
                    error: c.error.clone(),
                })
            })
            .collect()
    }
}

/// One call on a timeline, times relative to the phase start (barrier release), ms.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineCall {
    pub call: String,
    pub send_ms: f64,
    pub done_ms: f64,
    pub first_text_ms: Option<f64>,
    /// Arrival of every text event.
    pub text_ms: Vec<f64>,
    pub output_preview: String,
    pub error: Option<String>,
    /// The tool step after the call: from `done_ms` to the agent's next call, ms.
    pub tool_wait_ms: Option<f64>,
}

/// One agent's lane.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineLane {
    pub agent_id: String,
    /// When the agent started and ended, relative to the barrier's release, ms.
    pub start_ms: f64,
    pub end_ms: f64,
    /// Lanes this agent started after (its `after`), by index.
    pub after: Vec<usize>,
    /// On the run's critical path.
    pub critical: bool,
    pub calls: Vec<TimelineCall>,
}

/// The concurrent phase of one run, agent by agent.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub key: CellKey,
    pub run_index: u32,
    /// T_conc, ms.
    pub wall_ms: f64,
    /// Efficiency of the run, % (measured).
    pub efficiency_pct: Option<f64>,
    /// Why this run was chosen, e.g. "median efficiency of 5 runs".
    pub chosen: String,
    /// The agents form a graph (dependencies or tool steps): drawn with its tool waits,
    /// dependencies and critical path.
    pub graph: bool,
    /// The critical path (sequential phase), ms, and the run's graph efficiency, %.
    pub critical_path_ms: Option<f64>,
    pub graph_efficiency_pct: Option<f64>,
    pub lanes: Vec<TimelineLane>,
}

impl Timeline {
    pub(crate) fn of(r: &RunRecord, phase: &PhaseRecord, chosen: String) -> Timeline {
        let lane_of = |id: &str| phase.agents.iter().position(|a| a.agent_id == id);
        let path: Vec<usize> = critical_path(r)
            .map(|c| {
                c.agents
                    .iter()
                    .filter_map(|&i| lane_of(&r.agents.get(i)?.id))
                    .collect()
            })
            .unwrap_or_default();
        let figures = graph_figures(r);
        Timeline {
            key: CellKey::of(r),
            run_index: r.run_index,
            wall_ms: phase.wall_ms,
            efficiency_pct: r.metrics.as_ref().map(|m| m.efficiency.value * 100.0),
            chosen,
            graph: has_graph(r),
            critical_path_ms: figures.map(|g| g.critical_path_ms),
            graph_efficiency_pct: figures.and_then(|g| g.efficiency).map(|e| e * 100.0),
            lanes: phase
                .agents
                .iter()
                .enumerate()
                .map(|(i, a)| TimelineLane {
                    agent_id: a.agent_id.clone(),
                    start_ms: a.start_ms,
                    end_ms: a.start_ms + a.duration_ms,
                    after: r
                        .agents
                        .iter()
                        .find(|x| x.id == a.agent_id)
                        .map(|x| x.after.iter().filter_map(|d| lane_of(d)).collect())
                        .unwrap_or_default(),
                    critical: path.contains(&i),
                    calls: a
                        .calls
                        .iter()
                        .map(|c| TimelineCall {
                            call: c.call.clone(),
                            send_ms: c.send_offset_ms,
                            done_ms: c.send_offset_ms + c.e2e_ms,
                            first_text_ms: c.ttft_ms.map(|t| c.send_offset_ms + t),
                            text_ms: c
                                .text_offsets_ms
                                .iter()
                                .map(|t| c.send_offset_ms + t)
                                .collect(),
                            output_preview: c.output_preview.clone(),
                            error: c.error.as_ref().map(|e| e.to_string()),
                            tool_wait_ms: c.tool_wait_ms,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The run of `runs` (one cell's successful runs) with the median efficiency, as a
    /// timeline; the median graph efficiency where the agents form a graph.
    pub(crate) fn median_run(runs: &[&RunRecord]) -> Option<Timeline> {
        let graph = runs.iter().any(|r| has_graph(r));
        let value = |r: &RunRecord| {
            if graph {
                graph_figures(r)?.efficiency
            } else {
                Some(r.metrics.as_ref()?.efficiency.value)
            }
        };
        let mut with: Vec<(&RunRecord, f64)> = runs
            .iter()
            .filter(|r| r.concurrent.is_some())
            .filter_map(|r| Some((*r, value(r)?)))
            .filter(|(_, e)| e.is_finite())
            .collect();
        if with.is_empty() {
            return None;
        }
        with.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.run_index.cmp(&b.0.run_index)));
        let (r, _) = with[(with.len() - 1) / 2];
        let chosen = if with.len() == 1 {
            "its only successful run".to_owned()
        } else {
            format!(
                "the run with the median {} of its cell's {} successful runs",
                if graph {
                    "graph efficiency"
                } else {
                    "measured efficiency"
                },
                with.len()
            )
        };
        Some(Timeline::of(r, r.concurrent.as_ref()?, chosen))
    }
}
