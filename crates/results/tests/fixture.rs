//! A results directory written by the driver before the results model was typed
//! (`data/v1-quickstart`: the quickstart, two backends, one run, resumed once) still reads,
//! and the typed manifest writes back exactly the bytes the driver wrote.

use chimeraforge_core::workload::{PromptCache, Scenario};
use chimeraforge_results::{read_results, Manifest, Slot, MANIFEST};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1-quickstart")
}

#[test]
fn v1_quickstart_reads() {
    let r = read_results(&fixture()).unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.records.len(), 4);
    let m = &r.manifest;
    assert_eq!(m.schema_version, 1);
    assert_eq!(m.backends, ["tokio-default", "smol-1kb"]);
    assert_eq!(m.config_name(), Some("quickstart"));
    assert_eq!(m.config_runs(), Some(1));
    assert_eq!(m.default_agents(), 2);
    assert_eq!(
        m.config_scenarios(),
        ["baseline-vs-chimera", "chimera-homo"]
    );
    assert_eq!(m.prompt_cache, Some(PromptCache::Isolate));
    let order = m.order.as_ref().unwrap();
    assert_eq!(order.len(), 4);
    assert_eq!(order[0].cell.scenario, Scenario::BaselineVsChimera);
    // Every scheduled slot is filled by exactly one record.
    let mut filled: Vec<Slot> = r.records.iter().map(Slot::of).collect();
    let mut want = order.clone();
    filled.sort();
    want.sort();
    assert_eq!(filled, want);
    assert_eq!(m.sessions.len(), 2);
    assert!(m.sessions[1].resumed && m.sessions[1].servers.is_some());
    assert_eq!(m.sessions[1].end.as_ref().unwrap().runs_attempted, 0);
    let outcome = m.outcome.as_ref().unwrap();
    assert!(outcome.complete && !outcome.interrupted);
    assert_eq!((outcome.runs_recorded, outcome.runs_missing), (4, 0));
    assert!(m.lost_runs.is_empty());
    assert_eq!(m.host.as_ref().unwrap().os, "linux");
}

#[test]
fn v1_manifest_writes_back_byte_for_byte() {
    let bytes = std::fs::read(fixture().join(MANIFEST)).unwrap();
    let m: Manifest = serde_json::from_slice(&bytes).unwrap();
    // As the driver writes it: through a JSON value (sorted keys), pretty.
    let again = serde_json::to_vec_pretty(&serde_json::to_value(&m).unwrap()).unwrap();
    assert!(
        again == bytes,
        "the typed manifest changed what the driver wrote:\n{}",
        String::from_utf8_lossy(&again)
    );
}

#[test]
fn a_manifest_of_the_first_session_in_flight_reads() {
    // Written at the start of a bench that was then killed: no end, no outcome.
    let m: Manifest = serde_json::from_value(serde_json::json!({
        "schema_version": 1,
        "sessions": [{"started_utc": "20260101T000000Z", "resumed": false, "prompt_nonce": null}],
        "lost_runs": [],
    }))
    .unwrap();
    assert!(m.outcome.is_none());
    assert!(m.sessions[0].end.is_none());
    assert!(m.order.is_none());
}
