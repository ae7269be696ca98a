//! A server that floods valid, fat tokens and never says `done` (issue 14): `chimeraforge
//! bench` against it stays small (bench + its children under 512 MiB resident at their
//! peak), records the flooded run as a `runaway_stream` failure with a small record, and
//! keeps the other runs. Its own test binary, so `RUSAGE_CHILDREN` sees only this bench.

use chimeraforge::results::read_runs;
use chimeraforge_core::call::CallErrorKind;
use chimeraforge_core::record::RunStatus;
use chimeraforge_sim::{FaultMode, SimConfig, SimServer};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The issue's bound for bench and its children together.
const RSS_LIMIT_KIB: u64 = 512 * 1024;

/// Resident memory of `pid` (VmRSS), KiB; `None` once it has gone.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// `pid` and every process below it.
fn tree(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok());
            if let Some(pp) = ppid {
                parent_of.push((p, pp));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

/// Largest `ru_maxrss` of any waited-for descendant of this process, KiB.
fn children_maxrss_kib() -> u64 {
    // SAFETY: getrusage writes into the struct we own.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru.ru_maxrss as u64
    }
}

fn config(dir: &Path, base_url: &str) -> std::path::PathBuf {
    let text = format!(
        r#"name = "flood"
runs = 3
backends = ["{}"]
models = ["gemma3:latest"]
scenarios = ["chimera-homo"]
warmup_tokens = 2
[options]
num_predict = 8
seed = 1
[timeouts]
total_ms = 120000
[[endpoints]]
name = "flood"
url = "{base_url}"
"#,
        chimeraforge::backends::compiled_names()[0]
    );
    let p = dir.join("flood.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn flooding_server_is_a_bounded_runaway_stream() {
    let mut cfg = SimConfig::profile("fixed").unwrap();
    cfg.faults.mode = Some(FaultMode::Flood);
    cfg.faults.after_tokens = 2;
    // The 14th generation request floods: run 1 (a warm-up call per agent, 2, and 8 calls)
    // is clean, run 2 meets the flood in its sequential phase (after its 2 warm-up calls and
    // its first sequential call).
    cfg.faults.every_nth_request = Some(14);
    cfg.faults.stall_ms = 150_000;
    let sim = SimServer::start(cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = config(dir.path(), &sim.base_url());
    let out = dir.path().join("out");

    let started = Instant::now();
    let mut bench = Command::new(env!("CARGO_BIN_EXE_chimeraforge"))
        .args(["bench", cfg_path.to_str().unwrap(), "--quiet", "--out"])
        .arg(&out)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bench starts");
    let pid = bench.id();
    let mut peak_sum_kib = 0;
    let status = loop {
        if let Some(status) = bench.try_wait().unwrap() {
            break status;
        }
        let sum: u64 = tree(pid).into_iter().filter_map(rss_kib).sum();
        peak_sum_kib = peak_sum_kib.max(sum);
        if peak_sum_kib >= RSS_LIMIT_KIB || started.elapsed() > Duration::from_secs(200) {
            for p in tree(pid).into_iter().rev() {
                // SAFETY: SIGKILL to processes of the bench this test started.
                unsafe { libc::kill(p as libc::pid_t, libc::SIGKILL) };
            }
            let _ = bench.wait();
            panic!(
                "bench + children reached {peak_sum_kib} KiB resident after {:?} (the flood was \
                 not cut off)",
                started.elapsed()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    let out_text = {
        let mut s = String::new();
        use std::io::Read;
        bench.stdout.take().unwrap().read_to_string(&mut s).ok();
        bench.stderr.take().unwrap().read_to_string(&mut s).ok();
        s
    };
    let maxrss_kib = children_maxrss_kib();
    eprintln!(
        "flood: bench took {took:?}, exit {status}, peak RSS of bench + children (sum, polled) \
         {peak_sum_kib} KiB, largest ru_maxrss {maxrss_kib} KiB"
    );
    assert!(
        peak_sum_kib < RSS_LIMIT_KIB,
        "bench + children reached {peak_sum_kib} KiB resident"
    );
    assert!(
        maxrss_kib < RSS_LIMIT_KIB,
        "a process of the bench tree reached {maxrss_kib} KiB resident"
    );

    let (runs, _) = read_runs(&out).expect("runs.jsonl readable");
    assert_eq!(runs.len(), 3, "every run recorded:\n{out_text}");
    let ok = runs.iter().filter(|r| r.is_ok()).count();
    assert!(
        ok >= 1,
        "the runs the flood did not touch are kept:\n{out_text}"
    );
    let runaway: Vec<_> = runs
        .iter()
        .filter_map(|r| match &r.status {
            RunStatus::Failed { error, .. } if error.kind == CallErrorKind::RunawayStream => {
                Some((r, error))
            }
            _ => None,
        })
        .collect();
    assert!(
        !runaway.is_empty(),
        "no run failed as runaway_stream:\n{out_text}"
    );
    for (r, error) in &runaway {
        assert!(
            error.message.contains("more than 32 text events"),
            "{error}"
        );
        let client = r
            .client
            .as_ref()
            .expect("the failed run has its client cost");
        assert!(client.peak_rss_kib < RSS_LIMIT_KIB, "{client:?}");
    }
    // The runs.jsonl line of a flooded run stays small (it was 25 MB before the cap).
    let lines = std::fs::read_to_string(out.join("runs.jsonl")).unwrap();
    let longest = lines.lines().map(str::len).max().unwrap_or(0);
    eprintln!("flood: longest runs.jsonl line {longest} bytes");
    assert!(longest < 256 * 1024, "a {longest}-byte runs.jsonl line");
    assert!(
        out_text.contains("runaway_stream") || out_text.contains("runaway stream"),
        "the failure is named in the output:\n{out_text}"
    );
}
