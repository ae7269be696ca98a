//! The matrix: cells (backend × model × scenario) × runs in interleaved order, and the job
//! each slot runs. Spawning the children is [`crate::spawn`]; the simulators, [`crate::simulators`].

use crate::child::ChildJob;
use crate::config::Config;
use chimeraforge_core::protocol::RunPlan;
use chimeraforge_core::workload::{Agent, Endpoint, Scenario};
use chimeraforge_core::BackendId;

/// The schedule's types are the results model's: the manifest records the order as written.
pub use chimeraforge_results::{Cell, Slot};

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
