//! The JSON Schema of `manifest.json` (`schema/manifest.schema.json`) is generated from the
//! Rust types and checked in. This test fails when the checked-in file is out of date.
//!
//! Regenerate: `UPDATE_SCHEMA=1 cargo test -p chimeraforge-results --test schema`

use chimeraforge_results::Manifest;
use std::path::PathBuf;

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schema/manifest.schema.json")
}

fn generated() -> String {
    let schema = schemars::schema_for!(Manifest);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}

#[test]
fn checked_in_manifest_schema_is_up_to_date() {
    let path = schema_path();
    let want = generated();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &want).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date with the Rust manifest types.\n  hint: UPDATE_SCHEMA=1 cargo test -p chimeraforge-results --test schema",
        path.display()
    );
}

#[test]
fn schema_names_every_top_level_field() {
    let v: serde_json::Value = serde_json::from_str(&generated()).unwrap();
    let text = v.to_string();
    for field in [
        "schema_version",
        "config_text",
        "backends",
        "order",
        "sessions",
        "lost_runs",
        "finished_utc",
        "interrupted_by",
    ] {
        assert!(
            text.contains(&format!("\"{field}\"")),
            "schema lacks {field}"
        );
    }
}
