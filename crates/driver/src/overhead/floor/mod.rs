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

use crate::child::ChildJob;
use chimeraforge_core::record::RunRecord;
use chimeraforge_core::{Backend, BackendError, Built, ClientOptions};
use std::sync::Arc;

pub use client::{FloorBody, FloorClient};
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
        Ok((Arc::new(ThreadPerTask), Arc::new(FloorClient::new(opts))))
    }
}

/// Run one job on the floor (the child's entry for [`NAME`]).
pub fn run(job: &ChildJob) -> Result<RunRecord, BackendError> {
    crate::child::run_job::<Floor>(job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overhead::probe::{self, Probe, ProbeKind};

    /// A small probe on the floor against the simulator, in this process: every call of
    /// every phase recorded with a TTFT, under the floor's name, as a backend's would be.
    #[test]
    fn the_floor_runs_a_probe_against_the_simulator() {
        let mut cfg = chimeraforge_sim::SimConfig::profile("fixed").unwrap();
        cfg.worker_threads = 2;
        let sim = chimeraforge_sim::SimServer::start(cfg, chimeraforge_sim::loopback(0)).unwrap();
        let p = Probe {
            kind: ProbeKind::Ideal,
            agents: 4,
            calls: 2,
            num_predict: 3,
            runs: 1,
        };
        let record = run(&probe::job(NAME, &p, &sim.base_url(), 0)).unwrap();
        sim.shutdown();
        assert!(record.is_ok(), "{:?}", record.status);
        assert_eq!(record.backend, NAME);
        assert!(record.runtime.scheduler.contains("thread per task"));
        for phase in [&record.sequential, &record.concurrent] {
            let phase = phase.as_ref().expect("both phases ran");
            assert_eq!(phase.agents.len(), 4);
            for call in phase.agents.iter().flat_map(|a| &a.calls) {
                assert!(call.error.is_none(), "{:?}", call.error);
                assert!(call.ttft_ms.is_some_and(|t| t >= 50.0), "{call:?}");
                assert_eq!(call.text_events, 3);
            }
        }
        assert!(record.metrics.is_some());
        let client = record.client.expect("client cost");
        assert!(client
            .phases
            .iter()
            .any(|p| p.phase == chimeraforge_core::record::Phase::Concurrent));
    }
}
