//! The backends this binary contains: one monomorphized entry point per enabled feature.
//! No trait objects on the measured path: `run_job::<B>` is compiled once per backend.

use crate::child::CostObserver;
use chimeraforge_core::protocol::{execute_run_observed, RunPlan};
use chimeraforge_core::record::{ClientCost, Phase, PhaseRecord, RunRecord, SCHEMA_VERSION};
use chimeraforge_core::workload::Scenario;
use chimeraforge_core::{AsyncRuntime, Backend, BackendError, ClientOptions};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Every backend chimeraforge knows, whether or not this build contains it. The last two
/// are external (see [`EXTERNAL_NAMES`]): run by the Python environment, not compiled in.
pub const ALL_NAMES: [&str; 6] = [
    "tokio-default",
    "tokio-localset",
    "smol-1kb",
    "async-std",
    "python-asyncio",
    "python-uvloop",
];

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
    let mut costs = CostObserver::default();
    costs.live = sampler.is_some().then_some(live);
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
            ..crate::child::client_cost()
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

// ---- External backends: a child that is not this binary ------------------------------------

/// Backends run by another program with the same ChildJob on stdin and the same RunRecord
/// line on stdout: the Python ones (`python/chimeraforge_py`, httpx on asyncio or uvloop).
pub const EXTERNAL_NAMES: [&str; 2] = ["python-asyncio", "python-uvloop"];

/// Installs the Python backends' environment (run from the repository root).
pub const PYTHON_INSTALL_COMMAND: &str = "scripts/python-env.sh";

/// Environment variable naming the Python venv (default: `.venv-py` in the repository).
pub const PYTHON_VENV_ENV: &str = "CHIMERAFORGE_PY_VENV";

/// Whether `name` is an external (non-compiled) backend.
pub fn is_external(name: &str) -> bool {
    EXTERNAL_NAMES.contains(&name)
}

/// The Python venv: `$CHIMERAFORGE_PY_VENV`, else `.venv-py` in the current directory or
/// its nearest ancestor that has one, else `.venv-py` in the source tree this binary was
/// built from.
pub fn python_venv() -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(v) = std::env::var_os(PYTHON_VENV_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(v);
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let v = dir.join(".venv-py");
            if v.join("bin/python").exists() {
                return v;
            }
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-py")
}

/// The interpreter that runs external backend `name`, or why it cannot run here.
pub fn external_python(name: &str) -> Result<std::path::PathBuf, String> {
    let venv = python_venv();
    let python = venv.join("bin/python");
    let installed = python.exists() && venv.join(".chimeraforge-requirements").exists();
    if !installed {
        return Err(format!(
            "backend {name:?} needs the Python environment at {}, which is not installed\n  hint: run `{PYTHON_INSTALL_COMMAND}` in the repository root (or set {PYTHON_VENV_ENV} to an installed venv)",
            venv.display()
        ));
    }
    if name == "python-uvloop" && !python_has_module(&venv, "uvloop") {
        return Err(format!(
            "backend \"python-uvloop\" is unavailable: uvloop is not installed in {}\n  hint: run `{PYTHON_INSTALL_COMMAND}`",
            venv.display()
        ));
    }
    Ok(python)
}

/// Whether `venv`'s site-packages holds package `module` (no interpreter started).
fn python_has_module(venv: &std::path::Path, module: &str) -> bool {
    let Ok(libs) = std::fs::read_dir(venv.join("lib")) else {
        return false;
    };
    libs.flatten().any(|d| {
        d.path()
            .join("site-packages")
            .join(module)
            .join("__init__.py")
            .exists()
    })
}

/// External backends that can run on this machine.
pub fn external_available() -> Vec<&'static str> {
    EXTERNAL_NAMES
        .into_iter()
        .filter(|n| external_python(n).is_ok())
        .collect()
}

/// What `--backends all` selects: the compiled backends, then the installed external ones.
pub fn selectable_names() -> Vec<&'static str> {
    let mut v = compiled_names();
    v.extend(external_available());
    v
}

/// `chimeraforge backends`: one line per backend; an external one that cannot run says why.
pub fn listing() -> Vec<String> {
    let mut lines: Vec<String> = compiled_names().iter().map(|s| s.to_string()).collect();
    for name in EXTERNAL_NAMES {
        match external_python(name) {
            Ok(_) => lines.push(name.to_owned()),
            Err(why) => lines.push(format!(
                "{name}  (not installed: {}; run `{PYTHON_INSTALL_COMMAND}`)",
                why.lines().next().unwrap_or_default()
            )),
        }
    }
    lines
}

/// The child command of external backend `name` (`VENV/bin/python -m chimeraforge_py child
/// --backend NAME`); `None` for a compiled backend, whose child is this binary.
pub fn external_command(name: &str) -> Option<Result<std::process::Command, String>> {
    if !is_external(name) {
        return None;
    }
    Some(external_python(name).map(|python| {
        let mut cmd = std::process::Command::new(python);
        cmd.args(["-m", "chimeraforge_py", "child", "--backend", name]);
        cmd
    }))
}
