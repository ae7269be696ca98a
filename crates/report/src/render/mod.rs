//! The outputs. Each implements the [`Report`] hooks it needs; [`render_all`] drives them
//! all through one fan-out, so every output sees the same analysis in the same order.

mod charts;
mod csv;
mod findings;
mod html;
mod markdown;
pub mod svg;
pub mod table;
pub mod text;

pub use self::csv::CsvReport;
pub use self::html::HtmlReport;
pub use self::markdown::MarkdownReport;
pub use findings::{findings, Finding, FindingGroup, FindingKind};

use crate::analysis::{Analysis, CellAnalysis, Contrast, RunRow};
use crate::results::Manifest;
use chimeraforge_core::workload::PromptCache;
use chimeraforge_core::ConnectionPolicy;

/// The header's account of prompt caching: the manifest's `prompt_cache` and each
/// session's nonce.
fn prompt_cache_line(m: &Manifest, escape: fn(&str) -> String) -> String {
    let nonces: Vec<String> = m
        .sessions
        .iter()
        .filter_map(|s| s.prompt_nonce.as_deref())
        .map(escape)
        .collect();
    match m.prompt_cache {
        Some(PromptCache::Isolate) => format!(
            "Prompt cache: isolate (every measured prompt led by its invocation's nonce: {}), so that no invocation is served prompts an earlier one cached (runs where a server still served most of a first prompt from its cache carry the prompt_cache flag)",
            if nonces.is_empty() { "none recorded".to_owned() } else { nonces.join(", ") }
        ),
        Some(PromptCache::Allow) => "Prompt cache: allow (no nonce: prompts repeat across invocations, and a long-running server may serve them from its prompt cache; see the prompt_cache flag and each call's cached_prompt_tokens)".to_owned(),
        None => "Prompt cache: not recorded (written before per-invocation nonces: a second invocation of the same config may have been served from a server's prompt cache)".to_owned(),
    }
}

/// The header's account of connection reuse: the manifest's `connection`.
fn connection_line(m: &Manifest) -> String {
    match m.connection {
        Some(ConnectionPolicy::KeepAlive) => "Connections: keep-alive (each agent reuses its own connection, opened by its warm-up call; a kept connection the server closed is replaced inside the call that finds it, its time in that call's TTFT, counted per call as reconnects)".to_owned(),
        Some(ConnectionPolicy::Fresh) => "Connections: fresh (a new connection per call, whatever the server does: every TTFT includes a TCP connect)".to_owned(),
        None => "Connections: not recorded (written before connection policies: every call sent Connection: close, and smol-1kb still reused a connection a server kept open)".to_owned(),
    }
}

/// Where the results came from (directory, tool, config, host, times, run counts), one
/// line each, every foreign string passed through `escape` (Markdown or HTML).
pub(crate) fn provenance(a: &Analysis, escape: fn(&str) -> String) -> Vec<String> {
    let m = &a.manifest;
    let mut lines = Vec::new();
    if !a.source.as_os_str().is_empty() {
        lines.push(format!(
            "Results directory: {}",
            escape(&a.source.display().to_string())
        ));
    }
    let tool: Vec<String> = m
        .tool
        .iter()
        .flat_map(|t| {
            [
                non_empty(&t.version).map(|v| format!("chimeraforge {}", escape(v))),
                non_empty(&t.git_revision).map(|v| format!("git {}", escape(v))),
                non_empty(&t.rustc).map(escape),
            ]
        })
        .flatten()
        .collect();
    if !tool.is_empty() {
        lines.push(format!("Tool: {}", tool.join(", ")));
    }
    if let Some(p) = non_empty(&m.config_path) {
        lines.push(format!(
            "Config: {} (FNV-1a {})",
            escape(p),
            escape(non_empty(&m.config_fnv1a64).unwrap_or("?"))
        ));
    }
    if let Some(host) = &m.host {
        lines.push(format!(
            "Host: {} ({} CPUs), {} {}",
            escape(host.cpu_model.as_deref().unwrap_or("")),
            host.cpus.unwrap_or(0),
            escape(&host.os),
            escape(host.kernel.as_deref().unwrap_or(""))
        ));
    }
    if let Some(s) = non_empty(&m.started_utc) {
        lines.push(format!(
            "Started {} UTC, finished {}",
            escape(s),
            m.outcome.as_ref().map_or(
                "(not recorded: the bench was interrupted?)".to_owned(),
                |o| format!("{} UTC", escape(&o.finished_utc))
            )
        ));
    }
    lines.push(prompt_cache_line(m, escape));
    lines.push(connection_line(m));
    let recorded: usize = a.cells.iter().map(CellAnalysis::n_recorded).sum();
    lines.push(format!(
        "Runs: {recorded} recorded ({} ok, {} failed), {} scheduled but not recorded; {} backend(s) × {} model(s) × {} scenario(s) = {} cell(s)",
        a.n_ok(),
        a.failures.runs.len(),
        a.failures.missing.len(),
        a.backends.len(),
        a.models.len(),
        a.scenarios.len(),
        a.cells.len()
    ));
    lines
}

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

/// `s`, or `None` for a field the manifest did not record.
pub(crate) fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}
