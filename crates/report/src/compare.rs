//! Two results directories side by side, cell by cell (criterion's habit: a change is
//! reported only when it is beyond noise).
//!
//! The rule: for each metric of a cell present in both, the change is mean(B) − mean(A) with
//! a 95% bootstrap CI. It is **beyond noise** when the CI excludes 0 **and** the change is
//! larger than the noise threshold (1% of A's mean by default). Then it is "improved" or
//! "regressed" by the metric's direction (higher efficiency, speedup and tok/s are better;
//! lower TTFT is better); otherwise "change within noise threshold". With fewer than
//! [`AnalysisConfig::min_ci_n`] runs on a side there is no CI: "n too small".

use crate::analysis::{analyze, AnalysisConfig, CellAnalysis, CellKey, Metric};
use crate::render::text::{num, p_eq, signed};
use crate::results::{read_results, Results};
use crate::stats::{bootstrap_mean_diff_ci, welch_t_test, BootstrapCi};
use crate::ReportError;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// Metrics compared between two results directories.
pub const COMPARED: [Metric; 5] = [
    Metric::Efficiency,
    Metric::Speedup,
    Metric::TtftMs,
    Metric::DecodeTokS,
    Metric::SystemThroughput,
];

/// What a change amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeVerdict {
    Improved,
    Regressed,
    WithinNoise,
    TooFewRuns,
}

impl ChangeVerdict {
    pub fn describe(self) -> &'static str {
        match self {
            ChangeVerdict::Improved => "improved",
            ChangeVerdict::Regressed => "regressed",
            ChangeVerdict::WithinNoise => "change within noise threshold",
            ChangeVerdict::TooFewRuns => "n too small",
        }
    }
}

/// One metric of one cell, A → B.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub metric: Metric,
    pub n_a: usize,
    pub n_b: usize,
    pub mean_a: Option<f64>,
    pub mean_b: Option<f64>,
    /// mean(B) − mean(A) with its bootstrap CI.
    pub diff: Option<BootstrapCi>,
    /// The change as a fraction of mean(A).
    pub relative: Option<f64>,
    pub welch_p: Option<f64>,
    pub verdict: ChangeVerdict,
}

/// The changes of one cell present in both directories.
#[derive(Debug, Clone, Serialize)]
pub struct CellChange {
    pub key: CellKey,
    pub changes: Vec<Change>,
}

/// Results directory A against B.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: PathBuf,
    pub b: PathBuf,
    pub config: AnalysisConfig,
    /// Cells present in both, in A's order.
    pub cells: Vec<CellChange>,
    pub only_in_a: Vec<CellKey>,
    pub only_in_b: Vec<CellKey>,
    /// Skipped lines of either directory.
    pub warnings: Vec<String>,
}

/// Compare the results directories `dir_a` (before) and `dir_b` (after).
pub fn compare(dir_a: &Path, dir_b: &Path) -> Result<Comparison, ReportError> {
    let a = read_results(dir_a)?;
    let b = read_results(dir_b)?;
    Ok(compare_results(&a, &b, &AnalysisConfig::default()))
}

/// Compare two sets of results already read.
pub fn compare_results(a: &Results, b: &Results, config: &AnalysisConfig) -> Comparison {
    let (an_a, an_b) = (analyze(a, config), analyze(b, config));
    let cells = an_a
        .cells
        .iter()
        .filter_map(|ca| {
            let cb = an_b.cell(&ca.key)?;
            Some(CellChange {
                key: ca.key.clone(),
                changes: COMPARED
                    .iter()
                    .map(|&m| change(m, ca, cb, config))
                    .collect(),
            })
        })
        .collect();
    let keys = |x: &crate::Analysis, y: &crate::Analysis| -> Vec<CellKey> {
        x.cells
            .iter()
            .filter(|c| y.cell(&c.key).is_none())
            .map(|c| c.key.clone())
            .collect()
    };
    let mut warnings = an_a.warnings.clone();
    warnings.extend(an_b.warnings.iter().cloned());
    warnings.extend(prompt_cache_warnings(a, b));
    warnings.extend(connection_warning(a, b));
    Comparison {
        a: a.dir.clone(),
        b: b.dir.clone(),
        config: *config,
        only_in_a: keys(&an_a, &an_b),
        only_in_b: keys(&an_b, &an_a),
        cells,
        warnings,
    }
}

/// A TTFT change between two directories can be a server's prompt cache, not the client
/// (issue 13: a second invocation served from cache read as a 3x "improvement"): say so when
/// either side has runs flagged `prompt_cache`, or the two ran under different policies.
fn prompt_cache_warnings(a: &Results, b: &Results) -> Vec<String> {
    let mode = |r: &Results| {
        r.manifest
            .prompt_cache
            .map_or("not recorded", |p| p.name())
            .to_owned()
    };
    let flagged = |r: &Results| {
        r.records
            .iter()
            .filter(|x| x.metrics.as_ref().is_some_and(|m| m.flags.prompt_cache))
            .count()
    };
    let mut out = Vec::new();
    for (side, r) in [("A", a), ("B", b)] {
        let n = flagged(r);
        if n > 0 {
            out.push(format!(
                "{side} has {n} run(s) flagged prompt_cache: their TTFTs time a prompt-cache hit, so a TTFT change against them is the server's cache, not the client"
            ));
        }
    }
    let (ma, mb) = (mode(a), mode(b));
    if ma != mb {
        out.push(format!(
            "A ran with prompt_cache = {ma}, B with {mb}: with anything but isolate on both sides, a repeated prompt may have been served from a server's cache"
        ));
    }
    out
}

/// Two directories measured under different connection policies differ by the connect
/// cost in every fresh call, not only by what else changed.
fn connection_warning(a: &Results, b: &Results) -> Option<String> {
    let policy = |r: &Results| {
        r.manifest
            .connection
            .map_or_else(|| "not recorded".to_owned(), |c| c.to_string())
    };
    let (pa, pb) = (policy(a), policy(b));
    (pa != pb).then(|| {
        format!(
            "A ran with connection = {pa}, B with {pb}: a fresh call pays a TCP connect inside its TTFT and a kept-alive one does not, so TTFT and e2e differ by that cost, not only by the client"
        )
    })
}

fn change(metric: Metric, a: &CellAnalysis, b: &CellAnalysis, config: &AnalysisConfig) -> Change {
    let (xa, xb) = (&a.metric(metric).values, &b.metric(metric).values);
    let mean_a = a.metric(metric).summary.map(|s| s.mean);
    let mean_b = b.metric(metric).summary.map(|s| s.mean);
    let diff = (config.has_ci(xa.len()) && config.has_ci(xb.len()))
        .then(|| bootstrap_mean_diff_ci(xb, xa, &config.bootstrap(xa.len().max(xb.len()))).ok())
        .flatten();
    let relative = match (diff, mean_a) {
        (Some(d), Some(m)) if m != 0.0 => Some(d.estimate / m.abs()),
        _ => None,
    };
    let verdict = match diff {
        None => ChangeVerdict::TooFewRuns,
        Some(d) => {
            let excludes_zero = d.lo > 0.0 || d.hi < 0.0;
            let large = relative.is_some_and(|r| r.abs() > config.noise_threshold);
            match (excludes_zero && large, metric.higher_is_better()) {
                (true, Some(higher)) if (d.estimate > 0.0) == higher => ChangeVerdict::Improved,
                (true, Some(_)) => ChangeVerdict::Regressed,
                _ => ChangeVerdict::WithinNoise,
            }
        }
    };
    Change {
        metric,
        n_a: xa.len(),
        n_b: xb.len(),
        mean_a,
        mean_b,
        diff,
        relative,
        welch_p: welch_t_test(xb, xa).ok().map(|w| w.p_value),
        verdict,
    }
}

impl Comparison {
    /// Changes beyond noise, over all cells.
    pub fn beyond_noise(&self) -> impl Iterator<Item = (&CellKey, &Change)> {
        self.cells.iter().flat_map(|c| {
            c.changes
                .iter()
                .filter(|x| {
                    matches!(
                        x.verdict,
                        ChangeVerdict::Improved | ChangeVerdict::Regressed
                    )
                })
                .map(move |x| (&c.key, x))
        })
    }

    /// Number of changes that regressed beyond noise (e.g. for an exit code).
    pub fn regressed(&self) -> usize {
        self.beyond_noise()
            .filter(|(_, c)| c.verdict == ChangeVerdict::Regressed)
            .count()
    }

    /// The comparison as plain text for a terminal.
    pub fn render_text(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "A: {}", self.a.display())?;
        writeln!(f, "B: {}", self.b.display())?;
        writeln!(
            f,
            "change = mean(B) − mean(A); beyond noise when its 95% bootstrap CI excludes 0 and |change| > {}% of A's mean. {}.",
            num(self.config.noise_threshold * 100.0, 1),
            self.config.describe_bootstrap()
        )?;
        for c in &self.cells {
            writeln!(f)?;
            let n = c.changes.first();
            writeln!(
                f,
                "{}  (A: {} runs, B: {} runs)",
                c.key,
                n.map_or(0, |x| x.n_a),
                n.map_or(0, |x| x.n_b)
            )?;
            for x in &c.changes {
                let d = x.metric.decimals();
                let means = format!(
                    "{} → {}",
                    x.mean_a.map_or("–".into(), |m| num(m, d)),
                    x.mean_b.map_or("–".into(), |m| num(m, d))
                );
                let change = match x.diff {
                    Some(ci) => format!(
                        "{} {}{} [95% CI {}, {}]{}",
                        signed(ci.estimate, d),
                        x.metric.diff_unit(),
                        x.relative
                            .map_or(String::new(), |r| format!(" ({}%)", signed(r * 100.0, 2))),
                        signed(ci.lo, d),
                        signed(ci.hi, d),
                        x.welch_p
                            .map_or(String::new(), |p| format!(", Welch {}", p_eq(p)))
                    ),
                    None => format!("n = {} vs {}", x.n_a, x.n_b),
                };
                writeln!(
                    f,
                    "  {:<44} {:<22} {:<58} {}",
                    x.metric.label(),
                    means,
                    change,
                    x.verdict.describe()
                )?;
            }
        }
        for (side, keys) in [("A", &self.only_in_a), ("B", &self.only_in_b)] {
            if !keys.is_empty() {
                writeln!(f)?;
                writeln!(f, "only in {side} ({}):", keys.len())?;
                for k in keys {
                    writeln!(f, "  {k}")?;
                }
            }
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
