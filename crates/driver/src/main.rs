//! `chimeraforge`: run the dual-agent matrix across async runtimes and models, measured right.

use chimeraforge::{backends, child, config, matrix, preflight, results, summary};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The quickstart config, embedded so `chimeraforge bench` works from any directory.
const QUICKSTART: &str = include_str!("../../../bench-configs/quickstart.toml");
const QUICKSTART_PATH: &str = "bench-configs/quickstart.toml";

#[derive(Parser)]
#[command(
    name = "chimeraforge",
    version,
    about = "Measure how the client's async runtime and the model shape concurrent multi-agent LLM workloads."
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
        /// Runs per cell. Overrides the config.
        #[arg(long)]
        runs: Option<u32>,
        /// Print the matrix and its run order, contact no server, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Exit 0 even when some runs failed.
        #[arg(long)]
        allow_failures: bool,
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
        /// quickstart, gpu-like, null or fixed.
        #[arg(long, default_value = "quickstart")]
        profile: String,
        /// ideal, serial or shared:CAPACITY_TOK_S.
        #[arg(long, default_value = "ideal")]
        device: String,
    },
    /// List the backends this binary contains.
    Backends,
    /// (internal) Run one job read from stdin in this process.
    #[command(hide = true)]
    Child,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Bench {
            config,
            backends,
            out,
            runs,
            dry_run,
            allow_failures,
        } => bench(BenchArgs {
            config,
            backends,
            out,
            runs,
            dry_run,
            allow_failures,
        }),
        Cmd::Sim {
            port,
            host,
            profile,
            device,
        } => sim(&host, port, &profile, &device),
        Cmd::Backends => {
            for name in backends::compiled_names() {
                println!("{name}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Child => child::main().map(|_| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
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
    eprintln!("chimeraforge sim: profile {profile}, device {device}, on http://{host}:{port} (Ctrl-C to stop)");
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
    let compiled = backends::compiled_names();
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
    for b in &wanted {
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
    Ok(Some(wanted))
}

fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let (source, mut cfg) = load_config(args.config.as_deref())?;
    if let Some(r) = args.runs {
        if r == 0 {
            bail!("--runs 0 would measure nothing\n  hint: pass --runs 1 or more");
        }
        cfg.runs = r;
    }
    let Some(backend_names) = select_backends(args.backends.as_deref(), &cfg)? else {
        for name in backends::compiled_names() {
            println!("{name}");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let order = matrix::schedule(&cfg, &backend_names);
    println!(
        "chimeraforge {}: config {} ({}), {} backends × {} models × {} scenarios × {} runs = {} runs",
        env!("CARGO_PKG_VERSION"),
        cfg.name,
        source.path.display(),
        backend_names.len(),
        cfg.models.len(),
        cfg.scenarios.len(),
        cfg.runs,
        order.len()
    );
    if args.dry_run {
        println!(
            "order (interleaved{}):",
            cfg.shuffle_seed
                .map(|s| format!(", shuffled with seed {s}"))
                .unwrap_or_default()
        );
        for (i, s) in order.iter().enumerate() {
            println!(
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

    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let out_dir = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("results").join(format!("{}-{}", results::utc_stamp(started), cfg.name))
    });
    let mut manifest = serde_json::json!({
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
    });
    let mut dir = results::ResultsDir::create(&out_dir, &manifest)?;
    println!("results: {}", out_dir.display());

    let exe = std::env::current_exe()
        .context("cannot find this program's path to start child processes")?;
    let mut records = Vec::new();
    let mut child_failures = Vec::new();
    for (i, slot) in order.iter().enumerate() {
        let job = matrix::job_for(&cfg, &endpoints, slot);
        match matrix::run_child(&exe, &job) {
            Ok(record) => {
                dir.append(&record)?;
                println!("{}", summary::run_line(i + 1, order.len(), &record));
                records.push(record);
            }
            Err(e) => {
                println!("[{}/{}] {e}", i + 1, order.len());
                child_failures.push(e.to_string());
            }
        }
    }
    drop(sims);

    println!("\n{}", summary::cells_table(&records));
    let failed_runs = records.iter().filter(|r| !r.is_ok()).count() + child_failures.len();
    manifest["finished_utc"] = serde_json::json!(results::utc_stamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    ));
    manifest["runs_recorded"] = serde_json::json!(records.len());
    manifest["runs_failed"] = serde_json::json!(failed_runs);
    manifest["child_failures"] = serde_json::json!(child_failures);
    dir.update_manifest(&manifest)?;
    println!(
        "measured: speedup = Σ T_alone / T_concurrent from a real sequential phase; \"seed est%\" is the original report's formula, shown for comparison only."
    );
    println!("results written to {}", out_dir.display());
    if failed_runs > 0 {
        println!("{failed_runs} run(s) failed (see above and runs.jsonl)");
        if !args.allow_failures {
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
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
