//! Runs whose child process left no record: why, and when. Kept in the manifest's
//! `lost_runs`, never in `runs.jsonl`.

use crate::schedule::Slot;
use chimeraforge_core::BackendId;
use serde::{Deserialize, Serialize};

/// Why a child produced no record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChildFailureKind {
    /// The process could not be started.
    NotStarted,
    /// Killed by a signal (crash, OOM killer, `kill -9`).
    Crashed,
    /// Exited with a non-zero code (e.g. the backend could not be built).
    ExitedWithError,
    /// Exited 0 but its stdout was not a record.
    UnreadableRecord,
    /// Stopped by a second Ctrl-C or SIGTERM.
    Interrupted,
}

impl ChildFailureKind {
    /// The name used in failure summaries and reports, e.g. `child_crashed`.
    pub fn name(self) -> &'static str {
        match self {
            ChildFailureKind::NotStarted => "child_not_started",
            ChildFailureKind::Crashed => "child_crashed",
            ChildFailureKind::ExitedWithError => "child_exited_with_error",
            ChildFailureKind::UnreadableRecord => "child_unreadable_record",
            ChildFailureKind::Interrupted => "child_interrupted",
        }
    }
}

/// A child that did not produce a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[error("the {backend} child process failed ({status}): {detail}")]
pub struct ChildFailure {
    pub kind: ChildFailureKind,
    pub backend: BackendId,
    /// The exit status as the OS words it, e.g. `signal: 9 (SIGKILL)`.
    pub status: String,
    /// The tail of its stderr, or what went wrong around it.
    pub detail: String,
}

/// A scheduled run whose child left no record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LostRun {
    pub slot: Slot,
    pub failure: ChildFailure,
    /// When it happened, `YYYYMMDDTHHMMSSZ`.
    pub at_utc: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_the_serialized_names_prefixed() {
        for kind in [
            ChildFailureKind::NotStarted,
            ChildFailureKind::Crashed,
            ChildFailureKind::ExitedWithError,
            ChildFailureKind::UnreadableRecord,
            ChildFailureKind::Interrupted,
        ] {
            let serialized = serde_json::to_value(kind).unwrap();
            assert_eq!(
                kind.name(),
                format!("child_{}", serialized.as_str().unwrap())
            );
        }
    }

    #[test]
    fn failure_message_names_backend_status_and_detail() {
        let f = ChildFailure {
            kind: ChildFailureKind::Crashed,
            backend: BackendId::new("async-std"),
            status: "signal 9".into(),
            detail: "killed".into(),
        };
        assert_eq!(
            f.to_string(),
            "the async-std child process failed (signal 9): killed"
        );
    }
}
