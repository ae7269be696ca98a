//! What the terminal shows: a line per run, the cells side by side, the failures on their
//! own, and where the results are; or the same as one JSON document (`--json`).

use chimeraforge_core::metrics::RunMetrics;
use chimeraforge_core::record::{RunRecord, RunStatus};
use chimeraforge_report::analysis::Metric;
use chimeraforge_report::stats::Summary;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

/// Marks a figure computed with the seed report's formula (estimated, not measured).
pub const ESTIMATED_MARK: &str = "≈";

/// One line for a finished run.
pub fn run_line(position: usize, total: usize, r: &RunRecord) -> String {
    let head = format!(
        "[{position:>width$}/{total}] {:<14} {:<24} {:<19} run {:<3}",
        r.backend,
        r.model,
        r.scenario.name(),
        r.run_index + 1,
        width = total.to_string().len()
    );
    match (&r.status, &r.metrics) {
        (RunStatus::Ok, Some(m)) => {
            let mut line = format!(
                "{head}  speedup {:.3}x  efficiency {:>5.1}% (measured)  graph efficiency {} (measured)  seed formula {ESTIMATED_MARK}{:.1}% (estimated)  TTFT {}  {} per agent",
                m.speedup.value,
                m.efficiency.value * 100.0,
                m.graph_efficiency
                    .map_or("-".into(), |g| format!("{:.1}%", g.value * 100.0)),
                m.estimated_efficiency.value * 100.0,
                agent_ttft_ms(m).map_or("-".into(), |v| format!("{v:.0} ms")),
                agent_tok_s(m).map_or("-".into(), |v| format!("{v:.0} tok/s")),
            );
            for name in m.flags.raised() {
                line.push_str(&format!(" [{name}]"));
            }
            line
        }
        (RunStatus::Failed { .. }, _) => format!("{head}  FAILED: {}", failure_text(r)),
        (RunStatus::Ok, None) => format!("{head}  (no metrics)"),
    }
}

/// Why a failed run failed, in one line.
pub fn failure_text(r: &RunRecord) -> String {
    match &r.status {
        RunStatus::Failed {
            phase,
            agent_id,
            call,
            error,
        } => format!(
            "{} phase, agent {agent_id}, call {call}: {:?}: {error}",
            format!("{phase:?}").to_lowercase(),
            error.kind
        ),
        RunStatus::Ok => "ok".into(),
    }
}

/// Mean concurrent-phase TTFT over the agents of a run, ms: the report's own definition,
/// so the terminal and the report cannot disagree.
fn agent_ttft_ms(m: &RunMetrics) -> Option<f64> {
    Metric::TtftMs.of(m).map(|(v, _)| v)
}

/// Mean concurrent-phase client decode rate over the agents of a run, tok/s (as the report).
fn agent_tok_s(m: &RunMetrics) -> Option<f64> {
    Metric::DecodeTokS.of(m).map(|(v, _)| v)
}

/// The figures of one cell (backend × model × scenario) over its runs.
pub struct CellFigures {
    pub model: String,
    pub scenario: String,
    /// Agents in each run (2 unless a scaling sweep).
    pub agents: usize,
    pub backend: String,
    /// Runs recorded.
    pub n: usize,
    /// Runs that succeeded.
    pub ok: usize,
    pub speedup: Option<Summary>,
    pub efficiency: Option<Summary>,
    /// Critical path / T_conc, %.
    pub graph_efficiency: Option<Summary>,
    pub estimated_efficiency: Option<Summary>,
    pub ttft_ms: Option<Summary>,
    pub decode_tok_s: Option<Summary>,
    pub cpu_s: Option<Summary>,
    pub rss_mib: Option<Summary>,
    /// Flag name and the number of runs that raised it.
    pub flags: Vec<(&'static str, usize)>,
}

/// Cells in (model, scenario, backend) order.
pub fn cells(records: &[RunRecord]) -> Vec<CellFigures> {
    let mut by_cell: BTreeMap<(String, String, usize, String), Vec<&RunRecord>> = BTreeMap::new();
    for r in records {
        by_cell
            .entry((
                r.model.clone(),
                r.scenario.name().to_owned(),
                r.agents.len(),
                r.backend.clone(),
            ))
            .or_default()
            .push(r);
    }
    by_cell
        .into_iter()
        .map(|((model, scenario, agents, backend), runs)| {
            let ok: Vec<&RunMetrics> = runs
                .iter()
                .filter(|r| r.is_ok())
                .filter_map(|r| r.metrics.as_ref())
                .collect();
            let col = |f: &dyn Fn(&RunMetrics) -> Option<f64>| {
                Summary::of(&ok.iter().filter_map(|m| f(m)).collect::<Vec<_>>())
            };
            let client = |f: &dyn Fn(&chimeraforge_core::record::ClientCost) -> f64| {
                Summary::of(
                    &runs
                        .iter()
                        .filter_map(|r| r.client.as_ref().map(f))
                        .collect::<Vec<_>>(),
                )
            };
            let mut flags: BTreeMap<&'static str, usize> = BTreeMap::new();
            for m in &ok {
                for name in m.flags.raised() {
                    *flags.entry(name).or_default() += 1;
                }
            }
            CellFigures {
                n: runs.len(),
                ok: ok.len(),
                speedup: col(&|m| Some(m.speedup.value)),
                efficiency: col(&|m| Some(m.efficiency.value * 100.0)),
                graph_efficiency: col(&|m| m.graph_efficiency.map(|g| g.value * 100.0)),
                estimated_efficiency: col(&|m| Some(m.estimated_efficiency.value * 100.0)),
                ttft_ms: col(&agent_ttft_ms),
                decode_tok_s: col(&agent_tok_s),
                cpu_s: client(&|c| c.user_cpu_s + c.system_cpu_s),
                rss_mib: client(&|c| c.peak_rss_kib as f64 / 1024.0),
                flags: flags.into_iter().collect(),
                model,
                scenario,
                agents,
                backend,
            }
        })
        .collect()
}

fn spread(s: &Option<Summary>, digits: usize) -> String {
    match s {
        Some(s) if s.n == 1 => format!("{:.d$}", s.mean, d = digits),
        Some(s) => format!(
            "{:.d$} ± {:.d$} [{:.d$}, {:.d$}]",
            s.mean,
            s.std.unwrap_or(0.0),
            s.min,
            s.max,
            d = digits
        ),
        None => "-".into(),
    }
}

fn mean_of(s: &Option<Summary>, digits: usize) -> String {
    s.as_ref()
        .map_or("-".into(), |s| format!("{:.d$}", s.mean, d = digits))
}

/// Columns: header, unit line, left-aligned?
const COLUMNS: [(&str, &str, bool); 11] = [
    ("  backend", "", true),
    ("ok/n", "runs", false),
    ("speedup (measured)", "x  mean ± sd [min, max]", false),
    ("efficiency (measured)", "%  mean ± sd [min, max]", false),
    (
        "graph efficiency (measured)",
        "%  mean ± sd [min, max]",
        false,
    ),
    ("seed formula (estimated)", "efficiency %, mean", false),
    ("TTFT", "ms", false),
    ("decode", "tok/s/agent", false),
    ("client CPU", "s", false),
    ("peak RSS", "MiB", false),
    ("flags", "runs flagged", true),
];

/// The side-by-side table: one row per backend within each model × scenario, a blank line
/// between model × scenario groups, then what "measured" and "estimated" mean.
pub fn cells_table(records: &[RunRecord]) -> String {
    let cells = cells(records);
    if cells.is_empty() {
        return "no runs recorded\n".into();
    }
    let rows: Vec<[String; 11]> = cells
        .iter()
        .map(|c| {
            [
                format!("  {}", c.backend),
                format!("{}/{}", c.ok, c.n),
                spread(&c.speedup, 3),
                spread(&c.efficiency, 1),
                spread(&c.graph_efficiency, 1),
                c.estimated_efficiency
                    .as_ref()
                    .map_or("-".into(), |s| format!("{ESTIMATED_MARK}{:.1}", s.mean)),
                mean_of(&c.ttft_ms, 1),
                mean_of(&c.decode_tok_s, 0),
                mean_of(&c.cpu_s, 3),
                mean_of(&c.rss_mib, 1),
                if c.flags.is_empty() {
                    "-".into()
                } else {
                    c.flags
                        .iter()
                        .map(|(name, k)| format!("{name}×{k}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                },
            ]
        })
        .collect();
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([COLUMNS[i].0.chars().count(), COLUMNS[i].1.chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..COLUMNS.len()).map(width).collect();
    // The flags column only when some run raised a flag.
    let shown = if rows.iter().all(|r| r[COLUMNS.len() - 1] == "-") {
        COLUMNS.len() - 1
    } else {
        COLUMNS.len()
    };
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, text) in cells.iter().enumerate().take(shown) {
            let pad = widths[i].saturating_sub(text.chars().count());
            if i > 0 {
                s.push_str("  ");
            }
            if COLUMNS[i].2 {
                s.push_str(text);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(text);
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = String::new();
    out.push_str(&line(&COLUMNS.map(|c| c.0)));
    out.push_str(&line(&COLUMNS.map(|c| c.1)));
    // The backends of each model × scenario under a title line.
    let mut previous_group: Option<(&str, &str, usize)> = None;
    for (c, row) in cells.iter().zip(&rows) {
        let group = (c.model.as_str(), c.scenario.as_str(), c.agents);
        if previous_group != Some(group) {
            out.push_str(&format!(
                "{} · {} · {} agents\n",
                c.model, c.scenario, c.agents
            ));
        }
        previous_group = Some(group);
        out.push_str(&line(&row.each_ref().map(String::as_str)));
    }
    out.push_str(
        "\nmeasured   speedup = Σ T_alone / T_concurrent, from a real sequential and a real concurrent phase in every run;\n           efficiency = speedup / agents; graph efficiency = critical path / T_concurrent (100% on an ideal server,\n           whatever the agents' lengths or dependencies; the critical path is the longest chain of sequential-phase durations)\n",
    );
    out.push_str(&format!(
        "estimated  {ESTIMATED_MARK} = the seed report's formula Σ T_i(conc) / T_concurrent / agents, for comparison only:\n           it shows how evenly the agents finished, not what running them concurrently bought\n"
    ));
    out.push_str(
        "TTFT and decode: per agent, concurrent phase. client CPU and peak RSS: the measured child process.\nDefinitions: docs/methodology.md\n",
    );
    out
}

/// A run that produced no record, or a record with `status: failed`.
pub struct FailedRun {
    pub what: String,
    pub why: String,
}

/// Failed runs of `records`, and child processes that produced no record (`child_failures`).
pub fn failures(records: &[RunRecord], child_failures: &[String]) -> Vec<FailedRun> {
    let mut v: Vec<FailedRun> = records
        .iter()
        .filter(|r| !r.is_ok())
        .map(|r| FailedRun {
            what: format!(
                "{} {} {} run {}",
                r.backend,
                r.model,
                r.scenario.name(),
                r.run_index + 1
            ),
            why: failure_text(r),
        })
        .collect();
    v.extend(child_failures.iter().map(|e| FailedRun {
        what: "child process".into(),
        why: e.clone(),
    }));
    v
}

/// The program that opens a file in the desktop's default viewer.
pub fn opener() -> &'static str {
    if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    }
}

/// How to run this program again: the path it was started with when that has a directory
/// (`target/release/chimeraforge`), else its name.
pub fn program() -> String {
    std::env::args()
        .next()
        .filter(|a| a.contains('/'))
        .unwrap_or_else(|| "chimeraforge".into())
}

/// Where the results are and how to look at them (`report_command`: this build has
/// `chimeraforge report`).
pub fn results_footer(dir: &Path, report_written: bool) -> String {
    let d = dir.display();
    let mut out =
        format!("results: {d}/  (manifest.json, runs.jsonl; fields in docs/results-schema.md)\n");
    if report_written {
        out.push_str(&format!(
            "report:  {d}/report.md, report.html, runs.csv  (open: {} {d}/report.html)\n",
            opener()
        ));
    } else {
        out.push_str(&format!(
            "report:  not written; try `{} report {d}`\n",
            program()
        ));
    }
    out
}

fn stat(s: &Option<Summary>) -> serde_json::Value {
    match s {
        Some(s) => json!({"n": s.n, "mean": s.mean, "std": s.std, "min": s.min, "max": s.max}),
        None => serde_json::Value::Null,
    }
}

/// The machine-readable summary printed by `--json`: per cell n, mean/std/min/max of each
/// figure, failures, and the results directory.
pub fn json_summary(
    config_name: &str,
    dir: &Path,
    records: &[RunRecord],
    child_failures: &[String],
    total: usize,
) -> serde_json::Value {
    let cells: Vec<_> = cells(records)
        .iter()
        .map(|c| {
            json!({
                "model": c.model,
                "scenario": c.scenario,
                "agents": c.agents,
                "backend": c.backend,
                "n": c.n,
                "ok": c.ok,
                "failed": c.n - c.ok,
                "speedup": stat(&c.speedup),
                "efficiency_pct": stat(&c.efficiency),
                "graph_efficiency_pct": stat(&c.graph_efficiency),
                "estimated_efficiency_pct": stat(&c.estimated_efficiency),
                "ttft_ms": stat(&c.ttft_ms),
                "decode_tok_s": stat(&c.decode_tok_s),
                "client_cpu_s": stat(&c.cpu_s),
                "peak_rss_mib": stat(&c.rss_mib),
                "flags": c.flags.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    let failures: Vec<_> = failures(records, child_failures)
        .into_iter()
        .map(|f| json!({"run": f.what, "error": f.why}))
        .collect();
    json!({
        "config": config_name,
        "results_dir": dir.display().to_string(),
        "runs_planned": total,
        "runs_recorded": records.len(),
        "runs_failed": failures.len(),
        "cells": cells,
        "failures": failures,
    })
}
