//! What the terminal shows: a line per run, then the cells side by side.

use chimeraforge_core::record::{RunRecord, RunStatus};
use chimeraforge_report::stats::Summary;
use std::collections::BTreeMap;

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
            let ttft = mean(m.per_agent.iter().filter_map(|a| a.concurrent_ttft_ms));
            let tok_s = mean(m.per_agent.iter().filter_map(|a| a.concurrent_decode_tok_s));
            let mut line = format!(
                "{head} speedup {:.3}x  efficiency {:>5.1}% (measured) | seed formula {:>5.1}% (estimated) | TTFT {} | {} per agent",
                m.speedup.value,
                m.efficiency.value * 100.0,
                m.estimated_efficiency.value * 100.0,
                ttft.map_or("-".into(), |v| format!("{v:.0} ms")),
                tok_s.map_or("-".into(), |v| format!("{v:.0} tok/s")),
            );
            let flags = &m.flags;
            for (on, name) in [
                (flags.ttft_anomaly, "ttft_anomaly"),
                (flags.low_speedup, "low_speedup"),
                (flags.cold_load, "cold_load"),
                (flags.length_mismatch, "length_mismatch"),
            ] {
                if on {
                    line.push_str(&format!(" [{name}]"));
                }
            }
            line
        }
        (
            RunStatus::Failed {
                phase,
                agent_id,
                call,
                error,
            },
            _,
        ) => format!("{head} FAILED in {phase:?} phase, agent {agent_id}, call {call}: {error}"),
        (RunStatus::Ok, None) => format!("{head} (no metrics)"),
    }
}

fn mean(it: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = it.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn cell_key(r: &RunRecord) -> (String, String, String) {
    (
        r.model.clone(),
        r.scenario.name().to_owned(),
        r.backend.clone(),
    )
}

fn fmt_summary(s: Option<Summary>, scale: f64, digits: usize) -> String {
    match s {
        Some(s) => format!(
            "{:.d$} ± {:.d$} [{:.d$}, {:.d$}]",
            s.mean * scale,
            s.std.unwrap_or(0.0) * scale,
            s.min * scale,
            s.max * scale,
            d = digits
        ),
        None => "-".into(),
    }
}

/// The side-by-side table: one row per backend within each model × scenario.
pub fn cells_table(records: &[RunRecord]) -> String {
    let mut cells: BTreeMap<(String, String, String), Vec<&RunRecord>> = BTreeMap::new();
    for r in records {
        cells.entry(cell_key(r)).or_default().push(r);
    }
    let mut out = String::new();
    out.push_str(&format!(
        "{:<24} {:<19} {:<14} {:>5}  {:<30} {:<30} {:>9} {:>9} {:>9} {:>7} {:>7}\n",
        "model",
        "scenario",
        "backend",
        "ok/n",
        "speedup x (mean ± sd [min, max])",
        "efficiency % (measured)",
        "seed est%",
        "TTFT ms",
        "tok/s",
        "CPU s",
        "RSS MiB"
    ));
    for ((model, scenario, backend), runs) in &cells {
        let ok: Vec<_> = runs.iter().filter_map(|r| r.metrics.as_ref()).collect();
        let col = |f: &dyn Fn(&chimeraforge_core::metrics::RunMetrics) -> Option<f64>| {
            Summary::of(&ok.iter().filter_map(|m| f(m)).collect::<Vec<_>>())
        };
        let speedup = col(&|m| Some(m.speedup.value));
        let eff = col(&|m| Some(m.efficiency.value));
        let est = col(&|m| Some(m.estimated_efficiency.value));
        let ttft = col(&|m| mean(m.per_agent.iter().filter_map(|a| a.concurrent_ttft_ms)));
        let tok = col(&|m| mean(m.per_agent.iter().filter_map(|a| a.concurrent_decode_tok_s)));
        let cpu = Summary::of(
            &runs
                .iter()
                .filter_map(|r| r.client.as_ref().map(|c| c.user_cpu_s + c.system_cpu_s))
                .collect::<Vec<_>>(),
        );
        let rss = Summary::of(
            &runs
                .iter()
                .filter_map(|r| r.client.as_ref().map(|c| c.peak_rss_kib as f64 / 1024.0))
                .collect::<Vec<_>>(),
        );
        let m = |s: Option<Summary>, scale: f64, d: usize| {
            s.map_or("-".into(), |s| format!("{:.d$}", s.mean * scale))
        };
        out.push_str(&format!(
            "{:<24} {:<19} {:<14} {:>5}  {:<30} {:<30} {:>9} {:>9} {:>9} {:>7} {:>7}\n",
            model,
            scenario,
            backend,
            format!("{}/{}", ok.len(), runs.len()),
            fmt_summary(speedup, 1.0, 3),
            fmt_summary(eff, 100.0, 1),
            m(est, 100.0, 1),
            m(ttft, 1.0, 1),
            m(tok, 1.0, 0),
            m(cpu, 1.0, 3),
            m(rss, 1.0, 1),
        ));
    }
    out
}
