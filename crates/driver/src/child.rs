//! The measured child process: one run of one cell on one backend, JSON in and out.
//! Progress drawing, file writing and the simulator all live in the parent.
//! `run_job::<B>` is compiled once per backend in the table ([`crate::backends`]).

use crate::backends::{self, WithBackend};
use anyhow::{bail, Context};
use chimeraforge_core::protocol::{execute_run_observed, PhaseObserver, RunPlan};
use chimeraforge_core::record::{
    ClientCost, Phase, PhaseCost, PhaseRecord, RunRecord, SCHEMA_VERSION,
};
use chimeraforge_core::workload::Scenario;
use chimeraforge_core::{AsyncRuntime, Backend, BackendError, BackendId, ClientOptions};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

/// What a child process is asked to run: one run of one cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildJob {
    pub backend: BackendId,
    pub model: String,
    pub scenario: Scenario,
    pub client: ClientOptions,
    pub plan: RunPlan,
}

/// Read a [`ChildJob`] from stdin, run it, write the [`RunRecord`] to stdout.
pub fn main() -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the job from stdin")?;
    let job: ChildJob = serde_json::from_str(&input).context("parsing the job")?;
    // The keys of the run's endpoints, checked, and redacted from the record and from any
    // error this process prints (a server may echo the Authorization header).
    let endpoints: Vec<_> = job.plan.agents.iter().map(|a| a.endpoint.clone()).collect();
    crate::secrets::install(&endpoints)?;
    raise_open_files_limit();
    // The floor is `overhead`'s reference client, run only on its probes (no backend list has it).
    let record = match backends::with_compiled(&job.backend, RunJob(&job)) {
        Some(record) => record,
        None if job.backend == crate::overhead::floor::NAME => crate::overhead::floor::run(&job),
        None => bail!("backend {:?} is not in this build", job.backend.as_str()),
    };
    let mut record = record?;
    // Totals at the very end (after the run's teardown); per-phase costs come from the run.
    let phases = record.client.take().map(|c| c.phases).unwrap_or_default();
    record.client = Some(ClientCost {
        phases,
        ..client_cost()
    });
    let mut record = serde_json::to_value(&record)?;
    crate::secrets::scrub_json(&mut record);
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &record)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// The child's work on the backend the job names: [`run_job`] with its type.
struct RunJob<'a>(&'a ChildJob);

impl WithBackend for RunJob<'_> {
    type Output = Result<RunRecord, BackendError>;
    fn with<B: Backend>(self) -> Self::Output {
        run_job::<B>(self.0)
    }
}

/// Run one job on backend `B`: build its runtime and client, run the protocol, record it.
pub fn run_job<B: Backend>(job: &ChildJob) -> Result<RunRecord, BackendError> {
    let (rt, client) = B::build(&job.client)?;
    // Keys are read from the environment here, checked (no header injection) and handed to
    // the calls; never recorded (the child redacts its record, see `crate::secrets`).
    let endpoints: Vec<_> = job.plan.agents.iter().map(|a| a.endpoint.clone()).collect();
    let keys = crate::secrets::read_keys(&endpoints).map_err(|e| BackendError {
        backend: B::NAME,
        reason: e.to_string(),
    })?;
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let live = crate::live::LiveCounters::new(job.plan.agents.len());
    let ids = job.plan.agents.iter().map(|a| a.id.clone()).collect();
    let sampler = crate::live::Sampler::start_if_requested(&live, ids);
    let mut costs = CostObserver {
        live: sampler.is_some().then_some(live),
        ..CostObserver::default()
    };
    let outcome = rt.block_on(execute_run_observed(
        Arc::clone(&rt),
        client,
        &job.plan,
        &keys,
        &mut costs,
    ));
    drop(sampler);
    for cost in &mut costs.phases {
        cost.output_tokens = match cost.phase {
            Phase::Warmup => outcome.warmup.iter().map(call_tokens).sum(),
            Phase::Sequential => phase_tokens(outcome.sequential.as_ref()),
            Phase::Concurrent => phase_tokens(outcome.concurrent.as_ref()),
        };
    }
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
        client: Some(ClientCost {
            phases: costs.phases,
            ..client_cost()
        }),
        run_tag: job.plan.run_tag.clone(),
        prompt_nonce: job.plan.prompt_nonce.clone(),
        connection: Some(job.client.connection),
    })
}

/// Output tokens of a call: the server's count, else the text events the client decoded.
fn call_tokens(c: &chimeraforge_core::call::CallRecord) -> u64 {
    c.output_tokens.map_or(c.text_events, |t| t.value)
}

fn phase_tokens(p: Option<&PhaseRecord>) -> u64 {
    p.map_or(0, |p| {
        p.agents
            .iter()
            .flat_map(|a| &a.calls)
            .map(call_tokens)
            .sum()
    })
}

/// CPU, memory and context switches of this process so far (getrusage).
pub(crate) fn client_cost() -> ClientCost {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return ClientCost::default();
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    ClientCost {
        user_cpu_s: secs(ru.ru_utime),
        system_cpu_s: secs(ru.ru_stime),
        peak_rss_kib: peak_rss_since_exec_kib().unwrap_or(ru.ru_maxrss as u64),
        voluntary_ctx_switches: ru.ru_nvcsw as u64,
        involuntary_ctx_switches: ru.ru_nivcsw as u64,
        phases: Vec::new(),
    }
}

/// High-water mark of resident memory of this program image (`VmHWM`), KiB.
///
/// Not `ru_maxrss`: Linux keeps that across `execve`, so a child forked from a large
/// parent starts with the parent's peak and small differences between runs vanish.
fn peak_rss_since_exec_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Raise the soft limit on open files to the hard limit: 1,024 agents need 1,024 sockets,
/// and the usual soft limit is exactly 1,024. Best effort; a failure leaves the limit as is.
pub fn raise_open_files_limit() {
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Samples this process's getrusage at every phase boundary (never inside a phase).
/// Also hands the calls their live-progress counters, when there are any.
#[derive(Default)]
pub(crate) struct CostObserver {
    open: Option<(Phase, ClientCost, Instant)>,
    pub phases: Vec<PhaseCost>,
    pub live: Option<std::sync::Arc<crate::live::LiveCounters>>,
}

impl PhaseObserver for CostObserver {
    fn live_tokens(&self, index: usize) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
        self.live.as_ref()?.tokens.get(index).cloned()
    }

    fn phase_starting(&mut self, phase: Phase) {
        if let Some(live) = &self.live {
            live.set_phase(phase);
        }
        let before = client_cost();
        self.open = Some((phase, before, Instant::now()));
    }

    fn phase_ended(&mut self, phase: Phase) {
        let end = Instant::now();
        let after = client_cost();
        let Some((started, before, start)) = self.open.take() else {
            return;
        };
        if started != phase {
            return;
        }
        self.phases.push(PhaseCost {
            phase,
            wall_s: end.duration_since(start).as_secs_f64(),
            user_cpu_s: (after.user_cpu_s - before.user_cpu_s).max(0.0),
            system_cpu_s: (after.system_cpu_s - before.system_cpu_s).max(0.0),
            peak_rss_kib: after.peak_rss_kib,
            voluntary_ctx_switches: after
                .voluntary_ctx_switches
                .saturating_sub(before.voluntary_ctx_switches),
            involuntary_ctx_switches: after
                .involuntary_ctx_switches
                .saturating_sub(before.involuntary_ctx_switches),
            output_tokens: 0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observer_records_one_cost_per_phase() {
        let mut o = CostObserver::default();
        o.phase_starting(Phase::Sequential);
        let mut x = 0u64;
        for i in 0..200_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        o.phase_ended(Phase::Sequential);
        o.phase_ended(Phase::Concurrent); // no matching start: ignored
        assert_eq!(o.phases.len(), 1);
        let p = &o.phases[0];
        assert_eq!(p.phase, Phase::Sequential);
        assert!(p.wall_s >= 0.0 && p.cpu_s() >= 0.0 && p.peak_rss_kib > 0);
    }
}
