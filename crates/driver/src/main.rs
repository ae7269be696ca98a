//! `chimeraforge`: run the dual-agent matrix across async runtimes and models, measured right.

use chimeraforge::{backends, child, config, progress, results};

use anyhow::{bail, Context};
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
        #[arg(long, value_name = "DIR", conflicts_with_all = ["backends", "runs", "out"])]
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
        } => bench::bench(BenchArgs {
            config,
            backends,
            out,
            runs,
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
        } => overhead(&backends, out, quick, pin, probes),
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

fn overhead(
    list: &str,
    out: Option<PathBuf>,
    quick: bool,
    pin: bool,
    probes: Option<Vec<String>>,
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
    let settings = chimeraforge::overhead::Settings {
        quick,
        pin,
        only: probes,
    };
    // Check the probe names before any backend runs.
    chimeraforge::overhead::selected(&settings).map_err(anyhow::Error::msg)?;
    child::raise_open_files_limit();
    let exe = std::env::current_exe()
        .context("cannot find this program's path to start child processes")?;
    let out_dir = out.unwrap_or_else(|| {
        PathBuf::from("results").join(format!(
            "{}-overhead",
            results::utc_stamp(bench::unix_now_s())
        ))
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
