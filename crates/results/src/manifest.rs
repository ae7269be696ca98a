//! `manifest.json`: what was measured (config, backends, order), where (host, servers), and
//! how each session of the bench went. Fields a version of the driver did not write read as
//! their defaults, so results directories of every earlier version still read.

use crate::failure::LostRun;
use crate::schedule::Slot;
use chimeraforge_core::workload::PromptCache;
use chimeraforge_core::{BackendId, ConnectionPolicy};
use serde::{Deserialize, Serialize};

/// The manifest's `schema_version` this version writes, and the newest it reads.
pub const SCHEMA_VERSION: u32 = 1;

/// A results directory's `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct Manifest {
    pub schema_version: u32,
    /// The chimeraforge that started the matrix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<Tool>,
    /// The config file as given (`(built-in) …` for the embedded quickstart).
    pub config_path: String,
    /// The config file's text: the source of truth for `config`, and what `--resume` parses.
    pub config_text: String,
    /// FNV-1a (64-bit, hex) of `config_text`: detects an edited manifest or config.
    pub config_fnv1a64: String,
    /// The driver's parsed config with the command line's overrides, serialized (for readers
    /// that do not parse TOML; `config_text` is what the driver reads back).
    #[cfg_attr(feature = "schema", schemars(with = "serde_json::Value"))]
    pub config: serde_json::Value,
    /// The backends of the matrix, in the order the config or command line gave them.
    pub backends: Vec<BackendId>,
    /// The run order; absent in manifests written before it was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<Vec<Slot>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<Host>,
    /// What the first session's preflight found on each server (the driver's `ServerFacts`).
    pub servers: Vec<serde_json::Value>,
    /// Endpoints served by simulators the bench started itself.
    pub simulated_endpoints: Vec<String>,
    /// `YYYYMMDDTHHMMSSZ`.
    pub started_utc: String,
    /// Absent in manifests written before per-invocation nonces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache: Option<PromptCache>,
    /// The clients' connection policy; absent in manifests written before connection
    /// policies (their calls each sent `Connection: close`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionPolicy>,
    /// The first session's nonce (`null` with `prompt_cache = "allow"`).
    pub prompt_nonce: Option<String>,
    /// Each invocation that worked on the matrix: the first, then every `--resume`.
    pub sessions: Vec<Session>,
    /// Runs whose child left no record, in the order they were lost.
    pub lost_runs: Vec<LostRun>,
    /// Older manifests' account of children that left no record (now `lost_runs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub child_failures: Vec<String>,
    /// How the latest session ended; absent while the first runs, or if it was killed.
    #[serde(flatten)]
    pub outcome: Option<Outcome>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            schema_version: SCHEMA_VERSION,
            tool: None,
            config_path: String::new(),
            config_text: String::new(),
            config_fnv1a64: String::new(),
            config: serde_json::Value::Null,
            backends: Vec::new(),
            order: None,
            host: None,
            servers: Vec::new(),
            simulated_endpoints: Vec::new(),
            started_utc: String::new(),
            prompt_cache: None,
            connection: None,
            prompt_nonce: None,
            sessions: Vec::new(),
            lost_runs: Vec::new(),
            child_failures: Vec::new(),
            outcome: None,
        }
    }
}

/// The chimeraforge build that wrote a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct Tool {
    pub name: String,
    pub version: String,
    pub git_revision: String,
    pub rustc: String,
    pub backends_in_build: Vec<BackendId>,
}

/// The machine the bench ran on; `None` where it could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct Host {
    pub hostname: Option<String>,
    pub os: String,
    pub arch: String,
    pub kernel: Option<String>,
    pub cpus: Option<usize>,
    pub cpu_model: Option<String>,
    pub mem_total_kib: Option<u64>,
}

/// How a bench session ended, for the whole matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Outcome {
    /// `YYYYMMDDTHHMMSSZ`.
    pub finished_utc: String,
    #[serde(default)]
    pub runs_recorded: usize,
    #[serde(default)]
    pub runs_failed: usize,
    /// Scheduled runs with no record (`--resume` runs them).
    #[serde(default)]
    pub runs_missing: usize,
    #[serde(default)]
    pub complete: bool,
    #[serde(default)]
    pub interrupted: bool,
    /// The first signal, `SIGINT` or `SIGTERM`; `null` when not interrupted.
    #[serde(default)]
    pub interrupted_by: Option<String>,
}

/// One invocation of `bench` on the matrix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct Session {
    /// `YYYYMMDDTHHMMSSZ`.
    pub started_utc: String,
    pub resumed: bool,
    /// A resumed session's preflight of the servers (the first's is the manifest's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers: Option<Vec<serde_json::Value>>,
    /// The nonce leading this session's prompts (`null` with `prompt_cache = "allow"`).
    pub prompt_nonce: Option<String>,
    /// How it ended; absent if it was killed.
    #[serde(flatten)]
    pub end: Option<SessionEnd>,
}

/// How one session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SessionEnd {
    /// `YYYYMMDDTHHMMSSZ`.
    pub finished_utc: String,
    /// Runs this session started (recorded or lost).
    #[serde(default)]
    pub runs_attempted: usize,
    #[serde(default)]
    pub interrupted: bool,
    /// The first signal, `SIGINT` or `SIGTERM`; `null` when not interrupted.
    #[serde(default)]
    pub interrupted_by: Option<String>,
}

impl Manifest {
    /// The config's `name`, if recorded.
    pub fn config_name(&self) -> Option<&str> {
        self.config.get("name")?.as_str()
    }

    /// The config's `description`, if recorded.
    pub fn config_description(&self) -> Option<&str> {
        self.config.get("description")?.as_str()
    }

    /// The config's models, in its order.
    pub fn config_models(&self) -> Vec<String> {
        self.config_strings("models")
    }

    /// The config's scenarios by name, in its order.
    pub fn config_scenarios(&self) -> Vec<String> {
        self.config_strings("scenarios")
    }

    /// The recorded runs per cell (with the command line's override).
    pub fn config_runs(&self) -> Option<u32> {
        u32::try_from(self.config.get("runs")?.as_u64()?).ok()
    }

    /// Agents per run where an order slot does not say: the config's agent list, else 2.
    pub fn default_agents(&self) -> usize {
        self.config
            .get("agents")
            .and_then(|a| a.as_array())
            .map_or(2, Vec::len)
    }

    fn config_strings(&self, key: &str) -> Vec<String> {
        self.config
            .get(key)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chimeraforge_core::workload::Scenario;

    #[test]
    fn orders_before_scaling_take_the_configs_agents_else_two() {
        let m: Manifest = serde_json::from_value(serde_json::json!({"order": [
            {"cell": {"backend": "smol-1kb", "model": "m", "scenario": "chimera-homo"}, "run_index": 2}
        ]}))
        .unwrap();
        let s = &m.order.as_ref().unwrap()[0];
        assert_eq!(s.cell.backend, "smol-1kb");
        assert_eq!(s.cell.scenario, Scenario::ChimeraHomo);
        assert_eq!(s.run_index, 2);
        assert_eq!(s.cell.agents_or(m.default_agents()), 2);
        let m: Manifest =
            serde_json::from_value(serde_json::json!({"config": {"agents": [{}, {}, {}]}}))
                .unwrap();
        assert_eq!(m.default_agents(), 3);
        assert!(m.order.is_none());
    }

    #[test]
    fn lost_runs_read_the_driver_failures() {
        let m: Manifest = serde_json::from_value(serde_json::json!({"lost_runs": [{
            "slot": {"cell": {"backend": "async-std", "model": "m", "scenario": "chimera-homo", "agents": 4}, "run_index": 1},
            "failure": {"kind": "crashed", "backend": "async-std", "status": "signal 9", "detail": "killed"},
            "at_utc": "20260101T000000Z"
        }]}))
        .unwrap();
        let l = &m.lost_runs;
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].slot.cell.agents, Some(4));
        assert_eq!(l[0].failure.kind.name(), "child_crashed");
        assert_eq!(
            l[0].failure.to_string(),
            "the async-std child process failed (signal 9): killed"
        );
    }
}
