//! The per-run figures the report summarizes, each with its unit and basis.

use super::graph::graph_figures;
use chimeraforge_core::call::Basis;
use chimeraforge_core::metrics::RunMetrics;
use chimeraforge_core::record::RunRecord;
use serde::Serialize;

/// One figure per successful run, as summarized per cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Σ T_i(alone) / T_conc, ×.
    Speedup,
    /// speedup / N, %.
    Efficiency,
    /// The seed's formula Σ T_i(conc) / T_conc / N, %; never a measurement.
    EstimatedEfficiency,
    /// estimated − measured efficiency of the same run, percentage points.
    EstimateGap,
    /// Mean over agents of their mean concurrent-phase TTFT, ms.
    TtftMs,
    /// Mean over agents of their concurrent-phase client decode rate, tok/s.
    DecodeTokS,
    /// Σ tokens (concurrent) / T_conc, tok/s.
    SystemThroughput,
    /// Mean over agents of T_i(conc) / T_i(alone), ×.
    Slowdown,
    /// Jain's index over the agents' slowdowns, 0..1.
    Fairness,
    /// Mean over agents of their mean concurrent-phase time to the first answer token (after
    /// any reasoning), ms. Shown only where some call reasoned.
    TtftAnswerMs,
    /// critical path / T_conc, %: 100% on an ideal device whatever the graph's shape or the
    /// agents' imbalance.
    GraphEfficiency,
    /// Σ T_i(alone) / critical path, ×: the speedup the agents' graph allows.
    GraphCeiling,
}

impl Metric {
    pub const ALL: [Metric; 12] = [
        Metric::Speedup,
        Metric::Efficiency,
        Metric::EstimatedEfficiency,
        Metric::EstimateGap,
        Metric::TtftMs,
        Metric::DecodeTokS,
        Metric::SystemThroughput,
        Metric::Slowdown,
        Metric::Fairness,
        Metric::TtftAnswerMs,
        Metric::GraphEfficiency,
        Metric::GraphCeiling,
    ];

    /// Metrics compared between backends and between models.
    pub const CONTRASTED: [Metric; 4] = [
        Metric::Efficiency,
        Metric::TtftMs,
        Metric::DecodeTokS,
        Metric::SystemThroughput,
    ];

    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Speedup => "speedup",
            Metric::Efficiency => "efficiency",
            Metric::EstimatedEfficiency => "estimated efficiency",
            Metric::EstimateGap => "estimated − measured efficiency",
            Metric::TtftMs => "TTFT",
            Metric::DecodeTokS => "decode rate per agent",
            Metric::SystemThroughput => "system throughput",
            Metric::Slowdown => "slowdown",
            Metric::Fairness => "fairness",
            Metric::TtftAnswerMs => "TTFT answer",
            Metric::GraphEfficiency => "graph efficiency",
            Metric::GraphCeiling => "graph ceiling",
        }
    }

    /// Unit of a value ("" for a plain ratio).
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Speedup | Metric::Slowdown | Metric::GraphCeiling => "×",
            Metric::Efficiency | Metric::EstimatedEfficiency | Metric::GraphEfficiency => "%",
            Metric::EstimateGap => "pp",
            Metric::TtftMs | Metric::TtftAnswerMs => "ms",
            Metric::DecodeTokS | Metric::SystemThroughput => "tok/s",
            Metric::Fairness => "",
        }
    }

    /// Unit of a difference between two means of this metric.
    pub fn diff_unit(self) -> &'static str {
        match self {
            Metric::Efficiency | Metric::EstimatedEfficiency | Metric::GraphEfficiency => "pp",
            m => m.unit(),
        }
    }

    /// Name with basis and unit, e.g. "efficiency (measured), %".
    pub fn label(self) -> String {
        let unit = match self.unit() {
            "" => String::new(),
            u => format!(", {u}"),
        };
        let basis = match self {
            Metric::EstimatedEfficiency | Metric::EstimateGap => " (estimated: seed formula)",
            Metric::TtftMs | Metric::TtftAnswerMs | Metric::DecodeTokS => " (concurrent phase)",
            Metric::Fairness => " (Jain, 1 = equal slowdown)",
            _ => " (measured)",
        };
        format!("{}{basis}{unit}", self.name())
    }

    /// Name with basis for a sentence, e.g. "efficiency (measured)".
    pub fn phrase(self) -> String {
        match self {
            Metric::Fairness => "fairness (Jain's index)".to_owned(),
            m => m
                .label()
                .rsplit_once(", ")
                .map_or(m.label(), |(p, _)| p.to_owned()),
        }
    }

    /// Decimal places shown for values.
    pub fn decimals(self) -> usize {
        match self {
            Metric::Speedup | Metric::Slowdown | Metric::Fairness | Metric::GraphCeiling => 3,
            Metric::Efficiency
            | Metric::EstimatedEfficiency
            | Metric::EstimateGap
            | Metric::GraphEfficiency => 1,
            Metric::TtftMs
            | Metric::TtftAnswerMs
            | Metric::DecodeTokS
            | Metric::SystemThroughput => 1,
        }
    }

    /// Whether a larger value is better; `None` when it is not a quality (the estimate).
    pub fn higher_is_better(self) -> Option<bool> {
        match self {
            Metric::Speedup
            | Metric::Efficiency
            | Metric::DecodeTokS
            | Metric::SystemThroughput
            | Metric::Fairness
            | Metric::GraphEfficiency => Some(true),
            Metric::TtftMs | Metric::TtftAnswerMs | Metric::Slowdown => Some(false),
            // What the graph allows, not how well the server did.
            Metric::EstimatedEfficiency | Metric::EstimateGap | Metric::GraphCeiling => None,
        }
    }

    /// The run's value from its whole record: as [`Metric::of`] its metrics, except that the
    /// graph figures absent from a record (written before them) are computed from the record
    /// itself ([`super::graph::graph_figures`]).
    pub fn of_run(self, r: &RunRecord) -> Option<(f64, bool)> {
        match self {
            Metric::GraphEfficiency => graph_figures(r)?.efficiency.map(|e| (e * 100.0, false)),
            Metric::GraphCeiling => graph_figures(r)?.ceiling.map(|c| (c, false)),
            m => m.of(r.metrics.as_ref()?),
        }
    }

    /// The run's value and whether its basis is estimated where it is normally measured
    /// (system throughput from chunk counts); `None` when the run has no value. The graph
    /// figures only as recorded (see [`Metric::of_run`] for older records).
    pub fn of(self, m: &RunMetrics) -> Option<(f64, bool)> {
        let measured = |v: f64| Some((v, false));
        match self {
            Metric::Speedup => measured(m.speedup.value),
            Metric::Efficiency => measured(m.efficiency.value * 100.0),
            // Estimated by definition; the label says so, the flag is for varying bases.
            Metric::EstimatedEfficiency => measured(m.estimated_efficiency.value * 100.0),
            Metric::EstimateGap => {
                measured((m.estimated_efficiency.value - m.efficiency.value) * 100.0)
            }
            Metric::TtftMs => {
                mean(m.per_agent.iter().filter_map(|a| a.concurrent_ttft_ms)).map(|v| (v, false))
            }
            Metric::DecodeTokS => {
                mean(m.per_agent.iter().filter_map(|a| a.concurrent_decode_tok_s))
                    .map(|v| (v, false))
            }
            Metric::SystemThroughput => Some((
                m.system_throughput_tok_s.value,
                m.system_throughput_tok_s.basis == Basis::Estimated,
            )),
            Metric::Slowdown => mean(m.per_agent.iter().map(|a| a.slowdown)).map(|v| (v, false)),
            Metric::Fairness => m.fairness.map(|v| (v, false)),
            Metric::TtftAnswerMs => mean(
                m.per_agent
                    .iter()
                    .filter_map(|a| a.concurrent_ttft_answer_ms),
            )
            .map(|v| (v, false)),
            Metric::GraphEfficiency => m.graph_efficiency.map(|f| (f.value * 100.0, false)),
            Metric::GraphCeiling => m.graph_ceiling.map(|f| (f.value, false)),
        }
    }
}

/// Plain mean of an iterator, `None` when empty.
pub(crate) fn mean(it: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = it.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}
