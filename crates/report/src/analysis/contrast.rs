//! Differences between cells: two cells that differ in one factor (backend or model), the
//! split of variance between and within groups, and correlations over runs.

use super::cell::{CellAnalysis, CellKey};
use super::metric::Metric;
use super::AnalysisConfig;
use crate::stats::{
    bootstrap_mean_diff_ci, cliffs_delta, cohens_d, hedges_g, mann_whitney_u, one_way, pearson,
    spearman, welch_t_test, BootstrapCi, Correlation, MannWhitney, MannWhitneyMethod,
    VarianceDecomposition, WelchTest, MANN_WHITNEY_EXACT_MAX_N,
};
use serde::Serialize;

/// The factor two compared cells differ in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    Backend,
    Model,
}

impl Factor {
    pub fn name(self) -> &'static str {
        match self {
            Factor::Backend => "backend",
            Factor::Model => "model",
        }
    }

    /// The level of `key` in this factor (its backend or its model).
    pub fn level(self, key: &CellKey) -> &str {
        match self {
            Factor::Backend => &key.backend,
            Factor::Model => &key.model,
        }
    }

    /// What stays fixed when this factor varies, e.g. "gemma3 · chimera-homo · 2 agents".
    pub fn fixed(self, key: &CellKey) -> String {
        match self {
            Factor::Backend => key.workload(),
            Factor::Model => format!("{} · {} · {} agents", key.backend, key.scenario, key.agents),
        }
    }
}

/// What the tests support about a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Welch and Mann-Whitney both give p < alpha.
    Differs,
    /// At least one test gives p >= alpha (or is undefined).
    WithinNoise,
    /// Too few runs for the tests to reach p < alpha at all.
    TooFewRuns,
}

impl Verdict {
    pub fn describe(self) -> &'static str {
        match self {
            Verdict::Differs => "differs",
            Verdict::WithinNoise => "within noise",
            Verdict::TooFewRuns => "n too small",
        }
    }
}

/// Cell `a` against cell `b` on one metric; every difference is a − b.
#[derive(Debug, Clone, Serialize)]
pub struct Contrast {
    pub factor: Factor,
    pub metric: Metric,
    pub a: CellKey,
    pub b: CellKey,
    pub n_a: usize,
    pub n_b: usize,
    pub mean_a: Option<f64>,
    pub mean_b: Option<f64>,
    /// Bootstrap CI of mean(a) − mean(b); `None` with too few values on a side.
    pub diff: Option<BootstrapCi>,
    pub welch: Option<WelchTest>,
    pub mann_whitney: Option<MannWhitney>,
    pub cohens_d: Option<f64>,
    pub hedges_g: Option<f64>,
    pub cliffs_delta: Option<f64>,
    pub verdict: Verdict,
}

impl Contrast {
    pub(crate) fn of(
        factor: Factor,
        metric: Metric,
        a: &CellAnalysis,
        b: &CellAnalysis,
        config: &AnalysisConfig,
    ) -> Contrast {
        let (xa, xb) = (&a.metric(metric).values, &b.metric(metric).values);
        let (n_a, n_b) = (xa.len(), xb.len());
        let diff = (config.has_ci(n_a) && config.has_ci(n_b))
            .then(|| bootstrap_mean_diff_ci(xa, xb, &config.bootstrap(n_a.max(n_b))).ok())
            .flatten();
        let welch = welch_t_test(xa, xb).ok();
        let mann_whitney = mann_whitney_u(xa, xb).ok();
        let verdict = if n_a < 2 || n_b < 2 || min_mann_whitney_p(n_a, n_b) >= config.alpha {
            Verdict::TooFewRuns
        } else {
            match (&welch, &mann_whitney) {
                (Some(w), Some(m)) if w.p_value < config.alpha && m.p_value < config.alpha => {
                    Verdict::Differs
                }
                _ => Verdict::WithinNoise,
            }
        };
        Contrast {
            factor,
            metric,
            a: a.key.clone(),
            b: b.key.clone(),
            n_a,
            n_b,
            mean_a: a.metric(metric).summary.map(|s| s.mean),
            mean_b: b.metric(metric).summary.map(|s| s.mean),
            diff,
            welch,
            mann_whitney,
            cohens_d: cohens_d(xa, xb).ok(),
            hedges_g: hedges_g(xa, xb).ok(),
            cliffs_delta: cliffs_delta(xa, xb).ok(),
            verdict,
        }
    }

    /// Whether `a` is better than `b` (by the metric's direction), when that means anything.
    pub fn a_is_better(&self) -> Option<bool> {
        let d = self.diff?.estimate;
        self.metric.higher_is_better().map(|h| (d > 0.0) == h)
    }
}

/// The smallest two-sided p-value Mann-Whitney can give for samples of `n_a` and `n_b`
/// values: 2 / C(n_a + n_b, n_a) on the exact distribution (complete separation, no ties).
/// Above [`MANN_WHITNEY_EXACT_MAX_N`] the normal approximation can go far lower.
pub fn min_mann_whitney_p(n_a: usize, n_b: usize) -> f64 {
    if n_a == 0 || n_b == 0 {
        return 1.0;
    }
    if n_a.max(n_b) > MANN_WHITNEY_EXACT_MAX_N {
        return 0.0;
    }
    let (k, n) = (n_a.min(n_b), n_a + n_b);
    let choose = (0..k).fold(1.0, |c, i| c * (n - i) as f64 / (i + 1) as f64);
    (2.0 / choose).min(1.0)
}

/// How a metric's variance splits between the levels of one factor and within them.
#[derive(Debug, Clone, Serialize)]
pub struct VarianceSplit {
    pub factor: Factor,
    pub metric: Metric,
    /// What stays fixed, e.g. "gemma3 · chimera-homo" when the factor is the backend.
    pub fixed: String,
    /// Each group's level name and number of values.
    pub groups: Vec<(String, usize)>,
    /// `Err` says why the split is undefined (e.g. zero variance).
    pub result: Result<VarianceDecomposition, String>,
}

impl VarianceSplit {
    pub(crate) fn of(factor: Factor, metric: Metric, cells: &[&CellAnalysis]) -> VarianceSplit {
        let with_values: Vec<&CellAnalysis> = cells
            .iter()
            .copied()
            .filter(|c| c.metric(metric).n() > 0)
            .collect();
        let samples: Vec<&[f64]> = with_values
            .iter()
            .map(|c| c.metric(metric).values.as_slice())
            .collect();
        VarianceSplit {
            factor,
            metric,
            fixed: factor.fixed(&cells[0].key),
            groups: with_values
                .iter()
                .map(|c| (factor.level(&c.key).to_owned(), c.metric(metric).n()))
                .collect(),
            result: one_way(&samples).map_err(|e| e.to_string()),
        }
    }

    /// Values the split rests on.
    pub fn n(&self) -> usize {
        self.groups.iter().map(|g| g.1).sum()
    }
}

/// Correlation of throughput delta (agent 0 − agent 1, tok/s) with measured efficiency.
#[derive(Debug, Clone, Serialize)]
pub struct CorrelationRow {
    /// A backend's name, or "all backends (pooled)".
    pub scope: String,
    /// Runs with both values.
    pub n: usize,
    pub pearson: Result<Correlation, String>,
    pub spearman: Result<Correlation, String>,
}

impl CorrelationRow {
    pub(crate) fn of(scope: String, pairs: &[(f64, f64)]) -> CorrelationRow {
        let (x, y): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
        CorrelationRow {
            scope,
            n: pairs.len(),
            pearson: pearson(&x, &y).map_err(|e| e.to_string()),
            spearman: spearman(&x, &y).map_err(|e| e.to_string()),
        }
    }
}

/// Human name of how a Mann-Whitney p-value was computed.
pub fn mann_whitney_method(m: &MannWhitney) -> &'static str {
    match m.method {
        MannWhitneyMethod::Exact => "exact",
        MannWhitneyMethod::Asymptotic => "normal approx.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_p_matches_the_exact_distribution() {
        assert_eq!(min_mann_whitney_p(2, 2), 2.0 / 6.0);
        assert!((min_mann_whitney_p(5, 5) - 2.0 / 252.0).abs() < 1e-15);
        assert!(min_mann_whitney_p(3, 3) > 0.05);
        assert!(min_mann_whitney_p(4, 4) < 0.05);
        assert_eq!(min_mann_whitney_p(0, 4), 1.0);
        assert_eq!(min_mann_whitney_p(30, 30), 0.0);
    }
}
