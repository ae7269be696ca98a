//! The floor: the simplest correct client for this protocol, to measure the backends
//! against. One OS thread per agent ([`runtime::ThreadPerTask`]), blocking `std::net`
//! sockets with a hand-rolled HTTP/1.1 request and the parent's sans-IO response parser
//! ([`client::FloorClient`]), the same codecs and the same run protocol as every backend.
//!
//! It is not a backend users pick: `overhead` runs it on every probe beside the backends,
//! and the child accepts its name ([`NAME`]) only because `bench` and `--backends` never
//! send it (it is in no backend list).

pub mod client;
pub mod runtime;

use crate::backends::ChildJob;
use chimeraforge_core::record::RunRecord;
use chimeraforge_core::{Backend, BackendError, Built, ClientOptions};
use std::sync::Arc;

pub use client::{Connection, FloorBody, FloorClient};
pub use runtime::ThreadPerTask;

/// The floor's name in runs and tables.
pub const NAME: &str = "floor";

/// The floor as a [`Backend`], so the generic run protocol runs it unchanged.
pub struct Floor;

impl Backend for Floor {
    type Runtime = ThreadPerTask;
    type Client = FloorClient;

    const NAME: &'static str = NAME;

    fn build(opts: &ClientOptions) -> Result<Built<Self>, BackendError> {
        // Every backend opens a new connection per call today; the floor does the same.
        Ok((
            Arc::new(ThreadPerTask),
            Arc::new(FloorClient::new(opts, Connection::Fresh)),
        ))
    }
}

/// Run one job on the floor (the child's entry for [`NAME`]).
pub fn run(job: &ChildJob) -> Result<RunRecord, BackendError> {
    crate::backends::run_job::<Floor>(job)
}
