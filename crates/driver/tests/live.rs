//! Live progress: a child asked for it writes `@live` samples on stderr while it streams,
//! and a child not asked writes none (quiet and scripted runs carry no sampler). The same
//! for the Python children, which the parent asks exactly as it asks its own.

use chimeraforge::backends::{external_command, python_backend, EXTERNAL_NAMES};
use chimeraforge::child::ChildJob;
use chimeraforge::live::LiveSample;
use chimeraforge::python::PYTHON_INSTALL_COMMAND;
use chimeraforge::spawn::{run_child_live, LiveSink};
use chimeraforge_core::api::ApiKind;
use chimeraforge_core::call::CallSettings;
use chimeraforge_core::protocol::RunPlan;
use chimeraforge_core::record::{Phase, RunRecord};
use chimeraforge_core::workload::{builtin_agents, Endpoint, ModelOptions, Scenario};
use chimeraforge_core::ClientOptions;
use chimeraforge_sim::{SimConfig, SimHandle, SimServer};
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

mod common;

fn sim() -> SimHandle {
    let mut cfg = SimConfig::profile("fixed").unwrap();
    cfg.models.truncate(1);
    cfg.models[0].name = "gemma3:latest".into();
    SimServer::start(cfg, "127.0.0.1:0".parse().unwrap()).unwrap()
}

/// Two seed agents on one simulator, chimera-homo, 40 tokens per call, run 0.
fn job(backend: &str, sim_url: &str) -> ChildJob {
    let endpoints = vec![Endpoint {
        name: "sim".into(),
        base_url: sim_url.into(),
        api: ApiKind::Ollama,
        api_key_env: None,
        ca_file: None,
        tls_insecure: false,
    }];
    let base = ModelOptions {
        num_predict: Some(40),
        seed: Some(1),
        ..Default::default()
    };
    let model = "gemma3:latest";
    let agents = builtin_agents(&endpoints)
        .iter()
        .enumerate()
        .map(|(i, t)| t.instantiate(model, Scenario::ChimeraHomo, i, &base))
        .collect();
    ChildJob {
        backend: backend.into(),
        model: model.into(),
        scenario: Scenario::ChimeraHomo,
        client: ClientOptions::default(),
        plan: RunPlan::alternating(0, agents, 2, CallSettings::default()),
    }
}

/// Run `backend`'s child directly (this binary, or the Python interpreter for an external
/// backend), with or without the request for live progress; its stdout and stderr.
fn child_stderr(backend: &str, sim_url: &str, live: bool) -> (String, String) {
    let job = job(backend, sim_url);
    let mut cmd = match external_command(&backend.into()) {
        Some(cmd) => cmd.unwrap(),
        None => {
            let mut cmd = common::bin();
            cmd.arg("child");
            cmd
        }
    };
    cmd.stdin(Stdio::piped())
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

/// Several samples, every one naming both agents, and tokens seen in each measured phase.
fn check_samples(samples: &[LiveSample], context: &str) {
    // Two agents × two calls × ~0.45 s each: several samples of each measured phase.
    assert!(samples.len() >= 4, "{context}: {samples:?}");
    assert!(
        samples
            .iter()
            .all(|s| s.agents == ["collector", "insight"] && s.tokens.len() == 2),
        "{context}: {samples:?}"
    );
    for phase in ["sequential", "concurrent"] {
        let max: u64 = samples
            .iter()
            .filter(|s| s.phase == phase)
            .map(|s| s.tokens.iter().sum::<u64>())
            .max()
            .unwrap_or(0);
        assert!(
            max > 0,
            "{context}: no tokens seen live in the {phase} phase: {samples:?}"
        );
    }
}

#[test]
fn child_reports_live_tokens_only_when_asked() {
    let sim = sim();
    let backend = chimeraforge::backends::compiled_names()[0];

    let (record, stderr) = child_stderr(backend, &sim.base_url(), true);
    let samples: Vec<_> = stderr
        .lines()
        .filter_map(chimeraforge::live::parse)
        .collect();
    check_samples(&samples, &stderr);
    let r: RunRecord = serde_json::from_str(record.trim()).unwrap();
    assert!(r.is_ok());

    let (_, stderr) = child_stderr(backend, &sim.base_url(), false);
    assert!(!stderr.contains(chimeraforge::live::PREFIX), "{stderr}");
}

/// The Python children, through the parent's own path (`run_child_live` asks for live
/// progress and hands every parsed sample to its sink, as the progress bar does), and
/// silent when not asked. Skipped, with the reason printed, without the Python environment.
#[test]
fn python_child_reports_live_tokens_through_the_driver() {
    let sim = sim();
    for backend in EXTERNAL_NAMES {
        if let Err(why) = python_backend(backend).unwrap().interpreter() {
            eprintln!(
                "SKIPPED {backend} live progress: {why}\n  (install: {PYTHON_INSTALL_COMMAND})"
            );
            continue;
        }
        let samples: Arc<Mutex<Vec<LiveSample>>> = Arc::default();
        let sink: LiveSink = {
            let samples = Arc::clone(&samples);
            Arc::new(move |s| samples.lock().unwrap().push(s))
        };
        // The exe is only used for compiled backends; an external one starts its interpreter.
        let r = run_child_live(
            Path::new("/nonexistent/chimeraforge"),
            &job(backend, &sim.base_url()),
            Some(sink),
        )
        .unwrap_or_else(|e| panic!("{backend} child failed: {e}"));
        assert!(r.is_ok(), "{backend}: {:?}", r.status);
        check_samples(&samples.lock().unwrap(), backend);

        // Its per-phase cost, as the Rust child writes it: one entry per phase, in order.
        let cost = r.client.as_ref().expect("client cost");
        let phases: Vec<Phase> = cost.phases.iter().map(|p| p.phase).collect();
        assert_eq!(
            phases,
            [Phase::Warmup, Phase::Sequential, Phase::Concurrent],
            "{backend}"
        );
        for p in &cost.phases {
            assert!(
                p.wall_s > 0.0 && p.cpu_s() >= 0.0 && p.peak_rss_kib > 0,
                "{p:?}"
            );
        }
        // One warm-up call of 2 tokens per agent (it opens the agent's kept-alive
        // connection); 2 agents × 2 calls × 40 tokens per measured phase.
        let tokens: Vec<u64> = cost.phases.iter().map(|p| p.output_tokens).collect();
        assert_eq!(tokens, [4, 160, 160], "{backend}");

        let (_, stderr) = child_stderr(backend, &sim.base_url(), false);
        assert!(
            !stderr.contains(chimeraforge::live::PREFIX),
            "{backend}: {stderr}"
        );
    }
}

/// A bench that inherits `CHIMERAFORGE_LIVE=1` (a parent that was itself a bench child, or a
/// user's shell) and draws no progress (stdout is not a terminal) does not pass it on: the
/// child is asked only when a sink exists. Seen through a stand-in Python interpreter that
/// writes what it inherited on stderr and fails, so the driver keeps that in the run's failure.
#[test]
fn an_inherited_live_variable_is_not_passed_to_children() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let venv = tmp.path().join("venv");
    std::fs::create_dir_all(venv.join("bin")).unwrap();
    std::fs::write(venv.join(".chimeraforge-requirements"), "").unwrap();
    let python = venv.join("bin/python");
    std::fs::write(
        &python,
        "#!/bin/sh\necho \"stand-in python: live=${CHIMERAFORGE_LIVE-unset}\" >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = tmp.path().join("live-env.toml");
    std::fs::write(
        &config,
        "name = \"live-env\"\nruns = 1\nmodels = [\"gemma3:latest\"]\n\
         scenarios = [\"chimera-homo\"]\nbackends = [\"python-asyncio\"]\n\
         [simulator]\nprofile = \"fixed\"\n[[endpoints]]\nname = \"a\"\nurl = \"sim\"\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = common::bin()
        .arg("bench")
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .env(chimeraforge::live::ENV, "1")
        .env(chimeraforge::python::PYTHON_VENV_ENV, &venv)
        .output()
        .unwrap();
    // The run fails (the stand-in exits 1), so the bench does too; its results stay.
    let manifest = std::fs::read_to_string(out.join("manifest.json"))
        .unwrap_or_else(|e| panic!("no manifest ({e}): {o:?}"));
    assert!(
        manifest.contains("stand-in python: live=unset"),
        "the child's stderr, kept in the failure: {manifest}"
    );
}
