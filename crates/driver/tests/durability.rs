//! The durability promises, on the real binary: a killed bench loses no recorded run and
//! `--resume` finishes exactly the missing slots; a crashed child is accounted for and the
//! matrix goes on; Ctrl-C lets the run in flight finish (twice: stops it); API keys never
//! reach results, logs or reports; nothing is written outside the results directory.

use chimeraforge::matrix::Slot;
use chimeraforge::results::read_runs;
use chimeraforge_sim::{SimConfig, SimServer};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::text;

/// One backend keeps each test short; the fault tests cover every backend.
fn backend() -> &'static str {
    chimeraforge::backends::compiled_names()[0]
}

/// A matrix of `scenarios.len() × runs` runs on two embedded `fixed` simulators; with
/// `tokens` output tokens per call a run takes about 0.3 s + 0.1 s per 2 tokens.
fn config(dir: &Path, runs: u32, scenarios: &[&str], tokens: u32) -> PathBuf {
    let scenarios: Vec<String> = scenarios.iter().map(|s| format!("{s:?}")).collect();
    let text = format!(
        r#"name = "durability"
runs = {runs}
backends = ["{}"]
models = ["gemma3:latest"]
scenarios = [{}]
warmup_tokens = 2
[options]
num_predict = {tokens}
seed = 1
[simulator]
profile = "fixed"
device = "ideal"
[[endpoints]]
name = "a"
url = "sim"
[[endpoints]]
name = "b"
url = "sim"
"#,
        backend(),
        scenarios.join(", ")
    );
    let p = dir.join("durability.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn bin(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chimeraforge"));
    c.current_dir(cwd);
    c
}

fn spawn_bench(cwd: &Path, cfg: &Path, out: &Path) -> Child {
    bin(cwd)
        .args([
            "bench",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bench starts")
}

/// Complete lines in runs.jsonl (a line being written is not counted).
fn recorded_lines(out: &Path) -> usize {
    std::fs::read(out.join("runs.jsonl"))
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The bench's current child process (children of its main thread), if any.
fn child_of(pid: u32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn wait_with_limit(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(o) => o.expect("bench output"),
        Err(_) => {
            // SAFETY: signalling the process this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("bench did not exit within {limit:?}");
        }
    }
}

fn signal(pid: i32, sig: libc::c_int) -> bool {
    // SAFETY: kill(2) on a pid this test observed as its own (grand)child.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Every slot at most once, and the number of records.
fn unique_slots(out: &Path) -> (usize, usize) {
    let (records, warnings) = read_runs(out).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let slots: HashSet<Slot> = records.iter().map(Slot::of).collect();
    (records.len(), slots.len())
}

fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn killed_bench_loses_nothing_and_resume_completes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 3, &["chimera-homo", "baseline-vs-chimera"], 10);
    let out = tmp.path().join("res");
    let mut bench = spawn_bench(tmp.path(), &cfg, &out);
    wait_for("two recorded runs", Duration::from_secs(25), || {
        recorded_lines(&out) >= 2
    });
    // Somewhere inside the next run.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::thread::sleep(Duration::from_millis(u64::from(nanos % 400)));
    bench.kill().unwrap(); // SIGKILL
    let _ = bench.wait_with_output();

    let (records, warnings) = read_runs(&out).unwrap();
    assert!(records.len() >= 2 && records.len() < 6, "{}", records.len());
    assert!(
        warnings.len() <= 1,
        "only a last line can be partial: {warnings:?}"
    );
    let before = records.len();
    // A write torn by the kill leaves a partial last line; make sure there is one.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(out.join("runs.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"schema_version\":1,\"backend\":\"tok").unwrap();
    drop(f);

    let o = wait_with_limit(
        bin(tmp.path())
            .args(["bench", "--resume", out.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(30),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("removed a partial last line"), "{t}");
    assert!(
        t.contains(&format!(
            "{before} of 6 runs recorded, {} to run",
            6 - before
        )),
        "{t}"
    );
    assert_eq!(unique_slots(&out), (6, 6), "{t}");
    let m = manifest(&out);
    assert_eq!(m["complete"], true);
    assert_eq!(m["runs_recorded"], 6);
    assert_eq!(m["sessions"].as_array().unwrap().len(), 2);

    // Nothing is left to do: a second resume runs nothing and changes nothing.
    let o = bin(tmp.path())
        .args(["bench", "--resume", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("6 of 6 runs recorded, 0 to run"));
    assert_eq!(unique_slots(&out), (6, 6));
}

#[test]
fn resume_refuses_a_changed_config() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 1, &["chimera-homo"], 4);
    let out = tmp.path().join("res");
    let o = bin(tmp.path())
        .args([
            "bench",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let lines = std::fs::read(out.join("runs.jsonl")).unwrap();
    let text_before = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text_before.replace("num_predict = 4", "num_predict = 5"),
    )
    .unwrap();
    let o = bin(tmp.path())
        .args([
            "bench",
            cfg.to_str().unwrap(),
            "--resume",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("differs from the one") && t.contains("hint"),
        "{t}"
    );
    assert_eq!(std::fs::read(out.join("runs.jsonl")).unwrap(), lines);
    // --resume with --runs would change the matrix: refused by the parser.
    let o = bin(tmp.path())
        .args(["bench", "--resume", out.to_str().unwrap(), "--runs", "3"])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
}

#[test]
fn crashed_child_is_accounted_and_the_matrix_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 3, &["chimera-homo"], 16);
    let out = tmp.path().join("res");
    let bench = spawn_bench(tmp.path(), &cfg, &out);
    let pid = bench.id();
    wait_for("one recorded run", Duration::from_secs(25), || {
        recorded_lines(&out) >= 1
    });
    // Kill the next child mid-run (retry if one finishes just before the signal).
    let mut killed = None;
    wait_for("a child to kill", Duration::from_secs(25), || {
        if let Some(c) = child_of(pid) {
            std::thread::sleep(Duration::from_millis(150));
            if child_of(pid) == Some(c) && signal(c, libc::SIGKILL) {
                killed = Some(c);
            }
        }
        killed.is_some()
    });
    let o = wait_with_limit(bench, Duration::from_secs(30));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "a lost run is a failure: {t}");
    assert!(
        t.contains("Failures: 1 of 3 runs") && t.contains("child_crashed"),
        "{t}"
    );
    assert_eq!(
        unique_slots(&out),
        (2, 2),
        "nothing fake in runs.jsonl: {t}"
    );
    let m = manifest(&out);
    let lost = m["lost_runs"].as_array().unwrap();
    assert_eq!(lost.len(), 1, "{m}");
    assert_eq!(lost[0]["failure"]["kind"], "crashed");
    assert_eq!(m["runs_missing"], 1);
    assert_eq!(m["complete"], false);

    let o = bin(tmp.path())
        .args(["bench", "--resume", out.to_str().unwrap()])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("2 of 3 runs recorded, 1 to run"), "{t}");
    assert_eq!(unique_slots(&out), (3, 3));
}

#[test]
fn first_ctrl_c_finishes_the_run_in_flight_and_writes_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 5, &["chimera-homo"], 16);
    let out = tmp.path().join("res");
    let bench = spawn_bench(tmp.path(), &cfg, &out);
    let pid = bench.id();
    wait_for(
        "one recorded run and a run in flight",
        Duration::from_secs(25),
        || recorded_lines(&out) >= 1 && child_of(pid).is_some(),
    );
    let in_flight = child_of(pid).unwrap();
    let before = recorded_lines(&out);
    // The parent only: its children are in their own process group and never see it.
    assert!(signal(pid as i32, libc::SIGINT));
    let o = wait_with_limit(bench, Duration::from_secs(20));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(130), "{t}");
    let (n, unique) = unique_slots(&out);
    assert_eq!(n, unique);
    assert!(
        n > before && n < 5,
        "{before} before Ctrl-C, {n} after: {t}"
    );
    assert!(!signal(in_flight, 0), "the child was waited for");
    assert!(
        t.contains("speedup (measured)"),
        "the summary is printed: {t}"
    );
    assert!(t.contains("--resume"), "{t}");
    let m = manifest(&out);
    assert_eq!(m["interrupted"], true);
    assert_eq!(m["runs_recorded"], n);
    assert_eq!(m["lost_runs"].as_array().unwrap().len(), 0);
}

/// Ctrl-C, then `second` 100 ms later inside the same ~2.5 s run: the run in flight is killed
/// at once (its child reaped, no record, a lost run `interrupted`), the summary and the
/// manifest still written, exit 130 (the first signal was SIGINT).
fn a_second_signal_stops_the_run_in_flight_at_once(second: i32) {
    let tmp = tempfile::tempdir().unwrap();
    // Runs of ~2.5 s, so two signals land inside one.
    let cfg = config(tmp.path(), 4, &["chimera-homo"], 48);
    let out = tmp.path().join("res");
    let bench = spawn_bench(tmp.path(), &cfg, &out);
    let pid = bench.id();
    wait_for("a run in flight", Duration::from_secs(25), || {
        child_of(pid).is_some()
    });
    std::thread::sleep(Duration::from_millis(300));
    let in_flight = child_of(pid).expect("the first run is still in flight");
    assert!(signal(pid as i32, libc::SIGINT));
    std::thread::sleep(Duration::from_millis(100));
    let signalled = Instant::now();
    assert!(signal(pid as i32, second));
    let o = wait_with_limit(bench, Duration::from_secs(20));
    let t = text(&o);
    assert_eq!(
        o.status.code(),
        Some(130),
        "the first signal was SIGINT: {t}"
    );
    assert!(
        signalled.elapsed() < Duration::from_millis(1500),
        "stopped after {:?}",
        signalled.elapsed()
    );
    assert!(!signal(in_flight, 0), "the child was killed and reaped");
    let (n, unique) = unique_slots(&out);
    assert_eq!((n, unique), (0, 0), "{t}");
    let m = manifest(&out);
    assert_eq!(m["lost_runs"][0]["failure"]["kind"], "interrupted", "{m}");
    assert_eq!(m["interrupted_by"], "SIGINT", "{m}");
    assert!(m["finished_utc"].is_string(), "{m}");
    assert!(t.contains("--resume"), "{t}");
}

#[test]
fn second_ctrl_c_stops_the_run_in_flight_at_once() {
    a_second_signal_stops_the_run_in_flight_at_once(libc::SIGINT);
}

#[test]
fn sigterm_finishes_the_run_in_flight_and_writes_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 5, &["chimera-homo"], 16);
    let out = tmp.path().join("res");
    let bench = spawn_bench(tmp.path(), &cfg, &out);
    let pid = bench.id();
    wait_for(
        "one recorded run and a run in flight",
        Duration::from_secs(25),
        || recorded_lines(&out) >= 1 && child_of(pid).is_some(),
    );
    let in_flight = child_of(pid).unwrap();
    let before = recorded_lines(&out);
    // As systemd stops a service: SIGTERM to every process of the group, the run in
    // flight included. The child leaves it to the parent, which lets the run finish.
    assert!(signal(pid as i32, libc::SIGTERM));
    let _ = signal(in_flight, libc::SIGTERM);
    let o = wait_with_limit(bench, Duration::from_secs(20));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(143), "128 + SIGTERM: {t}");
    let (n, unique) = unique_slots(&out);
    assert_eq!(n, unique);
    assert!(
        n > before && n < 5,
        "the run in flight is recorded: {before} before SIGTERM, {n} after: {t}"
    );
    assert!(!signal(in_flight, 0), "the child was waited for");
    assert!(t.contains("SIGTERM"), "{t}");
    assert!(
        t.contains("speedup (measured)"),
        "the summary is printed: {t}"
    );
    assert!(t.contains("--resume"), "{t}");
    assert!(out.join("report.md").exists(), "{t}");
    let m = manifest(&out);
    assert_eq!(m["interrupted"], true, "{m}");
    assert_eq!(m["interrupted_by"], "SIGTERM", "{m}");
    assert!(m["finished_utc"].is_string(), "{m}");
    assert_eq!(m["sessions"][0]["interrupted_by"], "SIGTERM", "{m}");
    assert_eq!(m["runs_recorded"], n);
    assert_eq!(m["lost_runs"].as_array().unwrap().len(), 0, "{m}");
}

#[test]
fn sigterm_after_ctrl_c_stops_the_run_in_flight_at_once() {
    a_second_signal_stops_the_run_in_flight_at_once(libc::SIGTERM);
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(files(&p));
        } else {
            v.push(p);
        }
    }
    v
}

#[test]
fn api_keys_never_reach_results_or_output_and_nothing_escapes_the_results_dir() {
    let secret = format!(
        "sk-chimeraforge-secret-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let var = format!("CHIMERAFORGE_TEST_KEY_{}", std::process::id());
    let mut sim_cfg = SimConfig::profile("fixed").unwrap();
    sim_cfg.api_key = Some(secret.clone());
    let sim = SimServer::start(sim_cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let cfg_text = format!(
        r#"name = "keys"
runs = 1
models = ["gemma3:latest"]
scenarios = ["chimera-homo"]
warmup_tokens = 2
[options]
num_predict = 4
seed = 1
[[endpoints]]
name = "a"
url = "{}"
api_key_env = "{var}"
"#,
        sim.base_url()
    );
    let cfg = cwd.join("keys.toml");
    std::fs::write(&cfg, cfg_text).unwrap();
    let out = cwd.join("res");
    let every_compiled = chimeraforge::backends::compiled_names().join(",");
    let o = bin(&cwd)
        .args([
            "bench",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--backends",
            &every_compiled,
        ])
        .env(&var, &secret)
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "the key was sent and accepted: {t}"
    );
    assert!(!t.contains(&secret), "the key is in the output");
    let (records, _) = read_runs(&out).unwrap();
    assert_eq!(
        records.len(),
        chimeraforge::backends::compiled_names().len()
    );
    assert!(records.iter().all(|r| r.is_ok()), "{t}");
    for f in files(tmp.path()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the key is in {}",
            f.display()
        );
    }
    // Only the results directory and the config exist; inside it, only its fixed files.
    let mut top: Vec<String> = std::fs::read_dir(&cwd)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["keys.toml", "res"]);
    let mut inside: Vec<String> = files(&out)
        .iter()
        .map(|p| p.strip_prefix(&out).unwrap().display().to_string())
        .collect();
    inside.sort();
    assert_eq!(
        inside,
        [
            "manifest.json",
            "report.html",
            "report.md",
            "runs.csv",
            "runs.jsonl"
        ]
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);

    // Without the key the same bench is refused, so the success above proves it was sent.
    let o = bin(&cwd)
        .args(["bench", cfg.to_str().unwrap(), "--dry-run"])
        .env_remove(&var)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let out2 = cwd.join("res2");
    let o = bin(&cwd)
        .args([
            "bench",
            cfg.to_str().unwrap(),
            "--out",
            out2.to_str().unwrap(),
        ])
        .env_remove(&var)
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("401"), "{}", text(&o));
}

/// A key that cannot occur by chance: `sk-` and 32 hex digits of this moment.
fn unique_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // No run of zeros (a zero-padded field had seven): `holds_key` looks for any 10
    // characters of the key, and a float in a record ("17.388620000000003") held "6200000000".
    format!(
        "sk-{:016x}q{:x}",
        nanos as u64,
        (std::process::id() as u64) << 20 ^ 0x5eed
    )
}

/// Whether `bytes` hold the key or any 10 characters of it (a key cut by a preview or an
/// error body's first bytes leaks in pieces).
fn holds_key(bytes: &[u8], key: &str) -> bool {
    key.as_bytes()
        .windows(10)
        .any(|piece| bytes.windows(piece.len()).any(|w| w == piece))
}

/// The backends a user can run here: every compiled one, and the Python ones when installed.
fn every_backend() -> Vec<&'static str> {
    let all = chimeraforge::backends::selectable_names();
    for b in chimeraforge::backends::EXTERNAL_NAMES {
        if !all.contains(&b) {
            eprintln!("note: {b} not installed here (scripts/python-env.sh); not covered");
        }
    }
    all
}

/// A loopback HTTP/1.1 server that answers one request per connection and closes it (so
/// an HTTP/1.0 preflight and the measured clients alike read it to its end). `answer` gets
/// (method, path, authorization header) and returns (status, content type, body).
struct TinyServer {
    url: String,
}

impl TinyServer {
    fn start(
        answer: impl Fn(&str, &str, &str) -> (u16, &'static str, String) + Send + Sync + 'static,
    ) -> TinyServer {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let answer = std::sync::Arc::new(answer);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let answer = std::sync::Arc::clone(&answer);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).is_err() {
                        return;
                    }
                    let mut parts = request_line.split_whitespace();
                    let (method, path) = (
                        parts.next().unwrap_or("").to_owned(),
                        parts.next().unwrap_or("").to_owned(),
                    );
                    let (mut auth, mut length) = (String::from("(none)"), 0usize);
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            match name.trim().to_ascii_lowercase().as_str() {
                                "authorization" => auth = value.trim().to_owned(),
                                "content-length" => length = value.trim().parse().unwrap_or(0),
                                _ => {}
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    let (status, content_type, body) = answer(&method, &path, &auth);
                    let mut stream = reader.into_inner();
                    let _ = stream.write_all(
                        format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    );
                    let _ = stream.flush();
                });
            }
        });
        TinyServer { url }
    }
}

/// A server that answers the preflight and repeats the `Authorization` header it gets: in a
/// 401's error (`refuse`), or in the generated text of a 200 stream, once whole and once
/// where the output preview is cut (160 characters), so the preview ends inside the key.
fn echoing_server(refuse: bool) -> TinyServer {
    const JSON: &str = "application/json";
    TinyServer::start(move |method, path, auth| {
        match (method, path) {
        ("GET", "/api/tags") => (
            200,
            JSON,
            r#"{"models":[{"name":"gemma3:latest","model":"gemma3:latest"}]}"#.into(),
        ),
        ("GET", "/api/version") => (200, JSON, r#"{"version":"0.0.0-echo"}"#.into()),
        ("POST", _) if refuse => (
            401,
            JSON,
            serde_json::json!({"error": format!("invalid api key: you sent Authorization: {auth}")})
                .to_string(),
        ),
        ("POST", _) => {
            let head = format!("you sent Authorization: {auth}");
            // The second copy starts at character 143: the preview ends 10 characters
            // into its key.
            let pad = " ".repeat(143usize.saturating_sub(head.len() + 7));
            let (a, b) = auth.split_at(auth.len() / 2);
            let tokens = [
                "you sent Authorization: ".to_owned(),
                a.to_owned(),
                b.to_owned(),
                format!("{pad}again: "),
                auth.to_owned(),
                " end".to_owned(),
            ];
            let mut body = String::new();
            for t in &tokens {
                body.push_str(
                    &serde_json::json!({"model": "gemma3:latest", "created_at": "t",
                        "message": {"role": "assistant", "content": t}, "done": false})
                    .to_string(),
                );
                body.push('\n');
            }
            body.push_str(
                &serde_json::json!({"model": "gemma3:latest", "created_at": "t",
                    "message": {"role": "assistant", "content": ""}, "done": true,
                    "done_reason": "stop", "eval_count": tokens.len(),
                    "eval_duration": 1_000_000})
                .to_string(),
            );
            body.push('\n');
            (200, "application/x-ndjson", body)
        }
        _ => (404, JSON, r#"{"error":"not found"}"#.into()),
    }
    })
}

/// Issue 14, point 3: a server that echoes the Authorization header (in a 401 body, in the
/// generated text) puts the key nowhere: not in runs.jsonl, runs.csv, the report or the
/// manifest, nor on stdout or stderr; on every backend, Rust and Python.
#[test]
fn a_key_echoed_by_the_server_is_redacted_everywhere() {
    let key = unique_key();
    let var = format!("CHIMERAFORGE_TEST_ECHO_KEY_{}", std::process::id());
    let echo = echoing_server(false);
    let refuse = echoing_server(true);
    let backends = every_backend();
    let tmp = tempfile::tempdir().unwrap();
    for (name, extra, code) in [
        // Both agents on the echoing server: every run works, the key is in its text.
        ("echo", String::new(), 0),
        // The second agent's server refuses generation with a 401 that repeats the key.
        (
            "refuse",
            format!(
                "[[endpoints]]\nname = \"b\"\nurl = \"{}\"\napi_key_env = \"{var}\"\n",
                refuse.url
            ),
            1,
        ),
    ] {
        let cfg = tmp.path().join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "name = \"{name}\"\nruns = 1\nmodels = [\"gemma3:latest\"]\n\
                 scenarios = [\"chimera-homo\"]\nwarmup_tokens = 2\n[options]\nnum_predict = 6\n\
                 [[endpoints]]\nname = \"a\"\nurl = \"{}\"\napi_key_env = \"{var}\"\n{extra}",
                echo.url
            ),
        )
        .unwrap();
        let out = tmp.path().join(name);
        let o = bin(tmp.path())
            .arg("bench")
            .arg(&cfg)
            .arg("--out")
            .arg(&out)
            .args(["--backends", &backends.join(",")])
            .env(&var, &key)
            .output()
            .unwrap();
        let t = text(&o);
        assert_eq!(o.status.code(), Some(code), "{name}: {t}");
        assert!(
            !holds_key(t.as_bytes(), &key),
            "{name}: the key is in the output: {t}"
        );
        let (records, _) = read_runs(&out).unwrap();
        assert_eq!(records.len(), backends.len(), "{name}: {t}");
        for r in &records {
            if code == 0 {
                assert!(r.is_ok(), "{name} {}: {t}", r.backend);
                let preview = &r.warmup[0].output_preview;
                assert!(
                    preview.contains("Bearer [redacted api key]"),
                    "{name} {}: the server echoed the key and it was redacted: {preview:?}",
                    r.backend
                );
            } else {
                let e = match &r.status {
                    chimeraforge_core::record::RunStatus::Failed { error, .. } => error,
                    ok => panic!("{name} {}: {ok:?}", r.backend),
                };
                assert_eq!(e.status, Some(401), "{name} {}: {e:?}", r.backend);
                assert!(
                    e.message.contains("Bearer [redacted api key]"),
                    "{name} {}: {}",
                    r.backend,
                    e.message
                );
            }
        }
        let written = files(&out);
        for f in [
            "runs.jsonl",
            "runs.csv",
            "report.md",
            "report.html",
            "manifest.json",
        ] {
            assert!(written.contains(&out.join(f)), "{name}: no {f}: {t}");
        }
        for f in files(tmp.path()) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !holds_key(&bytes, &key),
                "{name}: the key is in {}",
                f.display()
            );
        }
    }
}

/// The parent's own redaction: a child that prints the key on stderr and dies (a Python
/// traceback quoting a header, say) leaves a lost run whose stderr tail is kept in the
/// manifest and printed; the key is in neither.
#[test]
fn a_key_on_a_dying_childs_stderr_is_redacted() {
    use std::os::unix::fs::PermissionsExt;
    let key = unique_key();
    let var = format!("CHIMERAFORGE_TEST_STDERR_KEY_{}", std::process::id());
    let tmp = tempfile::tempdir().unwrap();
    let venv = tmp.path().join("venv");
    std::fs::create_dir_all(venv.join("bin")).unwrap();
    std::fs::write(venv.join(".chimeraforge-requirements"), "").unwrap();
    let python = venv.join("bin/python");
    std::fs::write(
        &python,
        format!("#!/bin/sh\necho \"Traceback: headers {{'authorization': 'Bearer ${var}'}}\" >&2\nexit 1\n"),
    )
    .unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = tmp.path().join("stderr.toml");
    std::fs::write(
        &cfg,
        format!(
            "name = \"stderr\"\nruns = 1\nmodels = [\"gemma3:latest\"]\n\
             scenarios = [\"chimera-homo\"]\nbackends = [\"python-asyncio\"]\n\
             [simulator]\nprofile = \"fixed\"\n[[endpoints]]\nname = \"a\"\nurl = \"sim\"\n\
             api_key_env = \"{var}\"\n"
        ),
    )
    .unwrap();
    let out = tmp.path().join("res");
    let o = bin(tmp.path())
        .arg("bench")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .arg("--json")
        .env(chimeraforge::python::PYTHON_VENV_ENV, &venv)
        .env(&var, &key)
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let m = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(
        m.contains("Bearer [redacted api key]"),
        "the stderr tail is kept, redacted: {m}"
    );
    assert!(t.contains("Bearer [redacted api key]"), "and printed: {t}");
    assert!(!holds_key(m.as_bytes(), &key), "{m}");
    assert!(!holds_key(t.as_bytes(), &key), "{t}");
}

/// The measured child redacts its own record (the parent's redaction above would hide a
/// child that did not): `chimeraforge child` on every compiled backend, against a server
/// that repeats the key in a 401, writes no piece of it on stdout or stderr.
#[test]
fn the_rust_child_redacts_its_own_record() {
    use chimeraforge_core::api::ApiKind;
    use std::io::Write;
    let key = unique_key();
    let var = format!("CHIMERAFORGE_TEST_CHILD_KEY_{}", std::process::id());
    let refuse = echoing_server(true);
    let sim = common::start(chimeraforge_sim::Device::Ideal);
    for backend in chimeraforge::backends::compiled_names() {
        let mut job = common::homo_job(backend, &[&sim], 0, ApiKind::Ollama);
        for a in &mut job.plan.agents {
            a.endpoint.base_url = refuse.url.clone();
            a.endpoint.api_key_env = Some(var.clone());
        }
        let mut child = bin(Path::new("."))
            .arg("child")
            .env(&var, &key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&serde_json::to_vec(&job).unwrap())
            .unwrap();
        let o = wait_with_limit(child, Duration::from_secs(60));
        let t = text(&o);
        assert!(o.status.success(), "{backend}: {t}");
        assert!(
            t.contains("Bearer [redacted api key]"),
            "{backend}: the 401 is recorded, redacted: {t}"
        );
        assert!(!holds_key(t.as_bytes(), &key), "{backend}: {t}");
    }
}
