//! What is written: one [`RunRecord`] per run, one JSON line each in `runs.jsonl`.
//!
//! Every type of the record lives here and depends on nothing that produces or reads it:
//! [`crate::call`] and [`crate::protocol`] fill records in, [`crate::metrics`] computes from
//! them.

use crate::api::ServerStats;
use crate::rt::RuntimeFacts;
use crate::workload::{Agent, Scenario};
use serde::{Deserialize, Serialize};

// Only what the field docs link to (their text is also the JSON Schema's, so it stays plain).
#[cfg(doc)]
use crate::{
    call::{KEPT_OFFSETS, KEPT_TEXT_BYTES},
    metrics::served_from_prompt_cache,
};

/// Version of the record layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Declares [`Phase`] with each phase's name written once: its serialized form,
/// [`Phase::as_str`] (prompt tags, live progress) and [`Phase::ALL`] all come from this list.
macro_rules! phases {
    ($($variant:ident = $name:literal,)*) => {
        /// A phase of the run protocol.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        pub enum Phase {
            $(#[serde(rename = $name)] $variant,)*
        }

        impl Phase {
            /// Every phase, in declaration order (warm-up first): `ALL[p as usize] == p`.
            pub const ALL: &'static [Phase] = &[$(Phase::$variant),*];

            /// The phase's name, as serialized.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Phase::$variant => $name,)*
                }
            }
        }
    };
}

phases! {
    Warmup = "warmup",
    Sequential = "sequential",
    Concurrent = "concurrent",
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
                    all_measured &= t.basis == Basis::Measured;
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
}

// Calls: what `call::execute_call` measures.

/// Whether a figure was measured directly or derived under an assumption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    Measured,
    Estimated,
}

/// Output tokens of a call and where the number comes from: the server's count
/// (`measured`) or the number of text events the client saw (`estimated`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TokenCount {
    pub value: u64,
    pub basis: Basis,
}

/// What kind of failure ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum CallErrorKind {
    Connect,
    ConnectTimeout,
    InvalidUrl,
    Request,
    HttpStatus,
    WrongContentType,
    FirstByteTimeout,
    IdleTimeout,
    TotalTimeout,
    Body,
    LineTooLong,
    InvalidUtf8,
    MalformedStream,
    ServerError,
    ClosedBeforeDone,
    Framing,
    /// Far more than was asked for: more text events than `runaway_factor` × `num_predict`,
    /// or a body over `max_response_bytes`.
    RunawayStream,
}

/// A failed call: what happened, where, and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CallError {
    pub kind: CallErrorKind,
    pub message: String,
    pub url: String,
    pub model: String,
    /// HTTP status, when the server answered with one other than 200.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub bytes_received: u64,
    pub elapsed_ms: f64,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (model {:?} at {}, after {:.0} ms, {} bytes received)",
            self.message, self.model, self.url, self.elapsed_ms, self.bytes_received
        )
    }
}

// `Default`: a call that measured nothing (every figure absent or zero), for records built
// outside `call.rs` to fill in what they know.
/// Everything measured about one call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CallRecord {
    pub agent_id: String,
    /// The call's name in the agent's workload (`analysis`, `report`, `warmup`).
    pub call: String,
    pub url: String,
    pub model: String,
    /// When the request was sent, relative to the start of its phase, ms.
    pub send_offset_ms: f64,
    /// t_first - t_send: first chunk carrying generated output of any kind (non-empty
    /// reasoning or answer text, or a tool call or a fragment of one), ms.
    pub ttft_ms: Option<f64>,
    /// t_done - t_send: until the response body ended, ms.
    pub e2e_ms: f64,
    /// t_last - t_first: first to last chunk carrying generated output (reasoning, answer,
    /// tool call), ms.
    pub decode_ms: Option<f64>,
    /// Every generated token, reasoning included (what the server decodes).
    pub output_tokens: Option<TokenCount>,
    /// Generated events the client decoded: non-empty `response`/`content`/`delta` text,
    /// non-empty reasoning (`thinking`, `reasoning_content`, `reasoning`), and tool calls
    /// (one per `tool_calls` entry: an OpenAI fragment, a whole Ollama call).
    pub text_events: u64,
    pub bytes_received: u64,
    /// Arrival of each text event (reasoning, answer, tool call) relative to t_send, ms (the raw
    /// inter-chunk record); the first [`KEPT_OFFSETS`] only (fewer than `text_events` when cut).
    pub text_offsets_ms: Vec<f64>,
    /// (tokens - 1) / (t_last - t_first), tok/s.
    pub client_decode_tok_s: Option<f64>,
    /// (t_last - t_first) / (tokens - 1), ms per output token after the first.
    pub tpot_ms: Option<f64>,
    /// Percentiles of raw gaps between consecutive text events, ms.
    pub gap_ms: Option<Percentiles>,
    /// Server-reported figures, as reported.
    pub server: Option<ServerStats>,
    /// Server-reported tokens / eval time, tok/s.
    pub server_decode_tok_s: Option<f64>,
    /// Server-reported load time above the threshold: a model (re)load landed in this call.
    pub cold_load: bool,
    /// First characters of the generated answer text (for reports; the full text is not
    /// kept; reasoning and tool calls are not part of it).
    pub output_preview: String,
    pub error: Option<CallError>,
    /// t_first_answer - t_send: first chunk carrying non-empty answer text (`response`,
    /// `content`, `text`), after any reasoning, ms. Equals `ttft_ms` when nothing reasoned.
    #[serde(default)]
    pub ttft_answer_ms: Option<f64>,
    /// Of `text_events`, those carrying reasoning text.
    #[serde(default)]
    pub reasoning_events: u64,
    /// Of `output_tokens`, those spent reasoning: the server's count (`measured`), else
    /// `reasoning_events` (`estimated`); absent when no reasoning event came and the server
    /// sent no count (a server that always sends `reasoning_tokens: 0` gives a measured 0).
    #[serde(default)]
    pub reasoning_tokens: Option<TokenCount>,
    /// Of `output_tokens`, the answer's: output − the server's reasoning count when the
    /// server gives both, `output_tokens` when nothing reasoned, else the answer's text
    /// events (`estimated`).
    #[serde(default)]
    pub answer_tokens: Option<TokenCount>,
    /// More text arrived than the call keeps ([`KEPT_TEXT_BYTES`]): `{previous}` got the
    /// first part only.
    #[serde(default)]
    pub output_truncated: bool,
    /// TCP connections this call opened: 1 on a new connection (also when it replaced its
    /// agent's kept-alive one, found closed: then `reconnects` is 1 too), 0 when it reused
    /// that one. Absent (0) in records from before connection policies, whose calls each
    /// opened one.
    #[serde(default)]
    pub connections_opened: u64,
    /// Of `connections_opened`, those that replaced the agent's kept-alive connection after
    /// the server closed it (idle timeout, request limit, `Connection: close`); the time
    /// spent on it is inside the call's TTFT. Always 0 under `connection = "fresh"`.
    #[serde(default)]
    pub reconnects: u64,
    /// Tool calls the model made in this call (Ollama `message.tool_calls`, OpenAI
    /// `delta.tool_calls`), assembled from the stream. Absent (0) in older records.
    #[serde(default)]
    pub tool_calls: u64,
    /// Of `text_events`, those carrying a tool call (or a fragment of one): generated
    /// output, counted like text for the first token, token counts and decode rate.
    #[serde(default)]
    pub tool_call_events: u64,
    /// The tool step this call was followed by: from the end of this call to the start of
    /// the agent's next one (the tool's latency as the agent waited it), ms. Absent when the
    /// call has no tool step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_wait_ms: Option<f64>,
}

// Metrics: what `metrics::run_metrics` computes from the two measured phases.

/// A number and whether it was measured or estimated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Figure {
    pub value: f64,
    pub basis: Basis,
}

impl Figure {
    pub fn measured(value: f64) -> Self {
        Figure {
            value,
            basis: Basis::Measured,
        }
    }
    pub fn estimated(value: f64) -> Self {
        Figure {
            value,
            basis: Basis::Estimated,
        }
    }
}

/// p50/p90/p99/max of a sample (linear interpolation between order statistics).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// One agent's figures in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AgentMetrics {
    pub agent_id: String,
    /// T_i(alone), ms.
    pub alone_ms: f64,
    /// T_i(conc), ms.
    pub concurrent_ms: f64,
    /// T_i(conc) / T_i(alone).
    pub slowdown: f64,
    pub tokens_alone: u64,
    pub tokens_concurrent: u64,
    /// Client decode rate in the concurrent phase: Σ(tokens−1) / Σ(t_last−t_first) over its calls, tok/s.
    pub concurrent_decode_tok_s: Option<f64>,
    /// Client decode rate alone, same definition, tok/s.
    pub alone_decode_tok_s: Option<f64>,
    /// Mean TTFT of its calls in the concurrent phase (first token of any kind), ms.
    pub concurrent_ttft_ms: Option<f64>,
    /// Mean time to the first answer token of its calls in the concurrent phase (after any
    /// reasoning), ms.
    #[serde(default)]
    pub concurrent_ttft_answer_ms: Option<f64>,
    /// Reasoning tokens over its calls in the concurrent phase (of `tokens_concurrent`).
    #[serde(default)]
    pub reasoning_tokens_concurrent: u64,
}

/// Contention flags, named for what they test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Flags {
    /// A concurrent-phase TTFT above 3 s (the seed's prose definition of contention).
    pub ttft_anomaly: bool,
    /// Measured speedup below 0.75·N (1.5 for two agents: the seed code's definition).
    pub low_speedup: bool,
    /// A measured call paid a model (re)load above the threshold.
    pub cold_load: bool,
    /// Some agent produced a different number of tokens in the two phases.
    pub length_mismatch: bool,
    /// A measured call was served from the server's prompt cache beyond the prefix prompts of
    /// one invocation share (see [`served_from_prompt_cache`]): its TTFT times a cache hit,
    /// not a prompt evaluation. Absent (false) in older records.
    #[serde(default)]
    pub prompt_cache: bool,
}

impl Flags {
    /// The flags' names, in the order [`Flags::raised`] lists them (and `runs.csv` has them:
    /// tested there).
    pub const NAMES: [&'static str; 5] = [
        "ttft_anomaly",
        "low_speedup",
        "cold_load",
        "length_mismatch",
        "prompt_cache",
    ];

    /// The flags' values, in the order of [`Flags::NAMES`].
    pub fn values(&self) -> [bool; 5] {
        [
            self.ttft_anomaly,
            self.low_speedup,
            self.cold_load,
            self.length_mismatch,
            self.prompt_cache,
        ]
    }

    /// Names of the raised flags, e.g. `["ttft_anomaly", "cold_load"]`.
    pub fn raised(&self) -> Vec<&'static str> {
        Self::NAMES
            .into_iter()
            .zip(self.values())
            .filter_map(|(name, on)| on.then_some(name))
            .collect()
    }
}

/// Everything computed for one successful run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunMetrics {
    pub agents: usize,
    /// Σ T_i(alone), ms.
    pub sequential_sum_ms: f64,
    /// T_conc: barrier release to the last agent's end, ms.
    pub concurrent_wall_ms: f64,
    /// Σ T_i(alone) / T_conc.
    pub speedup: Figure,
    /// speedup / N.
    pub efficiency: Figure,
    /// The seed's formula, Σ T_i(conc) / T_conc: how evenly agents finished, not concurrency.
    pub estimated_speedup: Figure,
    pub estimated_efficiency: Figure,
    /// Σ T_i(alone)·(tokens_i(conc)/tokens_i(alone)) / T_conc; only when lengths differ.
    pub token_normalized_speedup: Option<Figure>,
    /// Σ tokens(conc) / T_conc, tok/s.
    pub system_throughput_tok_s: Figure,
    /// Jain's index over the agents' slowdowns.
    pub fairness: Option<f64>,
    /// decode tok/s of agent 0 minus agent 1, concurrent phase.
    pub throughput_delta_tok_s: Option<f64>,
    /// mean TTFT of agent 0 minus agent 1, concurrent phase, ms.
    pub ttft_delta_ms: Option<f64>,
    pub flags: Flags,
    pub per_agent: Vec<AgentMetrics>,
    /// The critical path: the longest chain of sequential-phase agent durations (tool waits
    /// included) along the agents' dependencies (`after`), ms: the makespan an infinitely
    /// parallel server would give. For independent agents, the slowest agent alone. Absent
    /// in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_path_ms: Option<f64>,
    /// The graph's ceiling: Σ T_i(alone) / critical path (the speedup the graph allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_ceiling: Option<Figure>,
    /// Graph efficiency: critical path / T_conc (1.0 on an ideal device, whatever the
    /// graph's shape or the agents' imbalance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_efficiency: Option<Figure>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_serializes_as_its_name_and_indexes_all() {
        for (i, &p) in Phase::ALL.iter().enumerate() {
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
            assert_eq!(
                serde_json::from_value::<Phase>(p.as_str().into()).unwrap(),
                p
            );
            assert_eq!(p as usize, i);
        }
        let names: Vec<_> = Phase::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(names, ["warmup", "sequential", "concurrent"]);
    }
}
