//! `runs.csv`: one row per run, RFC 4180 (CRLF line ends, fields quoted when needed).

use super::text::{csv, serde_name};
use super::Report;
use crate::analysis::{kind_name, lost_cause, Analysis, RunRow, RunState};
use std::fmt::Write;

/// Column names, in order. `run_index` is 0-based as in `runs.jsonl`; deltas are agent 0 −
/// agent 1; the graph figures are computed from the record where it predates them; flags are `true`/`false`, empty when the run has no metrics.
pub const COLUMNS: [&str; 34] = [
    "model",
    "scenario",
    "agents",
    "backend",
    "run_index",
    "status",
    "failure_kind",
    "failure_phase",
    "failure_agent",
    "failure_call",
    "failure_message",
    "started_unix_ms",
    "speedup",
    "efficiency_pct",
    "estimated_efficiency_pct",
    "graph_efficiency_pct",
    "graph_ceiling",
    "critical_path_ms",
    "token_normalized_speedup",
    "system_throughput_tok_s",
    "system_throughput_basis",
    "fairness",
    "slowdown",
    "ttft_ms",
    "decode_tok_s",
    "throughput_delta_tok_s",
    "ttft_delta_ms",
    "ttft_anomaly",
    "low_speedup",
    "cold_load",
    "length_mismatch",
    "prompt_cache",
    "client_cpu_s",
    "peak_rss_kib",
];

/// Writes `runs.csv`.
#[derive(Debug, Default)]
pub struct CsvReport {
    out: String,
}

impl CsvReport {
    pub fn into_string(self) -> String {
        self.out
    }
}

fn f(x: Option<f64>) -> String {
    x.filter(|x| x.is_finite())
        .map_or_else(String::new, |x| x.to_string())
}

impl Report for CsvReport {
    fn begin(&mut self, _: &Analysis) {
        self.out.push_str(&COLUMNS.join(","));
        self.out.push_str("\r\n");
    }

    fn run(&mut self, _: &Analysis, r: &RunRow) {
        let failure = r.failure.as_ref();
        // In the order of Flags::NAMES, which the columns follow (tested).
        let flags = r.flags.map(|fl| fl.values());
        let flag = |i: usize| flags.map_or_else(String::new, |v| v[i].to_string());
        let fields: [String; COLUMNS.len()] = [
            r.key.model.clone(),
            r.key.scenario.name().to_owned(),
            r.key.agents.to_string(),
            r.key.backend.clone(),
            r.run_index.to_string(),
            r.state.name().to_owned(),
            match (failure, r.state) {
                (Some(x), _) => kind_name(x.kind),
                (None, RunState::Missing) => lost_cause(r.lost.as_ref()),
                (None, _) => String::new(),
            },
            failure.map_or_else(String::new, |x| serde_name(&x.phase)),
            failure.map_or_else(String::new, |x| x.agent_id.clone()),
            failure.map_or_else(String::new, |x| x.call.clone()),
            match (failure, &r.lost) {
                (Some(x), _) => x.message.clone(),
                (None, Some(l)) => l.failure.to_string(),
                (None, None) => String::new(),
            },
            r.started_unix_ms
                .map_or_else(String::new, |t| t.to_string()),
            f(r.speedup),
            f(r.efficiency_pct),
            f(r.estimated_efficiency_pct),
            f(r.graph_efficiency_pct),
            f(r.graph_ceiling),
            f(r.critical_path_ms),
            f(r.token_normalized_speedup),
            f(r.system_throughput_tok_s),
            match (r.system_throughput_tok_s, r.system_throughput_estimated) {
                (None, _) => String::new(),
                (Some(_), true) => "estimated".to_owned(),
                (Some(_), false) => "measured".to_owned(),
            },
            f(r.fairness),
            f(r.slowdown),
            f(r.ttft_ms),
            f(r.decode_tok_s),
            f(r.throughput_delta_tok_s),
            f(r.ttft_delta_ms),
            flag(0),
            flag(1),
            flag(2),
            flag(3),
            flag(4),
            f(r.client_cpu_s),
            r.peak_rss_kib.map_or_else(String::new, |k| k.to_string()),
        ];
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let _ = write!(self.out, "{}", csv(field));
        }
        self.out.push_str("\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::COLUMNS;
    use chimeraforge_core::metrics::Flags;

    #[test]
    fn flag_columns_are_the_flags_names_in_order() {
        let at = COLUMNS
            .iter()
            .position(|c| *c == Flags::NAMES[0])
            .expect("a flag column");
        assert_eq!(COLUMNS[at..at + Flags::NAMES.len()], Flags::NAMES);
    }
}
