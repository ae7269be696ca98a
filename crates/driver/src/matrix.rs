//! The matrix: cells (backend × model × scenario) × runs, in interleaved order, each run in
//! its own child process of this binary, all against the same servers.

use crate::child::ChildJob;
use crate::config::{Config, SIM_URL};
use chimeraforge_core::protocol::RunPlan;
use chimeraforge_core::record::RunRecord;
use chimeraforge_core::workload::{Agent, Endpoint, Scenario};
use chimeraforge_core::BackendId;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cell {
    pub backend: BackendId,
    pub model: String,
    pub scenario: Scenario,
    /// Number of agents (part of the cell: a `[scaling]` sweep runs each cell at several).
    /// Absent in orders written before scaling existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<usize>,
}

/// One scheduled run: a cell and the run's index within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slot {
    pub cell: Cell,
    pub run_index: u32,
}

/// The run order: round r holds run r of every cell (backends innermost), so machine drift
/// spreads over every backend instead of landing on whichever ran last. With a shuffle
/// seed, each round is shuffled (deterministically; the seed is recorded).
pub fn schedule(config: &Config, backends: &[BackendId]) -> Vec<Slot> {
    let mut order = Vec::new();
    let mut rng = config.shuffle_seed.map(SplitMix64);
    for run_index in 0..config.runs {
        let mut round = Vec::new();
        for model in &config.models {
            for &scenario in &config.scenarios {
                for count in config.agent_counts() {
                    let agents = Some(count.unwrap_or(config.agents.len()));
                    for backend in backends {
                        round.push(Slot {
                            cell: Cell {
                                backend: backend.clone(),
                                model: model.clone(),
                                scenario,
                                agents,
                            },
                            run_index,
                        });
                    }
                }
            }
        }
        if let Some(rng) = rng.as_mut() {
            for i in (1..round.len()).rev() {
                let j = (rng.next() % (i as u64 + 1)) as usize;
                round.swap(i, j);
            }
        }
        order.extend(round);
    }
    order
}

impl Slot {
    /// The slot a record fills.
    pub fn of(r: &RunRecord) -> Slot {
        Slot {
            cell: Cell {
                backend: BackendId::new(r.backend.clone()),
                model: r.model.clone(),
                scenario: r.scenario,
                agents: Some(r.agents.len()),
            },
            run_index: r.run_index,
        }
    }
}

/// A small deterministic RNG for the shuffle (same sequence on every platform).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The agents of a cell (`count`: a scaling sweep's agent count), with endpoints resolved
/// to real URLs.
pub fn agents_for(
    config: &Config,
    endpoints: &[Endpoint],
    model: &str,
    scenario: Scenario,
    count: Option<usize>,
) -> Vec<Agent> {
    config
        .templates_for(count.filter(|_| config.scaling.is_some()))
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut a = t.instantiate(model, scenario, i, &config.options);
            if let Some(ep) = endpoints.iter().find(|e| e.name == a.endpoint.name) {
                a.endpoint = ep.clone();
            }
            a
        })
        .collect()
}

/// The job for one slot. `nonce` (the invocation's, `None` with `prompt_cache = "allow"`)
/// leads the run tag, so no prompt of this invocation was sent by an earlier one.
pub fn job_for(
    config: &Config,
    endpoints: &[Endpoint],
    slot: &Slot,
    nonce: Option<&str>,
) -> ChildJob {
    let agents = agents_for(
        config,
        endpoints,
        &slot.cell.model,
        slot.cell.scenario,
        slot.cell.agents,
    );
    let mut plan = RunPlan::alternating(
        slot.run_index,
        agents,
        config.warmup_tokens,
        config.settings.clone(),
    );
    // Unique in the matrix, so a server's prompt cache never carries one run's prompts
    // (same agents, same seed) into another cell's; the run number first, so runs part early.
    plan.run_tag = format!(
        "run {} {} {} {}{}",
        slot.run_index + 1,
        slot.cell.backend,
        slot.cell.model,
        slot.cell.scenario.name(),
        slot.cell
            .agents
            .map(|n| format!(" x{n}"))
            .unwrap_or_default(),
    );
    // Unique per invocation: leads every tag (`prompt_cache = "isolate"`).
    plan.prompt_nonce = nonce.unwrap_or_default().to_owned();
    ChildJob {
        backend: slot.cell.backend.clone(),
        model: slot.cell.model.clone(),
        scenario: slot.cell.scenario,
        client: config.client.clone(),
        plan,
    }
}

/// Why a child produced no record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildFailureKind {
    /// The process could not be started.
    NotStarted,
    /// Killed by a signal (crash, OOM killer, `kill -9`).
    Crashed,
    /// Exited with a non-zero code (e.g. the backend could not be built).
    ExitedWithError,
    /// Exited 0 but its stdout was not a record.
    UnreadableRecord,
    /// Stopped by a second Ctrl-C or SIGTERM.
    Interrupted,
}

impl ChildFailureKind {
    /// The name used in failure summaries.
    pub fn name(self) -> &'static str {
        match self {
            ChildFailureKind::NotStarted => "child_not_started",
            ChildFailureKind::Crashed => "child_crashed",
            ChildFailureKind::ExitedWithError => "child_exited_with_error",
            ChildFailureKind::UnreadableRecord => "child_unreadable_record",
            ChildFailureKind::Interrupted => "child_interrupted",
        }
    }
}

/// A child that did not produce a record.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
#[error("the {backend} child process failed ({status}): {detail}")]
pub struct ChildFailure {
    pub kind: ChildFailureKind,
    pub backend: String,
    pub status: String,
    pub detail: String,
}

/// Longest tail of a failed child's stderr kept in its failure, bytes.
const STDERR_TAIL: usize = 4096;

/// How often the parent looks at the child and at Ctrl-C or SIGTERM while a run is in flight.
const POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// Run one job in a child process of `exe` and wait for its record.
///
/// The child gets its own process group, so a terminal Ctrl-C reaches only this process
/// (see [`crate::interrupt`]), and ignores SIGTERM; a second Ctrl-C or SIGTERM kills the
/// child here. On Linux the child
/// also dies with this process, so a killed bench leaves no run loading the servers.
pub fn run_child(exe: &Path, job: &ChildJob) -> Result<RunRecord, ChildFailure> {
    run_child_live(exe, job, None)
}

/// Receives a child's live progress samples (on a reader thread of the parent).
pub type LiveSink = std::sync::Arc<dyn Fn(crate::live::LiveSample) + Send + Sync>;

/// [`run_child`], asking the child for live progress when `live` is given: its samples go to
/// `live` as they arrive, and never into the failure text.
pub fn run_child_live(
    exe: &Path,
    job: &ChildJob,
    live: Option<LiveSink>,
) -> Result<RunRecord, ChildFailure> {
    // A child's stderr is kept in the manifest and printed: never with an API key in it.
    let fail = |kind: ChildFailureKind, status: String, detail: String| ChildFailure {
        kind,
        backend: job.backend.to_string(),
        status,
        detail: crate::secrets::scrub(&detail).into_owned(),
    };
    // Compiled backends run in a child of this binary; external ones (Python) in their own
    // interpreter, with the same job on stdin, the same record on stdout, the same accounting.
    let mut cmd = match crate::backends::external_command(&job.backend) {
        Some(Ok(cmd)) => cmd,
        Some(Err(why)) => {
            return Err(fail(
                ChildFailureKind::NotStarted,
                "not started".into(),
                why,
            ))
        }
        None => {
            let mut cmd = Command::new(exe);
            cmd.arg("child");
            cmd
        }
    };
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // Every child is asked the same way, compiled or external (Python): only when a sink is
    // given, never because this process happened to inherit the variable, so quiet and
    // scripted runs carry no sampler.
    if live.is_some() {
        cmd.env(crate::live::ENV, "1");
    } else {
        cmd.env_remove(crate::live::ENV);
    }
    // SAFETY: signal(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            // A SIGTERM for the whole group or cgroup (systemd's stop, a CI cancel) is the
            // parent's to act on (see `crate::interrupt`): the run in flight finishes, or a
            // second signal makes the parent kill it. The disposition survives exec, so
            // Python children ignore it too.
            if libc::signal(libc::SIGTERM, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        fail(
            ChildFailureKind::NotStarted,
            "not started".into(),
            e.to_string(),
        )
    })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out_reader = read_all(Box::new(stdout));
    let err_reader = std::thread::spawn(move || {
        // Live lines go to the sink; everything else is kept for a failure's message.
        let mut kept = Vec::new();
        let mut reader = std::io::BufReader::new(stderr);
        let mut line = Vec::new();
        while matches!(std::io::BufRead::read_until(&mut reader, b'\n', &mut line), Ok(n) if n > 0)
        {
            match (
                &live,
                crate::live::parse(String::from_utf8_lossy(&line).trim_end()),
            ) {
                (Some(sink), Some(sample)) => sink(sample),
                _ => kept.extend_from_slice(&line),
            }
            line.clear();
        }
        kept
    });
    let input = serde_json::to_vec(job).expect("a job always serializes");
    // A child that dies before reading its job shows up in its exit status below.
    let stdin_error = {
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin.write_all(&input).err()
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if crate::interrupt::abort_requested() => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(
                    ChildFailureKind::Interrupted,
                    "killed".into(),
                    "stopped by a second Ctrl-C or SIGTERM; this run has no record".into(),
                ));
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => {
                let _ = child.kill();
                return Err(fail(
                    ChildFailureKind::Crashed,
                    "wait".into(),
                    e.to_string(),
                ));
            }
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let stderr_tail = || {
        let s = String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(STDERR_TAIL)..])
            .trim()
            .to_owned();
        match &stdin_error {
            Some(e) if s.is_empty() => format!("(no stderr; writing its job failed: {e})"),
            _ if s.is_empty() => "(no stderr)".to_owned(),
            _ => s,
        }
    };
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        let kind = if status.signal().is_some() {
            ChildFailureKind::Crashed
        } else {
            ChildFailureKind::ExitedWithError
        };
        return Err(fail(kind, status.to_string(), stderr_tail()));
    }
    serde_json::from_slice(&stdout).map_err(|e| {
        fail(
            ChildFailureKind::UnreadableRecord,
            status.to_string(),
            format!("unreadable record: {e}; stderr: {}", stderr_tail()),
        )
    })
}

/// Embedded simulators started for `url = "sim"` endpoints, one server per endpoint
/// (like the report's two Ollama instances). Dropped at the end of the bench.
pub struct Simulators {
    pub handles: Vec<chimeraforge_sim::SimHandle>,
}

/// Start a simulator for each `sim` endpoint; returns the endpoints with real URLs.
pub fn start_simulators(config: &Config) -> anyhow::Result<(Vec<Endpoint>, Simulators)> {
    let mut handles = Vec::new();
    let mut endpoints = config.endpoints.clone();
    for ep in &mut endpoints {
        if ep.base_url != SIM_URL {
            continue;
        }
        let settings = config
            .simulator
            .as_ref()
            .expect("validated: sim endpoints imply simulator settings");
        let mut sim = chimeraforge_sim::SimConfig::profile(&settings.profile)?;
        sim.device = settings.device.parse()?;
        let handle = chimeraforge_sim::SimServer::start(sim, "127.0.0.1:0".parse()?)?;
        ep.base_url = handle.base_url();
        handles.push(handle);
    }
    Ok((endpoints, Simulators { handles }))
}
