//! One row per run (ok, failed or missing), and the failures gathered from them.

use super::cell::CellKey;
use super::graph::graph_figures;
use super::metric::Metric;
use crate::results::LostRun;
use chimeraforge_core::call::CallErrorKind;
use chimeraforge_core::metrics::Flags;
use chimeraforge_core::record::{Phase, RunRecord, RunStatus};
use serde::Serialize;
use std::collections::BTreeMap;

/// How a run ended, as far as the results directory knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Ok,
    Failed,
    /// Scheduled in the manifest, but no record was written (the child process died).
    Missing,
}

impl RunState {
    pub fn name(self) -> &'static str {
        match self {
            RunState::Ok => "ok",
            RunState::Failed => "failed",
            RunState::Missing => "missing",
        }
    }
}

/// Why a run failed: the first failed call.
#[derive(Debug, Clone, Serialize)]
pub struct FailedRun {
    pub key: CellKey,
    pub run_index: u32,
    pub phase: Phase,
    pub agent_id: String,
    pub call: String,
    pub kind: CallErrorKind,
    pub message: String,
}

/// One run's figures, flat, for the appendix and the CSV.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub key: CellKey,
    /// 0-based index within the cell.
    pub run_index: u32,
    pub state: RunState,
    pub failure: Option<FailedRun>,
    /// Why a missing run left no record, when the driver recorded it.
    pub lost: Option<LostRun>,
    pub started_unix_ms: Option<u64>,
    pub speedup: Option<f64>,
    pub efficiency_pct: Option<f64>,
    pub estimated_efficiency_pct: Option<f64>,
    /// Critical path / T_conc, %.
    pub graph_efficiency_pct: Option<f64>,
    /// Σ T_i(alone) / critical path, ×.
    pub graph_ceiling: Option<f64>,
    /// As recorded, else computed from the record (older records), ms.
    pub critical_path_ms: Option<f64>,
    /// Only when some agent's output length differed between the phases (estimated).
    pub token_normalized_speedup: Option<f64>,
    pub system_throughput_tok_s: Option<f64>,
    /// Whether the throughput rests on chunk counts rather than server token counts.
    pub system_throughput_estimated: bool,
    pub fairness: Option<f64>,
    pub slowdown: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub decode_tok_s: Option<f64>,
    /// Agent 0 − agent 1, concurrent phase.
    pub throughput_delta_tok_s: Option<f64>,
    pub ttft_delta_ms: Option<f64>,
    pub flags: Option<Flags>,
    /// User + system CPU of the client process, s.
    pub client_cpu_s: Option<f64>,
    pub peak_rss_kib: Option<u64>,
}

impl RunRow {
    pub(crate) fn of(r: &RunRecord) -> RunRow {
        let m = r.metrics.as_ref().filter(|_| r.is_ok());
        let ok = Some(r).filter(|r| r.is_ok());
        let get = |metric: Metric| m.and_then(|m| metric.of(m)).map(|v| v.0);
        RunRow {
            key: CellKey::of(r),
            run_index: r.run_index,
            state: if r.is_ok() {
                RunState::Ok
            } else {
                RunState::Failed
            },
            failure: failed_run(r),
            lost: None,
            started_unix_ms: Some(r.started_unix_ms),
            speedup: get(Metric::Speedup),
            efficiency_pct: get(Metric::Efficiency),
            estimated_efficiency_pct: get(Metric::EstimatedEfficiency),
            graph_efficiency_pct: ok
                .and_then(|r| Metric::GraphEfficiency.of_run(r))
                .map(|v| v.0),
            graph_ceiling: ok.and_then(|r| Metric::GraphCeiling.of_run(r)).map(|v| v.0),
            critical_path_ms: ok.and_then(graph_figures).map(|g| g.critical_path_ms),
            token_normalized_speedup: m.and_then(|m| m.token_normalized_speedup).map(|f| f.value),
            system_throughput_tok_s: get(Metric::SystemThroughput),
            system_throughput_estimated: m
                .and_then(|m| Metric::SystemThroughput.of(m))
                .is_some_and(|v| v.1),
            fairness: get(Metric::Fairness),
            slowdown: get(Metric::Slowdown),
            ttft_ms: get(Metric::TtftMs),
            decode_tok_s: get(Metric::DecodeTokS),
            throughput_delta_tok_s: m.and_then(|m| m.throughput_delta_tok_s),
            ttft_delta_ms: m.and_then(|m| m.ttft_delta_ms),
            flags: m.map(|m| m.flags),
            client_cpu_s: r.client.as_ref().map(|c| c.user_cpu_s + c.system_cpu_s),
            peak_rss_kib: r.client.as_ref().map(|c| c.peak_rss_kib),
        }
    }

    pub(crate) fn missing(key: CellKey, run_index: u32, lost: Option<LostRun>) -> RunRow {
        RunRow {
            key,
            run_index,
            state: RunState::Missing,
            failure: None,
            lost,
            started_unix_ms: None,
            speedup: None,
            efficiency_pct: None,
            estimated_efficiency_pct: None,
            graph_efficiency_pct: None,
            graph_ceiling: None,
            critical_path_ms: None,
            token_normalized_speedup: None,
            system_throughput_tok_s: None,
            system_throughput_estimated: false,
            fairness: None,
            slowdown: None,
            ttft_ms: None,
            decode_tok_s: None,
            throughput_delta_tok_s: None,
            ttft_delta_ms: None,
            flags: None,
            client_cpu_s: None,
            peak_rss_kib: None,
        }
    }

    /// Names of the raised flags, e.g. `["ttft_anomaly", "cold_load"]`.
    pub fn flag_names(&self) -> Vec<&'static str> {
        self.flags.map(|f| f.raised()).unwrap_or_default()
    }
}

fn failed_run(r: &RunRecord) -> Option<FailedRun> {
    match &r.status {
        RunStatus::Ok => None,
        RunStatus::Failed {
            phase,
            agent_id,
            call,
            error,
        } => Some(FailedRun {
            key: CellKey::of(r),
            run_index: r.run_index,
            phase: *phase,
            agent_id: agent_id.clone(),
            call: call.clone(),
            kind: error.kind,
            message: error.to_string(),
        }),
    }
}

/// Every failure in the results directory.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Failures {
    /// Failed runs, in report order.
    pub runs: Vec<FailedRun>,
    /// Failed runs per kind of the failing call's error.
    pub by_kind: BTreeMap<CallErrorKind, usize>,
    /// Scheduled runs without a record: (cell, run index).
    pub missing: Vec<(CellKey, u32)>,
    /// Missing runs per cause the driver recorded (`child_crashed`, …; `unknown` when none).
    pub missing_by_cause: BTreeMap<String, usize>,
    /// The driver's record of each child that wrote no record (`lost_runs`).
    pub lost: Vec<LostRun>,
    /// Messages of older manifests (`child_failures`), which name no run.
    pub child_failures: Vec<String>,
}

/// The driver's name of a lost run's cause, e.g. `child_crashed`.
pub fn lost_cause(lost: Option<&LostRun>) -> String {
    lost.map_or_else(
        || "unknown".to_owned(),
        |l| l.failure.kind.name().to_owned(),
    )
}

/// The snake_case name of an error kind, as in `runs.jsonl`.
pub fn kind_name(kind: CallErrorKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}
