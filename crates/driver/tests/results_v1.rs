//! A results directory written before the results model was typed
//! (`crates/results/tests/data/v1-quickstart`) resumes on today's binary: the missing slot
//! runs, earlier lines and manifest fields stay as they were, and a session is added.

use chimeraforge::results::{read_manifest, read_runs, Slot, MANIFEST, RUNS};
use std::path::Path;
use std::process::Command;

#[test]
fn a_v1_directory_resumes() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/tests/data/v1-quickstart");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v1");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(fixture.join(MANIFEST), dir.join(MANIFEST)).unwrap();
    // Drop the last record: its slot is what the resume must run.
    let runs = std::fs::read_to_string(fixture.join(RUNS)).unwrap();
    let kept: Vec<&str> = runs.lines().take(3).collect();
    let kept_text = kept.join("\n") + "\n";
    std::fs::write(dir.join(RUNS), &kept_text).unwrap();
    let before = read_manifest(&dir).unwrap();
    let dropped = Slot::of(&serde_json::from_str(runs.lines().nth(3).unwrap()).unwrap());

    let out = Command::new(env!("CARGO_BIN_EXE_chimeraforge"))
        .current_dir(tmp.path())
        .args(["bench", "--quiet", "--resume"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("resuming: 3 of 4 runs recorded, 1 to run"),
        "{text}"
    );

    let after_runs = std::fs::read_to_string(dir.join(RUNS)).unwrap();
    assert!(
        after_runs.starts_with(&kept_text),
        "records are only appended"
    );
    let (records, warnings) = read_runs(&dir).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(records.len(), 4);
    assert_eq!(Slot::of(&records[3]), dropped);

    let after = read_manifest(&dir).unwrap();
    assert_eq!(after.config_text, before.config_text);
    assert_eq!(after.order, before.order);
    assert_eq!(after.tool, before.tool);
    assert_eq!(after.host, before.host);
    assert_eq!(after.sessions[..2], before.sessions[..]);
    assert_eq!(after.sessions.len(), 3);
    let session = &after.sessions[2];
    assert!(session.resumed && session.prompt_nonce.is_some());
    assert_eq!(session.end.as_ref().unwrap().runs_attempted, 1);
    let outcome = after.outcome.unwrap();
    assert!(outcome.complete);
    assert_eq!((outcome.runs_recorded, outcome.runs_missing), (4, 0));
}
