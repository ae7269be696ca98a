//! Statistics and reports over chimeraforge run records.

pub mod stats;
