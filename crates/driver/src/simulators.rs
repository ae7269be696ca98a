//! The simulated servers a config's `url = "sim"` endpoints ask for, started in this process.

use crate::config::{Config, SIM_URL};
use chimeraforge_core::workload::Endpoint;

/// Embedded simulators started for `url = "sim"` endpoints, one server per endpoint
/// (like the report's two Ollama instances). Dropped at the end of the bench.
pub struct Simulators {
    pub handles: Vec<chimeraforge_sim::SimHandle>,
}

/// Start a simulator for each `sim` endpoint; returns the endpoints with real URLs (under
/// `[simulator] tls = true`, https with `ca_file` the simulator's CA, so nothing is to set up).
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
        sim.tls = settings.tls;
        let handle = chimeraforge_sim::SimServer::start(sim, "127.0.0.1:0".parse()?)?;
        ep.base_url = handle.base_url();
        ep.ca_file = handle.ca_file().map(std::path::Path::to_path_buf);
        handles.push(handle);
    }
    Ok((endpoints, Simulators { handles }))
}
