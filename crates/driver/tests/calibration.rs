//! Calibration: the harness, through the real HTTP path of every backend, against the
//! simulator whose timing is known. One generic body per check, instantiated per backend.

mod common;

use chimeraforge::child::run_job;
use chimeraforge_core::api::ApiKind;
use chimeraforge_core::record::RunRecord;
use chimeraforge_core::Backend;
use chimeraforge_sim::{Device, SimConfig, SimHandle};
use common::{homo_job, start};

/// Two seed agents on `servers`, chimera-homo, fixed output length, one run on `B`.
fn run<B: Backend>(servers: &[&SimHandle], run_index: u32) -> RunRecord {
    let job = homo_job(B::NAME, servers, run_index, ApiKind::Ollama);
    let record = run_job::<B>(&job).expect("backend builds");
    assert!(record.is_ok(), "run failed: {:?}", record.status);
    record
}

/// Ideal device: two agents on separate servers overlap completely: speedup 2 ± 0.05.
pub fn ideal<B: Backend>() {
    let (a, b) = (start(Device::Ideal), start(Device::Ideal));
    for run_index in 0..2 {
        let r = run::<B>(&[&a, &b], run_index);
        let m = r.metrics.unwrap();
        eprintln!(
            "{} ideal (run {run_index}): speedup {:.4}",
            B::NAME,
            m.speedup.value
        );
        assert!(
            (m.speedup.value - 2.0).abs() <= 0.05,
            "{}: ideal speedup {} (run {run_index})",
            B::NAME,
            m.speedup.value
        );
    }
}

/// Serial device shared by both agents: no overlap is possible: measured speedup 1 ± 0.05,
/// while the report's formula still reads far above 1 (its flaw).
pub fn serial<B: Backend>() {
    let s = start(Device::Serial);
    let r = run::<B>(&[&s], 0);
    let m = r.metrics.unwrap();
    eprintln!("{} serial: speedup {:.4}", B::NAME, m.speedup.value);
    assert!(
        (m.speedup.value - 1.0).abs() <= 0.05,
        "{}: serial speedup {}",
        B::NAME,
        m.speedup.value
    );
    assert!(
        m.estimated_speedup.value > 1.5,
        "{}: the seed formula should read high on a serial device, got {}",
        B::NAME,
        m.estimated_speedup.value
    );
    assert!(m.flags.low_speedup);
}

/// Shared device with capacity equal to one stream's rate: two concurrent streams each get
/// half, so each agent's decode slows 2x (within 5%).
pub fn shared<B: Backend>() {
    let solo = SimConfig::profile("fixed").unwrap().models[0].decode_tok_s;
    let s = start(Device::Shared {
        capacity_tok_s: solo,
    });
    let r = run::<B>(&[&s], 0);
    let m = r.metrics.unwrap();
    for a in &m.per_agent {
        let alone = a.alone_decode_tok_s.unwrap();
        let conc = a.concurrent_decode_tok_s.unwrap();
        let ratio = alone / conc;
        assert!(
            (ratio - 2.0).abs() <= 0.1,
            "{}: agent {} decode slowdown {ratio} (alone {alone} tok/s, concurrent {conc} tok/s)",
            B::NAME,
            a.agent_id
        );
    }
    assert!(
        m.estimated_speedup.value > m.speedup.value,
        "{}: shared device: seed formula {} should exceed measured {}",
        B::NAME,
        m.estimated_speedup.value,
        m.speedup.value
    );
}

macro_rules! calibrate {
    ($modname:ident, $backend:ty) => {
        mod $modname {
            #[test]
            fn ideal_device_measures_two() {
                super::ideal::<$backend>();
            }
            #[test]
            fn serial_device_measures_one() {
                super::serial::<$backend>();
            }
            #[test]
            fn shared_device_halves_decode() {
                super::shared::<$backend>();
            }
        }
    };
}

#[cfg(feature = "tokio-default")]
calibrate!(tokio_default, chimeraforge_backend_tokio::TokioDefault);
#[cfg(feature = "tokio-localset")]
calibrate!(tokio_localset, chimeraforge_backend_tokio::TokioLocalSet);
#[cfg(feature = "smol-1kb")]
calibrate!(smol_1kb, chimeraforge_backend_smol::Smol1Kb);
#[cfg(feature = "async-std")]
calibrate!(async_std, chimeraforge_backend_async_std::AsyncStd);
