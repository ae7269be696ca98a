//! Reading a results directory: `manifest.json` and `runs.jsonl` (one record per line).

use crate::ReportError;
use chimeraforge_core::record::{RunRecord, SCHEMA_VERSION};
use chimeraforge_core::workload::Scenario;
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.json";
pub const RUNS: &str = "runs.jsonl";

/// A results directory as read.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Where it was read from (empty for results built in memory).
    pub dir: PathBuf,
    pub manifest: serde_json::Value,
    /// Every readable record, in file order.
    pub records: Vec<RunRecord>,
    /// One line per skipped line of `runs.jsonl`, naming `file:line`.
    pub warnings: Vec<String>,
}

/// A run the manifest scheduled (its `order`): which cell, which run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScheduledRun {
    pub backend: String,
    pub model: String,
    pub scenario: Scenario,
    /// Agents in the run (part of the cell when a scaling sweep varies it).
    pub agents: usize,
    pub run_index: u32,
}

/// A scheduled run whose child process left no record (the manifest's `lost_runs`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LostRun {
    pub run: ScheduledRun,
    /// The driver's name for the cause, e.g. `crashed`.
    pub kind: String,
    /// The driver's message, e.g. "the smol-1kb child process failed (signal 9): …".
    pub message: String,
}

/// Read `dir`: its manifest, and every record of `runs.jsonl` that parses. A line that does
/// not (the partial last line of a killed process, say) is skipped with a warning.
pub fn read_results(dir: &Path) -> Result<Results, ReportError> {
    let manifest_path = dir.join(MANIFEST);
    let manifest_bytes = match std::fs::read(&manifest_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ReportError::NotResultsDir {
                dir: dir.to_owned(),
                manifest: manifest_path,
            })
        }
        Err(source) => {
            return Err(ReportError::Read {
                path: manifest_path,
                source,
            })
        }
    };
    let manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|source| ReportError::Manifest {
            path: manifest_path.clone(),
            source,
        })?;
    let runs_path = dir.join(RUNS);
    let mut warnings = Vec::new();
    let records = match std::fs::read(&runs_path) {
        Ok(bytes) => parse_runs(&bytes, &runs_path, &mut warnings),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            warnings.push(format!(
                "{}: missing; no run was recorded",
                runs_path.display()
            ));
            Vec::new()
        }
        Err(source) => {
            return Err(ReportError::Read {
                path: runs_path,
                source,
            })
        }
    };
    Ok(Results {
        dir: dir.to_owned(),
        manifest,
        records,
        warnings,
    })
}

/// Records of a `runs.jsonl` body; `path` only names the file in warnings.
pub fn parse_runs(bytes: &[u8], path: &Path, warnings: &mut Vec<String>) -> Vec<RunRecord> {
    let mut records = Vec::new();
    let last = bytes.split(|&b| b == b'\n').count();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        match serde_json::from_slice::<RunRecord>(line) {
            Ok(r) if r.schema_version != SCHEMA_VERSION => warnings.push(format!(
                "{at}: skipped a record of schema version {} (this report reads version {SCHEMA_VERSION})",
                r.schema_version
            )),
            Ok(r) => records.push(r),
            Err(e) => {
                let hint = if i + 1 == last {
                    "the last line is partial when a run was interrupted while being written"
                } else {
                    "not a run record"
                };
                warnings.push(format!("{at}: skipped an unreadable line ({e}); {hint}"));
            }
        }
    }
    records
}

/// The runs the manifest scheduled (`order`), or `None` when it has no readable order.
pub fn scheduled_runs(manifest: &serde_json::Value) -> Option<Vec<ScheduledRun>> {
    let order = manifest.get("order")?.as_array()?;
    let default_agents = default_agents(manifest);
    order
        .iter()
        .map(|slot| parse_slot(slot, default_agents))
        .collect()
}

/// Runs whose child left no record, from the manifest's `lost_runs`.
pub fn lost_runs(manifest: &serde_json::Value) -> Vec<LostRun> {
    let default_agents = default_agents(manifest);
    let Some(lost) = manifest.get("lost_runs").and_then(|v| v.as_array()) else {
        return Vec::new();
    };
    lost.iter()
        .filter_map(|l| {
            let run = parse_slot(l.get("slot")?, default_agents)?;
            let f = l.get("failure");
            let field = |k: &str| {
                f.and_then(|f| f.get(k))
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned()
            };
            Some(LostRun {
                kind: field("kind"),
                message: format!(
                    "the {} child process failed ({}): {}",
                    field("backend"),
                    field("status"),
                    field("detail")
                ),
                run,
            })
        })
        .collect()
}

/// Agents per run when an order slot does not say: the config's agent list.
fn default_agents(manifest: &serde_json::Value) -> usize {
    manifest
        .pointer("/config/agents")
        .and_then(|a| a.as_array())
        .map_or(2, Vec::len)
}

fn parse_slot(slot: &serde_json::Value, default_agents: usize) -> Option<ScheduledRun> {
    let cell = slot.get("cell")?;
    Some(ScheduledRun {
        backend: cell.get("backend")?.as_str()?.to_owned(),
        model: cell.get("model")?.as_str()?.to_owned(),
        scenario: cell.get("scenario")?.as_str()?.parse().ok()?,
        agents: match cell.get("agents") {
            Some(n) => usize::try_from(n.as_u64()?).ok()?,
            None => default_agents,
        },
        run_index: u32::try_from(slot.get("run_index")?.as_u64()?).ok()?,
    })
}

/// A string field of the manifest at `pointer` (JSON pointer), if present.
pub fn manifest_str<'a>(manifest: &'a serde_json::Value, pointer: &str) -> Option<&'a str> {
    manifest.pointer(pointer)?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_manifest_says_not_a_results_directory() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_results(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("not a chimeraforge results directory"),
            "{msg}"
        );
        assert!(msg.contains(&dir.path().join(MANIFEST).display().to_string()));
    }

    #[test]
    fn bad_manifest_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST), "{not json").unwrap();
        let msg = read_results(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("manifest.json") && msg.contains("cannot parse"),
            "{msg}"
        );
    }

    #[test]
    fn missing_runs_file_is_a_warning_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST), "{}").unwrap();
        let r = read_results(dir.path()).unwrap();
        assert!(r.records.is_empty());
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].contains("runs.jsonl"));
    }

    #[test]
    fn garbage_lines_are_skipped_with_file_and_line() {
        let mut w = Vec::new();
        let recs = parse_runs(
            b"\n{\"schema_version\": 1}\n{\"trunc",
            Path::new("r.jsonl"),
            &mut w,
        );
        assert!(recs.is_empty());
        assert_eq!(w.len(), 2);
        assert!(w[0].starts_with("r.jsonl:2:"), "{}", w[0]);
        assert!(
            w[1].starts_with("r.jsonl:3:") && w[1].contains("partial"),
            "{}",
            w[1]
        );
    }

    #[test]
    fn scheduled_runs_reads_the_driver_order() {
        let m = serde_json::json!({"order": [
            {"cell": {"backend": "smol-1kb", "model": "m", "scenario": "chimera-homo"}, "run_index": 2}
        ]});
        let s = scheduled_runs(&m).unwrap();
        assert_eq!(s[0].backend, "smol-1kb");
        assert_eq!(s[0].scenario, Scenario::ChimeraHomo);
        assert_eq!(s[0].run_index, 2);
        assert_eq!(
            s[0].agents, 2,
            "orders before scaling: the config's agents, else 2"
        );
        assert!(scheduled_runs(&serde_json::json!({})).is_none());
    }

    #[test]
    fn lost_runs_read_the_driver_failures() {
        let m = serde_json::json!({"lost_runs": [{
            "slot": {"cell": {"backend": "async-std", "model": "m", "scenario": "chimera-homo", "agents": 4}, "run_index": 1},
            "failure": {"kind": "crashed", "backend": "async-std", "status": "signal 9", "detail": "killed"},
            "at_utc": "20260101T000000Z"
        }]});
        let l = lost_runs(&m);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].run.agents, 4);
        assert_eq!(l[0].kind, "crashed");
        assert_eq!(
            l[0].message,
            "the async-std child process failed (signal 9): killed"
        );
    }
}
