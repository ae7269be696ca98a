//! TTFT against context length: where agents carry their history, each call sends more
//! prompt than the last, and the time to the first token grows with it.

use super::cell::CellKey;
use super::detail::BoxStats;
use chimeraforge_core::record::{Phase, RunRecord};
use serde::Serialize;

/// One call of an agent with history: its prompt (server-reported) and its TTFT.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ContextPoint {
    pub phase: Phase,
    /// The call's position in its agent, from 0.
    pub turn: usize,
    pub prompt_tokens: u64,
    pub ttft_ms: f64,
}

/// The calls at one position of the agents with history, over a cell's successful runs.
#[derive(Debug, Clone, Serialize)]
pub struct ContextTurn {
    /// From 0.
    pub turn: usize,
    pub prompt_tokens: Option<BoxStats>,
    /// TTFT of the agent alone (sequential phase) and beside the others (concurrent), ms.
    pub ttft_alone_ms: Option<BoxStats>,
    pub ttft_concurrent_ms: Option<BoxStats>,
}

/// TTFT against prompt tokens in one cell whose agents with history sent growing prompts.
#[derive(Debug, Clone, Serialize)]
pub struct ContextSeries {
    pub key: CellKey,
    /// Successful runs contributing.
    pub runs: usize,
    /// Every call with a server-reported prompt count and a TTFT, both phases.
    pub points: Vec<ContextPoint>,
    pub turns: Vec<ContextTurn>,
}

impl ContextSeries {
    /// The series of a cell's successful runs; `None` unless some agent with `history`
    /// sent prompts of different lengths (as the server counted them).
    pub(crate) fn of(key: CellKey, ok_runs: &[&RunRecord]) -> Option<ContextSeries> {
        let mut points = Vec::new();
        let mut grows = false;
        for r in ok_runs {
            for phase in [&r.sequential, &r.concurrent].into_iter().flatten() {
                for a in &phase.agents {
                    let history = r.agents.iter().any(|x| x.id == a.agent_id && x.history);
                    if !history {
                        continue;
                    }
                    let mut seen: Option<u64> = None;
                    for (turn, c) in a.calls.iter().enumerate() {
                        let Some(p) = c.server.as_ref().and_then(|s| s.prompt_tokens) else {
                            continue;
                        };
                        grows |= seen.is_some_and(|s| s != p);
                        seen.get_or_insert(p);
                        if let Some(t) = c.ttft_ms.filter(|t| t.is_finite()) {
                            points.push(ContextPoint {
                                phase: phase.phase,
                                turn,
                                prompt_tokens: p,
                                ttft_ms: t,
                            });
                        }
                    }
                }
            }
        }
        if !grows || points.is_empty() {
            return None;
        }
        let last = points.iter().map(|p| p.turn).max().unwrap_or(0);
        let turns = (0..=last)
            .map(|turn| {
                let of = |phase: Option<Phase>| {
                    points
                        .iter()
                        .filter(move |p| p.turn == turn && phase.is_none_or(|ph| p.phase == ph))
                };
                ContextTurn {
                    turn,
                    prompt_tokens: BoxStats::of(
                        &mut of(None).map(|p| p.prompt_tokens as f64).collect(),
                    ),
                    ttft_alone_ms: BoxStats::of(
                        &mut of(Some(Phase::Sequential)).map(|p| p.ttft_ms).collect(),
                    ),
                    ttft_concurrent_ms: BoxStats::of(
                        &mut of(Some(Phase::Concurrent)).map(|p| p.ttft_ms).collect(),
                    ),
                }
            })
            .filter(|t| t.prompt_tokens.is_some())
            .collect();
        Some(ContextSeries {
            key,
            runs: ok_runs.len(),
            points,
            turns,
        })
    }
}
