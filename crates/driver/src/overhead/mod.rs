//! `chimeraforge overhead`: the instrument's own cost, with the simulator as a null model.
//!
//! Each backend runs in a child process against simulators in this (parent) process, so
//! the child's getrusage is the client's alone. Probes:
//! - `fixed` profile (TTFT exactly 50 ms, 100 tok/s, ideal device): TTFT bias = measured
//!   TTFT − 50 ms at N = 1, 2, 8, 64 (and 1,024); efficiency on the ideal device at N = 2, 8, 64.
//! - `null` profile (tokens as fast as the client reads): ingest ceiling = output tokens /
//!   client CPU-seconds of the concurrent phase, at N = 1 and 64.
//! - memory: peak RSS of the same small concurrent-only run at N = 1, 64 and 1,024; the
//!   difference divided by the extra agents is the memory per extra concurrent agent.
//!
//! - the floor: every probe also runs on [`floor`], the simplest correct client (a thread
//!   per agent, blocking sockets), in the same invocation; each backend's TTFT bias and
//!   client CPU per call are also shown as multiples of the floor's.
//! - both connection policies: every backend and the floor run every probe under
//!   keep-alive, then under fresh (`--connection` picks one); a backend's ratios divide by
//!   the floor of its own policy.
//!
//! The module's files are its steps: `probe` (what each probe is), `measure` (a backend's
//! probe runs, folded into its `figures`), `render` (`overhead.md`, its chart, the
//! terminal table); this file is the command.

mod figures;
pub mod floor;
mod measure;
mod probe;
mod render;

use crate::affinity::{self, Split};
use anyhow::Context;
use chimeraforge_core::{BackendId, ConnectionPolicy};
use std::path::PathBuf;
use std::process::ExitCode;

/// The command line of `chimeraforge overhead`.
// The field docs are `--help` text, where `<UTC timestamp>` is meant literally.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
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
    /// Only this connection policy, `keep-alive` or `fresh`. Default: both, every probe
    /// once per policy (the floor too).
    #[arg(long, value_name = "POLICY")]
    connection: Option<ConnectionPolicy>,
}

impl Args {
    /// The backends `--backends` names, unchecked: `all` is every selectable one.
    pub fn backend_names(&self) -> Vec<BackendId> {
        crate::backends::parse_list(&self.backends)
    }
}

/// How the probes run.
#[derive(Debug)]
struct Settings {
    /// One run per probe, shorter streams.
    quick: bool,
    /// Simulator and client on separate CPUs.
    pin: Option<Split>,
    /// Only these probes (by name); `None`: all.
    only: Option<Vec<String>>,
    /// The connection policies, in the order they run (`--connection`: one of them); every
    /// client, the floor included, runs every probe under each.
    connections: Vec<ConnectionPolicy>,
}

/// The policies `--connection` asks for: the one it names, else both, keep-alive (the
/// default users run) first.
fn policies(only: Option<ConnectionPolicy>) -> Vec<ConnectionPolicy> {
    match only {
        Some(p) => vec![p],
        None => vec![ConnectionPolicy::KeepAlive, ConnectionPolicy::Fresh],
    }
}

impl Settings {
    /// The probes to run, in the sweep's order; an unknown name is an error.
    fn probes(&self) -> anyhow::Result<Vec<probe::Probe>> {
        probe::selected(self.quick, self.only.as_deref()).map_err(anyhow::Error::msg)
    }
}

/// Run `chimeraforge overhead` on `backends` (checked by the caller): every probe on each,
/// then `overhead.md`, `overhead.json` and `runs.jsonl` in the results directory.
pub fn main(backends: &[BackendId], args: Args) -> anyhow::Result<ExitCode> {
    let pin = if args.pin {
        let cpus = affinity::allowed().context("cannot read this process's CPUs")?;
        let split = Split::halves(&cpus).map_err(anyhow::Error::msg)?;
        crate::out::line(&format!(
            "pinned: simulators on CPU {}, clients on CPU {}",
            affinity::list(&split.server),
            affinity::list(&split.client)
        ));
        Some(split)
    } else {
        None
    };
    let settings = Settings {
        quick: args.quick,
        pin,
        only: args.probes,
        connections: policies(args.connection),
    };
    let names: Vec<&str> = settings.connections.iter().map(|p| p.as_str()).collect();
    crate::out::line(&format!(
        "connection: {} (--connection keep-alive | fresh for one)",
        names.join(", then ")
    ));
    // Check the probe names before any backend runs.
    settings.probes()?;
    crate::child::raise_open_files_limit();
    let exe = std::env::current_exe()
        .context("cannot find this program's path to start child processes")?;
    let out_dir = args.out.unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from("results").join(format!("{}-overhead", crate::results::utc_stamp(now)))
    });
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let mut runs = std::fs::File::create(out_dir.join("runs.jsonl"))?;
    let mut all = Vec::new();
    // Per policy, the floor first, on the same probes: the reference that policy's ratios
    // divide by.
    for &policy in &settings.connections {
        for b in std::iter::once(floor::NAME).chain(backends.iter().map(BackendId::as_str)) {
            let measured =
                measure::measure_backend(&exe, b, policy, &settings, crate::out::line, |r| {
                    use std::io::Write as _;
                    let _ = serde_json::to_writer(&mut runs, r);
                    let _ = runs.write_all(b"\n");
                })?;
            all.push(measured);
        }
    }
    figures::with_floor_ratios(&mut all);
    let md = render::markdown(&all, crate::scaling::cores());
    std::fs::write(out_dir.join("overhead.md"), &md)?;
    std::fs::write(
        out_dir.join("overhead.json"),
        serde_json::to_vec_pretty(&all)?,
    )?;
    crate::out::line(&format!("\n{}", render::table(&all)));
    for r in &all {
        for n in &r.notes {
            crate::out::line(&format!("note: {} ({}): {n}", r.backend, render::policy(r)));
        }
    }
    crate::out::line(&format!(
        "written: {}/overhead.md, overhead.json, runs.jsonl",
        out_dir.display()
    ));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_policies_unless_one_is_named() {
        use ConnectionPolicy::*;
        assert_eq!(policies(None), [KeepAlive, Fresh]);
        assert_eq!(policies(Some(Fresh)), [Fresh]);
        assert_eq!(policies(Some(KeepAlive)), [KeepAlive]);
    }
}
