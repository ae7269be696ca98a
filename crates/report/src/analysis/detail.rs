//! Per-call detail for the charts: TTFT and inter-chunk-gap distributions per cell, and the
//! timeline of one concurrent phase.

use super::cell::CellKey;
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
}

/// One agent's lane.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineLane {
    pub agent_id: String,
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
    pub lanes: Vec<TimelineLane>,
}

impl Timeline {
    pub(crate) fn of(r: &RunRecord, phase: &PhaseRecord, chosen: String) -> Timeline {
        Timeline {
            key: CellKey::of(r),
            run_index: r.run_index,
            wall_ms: phase.wall_ms,
            efficiency_pct: r.metrics.as_ref().map(|m| m.efficiency.value * 100.0),
            chosen,
            lanes: phase
                .agents
                .iter()
                .map(|a| TimelineLane {
                    agent_id: a.agent_id.clone(),
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
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The run of `runs` (one cell's successful runs) with the median efficiency, as a timeline.
    pub(crate) fn median_run(runs: &[&RunRecord]) -> Option<Timeline> {
        let mut with: Vec<(&RunRecord, f64)> = runs
            .iter()
            .filter(|r| r.concurrent.is_some())
            .filter_map(|r| Some((*r, r.metrics.as_ref()?.efficiency.value)))
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
                "the run with the median measured efficiency of its cell's {} successful runs",
                with.len()
            )
        };
        Some(Timeline::of(r, r.concurrent.as_ref()?, chosen))
    }
}
