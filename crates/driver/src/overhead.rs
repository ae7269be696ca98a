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

use crate::affinity::{self, Split};
use crate::backends::ChildJob;
use crate::matrix::run_child;
use chimeraforge_core::api::ApiKind;
use chimeraforge_core::call::CallSettings;
use chimeraforge_core::metrics::percentiles;
use chimeraforge_core::protocol::RunPlan;
use chimeraforge_core::record::{Phase, PhaseOrder, PhaseRecord, RunRecord};
use chimeraforge_core::workload::{
    replicate, AgentTemplate, CallSpec, Endpoint, ModelOptions, Scenario,
};
use chimeraforge_core::ClientOptions;
use chimeraforge_sim::FirstToken;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

const MODEL: &str = "gemma3:latest";
/// The `fixed` profile's scheduled TTFT, ms.
const FIXED_TTFT_MS: f64 = 50.0;

/// One measurement: a run shape on one simulator profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub name: &'static str,
    pub profile: &'static str,
    pub agents: usize,
    pub calls: usize,
    pub num_predict: u32,
    pub concurrent_only: bool,
    pub runs: u32,
}

/// The probes, in the order they run. `quick` runs each once, with shorter streams.
pub fn probes(quick: bool) -> Vec<Probe> {
    let runs = if quick { 1 } else { 2 };
    let p = |name, profile, agents, calls, num_predict, concurrent_only, runs| Probe {
        name,
        profile,
        agents,
        calls,
        num_predict,
        concurrent_only,
        runs,
    };
    let mut v = vec![
        p("ttft-1", "fixed", 1, 8, 8, false, runs),
        p("ideal-2", "fixed", 2, 4, 24, false, runs),
        p("ideal-8", "fixed", 8, 2, 24, false, runs),
        p("ideal-64", "fixed", 64, 1, 16, false, runs),
    ];
    if !quick {
        // The same 64 agents with calls of 520 ms instead of 200: the client's share of
        // T_conc is a roughly fixed number of ms per phase, so it weighs less here.
        v.push(p("ideal-64-long", "fixed", 64, 1, LONG_TOKENS, false, 1));
    }
    v.extend([
        p("mem-1", "fixed", 1, 1, 4, true, 1),
        p("mem-64", "fixed", 64, 1, 4, true, 1),
        p("mem-1024", "fixed", 1024, 1, 4, true, 1),
        p(
            "ingest-1",
            "null",
            1,
            2,
            if quick { 20_000 } else { 50_000 },
            true,
            runs,
        ),
        p(
            "ingest-64",
            "null",
            64,
            1,
            if quick { 1_000 } else { 2_000 },
            true,
            runs,
        ),
    ]);
    v
}

/// Tokens per call of `ideal-64-long`: 50 ms + 47 × 10 ms = 520 ms on `fixed`.
const LONG_TOKENS: u32 = 48;

/// The child job of one probe run against the simulator at `base_url`.
pub fn job(backend: &str, probe: &Probe, base_url: &str, run_index: u32) -> ChildJob {
    let endpoint = Endpoint {
        name: "sim".into(),
        base_url: base_url.to_owned(),
        api: ApiKind::Ollama,
        api_key_env: None,
    };
    let template = AgentTemplate {
        id: "probe".into(),
        label: "probe".into(),
        system: String::new(),
        endpoint: endpoint.clone(),
        options: ModelOptions::default(),
        calls: (0..probe.calls)
            .map(|i| CallSpec {
                name: format!("call{i}"),
                prompt: "Say something.".into(),
            })
            .collect(),
    };
    let base = ModelOptions {
        num_predict: Some(probe.num_predict),
        ..Default::default()
    };
    let agents = replicate(&[template], probe.agents, &[endpoint], None)
        .into_iter()
        .enumerate()
        .map(|(i, mut t)| {
            // One option set for every agent, so one warm-up call loads the model.
            t.options.seed = None;
            t.instantiate(MODEL, Scenario::ChimeraHomo, i, &base)
        })
        .collect();
    let mut plan = RunPlan::alternating(run_index, agents, 4, CallSettings::default());
    plan.concurrent_only = probe.concurrent_only;
    ChildJob {
        backend: backend.to_owned(),
        model: MODEL.into(),
        scenario: Scenario::ChimeraHomo,
        client: ClientOptions::default(),
        plan,
    }
}

/// Everything measured for one backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendOverhead {
    pub backend: String,
    pub worker_threads: usize,
    /// (N, p50, p99, max, samples): measured TTFT − 50 ms on `fixed`, ms.
    pub ttft_bias_ms: Vec<TtftBias>,
    /// (N, mean measured efficiency over runs) on the ideal device.
    pub efficiency: Vec<(usize, f64)>,
    /// The same for `ideal-64-long` (520 ms calls instead of 200 ms).
    #[serde(default)]
    pub efficiency_long_calls: Vec<(usize, f64)>,
    /// (N, output tokens per client CPU-second, client CPU-s per wall-s) on `null`.
    pub ingest: Vec<Ingest>,
    /// (N, client CPU µs per call in the concurrent phase, user + system) on `fixed`: what
    /// one call (connect, request, response head, its tokens, close) costs the client when N
    /// start together; N times it is the CPU a burst needs before its last call is served.
    #[serde(default)]
    pub cpu_per_call_us: Vec<(usize, f64)>,
    /// (N, peak RSS KiB) of the same small run.
    pub peak_rss_kib: Vec<(usize, u64)>,
    /// Problems: failed runs, client-bound warnings.
    pub notes: Vec<String>,
    /// CPUs of simulator and client when run with `--pin`; `None`: they shared every CPU.
    #[serde(default)]
    pub pinned: Option<Split>,
}

/// How `overhead` runs.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// One run per probe, shorter streams.
    pub quick: bool,
    /// Simulator and client on separate CPUs.
    pub pin: Option<Split>,
    /// Only these probes (by name); `None`: all.
    pub only: Option<Vec<String>>,
    /// The clients' connection policy (`--connection`).
    pub connection: chimeraforge_core::ConnectionPolicy,
}

/// The probes `settings` selects; an unknown name is an error that lists the known ones.
pub fn selected(settings: &Settings) -> Result<Vec<Probe>, String> {
    let all = probes(settings.quick);
    let Some(only) = &settings.only else {
        return Ok(all);
    };
    if let Some(bad) = only
        .iter()
        .find(|n| !all.iter().any(|p| p.name == n.as_str()))
    {
        return Err(format!(
            "unknown probe {bad:?}\n  hint: probes are {}",
            all.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(all
        .into_iter()
        .filter(|p| only.iter().any(|n| n == p.name))
        .collect())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TtftBias {
    pub agents: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub samples: usize,
    /// The simulator's own share, for the same calls: how late each first token left the
    /// server (handed to its connection) after its schedule, p50/p99, ms. `None` when the
    /// server's samples could not be matched to the calls (a failed call).
    #[serde(default)]
    pub server_p50_ms: Option<f64>,
    #[serde(default)]
    pub server_p99_ms: Option<f64>,
    /// One-call-per-agent probes with N > 1, mean over runs: the client's t_send stamps of
    /// the burst, last − first, ms.
    #[serde(default)]
    pub send_spread_ms: Option<f64>,
    /// The same burst's requests arriving at the server, last − first, ms: the time to get
    /// N requests in, as the server saw it (the client's connects and writes plus the
    /// simulator's accepts and reads, which share the machine's cores).
    #[serde(default)]
    pub arrival_spread_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ingest {
    pub agents: usize,
    pub tokens_per_cpu_s: f64,
    pub busy_cores: f64,
    pub tokens: u64,
}

impl BackendOverhead {
    /// Extra KiB per extra concurrent agent, from N=1 to `n`.
    pub fn kib_per_agent(&self, n: usize) -> Option<f64> {
        let at = |k: usize| self.peak_rss_kib.iter().find(|(a, _)| *a == k).map(|x| x.1);
        Some((at(n)? as f64 - at(1)? as f64) / (n - 1) as f64)
    }

    fn bias(&self, n: usize) -> Option<&TtftBias> {
        self.ttft_bias_ms.iter().find(|b| b.agents == n)
    }

    fn eff(&self, n: usize) -> Option<f64> {
        self.efficiency.iter().find(|e| e.0 == n).map(|e| e.1)
    }

    fn ingest_at(&self, n: usize) -> Option<&Ingest> {
        self.ingest.iter().find(|i| i.agents == n)
    }
}

/// The TTFT-bias samples of one run, ms, in call order: its concurrent-phase TTFTs − 50 ms
/// (at N = 1 also the sequential phase's, the same situation).
pub fn bias_samples(r: &RunRecord, agents: usize) -> Vec<f64> {
    r.sequential
        .iter()
        .filter(|_| agents == 1)
        .chain(r.concurrent.iter())
        .flat_map(|p| p.agents.iter().flat_map(|a| &a.calls))
        .filter_map(|c| c.ttft_ms)
        .map(|t| t - FIXED_TTFT_MS)
        .collect()
}

/// The simulator's first tokens that belong to `record`'s bias samples: the sequential
/// phase's (at N = 1 only) then the concurrent phase's, as [`bias_samples`] takes them.
///
/// `firsts` is everything the simulator timed during the run, in the order the tokens
/// left: the warm-up, then the two phases in the run's `phase_order` (runs alternate it),
/// each finished before the next starts. `None` when the run failed or the counts do not
/// match the record's calls exactly (then the attribution would be a guess).
pub fn server_share(
    record: &RunRecord,
    agents: usize,
    firsts: &[FirstToken],
) -> Option<Vec<FirstToken>> {
    if !record.is_ok() {
        return None;
    }
    let calls = |p: &Option<PhaseRecord>| {
        p.iter()
            .flat_map(|p| p.agents.iter().map(|a| a.calls.len()))
            .sum::<usize>()
    };
    let (warm, seq, conc) = (
        record.warmup.len(),
        calls(&record.sequential),
        calls(&record.concurrent),
    );
    if firsts.len() != warm + seq + conc || bias_samples(record, agents).is_empty() {
        return None;
    }
    let phases = &firsts[warm..];
    let (seq_part, conc_part) = match record.phase_order {
        PhaseOrder::SequentialFirst => (&phases[..seq], &phases[seq..]),
        PhaseOrder::ConcurrentFirst => (&phases[conc..], &phases[..conc]),
    };
    let mut share = if agents == 1 {
        seq_part.to_vec()
    } else {
        Vec::new()
    };
    share.extend_from_slice(conc_part);
    Some(share)
}

/// What the simulator saw of one probe's runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimSide {
    /// The simulator's share of every bias sample: first token left − due, ms.
    pub late_ms: Vec<f64>,
    /// Per run of a one-call-per-agent probe with N > 1: the last request's arrival at the
    /// server − the first's, ms. How long the burst took to get in (client and simulator).
    pub arrival_spread_ms: Vec<f64>,
}

impl SimSide {
    /// Add one run's first tokens (see [`server_share`]); `burst`: the probe sends one call
    /// per agent, all together.
    pub fn add(&mut self, share: &[FirstToken], burst: bool) {
        self.late_ms
            .extend(share.iter().map(|f| f.late().as_secs_f64() * 1000.0));
        let first = share.iter().map(|f| f.arrival).min();
        let last = share.iter().map(|f| f.arrival).max();
        if let (true, Some(first), Some(last)) = (burst && share.len() > 1, first, last) {
            self.arrival_spread_ms
                .push((last - first).as_secs_f64() * 1000.0);
        }
    }
}

fn mean(v: &[f64]) -> Option<f64> {
    chimeraforge_report::stats::Summary::of(v).map(|s| s.mean)
}

/// The client's t_send stamps of a run's concurrent phase: the last − the first, ms.
pub fn send_spread_ms(r: &RunRecord) -> Option<f64> {
    let sends: Vec<f64> = r
        .concurrent
        .iter()
        .flat_map(|p| p.agents.iter().flat_map(|a| &a.calls))
        .map(|c| c.send_offset_ms)
        .collect();
    let lo = sends.iter().copied().reduce(f64::min)?;
    let hi = sends.iter().copied().reduce(f64::max)?;
    (sends.len() > 1).then_some(hi - lo)
}

/// Fold one probe's records into `out`; `sim`: what the simulator saw of them (see
/// [`SimSide`]), empty when unknown.
pub fn absorb(out: &mut BackendOverhead, probe: &Probe, records: &[RunRecord], sim: &SimSide) {
    let ok: Vec<&RunRecord> = records.iter().filter(|r| r.is_ok()).collect();
    for r in records.iter().filter(|r| !r.is_ok()) {
        out.notes.push(format!(
            "{}: run {} failed: {:?}",
            probe.name, r.run_index, r.status
        ));
    }
    if let Some(r) = ok.first() {
        out.worker_threads = r.runtime.worker_threads;
    }
    // On `null` a saturated client is the point of the probe, not a warning.
    for r in ok.iter().filter(|_| probe.profile != "null") {
        if let Some(w) = crate::scaling::bottleneck_warning(r) {
            out.notes.push(format!("{}: {w}", probe.name));
        }
    }
    if ok.is_empty() {
        return;
    }
    let n = probe.agents;
    if probe.profile == "fixed" {
        // Concurrent-phase TTFTs; at N = 1 the sequential phase is the same situation.
        let mut bias: Vec<f64> = ok.iter().flat_map(|r| bias_samples(r, n)).collect();
        bias.sort_by(f64::total_cmp);
        let mut server = sim.late_ms.clone();
        server.sort_by(f64::total_cmp);
        // Only when every sample's server share is known, so both describe the same calls.
        let server = percentiles(&server).filter(|_| server.len() == bias.len());
        if let Some(p) = percentiles(&bias) {
            if out.bias(n).is_none() {
                out.ttft_bias_ms.push(TtftBias {
                    agents: n,
                    p50_ms: p.p50,
                    p99_ms: p.p99,
                    max_ms: p.max,
                    samples: bias.len(),
                    server_p50_ms: server.as_ref().map(|s| s.p50),
                    server_p99_ms: server.as_ref().map(|s| s.p99),
                    send_spread_ms: if probe.calls == 1 && n > 1 {
                        mean(
                            &ok.iter()
                                .filter_map(|r| send_spread_ms(r))
                                .collect::<Vec<_>>(),
                        )
                    } else {
                        None
                    },
                    arrival_spread_ms: mean(&sim.arrival_spread_ms),
                });
            }
        }
        let effs: Vec<f64> = ok
            .iter()
            .filter_map(|r| r.metrics.as_ref())
            .map(|m| m.efficiency.value)
            .collect();
        let (mut cpu, mut calls) = (0.0, 0usize);
        for r in &ok {
            let phase = r
                .client
                .as_ref()
                .and_then(|c| c.phases.iter().find(|p| p.phase == Phase::Concurrent));
            if let (Some(p), Some(conc)) = (phase, r.concurrent.as_ref()) {
                cpu += p.cpu_s();
                calls += conc.agents.iter().map(|a| a.calls.len()).sum::<usize>();
            }
        }
        if calls > 0
            && !probe.name.ends_with("-long")
            && !out.cpu_per_call_us.iter().any(|c| c.0 == n)
        {
            out.cpu_per_call_us.push((n, cpu / calls as f64 * 1e6));
        }
        if let Some(eff) = mean(&effs).filter(|_| n > 1) {
            if probe.name.ends_with("-long") {
                out.efficiency_long_calls.push((n, eff));
            } else {
                out.efficiency.push((n, eff));
            }
        }
        if probe.name.starts_with("mem-") {
            let rss = ok
                .iter()
                .filter_map(|r| r.client.as_ref())
                .map(|c| c.peak_rss_kib)
                .max()
                .unwrap_or(0);
            out.peak_rss_kib.push((n, rss));
        }
    } else {
        let (mut tokens, mut cpu, mut wall) = (0u64, 0.0, 0.0);
        for c in ok.iter().filter_map(|r| r.client.as_ref()) {
            for p in c.phases.iter().filter(|p| p.phase == Phase::Concurrent) {
                tokens += p.output_tokens;
                cpu += p.cpu_s();
                wall += p.wall_s;
            }
        }
        if cpu > 0.0 && wall > 0.0 {
            out.ingest.push(Ingest {
                agents: n,
                tokens_per_cpu_s: tokens as f64 / cpu,
                busy_cores: cpu / wall,
                tokens,
            });
        }
    }
    out.ttft_bias_ms.sort_by_key(|b| b.agents);
}

/// Run the selected probes on `backend`, each run its own child of `exe`. `progress` gets a
/// line per run, `keep` every record.
pub fn measure_backend(
    exe: &Path,
    backend: &str,
    settings: &Settings,
    mut progress: impl FnMut(&str),
    mut keep: impl FnMut(&RunRecord),
) -> anyhow::Result<BackendOverhead> {
    let mut out = BackendOverhead {
        backend: backend.to_owned(),
        pinned: settings.pin.clone(),
        ..Default::default()
    };
    let everywhere = affinity::allowed()?;
    for probe in selected(settings).map_err(anyhow::Error::msg)? {
        let mut cfg = chimeraforge_sim::SimConfig::profile(probe.profile)?;
        // Two server threads: the simulator must not be what limits 1,024 streams.
        cfg.worker_threads = 2;
        if let Some(pin) = &settings.pin {
            affinity::pin_this_thread(&pin.server)?;
        }
        let sim = chimeraforge_sim::SimServer::start(cfg, chimeraforge_sim::loopback(0));
        if let Some(pin) = &settings.pin {
            affinity::pin_this_thread(&pin.client)?;
        }
        let sim = sim?;
        let mut records = Vec::new();
        let mut sim_side = SimSide::default();
        for run_index in 0..probe.runs {
            let mut job = job(backend, &probe, &sim.base_url(), run_index);
            job.client.connection = settings.connection;
            let result = run_child(exe, &job);
            let firsts = sim.take_first_tokens();
            match result {
                Ok(r) => {
                    progress(&format!(
                        "{backend:<14} {:<10} N={:<5} run {} {}",
                        probe.name,
                        probe.agents,
                        run_index + 1,
                        if r.is_ok() { "ok" } else { "FAILED" }
                    ));
                    keep(&r);
                    if let Some(share) = server_share(&r, probe.agents, &firsts) {
                        sim_side.add(&share, probe.calls == 1);
                    }
                    records.push(r);
                }
                Err(e) => {
                    progress(&format!(
                        "{backend:<14} {:<10} child failed: {e}",
                        probe.name
                    ));
                    out.notes.push(format!("{}: {e}", probe.name));
                }
            }
        }
        sim.shutdown();
        if settings.pin.is_some() {
            affinity::pin_this_thread(&everywhere)?;
        }
        absorb(&mut out, &probe, &records, &sim_side);
    }
    Ok(out)
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or("-".into(), f)
}

/// A table of one (p50, p99) pair per N for every backend, from each N's [`TtftBias`].
fn p50_p99_table(
    s: &mut String,
    results: &[BackendOverhead],
    ns: &[usize],
    pair: impl Fn(&TtftBias) -> (Option<f64>, Option<f64>),
) {
    let _ = write!(s, "| backend |");
    for n in ns {
        let _ = write!(s, " N={n} p50 | N={n} p99 |");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "|---|{}", "---:|".repeat(ns.len() * 2));
    for r in results {
        let _ = write!(s, "| {} |", r.backend);
        for &n in ns {
            let (p50, p99) = r.bias(n).map_or((None, None), &pair);
            let f = |v: Option<f64>| opt(v, |v| format!("{v:.2}"));
            let _ = write!(s, " {} | {} |", f(p50), f(p99));
        }
        let _ = writeln!(s);
    }
}

/// The markdown section: one table per measurement, with the targets beside them.
pub fn markdown(results: &[BackendOverhead]) -> String {
    let mut s = String::new();
    let cores = crate::scaling::cores();
    let placement = match results.iter().find_map(|r| r.pinned.as_ref()) {
        Some(p) => format!(
            "Simulators ran on CPU {}, clients on CPU {} (`--pin`).",
            affinity::list(&p.server),
            affinity::list(&p.client)
        ),
        None => "Server and client shared every CPU.".to_owned(),
    };
    let _ = writeln!(
        s,
        "## Client overhead (the simulator as a null model)\n\n\
         Each backend ran in its own child process against simulators in the parent, on a \
         machine with {cores} core(s); client CPU and memory are the child's getrusage, \
         sampled between phases. {placement}\n"
    );
    let _ = writeln!(
        s,
        "### TTFT bias: measured TTFT − scheduled 50 ms (`fixed`), ms (target p99 < 1 ms at N = 64)\n"
    );
    let ns = [1usize, 2, 8, 64, 1024];
    p50_p99_table(&mut s, results, &ns, |b| (Some(b.p50_ms), Some(b.p99_ms)));
    let _ = writeln!(
        s,
        "\n### The simulator's share of that bias: first token handed to its connection − schedule, ms\n\n\
         The same calls, timed inside the server. What remains of the bias is the request's \
         way in (connect, send, accept, parse) and the response's way out (kernel, the \
         client's wake-up, read and decode). A p99 is not additive: compare p50s, and read \
         the p99s as bounds.\n"
    );
    p50_p99_table(&mut s, results, &ns, |b| (b.server_p50_ms, b.server_p99_ms));
    let _ = writeln!(
        s,
        "\n### The burst: N agents × 1 call released together, ms\n\n\
         `send` is the spread of the client's t_send stamps (first to last agent to start its \
         call); `arrive` the spread of the same requests' arrivals at the server (first to \
         last request read). A client that got every request out at once would show ~0 for both.\n\n\
         | backend | N=64 send | N=64 arrive | N=1024 send | N=1024 arrive |\n|---|---:|---:|---:|---:|"
    );
    for r in results {
        let b = |n| r.bias(n);
        let f = |v: Option<f64>| opt(v, |v| format!("{v:.1}"));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.backend,
            f(b(64).and_then(|b| b.send_spread_ms)),
            f(b(64).and_then(|b| b.arrival_spread_ms)),
            f(b(1024).and_then(|b| b.send_spread_ms)),
            f(b(1024).and_then(|b| b.arrival_spread_ms)),
        );
    }
    let _ = writeln!(
        s,
        "\n### Client CPU per call in the concurrent phase, µs (user + system; connect, request, response, tokens, close)\n\n\
         The calls differ between columns (from `ttft-1`, `ideal-2`, `ideal-8`, `ideal-64`, \
         `mem-1024`: 8, 24, 24, 16 and 4 tokens per call; `--probes` may pick others), so \
         compare backends within a column, not columns with each other.\n"
    );
    let _ = write!(s, "| backend |");
    for n in ns {
        let _ = write!(s, " N={n} |");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "|---|{}", "---:|".repeat(ns.len()));
    for r in results {
        let _ = write!(s, "| {} |", r.backend);
        for n in ns {
            let v = r.cpu_per_call_us.iter().find(|c| c.0 == n).map(|c| c.1);
            let _ = write!(s, " {} |", opt(v, |v| format!("{v:.0}")));
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "\n### Ideal-device efficiency (measured speedup / N; targets ≥ 99% at N = 2, ≥ 98% at N = 64)\n\n\
         Calls of 24 tokens (280 ms) at N = 2 and 8, 16 tokens (200 ms) at N = 64, and 48 \
         tokens (520 ms) in the last column (not run with `--quick`).\n\n\
         | backend | N=2 | N=8 | N=64 | N=64, 520 ms calls |\n|---|---:|---:|---:|---:|"
    );
    for r in results {
        let e = |n| opt(r.eff(n), |v| format!("{:.2}%", v * 100.0));
        let long = opt(
            r.efficiency_long_calls
                .iter()
                .find(|e| e.0 == 64)
                .map(|e| e.1),
            |v| format!("{:.2}%", v * 100.0),
        );
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {long} |",
            r.backend,
            e(2),
            e(8),
            e(64)
        );
    }
    let _ = writeln!(
        s,
        "\n### Ingest ceiling on `null`: output tokens per client CPU-second (targets: best ≥ 500,000, every backend ≥ 100,000)\n\n\
         | backend | poll threads | N=1 tok/CPU-s | N=1 busy cores | N=64 tok/CPU-s | N=64 busy cores |\n|---|---:|---:|---:|---:|---:|"
    );
    for r in results {
        let i = |n| r.ingest_at(n);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            r.backend,
            r.worker_threads,
            opt(i(1).map(|x| x.tokens_per_cpu_s), |v| format!("{v:.0}")),
            opt(i(1).map(|x| x.busy_cores), |v| format!("{v:.2}")),
            opt(i(64).map(|x| x.tokens_per_cpu_s), |v| format!("{v:.0}")),
            opt(i(64).map(|x| x.busy_cores), |v| format!("{v:.2}")),
        );
    }
    let _ = writeln!(
        s,
        "\n### Memory per extra concurrent agent (peak RSS; target < 256 KiB; 1,024 agents on one client)\n\n\
         | backend | RSS N=1 | RSS N=64 | RSS N=1024 | KiB/agent to 64 | KiB/agent to 1024 |\n|---|---:|---:|---:|---:|---:|"
    );
    for r in results {
        let rss = |n: usize| {
            r.peak_rss_kib
                .iter()
                .find(|x| x.0 == n)
                .map_or("-".into(), |x| format!("{} KiB", x.1))
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            r.backend,
            rss(1),
            rss(64),
            rss(1024),
            opt(r.kib_per_agent(64), |v| format!("{v:.1}")),
            opt(r.kib_per_agent(1024), |v| format!("{v:.1}")),
        );
    }
    let notes: Vec<String> = results
        .iter()
        .flat_map(|r| r.notes.iter().map(move |n| format!("- {}: {n}", r.backend)))
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(s, "\n### Notes\n\n{}", notes.join("\n"));
    }
    s.push_str("\n### TTFT bias p99 against N\n\n");
    s.push_str(&svg(results));
    s.push('\n');
    s
}

/// An inline SVG: TTFT bias p99 (ms, linear) against N (log2), one line per backend.
pub fn svg(results: &[BackendOverhead]) -> String {
    let (w, h, pad) = (560.0, 260.0, 40.0);
    let max_y = results
        .iter()
        .flat_map(|r| r.ttft_bias_ms.iter().map(|b| b.p99_ms))
        .fold(1.0f64, f64::max);
    let x = |n: usize| pad + (n as f64).log2() / 10.0 * (w - 2.0 * pad);
    let y = |v: f64| h - pad - v.max(0.0) / max_y * (h - 2.0 * pad);
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#888\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{b}\" stroke=\"#888\"/>\n\
         <text x=\"{pad}\" y=\"{t}\">TTFT bias p99, ms (max {max_y:.2})</text>\n",
        b = h - pad,
        r = w - pad,
        t = pad - 8.0,
    );
    for n in [1usize, 2, 8, 64, 1024] {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">N={n}</text>",
            x(n),
            h - pad + 14.0
        );
    }
    for (i, r) in results.iter().enumerate() {
        let c = colors[i % colors.len()];
        let pts: Vec<String> = r
            .ttft_bias_ms
            .iter()
            .map(|b| format!("{:.1},{:.1}", x(b.agents), y(b.p99_ms)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{c}\">{}</text>",
            pts.join(" "),
            w - pad - 100.0,
            pad + 14.0 * i as f64,
            r.backend
        );
    }
    s.push_str("</svg>");
    s
}

/// The terminal table: one line per backend with the headline figures.
pub fn table(results: &[BackendOverhead]) -> String {
    let mut s = format!(
        "{:<14} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>12} {:>12} {:>10} {:>10}\n",
        "backend",
        "threads",
        "bias50@1",
        "bias99@64",
        "srv99@64",
        "bias99@1k",
        "eff@2",
        "eff@64",
        "tok/CPU-s@1",
        "tok/CPU-s@64",
        "KiB/ag@64",
        "KiB/ag@1k"
    );
    for r in results {
        let _ = writeln!(
            s,
            "{:<14} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>12} {:>12} {:>10} {:>10}",
            r.backend,
            r.worker_threads,
            opt(r.bias(1).map(|b| b.p50_ms), |v| format!("{v:.2}ms")),
            opt(r.bias(64).map(|b| b.p99_ms), |v| format!("{v:.2}ms")),
            opt(r.bias(64).and_then(|b| b.server_p99_ms), |v| format!(
                "{v:.2}ms"
            )),
            opt(r.bias(1024).map(|b| b.p99_ms), |v| format!("{v:.1}ms")),
            opt(r.eff(2), |v| format!("{:.2}%", v * 100.0)),
            opt(r.eff(64), |v| format!("{:.2}%", v * 100.0)),
            opt(r.ingest_at(1).map(|i| i.tokens_per_cpu_s), |v| format!(
                "{v:.0}"
            )),
            opt(r.ingest_at(64).map(|i| i.tokens_per_cpu_s), |v| format!(
                "{v:.0}"
            )),
            opt(r.kib_per_agent(64), |v| format!("{v:.1}")),
            opt(r.kib_per_agent(1024), |v| format!("{v:.1}")),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_jobs_have_the_probe_shape() {
        for p in probes(true) {
            let j = job("tokio-default", &p, "http://127.0.0.1:1", 0);
            assert_eq!(j.plan.agents.len(), p.agents);
            assert_eq!(j.plan.agents[0].calls.len(), p.calls);
            assert_eq!(j.plan.concurrent_only, p.concurrent_only);
            assert_eq!(j.plan.agents[0].options.num_predict, Some(p.num_predict));
            let ids: std::collections::BTreeSet<_> =
                j.plan.agents.iter().map(|a| a.id.clone()).collect();
            assert_eq!(ids.len(), p.agents, "{}", p.name);
        }
    }

    #[test]
    fn long_calls_only_in_the_full_sweep() {
        let names = |quick| probes(quick).iter().map(|p| p.name).collect::<Vec<_>>();
        assert!(names(false).contains(&"ideal-64-long"));
        assert!(!names(true).contains(&"ideal-64-long"));
        let only = |list: &[&str]| Settings {
            only: Some(list.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let picked = selected(&only(&["mem-1", "ttft-1"])).unwrap();
        // In the sweep's order, not the list's.
        assert_eq!(
            picked.iter().map(|p| p.name).collect::<Vec<_>>(),
            ["ttft-1", "mem-1"]
        );
        assert!(selected(&only(&["ideal-3"]))
            .unwrap_err()
            .contains("ideal-64-long"));
    }

    #[test]
    fn sim_side_spreads_only_bursts() {
        let t0 = std::time::Instant::now();
        let ms = |m: u64| std::time::Duration::from_millis(m);
        let first = |arrive: u64, late: u64| FirstToken {
            arrival: t0 + ms(arrive),
            due: t0 + ms(arrive + 50),
            left: t0 + ms(arrive + 50 + late),
        };
        let share = [first(3, 1), first(0, 2), first(7, 0)];
        let mut side = SimSide::default();
        side.add(&share, true);
        assert_eq!(side.late_ms, [1.0, 2.0, 0.0]);
        assert_eq!(side.arrival_spread_ms, [7.0]);
        side.add(&share, false);
        side.add(&share[..1], true);
        assert_eq!(side.arrival_spread_ms, [7.0], "not a burst, or one call");
        assert_eq!(side.late_ms.len(), 7);
    }

    #[test]
    fn server_share_follows_the_runs_phase_order() {
        // A real record: 2 agents, 1 warm-up call each, 2 calls per agent and phase.
        let line = include_str!("../../report/tests/data/quickstart/runs.jsonl")
            .lines()
            .next()
            .unwrap();
        let mut r: RunRecord = serde_json::from_str(line).unwrap();
        assert_eq!(r.warmup.len(), 2);
        let t0 = std::time::Instant::now();
        // First tokens in the order they left; arrival i ms marks which one it is.
        let firsts: Vec<FirstToken> = (0..10)
            .map(|i| {
                let at = t0 + std::time::Duration::from_millis(i);
                FirstToken {
                    arrival: at,
                    due: at,
                    left: at,
                }
            })
            .collect();
        let marks = |share: Vec<FirstToken>| -> Vec<u128> {
            share.iter().map(|f| (f.arrival - t0).as_millis()).collect()
        };
        r.phase_order = PhaseOrder::SequentialFirst;
        assert_eq!(marks(server_share(&r, 2, &firsts).unwrap()), [6, 7, 8, 9]);
        r.phase_order = PhaseOrder::ConcurrentFirst;
        assert_eq!(marks(server_share(&r, 2, &firsts).unwrap()), [2, 3, 4, 5]);
        // At N = 1 both phases are bias samples: sequential, then concurrent.
        assert_eq!(
            marks(server_share(&r, 1, &firsts).unwrap()),
            [6, 7, 8, 9, 2, 3, 4, 5]
        );
        assert!(
            server_share(&r, 2, &firsts[1..]).is_none(),
            "a token missing"
        );
    }

    #[test]
    fn kib_per_agent_divides_by_extra_agents() {
        let o = BackendOverhead {
            peak_rss_kib: vec![(1, 10_000), (64, 10_630)],
            ..Default::default()
        };
        assert_eq!(o.kib_per_agent(64), Some(10.0));
        assert_eq!(o.kib_per_agent(1024), None);
        assert!(markdown(&[o]).contains("<svg"));
    }
}
