//! `report.html`: one self-contained page (inline CSS and SVG, no script, nothing fetched).
//! Every string from a config, a server or a model goes through [`html`] escaping.

use super::charts;
use super::findings::{findings, Finding, FindingKind};
use super::markdown::how_to_read;
use super::non_empty;
use super::table::{self, CellTables, Table};
use super::text::html;
use super::Report;
use crate::analysis::{Analysis, CellAnalysis, CellKey, Contrast, Factor, Metric, Verdict};
use std::fmt::Write;

/// Writes `report.html`.
#[derive(Debug, Default)]
pub struct HtmlReport {
    tables: CellTables,
    out: String,
}

impl HtmlReport {
    pub fn into_string(self) -> String {
        self.out
    }
}

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:24px auto;max-width:1160px;color:#1b1f24;line-height:1.45;padding:0 16px}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}h3{margin-top:1.3em}
.meta{color:#555;font-size:.92em}.meta li{margin:.1em 0}
table{border-collapse:collapse;font-size:.84em;margin:.6em 0 1em}th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f5f7}tbody tr:nth-child(even){background:#fafbfc}
td{font-variant-numeric:tabular-nums}td.key{white-space:nowrap}.stat{font-weight:600}.detail{color:#555;font-size:.92em}.scroll{overflow-x:auto}
table.gap td{white-space:nowrap}table.gap td:nth-child(3){white-space:normal}
details{margin:.3em 0}
ul.findings li{margin:.35em 0}.tag{display:inline-block;font-size:.78em;font-weight:600;padding:0 6px;border-radius:3px;margin-right:6px}
.tag-differs{background:#ffe8c2}.tag-noise{background:#e6eef5}.tag-untestable{background:#eee}.tag-seed{background:#f3e6f5}.tag-caveat{background:#fde2e1}
figure{margin:1em 0 1.6em}figcaption{font-size:.9em;color:#333;margin-bottom:.4em}
svg{display:block;max-width:100%;height:auto;font-family:inherit}
svg .grid{stroke:#e3e6ea;stroke-width:1}svg .axis{stroke:#555;stroke-width:1}svg .ref{stroke:#888;stroke-dasharray:4 3}
svg .tick{font-size:11px;fill:#444}svg .axis-label{font-size:12px;fill:#222}svg .ref-label{font-size:11px;fill:#555}
svg .row-head{font-size:12px;font-weight:600;fill:#111}svg .row-label{font-size:12px;fill:#222}svg .value{font-size:11.5px;fill:#222}
svg .whisker{stroke-width:2}svg .estimate{fill:#fff;stroke-width:1.5}svg .box{fill-opacity:.35;stroke:#333;stroke-width:.8}
svg .median{stroke:#111;stroke-width:2}svg .point{fill-opacity:.55}svg .dot{fill-opacity:.7;stroke:#fff;stroke-width:.5}
svg .call{fill-opacity:.3;stroke:#333;stroke-width:.8}svg .failed{stroke:#c00;stroke-width:2}svg .waiting{fill-opacity:.85;stroke:none}
svg .ticks{stroke-width:1;fill:none;stroke-opacity:.75}svg .call-label{font-size:10.5px;fill:#333}
pre{background:#f6f8fa;padding:10px;overflow:auto;font-size:.82em;max-height:480px}
details summary{cursor:pointer;color:#0b5cad}.warn{color:#8a3b00}
"#;

macro_rules! w {
    ($dst:expr, $($arg:tt)*) => {{ let _ = write!($dst, $($arg)*); }};
}

impl Report for HtmlReport {
    fn begin(&mut self, a: &Analysis) {
        self.tables = CellTables::for_analysis(a);
    }

    fn cell(&mut self, _: &Analysis, c: &CellAnalysis) {
        self.tables.cell(c);
    }

    fn contrast(&mut self, _: &Analysis, c: &Contrast) {
        self.tables.contrast(c);
    }

    fn end(&mut self, a: &Analysis) {
        let mut o = String::with_capacity(1 << 16);
        let name = a.manifest.config_name().unwrap_or("results");
        w!(
            o,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>chimeraforge report: {}</title>\n<style>{STYLE}</style></head><body>\n",
            html(name)
        );
        w!(o, "<h1>chimeraforge report: {}</h1>\n", html(name));
        meta(&mut o, a);

        w!(o, "<h2 id=\"findings\">Findings</h2>\n");
        if a.n_ok() == 0 {
            w!(o, "<p>No successful run: nothing to compare.</p>\n");
        }
        for g in findings(a) {
            // The headline and short groups open; long secondary ones folded, counts shown.
            let open = g.headline || g.findings.len() <= 4;
            w!(
                o,
                "<details{}><summary><b>{}</b>: {}</summary>\n<ul class=\"findings\">\n",
                if open { " open" } else { "" },
                html(&g.title),
                html(&g.summary)
            );
            let (noise, shown): (Vec<&Finding>, Vec<&Finding>) = g
                .findings
                .iter()
                .partition(|f| f.kind == FindingKind::WithinNoise && g.findings.len() > 8);
            for f in shown {
                finding_item(&mut o, f);
            }
            if !noise.is_empty() {
                w!(
                    o,
                    "<li><details><summary>{} pair(s) within noise</summary><ul class=\"findings\">\n",
                    noise.len()
                );
                for f in noise {
                    finding_item(&mut o, f);
                }
                w!(o, "</ul></details></li>\n");
            }
            w!(o, "</ul></details>\n");
        }
        if !a.contrasts.is_empty() {
            w!(o, "<p class=\"meta\">{} comparisons tested over {} metrics; p-values are per comparison, not corrected for multiple comparisons.</p>\n", a.contrasts.len(), Metric::CONTRASTED.len());
        }

        w!(o, "<h2 id=\"summary\">Summary by cell</h2>\n<p class=\"meta\">Each value: mean ± sd [95% CI] min–max over the cell's successful runs.</p>\n<h3>Concurrency gain</h3>\n");
        o.push_str(&self.tables.gain.html("summary"));
        w!(o, "<h3>Latency and throughput (concurrent phase)</h3>\n");
        o.push_str(&self.tables.latency.html("summary"));

        w!(o, "<h2 id=\"charts\">Charts</h2>\n");
        figure(&mut o, "Efficiency per cell (measured), with the seed's estimated formula beside it. Whiskers: 95% bootstrap CI of the mean; n = successful runs.", &charts::efficiency(a));
        figure(&mut o, "Time to first token per call, concurrent phase. n = calls (and the runs they come from).", &charts::ttft(a));
        figure(&mut o, "Inter-chunk gaps (raw gaps between consecutive text events), concurrent phase. n = gaps (and calls).", &charts::gaps(a));
        figure(&mut o, "Throughput delta vs measured efficiency, per run, one panel per backend (shared y axis; each panel its own x axis). n = successful runs with both values; r = Pearson's r over them.", &charts::scatter(a));
        for t in &a.timelines {
            let graph = if t.graph {
                format!(
                    " Agent graph: hatched segments are tool waits after a call; arrows run from each dependency's end to its dependent's start; ★ and the dashed outline mark the critical path ({} ms in the sequential phase; graph efficiency {}).",
                    t.critical_path_ms.map_or("–".to_owned(), |c| super::text::num(c, 1)),
                    t.graph_efficiency_pct
                        .map_or("–".to_owned(), |e| format!("{}%", super::text::num(e, 1)))
                )
            } else {
                String::new()
            };
            let caption = format!(
                "Timeline of one concurrent phase: {} run {} ({}), T_conc {} ms, measured efficiency {}. White part of a bar: waiting for the first token; ticks: text arrivals. Hover a bar for its times and output.{graph}",
                t.key,
                t.run_index + 1,
                t.chosen,
                super::text::num(t.wall_ms, 1),
                t.efficiency_pct
                    .map_or("–".to_owned(), |e| format!("{}%", super::text::num(e, 1)))
            );
            figure(&mut o, &caption, &charts::timeline(a, t));
        }

        if !a.context.is_empty() {
            figure(&mut o, "TTFT against context length: every call of the agents that carry their history, by the prompt tokens the server counted; hollow: the agent alone (sequential phase), filled: beside the others (concurrent phase). One panel per cell.", &charts::context(a));
            o.push_str(&table::context_table(&a.context).html("context"));
        }

        for (factor, title, what) in [
            (Factor::Backend, "Backend gap per model", "backends"),
            (Factor::Model, "Model gap per backend", "models"),
        ] {
            w!(o, "<h2>{title}</h2>\n");
            let gaps = self.tables.gaps_of(factor);
            if gaps.is_empty() {
                w!(
                    o,
                    "<p>No two {what} share the rest of a cell: nothing to compare.</p>\n"
                );
            }
            for (fixed, t) in gaps {
                let of: Vec<_> = a
                    .contrasts_by(factor)
                    .filter(|c| factor.fixed(&c.a) == fixed)
                    .collect();
                let differ = of.iter().filter(|c| c.verdict == Verdict::Differs).count();
                w!(
                    o,
                    "<details><summary><b>{}</b>: {differ} of {} comparisons differ</summary>\n",
                    html(fixed),
                    of.len()
                );
                o.push_str(&t.html("gap"));
                w!(o, "</details>\n");
            }
        }

        w!(o, "<h2>Variance split</h2>\n");
        if a.variance.is_empty() {
            w!(
                o,
                "<p>No factor has two levels with the rest fixed: nothing to split.</p>\n"
            );
        } else {
            w!(o, "<p class=\"meta\">Share of the run-to-run variance between the levels of one factor (eta²) and within them, one-way ANOVA F-test; everything else fixed per row.</p>\n");
            o.push_str(&table::variance_table(a).html("variance"));
        }
        w!(o, "<h2>Correlation: throughput delta vs efficiency</h2>\n");
        o.push_str(&table::correlation_table(a).html("correlation"));

        failures(&mut o, a);
        previews(&mut o, a);

        if !a.warnings.is_empty() {
            w!(o, "<h2>Warnings</h2>\n<ul class=\"warn\">\n");
            for warning in &a.warnings {
                w!(o, "<li>{}</li>\n", html(warning));
            }
            w!(o, "</ul>\n");
        }

        w!(o, "<h2>How to read this report</h2>\n<ul class=\"meta\">\n");
        for l in how_to_read(a) {
            w!(o, "<li>{}</li>\n", html(&l));
        }
        w!(o, "</ul>\n<p class=\"meta\">Per-run figures: runs.csv and the appendix of report.md.</p>\n");
        let m = &a.manifest;
        if !m.config_text.is_empty() {
            w!(
                o,
                "<h2>Configuration</h2>\n<details><summary>{}</summary><pre>{}</pre></details>\n",
                html(non_empty(&m.config_path).unwrap_or("config")),
                html(&m.config_text)
            );
        }
        w!(o, "</body></html>\n");
        self.out = o;
    }
}

fn finding_item(o: &mut String, f: &Finding) {
    let (class, tag) = match f.kind {
        FindingKind::Difference => ("differs", "differs"),
        FindingKind::WithinNoise => ("noise", "within noise"),
        FindingKind::NotTestable => ("untestable", "not testable"),
        FindingKind::SeedFormula => ("seed", "seed formula"),
        FindingKind::Caveat => ("caveat", "caveat"),
        FindingKind::FarBelowGraph => ("caveat", "far below the graph"),
    };
    w!(
        o,
        "<li><span class=\"tag tag-{class}\">{tag}</span>{}</li>\n",
        html(&f.text)
    );
}

fn figure(o: &mut String, caption: &str, svg: &str) {
    w!(
        o,
        "<figure><figcaption>{}</figcaption>\n{svg}</figure>\n",
        html(caption)
    );
}

fn meta(o: &mut String, a: &Analysis) {
    let m = &a.manifest;
    w!(o, "<ul class=\"meta\">\n");
    if let Some(d) = m.config_description() {
        w!(o, "<li>{}</li>\n", html(d));
    }
    for l in super::provenance(a, html) {
        w!(o, "<li>{l}</li>\n");
    }
    w!(
        o,
        "<li>Statistics: {}; a difference is stated only when Welch and Mann-Whitney both give p &lt; {}.</li>\n",
        html(&a.config.describe_bootstrap()),
        a.config.alpha
    );
    w!(o, "<li>Efficiency is measured against a real sequential phase; the seed's estimated formula is shown beside it, labelled, never as a headline.</li>\n</ul>\n");
}

fn failures(o: &mut String, a: &Analysis) {
    w!(o, "<h2>Failures</h2>\n");
    let f = &a.failures;
    if f.runs.is_empty() && f.missing.is_empty() && f.child_failures.is_empty() {
        w!(o, "<p>No run failed and none is missing.</p>\n");
        return;
    }
    o.push_str(&table::failure_cells_table(a).html("failures"));
    if !f.by_kind.is_empty() {
        o.push_str(&table::failure_kinds_table(a).html("failures"));
        o.push_str(&table::failed_runs_table(a).html("failures"));
    }
    if !f.missing.is_empty() {
        w!(
            o,
            "<p>Scheduled but not recorded ({}; by cause: {}):</p>\n",
            f.missing.len(),
            html(&super::markdown::causes(a))
        );
        o.push_str(&table::missing_runs_table(a).html("failures"));
    }
    if !f.child_failures.is_empty() {
        w!(
            o,
            "<p>Child processes that wrote no record (older manifests name no run):</p>\n<ul>\n"
        );
        for m in &f.child_failures {
            w!(o, "<li>{}</li>\n", html(m));
        }
        w!(o, "</ul>\n");
    }
}

/// The start of each call's output in every cell's median-efficiency run.
fn previews(o: &mut String, a: &Analysis) {
    if a.samples.is_empty() {
        return;
    }
    w!(o, "<h2>Output previews</h2>\n<p class=\"meta\">The first characters each call generated in the concurrent phase of each cell's median-efficiency run, shown as text.</p>\n<details><summary>{} calls</summary>\n", a.samples.len());
    let mut t = Table::new(&["cell", "run", "agent", "call", "output preview"]);
    for s in &a.samples {
        t.rows.push(vec![
            table::Cell::Foreign(cell_name(&s.key)),
            table::Cell::Own((s.run_index + 1).to_string()),
            table::Cell::Foreign(s.agent_id.clone()),
            table::Cell::Foreign(s.call.clone()),
            table::Cell::Foreign(match &s.error {
                Some(e) => format!("{} [failed: {e}]", s.preview),
                None => s.preview.clone(),
            }),
        ]);
    }
    o.push_str(&t.html("previews"));
    w!(o, "</details>\n");
}

fn cell_name(k: &CellKey) -> String {
    k.to_string()
}
