//! The backends this binary contains: one monomorphized entry point per enabled feature.
//! No trait objects on the measured path: `run_job::<B>` is compiled once per backend.

use chimeraforge_core::protocol::{execute_run, RunPlan};
use chimeraforge_core::record::{RunRecord, SCHEMA_VERSION};
use chimeraforge_core::workload::Scenario;
use chimeraforge_core::{AsyncRuntime, Backend, BackendError, ClientOptions};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Every backend chimeraforge knows, whether or not this build contains it.
pub const ALL_NAMES: [&str; 4] = ["tokio-default", "tokio-localset", "smol-1kb", "async-std"];

/// What a child process is asked to run: one run of one cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildJob {
    pub backend: String,
    pub model: String,
    pub scenario: Scenario,
    pub client: ClientOptions,
    pub plan: RunPlan,
}

/// A backend compiled into this binary.
pub struct BackendEntry {
    pub name: &'static str,
    pub run: fn(&ChildJob) -> Result<RunRecord, BackendError>,
}

#[cfg_attr(
    not(any(
        feature = "tokio-default",
        feature = "tokio-localset",
        feature = "smol-1kb",
        feature = "async-std"
    )),
    allow(dead_code)
)]
fn entry<B: Backend>() -> BackendEntry {
    BackendEntry {
        name: B::NAME,
        run: run_job::<B>,
    }
}

/// The backends in this build, in the canonical order.
#[allow(clippy::vec_init_then_push)] // one push per enabled feature
pub fn compiled() -> Vec<BackendEntry> {
    #[allow(unused_mut)]
    let mut v = Vec::new();
    #[cfg(feature = "tokio-default")]
    v.push(entry::<chimeraforge_backend_tokio::TokioDefault>());
    #[cfg(feature = "tokio-localset")]
    v.push(entry::<chimeraforge_backend_tokio::TokioLocalSet>());
    #[cfg(feature = "smol-1kb")]
    v.push(entry::<chimeraforge_backend_smol::Smol1Kb>());
    #[cfg(feature = "async-std")]
    v.push(entry::<chimeraforge_backend_async_std::AsyncStd>());
    v
}

/// Names of the backends in this build.
pub fn compiled_names() -> Vec<&'static str> {
    compiled().iter().map(|b| b.name).collect()
}

/// Run one job on backend `B`: build its runtime and client, run the protocol, record it.
pub fn run_job<B: Backend>(job: &ChildJob) -> Result<RunRecord, BackendError> {
    let (rt, client) = B::build(&job.client)?;
    // Keys are read from the environment here and handed to the calls; never recorded.
    let keys: Vec<Option<String>> = job
        .plan
        .agents
        .iter()
        .map(|a| {
            a.endpoint
                .api_key_env
                .as_ref()
                .and_then(|var| std::env::var(var).ok())
        })
        .collect();
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let outcome = rt.block_on(execute_run(Arc::clone(&rt), client, &job.plan, &keys));
    Ok(RunRecord {
        schema_version: SCHEMA_VERSION,
        backend: B::NAME.to_owned(),
        model: job.model.clone(),
        scenario: job.scenario,
        run_index: job.plan.run_index,
        started_unix_ms,
        runtime: rt.describe(),
        phase_order: job.plan.phase_order,
        sequential_order: job.plan.sequential_order.clone(),
        agents: job.plan.agents.clone(),
        warmup: outcome.warmup,
        sequential: outcome.sequential,
        concurrent: outcome.concurrent,
        metrics: outcome.metrics,
        status: outcome.status,
        client: None,
    })
}
