//! Reading a results directory: the typed model of `chimeraforge-results`, shared with the
//! driver that writes it.

pub use chimeraforge_results::{
    parse_runs, read_manifest, read_results, read_runs, Cell, ChildFailure, ChildFailureKind,
    LostRun, Manifest, Results, Slot, MANIFEST, RUNS,
};
