//! `chimeraforge`: run the dual-agent matrix across async runtimes and models, measured right.

use chimeraforge::{
    backends, child, config, failures, interrupt, matrix, preflight, progress, results, summary,
};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The quickstart config, embedded so `chimeraforge bench` works from any directory.
const QUICKSTART: &str = include_str!("../../../bench-configs/quickstart.toml");
const QUICKSTART_PATH: &str = "bench-configs/quickstart.toml";

/// `println!` that survives a reader who went away (see `chimeraforge::out`).
macro_rules! outln {
    ($($t:tt)*) => { chimeraforge::out::line(&format!($($t)*)) };
}
/// `print!`, likewise.
macro_rules! out {
    ($($t:tt)*) => { chimeraforge::out::text(&format!($($t)*)) };
}
/// `eprintln!`, likewise.
macro_rules! eoutln {
    ($($t:tt)*) => { chimeraforge::out::eline(&format!($($t)*)) };
}

#[derive(Parser)]
#[command(
    name = "chimeraforge",
    version,
    about = "Measure how the client's async runtime and the model shape concurrent multi-agent LLM workloads.",
    after_help = "Start here:
  chimeraforge bench                    # the quickstart: embedded simulators, < 1 minute
  chimeraforge doctor CONFIG            # check the servers of a config before benching it
  chimeraforge bench CONFIG             # measure it; results/<UTC time>-<name>/
  chimeraforge completions bash|zsh|fish

Docs: README.md, docs/methodology.md, docs/configs.md, docs/results-schema.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a matrix (backend × model × scenario × runs) and write a results directory.
    ///
    /// Examples:
    ///   chimeraforge bench                      # quickstart on the embedded simulator
    ///   chimeraforge bench bench-configs/tr116.toml --backends tokio-default,smol-1kb
    ///   chimeraforge bench --backends list      # the backends this binary contains
    ///   chimeraforge bench --resume results/20260101T120000Z-quickstart
    ///
    /// Every run's record is appended to runs.jsonl and synced to disk as it ends; a failed
    /// run is recorded with its cause and the matrix goes on (measured calls are never retried).
    /// Ctrl-C once: the run in flight finishes, the summary is written, exit 130.
    /// Ctrl-C twice: the run in flight is stopped (it leaves no record), exit 130.
    /// SIGTERM (`timeout`, systemd, a CI cancel) is the same, with exit 143; a second
    /// signal of either kind stops the run in flight. Either way `--resume DIR` runs what
    /// is missing.
    /// Exit codes: 0 every run ok; 1 some run failed or left no record (0 with
    /// --allow-failures); 2 bad input or setup; 130 interrupted by Ctrl-C; 143 by SIGTERM.
    #[command(verbatim_doc_comment)]
    Bench {
        /// Config file (TOML). Default: bench-configs/quickstart.toml.
        config: Option<PathBuf>,
        /// `all`, `list`, or a comma-separated list of backends. Overrides the config.
        #[arg(long)]
        backends: Option<String>,
        /// Results directory. Default: results/<UTC timestamp>-<config name>/.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Runs per cell, 1 to 100000. Overrides the config.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=config::MAX_RUNS as i64))]
        runs: Option<u32>,
        /// `keep-alive` (each agent reuses its own connection) or `fresh` (a new
        /// connection per call). Overrides the config's `connection`.
        #[arg(long, value_name = "POLICY")]
        connection: Option<chimeraforge_core::ConnectionPolicy>,
        /// Print the matrix and its run order, contact no server, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Exit 0 even when some runs failed (failed runs are recorded either way).
        #[arg(long)]
        allow_failures: bool,
        /// Finish an interrupted matrix in results directory DIR: run exactly the slots
        /// (cell + run index) that have no record in DIR/runs.jsonl, appending to it.
        /// Uses the config recorded in DIR/manifest.json; a config file given too must be
        /// identical to it. Failed runs are recorded outcomes and count as done (they are
        /// not retried); runs whose child crashed left no record and run again.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["backends", "runs", "out", "connection"])]
        resume: Option<PathBuf>,
        /// No live progress and no line per run (the default when stdout is not a terminal).
        #[arg(long, short)]
        quiet: bool,
        /// At the end, print a JSON summary on stdout (per cell: n, mean/std/min/max of
        /// speedup, efficiency, estimated efficiency, TTFT, tok/s; failures; the results
        /// directory); everything else goes to stderr.
        #[arg(long)]
        json: bool,
    },
    /// Serve the simulated Ollama/OpenAI server until Ctrl-C.
    ///
    /// Example: chimeraforge sim --port 11434 --profile gpu-like --device shared:100
    #[command(verbatim_doc_comment)]
    Sim {
        #[arg(long, default_value_t = 11434)]
        port: u16,
        /// Address to bind. Loopback unless you say otherwise.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// quickstart, gpu-like, null, fixed or reasoning.
        #[arg(long, default_value = "quickstart")]
        profile: String,
        /// ideal, serial or shared:CAPACITY_TOK_S.
        #[arg(long, default_value = "ideal")]
        device: String,
    },
    /// List the backends this binary contains.
    Backends,
    /// Check a config's servers before benching: up, API, version, models, settings.
    ///
    /// For each endpoint: reachable, API dialect, server version, models present and loaded,
    /// layers, and a one-token streaming generation with each model the config uses (its
    /// TTFT, measured, or the server's error); then settings that would spoil the
    /// measurement (agents sharing a server, options that force model reloads, num_gpu beyond
    /// a model's layers, options an OpenAI-compatible endpoint does not get). Every problem
    /// says what to do next. Exit 0 when every endpoint is reachable and nothing is an error,
    /// 1 otherwise.
    ///
    /// Examples:
    ///   chimeraforge doctor                            # the quickstart (embedded simulators)
    ///   chimeraforge doctor bench-configs/tr116.toml   # two Ollama servers on 11434/11435
    ///   chimeraforge doctor my.toml --no-generate      # no generation request (no model load)
    #[command(verbatim_doc_comment)]
    Doctor {
        /// Config file (TOML). Default: bench-configs/quickstart.toml.
        config: Option<PathBuf>,
        /// Skip the one-token generation per (endpoint, model) the config uses.
        #[arg(long)]
        no_generate: bool,
    },
    /// Print a shell completion script.
    ///
    /// Examples:
    ///   chimeraforge completions bash > ~/.local/share/bash-completion/completions/chimeraforge
    ///   chimeraforge completions zsh  > ~/.zfunc/_chimeraforge    # with fpath+=~/.zfunc
    ///   chimeraforge completions fish > ~/.config/fish/completions/chimeraforge.fish
    #[command(verbatim_doc_comment)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Measure the instrument's own cost per backend (Rust, and the Python ones when
    /// installed) against in-process simulators: TTFT
    /// bias on `fixed` at N = 1..1024, ideal-device efficiency, ingest ceiling (tokens per
    /// client CPU-second on `null`), memory per extra concurrent agent.
    ///
    /// Examples:
    ///   chimeraforge overhead                              # every backend in this build
    ///   chimeraforge overhead --backends tokio-default --quick
    ///   chimeraforge overhead --pin --probes ttft-1,ideal-64    # simulator on its own CPU
    #[command(verbatim_doc_comment)]
    Overhead {
        /// `all` or a comma-separated list of backends.
        #[arg(long, default_value = "all")]
        backends: String,
        /// Results directory. Default: results/<UTC timestamp>-overhead/.
        #[arg(long)]
        out: Option<PathBuf>,
        /// One run per probe, shorter streams (about a minute per backend).
        #[arg(long)]
        quick: bool,
        /// Run the simulators on the first half of this process's CPUs and the clients on
        /// the rest, so server and client do not compete for the same cores.
        #[arg(long)]
        pin: bool,
        /// Only these probes (comma-separated), e.g. `ideal-64,mem-1024`.
        #[arg(long, value_delimiter = ',')]
        probes: Option<Vec<String>>,
        /// The clients' connection policy: `keep-alive` (the default) or `fresh`.
        #[arg(long, value_name = "POLICY", default_value = "keep-alive")]
        connection: chimeraforge_core::ConnectionPolicy,
    },
    /// Write report.md, report.html and runs.csv for a results directory.
    ///
    /// `bench` does this at its end; run it again after `--resume`, or on older results.
    /// Example: chimeraforge report results/20261129T184315Z-quickstart
    #[command(verbatim_doc_comment)]
    Report {
        /// A results directory written by `chimeraforge bench`.
        dir: PathBuf,
    },
    /// Compare two results directories cell by cell: what changed beyond noise.
    ///
    /// A change counts as improved/regressed only when the 95% bootstrap CI of the
    /// difference of means excludes 0 and the change exceeds 1% of the baseline mean;
    /// anything else is "change within noise threshold". Exit 1 when a cell regressed.
    /// Example: chimeraforge compare results/before results/after
    #[command(verbatim_doc_comment)]
    Compare {
        /// Baseline results directory.
        baseline: PathBuf,
        /// Results directory to compare against the baseline.
        candidate: PathBuf,
    },
    /// (internal) Run one job read from stdin in this process.
    #[command(hide = true)]
    Child,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Cmd::Report { .. } | Cmd::Compare { .. } | Cmd::Backends | Cmd::Completions { .. }
    ) {
        // Output-only commands piped into `head` end quietly, as Unix tools do. Not for
        // `bench`: it writes to its children's pipes and must outlive a crashed child.
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match cli.command {
        Cmd::Bench {
            config,
            backends,
            out,
            runs,
            dry_run,
            allow_failures,
            resume,
            quiet,
            json,
            connection,
        } => bench(BenchArgs {
            config,
            backends,
            out,
            runs,
            connection,
            dry_run,
            allow_failures,
            resume,
            output: progress::OutputMode::detect(quiet, json),
        }),
        Cmd::Sim {
            port,
            host,
            profile,
            device,
        } => sim(&host, port, &profile, &device),
        Cmd::Backends => {
            for line in backends::listing() {
                outln!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Child => child::main().map(|_| ExitCode::SUCCESS),
        Cmd::Report { dir } => report(&dir),
        Cmd::Compare {
            baseline,
            candidate,
        } => compare(&baseline, &candidate),
        Cmd::Overhead {
            backends,
            out,
            quick,
            pin,
            probes,
            connection,
        } => overhead(&backends, out, quick, pin, probes, connection),
        Cmd::Doctor {
            config,
            no_generate,
        } => doctor(config.as_deref(), !no_generate),
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "chimeraforge", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eoutln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn sim(host: &str, port: u16, profile: &str, device: &str) -> anyhow::Result<ExitCode> {
    let mut cfg = chimeraforge_sim::SimConfig::profile(profile)?;
    cfg.device = device.parse()?;
    let addr = format!("{host}:{port}")
        .parse()
        .with_context(|| format!("{host}:{port} is not an IP address and port"))?;
    eoutln!("chimeraforge sim: profile {profile}, device {device}, on http://{host}:{port} (Ctrl-C to stop)");
    chimeraforge_sim::serve_blocking(cfg, addr)?;
    Ok(ExitCode::SUCCESS)
}

struct BenchArgs {
    config: Option<PathBuf>,
    backends: Option<String>,
    out: Option<PathBuf>,
    runs: Option<u32>,
    connection: Option<chimeraforge_core::ConnectionPolicy>,
    dry_run: bool,
    allow_failures: bool,
    resume: Option<PathBuf>,
    output: progress::OutputMode,
}

fn load_config(path: Option<&Path>) -> anyhow::Result<(config::Source, config::Config)> {
    let source = match path {
        Some(p) => config::Source::read(p)?,
        None if Path::new(QUICKSTART_PATH).exists() => {
            config::Source::read(Path::new(QUICKSTART_PATH))?
        }
        None => config::Source {
            path: format!("(built-in) {QUICKSTART_PATH}").into(),
            text: QUICKSTART.to_owned(),
        },
    };
    let cfg = config::parse(&source)?;
    Ok((source, cfg))
}

fn select_backends(cli: Option<&str>, cfg: &config::Config) -> anyhow::Result<Option<Vec<String>>> {
    let compiled = backends::selectable_names();
    let wanted: Vec<String> = match cli {
        Some("list") => return Ok(None),
        Some("all") => compiled.iter().map(|s| s.to_string()).collect(),
        Some(list) => list
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        None => match &cfg.backends {
            Some(list) => list.clone(),
            None => compiled.iter().map(|s| s.to_string()).collect(),
        },
    };
    check_backends(wanted).map(Some)
}

/// Every name in `wanted` can run here (compiled in, or an installed external backend),
/// and there is at least one; otherwise an error naming the problem and the fix.
fn check_backends(wanted: Vec<String>) -> anyhow::Result<Vec<String>> {
    let compiled = backends::selectable_names();
    for (i, b) in wanted.iter().enumerate() {
        if wanted[..i].contains(b) {
            bail!("backend {b:?} is listed twice\n  hint: list each backend once (a cell is backend × model × scenario)");
        }
        if backends::is_external(b) {
            backends::external_python(b).map_err(anyhow::Error::msg)?;
        }
        if !compiled.contains(&b.as_str()) {
            let known = backends::ALL_NAMES.contains(&b.as_str());
            bail!(
                "backend {b:?} is {}\n  hint: this binary contains: {}{}",
                if known {
                    "not in this build"
                } else {
                    "unknown"
                },
                compiled.join(", "),
                if known {
                    format!("; build with `cargo build --release --features {b}`")
                } else {
                    String::new()
                }
            );
        }
    }
    if wanted.is_empty() {
        bail!("no backends selected\n  hint: --backends all, or a comma-separated list");
    }
    Ok(wanted)
}

fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    // Resuming: the matrix is the one recorded in the directory, not a new one.
    let resumed = match &args.resume {
        Some(dir) => Some((dir.clone(), results::read_manifest(dir)?)),
        None => None,
    };
    let (source, cfg, backend_names, order) = match &resumed {
        Some((dir, manifest)) => recorded_matrix(args.config.as_deref(), dir, manifest)?,
        None => {
            let (source, mut cfg) = load_config(args.config.as_deref())?;
            if let Some(r) = args.runs {
                cfg.runs = r;
            }
            if let Some(c) = args.connection {
                cfg.client.connection = c;
            }
            let Some(backend_names) = select_backends(args.backends.as_deref(), &cfg)? else {
                for line in backends::listing() {
                    outln!("{line}");
                }
                return Ok(ExitCode::SUCCESS);
            };
            let order = matrix::schedule(&cfg, &backend_names);
            (source, cfg, backend_names, order)
        }
    };
    // Keys are checked before any request, and never printed or written from here on.
    chimeraforge::secrets::install(&cfg.endpoints)?;
    let output = args.output;
    output.note(&format!(
        "chimeraforge {}: config {} ({}), {} backends × {} models × {} scenarios × {} runs = {} runs",
        env!("CARGO_PKG_VERSION"),
        cfg.name,
        source.path.display(),
        backend_names.len(),
        cfg.models.len(),
        cfg.scenarios.len(),
        cfg.runs,
        order.len()
    ));
    if args.dry_run {
        // A dry run writes nothing, so a resumed directory is read without repairing it.
        let done: HashSet<matrix::Slot> = match &resumed {
            Some((dir, _)) => results::read_runs(dir)?
                .0
                .iter()
                .map(matrix::Slot::of)
                .collect(),
            None => HashSet::new(),
        };
        outln!(
            "order (interleaved{}){}:",
            cfg.shuffle_seed
                .map(|s| format!(", shuffled with seed {s}"))
                .unwrap_or_default(),
            if resumed.is_some() {
                format!(
                    ", {} of {} still to run",
                    order.iter().filter(|s| !done.contains(s)).count(),
                    order.len()
                )
            } else {
                String::new()
            }
        );
        for (i, s) in order.iter().enumerate() {
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
        return Ok(ExitCode::SUCCESS);
    }

    let (endpoints, sims) = matrix::start_simulators(&cfg)?;
    let mut servers = Vec::new();
    for ep in &endpoints {
        let models: Vec<String> = cfg.models.clone();
        servers.push(preflight::check(ep, &models)?);
    }

    // From here on a Ctrl-C or SIGTERM finishes the manifest and prints the summary.
    interrupt::install().context("cannot install the Ctrl-C and SIGTERM handlers")?;
    let started = unix_now_s();
    // A fresh nonce every invocation, resumed ones included: a slot that was cut off may
    // have sent its prompts already, and prompts the server has cached would be measured
    // warm, unlike every slot recorded before (each measured cold). See
    // docs/methodology.md, "Prompt caches".
    let nonce = (cfg.prompt_cache == chimeraforge_core::workload::PromptCache::Isolate)
        .then(chimeraforge_core::workload::prompt_nonce);
    let (out_dir, mut dir, mut manifest, mut records) = match resumed {
        Some((out_dir, _)) => {
            let reopened = results::ResultsDir::reopen(&out_dir)?;
            for w in &reopened.warnings {
                eoutln!("warning: {w}");
            }
            let mut manifest = reopened.manifest;
            let mut sessions = manifest["sessions"].as_array().cloned().unwrap_or_default();
            sessions.push(serde_json::json!({
                "started_utc": results::utc_stamp(started),
                "resumed": true,
                "servers": servers,
                "prompt_nonce": nonce,
            }));
            manifest["sessions"] = serde_json::json!(sessions);
            reopened.dir.update_manifest(&manifest)?;
            (out_dir, reopened.dir, manifest, reopened.records)
        }
        None => {
            let out_dir = args.out.clone().unwrap_or_else(|| {
                PathBuf::from("results").join(format!(
                    "{}-{}",
                    results::utc_stamp(started),
                    cfg.name
                ))
            });
            let manifest = serde_json::json!({
                "schema_version": chimeraforge_core::record::SCHEMA_VERSION,
                "tool": {
                    "name": "chimeraforge",
                    "version": env!("CARGO_PKG_VERSION"),
                    "git_revision": env!("CHIMERAFORGE_GIT_REV"),
                    "rustc": env!("CHIMERAFORGE_RUSTC"),
                    "backends_in_build": backends::compiled_names(),
                },
                "config_path": source.path.display().to_string(),
                "config_text": source.text,
                "config_fnv1a64": format!("{:016x}", fnv1a64(source.text.as_bytes())),
                "config": cfg,
                "backends": backend_names,
                "order": order,
                "host": host_facts(),
                "servers": servers,
                "simulated_endpoints": cfg.endpoints.iter().filter(|e| e.base_url == config::SIM_URL).map(|e| &e.name).collect::<Vec<_>>(),
                "started_utc": results::utc_stamp(started),
                "prompt_cache": cfg.prompt_cache,
                "connection": cfg.client.connection,
                "prompt_nonce": nonce,
                "sessions": [{"started_utc": results::utc_stamp(started), "resumed": false, "prompt_nonce": nonce}],
                "lost_runs": [],
            });
            let dir = results::ResultsDir::create(&out_dir, &manifest)?;
            (out_dir, dir, manifest, Vec::new())
        }
    };
    output.note(&format!("results: {}", out_dir.display()));

    let done: HashSet<matrix::Slot> = records.iter().map(matrix::Slot::of).collect();
    let todo: Vec<(usize, &matrix::Slot)> = order
        .iter()
        .enumerate()
        .filter(|(_, s)| !done.contains(s))
        .collect();
    if args.resume.is_some() {
        output.note(&format!(
            "resuming: {} of {} runs recorded, {} to run",
            order.len() - todo.len(),
            order.len(),
            todo.len()
        ));
    }

    let exe = std::env::current_exe()
        .context("cannot find this program's path to start child processes")?;
    let mut lost: Vec<failures::LostRun> = Vec::new();
    let mut aborted = false;
    let mut progress =
        progress::Progress::new(output, order.len(), order.len() - todo.len(), cfg.runs);
    for &(i, slot) in &todo {
        if interrupt::stop_requested() {
            break;
        }
        progress.run_started(i, slot);
        let job = matrix::job_for(&cfg, &endpoints, slot, nonce.as_deref());
        match matrix::run_child_live(&exe, &job, progress.live_sink()) {
            Ok(record) => {
                dir.append(&record).with_context(|| {
                    format!(
                        "cannot append run {} to {}/runs.jsonl; the record was: {}",
                        i + 1,
                        out_dir.display(),
                        serde_json::to_string(&record).unwrap_or_default()
                    )
                })?;
                progress.run_finished(&record);
                if let Some(w) = chimeraforge::scaling::bottleneck_warning(&record) {
                    progress.note(&format!("  warning: {w}"));
                }
                records.push(record);
            }
            Err(failure) => {
                let interrupted = failure.kind == matrix::ChildFailureKind::Interrupted;
                progress.run_failed(&format!(
                    "{} {} {} run {}: {failure}",
                    slot.cell.backend,
                    slot.cell.model,
                    slot.cell.scenario.name(),
                    slot.run_index + 1
                ));
                let entry = failures::LostRun {
                    slot: slot.clone(),
                    failure,
                    at_utc: results::utc_stamp(unix_now_s()),
                };
                // Written at once: the manifest accounts for the lost run even if this
                // process dies next.
                let mut all = manifest["lost_runs"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                all.push(serde_json::to_value(&entry)?);
                manifest["lost_runs"] = serde_json::json!(all);
                dir.update_manifest(&manifest)?;
                lost.push(entry);
                if interrupted {
                    aborted = true;
                    break;
                }
            }
        }
    }
    progress.finish();
    drop(sims);

    let interrupted = interrupt::stop_requested();
    let recorded: HashSet<matrix::Slot> = records.iter().map(matrix::Slot::of).collect();
    let missing = order.iter().filter(|s| !recorded.contains(s)).count();
    let tally = failures::count(&records, &lost);
    let now = results::utc_stamp(unix_now_s());
    if let Some(last) = manifest["sessions"]
        .as_array_mut()
        .and_then(|s| s.last_mut())
    {
        last["finished_utc"] = serde_json::json!(now);
        last["runs_attempted"] = serde_json::json!(todo.len().min(records.len() + lost.len()));
        last["interrupted"] = serde_json::json!(interrupted);
        last["interrupted_by"] = serde_json::json!(interrupt::first_signal());
    }
    manifest["finished_utc"] = serde_json::json!(now);
    manifest["runs_recorded"] = serde_json::json!(records.len());
    manifest["runs_failed"] = serde_json::json!(tally.failed);
    manifest["runs_missing"] = serde_json::json!(missing);
    manifest["complete"] = serde_json::json!(missing == 0);
    manifest["interrupted"] = serde_json::json!(interrupted);
    manifest["interrupted_by"] = serde_json::json!(interrupt::first_signal());
    dir.update_manifest(&manifest)?;
    if aborted {
        output.note(&format!(
            "stopped by a second signal (first {}): {} of {} runs recorded in {}\n  hint: finish with `chimeraforge bench --resume {}`",
            interrupt::first_signal_words(),
            records.len(),
            order.len(),
            out_dir.display(),
            out_dir.display()
        ));
        return Ok(ExitCode::from(interrupt::exit_code()));
    }

    if output.json {
        let lost_text: Vec<String> = lost.iter().map(|l| l.failure.to_string()).collect();
        let summary = summary::json_summary(&cfg.name, &out_dir, &records, &lost_text, order.len());
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        outln!("\n{}", summary::cells_table(&records));
        if let Some(t) = chimeraforge::scaling::table(&records) {
            outln!("\n{t}");
        }
    }
    let failures_text = tally.render();
    if !failures_text.is_empty() {
        output.note(failures_text.trim_end());
    }
    // The report is derived from runs.jsonl, already safe on disk: a failure here loses
    // nothing measured, so it warns and the bench's exit code stays about the runs.
    let report_written = match chimeraforge_report::write_report(&out_dir) {
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
    output.note(summary::results_footer(&out_dir, report_written).trim_end());
    if missing > 0 {
        output.note(&format!(
            "{missing} of {} runs have no record{}\n  hint: run them with `chimeraforge bench --resume {}`",
            order.len(),
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

fn unix_now_s() -> u64 {
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
    manifest: &serde_json::Value,
) -> anyhow::Result<(
    config::Source,
    config::Config,
    Vec<String>,
    Vec<matrix::Slot>,
)> {
    let manifest_path = dir.join(results::MANIFEST);
    let recorded = manifest["config_fnv1a64"].as_str().with_context(|| {
        format!(
            "{} has no config_fnv1a64: not a manifest this version can resume",
            manifest_path.display()
        )
    })?;
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
            let text = manifest["config_text"]
                .as_str()
                .with_context(|| format!("{} has no config_text", manifest_path.display()))?;
            if format!("{:016x}", fnv1a64(text.as_bytes())) != recorded {
                bail!(
                    "{}: config_text does not match config_fnv1a64 (was the manifest edited?)\n  hint: pass the original config file too: chimeraforge bench CONFIG --resume {}",
                    manifest_path.display(),
                    dir.display()
                );
            }
            config::Source {
                path: format!(
                    "{} (as recorded in {})",
                    manifest["config_path"].as_str().unwrap_or("config"),
                    manifest_path.display()
                )
                .into(),
                text: text.to_owned(),
            }
        }
    };
    let mut cfg = config::parse(&source)?;
    // The recorded config carries the command-line overrides the matrix was started with.
    // A manifest from before connection policies: its calls each sent `Connection: close`.
    cfg.client.connection = match manifest["connection"].as_str() {
        Some(c) => c.parse().map_err(anyhow::Error::msg)?,
        None => chimeraforge_core::ConnectionPolicy::Fresh,
    };
    if let Some(runs) = manifest["config"]["runs"].as_u64() {
        cfg.runs = runs as u32;
    }
    let backend_names: Vec<String> = serde_json::from_value(manifest["backends"].clone())
        .with_context(|| format!("{} has no readable backends list", manifest_path.display()))?;
    let runnable = backends::selectable_names();
    if let Some(b) = backend_names
        .iter()
        .find(|b| !runnable.contains(&b.as_str()))
    {
        let hint = if backends::is_external(b) {
            format!(
                "install its environment: `{}`",
                backends::PYTHON_INSTALL_COMMAND
            )
        } else {
            format!("resume with a build that has it: `cargo build --release --features {b}`")
        };
        bail!(
            "{} was started with backend {b:?}, which cannot run here\n  hint: {hint}",
            dir.display()
        );
    }
    let order = serde_json::from_value(manifest["order"].clone())
        .unwrap_or_else(|_| matrix::schedule(&cfg, &backend_names));
    Ok((source, cfg, backend_names, order))
}

/// FNV-1a, 64-bit: a stable fingerprint of the config text (detects edits, not attacks).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn host_facts() -> serde_json::Value {
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
    serde_json::json!({
        "hostname": read("/proc/sys/kernel/hostname"),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "kernel": read("/proc/sys/kernel/osrelease"),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu_model": cpu_model,
        "mem_total_kib": mem_kib,
    })
}

fn doctor(config: Option<&Path>, generate: bool) -> anyhow::Result<ExitCode> {
    let (source, cfg) = load_config(config)?;
    chimeraforge::secrets::install(&cfg.endpoints)?;
    let (endpoints, sims) = matrix::start_simulators(&cfg)?;
    let path = source.path.display().to_string();
    let diagnosis = chimeraforge::doctor::diagnose_with(&cfg, &path, &endpoints, generate);
    drop(sims);
    let arg = config.map(|p| p.display().to_string()).unwrap_or_default();
    out!("{}", chimeraforge::doctor::render(&diagnosis, arg.trim()));
    Ok(if diagnosis.healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn overhead(
    list: &str,
    out: Option<PathBuf>,
    quick: bool,
    pin: bool,
    probes: Option<Vec<String>>,
    connection: chimeraforge_core::ConnectionPolicy,
) -> anyhow::Result<ExitCode> {
    let wanted = check_backends(if list == "all" {
        backends::selectable_names()
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        list.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })?;
    let pin = if pin {
        let cpus = chimeraforge::affinity::allowed().context("cannot read this process's CPUs")?;
        let split = chimeraforge::affinity::Split::halves(&cpus).map_err(anyhow::Error::msg)?;
        outln!(
            "pinned: simulators on CPU {}, clients on CPU {}",
            chimeraforge::affinity::list(&split.server),
            chimeraforge::affinity::list(&split.client)
        );
        Some(split)
    } else {
        None
    };
    outln!("connection: {connection} (--connection keep-alive | fresh)");
    let settings = chimeraforge::overhead::Settings {
        quick,
        pin,
        only: probes,
        connection,
    };
    // Check the probe names before any backend runs.
    chimeraforge::overhead::selected(&settings).map_err(anyhow::Error::msg)?;
    child::raise_open_files_limit();
    let exe = std::env::current_exe()
        .context("cannot find this program's path to start child processes")?;
    let out_dir = out.unwrap_or_else(|| {
        PathBuf::from("results").join(format!("{}-overhead", results::utc_stamp(unix_now_s())))
    });
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let mut runs = std::fs::File::create(out_dir.join("runs.jsonl"))?;
    let mut all = Vec::new();
    for b in &wanted {
        let measured = chimeraforge::overhead::measure_backend(
            &exe,
            b,
            &settings,
            |line| outln!("{line}"),
            |r| {
                use std::io::Write as _;
                let _ = serde_json::to_writer(&mut runs, r);
                let _ = runs.write_all(b"\n");
            },
        )?;
        all.push(measured);
    }
    let md = chimeraforge::overhead::markdown(&all);
    std::fs::write(out_dir.join("overhead.md"), &md)?;
    std::fs::write(
        out_dir.join("overhead.json"),
        serde_json::to_vec_pretty(&all)?,
    )?;
    outln!("\n{}", chimeraforge::overhead::table(&all));
    for r in &all {
        for n in &r.notes {
            outln!("note: {}: {n}", r.backend);
        }
    }
    outln!(
        "written: {}/overhead.md, overhead.json, runs.jsonl",
        out_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn report(dir: &Path) -> anyhow::Result<ExitCode> {
    let r = chimeraforge_report::write_report(dir)?;
    for w in &r.warnings {
        eoutln!("warning: {w}");
    }
    outln!(
        "{} runs read ({} failed, {} missing)",
        r.runs_read,
        r.runs_failed,
        r.runs_missing
    );
    for p in [&r.markdown, &r.html, &r.csv] {
        outln!("wrote {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn compare(baseline: &Path, candidate: &Path) -> anyhow::Result<ExitCode> {
    let c = chimeraforge_report::compare(baseline, candidate)?;
    out!("{c}");
    Ok(if c.regressed() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
