//! Failed runs of a matrix, counted per cell and per cause: recorded runs whose status is
//! `failed` (typed by the call error's kind) and children that left no record at all.

use chimeraforge_core::record::{RunRecord, RunStatus};
use chimeraforge_results::{Cell, LostRun, Slot};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Failure counts of a matrix.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Failures {
    /// Runs looked at: recorded runs plus runs with no record.
    pub runs: usize,
    pub failed: usize,
    pub by_cell: BTreeMap<Cell, BTreeMap<String, usize>>,
    pub by_kind: BTreeMap<String, usize>,
}

/// The cause of a failed record, e.g. `first_byte_timeout`; `None` for a run that worked.
pub fn record_cause(r: &RunRecord) -> Option<String> {
    match &r.status {
        RunStatus::Ok => None,
        RunStatus::Failed { error, .. } => Some(
            serde_json::to_value(error.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{:?}", error.kind)),
        ),
    }
}

/// Count the failures among `records` and `lost` runs.
pub fn count(records: &[RunRecord], lost: &[LostRun]) -> Failures {
    let mut f = Failures {
        runs: records.len() + lost.len(),
        ..Failures::default()
    };
    let causes = records
        .iter()
        .filter_map(|r| Some((Slot::of(r).cell, record_cause(r)?)))
        .chain(
            lost.iter()
                .map(|l| (l.slot.cell.clone(), l.failure.kind.name().to_owned())),
        );
    for (cell, cause) in causes {
        f.failed += 1;
        *f.by_kind.entry(cause.clone()).or_default() += 1;
        *f.by_cell.entry(cell).or_default().entry(cause).or_default() += 1;
    }
    f
}

impl Failures {
    /// The terminal's Failures section (empty when nothing failed).
    pub fn render(&self) -> String {
        if self.failed == 0 {
            return String::new();
        }
        let mut s = format!("Failures: {} of {} runs\n", self.failed, self.runs);
        s.push_str("  by cell:\n");
        for (cell, kinds) in &self.by_cell {
            let n: usize = kinds.values().sum();
            let detail: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let _ = writeln!(
                s,
                "    {:<14} {:<24} {:<19} {n:>4}  ({})",
                cell.backend,
                cell.model,
                cell.scenario.name(),
                detail.join(", ")
            );
        }
        s.push_str("  by kind:\n");
        for (kind, n) in &self.by_kind {
            let _ = writeln!(s, "    {kind:<28} {n:>4}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chimeraforge_core::workload::Scenario;
    use chimeraforge_results::{ChildFailure, ChildFailureKind};

    fn lost(backend: &str, kind: ChildFailureKind) -> LostRun {
        LostRun {
            slot: Slot {
                cell: Cell {
                    backend: backend.into(),
                    model: "m".into(),
                    scenario: Scenario::ChimeraHomo,
                    agents: None,
                },
                run_index: 0,
            },
            failure: ChildFailure {
                kind,
                backend: backend.into(),
                status: "signal: 9 (SIGKILL)".into(),
                detail: String::new(),
            },
            at_utc: "19700101T000000Z".into(),
        }
    }

    #[test]
    fn lost_runs_are_counted_per_cell_and_kind() {
        let f = count(
            &[],
            &[
                lost("a", ChildFailureKind::Crashed),
                lost("a", ChildFailureKind::Crashed),
                lost("b", ChildFailureKind::ExitedWithError),
            ],
        );
        assert_eq!((f.runs, f.failed), (3, 3));
        assert_eq!(f.by_kind["child_crashed"], 2);
        assert_eq!(f.by_cell.len(), 2);
        let text = f.render();
        assert!(text.contains("Failures: 3 of 3 runs"), "{text}");
        assert!(text.contains("child_exited_with_error"), "{text}");
        assert!(count(&[], &[]).render().is_empty());
    }
}
