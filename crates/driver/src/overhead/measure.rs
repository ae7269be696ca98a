//! Measuring: each probe's runs on one backend, each run a child process against a
//! simulator in this process, and the records folded into the backend's figures.

use super::figures::{BackendOverhead, Ingest, TtftBias};
use super::probe::{self, Probe, ProbeKind};
use super::Settings;
use crate::affinity;
use crate::spawn::run_child;
use chimeraforge_core::metrics::percentiles;
use chimeraforge_core::record::{Phase, PhaseOrder, PhaseRecord, RunRecord};
use chimeraforge_core::ConnectionPolicy;
use chimeraforge_sim::FirstToken;
use std::path::Path;

/// The `fixed` profile's scheduled TTFT, ms.
const FIXED_TTFT_MS: f64 = 50.0;

/// The TTFT-bias samples of one run, ms, in call order: its concurrent-phase TTFTs − 50 ms
/// (at N = 1 also the sequential phase's, the same situation).
fn bias_samples(r: &RunRecord, agents: usize) -> Vec<f64> {
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
fn server_share(
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
struct SimSide {
    /// The simulator's share of every bias sample: first token left − due, ms.
    late_ms: Vec<f64>,
    /// Per run of a one-call-per-agent probe with N > 1: the last request's arrival at the
    /// server − the first's, ms. How long the burst took to get in (client and simulator).
    arrival_spread_ms: Vec<f64>,
}

impl SimSide {
    /// Add one run's first tokens (see [`server_share`]); `burst`: the probe sends one call
    /// per agent, all together.
    fn add(&mut self, share: &[FirstToken], burst: bool) {
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
fn send_spread_ms(r: &RunRecord) -> Option<f64> {
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
fn absorb(out: &mut BackendOverhead, probe: &Probe, records: &[RunRecord], sim: &SimSide) {
    let name = probe.name();
    let ok: Vec<&RunRecord> = records.iter().filter(|r| r.is_ok()).collect();
    for r in records.iter().filter(|r| !r.is_ok()) {
        out.notes.push(format!(
            "{name}: run {} failed: {:?}",
            r.run_index, r.status
        ));
    }
    if let Some(r) = ok.first() {
        out.worker_threads = r.runtime.worker_threads;
    }
    // On `null` a saturated client is the point of the probe, not a warning.
    for r in ok.iter().filter(|_| probe.kind != ProbeKind::Ingest) {
        if let Some(w) = crate::scaling::bottleneck_warning(r) {
            out.notes.push(format!("{name}: {w}"));
        }
    }
    if ok.is_empty() {
        return;
    }
    match probe.kind {
        ProbeKind::Ttft | ProbeKind::Ideal | ProbeKind::IdealLongCalls | ProbeKind::Memory => {
            absorb_fixed(out, probe, &ok, sim)
        }
        ProbeKind::Ingest => absorb_ingest(out, probe.agents, &ok),
    }
    out.ttft_bias_ms.sort_by_key(|b| b.agents);
}

/// The figures of a probe on `fixed`: TTFT bias, CPU per call, efficiency, memory.
fn absorb_fixed(out: &mut BackendOverhead, probe: &Probe, ok: &[&RunRecord], sim: &SimSide) {
    let n = probe.agents;
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
                send_spread_ms: if probe.is_burst() {
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
    for r in ok {
        let phase = r
            .client
            .as_ref()
            .and_then(|c| c.phases.iter().find(|p| p.phase == Phase::Concurrent));
        if let (Some(p), Some(conc)) = (phase, r.concurrent.as_ref()) {
            cpu += p.cpu_s();
            calls += conc.agents.iter().map(|a| a.calls.len()).sum::<usize>();
        }
    }
    let long_calls = probe.kind == ProbeKind::IdealLongCalls;
    if calls > 0 && !long_calls && !out.cpu_per_call_us.iter().any(|c| c.0 == n) {
        out.cpu_per_call_us.push((n, cpu / calls as f64 * 1e6));
    }
    if let Some(eff) = mean(&effs).filter(|_| n > 1) {
        if long_calls {
            out.efficiency_long_calls.push((n, eff));
        } else {
            out.efficiency.push((n, eff));
        }
    }
    if probe.kind == ProbeKind::Memory {
        let rss = ok
            .iter()
            .filter_map(|r| r.client.as_ref())
            .map(|c| c.peak_rss_kib)
            .max()
            .unwrap_or(0);
        out.peak_rss_kib.push((n, rss));
    }
}

/// The figures of a probe on `null`: tokens per client CPU-second and busy cores.
fn absorb_ingest(out: &mut BackendOverhead, n: usize, ok: &[&RunRecord]) {
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

/// Run the selected probes on `backend` under `connection`, each run its own child of `exe`.
/// `progress` gets a line per run, `keep` every record.
pub(crate) fn measure_backend(
    exe: &Path,
    backend: &str,
    connection: ConnectionPolicy,
    settings: &Settings,
    mut progress: impl FnMut(&str),
    mut keep: impl FnMut(&RunRecord),
) -> anyhow::Result<BackendOverhead> {
    let mut out = BackendOverhead {
        backend: backend.to_owned(),
        connection: Some(connection),
        pinned: settings.pin.clone(),
        ..Default::default()
    };
    // `Display` ignores a width; the progress lines align on the name.
    let policy = connection.as_str();
    let everywhere = affinity::allowed()?;
    for probe in settings.probes()? {
        let name = probe.name();
        let mut cfg = chimeraforge_sim::SimConfig::profile(probe.kind.profile())?;
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
            let mut job = probe::job(backend, &probe, &sim.base_url(), run_index);
            job.client.connection = connection;
            let result = run_child(exe, &job);
            let firsts = sim.take_first_tokens();
            match result {
                Ok(r) => {
                    progress(&format!(
                        "{backend:<14} {policy:<10} {name:<13} N={:<5} run {} {}",
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
                        "{backend:<14} {policy:<10} {name:<13} child failed: {e}"
                    ));
                    out.notes.push(format!("{name}: {e}"));
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A real record: 2 agents, 1 warm-up call each, 2 calls per agent and phase.
    fn quickstart_record() -> RunRecord {
        let line = include_str!("../../../report/tests/data/quickstart/runs.jsonl")
            .lines()
            .next()
            .unwrap();
        serde_json::from_str(line).unwrap()
    }

    /// Each kind of probe feeds its own figures: the long calls' efficiency apart and no CPU
    /// per call from them, peak RSS only from memory probes, only ingest from `null`.
    #[test]
    fn each_kind_feeds_its_own_figures() {
        use chimeraforge_core::record::PhaseCost;
        let mut r = quickstart_record();
        let client = r.client.as_mut().unwrap();
        // Half a core for a second: no client-bound note on any machine.
        client.phases = vec![PhaseCost {
            phase: Phase::Concurrent,
            wall_s: 1.0,
            user_cpu_s: 0.25,
            system_cpu_s: 0.25,
            peak_rss_kib: client.peak_rss_kib,
            voluntary_ctx_switches: 0,
            involuntary_ctx_switches: 0,
            output_tokens: 400,
        }];
        let rss = client.peak_rss_kib;
        let eff = r.metrics.as_ref().unwrap().efficiency.value;
        let absorbed = |kind, agents| {
            let probe = Probe {
                kind,
                agents,
                calls: 2,
                num_predict: 8,
                runs: 1,
            };
            let mut out = BackendOverhead::default();
            absorb(&mut out, &probe, &[r.clone()], &SimSide::default());
            assert!(out.notes.is_empty(), "{:?}", out.notes);
            out
        };
        let samples =
            |o: &BackendOverhead| o.ttft_bias_ms.iter().map(|b| b.samples).collect::<Vec<_>>();

        let o = absorbed(ProbeKind::Ideal, 2);
        assert_eq!(o.efficiency, [(2, eff)]);
        assert!(o.efficiency_long_calls.is_empty());
        // 0.5 CPU-s over the concurrent phase's 4 calls.
        assert_eq!(o.cpu_per_call_us, [(2, 125_000.0)]);
        assert_eq!(samples(&o), [4]);
        assert!(o.peak_rss_kib.is_empty() && o.ingest.is_empty());

        let o = absorbed(ProbeKind::IdealLongCalls, 2);
        assert_eq!(o.efficiency_long_calls, [(2, eff)]);
        assert!(o.efficiency.is_empty() && o.cpu_per_call_us.is_empty());
        assert_eq!(samples(&o), [4]);

        let o = absorbed(ProbeKind::Memory, 2);
        assert_eq!(o.peak_rss_kib, [(2, rss)]);
        assert_eq!(o.cpu_per_call_us, [(2, 125_000.0)]);

        // At N = 1 the sequential phase's calls are bias samples too; no efficiency at N = 1.
        let o = absorbed(ProbeKind::Ttft, 1);
        assert_eq!(samples(&o), [8]);
        assert!(o.efficiency.is_empty() && o.peak_rss_kib.is_empty());

        let o = absorbed(ProbeKind::Ingest, 2);
        assert_eq!(
            o.ingest,
            [Ingest {
                agents: 2,
                tokens_per_cpu_s: 800.0,
                busy_cores: 0.5,
                tokens: 400
            }]
        );
        assert!(o.ttft_bias_ms.is_empty() && o.efficiency.is_empty());
        assert!(o.cpu_per_call_us.is_empty() && o.peak_rss_kib.is_empty());
    }

    #[test]
    fn server_share_follows_the_runs_phase_order() {
        let mut r = quickstart_record();
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
}
