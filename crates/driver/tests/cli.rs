//! The binary as a user runs it: bad input gives one clear error and writes nothing;
//! the quickstart writes a complete results directory.

use chimeraforge_sim::{SimConfig, SimServer};
use std::path::Path;

mod common;

use common::{bin, run_bin as run, text};

const BASE: &str = r#"name = "t"
runs = 1
models = ["gemma3:latest"]
scenarios = ["chimera-homo"]
[options]
num_predict = 8
seed = 1
[[endpoints]]
name = "a"
url = "URL"
"#;

fn write_config(dir: &Path, body: &str) -> String {
    let p = dir.join("c.toml");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

#[test]
fn missing_config_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&["bench", "nope.toml"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains("cannot read config nope.toml") && t.contains("hint"),
        "{t}"
    );
    assert!(!tmp.path().join("results").exists());
}

#[test]
fn malformed_config_names_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "name = \"t\"\nruns = = 3\n");
    let o = run(&["bench", &cfg], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(t.contains("c.toml:2:"), "{t}");
    assert!(!tmp.path().join("results").exists());
}

#[test]
fn unknown_scenario_is_located_and_lists_valid_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        &BASE
            .replace("chimera-homo", "chimera-homogeneous")
            .replace("URL", "sim"),
    );
    let o = run(&["bench", &cfg], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains("c.toml:4:") && t.contains("chimera-homogeneous"),
        "{t}"
    );
    assert!(
        t.contains("baseline-vs-chimera, chimera-hetero, chimera-homo"),
        "{t}"
    );
}

#[test]
fn unreachable_endpoint_names_it_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // Bind then drop a listener: the port is closed, nothing answers.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = write_config(
        tmp.path(),
        &BASE.replace("URL", &format!("http://127.0.0.1:{port}")),
    );
    let o = run(&["bench", &cfg, "--backends", "all"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains(&format!("http://127.0.0.1:{port}")) && t.contains("unreachable"),
        "{t}"
    );
    assert!(!tmp.path().join("results").exists());
}

#[test]
fn missing_model_lists_what_the_server_has() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = SimServer::start(
        SimConfig::profile("quickstart").unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let cfg = write_config(
        tmp.path(),
        &BASE
            .replace("gemma3:latest", "nosuchmodel:7b")
            .replace("URL", &sim.base_url()),
    );
    let o = run(&["bench", &cfg], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains("nosuchmodel:7b") && t.contains("gemma3:latest"),
        "{t}"
    );
    assert!(t.contains("ollama pull nosuchmodel:7b"), "{t}");
    assert!(!tmp.path().join("results").exists());
}

#[test]
fn unknown_backend_lists_the_ones_built_in() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&["bench", "--backends", "glommio"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("unknown"), "{}", text(&o));
}

#[test]
fn backends_lists_this_build() {
    let tmp = tempfile::tempdir().unwrap();
    let listed = String::from_utf8(run(&["backends"], tmp.path()).stdout).unwrap();
    let via_flag =
        String::from_utf8(run(&["bench", "--backends", "list"], tmp.path()).stdout).unwrap();
    assert_eq!(listed, via_flag);
    let lines: Vec<String> = listed.lines().map(str::to_owned).collect();
    assert_eq!(lines, chimeraforge::backends::listing());
    // Every compiled backend is listed first, by its bare name.
    let compiled = chimeraforge::backends::compiled_names();
    assert_eq!(&lines[..compiled.len()], compiled.as_slice());
}

#[test]
fn backends_features_lists_every_rust_backend_built_in_or_not() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&["backends", "--features"], tmp.path());
    assert_eq!(o.status.code(), Some(0));
    let listed = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines, chimeraforge::backends::RUST_NAMES);
    // This build's backends are among them; no Python backend is.
    for b in chimeraforge::backends::compiled_names() {
        assert!(lines.contains(&b), "{b} missing from {lines:?}");
    }
    assert!(lines.iter().all(|l| !l.starts_with("python-")), "{lines:?}");
}

#[test]
fn quickstart_writes_one_record_per_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("res");
    let o = run(
        &["bench", "--runs", "1", "--out", out.to_str().unwrap()],
        tmp.path(),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    // `all` selects the compiled backends plus installed external (Python) ones.
    let backends = chimeraforge::backends::selectable_names().len();
    let (records, warnings) = chimeraforge::results::read_runs(&out).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    // The built-in quickstart has two scenarios and one model.
    assert_eq!(records.len(), backends * 2, "{t}");
    assert!(records.iter().all(|r| r.is_ok() && r.metrics.is_some()));
    assert!(records.iter().all(|r| r.client.is_some()));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["runs_recorded"], records.len());
    assert!(manifest["config_text"]
        .as_str()
        .unwrap()
        .contains("quickstart"));
    // bench ends by writing the report; `report` rewrites it from runs.jsonl alone.
    for f in ["report.md", "report.html", "runs.csv"] {
        assert!(out.join(f).exists(), "{f} missing: {t}");
        std::fs::remove_file(out.join(f)).unwrap();
    }
    let o = run(&["report", out.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && !html.contains("<script"),
        "self-contained, no scripts"
    );
    let csv = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert_eq!(csv.lines().count(), records.len() + 1, "{csv}");
    let o = run(
        &["compare", out.to_str().unwrap(), out.to_str().unwrap()],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("regressed"), "{}", text(&o));
    assert!(t.contains("efficiency") && t.contains("(measured)") && t.contains("(estimated)"));
}

#[test]
fn wrong_api_key_names_the_variable_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::profile("quickstart").unwrap();
    cfg.api_key = Some("right-key".into());
    let sim = SimServer::start(cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let body = BASE.replace("URL", &sim.base_url())
        + "api = \"openai-chat\"\napi_key_env = \"CF_TEST_KEY\"\n";
    let cfg = write_config(tmp.path(), &body);
    let o = bin()
        .args(["bench", &cfg])
        .current_dir(tmp.path())
        .env("CF_TEST_KEY", "wrong-key")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains("HTTP 401") && t.contains("rejected") && t.contains("CF_TEST_KEY"),
        "{t}"
    );
    assert!(
        !t.contains("wrong-key"),
        "the key must never be printed: {t}"
    );
    let o = bin()
        .args(["bench", &cfg])
        .current_dir(tmp.path())
        .env_remove("CF_TEST_KEY")
        .output()
        .unwrap();
    assert!(text(&o).contains("CF_TEST_KEY is not set"), "{}", text(&o));
    assert!(!tmp.path().join("results").exists());
}

/// `chimeraforge bench ... | head -1`: the reader goes away after one line. The bench keeps
/// measuring (no panic on EPIPE) and every run still reaches the results directory.
#[test]
fn bench_outlives_a_reader_that_went_away() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("res");
    let mut child = bin()
        .args([
            "bench",
            "--runs",
            "1",
            "--backends",
            "tokio-default",
            "--out",
            out.to_str().unwrap(),
        ])
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read the first line, then close our end of stdout as `head -1` does.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.contains("chimeraforge"), "{first}");
    drop(stdout);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (records, _) = chimeraforge::results::read_runs(&out).unwrap();
    assert_eq!(records.len(), 2, "{err}");
    assert!(out.join("report.md").exists());
}

/// Two agents with different `num_ctx`/`num_gpu` on one serial server (Ollama with one
/// model slot) make it reload the model in the measured phases: the simulator's 200 ms
/// reload is short for a real model but distorts T_conc all the same, and is flagged.
#[test]
fn a_reload_in_a_measured_phase_is_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        r#"name = "reload"
runs = 1
models = ["gemma3:latest"]
scenarios = ["baseline-vs-chimera"]
[options]
num_predict = 8
seed = 1
[simulator]
profile = "quickstart"
device = "serial"
[[endpoints]]
name = "one"
url = "sim"
"#,
    );
    let out = tmp.path().join("res");
    let o = run(
        &[
            "bench",
            &cfg,
            "--backends",
            "tokio-default",
            "--out",
            out.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (records, _) = chimeraforge::results::read_runs(&out).unwrap();
    assert_eq!(records.len(), 1);
    let m = records[0].metrics.as_ref().expect("metrics");
    assert!(m.flags.cold_load, "{:?}", m.flags);
    let reloads = records[0]
        .sequential
        .iter()
        .chain(records[0].concurrent.iter())
        .flat_map(|p| p.agents.iter().flat_map(|a| &a.calls))
        .filter(|c| c.cold_load)
        .count();
    assert!(reloads >= 1);
}

/// Numbers that passed `--dry-run` and then lost or duplicated every run are config errors
/// at file:line:col (and flags out of range are usage errors), before anything is written.
#[test]
fn nonsensical_numbers_and_names_are_rejected_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let base = BASE.replace("URL", "sim");
    for (body, located, what) in [
        (
            base.replace("runs = 1", "runs = 1\ncold_load_threshold_ms = nan"),
            "c.toml:3:26",
            "cold_load_threshold_ms",
        ),
        (
            base.replace("runs = 1", "runs = 1\ncold_load_threshold_ms = inf"),
            "c.toml:3:26",
            "cold_load_threshold_ms",
        ),
        (
            base.replace("runs = 1", "runs = 1\nmax_line_bytes = 0"),
            "c.toml:3:18",
            "max_line_bytes",
        ),
        (
            base.replace("[[endpoints]]", "[timeouts]\nidle_ms = 0\n[[endpoints]]"),
            "c.toml:9:11",
            "idle_ms",
        ),
        (
            base.replace(
                "models = [\"gemma3:latest\"]",
                "models = [\"gemma3:latest\", \"gemma3:latest\"]",
            ),
            "c.toml:3:28",
            "listed twice",
        ),
        (
            base.replace("name = \"a\"", "name = \"\""),
            "c.toml:9:8",
            "endpoint name is empty",
        ),
    ] {
        let cfg = write_config(tmp.path(), &body);
        let o = run(&["bench", &cfg, "--dry-run"], tmp.path());
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{body}\n{t}");
        assert!(t.contains(located) && t.contains(what), "{body}\n{t}");
        assert!(t.contains("hint:"), "{t}");
    }
    let cfg = write_config(tmp.path(), &base);
    for (flags, what) in [
        (&["--runs", "100001"][..], "100000"),
        (&["--runs", "0"][..], "--runs"),
        (
            &["--backends", "tokio-default,tokio-default"][..],
            "listed twice",
        ),
    ] {
        let mut args = vec!["bench", cfg.as_str(), "--dry-run"];
        args.extend_from_slice(flags);
        let o = run(&args, tmp.path());
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {t}");
        assert!(t.contains(what), "{flags:?}: {t}");
    }
    assert!(!tmp.path().join("results").exists());
}

/// A key with a CR or LF would be written raw into a request header: refused before any
/// request, naming the endpoint and the variable, the key itself never printed.
#[test]
fn a_key_with_control_characters_is_refused_before_any_request() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let body = BASE.replace("URL", &url) + "api_key_env = \"CF_TEST_BAD_KEY\"\n";
    let cfg = write_config(tmp.path(), &body);
    for cmd in ["bench", "doctor"] {
        let o = bin()
            .args([cmd, &cfg])
            .current_dir(tmp.path())
            .env("CF_TEST_BAD_KEY", "sk-bad-key\r\nX-Injected: yes")
            .output()
            .unwrap();
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {t}");
        assert!(
            t.contains("endpoint \"a\"")
                && t.contains("CF_TEST_BAD_KEY")
                && t.contains("carriage return"),
            "{cmd}: {t}"
        );
        assert!(!t.contains("sk-bad-key"), "{cmd}: the key is printed: {t}");
        assert!(
            matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{cmd} connected to the server"
        );
    }
    assert!(!tmp.path().join("results").exists());
}

#[test]
fn reasoning_sim_records_both_ttfts_and_the_thoughts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("res");
    let config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench-configs/reasoning-sim.toml");
    let o = run(
        &[
            "bench",
            config.to_str().unwrap(),
            "--runs",
            "1",
            "--backends",
            "tokio-default",
            "--out",
            out.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let (records, warnings) = chimeraforge::results::read_runs(&out).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(records.len(), 2, "{t}");
    let think = chimeraforge_sim::REASONING_PROFILE_TOKENS as u64;
    for r in &records {
        assert!(r.is_ok(), "{:?}", r.status);
        for phase in [&r.sequential, &r.concurrent] {
            for call in phase.iter().flat_map(|p| &p.agents).flat_map(|a| &a.calls) {
                let reasoning = call.reasoning_tokens.expect("reasoning tokens");
                assert_eq!(reasoning.value, think, "{call:?}");
                let (first, answer) = (call.ttft_ms.unwrap(), call.ttft_answer_ms.unwrap());
                assert!(answer > first, "ttft_answer_ms {answer} <= ttft_ms {first}");
                // num_predict = 48 counts every generated token; the answer is the rest.
                assert_eq!(call.output_tokens.unwrap().value, 48);
                assert_eq!(call.answer_tokens.unwrap().value, 48 - think);
                assert!(!call.output_preview.is_empty());
            }
        }
        let m = r.metrics.as_ref().unwrap();
        for a in &m.per_agent {
            assert_eq!(a.reasoning_tokens_concurrent, 2 * think);
            assert!(a.concurrent_ttft_answer_ms.unwrap() > a.concurrent_ttft_ms.unwrap());
        }
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("TTFT answer"), "{report}");
}
