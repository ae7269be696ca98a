//! `chimeraforge`: run the dual-agent matrix across async runtimes and models, measured right.

use chimeraforge::{backends, child, config, progress};

use anyhow::{bail, Context};
use chimeraforge_core::BackendId;
use clap::{Parser, Subcommand};
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

mod bench;

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
        /// Serve https with a certificate made at start; prints the file of its CA's PEM
        /// (an endpoint's ca_file), removed at exit.
        #[arg(long)]
        tls: bool,
    },
    /// List the backends this binary contains.
    ///
    /// Compiled backends first, then the Python ones (with why one cannot run here).
    /// With --features: every Rust backend chimeraforge has, compiled in or not, one per
    /// line; each is the cargo feature that builds it in
    /// (`cargo build --no-default-features --features NAME` builds a binary with it alone).
    #[command(verbatim_doc_comment)]
    Backends {
        /// List every Rust backend (its cargo feature), not this binary's backends.
        #[arg(long)]
        features: bool,
    },
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
    Overhead(chimeraforge::overhead::Args),
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
        Cmd::Report { .. } | Cmd::Compare { .. } | Cmd::Backends { .. } | Cmd::Completions { .. }
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
        } => bench::bench(BenchArgs {
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
            tls,
        } => sim(&host, port, &profile, &device, tls),
        Cmd::Backends { features } => {
            let lines = if features {
                backends::RUST_NAMES.map(str::to_owned).to_vec()
            } else {
                backends::listing()
            };
            for line in lines {
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
        Cmd::Overhead(args) => overhead(args),
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

fn sim(host: &str, port: u16, profile: &str, device: &str, tls: bool) -> anyhow::Result<ExitCode> {
    let mut cfg = chimeraforge_sim::SimConfig::profile(profile)?;
    cfg.device = device.parse()?;
    cfg.tls = tls;
    let scheme = if tls { "https" } else { "http" };
    let addr = format!("{host}:{port}")
        .parse()
        .with_context(|| format!("{host}:{port} is not an IP address and port"))?;
    eoutln!("chimeraforge sim: profile {profile}, device {device}, on {scheme}://{host}:{port} (Ctrl-C to stop)");
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

fn select_backends(
    cli: Option<&str>,
    cfg: &config::Config,
) -> anyhow::Result<Option<Vec<BackendId>>> {
    let wanted: Vec<BackendId> = match cli {
        Some("list") => return Ok(None),
        Some(list) => backends::parse_list(list),
        None => match &cfg.backends {
            Some(list) => list.clone(),
            None => backends::parse_list("all"),
        },
    };
    check_backends(wanted).map(Some)
}

/// Every name in `wanted` can run here (compiled in, or an installed external backend),
/// and there is at least one; otherwise an error naming the problem and the fix.
fn check_backends(wanted: Vec<BackendId>) -> anyhow::Result<Vec<BackendId>> {
    let runnable = backends::selectable_names();
    for (i, b) in wanted.iter().enumerate() {
        let name = b.as_str();
        if wanted[..i].contains(b) {
            bail!("backend {name:?} is listed twice\n  hint: list each backend once (a cell is backend × model × scenario)");
        }
        let entry = backends::lookup(b);
        if let Some(python) = entry.and_then(backends::Entry::python) {
            python.interpreter().map_err(anyhow::Error::msg)?;
        }
        if !runnable.contains(&name) {
            let known = entry.is_some();
            bail!(
                "backend {name:?} is {}\n  hint: this binary contains: {}{}",
                if known {
                    "not in this build"
                } else {
                    "unknown"
                },
                runnable.join(", "),
                if known {
                    format!("; build with `cargo build --release --features {name}`")
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

fn doctor(config: Option<&Path>, generate: bool) -> anyhow::Result<ExitCode> {
    let (source, cfg) = load_config(config)?;
    chimeraforge::secrets::install(&cfg.endpoints)?;
    let (endpoints, sims) = chimeraforge::simulators::start_simulators(&cfg)?;
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

/// `overhead`: its backends checked as `bench` checks them, the rest is the overhead module's.
fn overhead(args: chimeraforge::overhead::Args) -> anyhow::Result<ExitCode> {
    chimeraforge::overhead::main(&check_backends(args.backend_names())?, args)
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
