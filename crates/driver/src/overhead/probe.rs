//! The probes: what each one is ([`ProbeKind`]), the run shape it asks of a backend, and
//! the child job of one of its runs.

use crate::child::ChildJob;
use chimeraforge_core::api::ApiKind;
use chimeraforge_core::call::CallSettings;
use chimeraforge_core::protocol::RunPlan;
use chimeraforge_core::workload::{
    replicate, AgentTemplate, CallSpec, Endpoint, ModelOptions, Scenario,
};
use chimeraforge_core::ClientOptions;

const MODEL: &str = "gemma3:latest";

/// Tokens per call of `ideal-64-long`: 50 ms + 47 × 10 ms = 520 ms on `fixed`.
const LONG_TOKENS: u32 = 48;

/// What a probe measures; it decides the simulator profile, the phases that run and which
/// figures the probe's records feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeKind {
    /// TTFT bias at N = 1 on `fixed`, from both phases (`ttft-N`).
    Ttft,
    /// Efficiency on the ideal device, with TTFT bias and CPU per call (`ideal-N`).
    Ideal,
    /// [`ProbeKind::Ideal`] with longer calls: its efficiency is a figure of its own, and
    /// its CPU per call is not taken (`ideal-N-long`).
    IdealLongCalls,
    /// Peak RSS of a small concurrent-only run, with TTFT bias and CPU per call (`mem-N`).
    Memory,
    /// Ingest ceiling: tokens per client CPU-second on `null`, concurrent only (`ingest-N`).
    Ingest,
}

impl ProbeKind {
    /// The simulator profile the probe runs against.
    pub(crate) fn profile(self) -> &'static str {
        match self {
            ProbeKind::Ingest => "null",
            ProbeKind::Ttft | ProbeKind::Ideal | ProbeKind::IdealLongCalls | ProbeKind::Memory => {
                "fixed"
            }
        }
    }

    /// Only the concurrent phase runs (no sequential baseline, so no efficiency).
    fn concurrent_only(self) -> bool {
        matches!(self, ProbeKind::Memory | ProbeKind::Ingest)
    }
}

/// One measurement: a run shape of one [`ProbeKind`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Probe {
    pub(crate) kind: ProbeKind,
    pub(crate) agents: usize,
    /// Calls per agent and phase.
    pub(crate) calls: usize,
    /// Output tokens per call.
    pub(crate) num_predict: u32,
    pub(crate) runs: u32,
}

impl Probe {
    /// The name `--probes` selects it by, e.g. `ideal-64-long`.
    pub(crate) fn name(&self) -> String {
        let n = self.agents;
        match self.kind {
            ProbeKind::Ttft => format!("ttft-{n}"),
            ProbeKind::Ideal => format!("ideal-{n}"),
            ProbeKind::IdealLongCalls => format!("ideal-{n}-long"),
            ProbeKind::Memory => format!("mem-{n}"),
            ProbeKind::Ingest => format!("ingest-{n}"),
        }
    }

    pub(crate) fn concurrent_only(&self) -> bool {
        self.kind.concurrent_only()
    }

    /// One call per agent, N > 1, all released together: the client's send spread and the
    /// server's arrival spread are figures of the burst.
    pub(crate) fn is_burst(&self) -> bool {
        self.calls == 1 && self.agents > 1
    }
}

/// The probes, in the order they run. `quick` runs each once, with shorter streams.
pub(crate) fn probes(quick: bool) -> Vec<Probe> {
    use ProbeKind::*;
    let runs = if quick { 1 } else { 2 };
    let p = |kind, agents, calls, num_predict, runs| Probe {
        kind,
        agents,
        calls,
        num_predict,
        runs,
    };
    let mut v = vec![
        p(Ttft, 1, 8, 8, runs),
        p(Ideal, 2, 4, 24, runs),
        p(Ideal, 8, 2, 24, runs),
        p(Ideal, 64, 1, 16, runs),
    ];
    if !quick {
        // The same 64 agents with calls of 520 ms instead of 200: the client's share of
        // T_conc is a roughly fixed number of ms per phase, so it weighs less here.
        v.push(p(IdealLongCalls, 64, 1, LONG_TOKENS, 1));
    }
    v.extend([
        p(Memory, 1, 1, 4, 1),
        p(Memory, 64, 1, 4, 1),
        p(Memory, 1024, 1, 4, 1),
        p(Ingest, 1, 2, if quick { 20_000 } else { 50_000 }, runs),
        p(Ingest, 64, 1, if quick { 1_000 } else { 2_000 }, runs),
    ]);
    v
}

/// The probes of a sweep (`quick` or not), only those named in `only` when given (in the
/// sweep's order); an unknown name is an error that lists the known ones.
pub(crate) fn selected(quick: bool, only: Option<&[String]>) -> Result<Vec<Probe>, String> {
    let all = probes(quick);
    let Some(only) = only else {
        return Ok(all);
    };
    if let Some(bad) = only.iter().find(|n| !all.iter().any(|p| p.name() == **n)) {
        return Err(format!(
            "unknown probe {bad:?}\n  hint: probes are {}",
            all.iter().map(Probe::name).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(all
        .into_iter()
        .filter(|p| only.contains(&p.name()))
        .collect())
}

/// The child job of one probe run against the simulator at `base_url`.
pub(crate) fn job(backend: &str, probe: &Probe, base_url: &str, run_index: u32) -> ChildJob {
    let endpoint = Endpoint {
        name: "sim".into(),
        base_url: base_url.to_owned(),
        api: ApiKind::Ollama,
        api_key_env: None,
        ca_file: None,
        tls_insecure: false,
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
                tool: None,
            })
            .collect(),
        after: Vec::new(),
        history: false,
    };
    let base = ModelOptions {
        num_predict: Some(probe.num_predict),
        ..Default::default()
    };
    let agents = replicate(&[template], probe.agents, &[endpoint], None)
        .into_iter()
        .enumerate()
        .map(|(i, mut t)| {
            // One option set for every agent, so one warm-up call loads the model (the others'
            // warm-up calls then open their connections together).
            t.options.seed = None;
            t.instantiate(MODEL, Scenario::ChimeraHomo, i, &base)
        })
        .collect();
    let mut plan = RunPlan::alternating(run_index, agents, 4, CallSettings::default());
    plan.concurrent_only = probe.concurrent_only();
    ChildJob {
        backend: backend.into(),
        model: MODEL.into(),
        scenario: Scenario::ChimeraHomo,
        client: ClientOptions::default(),
        plan,
    }
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
            assert_eq!(j.plan.concurrent_only, p.concurrent_only());
            assert_eq!(j.plan.agents[0].options.num_predict, Some(p.num_predict));
            let ids: std::collections::BTreeSet<_> =
                j.plan.agents.iter().map(|a| a.id.clone()).collect();
            assert_eq!(ids.len(), p.agents, "{}", p.name());
        }
    }

    /// The sweep as it was when probes were a table of names and profiles: the names,
    /// profiles and phases each kind gives are the ones `--probes` and the docs know.
    #[test]
    fn the_sweep_names_profiles_and_phases() {
        let sweep = |quick| {
            probes(quick)
                .iter()
                .map(|p| {
                    let shape = (p.agents, p.calls, p.num_predict, p.runs);
                    (p.name(), p.kind.profile(), p.concurrent_only(), shape)
                })
                .collect::<Vec<_>>()
        };
        let row = |name: &str, profile, conc, shape| (name.to_owned(), profile, conc, shape);
        assert_eq!(
            sweep(false),
            [
                row("ttft-1", "fixed", false, (1, 8, 8, 2)),
                row("ideal-2", "fixed", false, (2, 4, 24, 2)),
                row("ideal-8", "fixed", false, (8, 2, 24, 2)),
                row("ideal-64", "fixed", false, (64, 1, 16, 2)),
                row("ideal-64-long", "fixed", false, (64, 1, 48, 1)),
                row("mem-1", "fixed", true, (1, 1, 4, 1)),
                row("mem-64", "fixed", true, (64, 1, 4, 1)),
                row("mem-1024", "fixed", true, (1024, 1, 4, 1)),
                row("ingest-1", "null", true, (1, 2, 50_000, 2)),
                row("ingest-64", "null", true, (64, 1, 2_000, 2)),
            ]
        );
        let quick = sweep(true);
        assert_eq!(quick.len(), 9);
        assert_eq!(quick[8], row("ingest-64", "null", true, (64, 1, 1_000, 1)));
    }

    #[test]
    fn long_calls_only_in_the_full_sweep() {
        let names = |quick| probes(quick).iter().map(Probe::name).collect::<Vec<_>>();
        assert!(names(false).contains(&"ideal-64-long".to_owned()));
        assert!(!names(true).contains(&"ideal-64-long".to_owned()));
        let only = |list: &[&str]| {
            let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
            selected(false, Some(&list))
        };
        let picked = only(&["mem-1", "ttft-1"]).unwrap();
        // In the sweep's order, not the list's.
        assert_eq!(
            picked.iter().map(Probe::name).collect::<Vec<_>>(),
            ["ttft-1", "mem-1"]
        );
        assert!(only(&["ideal-3"]).unwrap_err().contains("ideal-64-long"));
    }
}
