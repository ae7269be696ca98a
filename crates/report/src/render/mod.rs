//! The outputs. Each implements the [`Report`] hooks it needs; [`render_all`] drives them
//! all through one fan-out, so every output sees the same analysis in the same order.

mod charts;
mod csv;
mod findings;
mod html;
mod markdown;
mod svg;
pub mod table;
pub mod text;

pub use self::csv::CsvReport;
pub use self::html::HtmlReport;
pub use self::markdown::MarkdownReport;
pub use findings::{findings, Finding, FindingGroup, FindingKind};

use crate::analysis::{Analysis, CellAnalysis, Contrast, RunRow};

/// Hooks called while walking an analysis; every hook does nothing unless implemented.
pub trait Report {
    /// Called once, first.
    fn begin(&mut self, _analysis: &Analysis) {}
    /// Called once per cell, in report order.
    fn cell(&mut self, _analysis: &Analysis, _cell: &CellAnalysis) {}
    /// Called once per contrast (backend pairs, then model pairs).
    fn contrast(&mut self, _analysis: &Analysis, _contrast: &Contrast) {}
    /// Called once per run (ok, failed or missing), in cell order then run order.
    fn run(&mut self, _analysis: &Analysis, _run: &RunRow) {}
    /// Called once, last.
    fn end(&mut self, _analysis: &Analysis) {}
}

/// Several reports behind one: each hook is passed on to every report in turn.
pub struct Reports<'a>(pub Vec<&'a mut dyn Report>);

impl Report for Reports<'_> {
    fn begin(&mut self, a: &Analysis) {
        self.0.iter_mut().for_each(|r| r.begin(a));
    }
    fn cell(&mut self, a: &Analysis, cell: &CellAnalysis) {
        self.0.iter_mut().for_each(|r| r.cell(a, cell));
    }
    fn contrast(&mut self, a: &Analysis, contrast: &Contrast) {
        self.0.iter_mut().for_each(|r| r.contrast(a, contrast));
    }
    fn run(&mut self, a: &Analysis, run: &RunRow) {
        self.0.iter_mut().for_each(|r| r.run(a, run));
    }
    fn end(&mut self, a: &Analysis) {
        self.0.iter_mut().for_each(|r| r.end(a));
    }
}

/// Walk `analysis` through `report`'s hooks.
pub fn drive(analysis: &Analysis, report: &mut dyn Report) {
    report.begin(analysis);
    for cell in &analysis.cells {
        report.cell(analysis, cell);
    }
    for contrast in &analysis.contrasts {
        report.contrast(analysis, contrast);
    }
    for run in &analysis.runs {
        report.run(analysis, run);
    }
    report.end(analysis);
}

/// The three outputs, in memory.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub markdown: String,
    pub html: String,
    pub csv: String,
}

/// Render `report.md`, `report.html` and `runs.csv` in one pass.
pub fn render_all(analysis: &Analysis) -> Rendered {
    let mut markdown = MarkdownReport::default();
    let mut html = HtmlReport::default();
    let mut csv = CsvReport::default();
    drive(
        analysis,
        &mut Reports(vec![&mut markdown, &mut html, &mut csv]),
    );
    Rendered {
        markdown: markdown.into_string(),
        html: html.into_string(),
        csv: csv.into_string(),
    }
}
