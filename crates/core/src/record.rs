//! What is written: one [`RunRecord`] per run, one JSON line each in `runs.jsonl`.

use crate::call::{CallError, CallRecord};
use crate::metrics::RunMetrics;
use crate::rt::RuntimeFacts;
use crate::workload::{Agent, Scenario};
use serde::{Deserialize, Serialize};

/// Version of the record layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// A phase of the run protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Warmup,
    Sequential,
    Concurrent,
}

/// Which measured phase ran first in a run (alternates between runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum PhaseOrder {
    SequentialFirst,
    ConcurrentFirst,
}

/// One agent's work within a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AgentPhaseRecord {
    pub agent_id: String,
    /// When the agent started, relative to the phase start, ms.
    pub start_ms: f64,
    /// Start of its first call to the end of its last, ms. T_i(alone) or T_i(conc).
    pub duration_ms: f64,
    pub calls: Vec<CallRecord>,
}

impl AgentPhaseRecord {
    /// Output tokens over all calls, and whether every count was server-reported.
    pub fn output_tokens(&self) -> (u64, bool) {
        let mut total = 0;
        let mut all_measured = true;
        for c in &self.calls {
            match c.output_tokens {
                Some(t) => {
                    total += t.value;
                    all_measured &= t.basis == crate::call::Basis::Measured;
                }
                None => all_measured = false,
            }
        }
        (total, all_measured)
    }

    /// The first failed call, if any.
    pub fn error(&self) -> Option<&CallError> {
        self.calls.iter().find_map(|c| c.error.as_ref())
    }
}

/// One measured phase. Agents are listed in agent order, whatever order they ran in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PhaseRecord {
    pub phase: Phase,
    /// Sequential: from the first agent's start to the last agent's end. Concurrent:
    /// from the barrier's release to the last agent's end (T_conc). ms.
    pub wall_ms: f64,
    pub agents: Vec<AgentPhaseRecord>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RunStatus {
    Ok,
    Failed {
        phase: Phase,
        agent_id: String,
        call: String,
        error: CallError,
    },
}

/// Cost of the client process (the measured child), from getrusage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClientCost {
    pub user_cpu_s: f64,
    pub system_cpu_s: f64,
    pub peak_rss_kib: u64,
    pub voluntary_ctx_switches: u64,
    pub involuntary_ctx_switches: u64,
    /// The same, per phase, sampled at phase boundaries (absent in older records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseCost>,
}

/// What one phase cost the client process: getrusage(RUSAGE_SELF) at its end minus at its
/// start (every thread of the process, the HTTP client's own threads included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PhaseCost {
    pub phase: Phase,
    /// Wall time between the two samples, s.
    pub wall_s: f64,
    pub user_cpu_s: f64,
    pub system_cpu_s: f64,
    /// High-water mark of resident memory at the phase's end (never decreases), KiB.
    pub peak_rss_kib: u64,
    pub voluntary_ctx_switches: u64,
    pub involuntary_ctx_switches: u64,
    /// Output tokens the phase received (server-reported, else counted), for tokens per
    /// client CPU-second.
    #[serde(default)]
    pub output_tokens: u64,
}

impl PhaseCost {
    /// User plus system CPU, s.
    pub fn cpu_s(&self) -> f64 {
        self.user_cpu_s + self.system_cpu_s
    }

    /// Output tokens per client CPU-second, if any CPU was used.
    pub fn tokens_per_cpu_s(&self) -> Option<f64> {
        (self.cpu_s() > 0.0 && self.output_tokens > 0)
            .then(|| self.output_tokens as f64 / self.cpu_s())
    }

    /// Cores kept busy on average: CPU seconds / wall seconds.
    pub fn busy_cores(&self) -> Option<f64> {
        (self.wall_s > 0.0).then(|| self.cpu_s() / self.wall_s)
    }
}

/// One run of one cell: everything measured, and everything needed to reproduce it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunRecord {
    pub schema_version: u32,
    pub backend: String,
    pub model: String,
    pub scenario: Scenario,
    /// 0-based index of this run within its cell.
    pub run_index: u32,
    /// Wall-clock start (for humans and ordering only; never used in a metric), ms since epoch.
    pub started_unix_ms: u64,
    pub runtime: RuntimeFacts,
    pub phase_order: PhaseOrder,
    /// Agent indices in the order the sequential phase ran them.
    pub sequential_order: Vec<usize>,
    pub agents: Vec<Agent>,
    pub warmup: Vec<CallRecord>,
    pub sequential: Option<PhaseRecord>,
    pub concurrent: Option<PhaseRecord>,
    pub metrics: Option<RunMetrics>,
    #[serde(flatten)]
    pub status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientCost>,
    /// The run's tag as sent: every prompt of the run began with `[{prompt_nonce} {phase}
    /// {agent id} {run_tag}] ` (see `protocol::agent_tag`). Absent in older records.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_tag: String,
    /// The invocation's prompt nonce that led every prompt of the run; absent with
    /// `prompt_cache = "allow"` (and in older records).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prompt_nonce: String,
    /// The run's connection policy (`keep-alive` or `fresh`); absent in records from
    /// before connection policies (their calls each sent `Connection: close`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<crate::http::ConnectionPolicy>,
}

impl RunRecord {
    pub fn is_ok(&self) -> bool {
        matches!(self.status, RunStatus::Ok)
    }

    /// The request body agent `agent` sent as call `call` in `phase`, given the text its
    /// previous call returned: the tag as the protocol built it, from this record's nonce,
    /// run tag and run index.
    pub fn request_body(&self, phase: Phase, agent: usize, call: usize, previous: &str) -> Vec<u8> {
        let a = &self.agents[agent];
        let tag = crate::protocol::tag_of(
            &self.prompt_nonce,
            &self.run_tag,
            self.run_index,
            phase,
            &a.id,
        );
        a.tagged(&tag).request_body(call, previous)
    }
}
