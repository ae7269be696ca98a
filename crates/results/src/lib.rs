//! The results directory of a chimeraforge bench, as types: what the driver writes and the
//! report reads.
//!
//! - [`manifest`]: `manifest.json`, the matrix and how its sessions went ([`Manifest`]).
//! - [`schedule`]: the matrix's cells and its run order ([`Cell`], [`Slot`]).
//! - [`failure`]: runs whose child process left no record ([`ChildFailure`], [`LostRun`]).
//! - [`dir`]: the directory on disk: create, append and sync, reopen, read.

pub mod dir;
pub mod failure;
pub mod manifest;
pub mod schedule;

use std::path::PathBuf;

pub use dir::{
    parse_runs, read_manifest, read_results, read_runs, utc_stamp, write_atomic, Redact, Reopened,
    Results, ResultsDir, MANIFEST, RUNS,
};
pub use failure::{ChildFailure, ChildFailureKind, LostRun};
pub use manifest::{Host, Manifest, Outcome, Session, SessionEnd, Tool, SCHEMA_VERSION};
pub use schedule::{Cell, Slot};

/// Why a results directory could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// The directory has no `manifest.json`.
    #[error(
        "{} is not a chimeraforge results directory: {} is missing (pass a directory written by `chimeraforge bench`)",
        dir.display(),
        manifest.display()
    )]
    NotResultsDir { dir: PathBuf, manifest: PathBuf },
    /// `manifest.json` is not a manifest.
    #[error("cannot parse {}: {source}", path.display())]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// `manifest.json` was written by a newer chimeraforge.
    #[error(
        "{} has manifest schema version {found}; this chimeraforge reads version {supported} and older\n  hint: read it with the chimeraforge that wrote it (its tool.version) or a newer one",
        path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u64,
        supported: u32,
    },
    /// A new results directory would overwrite runs.
    #[error(
        "{} already holds runs\n  hint: pick another --out directory (results are never overwritten)",
        dir.display()
    )]
    AlreadyHoldsRuns { dir: PathBuf },
    /// A directory could not be created.
    #[error("cannot create results directory {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A record or the manifest could not be serialized.
    #[error("cannot serialize for {}: {source}", path.display())]
    Serialize {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}
