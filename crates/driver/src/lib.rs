//! The `chimeraforge` driver as a library: config, the matrix, child processes, results.
//! The binary (`main.rs`) is a thin command line over these modules.

pub mod affinity;
pub mod backends;
pub mod child;
pub mod config;
pub mod doctor;
pub mod failures;
pub mod http1;
pub mod interrupt;
pub mod live;
pub mod matrix;
pub mod out;
pub mod overhead;
pub mod preflight;
pub mod progress;
pub mod python;
/// The results directory (manifest, order, lost runs; written and read): its own crate,
/// shared with the report.
pub use chimeraforge_results as results;
pub mod scaling;
pub mod secrets;
pub mod simulators;
pub mod spawn;
pub mod summary;
