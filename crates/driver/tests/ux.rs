//! What a user sees: doctor against a server that is down and against a simulator, the
//! JSON summary, quiet output, completions, help, and every shipped config dry-running.

use chimeraforge::config;
use chimeraforge::doctor::{self, Severity};
use chimeraforge_sim::{loopback, SimConfig, SimServer};
use std::path::{Path, PathBuf};

mod common;

use common::{parse, run_bin as run, text};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const HEAD: &str = r#"name = "t"
runs = 1
models = ["gemma3:latest"]
scenarios = ["baseline-vs-chimera"]
[options]
num_predict = 8
seed = 1
"#;

fn endpoint(name: &str, url: &str, api: &str) -> String {
    format!("[[endpoints]]\nname = \"{name}\"\nurl = \"{url}\"\napi = \"{api}\"\n")
}

#[test]
fn doctor_on_a_server_that_is_down_says_what_to_do_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let port = closed_port();
    let cfg = tmp.path().join("down.toml");
    std::fs::write(
        &cfg,
        format!(
            "{HEAD}{}",
            endpoint("local", &format!("http://127.0.0.1:{port}"), "ollama")
        ),
    )
    .unwrap();
    let o = run(&["doctor", cfg.to_str().unwrap()], tmp.path());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("unreachable") && t.contains(&port.to_string()),
        "{t}"
    );
    assert!(t.contains("fix:") && t.contains("ollama serve"), "{t}");
    assert!(t.contains("chimeraforge sim --port"), "{t}");
    assert!(t.contains("not ready: 1 error(s)"), "{t}");
}

#[test]
fn doctor_on_the_quickstart_reports_embedded_simulators_and_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&["doctor"], tmp.path());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("embedded simulator"), "{t}");
    assert!(t.contains("0.0.0-chimeraforge-sim"), "{t}");
    assert!(t.contains("model gemma3:latest present: 34 layers"), "{t}");
    assert!(t.contains("ready:"), "{t}");
}

#[test]
fn doctor_against_a_simulator_finds_shared_servers_reloads_and_excess_layers() {
    let sim = SimServer::start(SimConfig::profile("quickstart").unwrap(), loopback(0)).unwrap();
    let url = sim.base_url();
    // Two endpoints, one server; the seed's two agents land on it with different options.
    let cfg = parse(format!(
        "{HEAD}{}{}",
        endpoint("a", &url, "ollama"),
        endpoint("b", &url, "ollama")
    ));
    let d = doctor::diagnose(&cfg, "t.toml", &cfg.endpoints);
    assert!(d.healthy(), "{}", doctor::render(&d, "t.toml"));
    let report = doctor::render(&d, "t.toml");
    let warnings: Vec<_> = d
        .config
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .collect();
    assert!(warnings.iter().all(|f| f.fix.is_some()), "{report}");
    assert!(
        warnings
            .iter()
            .any(|f| f.message.contains("all point at") && f.message.contains(&url)),
        "{report}"
    );
    assert!(
        warnings
            .iter()
            .any(|f| f.message.contains("reloads the model")),
        "{report}"
    );
    assert!(
        warnings
            .iter()
            .any(|f| f.message.contains("34 layers") && f.message.contains("num_gpu 80")),
        "{report}"
    );
    assert_eq!(
        d.endpoints[0].server.as_deref(),
        Some("Ollama 0.0.0-chimeraforge-sim")
    );
    sim.shutdown();
}

#[test]
fn doctor_warns_that_openai_endpoints_do_not_get_ollama_options() {
    let sim = SimServer::start(SimConfig::profile("quickstart").unwrap(), loopback(0)).unwrap();
    let sim2 = SimServer::start(SimConfig::profile("quickstart").unwrap(), loopback(0)).unwrap();
    let cfg = parse(format!(
        "{HEAD}{}{}",
        endpoint("a", &sim.base_url(), "openai-chat"),
        endpoint("b", &sim2.base_url(), "openai-chat")
    ));
    let d = doctor::diagnose(&cfg, "t.toml", &cfg.endpoints);
    let report = doctor::render(&d, "t.toml");
    assert!(d.healthy(), "{report}");
    assert!(
        d.config.iter().any(|f| f.severity == Severity::Warning
            && f.message.contains("num_gpu, num_ctx")
            && f.message.contains("not sent")),
        "{report}"
    );
    sim.shutdown();
    sim2.shutdown();
}

#[test]
fn doctor_says_where_think_is_not_sent() {
    let with_think = |api: &str, think: &str| {
        parse(format!(
            "{}{}",
            HEAD.replace("seed = 1\n", &format!("seed = 1\nthink = {think}\n")),
            endpoint("a", "http://127.0.0.1:9", api)
        ))
    };
    let unsent = |cfg: &config::Config| -> Vec<String> {
        doctor::check_config(cfg, "t.toml", &[])
            .into_iter()
            .filter(|f| f.severity == Severity::Warning && f.message.contains("think"))
            .map(|f| format!("{} / fix: {}", f.message, f.fix.unwrap_or_default()))
            .collect()
    };
    // One finding per agent (the seed's two), naming it.
    let completions = unsent(&with_think("openai-completions", "\"high\""));
    assert_eq!(completions.len(), 2, "{completions:?}");
    assert!(
        completions[0].starts_with("agent collector ")
            && completions[1].starts_with("agent insight ")
    );
    assert!(
        completions.iter().all(|f| f.contains("think = \"high\"")
            && f.contains("/v1/completions")
            && f.contains("not sent")),
        "{completions:?}"
    );
    let chat_bool = unsent(&with_think("openai-chat", "true"));
    assert_eq!(chat_bool.len(), 2, "{chat_bool:?}");
    assert!(
        chat_bool.iter().all(|f| f.contains("reasoning_effort")),
        "{chat_bool:?}"
    );
    // Where it is sent, nothing to say.
    assert!(unsent(&with_think("openai-chat", "\"low\"")).is_empty());
    assert!(unsent(&with_think("ollama", "true")).is_empty());
    assert!(unsent(&with_think("ollama-generate", "false")).is_empty());
}

#[test]
fn doctor_names_a_missing_model_and_how_to_pull_it() {
    let sim = SimServer::start(SimConfig::profile("quickstart").unwrap(), loopback(0)).unwrap();
    let cfg = parse(
        format!("{HEAD}{}", endpoint("a", &sim.base_url(), "ollama"))
            .replace("gemma3:latest", "nosuch:1b"),
    );
    let d = doctor::diagnose(&cfg, "t.toml", &cfg.endpoints);
    let report = doctor::render(&d, "t.toml");
    assert!(!d.healthy(), "{report}");
    assert!(
        report.contains("nosuch:1b") && report.contains("ollama pull nosuch:1b"),
        "{report}"
    );
    sim.shutdown();
}

#[test]
fn json_summary_is_the_only_stdout_and_quiet_prints_no_run_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r");
    let o = run(
        &[
            "bench",
            "--backends",
            "tokio-default",
            "--runs",
            "1",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("stdout is one JSON document");
    assert_eq!(v["results_dir"], out.display().to_string());
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    for c in cells {
        assert_eq!(c["n"], 1);
        for k in [
            "speedup",
            "efficiency_pct",
            "estimated_efficiency_pct",
            "ttft_ms",
            "decode_tok_s",
        ] {
            assert!(c[k]["mean"].as_f64().is_some(), "{k}: {c}");
        }
    }
    assert_eq!(v["runs_failed"], 0);

    let out2 = tmp.path().join("r2");
    let o = run(
        &[
            "bench",
            "--backends",
            "tokio-default",
            "--runs",
            "1",
            "--quiet",
            "--out",
            out2.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(!t.contains("[1/2]"), "{t}");
    assert!(
        t.contains("seed formula (estimated)") && t.contains("speedup (measured)"),
        "{t}"
    );
    assert!(t.contains(&format!("results: {}/", out2.display())), "{t}");
    let help = text(&run(&["--help"], tmp.path()));
    if help.contains("\n  report ") {
        assert!(
            t.contains(&format!("{}/report.html", out2.display())),
            "{t}"
        );
    }
}

#[test]
fn completions_are_generated_for_each_shell() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completions", shell], tmp.path());
        assert!(o.status.success(), "{shell}: {}", text(&o));
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(s.contains("doctor") && s.contains("bench"), "{shell}: {s}");
    }
}

#[test]
fn every_command_has_help_with_examples() {
    let tmp = tempfile::tempdir().unwrap();
    for cmd in ["bench", "doctor", "sim", "completions"] {
        let o = run(&[cmd, "--help"], tmp.path());
        let t = text(&o);
        assert!(o.status.success(), "{cmd}: {t}");
        assert!(t.contains("chimeraforge "), "{cmd}: {t}");
        assert!(t.to_lowercase().contains("example"), "{cmd}: {t}");
    }
}

#[test]
fn every_shipped_config_parses_and_dry_runs() {
    let dir = workspace().join("bench-configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        seen += 1;
        let o = run(
            &["bench", path.to_str().unwrap(), "--dry-run"],
            &workspace(),
        );
        assert!(o.status.success(), "{}: {}", path.display(), text(&o));
        assert!(text(&o).contains("order"), "{}", path.display());
    }
    assert!(seen >= 2, "no configs found in {}", dir.display());
}

#[test]
fn doctor_says_when_a_server_wants_an_api_key() {
    let mut sc = SimConfig::profile("quickstart").unwrap();
    sc.api_key = Some("secret".into());
    let sim = SimServer::start(sc, loopback(0)).unwrap();
    let cfg = parse(format!(
        "{HEAD}{}",
        endpoint("a", &sim.base_url(), "openai-chat")
    ));
    let d = doctor::diagnose(&cfg, "t.toml", &cfg.endpoints);
    let report = doctor::render(&d, "t.toml");
    assert!(!d.healthy(), "{report}");
    assert!(
        report.contains("wants an API key") && report.contains("api_key_env"),
        "{report}"
    );
    let cfg = parse(
        format!("{HEAD}{}", endpoint("a", &sim.base_url(), "openai-chat"))
            + "api_key_env = \"CHIMERAFORGE_TEST_UNSET_KEY\"\n",
    );
    let d = doctor::diagnose(&cfg, "t.toml", &cfg.endpoints);
    let report = doctor::render(&d, "t.toml");
    assert!(
        report.contains("CHIMERAFORGE_TEST_UNSET_KEY") && report.contains("is not set"),
        "{report}"
    );
    sim.shutdown();
}
