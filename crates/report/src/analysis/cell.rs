//! One cell (backend × model × scenario): its runs and per-metric statistics.

use super::metric::Metric;
use super::AnalysisConfig;
use crate::stats::{bootstrap_mean_ci, BootstrapCi, Summary};
use chimeraforge_core::call::CallErrorKind;
use chimeraforge_core::record::{RunRecord, RunStatus};
use chimeraforge_core::workload::Scenario;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// Which backend ran which model in which scenario, with how many agents.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CellKey {
    pub backend: String,
    pub model: String,
    pub scenario: Scenario,
    /// Agents per run (a scaling sweep runs a cell at several counts).
    pub agents: usize,
}

impl CellKey {
    pub fn of(r: &RunRecord) -> CellKey {
        CellKey {
            backend: r.backend.clone(),
            model: r.model.clone(),
            scenario: r.scenario,
            agents: r.agents.len(),
        }
    }

    /// "model · scenario · N agents": what a backend comparison holds fixed.
    pub fn workload(&self) -> String {
        format!(
            "{} · {} · {} agents",
            self.model, self.scenario, self.agents
        )
    }
}

impl fmt::Display for CellKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} · {}", self.workload(), self.backend)
    }
}

/// Statistics of one metric over a cell's successful runs.
#[derive(Debug, Clone, Serialize)]
pub struct MetricStats {
    pub metric: Metric,
    /// One value per successful run that has it, in run order.
    pub values: Vec<f64>,
    /// `None` when no run has a value.
    pub summary: Option<Summary>,
    /// 95% bootstrap CI of the mean; `None` below [`AnalysisConfig::min_ci_n`] values.
    pub ci: Option<BootstrapCi>,
    /// Runs whose value is estimated rather than measured (e.g. tokens counted by chunks).
    pub estimated_runs: usize,
    /// Runs whose value was NaN or infinite (a broken measurement), left out of `values`.
    pub non_finite: usize,
}

impl MetricStats {
    /// Number of values the statistics rest on.
    pub fn n(&self) -> usize {
        self.values.len()
    }

    pub(crate) fn of(metric: Metric, runs: &[&RunRecord], config: &AnalysisConfig) -> Self {
        let mut values = Vec::with_capacity(runs.len());
        let mut estimated_runs = 0;
        let mut non_finite = 0;
        for (v, estimated) in runs.iter().filter_map(|r| metric.of_run(r)) {
            if !v.is_finite() {
                non_finite += 1;
                continue;
            }
            estimated_runs += usize::from(estimated);
            values.push(v);
        }
        let summary = Summary::of(&values);
        let ci = config
            .has_ci(values.len())
            .then(|| bootstrap_mean_ci(&values, &config.bootstrap(values.len())).ok())
            .flatten();
        MetricStats {
            metric,
            values,
            summary,
            ci,
            estimated_runs,
            non_finite,
        }
    }
}

/// Counts of each flag over a cell's successful runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FlagCounts {
    pub ttft_anomaly: usize,
    pub low_speedup: usize,
    pub cold_load: usize,
    pub length_mismatch: usize,
    pub prompt_cache: usize,
}

/// Everything the report says about one cell.
#[derive(Debug, Clone, Serialize)]
pub struct CellAnalysis {
    pub key: CellKey,
    /// Runs the manifest scheduled, when it says.
    pub scheduled: Option<usize>,
    /// Successful runs with metrics.
    pub n_ok: usize,
    pub n_failed: usize,
    /// Scheduled runs with no record (the child process died before writing one).
    pub n_missing: usize,
    pub failures_by_kind: BTreeMap<CallErrorKind, usize>,
    pub flags: FlagCounts,
    /// One entry per [`Metric::ALL`], in that order.
    pub metrics: Vec<MetricStats>,
}

impl CellAnalysis {
    /// The statistics of `metric`.
    pub fn metric(&self, metric: Metric) -> &MetricStats {
        self.metrics
            .iter()
            .find(|m| m.metric == metric)
            .expect("every metric is computed for every cell")
    }

    /// Runs recorded (ok and failed).
    pub fn n_recorded(&self) -> usize {
        self.n_ok + self.n_failed
    }

    pub(crate) fn build(
        key: CellKey,
        runs: &[&RunRecord],
        scheduled: Option<usize>,
        n_missing: usize,
        config: &AnalysisConfig,
    ) -> CellAnalysis {
        let ok: Vec<&RunRecord> = runs
            .iter()
            .copied()
            .filter(|r| r.is_ok() && r.metrics.is_some())
            .collect();
        let mut failures_by_kind = BTreeMap::new();
        for r in runs {
            if let RunStatus::Failed { error, .. } = &r.status {
                *failures_by_kind.entry(error.kind).or_insert(0) += 1;
            }
        }
        let mut flags = FlagCounts::default();
        for f in ok
            .iter()
            .filter_map(|r| r.metrics.as_ref())
            .map(|m| m.flags)
        {
            flags.ttft_anomaly += usize::from(f.ttft_anomaly);
            flags.low_speedup += usize::from(f.low_speedup);
            flags.cold_load += usize::from(f.cold_load);
            flags.length_mismatch += usize::from(f.length_mismatch);
            flags.prompt_cache += usize::from(f.prompt_cache);
        }
        CellAnalysis {
            scheduled,
            n_ok: ok.len(),
            n_failed: runs.iter().filter(|r| !r.is_ok()).count(),
            n_missing,
            failures_by_kind,
            flags,
            metrics: Metric::ALL
                .iter()
                .map(|&m| MetricStats::of(m, &ok, config))
                .collect(),
            key,
        }
    }
}
