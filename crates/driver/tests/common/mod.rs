//! Helpers shared by the driver's tests: the binary as a user runs it; for the calibration
//! tests (Rust and Python backends), a simulator with a known timing and the job that runs
//! the seed's two agents on it.
#![allow(dead_code)] // each test binary uses part of it

use chimeraforge::child::ChildJob;
use chimeraforge_core::api::ApiKind;
use chimeraforge_core::call::CallSettings;
use chimeraforge_core::protocol::RunPlan;
use chimeraforge_core::workload::{builtin_agents, Endpoint, ModelOptions, Scenario};
use chimeraforge_core::ClientOptions;
use chimeraforge_sim::{Device, SimConfig, SimHandle, SimServer};

pub const MODEL: &str = "gemma3:latest";

/// `text` parsed as a config file `t.toml` (tests that build configs in memory).
pub fn parse(text: String) -> chimeraforge::config::Config {
    chimeraforge::config::parse(&chimeraforge::config::Source {
        path: "t.toml".into(),
        text,
    })
    .unwrap()
}

/// The `chimeraforge` binary Cargo built for these tests.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_chimeraforge"))
}

/// Run it with `args` in `cwd` and wait for it.
pub fn run_bin(args: &[&str], cwd: &std::path::Path) -> std::process::Output {
    bin()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("binary runs")
}

/// Its stdout then its stderr, as text.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A simulator on the `fixed` profile (TTFT 50 ms, 100 tok/s) serving only [`MODEL`].
pub fn start(device: Device) -> SimHandle {
    let mut cfg = SimConfig::profile("fixed").expect("fixed profile exists");
    cfg.device = device;
    cfg.models.truncate(1);
    cfg.models[0].name = MODEL.into();
    SimServer::start(cfg, "127.0.0.1:0".parse().unwrap()).expect("simulator starts")
}

/// Two seed agents on `servers` (one per server, round robin), chimera-homo, 24 tokens per
/// call, seed 42: run `run_index` on `backend`.
pub fn homo_job(backend: &str, servers: &[&SimHandle], run_index: u32, api: ApiKind) -> ChildJob {
    homo_job_tokens(backend, servers, run_index, api, 24)
}

/// [`homo_job`] with `tokens` output tokens per call (the fixed profile: 50 ms + 10 ms a token
/// after the first).
pub fn homo_job_tokens(
    backend: &str,
    servers: &[&SimHandle],
    run_index: u32,
    api: ApiKind,
    tokens: u32,
) -> ChildJob {
    let endpoints: Vec<Endpoint> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| Endpoint {
            name: format!("sim{i}"),
            base_url: s.base_url(),
            api,
            api_key_env: None,
            ca_file: None,
            tls_insecure: false,
        })
        .collect();
    let base = ModelOptions {
        num_predict: Some(tokens),
        seed: Some(42),
        ..Default::default()
    };
    let agents = builtin_agents(&endpoints)
        .iter()
        .enumerate()
        .map(|(i, t)| t.instantiate(MODEL, Scenario::ChimeraHomo, i, &base))
        .collect();
    ChildJob {
        backend: backend.into(),
        model: MODEL.into(),
        scenario: Scenario::ChimeraHomo,
        client: ClientOptions::default(),
        plan: RunPlan::alternating(run_index, agents, 4, CallSettings::default()),
    }
}
