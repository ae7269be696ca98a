//! Tables built once from the analysis and rendered as Markdown or HTML, so both reports
//! show the same rows. A cell is either our own text (numbers, labels) or foreign text (from
//! a config, a server or a model), which is escaped harder.

use super::text::{ci_signed, html, md, num, opt, p_value, serde_name, signed, stats_parts};
use crate::analysis::{
    kind_name, lost_cause, mann_whitney_method, Analysis, BoxStats, CellAnalysis, ContextSeries,
    Contrast, Factor, Metric, RunRow, RunState, Timeline,
};
use std::fmt::Write;

/// One table cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text this crate wrote: numbers, units, labels.
    Own(String),
    /// Text from outside (model names, agent ids, error messages): escaped in full.
    Foreign(String),
    /// A statistic: the main figure ("mean ± sd") and its detail ("\[CI\] min–max"), our text.
    Stat(String, String),
}

impl Cell {
    /// The cell as one line of plain text.
    pub fn text(&self) -> String {
        match self {
            Cell::Own(s) | Cell::Foreign(s) => s.clone(),
            Cell::Stat(main, detail) if detail.is_empty() => main.clone(),
            Cell::Stat(main, detail) => format!("{main} {detail}"),
        }
    }
}

fn own(s: impl Into<String>) -> Cell {
    Cell::Own(s.into())
}

fn foreign(s: impl Into<String>) -> Cell {
    Cell::Foreign(s.into())
}

/// The summary tables both reports build while the analysis is walked: concurrency gain and
/// latency per cell, and the gap tables per fixed slice, in order: (factor, fixed, table).
#[derive(Debug)]
pub struct CellTables {
    pub gain: Table,
    pub latency: Table,
    pub gaps: Vec<(Factor, String, Table)>,
    /// The latency table has a "TTFT answer" column (some call reasoned).
    pub reasoning: bool,
}

impl CellTables {
    pub fn new() -> CellTables {
        CellTables {
            gain: Table::keyed(&GAIN_HEADER, 4),
            latency: Table::keyed(&LATENCY_HEADER, 4),
            gaps: Vec::new(),
            reasoning: false,
        }
    }

    /// Empty tables for `a`: with the "TTFT answer" column only where some call reasoned, so
    /// a report of runs without reasoning is what it always was.
    pub fn for_analysis(a: &Analysis) -> CellTables {
        if !a.reasoning {
            return CellTables::new();
        }
        let mut header = LATENCY_HEADER.to_vec();
        header.insert(LATENCY_TTFT_COLUMN + 1, TTFT_ANSWER_HEADER);
        CellTables {
            latency: Table::keyed(&header, 4),
            reasoning: true,
            ..CellTables::new()
        }
    }

    /// The gap tables of `factor`: (fixed slice, table), in order.
    pub fn gaps_of(&self, factor: Factor) -> Vec<(&str, &Table)> {
        self.gaps
            .iter()
            .filter(|g| g.0 == factor)
            .map(|(_, fixed, t)| (fixed.as_str(), t))
            .collect()
    }

    /// A cell's rows in the gain and latency tables.
    pub fn cell(&mut self, c: &CellAnalysis) {
        self.gain.rows.push(gain_row(c));
        let mut row = latency_row(c);
        if self.reasoning {
            row.insert(
                LATENCY_TTFT_COLUMN + 1,
                metric_cell(c, Metric::TtftAnswerMs),
            );
        }
        self.latency.rows.push(row);
    }

    /// A contrast's row, in the gap table of its factor and fixed slice.
    pub fn contrast(&mut self, c: &Contrast) {
        let fixed = c.factor.fixed(&c.a);
        match self.gaps.last_mut() {
            Some((f, s, t)) if *f == c.factor && *s == fixed => t.rows.push(gap_row(c)),
            _ => {
                let mut t = Table::keyed(&GAP_HEADER, 2);
                t.rows.push(gap_row(c));
                self.gaps.push((c.factor, fixed, t));
            }
        }
    }
}

impl Default for CellTables {
    /// The same as [`CellTables::new`]: empty tables with their headers.
    fn default() -> CellTables {
        CellTables::new()
    }
}

/// A header and rows of cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Leading columns (names) that HTML keeps on one line.
    pub key_columns: usize,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            key_columns: 0,
        }
    }

    /// The same, with the first `n` columns kept on one line in HTML.
    pub fn keyed(header: &[&str], n: usize) -> Table {
        Table {
            key_columns: n,
            ..Table::new(header)
        }
    }

    /// GitHub-flavoured Markdown.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "| {} |",
            self.header
                .iter()
                .map(|h| md_own(h))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(o, "|{}", "---|".repeat(self.header.len()));
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .map(|c| match c {
                    Cell::Own(_) | Cell::Stat(..) => md_own(&c.text()),
                    Cell::Foreign(s) => md(s),
                })
                .collect();
            let _ = writeln!(o, "| {} |", cells.join(" | "));
        }
        o
    }

    /// An HTML `<table>`; every cell is escaped.
    pub fn html(&self, class: &str) -> String {
        let mut o = format!(
            "<div class=\"scroll\"><table class=\"{}\"><thead><tr>",
            html(class)
        );
        for h in &self.header {
            let _ = write!(o, "<th>{}</th>", html(h));
        }
        o.push_str("</tr></thead><tbody>\n");
        for row in &self.rows {
            o.push_str("<tr>");
            for (i, c) in row.iter().enumerate() {
                // Names and short figures ("< 0.001", "5 / 5") stay on one line.
                let short = matches!(c, Cell::Own(t) if t.chars().count() <= 18);
                o.push_str(if i < self.key_columns || short {
                    "<td class=\"key\">"
                } else {
                    "<td>"
                });
                match c {
                    Cell::Stat(main, detail) if !detail.is_empty() => {
                        // Break lines between the CI and the range, never inside either.
                        let _ = write!(
                            o,
                            "<span class=\"stat\">{}</span><br><span class=\"detail\">{}</span>",
                            html(main),
                            html(detail)
                                .replace(", ", ",\u{a0}")
                                .replace('–', "\u{2060}–\u{2060}")
                        );
                    }
                    c => o.push_str(&html(&c.text())),
                }
                o.push_str("</td>");
            }
            o.push_str("</tr>\n");
        }
        o.push_str("</tbody></table></div>\n");
        o
    }
}

/// Our own text in a Markdown cell: kept readable, only what would break the table escaped.
fn md_own(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

pub const GAIN_HEADER: [&str; 10] = [
    "model",
    "scenario",
    "agents",
    "backend",
    "runs ok / scheduled",
    "speedup (measured), ×",
    "efficiency (measured), %",
    "graph efficiency (measured: critical path / T_conc), %",
    "graph ceiling (Σ alone / critical path), ×",
    "estimated efficiency (seed formula, not a measurement), %",
];

fn runs_cell(c: &CellAnalysis) -> String {
    let sched = c
        .scheduled
        .map_or_else(|| "?".to_owned(), |s| s.to_string());
    let mut runs = format!("{} / {sched}", c.n_ok);
    if c.n_failed > 0 {
        runs.push_str(&format!(", {} failed", c.n_failed));
    }
    if c.n_missing > 0 {
        runs.push_str(&format!(", {} missing", c.n_missing));
    }
    runs
}

fn metric_cell(c: &CellAnalysis, m: Metric) -> Cell {
    let s = c.metric(m);
    let (main, mut detail) = stats_parts(s);
    if s.n() != c.n_ok {
        detail.push_str(&format!(" (n = {})", s.n()));
    }
    Cell::Stat(main, detail.trim_start().to_owned())
}

fn key_cells(c: &CellAnalysis) -> [Cell; 4] {
    [
        foreign(&c.key.model),
        own(c.key.scenario.name()),
        own(c.key.agents.to_string()),
        foreign(&c.key.backend),
    ]
}

/// A row of the concurrency-gain summary.
pub fn gain_row(c: &CellAnalysis) -> Vec<Cell> {
    let mut row = key_cells(c).to_vec();
    row.extend([
        own(runs_cell(c)),
        metric_cell(c, Metric::Speedup),
        metric_cell(c, Metric::Efficiency),
        metric_cell(c, Metric::GraphEfficiency),
        metric_cell(c, Metric::GraphCeiling),
        metric_cell(c, Metric::EstimatedEfficiency),
    ]);
    row
}

/// Where TTFT is in [`LATENCY_HEADER`]; "TTFT answer" follows it when shown.
const LATENCY_TTFT_COLUMN: usize = 5;

/// The header of the column [`CellTables::for_analysis`] adds where some call reasoned.
pub const TTFT_ANSWER_HEADER: &str = "TTFT answer (concurrent), ms";

pub const LATENCY_HEADER: [&str; 10] = [
    "model",
    "scenario",
    "agents",
    "backend",
    "n",
    "TTFT (concurrent), ms",
    "decode rate per agent (concurrent), tok/s",
    "system throughput, tok/s",
    "slowdown, ×",
    "fairness (Jain)",
];

/// A row of the latency-and-throughput summary.
pub fn latency_row(c: &CellAnalysis) -> Vec<Cell> {
    let mut row = key_cells(c).to_vec();
    row.extend([
        own(c.n_ok.to_string()),
        metric_cell(c, Metric::TtftMs),
        metric_cell(c, Metric::DecodeTokS),
        metric_cell(c, Metric::SystemThroughput),
        metric_cell(c, Metric::Slowdown),
        metric_cell(c, Metric::Fairness),
    ]);
    row
}

pub const GAP_HEADER: [&str; 12] = [
    "a",
    "b",
    "metric",
    "mean a",
    "mean b",
    "a − b [95% CI]",
    "n a / n b",
    "Welch p",
    "Mann-Whitney p",
    "Hedges' g",
    "Cliff's δ",
    "verdict",
];

/// A row of a backend-gap or model-gap table.
pub fn gap_row(c: &Contrast) -> Vec<Cell> {
    let d = c.metric.decimals();
    let diff = c.diff.map_or_else(
        || "–".to_owned(),
        |ci| {
            format!(
                "{} {} {}",
                signed(ci.estimate, d),
                ci_signed(&ci, d),
                c.metric.diff_unit()
            )
        },
    );
    vec![
        foreign(c.factor.level(&c.a)),
        foreign(c.factor.level(&c.b)),
        own(c.metric.label()),
        own(opt(c.mean_a, d)),
        own(opt(c.mean_b, d)),
        own(diff),
        own(format!("{} / {}", c.n_a, c.n_b)),
        own(c.welch.map_or("–".into(), |w| p_value(w.p_value))),
        own(c.mann_whitney.map_or("–".into(), |m| {
            format!("{} ({})", p_value(m.p_value), mann_whitney_method(&m))
        })),
        own(c.hedges_g.map_or("–".into(), |g| signed(g, 2))),
        own(c.cliffs_delta.map_or("–".into(), |d| signed(d, 2))),
        own(c.verdict.describe()),
    ]
}

pub const APPENDIX_HEADER: [&str; 9] = [
    "run",
    "status",
    "speedup, ×",
    "efficiency (measured), %",
    "graph efficiency (measured), %",
    "estimated efficiency (seed formula), %",
    "throughput Δ, tok/s",
    "TTFT Δ, ms",
    "flags",
];

/// A row of the per-run appendix (runs numbered from 1).
pub fn appendix_row(r: &RunRow) -> Vec<Cell> {
    let status = match (r.state, &r.failure) {
        (RunState::Failed, Some(f)) => format!("failed: {}", kind_name(f.kind)),
        (s, _) => s.name().to_owned(),
    };
    let flags = r.flag_names();
    vec![
        own((r.run_index + 1).to_string()),
        own(status),
        own(opt(r.speedup, 4)),
        own(opt(r.efficiency_pct, 2)),
        own(opt(r.graph_efficiency_pct, 2)),
        own(opt(r.estimated_efficiency_pct, 2)),
        own(r
            .throughput_delta_tok_s
            .map_or("–".into(), |x| signed(x, 2))),
        own(r.ttft_delta_ms.map_or("–".into(), |x| signed(x, 1))),
        own(match (flags.is_empty(), r.flags.is_some()) {
            (false, _) => flags.join(", "),
            (true, true) => "none".to_owned(),
            (true, false) => "–".to_owned(),
        }),
    ]
}

/// The variance split, one row per factor × metric × fixed slice.
pub fn variance_table(a: &Analysis) -> Table {
    let mut t = Table::new(&[
        "metric",
        "factor",
        "fixed",
        "groups (n)",
        "between",
        "within",
        "F (df)",
        "p",
    ]);
    for v in &a.variance {
        let groups: Vec<String> = v.groups.iter().map(|(g, n)| format!("{g} ({n})")).collect();
        let (between, within, f, p) = match &v.result {
            Ok(d) => (
                format!("{}%", num(d.eta_squared * 100.0, 1)),
                format!("{}%", num((1.0 - d.eta_squared) * 100.0, 1)),
                d.f_test.map_or("–".into(), |t| {
                    format!("{} ({}, {})", num(t.f, 2), t.df_between, t.df_within)
                }),
                d.f_test.map_or("–".into(), |t| p_value(t.p_value)),
            ),
            Err(e) => (format!("n/a ({e})"), "–".into(), "–".into(), "–".into()),
        };
        t.rows.push(vec![
            own(v.metric.label()),
            own(v.factor.name()),
            foreign(&v.fixed),
            foreign(groups.join(", ")),
            own(between),
            own(within),
            own(f),
            own(p),
        ]);
    }
    t
}

/// Throughput delta vs efficiency, per backend and pooled.
pub fn correlation_table(a: &Analysis) -> Table {
    let mut t = Table::new(&["scope", "n runs", "Pearson r", "p", "Spearman ρ", "p"]);
    for c in &a.correlations {
        let show = |r: &Result<crate::stats::Correlation, String>| match r {
            Ok(c) => (num(c.r, 3), p_value(c.p_value)),
            Err(e) => (format!("n/a ({e})"), "–".into()),
        };
        let (pr, pp) = show(&c.pearson);
        let (sr, sp) = show(&c.spearman);
        t.rows.push(vec![
            foreign(&c.scope),
            own(c.n.to_string()),
            own(pr),
            own(pp),
            own(sr),
            own(sp),
        ]);
    }
    t
}

/// Cells with failed or missing runs.
pub fn failure_cells_table(a: &Analysis) -> Table {
    let mut t = Table::new(&[
        "cell",
        "scheduled",
        "ok",
        "failed",
        "missing",
        "failures by kind",
    ]);
    for c in a.cells.iter().filter(|c| c.n_failed + c.n_missing > 0) {
        let kinds: Vec<String> = c
            .failures_by_kind
            .iter()
            .map(|(k, n)| format!("{} × {n}", kind_name(*k)))
            .collect();
        t.rows.push(vec![
            foreign(c.key.to_string()),
            own(c.scheduled.map_or("?".into(), |s| s.to_string())),
            own(c.n_ok.to_string()),
            own(c.n_failed.to_string()),
            own(c.n_missing.to_string()),
            own(kinds.join(", ")),
        ]);
    }
    t
}

/// Failed runs over all cells, per error kind.
pub fn failure_kinds_table(a: &Analysis) -> Table {
    let mut t = Table::new(&["error kind", "failed runs"]);
    for (k, n) in &a.failures.by_kind {
        t.rows.push(vec![own(kind_name(*k)), own(n.to_string())]);
    }
    t
}

/// Each failed run and its first failed call.
pub fn failed_runs_table(a: &Analysis) -> Table {
    let mut t = Table::new(&["cell", "run", "phase", "agent", "call", "kind", "message"]);
    for r in &a.failures.runs {
        t.rows.push(vec![
            foreign(r.key.to_string()),
            own((r.run_index + 1).to_string()),
            own(serde_name(&r.phase)),
            foreign(&r.agent_id),
            foreign(&r.call),
            own(kind_name(r.kind)),
            foreign(&r.message),
        ]);
    }
    t
}

/// Scheduled runs without a record, with the cause the driver recorded.
pub fn missing_runs_table(a: &Analysis) -> Table {
    let mut t = Table::new(&["cell", "run", "cause", "driver's message"]);
    for r in a.runs.iter().filter(|r| r.state == RunState::Missing) {
        t.rows.push(vec![
            foreign(r.key.to_string()),
            own((r.run_index + 1).to_string()),
            own(lost_cause(r.lost.as_ref())),
            foreign(r.lost.as_ref().map_or_else(
                || "no record and no failure recorded (interrupted, or still to run: `chimeraforge bench --resume`)".to_owned(),
                |l| l.failure.to_string(),
            )),
        ]);
    }
    t
}

/// An agent graph's concurrent phase, one row per agent: what the graph timeline draws.
pub fn graph_timeline_table(t: &Timeline) -> Table {
    let mut table = Table::new(&[
        "agent",
        "after",
        "start, ms",
        "end, ms",
        "calls",
        "tool waits, ms",
        "critical path",
    ]);
    for lane in &t.lanes {
        let after: Vec<&str> = lane
            .after
            .iter()
            .filter_map(|&d| t.lanes.get(d).map(|l| l.agent_id.as_str()))
            .collect();
        let waits: Vec<String> = lane
            .calls
            .iter()
            .filter_map(|c| c.tool_wait_ms)
            .map(|w| num(w, 1))
            .collect();
        table.rows.push(vec![
            foreign(&lane.agent_id),
            foreign(if after.is_empty() {
                "–".to_owned()
            } else {
                after.join(", ")
            }),
            own(num(lane.start_ms, 1)),
            own(num(lane.end_ms, 1)),
            own(lane.calls.len().to_string()),
            own(if waits.is_empty() {
                "–".to_owned()
            } else {
                waits.join(", ")
            }),
            own(if lane.critical { "★ on it" } else { "" }),
        ]);
    }
    table
}

/// TTFT against context length: one row per cell and call position of its agents with
/// history.
pub fn context_table(series: &[ContextSeries]) -> Table {
    let mut t = Table::keyed(
        &[
            "cell",
            "call",
            "prompt tokens (server), median (min–max)",
            "TTFT alone (sequential), ms, median (IQR)",
            "TTFT concurrent, ms, median (IQR)",
        ],
        1,
    );
    let med = |b: &Option<BoxStats>, d: usize| {
        b.map_or("–".to_owned(), |b| {
            format!(
                "{} ({}–{}; n = {})",
                num(b.median, d),
                num(b.q1, d),
                num(b.q3, d),
                b.n
            )
        })
    };
    for s in series {
        for turn in &s.turns {
            t.rows.push(vec![
                foreign(s.key.to_string()),
                own((turn.turn + 1).to_string()),
                own(turn.prompt_tokens.map_or("–".to_owned(), |b| {
                    format!("{} ({}–{})", num(b.median, 0), num(b.min, 0), num(b.max, 0))
                })),
                own(med(&turn.ttft_alone_ms, 1)),
                own(med(&turn.ttft_concurrent_ms, 1)),
            ]);
        }
    }
    t
}
