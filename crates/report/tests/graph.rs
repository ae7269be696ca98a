//! Agent graphs in the report: the critical path of records that predate it, graph
//! efficiency beside efficiency, graph timelines, and TTFT against context length.

mod common;

use chimeraforge_core::record::Figure;
use chimeraforge_core::workload::Scenario;
use chimeraforge_report::analysis::graph::{critical_path, graph_figures, has_graph};
use chimeraforge_report::analysis::Metric;
use chimeraforge_report::{analyze, read_results, render_all, AnalysisConfig, Rendered};
use common::{graph_run, manifest, ok_run, write_dir, CellSpec};
use std::path::Path;

#[test]
fn an_old_dual_agent_record_gains_its_critical_path_from_itself() {
    // Written before critical_path_ms: the graph fields absent, as an older run_metrics
    // left them.
    let mut r = ok_run(
        &CellSpec::new(
            "tokio-default",
            "gemma3:latest",
            Scenario::BaselineVsChimera,
        ),
        0,
    );
    let recorded = r.metrics.clone().unwrap();
    {
        let m = r.metrics.as_mut().unwrap();
        m.critical_path_ms = None;
        m.graph_ceiling = None;
        m.graph_efficiency = None;
    }
    let m = r.metrics.as_ref().unwrap();
    assert_eq!(m.critical_path_ms, None);
    assert_eq!(Metric::GraphEfficiency.of(m), None);

    let seq = r.sequential.as_ref().unwrap();
    let (slow, longest) = seq
        .agents
        .iter()
        .map(|a| a.duration_ms)
        .enumerate()
        .fold((0, 0.0), |b, (i, d)| if d > b.1 { (i, d) } else { b });
    let cp = critical_path(&r).unwrap();
    assert_eq!(cp.ms, longest, "independent agents: the slower agent alone");
    assert_eq!(cp.agents, vec![slow]);

    let g = graph_figures(&r).unwrap();
    assert_eq!(g.critical_path_ms, longest);
    assert_eq!(g.ceiling, Some(m.sequential_sum_ms / longest));
    assert_eq!(g.efficiency, Some(longest / m.concurrent_wall_ms));
    let (pct, estimated) = Metric::GraphEfficiency.of_run(&r).unwrap();
    assert!(!estimated);
    assert!((pct - 100.0 * longest / m.concurrent_wall_ms).abs() < 1e-9);
    // Speedup / N is below graph efficiency whenever the agents differ in length.
    assert!(m.efficiency.value < g.efficiency.unwrap());
    assert!(!has_graph(&r));
    // What today's run_metrics records is what the report computes for an old record.
    assert_eq!(recorded.critical_path_ms, Some(longest));
    assert_eq!(recorded.graph_efficiency.map(|f| f.value), g.efficiency);
}

#[test]
fn a_graph_record_s_critical_path_is_the_one_computed_from_it() {
    let r = graph_run(&CellSpec::graph("tokio-default", "gemma3:latest"), 0);
    assert!(has_graph(&r));
    let recorded = r.metrics.as_ref().unwrap().critical_path_ms.unwrap();
    let cp = critical_path(&r).unwrap();
    assert_eq!(cp.ms, recorded);
    // orchestrator -> the slowest worker (with its tool wait) -> aggregator.
    assert_eq!(cp.agents.first(), Some(&0));
    assert_eq!(cp.agents.last(), Some(&4));
    assert_eq!(cp.agents.len(), 3);
    let seq = r.sequential.as_ref().unwrap();
    let worker = cp.agents[1];
    for w in 1..4 {
        assert!(seq.agents[worker].duration_ms >= seq.agents[w].duration_ms);
    }
    // Older records of the same run: the same figures, computed.
    let mut old = r.clone();
    let m = old.metrics.as_mut().unwrap();
    (m.critical_path_ms, m.graph_ceiling, m.graph_efficiency) = (None, None, None);
    let (a, b) = (graph_figures(&r).unwrap(), graph_figures(&old).unwrap());
    assert_eq!(a.critical_path_ms, b.critical_path_ms);
    assert!((a.ceiling.unwrap() - b.ceiling.unwrap()).abs() < 1e-12);
    assert!((a.efficiency.unwrap() - b.efficiency.unwrap()).abs() < 1e-12);
}

#[test]
fn recorded_graph_figures_win_over_computed_ones() {
    let mut r = graph_run(&CellSpec::graph("tokio-default", "gemma3:latest"), 0);
    let m = r.metrics.as_mut().unwrap();
    m.graph_efficiency = Some(Figure::measured(0.5));
    m.graph_ceiling = Some(Figure::measured(3.25));
    assert_eq!(Metric::GraphEfficiency.of_run(&r), Some((50.0, false)));
    assert_eq!(Metric::GraphCeiling.of_run(&r), Some((3.25, false)));
    assert_eq!(
        Metric::GraphCeiling.of(r.metrics.as_ref().unwrap()),
        Some((3.25, false))
    );
}

#[test]
fn no_critical_path_without_a_sequential_phase_or_a_graph() {
    let spec = CellSpec::graph("tokio-default", "gemma3:latest");
    let mut r = graph_run(&spec, 0);
    r.agents[1].after = vec!["nobody".to_owned()];
    assert_eq!(critical_path(&r), None);
    let mut r = graph_run(&spec, 0);
    r.agents[0].after = vec!["aggregator".to_owned()];
    assert_eq!(critical_path(&r), None, "a cycle");
    let mut r = graph_run(&spec, 0);
    r.sequential = None;
    assert_eq!(critical_path(&r), None);
    // Recorded figures still stand without the phase.
    assert!(graph_figures(&r).is_some());
    r.metrics.as_mut().unwrap().critical_path_ms = None;
    assert_eq!(graph_figures(&r), None);
    assert_eq!(Metric::GraphEfficiency.of_run(&r), None);
}

/// Two backends running the graph: one near the graph's ceiling, one that serializes the
/// workers; five runs each.
fn graph_dir(dir: &Path) {
    let mut fast = CellSpec::graph("tokio-default", "gemma3:latest");
    fast.slowdown = 1.02;
    let mut slow = CellSpec::graph("async-std", "gemma3:latest");
    slow.slowdown = 3.0;
    let specs = vec![(fast, 5), (slow, 5)];
    let mut recs = Vec::new();
    for run in 0..5 {
        for (s, _) in &specs {
            recs.push(graph_run(s, run));
        }
    }
    write_dir(dir, &manifest(&specs, &[]), &recs, "");
}

fn graph_rendered() -> Rendered {
    let dir = tempfile::tempdir().unwrap();
    graph_dir(dir.path());
    let a = analyze(
        &read_results(dir.path()).unwrap(),
        &AnalysisConfig::default(),
    );
    let mut out = render_all(&a);
    let d = dir.path().display().to_string();
    out.markdown = out.markdown.replace(&d, "DIR");
    out.html = out.html.replace(&d, "DIR");
    out
}

#[test]
fn a_graph_report_shows_graph_efficiency_timelines_and_context() {
    let dir = tempfile::tempdir().unwrap();
    graph_dir(dir.path());
    let a = analyze(
        &read_results(dir.path()).unwrap(),
        &AnalysisConfig::default(),
    );
    assert_eq!(a.cells.len(), 2);
    let ge = |i: usize| a.cells[i].metric(Metric::GraphEfficiency).summary.unwrap();
    assert!(ge(0).mean > 90.0, "near the ceiling: {}", ge(0).mean);
    assert!(ge(1).mean < 75.0, "serialized workers: {}", ge(1).mean);
    for c in &a.cells {
        let ceiling = c.metric(Metric::GraphCeiling).summary.unwrap().mean;
        let speedup = c.metric(Metric::Speedup).summary.unwrap().mean;
        assert!(
            ceiling > 1.5 && speedup <= ceiling * 1.02,
            "{speedup} vs {ceiling}"
        );
        assert_eq!(c.metric(Metric::GraphEfficiency).n(), 5);
        assert!(c.metric(Metric::GraphEfficiency).ci.is_some());
    }

    assert_eq!(a.timelines.len(), 2);
    for t in &a.timelines {
        assert!(t.graph);
        assert!(t.chosen.contains("median graph efficiency"), "{}", t.chosen);
        let on: Vec<&str> = t
            .lanes
            .iter()
            .filter(|l| l.critical)
            .map(|l| l.agent_id.as_str())
            .collect();
        assert_eq!(on.len(), 3);
        assert_eq!((on[0], on[2]), ("orchestrator", "aggregator"));
        assert_eq!(t.lanes[4].after, vec![1, 2, 3]);
        // Every dependent starts after its dependencies ended.
        for l in &t.lanes {
            for &d in &l.after {
                assert!(l.start_ms >= t.lanes[d].end_ms);
            }
        }
        let waits: Vec<usize> = t
            .lanes
            .iter()
            .map(|l| l.calls.iter().filter(|c| c.tool_wait_ms.is_some()).count())
            .collect();
        assert_eq!(waits, vec![0, 2, 0, 2, 0]);
    }

    assert_eq!(a.context.len(), 2);
    for s in &a.context {
        assert_eq!(s.turns.len(), 3);
        let medians: Vec<f64> = s
            .turns
            .iter()
            .map(|t| t.prompt_tokens.unwrap().median)
            .collect();
        assert_eq!(medians, vec![60.0, 150.0, 240.0]);
        let alone: Vec<f64> = s
            .turns
            .iter()
            .map(|t| t.ttft_alone_ms.unwrap().median)
            .collect();
        assert!(alone.windows(2).all(|w| w[1] > w[0]), "{alone:?}");
    }

    let out = render_all(&a);
    let md = &out.markdown;
    let findings = &md[md.find("## Findings").unwrap()..md.find("## Summary by cell").unwrap()];
    assert!(
        findings.contains("**Far below the graph.** On gemma3:latest · baseline-vs-chimera · 5 agents · async-std, graph efficiency is"),
        "{findings}"
    );
    assert!(!findings.contains("5 agents · tokio-default, graph efficiency"));
    for needle in [
        "graph efficiency (measured: critical path / T_conc), %",
        "### Agent graph timelines (concurrent phase)",
        "| aggregator | worker-1, worker-2, worker-3 |",
        "★ on it",
        "### TTFT against context length",
        "Efficiency cannot reach 100% when agents differ in length",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}");
    }
    let html = &out.html;
    assert_eq!(html.matches("fill=\"url(#cf-tool-hatch)\"").count(), 2 * 4);
    assert_eq!(html.matches("marker-end=\"url(#cf-arrow)\"").count(), 2 * 6);
    assert_eq!(html.matches("stroke-dasharray=\"6 3\"").count(), 2 * 3);
    assert!(html.contains("★ agent 0: orchestrator"));
    assert!(html.contains("TTFT against context length"));
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    let csv = &out.csv;
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for col in ["graph_efficiency_pct", "graph_ceiling", "critical_path_ms"] {
        let i = header.iter().position(|h| *h == col).unwrap();
        assert!(csv
            .lines()
            .skip(1)
            .all(|l| !l.split(',').nth(i).unwrap().is_empty()));
    }
}

/// The graph report as the golden files hold it (`UPDATE_GOLDEN=1` rewrites them).
#[test]
fn the_graph_report_matches_its_golden_files() {
    let out = graph_rendered();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/graph-golden");
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
            "{name} differs from tests/data/graph-golden/{name}"
        );
    }
}

#[test]
fn dual_agent_reports_draw_no_graph() {
    let r = ok_run(
        &CellSpec::new(
            "tokio-default",
            "gemma3:latest",
            Scenario::BaselineVsChimera,
        ),
        0,
    );
    let dir = tempfile::tempdir().unwrap();
    let spec = CellSpec::new(
        "tokio-default",
        "gemma3:latest",
        Scenario::BaselineVsChimera,
    );
    write_dir(dir.path(), &manifest(&[(spec, 1)], &[]), &[r], "");
    let a = analyze(
        &read_results(dir.path()).unwrap(),
        &AnalysisConfig::default(),
    );
    assert!(a.timelines.iter().all(|t| !t.graph));
    assert!(a.context.is_empty(), "no agent carries its history");
    let out = render_all(&a);
    assert!(!out.html.contains("cf-tool-hatch"));
    assert!(
        !out.html.contains('★'),
        "no critical path marked without a graph"
    );
    assert!(!out.markdown.contains("Agent graph timelines"));
    assert!(!out.markdown.contains("TTFT against context length"));
    // The figures are still there, computed from the record.
    assert!(a.cells[0].metric(Metric::GraphEfficiency).summary.is_some());
}
