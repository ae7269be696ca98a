//! Live progress: a child asked for it writes `@live` samples on stderr while it streams,
//! and a child not asked writes none (quiet and scripted runs carry no sampler).

use chimeraforge::backends::ChildJob;
use chimeraforge_core::api::ApiKind;
use chimeraforge_core::call::CallSettings;
use chimeraforge_core::protocol::RunPlan;
use chimeraforge_core::workload::{seed_agents, Endpoint, ModelOptions, Scenario};
use chimeraforge_core::ClientOptions;
use chimeraforge_sim::{SimConfig, SimServer};
use std::io::Write;
use std::process::{Command, Stdio};

fn child_stderr(sim_url: &str, live: bool) -> (String, String) {
    let endpoints = vec![Endpoint {
        name: "sim".into(),
        base_url: sim_url.into(),
        api: ApiKind::Ollama,
        api_key_env: None,
    }];
    let base = ModelOptions {
        num_predict: Some(40),
        seed: Some(1),
        ..Default::default()
    };
    let model = "gemma3:latest";
    let agents = seed_agents(&endpoints)
        .iter()
        .enumerate()
        .map(|(i, t)| t.instantiate(model, Scenario::ChimeraHomo, i, &base))
        .collect();
    let job = ChildJob {
        backend: chimeraforge::backends::compiled_names()[0].into(),
        model: model.into(),
        scenario: Scenario::ChimeraHomo,
        client: ClientOptions::default(),
        plan: RunPlan::alternating(0, agents, 2, CallSettings::default()),
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chimeraforge"));
    cmd.arg("child")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if live {
        cmd.env(chimeraforge::live::ENV, "1");
    } else {
        cmd.env_remove(chimeraforge::live::ENV);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(&job).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn child_reports_live_tokens_only_when_asked() {
    let mut cfg = SimConfig::profile("fixed").unwrap();
    cfg.models.truncate(1);
    cfg.models[0].name = "gemma3:latest".into();
    let sim = SimServer::start(cfg, "127.0.0.1:0".parse().unwrap()).unwrap();

    let (record, stderr) = child_stderr(&sim.base_url(), true);
    let samples: Vec<_> = stderr
        .lines()
        .filter_map(chimeraforge::live::parse)
        .collect();
    // Two agents × two calls × ~0.45 s each: several samples of each measured phase.
    assert!(samples.len() >= 4, "{stderr}");
    assert!(samples.iter().all(|s| s.agents == ["collector", "insight"]));
    for phase in ["sequential", "concurrent"] {
        let max: u64 = samples
            .iter()
            .filter(|s| s.phase == phase)
            .map(|s| s.tokens.iter().sum::<u64>())
            .max()
            .unwrap_or(0);
        assert!(
            max > 0,
            "no tokens seen live in the {phase} phase: {stderr}"
        );
    }
    let r: chimeraforge_core::record::RunRecord = serde_json::from_str(record.trim()).unwrap();
    assert!(r.is_ok());

    let (_, stderr) = child_stderr(&sim.base_url(), false);
    assert!(!stderr.contains(chimeraforge::live::PREFIX), "{stderr}");
}
