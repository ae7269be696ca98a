//! The matrix's cells (backend × model × scenario × agents) and its run order, as the
//! manifest's `order` records it.

use chimeraforge_core::record::RunRecord;
use chimeraforge_core::workload::Scenario;
use chimeraforge_core::BackendId;
use serde::{Deserialize, Serialize};

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Cell {
    pub backend: BackendId,
    pub model: String,
    pub scenario: Scenario,
    /// Number of agents (part of the cell: a `[scaling]` sweep runs each cell at several).
    /// Absent in orders written before scaling existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<usize>,
}

/// One scheduled run: a cell and the run's index within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Slot {
    pub cell: Cell,
    pub run_index: u32,
}

impl Slot {
    /// The slot a record fills.
    pub fn of(r: &RunRecord) -> Slot {
        Slot {
            cell: Cell {
                backend: BackendId::new(r.backend.clone()),
                model: r.model.clone(),
                scenario: r.scenario,
                agents: Some(r.agents.len()),
            },
            run_index: r.run_index,
        }
    }
}

impl Cell {
    /// Agents per run, `default` for an order written before scaling existed.
    pub fn agents_or(&self, default: usize) -> usize {
        self.agents.unwrap_or(default)
    }
}
