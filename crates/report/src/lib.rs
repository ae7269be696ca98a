//! Statistics and reports over chimeraforge run records.
//!
//! - [`stats`]: the statistics, independent of how results are shown.
//! - [`results`]: read a results directory (`manifest.json`, `runs.jsonl`).
//! - [`analysis`]: per-cell statistics, contrasts, variance split, correlations, failures.
//! - [`render`]: the outputs (`report.md`, `report.html`, `runs.csv`) behind one
//!   [`render::Report`] trait; [`svg`], its SVG writer, also draws the driver's charts.
//! - [`mod@compare`]: two results directories side by side, cell by cell.

pub mod analysis;
pub mod compare;
pub mod render;
pub mod results;
pub mod stats;

use std::path::{Path, PathBuf};

pub use analysis::{analyze, Analysis, AnalysisConfig};
pub use compare::{compare, compare_results, Comparison};
pub use render::{render_all, svg, Rendered};
pub use results::{read_results, Results};

/// File names of the outputs, written into the results directory.
pub const REPORT_MD: &str = "report.md";
pub const REPORT_HTML: &str = "report.html";
pub const RUNS_CSV: &str = "runs.csv";

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The results directory could not be read, or an output not written.
    #[error(transparent)]
    Results(#[from] chimeraforge_results::ResultsError),
}

/// What [`write_report`] wrote, and what it skipped.
#[derive(Debug, Clone)]
pub struct ReportSummary {
    pub markdown: PathBuf,
    pub html: PathBuf,
    pub csv: PathBuf,
    /// Runs read (ok and failed), and runs the manifest scheduled but no record holds.
    pub runs_read: usize,
    pub runs_failed: usize,
    pub runs_missing: usize,
    /// Lines of `runs.jsonl` that were skipped, and other caveats, one line each.
    pub warnings: Vec<String>,
}

/// Read the results directory `dir` and write `report.md`, `report.html` and `runs.csv` into it.
pub fn write_report(dir: &Path) -> Result<ReportSummary, ReportError> {
    let results = read_results(dir)?;
    let analysis = analyze(&results, &AnalysisConfig::default());
    let rendered = render_all(&analysis);
    let write = |name: &str, text: &str| -> Result<PathBuf, ReportError> {
        let path = dir.join(name);
        chimeraforge_results::write_atomic(&path, text.as_bytes())?;
        Ok(path)
    };
    Ok(ReportSummary {
        markdown: write(REPORT_MD, &rendered.markdown)?,
        html: write(REPORT_HTML, &rendered.html)?,
        csv: write(RUNS_CSV, &rendered.csv)?,
        runs_read: results.records.len(),
        runs_failed: analysis.failures.runs.len(),
        runs_missing: analysis.failures.missing.len(),
        warnings: analysis.warnings.clone(),
    })
}
