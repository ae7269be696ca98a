//! The report end to end on results directories: synthetic ones (failed, missing and
//! partial runs, a cell with n = 1, hostile strings) and a real quickstart directory.

mod common;

use chimeraforge_core::call::CallErrorKind;
use chimeraforge_core::workload::Scenario;
use chimeraforge_report::analysis::{Factor, Metric, Verdict};
use chimeraforge_report::compare::ChangeVerdict;
use chimeraforge_report::{
    analyze, compare, read_results, render_all, write_report, AnalysisConfig, ReportError,
};
use common::{failed_run, manifest, ok_run, records, write_dir, CellSpec};
use std::path::Path;

const HOSTILE_PREVIEW: &str = "<script>alert(1)</script></svg>";
const FAIL_MESSAGE: &str = "HTTP 500: model \"qwen\" crashed, see log\nsecond line";
const PARTIAL: &str = "{\"schema_version\":1,\"backend\":\"tokio-def";

fn spec(backend: &str, model: &str, slowdown: f64) -> CellSpec {
    let mut s = CellSpec::new(backend, model, Scenario::BaselineVsChimera);
    s.slowdown = slowdown;
    s
}

/// Four cells: tokio clearly ahead of async-std on gemma3; qwen like gemma3 on tokio; the
/// async-std qwen cell has hostile strings, one ok run, one failed run and one missing.
fn mixed_dir(dir: &Path) {
    let mut hostile = spec("async-std", "qwen2.5:7b", 1.6);
    hostile.preview = HOSTILE_PREVIEW.to_owned();
    hostile.agent_ids = vec!["collector".to_owned(), "in\"sight<i>".to_owned()];
    let specs = vec![
        (spec("tokio-default", "gemma3:latest", 1.02), 6),
        (spec("async-std", "gemma3:latest", 1.6), 6),
        (spec("tokio-default", "qwen2.5:7b", 1.02), 6),
        (hostile.clone(), 3),
    ];
    // Records for the first three cells, then the hostile cell's run 0 (ok) and 1 (failed);
    // its run 2 is missing, and a partial line ends the file.
    let mut recs = records(&specs[..3]);
    recs.push(ok_run(&hostile, 0));
    recs.push(failed_run(
        &hostile,
        1,
        CallErrorKind::HttpStatus,
        FAIL_MESSAGE,
    ));
    let m = manifest(&specs, &[(&hostile, 2, "crashed", "killed, \"oom\"")]);
    write_dir(dir, &m, &recs, PARTIAL);
}

/// Minimal RFC 4180 parser: fields, quoted fields with doubled quotes, CRLF records.
fn parse_csv(s: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "CR must start a CRLF");
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, '\n') => panic!("bare LF outside quotes"),
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "last record not ended by CRLF"
    );
    rows
}

/// Every element opened is closed in order (void elements and `/>` aside): no stray tag
/// leaked in from escaped text.
fn assert_balanced(html: &str) {
    const VOID: [&str; 3] = ["meta", "br", "!DOCTYPE"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').expect("unterminated tag");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack
                .pop()
                .unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(open, name, "</{name}> closes <{open}>");
        } else if !tag.ends_with('/') {
            let name: String = tag.chars().take_while(|c| !c.is_whitespace()).collect();
            if !VOID.contains(&name.as_str()) {
                stack.push(name);
            }
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

#[test]
fn report_on_a_directory_with_failed_missing_and_partial_runs() {
    let dir = tempfile::tempdir().unwrap();
    mixed_dir(dir.path());
    let summary = write_report(dir.path()).unwrap();
    assert_eq!(summary.runs_read, 6 * 3 + 2);
    assert_eq!(summary.runs_failed, 1);
    assert_eq!(summary.runs_missing, 1);
    assert_eq!(summary.warnings.len(), 1, "{:?}", summary.warnings);
    assert!(
        summary.warnings[0].contains("runs.jsonl:21:") && summary.warnings[0].contains("partial"),
        "{}",
        summary.warnings[0]
    );
    for p in [&summary.markdown, &summary.html, &summary.csv] {
        assert!(p.exists(), "{}", p.display());
    }

    let md = std::fs::read_to_string(&summary.markdown).unwrap();
    for needle in [
        "## Findings",
        "## Summary by cell",
        "## Backend gap per model",
        "## Model gap per backend",
        "## Variance split",
        "## Correlation: throughput delta vs efficiency",
        "## Failures",
        "## Appendix A: per-run detail",
        "estimated efficiency (seed formula, not a measurement), %",
        "n = 1: n too small for sd, CI",
        "| 1 / 3, 1 failed, 1 missing |",
        "failed: http_status",
        "| 3 | missing |",
        "seed 116",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}");
    }
    // Foreign text cannot inject markup or break a table row.
    assert!(!md.contains("<script>"));
    assert!(md.contains(r#"HTTP 500: model "qwen" crashed, see log second line"#));

    let csv = std::fs::read_to_string(&summary.csv).unwrap();
    let rows = parse_csv(&csv);
    assert_eq!(rows.len(), 1 + 6 * 3 + 3, "header + every scheduled run");
    assert!(rows.iter().all(|r| r.len() == rows[0].len()));
    let col = |name: &str| rows[0].iter().position(|h| h == name).unwrap();
    let failed: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| r[col("status")] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0][col("failure_kind")], "http_status");
    assert!(failed[0][col("failure_message")].starts_with(FAIL_MESSAGE));
    assert_eq!(failed[0][col("efficiency_pct")], "");
    let missing: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| r[col("status")] == "missing")
        .collect();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0][col("run_index")], "2");
    assert_eq!(missing[0][col("failure_kind")], "child_crashed");
    assert_eq!(
        missing[0][col("failure_message")],
        "the async-std child process failed (signal 9): killed, \"oom\""
    );
    assert_eq!(missing[0][col("agents")], "2");
    let ok = rows.iter().find(|r| r[col("status")] == "ok").unwrap();
    assert!(ok[col("efficiency_pct")].parse::<f64>().unwrap() > 50.0);
    assert_eq!(ok[col("system_throughput_basis")], "measured");
    assert_eq!(ok[col("peak_rss_kib")], "6144");

    let html = std::fs::read_to_string(&summary.html).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;/svg&gt;"));
    assert!(html.contains("in&quot;sight&lt;i&gt;"));
    assert!(html.contains("&quot;oom&quot;"));
    assert!(!html.to_lowercase().contains("<script"));
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    assert_balanced(&html);
}

#[test]
fn html_is_self_contained() {
    let dir = tempfile::tempdir().unwrap();
    mixed_dir(dir.path());
    let a = analyze(
        &read_results(dir.path()).unwrap(),
        &AnalysisConfig::default(),
    );
    let html = render_all(&a).html;
    let lower = html.to_lowercase();
    for banned in [
        "<script", "<link", "<img", "<iframe", "@import", "url(", "src=", "href=",
    ] {
        assert!(!lower.contains(banned), "report.html contains {banned:?}");
    }
    // No attribute holds a URL but the SVG namespace (an identifier, never fetched); URLs in
    // error messages are text.
    let in_attributes = lower.matches("=\"http").count() + lower.matches("='http").count();
    assert_eq!(
        in_attributes,
        lower
            .matches("xmlns=\"http://www.w3.org/2000/svg\"")
            .count()
    );
    for chart in [
        "Efficiency per cell",
        "TTFT per call",
        "Inter-chunk gaps",
        "Throughput delta (agent 0 − agent 1) vs measured efficiency",
        "Timeline of the concurrent phase",
    ] {
        assert!(html.contains(chart), "missing chart {chart:?}");
    }
    // One timeline per backend.
    assert_eq!(
        html.matches("<figcaption>Timeline of one concurrent phase")
            .count(),
        2
    );
}

#[test]
fn findings_state_only_what_the_tests_support() {
    let dir = tempfile::tempdir().unwrap();
    mixed_dir(dir.path());
    let a = analyze(
        &read_results(dir.path()).unwrap(),
        &AnalysisConfig::default(),
    );

    let backend_eff = a
        .contrasts_by(Factor::Backend)
        .find(|c| c.metric == Metric::Efficiency && c.a.model == "gemma3:latest")
        .unwrap();
    assert_eq!(backend_eff.verdict, Verdict::Differs);
    assert_eq!(backend_eff.a.backend, "tokio-default");
    assert!(backend_eff.welch.unwrap().p_value < 0.05);
    assert!(backend_eff.mann_whitney.unwrap().p_value < 0.05);
    assert_eq!(backend_eff.a_is_better(), Some(true));

    // Same behaviour, different model: the tests must not find a difference.
    let model_eff = a
        .contrasts_by(Factor::Model)
        .find(|c| c.metric == Metric::Efficiency && c.a.backend == "tokio-default")
        .unwrap();
    assert_ne!(model_eff.verdict, Verdict::Differs);

    // n = 1 on one side: untestable, never "differs".
    let tiny = a
        .contrasts_by(Factor::Backend)
        .find(|c| c.metric == Metric::Efficiency && c.a.model == "qwen2.5:7b")
        .unwrap();
    assert_eq!((tiny.n_a, tiny.n_b), (6, 1));
    assert_eq!(tiny.verdict, Verdict::TooFewRuns);
    assert!(tiny.diff.is_none());

    let md = render_all(&a).markdown;
    let findings = &md[md.find("## Findings").unwrap()..md.find("## Summary by cell").unwrap()];
    let differs: Vec<&str> = findings
        .lines()
        .filter(|l| l.contains("**Differs.**"))
        .collect();
    assert!(
        differs.iter().any(|l| l
            .contains("tokio-default has higher efficiency (measured) than async-std")
            && l.contains("n = 6 vs 6 runs")
            && l.contains("Welch p")
            && l.contains("Mann-Whitney p")),
        "{findings}"
    );
    // Every stated difference is one the contrasts call "differs".
    let supported = a
        .contrasts
        .iter()
        .filter(|c| c.verdict == Verdict::Differs)
        .count();
    assert_eq!(differs.len(), supported);
    assert!(findings.contains("do not differ in efficiency (measured) beyond noise"));
    assert!(findings.contains("too few runs to test"));
    assert!(findings.contains("single successful run"));
}

#[test]
fn seed_formula_overstatement_is_a_finding() {
    // A serial device: each agent takes twice as long concurrently. Measured speedup ~1,
    // the seed's formula ~2.
    let dir = tempfile::tempdir().unwrap();
    let s = spec("tokio-default", "gemma3:latest", 2.0);
    let specs = vec![(s, 5)];
    write_dir(dir.path(), &manifest(&specs, &[]), &records(&specs), "");
    let a = analyze(
        &read_results(dir.path()).unwrap(),
        &AnalysisConfig::default(),
    );
    let cell = &a.cells[0];
    let eff = cell.metric(Metric::Efficiency).summary.unwrap().mean;
    let est = cell
        .metric(Metric::EstimatedEfficiency)
        .summary
        .unwrap()
        .mean;
    assert!((eff - 50.0).abs() < 5.0, "{eff}");
    assert!(est > 90.0, "{est}");
    let md = render_all(&a).markdown;
    assert!(md.contains("it overstates by"), "{md}");
    assert!(md.contains("low_speedup"));
}

#[test]
fn rendering_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    mixed_dir(dir.path());
    let results = read_results(dir.path()).unwrap();
    let one = render_all(&analyze(&results, &AnalysisConfig::default()));
    let two = render_all(&analyze(&results, &AnalysisConfig::default()));
    assert_eq!(one.markdown, two.markdown);
    assert_eq!(one.html, two.html);
    assert_eq!(one.csv, two.csv);
}

#[test]
fn empty_directory_still_reports() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), &serde_json::json!({}), &[], "");
    let s = write_report(dir.path()).unwrap();
    assert_eq!(s.runs_read, 0);
    let md = std::fs::read_to_string(&s.markdown).unwrap();
    assert!(md.contains("No successful run"));
    let csv = std::fs::read_to_string(&s.csv).unwrap();
    assert_eq!(parse_csv(&csv).len(), 1);
    assert_balanced(&std::fs::read_to_string(&s.html).unwrap());
}

#[test]
fn not_a_results_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_report(dir.path()).unwrap_err();
    assert!(matches!(
        err,
        ReportError::Results(chimeraforge_results::ResultsError::NotResultsDir { .. })
    ));
    assert!(err
        .to_string()
        .contains("not a chimeraforge results directory"));
    assert!(!dir.path().join("report.md").exists());
}

#[test]
fn real_quickstart_directory() {
    // Two runs of `chimeraforge bench` on the quickstart config (embedded simulator, ideal
    // device); its manifest scheduled four, so two are missing.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/quickstart");
    let dir = tempfile::tempdir().unwrap();
    for f in ["manifest.json", "runs.jsonl"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let s = write_report(dir.path()).unwrap();
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!((s.runs_read, s.runs_failed, s.runs_missing), (2, 0, 2));
    let a = analyze(
        &read_results(dir.path()).unwrap(),
        &AnalysisConfig::default(),
    );
    assert_eq!(a.cells.len(), 2);
    for c in &a.cells {
        assert_eq!(c.n_ok, 1);
        let eff = c.metric(Metric::Efficiency).summary.unwrap().mean;
        assert!(eff > 90.0 && eff <= 101.0, "ideal device: {eff}");
        assert!(c.metric(Metric::TtftMs).summary.unwrap().mean > 0.0);
    }
    assert_eq!(a.timelines.len(), 1);
    assert!(a.timelines[0].lanes.iter().all(|l| l.calls.len() == 2));
    assert!(a.distributions.iter().all(|d| d.gap_ms.is_some()));
    let html = std::fs::read_to_string(&s.html).unwrap();
    assert_balanced(&html);
}

#[test]
fn compare_reports_changes_beyond_noise_only() {
    let base = vec![
        (spec("tokio-default", "gemma3:latest", 1.02), 8),
        (spec("async-std", "gemma3:latest", 1.3), 8),
    ];
    let mut after = base.clone();
    after[0].0.slowdown = 1.4; // tokio got much slower
    after[0].0.seed = 7;
    after[1].0.seed = 7; // async-std: same behaviour, new noise
    after.push((spec("smol-1kb", "gemma3:latest", 1.02), 8));
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_dir(da.path(), &manifest(&base, &[]), &records(&base), "");
    write_dir(db.path(), &manifest(&after, &[]), &records(&after), "");

    let c = compare(da.path(), db.path()).unwrap();
    assert_eq!(c.cells.len(), 2);
    assert!(c.only_in_a.is_empty());
    assert_eq!(c.only_in_b.len(), 1);
    assert_eq!(c.only_in_b[0].backend, "smol-1kb");
    let tokio = c
        .cells
        .iter()
        .find(|x| x.key.backend == "tokio-default")
        .unwrap();
    let eff = tokio
        .changes
        .iter()
        .find(|x| x.metric == Metric::Efficiency)
        .unwrap();
    assert_eq!(eff.verdict, ChangeVerdict::Regressed);
    assert!(eff.diff.unwrap().hi < 0.0);
    let ttft = tokio
        .changes
        .iter()
        .find(|x| x.metric == Metric::TtftMs)
        .unwrap();
    assert_eq!(
        ttft.verdict,
        ChangeVerdict::Regressed,
        "higher TTFT is worse"
    );
    let same = c
        .cells
        .iter()
        .find(|x| x.key.backend == "async-std")
        .unwrap();
    let eff = same
        .changes
        .iter()
        .find(|x| x.metric == Metric::Efficiency)
        .unwrap();
    assert_eq!(eff.verdict, ChangeVerdict::WithinNoise);

    let text = c.render_text();
    assert!(text.contains("regressed"));
    assert!(text.contains("change within noise threshold"));
    assert!(text.contains("only in B (1):"));

    // A directory against itself: nothing beyond noise.
    let same = compare(da.path(), da.path()).unwrap();
    assert_eq!(same.beyond_noise().count(), 0);
}

#[test]
fn compare_with_too_few_runs_says_so() {
    let one = vec![(spec("tokio-default", "gemma3:latest", 1.02), 1)];
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_dir(da.path(), &manifest(&one, &[]), &records(&one), "");
    write_dir(db.path(), &manifest(&one, &[]), &records(&one), "");
    let c = compare(da.path(), db.path()).unwrap();
    assert!(c.cells[0]
        .changes
        .iter()
        .all(|x| x.verdict == ChangeVerdict::TooFewRuns));
    assert!(c.render_text().contains("n too small"));
}

/// A TTFT "improvement" that is a server's prompt cache is named as such (issue 13), and two
/// directories run under different prompt-cache policies say so.
#[test]
fn compare_warns_of_prompt_cache_hits_and_policies() {
    let specs = vec![(spec("tokio-default", "gemma3:latest", 1.02), 4)];
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ma = manifest(&specs, &[]);
    ma["prompt_cache"] = "isolate".into();
    let mut mb = manifest(&specs, &[]);
    mb["prompt_cache"] = "allow".into();
    let mut recs = records(&specs);
    recs[1].metrics.as_mut().unwrap().flags.prompt_cache = true;
    write_dir(da.path(), &ma, &records(&specs), "");
    write_dir(db.path(), &mb, &recs, "");
    let c = compare(da.path(), db.path()).unwrap();
    let text = c.render_text();
    assert!(
        text.contains("B has 1 run(s) flagged prompt_cache"),
        "{text}"
    );
    assert!(
        text.contains("A ran with prompt_cache = isolate, B with allow"),
        "{text}"
    );
    assert!(!text.contains("A has"), "{text}");
    // The same policy and no flags: nothing said.
    let same = compare(da.path(), da.path()).unwrap();
    assert!(!same.render_text().contains("prompt_cache"));
}

#[test]
fn provenance_is_the_same_in_markdown_and_html_and_escaped_in_each() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/quickstart");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("runs.jsonl"), dir.path().join("runs.jsonl")).unwrap();
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("manifest.json")).unwrap()).unwrap();
    m["host"]["cpu_model"] = "<b>Fast</b> *CPU*".into();
    m["config_path"] = "configs/a_b.toml".into();
    std::fs::write(dir.path().join("manifest.json"), m.to_string()).unwrap();
    let s = write_report(dir.path()).unwrap();
    let md = std::fs::read_to_string(&s.markdown).unwrap();
    let html = std::fs::read_to_string(&s.html).unwrap();
    for needle in [
        "Tool: chimeraforge 0.1.0, git ",
        "(2 CPUs)",
        "Runs: 2 recorded (2 ok, 0 failed), 2 scheduled but not recorded",
    ] {
        assert!(md.contains(needle), "markdown lacks {needle:?}");
        assert!(html.contains(needle), "html lacks {needle:?}");
    }
    assert!(
        html.contains("<li>Host: &lt;b&gt;Fast&lt;/b&gt; *CPU* (2 CPUs)"),
        "{html}"
    );
    assert!(!html.contains("<b>Fast</b>"));
    assert!(
        md.contains(r"- Host: &lt;b>Fast&lt;/b> \*CPU\* (2 CPUs)"),
        "{md}"
    );
    assert!(md.contains("- Config: configs/a_b.toml (FNV-1a "), "{md}");
}

/// `records` with every measured call reasoning `tokens` tokens first and answering `delay`
/// ms after its first token, metrics recomputed.
fn reasoning(
    records: &[chimeraforge_core::record::RunRecord],
    tokens: u64,
    delay: f64,
) -> Vec<chimeraforge_core::record::RunRecord> {
    use chimeraforge_core::call::{Basis, TokenCount};
    records
        .iter()
        .cloned()
        .map(|mut r| {
            for p in [&mut r.sequential, &mut r.concurrent].into_iter().flatten() {
                for c in p.agents.iter_mut().flat_map(|a| &mut a.calls) {
                    c.reasoning_tokens = Some(TokenCount {
                        value: tokens,
                        basis: Basis::Estimated,
                    });
                    c.ttft_answer_ms = c.ttft_ms.map(|t| t + delay);
                }
            }
            if let (Some(s), Some(c)) = (&r.sequential, &r.concurrent) {
                r.metrics = Some(chimeraforge_core::metrics::run_metrics(s, c));
            }
            r
        })
        .collect()
}

#[test]
fn ttft_answer_is_shown_only_where_calls_reasoned() {
    let specs = vec![(spec("tokio-default", "gemma3:latest", 1.02), 4)];
    let plain = records(&specs);
    let m = manifest(&specs, &[]);
    let render = |recs: &[chimeraforge_core::record::RunRecord]| {
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), &m, recs, "");
        analyze(
            &read_results(dir.path()).unwrap(),
            &AnalysisConfig::default(),
        )
    };
    let a = render(&plain);
    assert!(!a.reasoning);
    let out = render_all(&a);
    assert!(!out.markdown.contains("TTFT answer") && !out.html.contains("TTFT answer"));

    let a = render(&reasoning(&plain, 12, 100.0));
    assert!(a.reasoning);
    let c = &a.cells[0];
    let ttft = c.metric(Metric::TtftMs).summary.unwrap().mean;
    let answer = c.metric(Metric::TtftAnswerMs).summary.unwrap().mean;
    assert!((answer - ttft - 100.0).abs() < 1e-6, "{ttft} {answer}");
    let out = render_all(&a);
    for doc in [&out.markdown, &out.html] {
        assert!(doc.contains("TTFT answer (concurrent), ms"), "{doc}");
        assert!(doc.contains(&format!("{answer:.1}")), "{answer:.1} missing");
    }
    // The markdown row has one more column, right after TTFT.
    let header = out
        .markdown
        .lines()
        .find(|l| l.contains("TTFT (concurrent), ms"))
        .unwrap();
    assert!(
        header.contains("TTFT (concurrent), ms | TTFT answer (concurrent), ms |"),
        "{header}"
    );
}

/// What the report of the real quickstart directory (no reasoning) renders, its source
/// path replaced by `DIR`.
fn quickstart_rendered() -> chimeraforge_report::Rendered {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/quickstart");
    let a = analyze(&read_results(&src).unwrap(), &AnalysisConfig::default());
    let mut out = render_all(&a);
    let dir = src.display().to_string();
    out.markdown = out.markdown.replace(&dir, "DIR");
    out.html = out.html.replace(&dir, "DIR");
    out.csv = out.csv.replace(&dir, "DIR");
    out
}

/// The report of runs without reasoning is byte for byte what it was before reasoning
/// fields existed: the golden files were written by the report as it was then
/// (`UPDATE_GOLDEN=1` rewrites them).
#[test]
fn a_report_without_reasoning_is_unchanged() {
    let out = quickstart_rendered();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/quickstart-golden");
    let files = [
        ("report.md", &out.markdown),
        ("report.html", &out.html),
        ("runs.csv", &out.csv),
    ];
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(&golden).unwrap();
        for (name, text) in files {
            std::fs::write(golden.join(name), text).unwrap();
        }
    }
    for (name, text) in files {
        let want = std::fs::read_to_string(golden.join(name)).unwrap();
        assert!(
            *text == want,
            "{name} differs from tests/data/quickstart-golden/{name}"
        );
    }
}

/// On an OpenAI-compatible API `chimera-homo` and `chimera-hetero` send the same requests
/// (num_gpu / num_ctx are Ollama load options): the report says so, and says nothing of the
/// kind on Ollama's API, where they differ. A run whose first prompt was served from the
/// server's cache is a `prompt_cache` caveat, and the header says how prompts were isolated.
#[test]
fn identical_requests_prompt_cache_flags_and_mode_are_reported() {
    use chimeraforge_core::api::{ApiKind, ServerStats};
    let cell = |scenario| CellSpec::new("tokio-default", "gemma3:latest", scenario);
    let specs = vec![
        (cell(Scenario::ChimeraHomo), 3),
        (cell(Scenario::ChimeraHetero), 3),
    ];
    let render = |api: ApiKind, cached: bool, mode: Option<&str>| {
        let mut recs = records(&specs);
        for r in &mut recs {
            for a in &mut r.agents {
                a.endpoint.api = api;
            }
        }
        if cached {
            let r = &mut recs[0];
            let phase = r.concurrent.as_mut().unwrap();
            phase.agents[0].calls[0].server = Some(ServerStats {
                prompt_tokens: Some(133),
                cached_prompt_tokens: Some(128),
                ..Default::default()
            });
            let c = phase.clone();
            let s = r.sequential.clone().unwrap();
            r.metrics = Some(chimeraforge_core::metrics::run_metrics(&s, &c));
        }
        let mut m = manifest(&specs, &[]);
        if let Some(mode) = mode {
            m["prompt_cache"] = mode.into();
            m["sessions"] = serde_json::json!([{"prompt_nonce": "0123456789abcdef"}]);
        }
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), &m, &recs, "");
        let s = write_report(dir.path()).unwrap();
        (
            std::fs::read_to_string(&s.markdown).unwrap(),
            std::fs::read_to_string(&s.csv).unwrap(),
        )
    };
    let same = "scenarios chimera-hetero and chimera-homo sent identical requests";
    let (md, _) = render(ApiKind::OpenaiChat, false, Some("isolate"));
    assert!(md.contains(same), "{md}");
    assert!(md.contains("one measurement under 2 labels"), "{md}");
    assert!(
        md.contains("Prompt cache: isolate (every measured prompt led by its invocation's nonce: 0123456789abcdef)"),
        "{md}"
    );
    assert!(!md.contains("flagged prompt_cache"), "{md}");
    let (md, csv) = render(ApiKind::Ollama, true, Some("allow"));
    assert!(!md.contains("sent identical requests"), "{md}");
    assert!(md.contains("Prompt cache: allow (no nonce"), "{md}");
    assert!(
        md.contains("1 of 6 successful runs flagged prompt_cache"),
        "{md}"
    );
    let rows = parse_csv(&csv);
    let col = rows[0].iter().position(|c| c == "prompt_cache").unwrap();
    assert_eq!(rows.iter().skip(1).filter(|r| r[col] == "true").count(), 1);
    let (md, _) = render(ApiKind::Ollama, false, None);
    assert!(md.contains("Prompt cache: not recorded"), "{md}");
}

/// The header says how connections were made, and two directories measured under
/// different connection policies are told apart by `compare`.
#[test]
fn connection_policy_is_in_the_header_and_compared() {
    let specs = vec![(spec("tokio-default", "gemma3:latest", 1.02), 4)];
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ma = manifest(&specs, &[]);
    ma["connection"] = "keep-alive".into();
    let mut mb = manifest(&specs, &[]);
    mb["connection"] = "fresh".into();
    write_dir(da.path(), &ma, &records(&specs), "");
    write_dir(db.path(), &mb, &records(&specs), "");
    let md = |dir: &std::path::Path| {
        let s = write_report(dir).unwrap();
        std::fs::read_to_string(&s.markdown).unwrap()
    };
    assert!(md(da.path()).contains("Connections: keep-alive (each agent reuses its own connection"));
    assert!(md(db.path()).contains("Connections: fresh (a new connection per call"));
    let text = compare(da.path(), db.path()).unwrap().render_text();
    assert!(
        text.contains("A ran with connection = keep-alive, B with fresh"),
        "{text}"
    );
    let same = compare(da.path(), da.path()).unwrap().render_text();
    assert!(!same.contains("connection ="), "{same}");
    let dc = tempfile::tempdir().unwrap();
    write_dir(dc.path(), &manifest(&specs, &[]), &records(&specs), "");
    assert!(md(dc.path()).contains("Connections: not recorded"));
}
