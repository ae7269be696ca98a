//! From run records to what the report states: per-cell statistics with bootstrap CIs,
//! differences between backends and between models with their tests, the variance split,
//! correlations, failures, and the per-call detail the charts draw.

mod cell;
mod context;
mod contrast;
mod detail;
pub mod graph;
mod metric;
mod runs;

pub use cell::{CellAnalysis, CellKey, FlagCounts, MetricStats};
pub use context::{ContextPoint, ContextSeries, ContextTurn};
pub use contrast::{
    mann_whitney_method, min_mann_whitney_p, Contrast, CorrelationRow, Factor, VarianceSplit,
    Verdict,
};
pub use detail::{
    BoxStats, CellDistributions, OutputSample, Timeline, TimelineCall, TimelineLane, MAX_POINTS,
};
pub use metric::Metric;
pub use runs::{kind_name, lost_cause, FailedRun, Failures, RunRow, RunState};

use crate::results::{LostRun, Manifest, Results, Slot};
use crate::stats::BootstrapConfig;
use chimeraforge_core::record::RunRecord;
use chimeraforge_core::workload::Scenario;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

/// The bootstrap seed every report uses (recorded in the report), so CIs are reproducible.
pub const BOOTSTRAP_SEED: u64 = 116;

/// How the statistics are computed. The defaults are what `write_report` uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AnalysisConfig {
    /// Seed of every bootstrap.
    pub seed: u64,
    /// Confidence level of every CI.
    pub level: f64,
    /// Bootstrap resamples for samples of at most `large_sample` values.
    pub resamples: usize,
    /// Bootstrap resamples for larger samples. The Monte Carlo error of a 95% bound is about
    /// 3% of the CI's half-width at 2,000 resamples (1.4% at 10,000); 2,000 keeps a 10,000-run
    /// report under a second on two cores (benches/report.rs).
    pub resamples_large: usize,
    pub large_sample: usize,
    /// Fewest values for a CI: a percentile bootstrap of 2 values is [min, max], far too
    /// narrow to mean 95%.
    pub min_ci_n: usize,
    /// A difference is supported when Welch and Mann-Whitney both give p below this.
    pub alpha: f64,
    /// `compare`: a change smaller than this fraction of the old mean is noise (0.01 = 1%).
    pub noise_threshold: f64,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            seed: BOOTSTRAP_SEED,
            level: 0.95,
            resamples: 10_000,
            resamples_large: 2_000,
            large_sample: 100,
            min_ci_n: 3,
            alpha: 0.05,
            noise_threshold: 0.01,
        }
    }
}

impl AnalysisConfig {
    /// Whether samples of `n` values get a CI.
    pub fn has_ci(&self, n: usize) -> bool {
        n >= self.min_ci_n.max(2)
    }

    /// The bootstrap for a sample of `n` values (the larger sample, for a difference).
    pub fn bootstrap(&self, n: usize) -> BootstrapConfig {
        BootstrapConfig {
            resamples: if n <= self.large_sample {
                self.resamples
            } else {
                self.resamples_large
            },
            seed: self.seed,
            level: self.level,
        }
    }

    /// One sentence saying how every CI was computed.
    pub fn describe_bootstrap(&self) -> String {
        format!(
            "{:.0}% percentile-bootstrap CIs of the mean (ChaCha8, seed {}), {} resamples for samples of up to {} values, {} above, none below {} values",
            self.level * 100.0,
            self.seed,
            self.resamples,
            self.large_sample,
            self.resamples_large,
            self.min_ci_n
        )
    }
}

/// Everything the renderers show, computed once.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub config: AnalysisConfig,
    /// The results directory (empty when analysed in memory).
    pub source: PathBuf,
    pub manifest: Manifest,
    /// Skipped lines and other caveats, one line each.
    pub warnings: Vec<String>,
    /// Levels in report order (the manifest's order, then first appearance).
    pub backends: Vec<String>,
    pub models: Vec<String>,
    pub scenarios: Vec<Scenario>,
    /// Cells ordered by model, then scenario, then backend.
    pub cells: Vec<CellAnalysis>,
    /// Backend pairs on the same model × scenario, then model pairs on the same backend ×
    /// scenario, each over [`Metric::CONTRASTED`].
    pub contrasts: Vec<Contrast>,
    pub variance: Vec<VarianceSplit>,
    /// Throughput delta vs efficiency: per backend, then pooled.
    pub correlations: Vec<CorrelationRow>,
    pub failures: Failures,
    /// Every run (ok, failed, missing), in cell order then run order.
    pub runs: Vec<RunRow>,
    /// Per-call distributions, one per cell, in cell order.
    pub distributions: Vec<CellDistributions>,
    /// One concurrent phase per backend (the median-efficiency run of its first cell).
    pub timelines: Vec<Timeline>,
    /// Each call's output preview from every cell's median-efficiency run.
    pub samples: Vec<OutputSample>,
    /// TTFT against prompt tokens, per cell whose agents with history sent growing prompts
    /// (none for agents without history), in cell order.
    pub context: Vec<ContextSeries>,
    /// Some measured call reasoned (reasoning tokens > 0): the report then shows the time to
    /// the first answer token beside TTFT.
    pub reasoning: bool,
    /// Scenarios of one backend × model × agent count whose runs sent identical requests
    /// (e.g. `chimera-homo` and `chimera-hetero` on an OpenAI-compatible API, where the
    /// options that differ are Ollama load options, not request fields).
    pub identical_requests: Vec<IdenticalRequests>,
}

/// Cells that differ only in their scenario label: every agent's requests were the same.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdenticalRequests {
    pub backend: String,
    pub model: String,
    pub agents: usize,
    pub scenarios: Vec<Scenario>,
}

/// What a record's agents send, without the run's tag: every call's request body (the
/// previous call's output left out), in agent order.
fn request_bodies(r: &RunRecord) -> Vec<Vec<u8>> {
    r.agents
        .iter()
        .flat_map(|a| (0..a.calls.len()).map(move |i| a.request_body(i, "")))
        .collect()
}

/// Groups of scenarios (two or more) whose first recorded run of each cell sent the same
/// requests, per backend × model × agent count.
fn identical_requests(by_cell: &BTreeMap<CellKey, Vec<&RunRecord>>) -> Vec<IdenticalRequests> {
    /// backend, model, agent count -> each scenario's request bodies.
    type Groups = BTreeMap<(String, String, usize), Vec<(Scenario, Vec<Vec<u8>>)>>;
    let mut groups = Groups::new();
    for (key, runs) in by_cell {
        if let Some(r) = runs.first() {
            let bodies = request_bodies(r);
            let g = groups
                .entry((key.backend.clone(), key.model.clone(), key.agents))
                .or_default();
            g.push((key.scenario, bodies));
        }
    }
    let mut out = Vec::new();
    for ((backend, model, agents), cells) in groups {
        let mut done = vec![false; cells.len()];
        for i in 0..cells.len() {
            if done[i] {
                continue;
            }
            let same: Vec<usize> = (i..cells.len())
                .filter(|&j| !done[j] && cells[j].1 == cells[i].1)
                .collect();
            if same.len() > 1 {
                for &j in &same {
                    done[j] = true;
                }
                out.push(IdenticalRequests {
                    backend: backend.clone(),
                    model: model.clone(),
                    agents,
                    scenarios: same.iter().map(|&j| cells[j].0).collect(),
                });
            }
        }
    }
    out
}

impl Analysis {
    /// The cell with `key`, if any.
    pub fn cell(&self, key: &CellKey) -> Option<&CellAnalysis> {
        self.cells.iter().find(|c| &c.key == key)
    }

    /// Contrasts along `factor`.
    pub fn contrasts_by(&self, factor: Factor) -> impl Iterator<Item = &Contrast> {
        self.contrasts.iter().filter(move |c| c.factor == factor)
    }

    /// Successful runs over all cells.
    pub fn n_ok(&self) -> usize {
        self.cells.iter().map(|c| c.n_ok).sum()
    }
}

/// Analyse a results directory's records.
pub fn analyze(results: &Results, config: &AnalysisConfig) -> Analysis {
    let mut warnings = results.warnings.clone();
    let manifest = &results.manifest;
    let scheduled = manifest.order.as_ref();
    let default_agents = manifest.default_agents();

    let mut by_cell: BTreeMap<CellKey, Vec<&RunRecord>> = BTreeMap::new();
    for r in &results.records {
        by_cell.entry(CellKey::of(r)).or_default().push(r);
    }
    for runs in by_cell.values_mut() {
        runs.sort_by_key(|r| r.run_index);
    }
    let slot_key = |s: &Slot| CellKey {
        backend: s.cell.backend.to_string(),
        model: s.cell.model.clone(),
        scenario: s.cell.scenario,
        agents: s.cell.agents_or(default_agents),
    };
    let mut scheduled_by_cell: BTreeMap<CellKey, BTreeSet<u32>> = BTreeMap::new();
    for s in scheduled.into_iter().flatten() {
        scheduled_by_cell
            .entry(slot_key(s))
            .or_default()
            .insert(s.run_index);
    }
    // The latest loss of each slot (a resumed bench may have lost a run twice).
    let lost = &manifest.lost_runs;
    let mut lost_by_slot: HashMap<(CellKey, u32), LostRun> = HashMap::new();
    for l in lost {
        lost_by_slot.insert((slot_key(&l.slot), l.slot.run_index), l.clone());
    }

    let backends = level_order(
        manifest.backends.iter().map(ToString::to_string).collect(),
        by_cell
            .keys()
            .chain(scheduled_by_cell.keys())
            .map(|k| k.backend.clone()),
    );
    let models = level_order(
        manifest.config_models(),
        by_cell
            .keys()
            .chain(scheduled_by_cell.keys())
            .map(|k| k.model.clone()),
    );
    let scenarios = level_order(
        manifest
            .config_scenarios()
            .iter()
            .filter_map(|s| s.parse::<Scenario>().ok())
            .collect(),
        by_cell
            .keys()
            .chain(scheduled_by_cell.keys())
            .map(|k| k.scenario),
    );
    let rank = |v: &[String], x: &str| v.iter().position(|y| y == x).unwrap_or(usize::MAX);
    let mut keys: Vec<CellKey> = by_cell
        .keys()
        .chain(scheduled_by_cell.keys())
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    keys.sort_by_key(|k| {
        (
            rank(&models, &k.model),
            scenarios.iter().position(|s| *s == k.scenario),
            k.agents,
            rank(&backends, &k.backend),
        )
    });

    let empty = Vec::new();
    let mut missing = Vec::new();
    let mut jobs = Vec::new();
    for key in &keys {
        let runs = by_cell.get(key).unwrap_or(&empty);
        let recorded: BTreeSet<u32> = runs.iter().map(|r| r.run_index).collect();
        if recorded.len() < runs.len() {
            warnings.push(format!(
                "{key}: {} records share a run index (a resumed or merged directory?); all are counted",
                runs.len() - recorded.len()
            ));
        }
        for r in runs.iter().filter(|r| r.is_ok() && r.metrics.is_none()) {
            warnings.push(format!(
                "{key} run {}: status ok but no metrics; left out of the statistics",
                r.run_index + 1
            ));
        }
        let sched = scheduled_by_cell.get(key);
        let cell_missing: Vec<u32> = sched
            .map(|s| s.difference(&recorded).copied().collect())
            .unwrap_or_default();
        missing.extend(cell_missing.iter().map(|&i| (key.clone(), i)));
        jobs.push((
            key.clone(),
            runs.as_slice(),
            sched.map(BTreeSet::len),
            cell_missing.len(),
        ));
    }
    let cells: Vec<CellAnalysis> = par_map(&jobs, |(key, runs, sched, n_missing)| {
        CellAnalysis::build(key.clone(), runs, *sched, *n_missing, config)
    });
    for c in &cells {
        for m in c.metrics.iter().filter(|m| m.non_finite > 0) {
            warnings.push(format!(
                "{}: {} run(s) have a non-finite {}; left out of its statistics",
                c.key,
                m.non_finite,
                m.metric.name()
            ));
        }
    }

    let contrasts = contrasts(&cells, config);
    let variance = variance_splits(&cells);
    let correlations = correlations(&backends, &results.records);

    let ok_runs = |key: &CellKey| -> Vec<&RunRecord> {
        by_cell
            .get(key)
            .map(|runs| {
                runs.iter()
                    .copied()
                    .filter(|r| r.is_ok() && r.metrics.is_some())
                    .collect()
            })
            .unwrap_or_default()
    };
    let dist_jobs: Vec<(CellKey, Vec<&RunRecord>)> =
        keys.iter().map(|k| (k.clone(), ok_runs(k))).collect();
    let distributions = par_map(&dist_jobs, |(k, runs)| {
        CellDistributions::of(k.clone(), runs)
    });
    let cell_timelines: Vec<Timeline> = dist_jobs
        .iter()
        .filter_map(|(_, runs)| Timeline::median_run(runs))
        .collect();
    let samples = cell_timelines.iter().flat_map(OutputSample::of).collect();
    let context = dist_jobs
        .iter()
        .filter_map(|(k, runs)| ContextSeries::of(k.clone(), runs))
        .collect();
    let timelines = backends
        .iter()
        .filter_map(|b| cell_timelines.iter().find(|t| &t.key.backend == b).cloned())
        .collect();

    let mut runs = Vec::new();
    let mut failures = Failures {
        missing: missing.clone(),
        child_failures: manifest.child_failures.clone(),
        ..Failures::default()
    };
    for (k, i) in &missing {
        let cause = lost_cause(lost_by_slot.get(&(k.clone(), *i)));
        *failures.missing_by_cause.entry(cause).or_insert(0) += 1;
    }
    failures.lost = lost
        .iter()
        .filter(|l| missing.contains(&(slot_key(&l.slot), l.slot.run_index)))
        .cloned()
        .collect();
    for key in &keys {
        let mut rows: Vec<RunRow> = by_cell
            .get(key)
            .unwrap_or(&empty)
            .iter()
            .map(|r| RunRow::of(r))
            .collect();
        rows.extend(missing.iter().filter(|(k, _)| k == key).map(|(k, i)| {
            let lost = lost_by_slot.get(&(k.clone(), *i)).cloned();
            RunRow::missing(k.clone(), *i, lost)
        }));
        rows.sort_by_key(|r| r.run_index);
        for f in rows.iter().filter_map(|r| r.failure.as_ref()) {
            *failures.by_kind.entry(f.kind).or_insert(0) += 1;
            failures.runs.push(f.clone());
        }
        runs.extend(rows);
    }

    Analysis {
        config: *config,
        source: results.dir.clone(),
        manifest: manifest.clone(),
        warnings,
        backends,
        models,
        scenarios,
        cells,
        contrasts,
        variance,
        correlations,
        failures,
        runs,
        distributions,
        timelines,
        samples,
        context,
        reasoning: results.records.iter().any(reasoned),
        identical_requests: identical_requests(&by_cell),
    }
}

/// Whether some measured call of `r` reasoned.
fn reasoned(r: &RunRecord) -> bool {
    [&r.sequential, &r.concurrent]
        .into_iter()
        .flatten()
        .flat_map(|p| &p.agents)
        .flat_map(|a| &a.calls)
        .any(|c| c.reasoning_tokens.is_some_and(|t| t.value > 0))
}

/// `first` (deduplicated), then anything in `seen` not yet listed, in order of appearance.
fn level_order<T: PartialEq + Clone>(first: Vec<T>, seen: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for x in first.into_iter().chain(seen) {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Backend pairs within each model × scenario, then model pairs within each backend ×
/// scenario; cells in report order, so pairs come out in that order too.
fn contrasts(cells: &[CellAnalysis], config: &AnalysisConfig) -> Vec<Contrast> {
    let mut jobs = Vec::new();
    for factor in [Factor::Backend, Factor::Model] {
        for group in slices(cells, factor) {
            for (i, a) in group.iter().enumerate() {
                for b in &group[i + 1..] {
                    for metric in Metric::CONTRASTED {
                        jobs.push((factor, metric, *a, *b));
                    }
                }
            }
        }
    }
    par_map(&jobs, |(factor, metric, a, b)| {
        Contrast::of(*factor, *metric, a, b, config)
    })
}

/// Cells grouped by what stays fixed when `factor` varies; only groups of two or more.
fn slices(cells: &[CellAnalysis], factor: Factor) -> Vec<Vec<&CellAnalysis>> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<&CellAnalysis>> = HashMap::new();
    for c in cells {
        let fixed = factor.fixed(&c.key);
        if !groups.contains_key(&fixed) {
            order.push(fixed.clone());
        }
        groups.entry(fixed).or_default().push(c);
    }
    order
        .into_iter()
        .filter_map(|k| groups.remove(&k))
        .filter(|g| g.len() > 1)
        .collect()
}

fn variance_splits(cells: &[CellAnalysis]) -> Vec<VarianceSplit> {
    let mut out = Vec::new();
    for factor in [Factor::Backend, Factor::Model] {
        for metric in [Metric::Efficiency, Metric::TtftMs] {
            for group in slices(cells, factor) {
                out.push(VarianceSplit::of(factor, metric, &group));
            }
        }
    }
    out
}

fn correlations(backends: &[String], records: &[RunRecord]) -> Vec<CorrelationRow> {
    let pair = |r: &RunRecord| -> Option<(f64, f64)> {
        let m = r.metrics.as_ref().filter(|_| r.is_ok())?;
        let x = m.throughput_delta_tok_s?;
        let y = m.efficiency.value * 100.0;
        (x.is_finite() && y.is_finite()).then_some((x, y))
    };
    let mut rows: Vec<CorrelationRow> = backends
        .iter()
        .map(|b| {
            let pairs: Vec<(f64, f64)> = records
                .iter()
                .filter(|r| &r.backend == b)
                .filter_map(pair)
                .collect();
            CorrelationRow::of(b.clone(), &pairs)
        })
        .collect();
    if backends.len() > 1 {
        let pairs: Vec<(f64, f64)> = records.iter().filter_map(pair).collect();
        rows.push(CorrelationRow::of(
            "all backends (pooled)".to_owned(),
            &pairs,
        ));
    }
    rows
}

/// `f` over `items` on every available core; the result is in input order, whatever the
/// split (each bootstrap is seeded per call, so the numbers do not depend on threads).
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let f = &f;
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        // Interleaved, so cells of unequal size spread over the threads.
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    items
                        .iter()
                        .enumerate()
                        .skip(t)
                        .step_by(threads)
                        .map(|(i, x)| (i, f(x)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(done) => {
                    for (i, r) in done {
                        out[i] = Some(r);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    out.into_iter()
        .map(|r| r.expect("every item is mapped once"))
        .collect()
}
