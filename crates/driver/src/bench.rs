//! `chimeraforge bench`, step by step: resolve the matrix (or the one recorded in the
//! directory being resumed), check the servers, open the results directory, run the slots,
//! finish the manifest, summarize and report.

use crate::{load_config, select_backends, BenchArgs};
use anyhow::{bail, Context};
use chimeraforge::{
    backends, config, failures, interrupt, matrix, preflight, progress, simulators, spawn, summary,
};
use chimeraforge_core::record::RunRecord;
use chimeraforge_core::workload::{Endpoint, PromptCache};
use chimeraforge_core::BackendId;
use chimeraforge_results::{
    ChildFailureKind, Host, LostRun, Manifest, Outcome, ResultsDir, Session, SessionEnd, Slot, Tool,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What is measured: the config, its backends and the run order.
struct Matrix {
    source: config::Source,
    cfg: config::Config,
    backends: Vec<BackendId>,
    order: Vec<Slot>,
    /// The directory being resumed, with its manifest as read.
    resumed: Option<(PathBuf, Manifest)>,
}

/// The results directory being written, and what it holds so far.
struct OpenResults {
    out_dir: PathBuf,
    dir: ResultsDir,
    manifest: Manifest,
    /// Every record in `runs.jsonl`, earlier sessions' included.
    records: Vec<RunRecord>,
    /// `manifest.lost_runs` before this session: later entries are this session's.
    lost_before: usize,
    /// This session's prompt nonce (`None` with `prompt_cache = "allow"`).
    nonce: Option<String>,
}

/// How running the slots ended.
struct Ran {
    /// Runs this session set out to run.
    todo: usize,
    /// Stopped by a second signal: the run in flight was killed.
    aborted: bool,
}

/// How the matrix stands at the end of this session.
struct Finished {
    /// Scheduled runs with no record.
    missing: usize,
    /// Stopped by Ctrl-C or SIGTERM.
    interrupted: bool,
}

/// Run `bench` with `args`.
pub(crate) fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let Some(m) = resolve_matrix(&args)? else {
        for line in backends::listing() {
            outln!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    };
    // Keys are checked before any request, and never printed or written from here on.
    chimeraforge::secrets::install(&m.cfg.endpoints)?;
    let output = args.output;
    output.note(&format!(
        "chimeraforge {}: config {} ({}), {} backends × {} models × {} scenarios × {} runs = {} runs",
        env!("CARGO_PKG_VERSION"),
        m.cfg.name,
        m.source.path.display(),
        m.backends.len(),
        m.cfg.models.len(),
        m.cfg.scenarios.len(),
        m.cfg.runs,
        m.order.len()
    ));
    if args.dry_run {
        return dry_run(&m);
    }
    let (endpoints, sims, servers) = check_servers(&m.cfg)?;
    // From here on a Ctrl-C or SIGTERM finishes the manifest and prints the summary.
    interrupt::install().context("cannot install the Ctrl-C and SIGTERM handlers")?;
    let mut open = open_results(&args, &m, servers)?;
    output.note(&format!("results: {}", open.out_dir.display()));
    let ran = run_slots(&m, &endpoints, &mut open, output, args.resume.is_some())?;
    drop(sims);
    let finished = finish_manifest(&m, &mut open, &ran)?;
    summarize(&m, &open, &ran, &finished, &args)
}

/// The matrix to run: the one recorded in the directory being resumed, or the config's (with
/// the command line's runs and backends). `None` for `--backends list`.
fn resolve_matrix(args: &BenchArgs) -> anyhow::Result<Option<Matrix>> {
    if let Some(dir) = &args.resume {
        let manifest = chimeraforge_results::read_manifest(dir)?;
        let (source, cfg, backends, order) =
            recorded_matrix(args.config.as_deref(), dir, &manifest)?;
        return Ok(Some(Matrix {
            source,
            cfg,
            backends,
            order,
            resumed: Some((dir.clone(), manifest)),
        }));
    }
    let (source, mut cfg) = load_config(args.config.as_deref())?;
    if let Some(r) = args.runs {
        cfg.runs = r;
    }
    if let Some(c) = args.connection {
        cfg.client.connection = c;
    }
    let Some(backends) = select_backends(args.backends.as_deref(), &cfg)? else {
        return Ok(None);
    };
    let order = matrix::schedule(&cfg, &backends);
    Ok(Some(Matrix {
        source,
        cfg,
        backends,
        order,
        resumed: None,
    }))
}

/// `--dry-run`: print the run order (what is still to run, when resuming); write nothing.
fn dry_run(m: &Matrix) -> anyhow::Result<ExitCode> {
    // A dry run writes nothing, so a resumed directory is read without repairing it.
    let done: HashSet<Slot> = match &m.resumed {
        Some((dir, _)) => chimeraforge_results::read_runs(dir)?
            .0
            .iter()
            .map(Slot::of)
            .collect(),
        None => HashSet::new(),
    };
    outln!(
        "order (interleaved{}){}:",
        m.cfg
            .shuffle_seed
            .map(|s| format!(", shuffled with seed {s}"))
            .unwrap_or_default(),
        if m.resumed.is_some() {
            format!(
                ", {} of {} still to run",
                m.order.iter().filter(|s| !done.contains(s)).count(),
                m.order.len()
            )
        } else {
            String::new()
        }
    );
    for (i, s) in m.order.iter().enumerate() {
        if done.contains(s) {
            continue;
        }
        outln!(
            "  {:>4}. {:<14} {:<24} {:<19} run {}",
            i + 1,
            s.cell.backend,
            s.cell.model,
            s.cell.scenario.name(),
            s.run_index + 1
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Start the config's simulators and check every server (up, API, models) before any run;
/// returns the endpoints with real URLs, the simulators (stopped when dropped) and what each
/// server said, as the manifest records it.
fn check_servers(
    cfg: &config::Config,
) -> anyhow::Result<(
    Vec<Endpoint>,
    simulators::Simulators,
    Vec<serde_json::Value>,
)> {
    let (endpoints, sims) = simulators::start_simulators(cfg)?;
    for ep in endpoints.iter().filter(|e| e.tls_insecure) {
        eoutln!("warning: {}", chimeraforge::doctor::insecure_warning(ep));
    }
    let mut servers = Vec::new();
    for ep in &endpoints {
        let facts = preflight::check(ep, &cfg.models)?;
        servers.push(serde_json::to_value(facts)?);
    }
    Ok((endpoints, sims, servers))
}

/// Create the results directory with a new manifest, or reopen the one being resumed (its
/// repairs printed as warnings) and add this session to its manifest.
fn open_results(
    args: &BenchArgs,
    m: &Matrix,
    servers: Vec<serde_json::Value>,
) -> anyhow::Result<OpenResults> {
    let started = unix_now_s();
    let started_utc = chimeraforge_results::utc_stamp(started);
    // A fresh nonce every invocation, resumed ones included: a slot that was cut off may
    // have sent its prompts already, and prompts the server has cached would be measured
    // warm, unlike every slot recorded before (each measured cold). See
    // docs/methodology.md, "Prompt caches".
    let nonce = (m.cfg.prompt_cache == PromptCache::Isolate)
        .then(chimeraforge_core::workload::prompt_nonce);
    let redact: chimeraforge_results::Redact = chimeraforge::secrets::scrub_json;
    if let Some((out_dir, _)) = &m.resumed {
        let reopened = ResultsDir::reopen(out_dir, redact)?;
        for w in &reopened.warnings {
            eoutln!("warning: {w}");
        }
        let mut manifest = reopened.manifest;
        manifest.sessions.push(Session {
            started_utc,
            resumed: true,
            servers: Some(servers),
            prompt_nonce: nonce.clone(),
            end: None,
        });
        reopened.dir.write_manifest(&manifest)?;
        return Ok(OpenResults {
            out_dir: out_dir.clone(),
            dir: reopened.dir,
            lost_before: manifest.lost_runs.len(),
            manifest,
            records: reopened.records,
            nonce,
        });
    }
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results").join(format!("{started_utc}-{}", m.cfg.name)));
    let manifest = Manifest {
        schema_version: chimeraforge_results::SCHEMA_VERSION,
        tool: Some(Tool {
            name: "chimeraforge".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            git_revision: env!("CHIMERAFORGE_GIT_REV").to_owned(),
            rustc: env!("CHIMERAFORGE_RUSTC").to_owned(),
            backends_in_build: backends::compiled_names()
                .into_iter()
                .map(BackendId::from)
                .collect(),
        }),
        config_path: m.source.path.display().to_string(),
        config_text: m.source.text.clone(),
        config_fnv1a64: format!("{:016x}", fnv1a64(m.source.text.as_bytes())),
        config: serde_json::to_value(&m.cfg)?,
        backends: m.backends.clone(),
        order: Some(m.order.clone()),
        host: Some(host_facts()),
        servers,
        simulated_endpoints: m
            .cfg
            .endpoints
            .iter()
            .filter(|e| e.base_url == config::SIM_URL)
            .map(|e| e.name.clone())
            .collect(),
        started_utc: started_utc.clone(),
        prompt_cache: Some(m.cfg.prompt_cache),
        connection: Some(m.cfg.client.connection),
        prompt_nonce: nonce.clone(),
        sessions: vec![Session {
            started_utc,
            resumed: false,
            servers: None,
            prompt_nonce: nonce.clone(),
            end: None,
        }],
        lost_runs: Vec::new(),
        child_failures: Vec::new(),
        outcome: None,
    };
    let dir = ResultsDir::create(&out_dir, &manifest, redact)?;
    Ok(OpenResults {
        out_dir,
        dir,
        manifest,
        records: Vec::new(),
        lost_before: 0,
        nonce,
    })
}

/// Run every slot without a record, in order, each in its own child: a record is appended
/// and synced as its run ends, a lost run goes into the manifest at once. Stops at a signal.
fn run_slots(
    m: &Matrix,
    endpoints: &[Endpoint],
    open: &mut OpenResults,
    output: progress::OutputMode,
    resuming: bool,
) -> anyhow::Result<Ran> {
    let done: HashSet<Slot> = open.records.iter().map(Slot::of).collect();
    let todo: Vec<(usize, &Slot)> = m
        .order
        .iter()
        .enumerate()
        .filter(|(_, s)| !done.contains(s))
        .collect();
    if resuming {
        output.note(&format!(
            "resuming: {} of {} runs recorded, {} to run",
            m.order.len() - todo.len(),
            m.order.len(),
            todo.len()
        ));
    }
    let exe = std::env::current_exe()
        .context("cannot find this program's path to start child processes")?;
    let mut aborted = false;
    let mut progress = progress::Progress::new(
        output,
        m.order.len(),
        m.order.len() - todo.len(),
        m.cfg.runs,
    );
    for &(i, slot) in &todo {
        if interrupt::stop_requested() {
            break;
        }
        progress.run_started(i, slot);
        let job = matrix::job_for(&m.cfg, endpoints, slot, open.nonce.as_deref());
        match spawn::run_child_live(&exe, &job, progress.live_sink()) {
            Ok(record) => {
                open.dir.append(&record).with_context(|| {
                    format!(
                        "cannot append run {} to {}/runs.jsonl; the record was: {}",
                        i + 1,
                        open.out_dir.display(),
                        serde_json::to_string(&record).unwrap_or_default()
                    )
                })?;
                progress.run_finished(&record);
                if let Some(w) = chimeraforge::scaling::bottleneck_warning(&record) {
                    progress.note(&format!("  warning: {w}"));
                }
                open.records.push(record);
            }
            Err(failure) => {
                let interrupted = failure.kind == ChildFailureKind::Interrupted;
                progress.run_failed(&format!(
                    "{} {} {} run {}: {failure}",
                    slot.cell.backend,
                    slot.cell.model,
                    slot.cell.scenario.name(),
                    slot.run_index + 1
                ));
                // Written at once: the manifest accounts for the lost run even if this
                // process dies next.
                open.manifest.lost_runs.push(LostRun {
                    slot: slot.clone(),
                    failure,
                    at_utc: chimeraforge_results::utc_stamp(unix_now_s()),
                });
                open.dir.write_manifest(&open.manifest)?;
                if interrupted {
                    aborted = true;
                    break;
                }
            }
        }
    }
    progress.finish();
    Ok(Ran {
        todo: todo.len(),
        aborted,
    })
}

/// Write how this session and the matrix stand (end time, counts, signal) into the manifest.
fn finish_manifest(m: &Matrix, open: &mut OpenResults, ran: &Ran) -> anyhow::Result<Finished> {
    let interrupted = interrupt::stop_requested();
    let interrupted_by = interrupt::first_signal().map(str::to_owned);
    let recorded: HashSet<Slot> = open.records.iter().map(Slot::of).collect();
    let missing = m.order.iter().filter(|s| !recorded.contains(s)).count();
    let lost = &open.manifest.lost_runs[open.lost_before..];
    let tally = failures::count(&open.records, lost);
    let runs_attempted = ran.todo.min(open.records.len() + lost.len());
    let now = chimeraforge_results::utc_stamp(unix_now_s());
    if let Some(last) = open.manifest.sessions.last_mut() {
        last.end = Some(SessionEnd {
            finished_utc: now.clone(),
            runs_attempted,
            interrupted,
            interrupted_by: interrupted_by.clone(),
        });
    }
    open.manifest.outcome = Some(Outcome {
        finished_utc: now,
        runs_recorded: open.records.len(),
        runs_failed: tally.failed,
        runs_missing: missing,
        complete: missing == 0,
        interrupted,
        interrupted_by,
    });
    open.dir.write_manifest(&open.manifest)?;
    Ok(Finished {
        missing,
        interrupted,
    })
}

/// The terminal's (or `--json`'s) summary, the failures, the report, what is left to do,
/// and the exit code.
fn summarize(
    m: &Matrix,
    open: &OpenResults,
    ran: &Ran,
    finished: &Finished,
    args: &BenchArgs,
) -> anyhow::Result<ExitCode> {
    let output = args.output;
    let (out_dir, records) = (&open.out_dir, &open.records);
    let Finished {
        missing,
        interrupted,
    } = *finished;
    if ran.aborted {
        output.note(&format!(
            "stopped by a second signal (first {}): {} of {} runs recorded in {}\n  hint: finish with `chimeraforge bench --resume {}`",
            interrupt::first_signal_words(),
            records.len(),
            m.order.len(),
            out_dir.display(),
            out_dir.display()
        ));
        return Ok(ExitCode::from(interrupt::exit_code()));
    }
    let lost = &open.manifest.lost_runs[open.lost_before..];
    let tally = failures::count(records, lost);
    if output.json {
        let lost_text: Vec<String> = lost.iter().map(|l| l.failure.to_string()).collect();
        let summary =
            summary::json_summary(&m.cfg.name, out_dir, records, &lost_text, m.order.len());
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        outln!("\n{}", summary::cells_table(records));
        if let Some(t) = chimeraforge::scaling::table(records) {
            outln!("\n{t}");
        }
    }
    let failures_text = tally.render();
    if !failures_text.is_empty() {
        output.note(failures_text.trim_end());
    }
    // The report is derived from runs.jsonl, already safe on disk: a failure here loses
    // nothing measured, so it warns and the bench's exit code stays about the runs.
    let report_written = match chimeraforge_report::write_report(out_dir) {
        Ok(r) => {
            for w in &r.warnings {
                output.note(&format!("warning: {w}"));
            }
            true
        }
        Err(e) => {
            output.note(&format!("warning: the report could not be written: {e}"));
            false
        }
    };
    output.note(summary::results_footer(out_dir, report_written).trim_end());
    if missing > 0 {
        output.note(&format!(
            "{missing} of {} runs have no record{}\n  hint: run them with `chimeraforge bench --resume {}`",
            m.order.len(),
            if interrupted {
                format!(" (interrupted by {})", interrupt::first_signal_words())
            } else {
                String::new()
            },
            out_dir.display()
        ));
    }
    if interrupted {
        return Ok(ExitCode::from(interrupt::exit_code()));
    }
    if tally.failed > 0 {
        output.note(&format!(
            "{} run(s) failed (see above; failed runs are kept in runs.jsonl with their cause)\n  hint: `chimeraforge doctor CONFIG` checks every server",
            tally.failed
        ));
        if !args.allow_failures {
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The matrix recorded in a results directory being resumed: its config (which `config`,
/// when given, must match exactly), backends and run order.
fn recorded_matrix(
    config: Option<&Path>,
    dir: &Path,
    manifest: &Manifest,
) -> anyhow::Result<(config::Source, config::Config, Vec<BackendId>, Vec<Slot>)> {
    let manifest_path = dir.join(chimeraforge_results::MANIFEST);
    let recorded = manifest.config_fnv1a64.as_str();
    if recorded.is_empty() {
        bail!(
            "{} has no config_fnv1a64: not a manifest this version can resume",
            manifest_path.display()
        );
    }
    let source = match config {
        Some(p) => {
            let source = config::Source::read(p)?;
            let given = format!("{:016x}", fnv1a64(source.text.as_bytes()));
            if given != recorded {
                bail!(
                    "config {} differs from the one {} was started with (fnv1a64 {given}, recorded {recorded})\n  hint: resume without a config file to use the copy recorded in {}, or restore the original file; to measure with the new config, start a new results directory with --out",
                    p.display(),
                    dir.display(),
                    manifest_path.display()
                );
            }
            source
        }
        None => {
            let text = manifest.config_text.as_str();
            if text.is_empty() {
                bail!("{} has no config_text", manifest_path.display());
            }
            if format!("{:016x}", fnv1a64(text.as_bytes())) != recorded {
                bail!(
                    "{}: config_text does not match config_fnv1a64 (was the manifest edited?)\n  hint: pass the original config file too: chimeraforge bench CONFIG --resume {}",
                    manifest_path.display(),
                    dir.display()
                );
            }
            let path = if manifest.config_path.is_empty() {
                "config"
            } else {
                &manifest.config_path
            };
            config::Source {
                path: format!("{path} (as recorded in {})", manifest_path.display()).into(),
                text: text.to_owned(),
            }
        }
    };
    let mut cfg = config::parse(&source)?;
    // The recorded config carries the command-line overrides the matrix was started with.
    // A manifest from before connection policies: its calls each sent `Connection: close`.
    cfg.client.connection = match manifest.connection {
        Some(c) => c,
        None => {
            eoutln!(
                "warning: {} was written before connection policies; its remaining runs use connection = \"fresh\" (as its earlier runs sent `Connection: close`), but they warm up with one call per agent where earlier runs warmed up once per (url, model, options), and smol-1kb's earlier runs reused connections a server kept open\n  hint: to compare like with like, start a new results directory with --out",
                dir.display()
            );
            chimeraforge_core::ConnectionPolicy::Fresh
        }
    };
    if let Some(runs) = manifest.config_runs() {
        cfg.runs = runs;
    }
    if manifest.backends.is_empty() {
        bail!("{} has no readable backends list", manifest_path.display());
    }
    let runnable = backends::selectable_names();
    if let Some(b) = manifest
        .backends
        .iter()
        .find(|b| !runnable.contains(&b.as_str()))
    {
        let hint = if backends::python_backend(b.as_str()).is_some() {
            format!(
                "install its environment: `{}`",
                chimeraforge::python::PYTHON_INSTALL_COMMAND
            )
        } else {
            format!("resume with a build that has it: `cargo build --release --features {b}`")
        };
        bail!(
            "{} was started with backend {:?}, which cannot run here\n  hint: {hint}",
            dir.display(),
            b.as_str()
        );
    }
    let order = manifest
        .order
        .clone()
        .unwrap_or_else(|| matrix::schedule(&cfg, &manifest.backends));
    Ok((source, cfg, manifest.backends.clone(), order))
}

/// FNV-1a, 64-bit: a stable fingerprint of the config text (detects edits, not attacks).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The machine this runs on, from `/proc` where Linux has it.
fn host_facts() -> Host {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    let cpu_model = read("/proc/cpuinfo").and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_owned())
    });
    let mem_kib = read("/proc/meminfo").and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemTotal"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    });
    Host {
        hostname: read("/proc/sys/kernel/hostname"),
        os: std::env::consts::OS.to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
        kernel: read("/proc/sys/kernel/osrelease"),
        cpus: std::thread::available_parallelism().map(|n| n.get()).ok(),
        cpu_model,
        mem_total_kib: mem_kib,
    }
}
