//! Write a synthetic results directory (4 backends × 3 models × 2 scenarios, with a failed
//! run, a missing run, a partial last line and a hostile output preview) to look at:
//! `cargo run -p chimeraforge-report --example synthetic -- DIR [RUNS_PER_CELL]`.

#[path = "../tests/common/mod.rs"]
mod common;

use chimeraforge_core::call::CallErrorKind;
use std::path::PathBuf;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: synthetic DIR [RUNS_PER_CELL]"));
    let runs: u32 = args
        .next()
        .and_then(|s| s.to_str()?.parse().ok())
        .unwrap_or(5);
    let specs = common::matrix(runs);
    let mut records = common::records(&specs);
    // The last cell: one run failed, one never written.
    let last = specs.last().unwrap().0.clone();
    records.retain(|r| {
        !(r.backend == last.backend
            && r.model == last.model
            && r.scenario == last.scenario
            && r.run_index >= runs - 2)
    });
    records.push(common::failed_run(
        &last,
        runs - 2,
        CallErrorKind::IdleTimeout,
        "stream stalled: idle timeout, \"30 s\"",
    ));
    let manifest = common::manifest(&specs, &[(&last, runs - 1, "crashed", "killed")]);
    common::write_dir(&dir, &manifest, &records, "{\"schema_version\":1,\"backe");
    println!("wrote {} records to {}", records.len(), dir.display());
}
