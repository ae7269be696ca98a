//! The matrix: cells (backend × model × scenario) × runs, in interleaved order, each run in
//! its own child process of this binary, all against the same servers.

use crate::backends::ChildJob;
use crate::config::{Config, SIM_URL};
use chimeraforge_core::protocol::RunPlan;
use chimeraforge_core::record::RunRecord;
use chimeraforge_core::workload::{Agent, Endpoint, Scenario};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cell {
    pub backend: String,
    pub model: String,
    pub scenario: Scenario,
}

/// One scheduled run: a cell and the run's index within it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub cell: Cell,
    pub run_index: u32,
}

/// The run order: round r holds run r of every cell (backends innermost), so machine drift
/// spreads over every backend instead of landing on whichever ran last. With a shuffle
/// seed, each round is shuffled (deterministically; the seed is recorded).
pub fn schedule(config: &Config, backends: &[String]) -> Vec<Slot> {
    let mut order = Vec::new();
    let mut rng = config.shuffle_seed.map(SplitMix64);
    for run_index in 0..config.runs {
        let mut round = Vec::new();
        for model in &config.models {
            for &scenario in &config.scenarios {
                for backend in backends {
                    round.push(Slot {
                        cell: Cell {
                            backend: backend.clone(),
                            model: model.clone(),
                            scenario,
                        },
                        run_index,
                    });
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

/// The agents of a cell, with endpoints resolved to real URLs.
pub fn agents_for(
    config: &Config,
    endpoints: &[Endpoint],
    model: &str,
    scenario: Scenario,
) -> Vec<Agent> {
    config
        .agents
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

/// The job for one slot.
pub fn job_for(config: &Config, endpoints: &[Endpoint], slot: &Slot) -> ChildJob {
    let agents = agents_for(config, endpoints, &slot.cell.model, slot.cell.scenario);
    ChildJob {
        backend: slot.cell.backend.clone(),
        model: slot.cell.model.clone(),
        scenario: slot.cell.scenario,
        client: config.client.clone(),
        plan: RunPlan::alternating(
            slot.run_index,
            agents,
            config.warmup_tokens,
            config.settings.clone(),
        ),
    }
}

/// A child that did not produce a record.
#[derive(Debug, thiserror::Error)]
#[error("the {backend} child process failed ({status}): {detail}")]
pub struct ChildFailure {
    pub backend: String,
    pub status: String,
    pub detail: String,
}

/// Run one job in a child process of `exe`; its stderr passes through.
pub fn run_child(exe: &Path, job: &ChildJob) -> Result<RunRecord, ChildFailure> {
    let fail = |status: String, detail: String| ChildFailure {
        backend: job.backend.clone(),
        status,
        detail,
    };
    let mut child = Command::new(exe)
        .arg("child")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail("not started".into(), e.to_string()))?;
    let input = serde_json::to_vec(job).expect("a job always serializes");
    {
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(&input)
            .map_err(|e| fail("stdin".into(), e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail("wait".into(), e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(fail(out.status.to_string(), stderr.trim().to_owned()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        fail(
            out.status.to_string(),
            format!(
                "unreadable record: {e}; stderr: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
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
