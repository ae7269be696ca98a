//! https end to end: the bench over TLS against embedded simulators on every backend this
//! build can run (the Python ones too when `.venv-py` is installed), under both connection
//! policies; a wrong CA fails every backend with an error that names the endpoint and its
//! `ca_file`; `tls_insecure` runs and is warned about.

mod common;

use chimeraforge::spawn::run_child;
use chimeraforge_core::api::ApiKind;
use chimeraforge_core::record::{CallRecord, RunRecord};
use chimeraforge_core::ConnectionPolicy;
use chimeraforge_sim::{SimConfig, SimHandle, SimServer};
use common::{homo_job_tokens, run_bin as run, text, MODEL};
use std::path::{Path, PathBuf};

/// A `fixed` simulator (only [`MODEL`]) serving https.
fn tls_sim() -> SimHandle {
    let mut cfg = SimConfig::profile("fixed").unwrap();
    cfg.models.truncate(1);
    cfg.models[0].name = MODEL.into();
    cfg.tls = true;
    SimServer::start(cfg, chimeraforge_sim::loopback(0)).unwrap()
}

/// The PEM of a CA that signed nothing the tests talk to, in `dir`.
fn unrelated_ca(dir: &Path) -> PathBuf {
    let other = tls_sim();
    let path = dir.join("other-ca.pem");
    std::fs::write(&path, other.ca_pem().unwrap()).unwrap();
    path
}

fn write_config(dir: &Path, body: &str) -> String {
    let p = dir.join("c.toml");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

const HEAD: &str = r#"name = "tls"
runs = 1
models = ["gemma3:latest"]
scenarios = ["chimera-homo"]
[options]
num_predict = 8
seed = 1
"#;

/// Each agent's calls in the order it made them: its warm-up call, then the measured ones.
fn calls_by_agent(r: &RunRecord) -> Vec<(String, Vec<&CallRecord>)> {
    r.agents
        .iter()
        .map(|a| {
            let measured = [&r.sequential, &r.concurrent]
                .into_iter()
                .flatten()
                .flat_map(|p| &p.agents)
                .filter(|p| p.agent_id == a.id)
                .flat_map(|p| &p.calls);
            let calls = r
                .warmup
                .iter()
                .filter(|c| c.agent_id == a.id)
                .chain(measured)
                .collect();
            (a.id.clone(), calls)
        })
        .collect()
}

/// `bench` on every selectable backend with embedded https simulators (one per API),
/// under `policy`: every run ok over https, and the connections each call opened as the
/// policy says (the handshake is part of opening one).
fn bench_over_https(policy: ConnectionPolicy) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        &format!(
            "{HEAD}[simulator]\nprofile = \"fixed\"\ntls = true\n[[endpoints]]\nname = \"a\"\nurl = \"sim\"\n[[endpoints]]\nname = \"b\"\nurl = \"sim\"\napi = \"openai-chat\"\n"
        ),
    );
    let out = tmp.path().join("res");
    let o = run(
        &[
            "bench",
            &cfg,
            "--backends",
            "all",
            "--connection",
            policy.as_str(),
            "--out",
            out.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let (records, warnings) = chimeraforge::results::read_runs(&out).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let backends = chimeraforge::backends::selectable_names();
    assert_eq!(records.len(), backends.len(), "{t}");
    for r in &records {
        assert!(r.is_ok(), "{}: {:?}", r.backend, r.status);
        assert_eq!(r.connection, Some(policy));
        for a in &r.agents {
            assert!(
                a.endpoint.base_url.starts_with("https://127.0.0.1:"),
                "{a:?}"
            );
            let ca = a.endpoint.ca_file.as_ref().expect("the simulator's CA");
            assert!(ca.is_absolute(), "{}", ca.display());
        }
        for (id, calls) in calls_by_agent(r) {
            assert_eq!(calls.len(), 5, "{}: {id}'s calls", r.backend);
            assert!(calls.iter().all(|c| c.url.starts_with("https://")));
            let opened: Vec<u64> = calls.iter().map(|c| c.connections_opened).collect();
            let expected = match policy {
                ConnectionPolicy::KeepAlive => [1, 0, 0, 0, 0],
                ConnectionPolicy::Fresh => [1, 1, 1, 1, 1],
            };
            assert_eq!(opened, expected, "{}: {id} under {policy}", r.backend);
            assert!(calls.iter().all(|c| c.reconnects == 0), "{}", r.backend);
        }
    }
    // The simulators' CA files are gone with the bench.
    for r in &records {
        for a in &r.agents {
            assert!(!a.endpoint.ca_file.as_ref().unwrap().exists());
        }
    }
}

#[test]
fn bench_over_https_keeps_one_connection_per_agent() {
    bench_over_https(ConnectionPolicy::KeepAlive);
}

#[test]
fn bench_over_https_fresh_opens_one_connection_per_call() {
    bench_over_https(ConnectionPolicy::Fresh);
}

/// A `ca_file` with the wrong CA: every backend's first call fails, its error naming the
/// endpoint, the URL and the ca_file; the bench refuses to start with the same facts.
#[test]
fn a_wrong_ca_fails_every_backend_naming_the_endpoint_and_ca_file() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = tls_sim();
    let wrong = unrelated_ca(tmp.path());
    for backend in chimeraforge::backends::selectable_names() {
        let mut job = homo_job_tokens(backend, &[&sim], 0, ApiKind::Ollama, 4);
        for a in &mut job.plan.agents {
            a.endpoint.name = "secure-sim".into();
            a.endpoint.ca_file = Some(wrong.clone());
        }
        let record = run_child(Path::new(env!("CARGO_BIN_EXE_chimeraforge")), &job)
            .unwrap_or_else(|e| panic!("{backend} child failed: {e}"));
        assert!(
            !record.is_ok(),
            "{backend} trusted a certificate its CA did not sign"
        );
        let call = record.warmup.first().expect("the failed warm-up call");
        let e = call.error.as_ref().expect("an error");
        assert_eq!(
            e.kind,
            chimeraforge_core::record::CallErrorKind::Connect,
            "{backend}: {e}"
        );
        let msg = e.to_string();
        for part in [
            "\"secure-sim\"",
            &sim.base_url(),
            "ca_file",
            wrong.to_str().unwrap(),
        ] {
            assert!(msg.contains(part), "{backend}: {part:?} not in {msg}");
        }
    }

    let cfg = write_config(
        tmp.path(),
        &format!(
            "{HEAD}[[endpoints]]\nname = \"secure-sim\"\nurl = \"{}\"\nca_file = \"other-ca.pem\"\n",
            sim.base_url()
        ),
    );
    let o = run(&["bench", &cfg, "--backends", "all"], tmp.path());
    let t = text(&o);
    assert_ne!(o.status.code(), Some(0), "{t}");
    for part in ["\"secure-sim\"", "ca_file", wrong.to_str().unwrap()] {
        assert!(t.contains(part), "{part:?} not in {t}");
    }
}

/// Without a `ca_file` a self-signed server is refused with the fix in the message; with
/// `tls_insecure = true` the bench runs on every backend, and both the bench and doctor say
/// that the certificate is not checked.
#[test]
fn tls_insecure_runs_every_backend_and_is_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = tls_sim();
    let endpoint = format!(
        "[[endpoints]]\nname = \"self-signed\"\nurl = \"{}\"\n",
        sim.base_url()
    );
    let cfg = write_config(tmp.path(), &format!("{HEAD}{endpoint}"));
    let o = run(&["bench", &cfg, "--backends", "all"], tmp.path());
    let t = text(&o);
    assert_ne!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("\"self-signed\"") && t.contains("ca_file") && t.contains("tls_insecure"),
        "{t}"
    );

    let cfg = write_config(
        tmp.path(),
        &format!("{HEAD}{endpoint}tls_insecure = true\n"),
    );
    let o = run(&["doctor", &cfg], tmp.path());
    // doctor wraps its lines: compare words.
    let t = text(&o).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        t.contains("tls_insecure = true") && t.contains("not checked"),
        "{t}"
    );
    assert!(t.contains("model gemma3:latest present"), "{t}");

    let out = tmp.path().join("res");
    let o = run(
        &[
            "bench",
            &cfg,
            "--backends",
            "all",
            "--out",
            out.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("warning: endpoint \"self-signed\""), "{t}");
    let (records, _) = chimeraforge::results::read_runs(&out).unwrap();
    assert_eq!(
        records.len(),
        chimeraforge::backends::selectable_names().len()
    );
    assert!(records
        .iter()
        .all(|r| r.is_ok() && r.agents.iter().all(|a| a.endpoint.tls_insecure)));
}
