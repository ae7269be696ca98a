//! Per-run metrics, computed from the two measured phases (see docs/methodology.md).

use crate::graph::Graph;
use crate::record::{AgentMetrics, AgentPhaseRecord, Figure, PhaseRecord};

/// What is computed here (declared with the other record types).
pub use crate::record::{Flags, Percentiles, RunMetrics};

/// A concurrent-phase TTFT above this flags `ttft_anomaly` (the seed's 3 s), ms.
pub const TTFT_ANOMALY_MS: f64 = 3000.0;
/// Efficiency below this flags `low_speedup` (speedup < 1.5 for two agents, the seed's code);
/// for agents with dependencies, speedup below this fraction of the graph's ceiling.
pub const LOW_EFFICIENCY: f64 = 0.75;

// The one definition of each statistic over a sample; `report::stats` wraps them with typed
// errors. A sample holding a NaN or infinity has none of them (`None`): such a value is a
// broken measurement (say a 0/0 rate), and skipping it would change n behind the reader's back.

/// Percentiles of `xs` (see [`percentile_sorted`]); `None` when `xs` is empty or holds a NaN
/// or infinity.
pub fn percentiles(xs: &[f64]) -> Option<Percentiles> {
    if xs.is_empty() || !xs.iter().all(|x| x.is_finite()) {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    Some(Percentiles {
        p50: percentile_sorted(&v, 50.0),
        p90: percentile_sorted(&v, 90.0),
        p99: percentile_sorted(&v, 99.0),
        max: v[v.len() - 1],
    })
}

/// The `p`-th percentile (`p` in percent, 0..=100) of a sorted, non-empty, finite sample, by
/// linear interpolation between the two nearest order statistics: with the values sorted as
/// x[0..n], h = (n - 1) p / 100, the result is x[⌊h⌋] + (h - ⌊h⌋)(x[⌊h⌋ + 1] - x[⌊h⌋]).
/// This is numpy's default (`numpy.percentile(xs, p)`, method "linear", Hyndman & Fan type 7).
///
/// # Panics
/// When `sorted` is empty.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * (p / 100.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    lerp(sorted[lo], sorted[hi], h - lo as f64)
}

/// a + t (b - a), computed from the nearer end so t = 1 gives exactly b (as numpy does).
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// Jain's fairness index (Σx)² / (n Σx²) of non-negative values (such as per-agent
/// slowdowns): 1 when all are equal, 1/n when one agent has everything. `None` when `xs` is
/// empty, holds a NaN, infinity or negative value, or is all zeros.
pub fn jain_index(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() || xs.iter().any(|&x| !x.is_finite() || x < 0.0) {
        return None;
    }
    let max = xs.iter().copied().fold(0.0, f64::max);
    if max == 0.0 {
        return None;
    }
    // The index is scale-free; dividing by the maximum keeps the squares from overflowing.
    let (s, sq) = xs.iter().fold((0.0, 0.0), |(s, sq), &x| {
        let y = x / max;
        (s + y, sq + y * y)
    });
    Some((s * s / (xs.len() as f64 * sq)).min(1.0))
}

fn decode_rate(a: &AgentPhaseRecord) -> Option<f64> {
    let mut tokens = 0.0;
    let mut secs = 0.0;
    for c in &a.calls {
        if let (Some(t), Some(d)) = (c.output_tokens, c.decode_ms) {
            if t.value > 1 && d > 0.0 {
                tokens += (t.value - 1) as f64;
                secs += d / 1e3;
            }
        }
    }
    (secs > 0.0).then(|| tokens / secs)
}

fn mean_ttft(a: &AgentPhaseRecord) -> Option<f64> {
    mean(a.calls.iter().filter_map(|c| c.ttft_ms))
}

fn mean_ttft_answer(a: &AgentPhaseRecord) -> Option<f64> {
    mean(a.calls.iter().filter_map(|c| c.ttft_answer_ms))
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = xs.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Whether a measured phase's agent had its first call served from the server's prompt
/// cache: the server reports at least 90% of that call's prompt tokens as cached.
///
/// The first call of each agent in each phase begins with a tag no earlier prompt of the
/// invocation begins with (`protocol::agent_tag`: nonce, phase, agent id, run), so it shares
/// with them only the chat template's opening and the tag's first words, about 20 tokens,
/// fewer than the rest of the tag alone, and a small share of any realistic prompt (a
/// 40-token prompt would be half cached). At least 90% cached means
/// the same prompt was sent before (an earlier invocation with `prompt_cache = "allow"`, or
/// one that ran without a nonce). Later calls of an agent reuse its system prompt, which the
/// server may rightly keep cached from its first call (the shared system prefix), so they are
/// not tested; a repeated conversation always repeats its first call too.
pub fn served_from_prompt_cache(agent: &AgentPhaseRecord) -> bool {
    agent.calls.first().is_some_and(|c| {
        c.server
            .as_ref()
            .is_some_and(|s| match (s.cached_prompt_tokens, s.prompt_tokens) {
                (Some(cached), Some(prompt)) => {
                    cached.saturating_mul(10) >= prompt.saturating_mul(9)
                }
                _ => false,
            })
    })
}

/// Metrics of a run of independent agents from its sequential and concurrent phases (agents
/// in the same order): [`run_metrics_with_graph`] with no dependencies.
pub fn run_metrics(seq: &PhaseRecord, conc: &PhaseRecord) -> RunMetrics {
    run_metrics_with_graph(seq, conc, &Graph::independent(seq.agents.len()))
}

/// Metrics of a run from its sequential and concurrent phases (agents in the same order as
/// `graph`'s). The critical path comes from the sequential phase's agent durations (tool waits
/// included): graph ceiling = Σ / critical path, graph efficiency = critical path / T_conc.
pub fn run_metrics_with_graph(seq: &PhaseRecord, conc: &PhaseRecord, graph: &Graph) -> RunMetrics {
    let n = seq.agents.len();
    let t_conc = conc.wall_ms;
    let per_agent: Vec<AgentMetrics> = seq
        .agents
        .iter()
        .zip(&conc.agents)
        .map(|(s, c)| AgentMetrics {
            agent_id: s.agent_id.clone(),
            alone_ms: s.duration_ms,
            concurrent_ms: c.duration_ms,
            slowdown: c.duration_ms / s.duration_ms,
            tokens_alone: s.output_tokens().0,
            tokens_concurrent: c.output_tokens().0,
            concurrent_decode_tok_s: decode_rate(c),
            alone_decode_tok_s: decode_rate(s),
            concurrent_ttft_ms: mean_ttft(c),
            concurrent_ttft_answer_ms: mean_ttft_answer(c),
            reasoning_tokens_concurrent: c
                .calls
                .iter()
                .filter_map(|x| x.reasoning_tokens)
                .map(|t| t.value)
                .sum(),
        })
        .collect();
    let seq_sum: f64 = per_agent.iter().map(|a| a.alone_ms).sum();
    let conc_sum: f64 = per_agent.iter().map(|a| a.concurrent_ms).sum();
    let speedup = seq_sum / t_conc;
    let durations: Vec<f64> = seq.agents.iter().map(|a| a.duration_ms).collect();
    let critical_path_ms = graph.critical_path(&durations).map(|cp| cp.ms);
    let est = conc_sum / t_conc;
    let length_mismatch = per_agent
        .iter()
        .any(|a| a.tokens_alone != a.tokens_concurrent);
    let token_normalized_speedup = length_mismatch.then(|| {
        let norm: f64 = per_agent
            .iter()
            .map(|a| a.alone_ms * a.tokens_concurrent as f64 / a.tokens_alone.max(1) as f64)
            .sum();
        Figure::estimated(norm / t_conc)
    });
    let tokens_conc: u64 = per_agent.iter().map(|a| a.tokens_concurrent).sum();
    let all_server_counted = conc.agents.iter().all(|a| a.output_tokens().1);
    let throughput = tokens_conc as f64 / (t_conc / 1e3);
    let slowdowns: Vec<f64> = per_agent.iter().map(|a| a.slowdown).collect();
    let pair = |f: fn(&AgentMetrics) -> Option<f64>| match per_agent.as_slice() {
        [a, b, ..] => Some(f(a)? - f(b)?),
        _ => None,
    };
    let flags = Flags {
        ttft_anomaly: conc
            .agents
            .iter()
            .flat_map(|a| &a.calls)
            .any(|c| c.ttft_ms.is_some_and(|t| t > TTFT_ANOMALY_MS)),
        // Independent agents: speedup below 0.75·N (the seed's rule). Agents that wait on
        // each other cannot reach N even on a perfect server: below 0.75 of the graph's
        // ceiling instead.
        low_speedup: match critical_path_ms {
            Some(cp) if !graph.is_independent() => {
                speedup <= LOW_EFFICIENCY * (seq_sum / cp) - f64::EPSILON
            }
            _ => speedup / n as f64 <= LOW_EFFICIENCY - f64::EPSILON,
        },
        cold_load: seq
            .agents
            .iter()
            .chain(&conc.agents)
            .flat_map(|a| &a.calls)
            .any(|c| c.cold_load),
        length_mismatch,
        prompt_cache: seq
            .agents
            .iter()
            .chain(&conc.agents)
            .any(served_from_prompt_cache),
    };
    RunMetrics {
        agents: n,
        sequential_sum_ms: seq_sum,
        concurrent_wall_ms: t_conc,
        speedup: Figure::measured(speedup),
        efficiency: Figure::measured(speedup / n as f64),
        estimated_speedup: Figure::estimated(est),
        estimated_efficiency: Figure::estimated(est / n as f64),
        token_normalized_speedup,
        system_throughput_tok_s: if all_server_counted {
            Figure::measured(throughput)
        } else {
            Figure::estimated(throughput)
        },
        fairness: jain_index(&slowdowns),
        throughput_delta_tok_s: pair(|a| a.concurrent_decode_tok_s),
        ttft_delta_ms: pair(|a| a.concurrent_ttft_ms),
        flags,
        per_agent,
        critical_path_ms,
        graph_ceiling: critical_path_ms.map(|cp| Figure::measured(seq_sum / cp)),
        graph_efficiency: critical_path_ms.map(|cp| Figure::measured(cp / t_conc)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::record::{Basis, CallRecord, Phase, TokenCount};

    #[test]
    fn raised_flags_by_name_in_order() {
        assert!(Flags::default().raised().is_empty());
        // Each flag alone names itself: a name paired with another field fails here.
        let alone = [
            Flags {
                ttft_anomaly: true,
                ..Default::default()
            },
            Flags {
                low_speedup: true,
                ..Default::default()
            },
            Flags {
                cold_load: true,
                ..Default::default()
            },
            Flags {
                length_mismatch: true,
                ..Default::default()
            },
            Flags {
                prompt_cache: true,
                ..Default::default()
            },
        ];
        assert_eq!(alone.len(), Flags::NAMES.len());
        for (f, name) in alone.iter().zip(Flags::NAMES) {
            assert_eq!(f.raised(), [name], "{f:?}");
            assert_eq!(serde_json::to_value(f).unwrap()[name], true, "{f:?}");
        }
        let two = Flags {
            ttft_anomaly: true,
            cold_load: true,
            ..Default::default()
        };
        assert_eq!(two.raised(), ["ttft_anomaly", "cold_load"]);
    }

    fn call(ttft: f64, e2e: f64, tokens: u64) -> CallRecord {
        CallRecord {
            agent_id: "a".into(),
            call: "c".into(),
            url: "u".into(),
            model: "m".into(),
            send_offset_ms: 0.0,
            ttft_ms: Some(ttft),
            e2e_ms: e2e,
            decode_ms: Some(e2e - ttft),
            output_tokens: Some(TokenCount {
                value: tokens,
                basis: Basis::Measured,
            }),
            text_events: tokens,
            bytes_received: 0,
            text_offsets_ms: vec![],
            client_decode_tok_s: None,
            tpot_ms: None,
            gap_ms: None,
            server: None,
            server_decode_tok_s: None,
            cold_load: false,
            output_preview: String::new(),
            error: None,
            ttft_answer_ms: Some(ttft),
            reasoning_events: 0,
            reasoning_tokens: None,
            answer_tokens: Some(TokenCount {
                value: tokens,
                basis: Basis::Measured,
            }),
            output_truncated: false,
            connections_opened: 0,
            reconnects: 0,
            tool_calls: 0,
            tool_call_events: 0,
            tool_wait_ms: None,
        }
    }

    fn phase(phase: Phase, wall: f64, agents: &[(f64, f64, u64)]) -> PhaseRecord {
        PhaseRecord {
            phase,
            wall_ms: wall,
            agents: agents
                .iter()
                .enumerate()
                .map(|(i, &(dur, ttft, tokens))| AgentPhaseRecord {
                    agent_id: format!("a{i}"),
                    start_ms: 0.0,
                    duration_ms: dur,
                    calls: vec![call(ttft, dur, tokens)],
                })
                .collect(),
        }
    }

    #[test]
    fn shared_device_reads_one_measured_but_two_estimated() {
        // Alone each agent takes 1 s; concurrently they share the device, each slows down
        // 2x and both finish at 2 s: no gain, yet the seed's formula reads a perfect 2.
        let seq = phase(
            Phase::Sequential,
            2000.0,
            &[(1000.0, 50.0, 100), (1000.0, 50.0, 100)],
        );
        let conc = phase(
            Phase::Concurrent,
            2000.0,
            &[(2000.0, 1050.0, 100), (2000.0, 50.0, 100)],
        );
        let m = run_metrics(&seq, &conc);
        assert!((m.speedup.value - 1.0).abs() < 1e-9);
        assert_eq!(m.speedup.basis, Basis::Measured);
        assert!((m.estimated_speedup.value - 2.0).abs() < 1e-9);
        assert_eq!(m.estimated_speedup.basis, Basis::Estimated);
        assert!(m.flags.low_speedup);
        assert!((m.ttft_delta_ms.unwrap() - 1000.0).abs() < 1e-9);
        assert_eq!(m.per_agent[0].slowdown, 2.0);
        assert!((m.fairness.unwrap() - 1.0).abs() < 1e-12);
        assert!(m.token_normalized_speedup.is_none());
    }

    #[test]
    fn ideal_concurrency_reads_two() {
        let seq = phase(
            Phase::Sequential,
            2000.0,
            &[(1000.0, 50.0, 100), (1000.0, 50.0, 100)],
        );
        let conc = phase(
            Phase::Concurrent,
            1000.0,
            &[(1000.0, 50.0, 100), (1000.0, 50.0, 100)],
        );
        let m = run_metrics(&seq, &conc);
        assert!((m.efficiency.value - 1.0).abs() < 1e-9);
        assert!(!m.flags.low_speedup);
        assert!((m.system_throughput_tok_s.value - 200.0).abs() < 1e-9);
        assert_eq!(m.system_throughput_tok_s.basis, Basis::Measured);
    }

    #[test]
    fn two_independent_agents_have_the_slower_one_as_critical_path() {
        // Alone: 1000 and 600 ms; concurrently on an ideal device the makespan is the slower.
        let seq = phase(
            Phase::Sequential,
            1600.0,
            &[(1000.0, 50.0, 100), (600.0, 50.0, 60)],
        );
        let conc = phase(
            Phase::Concurrent,
            1000.0,
            &[(1000.0, 50.0, 100), (600.0, 50.0, 60)],
        );
        let m = run_metrics(&seq, &conc);
        assert_eq!(m.critical_path_ms, Some(1000.0));
        let ceiling = m.graph_ceiling.unwrap();
        assert!((ceiling.value - 1.6).abs() < 1e-12);
        assert_eq!(ceiling.basis, Basis::Measured);
        let eff = m.graph_efficiency.unwrap();
        assert!((eff.value - 1.0).abs() < 1e-12);
        assert_eq!(eff.basis, Basis::Measured);
        // Speedup / N cannot reach 1 here, even on a perfect server.
        assert!((m.efficiency.value - 0.8).abs() < 1e-12);
    }

    /// The worked example of docs/methodology.md: orchestrator 100, workers 200, 500, 300,
    /// aggregator 50 ms alone; Σ = 1150, critical path 100 + 500 + 50 = 650 ms.
    #[test]
    fn a_fan_out_fan_in_graph_reads_its_ceiling_and_efficiency() {
        let graph = Graph::from_ids([
            ("orch", &[][..]),
            ("w1", &["orch"][..]),
            ("w2", &["orch"][..]),
            ("w3", &["orch"][..]),
            ("agg", &["w1", "w2", "w3"][..]),
        ])
        .unwrap();
        let alone = [100.0, 200.0, 500.0, 300.0, 50.0];
        let rows: Vec<_> = alone.iter().map(|&d| (d, 10.0, 10)).collect();
        let seq = phase(Phase::Sequential, 1150.0, &rows);
        let conc = phase(Phase::Concurrent, 800.0, &rows);
        let m = run_metrics_with_graph(&seq, &conc, &graph);
        assert_eq!(m.critical_path_ms, Some(650.0));
        assert!((m.graph_ceiling.unwrap().value - 1150.0 / 650.0).abs() < 1e-12);
        assert!((m.graph_efficiency.unwrap().value - 650.0 / 800.0).abs() < 1e-12);
        assert!((m.speedup.value - 1150.0 / 800.0).abs() < 1e-12);
        // Without the dependencies the critical path would be the longest worker alone.
        assert_eq!(run_metrics(&seq, &conc).critical_path_ms, Some(500.0));
        // low_speedup for a graph: against its ceiling (650 / 800 = 0.81 of it), not N
        // (speedup / 5 = 0.29 would flag every graph run on any server).
        assert!(!m.flags.low_speedup);
        assert!(run_metrics(&seq, &conc).flags.low_speedup);
        let slow = phase(Phase::Concurrent, 1000.0, &rows);
        assert!(
            run_metrics_with_graph(&seq, &slow, &graph)
                .flags
                .low_speedup
        );
    }

    #[test]
    fn length_mismatch_gets_a_normalized_speedup() {
        let seq = phase(
            Phase::Sequential,
            2000.0,
            &[(1000.0, 50.0, 400), (1000.0, 50.0, 400)],
        );
        let conc = phase(
            Phase::Concurrent,
            1000.0,
            &[(1000.0, 50.0, 400), (200.0, 50.0, 80)],
        );
        let m = run_metrics(&seq, &conc);
        assert!(m.flags.length_mismatch);
        let n = m.token_normalized_speedup.unwrap();
        assert_eq!(n.basis, Basis::Estimated);
        assert!((n.value - 1.2).abs() < 1e-9, "{}", n.value);
    }

    fn cached(prompt: u64, cached: u64) -> Option<crate::api::ServerStats> {
        Some(crate::api::ServerStats {
            prompt_tokens: Some(prompt),
            cached_prompt_tokens: Some(cached),
            ..Default::default()
        })
    }

    /// Measured on llama.cpp: a config run a second time had 128 of 133 prompt tokens of its
    /// first calls cached. Within one invocation a first call shares only the template and
    /// the tag's first words (here 20 of 133); later calls share their system prompt.
    #[test]
    fn prompt_cache_flags_a_first_call_served_mostly_from_cache() {
        let run = |first: (u64, u64), second: (u64, u64)| {
            let seq = phase(
                Phase::Sequential,
                2000.0,
                &[(1000.0, 50.0, 10), (1000.0, 50.0, 10)],
            );
            let mut conc = phase(
                Phase::Concurrent,
                1000.0,
                &[(1000.0, 50.0, 10), (1000.0, 50.0, 10)],
            );
            let mut later = conc.agents[1].calls[0].clone();
            conc.agents[1].calls[0].server = cached(first.0, first.1);
            later.server = cached(second.0, second.1);
            conc.agents[1].calls.push(later);
            run_metrics(&seq, &conc).flags.prompt_cache
        };
        assert!(run((133, 128), (150, 40)));
        assert!(!run((133, 20), (150, 40)));
        // A later call sharing a long system prompt with the first is not a cache hit to flag.
        assert!(!run((133, 20), (150, 140)));
        // Half is the shared opening of a short prompt, not a repeat; 90% is.
        assert!(!run((40, 20), (150, 0)));
        assert!(!run((100, 89), (150, 0)));
        assert!(run((100, 90), (150, 0)));
        // No cached count (Ollama before `prompt_eval_cached_count`, most servers): no flag.
        let mut a = phase(Phase::Sequential, 1.0, &[(1.0, 0.5, 1)])
            .agents
            .remove(0);
        assert!(!served_from_prompt_cache(&a));
        a.calls[0].server = cached(10, 9);
        assert!(served_from_prompt_cache(&a));
    }

    #[test]
    fn ttft_anomaly_above_three_seconds() {
        let seq = phase(
            Phase::Sequential,
            2000.0,
            &[(1000.0, 50.0, 10), (1000.0, 50.0, 10)],
        );
        let conc = phase(
            Phase::Concurrent,
            3500.0,
            &[(3500.0, 3001.0, 10), (1000.0, 50.0, 10)],
        );
        assert!(run_metrics(&seq, &conc).flags.ttft_anomaly);
    }

    #[test]
    fn percentiles_interpolate_linearly() {
        let p = percentiles(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(p.p50, 3.0);
        assert!((p.p90 - 4.6).abs() < 1e-12);
        assert_eq!(p.max, 5.0);
        assert!(percentiles(&[]).is_none());
    }

    #[test]
    fn jain_bounds() {
        assert!((jain_index(&[1.0, 1.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((jain_index(&[1.0, 0.0]).unwrap() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_sample_with_a_nan_infinity_or_negative_has_no_statistic() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(percentiles(&[1.0, bad]).is_none(), "{bad}");
            assert!(jain_index(&[1.0, bad]).is_none(), "{bad}");
        }
        assert!(jain_index(&[1.0, -1.0]).is_none());
        assert!(jain_index(&[0.0, 0.0]).is_none());
        assert!(jain_index(&[]).is_none());
        assert_eq!(jain_index(&[1e300, 1e300]), Some(1.0));
    }
}
