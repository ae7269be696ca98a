//! `report.md`: findings, summary tables, gaps, variance split, correlations, failures, and a
//! per-run appendix in the seed report's layout. Foreign strings are escaped with [`md`].

use super::findings::{findings, FindingKind};
use super::table::{self, CellTables, Table};
use super::text::{md, mean_sd, num};
use super::Report;
use crate::analysis::{Analysis, CellAnalysis, CellKey, Contrast, Factor, Metric, RunRow};
use std::fmt::Write;

/// Writes `report.md`.
#[derive(Debug, Default)]
pub struct MarkdownReport {
    tables: CellTables,
    appendix: String,
    appendix_cell: Option<(CellKey, Table)>,
    appendix_count: usize,
    out: String,
}

impl MarkdownReport {
    pub fn into_string(self) -> String {
        self.out
    }
}

/// Append a line (writing into a String cannot fail).
macro_rules! line {
    ($dst:expr) => { $dst.push('\n') };
    ($dst:expr, $($arg:tt)*) => {{ let _ = writeln!($dst, $($arg)*); }};
}

impl Report for MarkdownReport {
    fn begin(&mut self, a: &Analysis) {
        self.tables = CellTables::for_analysis(a);
    }

    fn cell(&mut self, _: &Analysis, c: &CellAnalysis) {
        self.tables.cell(c);
    }

    fn contrast(&mut self, _: &Analysis, c: &Contrast) {
        self.tables.contrast(c);
    }

    fn run(&mut self, a: &Analysis, r: &RunRow) {
        if self.appendix_cell.as_ref().map(|(k, _)| k) != Some(&r.key) {
            self.close_appendix_cell(a);
            self.appendix_cell = Some((r.key.clone(), Table::new(&table::APPENDIX_HEADER)));
        }
        if let Some((_, t)) = &mut self.appendix_cell {
            t.rows.push(table::appendix_row(r));
        }
    }

    fn end(&mut self, a: &Analysis) {
        self.close_appendix_cell(a);
        let mut o = String::new();
        head(&mut o, a);

        line!(o, "## Findings");
        line!(o);
        if a.n_ok() == 0 {
            line!(o, "No successful run: nothing to compare.");
            line!(o);
        }
        for g in findings(a) {
            line!(o, "### {}: {}", md(&g.title), g.summary);
            line!(o);
            for f in &g.findings {
                let prefix = match f.kind {
                    FindingKind::Difference => "**Differs.** ",
                    FindingKind::WithinNoise => "Within noise. ",
                    FindingKind::FarBelowGraph => "**Far below the graph.** ",
                    _ => "",
                };
                line!(o, "- {prefix}{}", md(&f.text));
            }
            line!(o);
        }
        if !a.contrasts.is_empty() {
            line!(o, "{} comparisons were tested (backend and model gaps over {} metrics); their p-values are not corrected for multiple comparisons.", a.contrasts.len(), Metric::CONTRASTED.len());
        }
        line!(o);

        line!(o, "## Summary by cell");
        line!(o);
        line!(o, "Each value reads `mean ± sd [95% CI] min–max` over the cell's successful runs (n in the runs column, or stated beside the value).");
        line!(o);
        line!(o, "### Concurrency gain");
        line!(o);
        o.push_str(&self.tables.gain.markdown());
        line!(o);
        line!(o, "### Latency and throughput (concurrent phase)");
        line!(o);
        o.push_str(&self.tables.latency.markdown());
        line!(o);
        graph_timelines(&mut o, a);
        if !a.context.is_empty() {
            line!(o, "### TTFT against context length");
            line!(o);
            line!(o, "Agents that carry their history send every earlier turn again, so each call's prompt is longer than the last. Per call position of those agents: the prompt as the server counted it, and the TTFT alone (sequential phase) and beside the other agents (concurrent phase). report.html plots every call.");
            line!(o);
            o.push_str(&table::context_table(&a.context).markdown());
            line!(o);
        }

        for (factor, title, what) in [
            (Factor::Backend, "Backend gap per model", "backends"),
            (Factor::Model, "Model gap per backend", "models"),
        ] {
            line!(o, "## {title}");
            line!(o);
            let gaps = self.tables.gaps_of(factor);
            if gaps.is_empty() {
                line!(
                    o,
                    "No two {what} share the rest of a cell: nothing to compare."
                );
                line!(o);
            } else {
                line!(o, "a − b for every pair of {what} with everything else fixed. Verdict \"differs\" needs Welch and Mann-Whitney both at p < {}.", a.config.alpha);
                line!(o);
            }
            for (fixed, t) in gaps {
                line!(o, "### {}", md(fixed));
                line!(o);
                o.push_str(&t.markdown());
                line!(o);
            }
        }

        line!(o, "## Variance split");
        line!(o);
        if a.variance.is_empty() {
            line!(
                o,
                "No factor has two levels with the rest fixed: nothing to split."
            );
        } else {
            line!(o, "One-way split of the run-to-run variance: the share between the levels of one factor (eta² = SS between / SS total) and within them, with the one-way ANOVA F-test; everything else fixed per row.");
            line!(o);
            o.push_str(&table::variance_table(a).markdown());
        }
        line!(o);

        line!(o, "## Correlation: throughput delta vs efficiency");
        line!(o);
        line!(o, "Per successful run: throughput delta (agent 0 − agent 1 decode rate, tok/s) against measured efficiency (%). A per-backend or pooled row mixes models and scenarios, so its correlation may reflect differences between cells.");
        line!(o);
        o.push_str(&table::correlation_table(a).markdown());
        line!(o);

        failures(&mut o, a);

        if !a.warnings.is_empty() {
            line!(o, "## Warnings");
            line!(o);
            for w in &a.warnings {
                line!(o, "- {}", md(w));
            }
            line!(o);
        }

        line!(o, "## Appendix A: per-run detail");
        line!(o);
        line!(o, "Runs are numbered from 1 within their cell. Throughput Δ and TTFT Δ: agent 0 − agent 1, concurrent phase. Flags: `ttft_anomaly` (a concurrent TTFT above 3 s), `low_speedup` (efficiency below 75%), `cold_load` (a measured call paid a model load), `length_mismatch` (output length differed between the phases), `prompt_cache` (the server served most of an agent's first prompt from its prompt cache). runs.csv has every figure of every run.");
        o.push_str(&self.appendix);
        self.out = o;
    }
}

impl MarkdownReport {
    /// Write the finished cell's runs, then the seed's "Efficiency Statistics" block.
    fn close_appendix_cell(&mut self, a: &Analysis) {
        let Some((key, t)) = self.appendix_cell.take() else {
            return;
        };
        self.appendix_count += 1;
        let dst = &mut self.appendix;
        line!(dst);
        line!(
            dst,
            "### A.{}. {}",
            self.appendix_count,
            md(&key.to_string())
        );
        line!(dst);
        dst.push_str(&t.markdown());
        line!(dst);
        let Some(cell) = a.cell(&key) else { return };
        let eff = cell.metric(Metric::Efficiency);
        let Some(s) = eff.summary else {
            line!(dst, "No successful run: no efficiency statistics.");
            return;
        };
        line!(
            dst,
            "**Efficiency statistics (measured, n = {} runs):**",
            s.n
        );
        line!(
            dst,
            "- Mean: {}% {}",
            num(s.mean, 2),
            eff.ci
                .map_or("(n too small for a CI)".to_owned(), |c| format!(
                    "[95% CI {}, {}]",
                    num(c.lo, 2),
                    num(c.hi, 2)
                ))
        );
        match s.std {
            Some(sd) => {
                line!(dst, "- Std dev: {} pp", num(sd, 2));
                line!(
                    dst,
                    "- Min: {}% | Max: {}% | Range: {} pp",
                    num(s.min, 2),
                    num(s.max, 2),
                    num(s.max - s.min, 2)
                );
                if let Some(cv) = s.cv {
                    line!(dst, "- CV: {}%", num(cv * 100.0, 2));
                }
            }
            None => line!(dst, "- n = 1: n too small for sd, range or CV"),
        }
        line!(
            dst,
            "- Speedup: {} ×; estimated efficiency (seed formula, not a measurement): {}%",
            mean_sd(cell.metric(Metric::Speedup)),
            mean_sd(cell.metric(Metric::EstimatedEfficiency))
        );
    }
}

fn head(o: &mut String, a: &Analysis) {
    let m = &a.manifest;
    let name = m.config_name().unwrap_or("results");
    line!(o, "# chimeraforge report: {}", md(name));
    line!(o);
    if let Some(d) = m.config_description() {
        line!(o, "{}", md(d));
        line!(o);
    }
    for l in super::provenance(a, md) {
        line!(o, "- {l}");
    }
    line!(o);
    line!(o, "## How to read this report");
    line!(o);
    for l in how_to_read(a) {
        line!(o, "- {l}");
    }
    line!(o);
}

/// The reading notes, shared with the HTML report (plain text, no foreign strings).
pub(super) fn how_to_read(a: &Analysis) -> Vec<String> {
    let mut notes = vec![
        "Speedup = Σ T_i(alone) / T_conc, from a real sequential phase; efficiency = speedup / N agents. Both are measured.".to_owned(),
        "Graph efficiency = critical path / T_conc, where the critical path is the longest chain of sequential-phase agent durations (tool waits included) along the agents' dependencies (for independent agents, the slowest agent alone): 100% on an ideal device whatever the graph. Efficiency cannot reach 100% when agents differ in length, even on a perfect server, because T_conc is at least the longest agent's time, so speedup ≤ Σ / critical path = the graph ceiling, shown beside it. Records without a recorded critical path get it computed from their own agents and sequential phase.".to_owned(),
        "Estimated efficiency is the original report's formula, Σ T_i(conc) / T_conc / N. It measures how evenly the agents finished, not what concurrency gained (two agents that each slow down 2× on a shared device still score about 100%). It is shown only so old numbers can be reproduced, in its own column, never as a headline.".to_owned(),
        "TTFT and decode rate: concurrent phase; per run the mean over agents, then summarized over runs. Slowdown = T_i(conc) / T_i(alone), mean over agents. Fairness = Jain's index over the agents' slowdowns (1 = all slowed equally). System throughput = tokens of all agents / T_conc.".to_owned(),
        "Deltas are agent 0 − agent 1 (config order), concurrent phase.".to_owned(),
    ];
    if a.reasoning {
        notes.push("Reasoning: some calls thought before answering. TTFT is the first generated token of any kind (reasoning or answer); TTFT answer is the first answer token, after the thinking. Decode rates and token counts include the reasoning tokens (the server decodes them alike).".to_owned());
    }
    notes.extend([
        format!("Each statistic states the n successful runs it rests on; sd is the sample sd (n − 1). {}. A cell with one run has no sd (\"n too small\"). With few runs (under about 10) a percentile-bootstrap CI is narrower than its nominal level: read it as a lower bound on the uncertainty; the tests below decide what is stated.", a.config.describe_bootstrap()),
        format!("A difference is stated as a finding only when Welch's t-test and Mann-Whitney U both give p < {}; otherwise it is \"within noise\". Effect sizes: Hedges' g (bias-corrected Cohen's d), Cliff's δ (−1..1). p-values are per comparison, not corrected for multiple comparisons.", a.config.alpha),
        "Every metric is defined in docs/methodology.md.".to_owned(),
    ]);
    notes
}

/// Each agent graph's concurrent phase as a table; report.html draws it.
fn graph_timelines(o: &mut String, a: &Analysis) {
    let graphs: Vec<_> = a.timelines.iter().filter(|t| t.graph).collect();
    if graphs.is_empty() {
        return;
    }
    line!(o, "### Agent graph timelines (concurrent phase)");
    line!(o);
    line!(o, "One run per backend: when each agent started (after its dependencies) and ended, relative to the barrier's release, its tool waits, and whether it is on the critical path (the longest chain of sequential-phase durations along the dependencies). report.html draws each as a timeline.");
    line!(o);
    for t in graphs {
        line!(
            o,
            "{} run {} ({}): T_conc {} ms, critical path {} ms, graph efficiency {}.",
            md(&t.key.to_string()),
            t.run_index + 1,
            t.chosen,
            num(t.wall_ms, 1),
            t.critical_path_ms.map_or("–".to_owned(), |c| num(c, 1)),
            t.graph_efficiency_pct
                .map_or("–".to_owned(), |e| format!("{}%", num(e, 1)))
        );
        line!(o);
        o.push_str(&table::graph_timeline_table(t).markdown());
        line!(o);
    }
}

fn failures(o: &mut String, a: &Analysis) {
    line!(o, "## Failures");
    line!(o);
    let f = &a.failures;
    if f.runs.is_empty() && f.missing.is_empty() && f.child_failures.is_empty() {
        line!(o, "No run failed and none is missing.");
        line!(o);
        return;
    }
    o.push_str(&table::failure_cells_table(a).markdown());
    line!(o);
    if !f.by_kind.is_empty() {
        o.push_str(&table::failure_kinds_table(a).markdown());
        line!(o);
        o.push_str(&table::failed_runs_table(a).markdown());
        line!(o);
    }
    if !f.missing.is_empty() {
        line!(
            o,
            "Scheduled but not recorded ({}; by cause: {}):",
            f.missing.len(),
            causes(a)
        );
        line!(o);
        o.push_str(&table::missing_runs_table(a).markdown());
        line!(o);
    }
    if !f.child_failures.is_empty() {
        line!(
            o,
            "Child processes that wrote no record (older manifests name no run):"
        );
        line!(o);
        for m in &f.child_failures {
            line!(o, "- {}", md(m));
        }
        line!(o);
    }
}

/// "child_crashed × 2, unknown × 1".
pub(super) fn causes(a: &Analysis) -> String {
    a.failures
        .missing_by_cause
        .iter()
        .map(|(k, n)| format!("{k} × {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
