//! Synthetic results: run records whose metrics come from `run_metrics` over generated
//! phases, so every figure is consistent with the calls it rests on. Shared by the tests and
//! the `report` bench.

#![allow(dead_code)]

use chimeraforge_core::api::{ApiKind, ServerStats};
use chimeraforge_core::call::{Basis, CallError, CallErrorKind, CallRecord, TokenCount};
use chimeraforge_core::graph::Graph;
use chimeraforge_core::metrics::{percentiles, run_metrics};
use chimeraforge_core::record::Figure;
use chimeraforge_core::record::{
    AgentPhaseRecord, ClientCost, Phase, PhaseOrder, PhaseRecord, RunRecord, RunStatus,
    SCHEMA_VERSION,
};
use chimeraforge_core::rt::RuntimeFacts;
use chimeraforge_core::workload::{Agent, CallSpec, Endpoint, Scenario};
use std::path::Path;

/// How one cell behaves.
#[derive(Debug, Clone)]
pub struct CellSpec {
    pub backend: String,
    pub model: String,
    pub scenario: Scenario,
    /// Decode rate of an agent alone, tok/s.
    pub rate_tok_s: f64,
    /// How much each agent slows down when both run (1 = ideal device, 2 = serial).
    pub slowdown: f64,
    pub ttft_ms: f64,
    /// Output tokens per call.
    pub tokens: u64,
    /// Run-to-run relative noise (sd of a multiplicative factor).
    pub noise: f64,
    pub seed: u64,
    /// Preview text of every call (may hold markup, to test escaping).
    pub preview: String,
    /// Agent ids, in order.
    pub agent_ids: Vec<String>,
    /// An agent graph instead of independent agents ([`graph_run`]).
    pub graph: Option<GraphSpec>,
}

/// Who waits on whom, tool steps and growing histories, per agent in `agent_ids` order.
#[derive(Debug, Clone, Default)]
pub struct GraphSpec {
    /// The ids each agent starts after.
    pub after: Vec<Vec<String>>,
    /// The tool step after each of the agent's calls but its last, ms (`None`: no tool).
    pub tool_ms: Vec<Option<f64>>,
    /// Calls per agent.
    pub calls: usize,
    /// Prompt tokens of each agent's first call, and what each later call adds (its
    /// history; 0: no history). TTFT grows by `ttft_ms_per_token` per prompt token.
    pub prompt_tokens: u64,
    pub history_tokens: u64,
    pub ttft_ms_per_token: f64,
}

impl CellSpec {
    pub fn new(backend: &str, model: &str, scenario: Scenario) -> CellSpec {
        CellSpec {
            backend: backend.to_owned(),
            model: model.to_owned(),
            scenario,
            rate_tok_s: 100.0,
            slowdown: 1.02,
            ttft_ms: 40.0,
            tokens: 48,
            noise: 0.02,
            seed: 1,
            preview: "Throughput is bounded by the device.".to_owned(),
            agent_ids: vec!["collector".to_owned(), "insight".to_owned()],
            graph: None,
        }
    }

    /// An orchestrator fanning out to three workers (two of them wait on a tool between
    /// their calls), fanned in by an aggregator; every agent carries its history, so each
    /// of its three calls sends a longer prompt.
    pub fn graph(backend: &str, model: &str) -> CellSpec {
        let ids = [
            "orchestrator",
            "worker-1",
            "worker-2",
            "worker-3",
            "aggregator",
        ];
        let workers = || {
            vec![
                "worker-1".to_owned(),
                "worker-2".to_owned(),
                "worker-3".to_owned(),
            ]
        };
        CellSpec {
            agent_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            tokens: 24,
            graph: Some(GraphSpec {
                after: vec![
                    vec![],
                    vec!["orchestrator".to_owned()],
                    vec!["orchestrator".to_owned()],
                    vec!["orchestrator".to_owned()],
                    workers(),
                ],
                tool_ms: vec![None, Some(200.0), None, Some(120.0), None],
                calls: 3,
                prompt_tokens: 60,
                history_tokens: 90,
                ttft_ms_per_token: 0.1,
            }),
            ..CellSpec::new(backend, model, Scenario::BaselineVsChimera)
        }
    }
}

/// A small deterministic generator (xorshift64*), so fixtures need no RNG crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Roughly normal, mean 0, sd 1 (sum of 12 uniforms).
    pub fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
}

fn call(
    spec: &CellSpec,
    agent: &str,
    name: &str,
    send_ms: f64,
    ttft_ms: f64,
    tokens: u64,
    rate: f64,
) -> CallRecord {
    let step = 1e3 / rate;
    let offsets: Vec<f64> = (0..tokens).map(|i| ttft_ms + i as f64 * step).collect();
    let decode = offsets.last().unwrap() - offsets[0];
    let e2e = offsets.last().unwrap() + 0.5;
    let gaps: Vec<f64> = offsets.windows(2).map(|w| w[1] - w[0]).collect();
    CallRecord {
        agent_id: agent.to_owned(),
        call: name.to_owned(),
        url: "http://127.0.0.1:11434/api/chat".to_owned(),
        model: spec.model.clone(),
        send_offset_ms: send_ms,
        ttft_ms: Some(ttft_ms),
        e2e_ms: e2e,
        decode_ms: Some(decode),
        output_tokens: Some(TokenCount {
            value: tokens,
            basis: Basis::Measured,
        }),
        text_events: tokens,
        bytes_received: tokens * 120,
        text_offsets_ms: offsets,
        client_decode_tok_s: (tokens > 1).then(|| (tokens - 1) as f64 / (decode / 1e3)),
        tpot_ms: (tokens > 1).then(|| decode / (tokens - 1) as f64),
        gap_ms: percentiles(&gaps),
        server: Some(ServerStats {
            output_tokens: Some(tokens),
            eval_ms: Some(decode),
            ..ServerStats::default()
        }),
        server_decode_tok_s: Some(tokens as f64 / (decode / 1e3)),
        cold_load: false,
        output_preview: spec.preview.clone(),
        error: None,
        ttft_answer_ms: Some(ttft_ms),
        reasoning_events: 0,
        reasoning_tokens: None,
        answer_tokens: Some(TokenCount {
            value: tokens,
            basis: Basis::Measured,
        }),
        output_truncated: false,
        connections_opened: 0,
        reconnects: 0,
        tool_calls: 0,
        tool_call_events: 0,
        tool_wait_ms: None,
    }
}

/// One agent's two calls, back to back from `start_ms`.
fn agent_phase(
    spec: &CellSpec,
    agent: &str,
    start_ms: f64,
    ttft: f64,
    rate: f64,
    tokens: u64,
) -> AgentPhaseRecord {
    let first = call(spec, agent, "analysis", start_ms, ttft, tokens, rate);
    let second_start = start_ms + first.e2e_ms + 0.2;
    let second = call(spec, agent, "report", second_start, ttft, tokens, rate);
    let end = second_start + second.e2e_ms;
    AgentPhaseRecord {
        agent_id: agent.to_owned(),
        start_ms,
        duration_ms: end - start_ms,
        calls: vec![first, second],
    }
}

fn agents(spec: &CellSpec) -> Vec<Agent> {
    spec.agent_ids
        .iter()
        .enumerate()
        .map(|(i, id)| Agent {
            id: id.clone(),
            label: format!("Agent{i}"),
            system: "You are concise.".to_owned(),
            model: spec.model.clone(),
            endpoint: Endpoint {
                name: format!("ollama-{i}"),
                base_url: "http://127.0.0.1:11434".to_owned(),
                api: ApiKind::Ollama,
                api_key_env: None,
                ca_file: None,
                tls_insecure: false,
            },
            // As the driver instantiates them: the scenario's options per agent (so two
            // scenarios send different requests on Ollama's API).
            options: spec.scenario.options_for(i),
            calls: match &spec.graph {
                None => vec![
                    CallSpec {
                        name: "analysis".to_owned(),
                        prompt: "Analyse.".to_owned(),
                        tool: None,
                    },
                    CallSpec {
                        name: "report".to_owned(),
                        prompt: "Report on {previous}".to_owned(),
                        tool: None,
                    },
                ],
                Some(g) => (0..g.calls)
                    .map(|k| CallSpec {
                        name: graph_call_name(k),
                        prompt: format!("Step {} of {{previous}}", k + 1),
                        tool: None,
                    })
                    .collect(),
            },
            after: spec
                .graph
                .as_ref()
                .and_then(|g| g.after.get(i).cloned())
                .unwrap_or_default(),
            history: spec.graph.as_ref().is_some_and(|g| g.history_tokens > 0),
        })
        .collect()
}

fn base_record(spec: &CellSpec, run_index: u32) -> RunRecord {
    RunRecord {
        schema_version: SCHEMA_VERSION,
        backend: spec.backend.clone(),
        model: spec.model.clone(),
        scenario: spec.scenario,
        run_index,
        started_unix_ms: 1_700_000_000_000 + u64::from(run_index) * 10_000,
        runtime: RuntimeFacts {
            scheduler: "synthetic".to_owned(),
            worker_threads: 2,
            http_client: "none".to_owned(),
            read_buffer_bytes: None,
            notes: vec![],
        },
        phase_order: if run_index % 2 == 0 {
            PhaseOrder::SequentialFirst
        } else {
            PhaseOrder::ConcurrentFirst
        },
        sequential_order: (0..spec.agent_ids.len()).collect(),
        agents: agents(spec),
        warmup: vec![],
        sequential: None,
        concurrent: None,
        metrics: None,
        status: RunStatus::Ok,
        client: Some(ClientCost {
            user_cpu_s: 0.012,
            system_cpu_s: 0.004,
            peak_rss_kib: 6144,
            voluntary_ctx_switches: 100,
            involuntary_ctx_switches: 3,
            ..ClientCost::default()
        }),
        run_tag: String::new(),
        prompt_nonce: String::new(),
        connection: None,
    }
}

/// A successful run of `spec`, metrics from `run_metrics`.
pub fn ok_run(spec: &CellSpec, run_index: u32) -> RunRecord {
    let cell = format!("{}/{}/{}", spec.backend, spec.model, spec.scenario);
    let mut rng = Rng::new(spec.seed ^ (u64::from(run_index) << 32) ^ hash(&cell));
    let factor = |rng: &mut Rng| (1.0 + spec.noise * rng.normal()).max(0.2);
    let mut seq_agents = Vec::new();
    let mut t = 0.0;
    for id in &spec.agent_ids {
        let a = agent_phase(
            spec,
            id,
            t,
            spec.ttft_ms * factor(&mut rng),
            spec.rate_tok_s * factor(&mut rng),
            spec.tokens,
        );
        t += a.duration_ms + 1.0;
        seq_agents.push(a);
    }
    let seq = PhaseRecord {
        phase: Phase::Sequential,
        wall_ms: t,
        agents: seq_agents,
    };
    let conc_agents: Vec<AgentPhaseRecord> = spec
        .agent_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let slow = spec.slowdown * factor(&mut rng);
            agent_phase(
                spec,
                id,
                0.05 * i as f64,
                spec.ttft_ms * slow * factor(&mut rng),
                spec.rate_tok_s / slow,
                spec.tokens,
            )
        })
        .collect();
    let wall = conc_agents
        .iter()
        .map(|a| a.start_ms + a.duration_ms)
        .fold(0.0, f64::max);
    let conc = PhaseRecord {
        phase: Phase::Concurrent,
        wall_ms: wall,
        agents: conc_agents,
    };
    let mut r = base_record(spec, run_index);
    r.metrics = Some(run_metrics(&seq, &conc));
    r.sequential = Some(seq);
    r.concurrent = Some(conc);
    r
}

/// A run that failed in the concurrent phase with `kind` and `message`.
pub fn failed_run(
    spec: &CellSpec,
    run_index: u32,
    kind: CallErrorKind,
    message: &str,
) -> RunRecord {
    let mut r = ok_run(spec, run_index);
    let agent = spec.agent_ids[1].clone();
    let error = CallError {
        kind,
        message: message.to_owned(),
        url: "http://127.0.0.1:11434/api/chat".to_owned(),
        model: spec.model.clone(),
        status: Some(500),
        bytes_received: 0,
        elapsed_ms: 12.0,
    };
    if let Some(conc) = &mut r.concurrent {
        conc.agents[1].calls.truncate(1);
        conc.agents[1].calls[0].error = Some(error.clone());
    }
    r.metrics = None;
    r.status = RunStatus::Failed {
        phase: Phase::Concurrent,
        agent_id: agent,
        call: "analysis".to_owned(),
        error,
    };
    r
}

fn graph_call_name(k: usize) -> String {
    format!("step-{}", k + 1)
}

/// One graph agent's calls from `start_ms`: a tool wait after each call but the last where
/// the agent has a tool; prompts growing by the history.
#[allow(clippy::too_many_arguments)]
fn graph_agent_phase(
    spec: &CellSpec,
    g: &GraphSpec,
    i: usize,
    start_ms: f64,
    ttft: f64,
    rate: f64,
) -> AgentPhaseRecord {
    let agent = &spec.agent_ids[i];
    let mut calls = Vec::new();
    let mut t = start_ms;
    for k in 0..g.calls {
        let prompt = g.prompt_tokens + k as u64 * g.history_tokens;
        let ttft = ttft + prompt as f64 * g.ttft_ms_per_token;
        let mut c = call(spec, agent, &graph_call_name(k), t, ttft, spec.tokens, rate);
        if let Some(s) = &mut c.server {
            s.prompt_tokens = Some(prompt);
        }
        t += c.e2e_ms + 0.2;
        if k + 1 < g.calls {
            if let Some(w) = g.tool_ms[i] {
                c.tool_wait_ms = Some(w);
                c.tool_calls = 1;
                t += w;
            }
        }
        calls.push(c);
    }
    let end = calls
        .last()
        .map_or(start_ms, |c| c.send_offset_ms + c.e2e_ms);
    AgentPhaseRecord {
        agent_id: agent.clone(),
        start_ms,
        duration_ms: end - start_ms,
        calls,
    }
}

/// A successful run of a graph cell ([`CellSpec::graph`]): the sequential phase runs the
/// agents alone in a topological order, the concurrent phase starts each agent when its
/// dependencies ended, agents running beside others slowed by `slowdown`. Its metrics
/// carry the critical path, the graph's ceiling and its efficiency, as the protocol records
/// them.
pub fn graph_run(spec: &CellSpec, run_index: u32) -> RunRecord {
    let g = spec.graph.as_ref().expect("a graph cell");
    let cell = format!("{}/{}/{}/graph", spec.backend, spec.model, spec.scenario);
    let mut rng = Rng::new(spec.seed ^ (u64::from(run_index) << 32) ^ hash(&cell));
    let factor = |rng: &mut Rng| (1.0 + spec.noise * rng.normal()).max(0.2);
    let base = base_record(spec, run_index);
    let graph = Graph::of(&base.agents).expect("an acyclic graph");
    let n = spec.agent_ids.len();
    let order = graph.topological_order(&(0..n).collect::<Vec<_>>());

    let mut seq: Vec<Option<AgentPhaseRecord>> = vec![None; n];
    let mut t = 0.0;
    for &i in &order {
        let ttft = spec.ttft_ms * factor(&mut rng);
        let rate = spec.rate_tok_s * factor(&mut rng);
        let a = graph_agent_phase(spec, g, i, t, ttft, rate);
        t += a.duration_ms + 1.0;
        seq[i] = Some(a);
    }
    let seq = PhaseRecord {
        phase: Phase::Sequential,
        wall_ms: t,
        agents: seq
            .into_iter()
            .map(|a| a.expect("every agent ran"))
            .collect(),
    };

    // Depth of each agent along the dependencies: agents of one depth run side by side.
    let mut depth = vec![0usize; n];
    for &i in &order {
        depth[i] = graph.after[i]
            .iter()
            .map(|&d| depth[d] + 1)
            .max()
            .unwrap_or(0);
    }
    let mut conc: Vec<Option<AgentPhaseRecord>> = vec![None; n];
    for &i in &order {
        let start = graph.after[i]
            .iter()
            .map(|&d| {
                let a = conc[d].as_ref().expect("dependencies first");
                a.start_ms + a.duration_ms
            })
            .fold(0.0, f64::max)
            + 0.3;
        let crowded = depth.iter().filter(|&&d| d == depth[i]).count() > 1;
        let slow = if crowded { spec.slowdown } else { 1.0 } * factor(&mut rng);
        let ttft = spec.ttft_ms * slow * factor(&mut rng);
        conc[i] = Some(graph_agent_phase(
            spec,
            g,
            i,
            start,
            ttft,
            spec.rate_tok_s / slow,
        ));
    }
    let conc_agents: Vec<AgentPhaseRecord> = conc
        .into_iter()
        .map(|a| a.expect("every agent ran"))
        .collect();
    let wall = conc_agents
        .iter()
        .map(|a| a.start_ms + a.duration_ms)
        .fold(0.0, f64::max);
    let conc = PhaseRecord {
        phase: Phase::Concurrent,
        wall_ms: wall,
        agents: conc_agents,
    };
    let mut m = run_metrics(&seq, &conc);
    let durations: Vec<f64> = seq.agents.iter().map(|a| a.duration_ms).collect();
    let cp = graph.critical_path(&durations).expect("durations fit").ms;
    m.critical_path_ms = Some(cp);
    m.graph_ceiling = Some(Figure::measured(m.sequential_sum_ms / cp));
    m.graph_efficiency = Some(Figure::measured(cp / m.concurrent_wall_ms));
    let mut r = base;
    r.sequential_order = order;
    r.metrics = Some(m);
    r.sequential = Some(seq);
    r.concurrent = Some(conc);
    r
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A run whose child process left no record: the cell, the run, the driver's cause
/// (`crashed`, …) and its detail.
pub type Lost<'a> = (&'a CellSpec, u32, &'a str, &'a str);

/// A manifest like the driver's: config (name, models, scenarios, agents), backends, run
/// order, and the runs whose child left no record (`lost_runs`).
pub fn manifest(specs: &[(CellSpec, u32)], lost: &[Lost<'_>]) -> serde_json::Value {
    let mut backends: Vec<&str> = Vec::new();
    let mut models: Vec<&str> = Vec::new();
    let mut scenarios: Vec<&str> = Vec::new();
    for (s, _) in specs {
        if !backends.contains(&s.backend.as_str()) {
            backends.push(&s.backend);
        }
        if !models.contains(&s.model.as_str()) {
            models.push(&s.model);
        }
        if !scenarios.contains(&s.scenario.name()) {
            scenarios.push(s.scenario.name());
        }
    }
    let rounds = specs.iter().map(|s| s.1).max().unwrap_or(0);
    let mut order = Vec::new();
    for run in 0..rounds {
        for (s, runs) in specs {
            if run < *runs {
                order.push(serde_json::json!({
                    "cell": {"backend": s.backend, "model": s.model, "scenario": s.scenario.name(), "agents": s.agent_ids.len()},
                    "run_index": run,
                }));
            }
        }
    }
    serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "chimeraforge", "version": "0.1.0", "git_revision": "test", "rustc": "rustc 1.95.0"},
        "config_path": "bench-configs/synthetic.toml",
        "config_text": "name = \"synthetic\"\n# a comment with <b>markup</b> & \"quotes\"\n",
        "config_fnv1a64": "0000000000000000",
        "config": {"name": "synthetic", "description": "Synthetic runs for tests.", "models": models, "scenarios": scenarios, "agents": [{"id": "collector"}, {"id": "insight"}]},
        "backends": backends,
        "order": order,
        "host": {"cpu_model": "test cpu", "cpus": 2, "os": "linux", "kernel": "6"},
        "started_utc": "20250101T000000Z",
        "finished_utc": "20250101T010000Z",
        "lost_runs": lost.iter().map(|(s, run, kind, detail)| serde_json::json!({
            "slot": {"cell": {"backend": s.backend, "model": s.model, "scenario": s.scenario.name(), "agents": s.agent_ids.len()}, "run_index": run},
            "failure": {"kind": kind, "backend": s.backend, "status": "signal 9", "detail": detail},
            "at_utc": "20250101T003000Z",
        })).collect::<Vec<_>>(),
    })
}

/// Write a results directory: the manifest, one line per record, then `tail` verbatim (a
/// partial last line, say).
pub fn write_dir(dir: &Path, manifest: &serde_json::Value, records: &[RunRecord], tail: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(manifest).unwrap(),
    )
    .unwrap();
    let mut body = String::new();
    for r in records {
        body.push_str(&serde_json::to_string(r).unwrap());
        body.push('\n');
    }
    body.push_str(tail);
    std::fs::write(dir.join("runs.jsonl"), body).unwrap();
}

/// Every run of every spec: `runs` successful runs each.
pub fn records(specs: &[(CellSpec, u32)]) -> Vec<RunRecord> {
    let rounds = specs.iter().map(|s| s.1).max().unwrap_or(0);
    let mut out = Vec::new();
    for run in 0..rounds {
        for (s, runs) in specs {
            if run < *runs {
                out.push(ok_run(s, run));
            }
        }
    }
    out
}

/// A TR116-like matrix: 4 backends × 3 models × 2 scenarios, `runs` runs each, with
/// backends and models that differ (async-std serialized, smol slower to first token) and
/// a hostile preview in one cell.
pub fn matrix(runs: u32) -> Vec<(CellSpec, u32)> {
    let backends = [
        ("tokio-default", 1.02, 1.0),
        ("tokio-localset", 1.03, 1.0),
        ("smol-1kb", 1.05, 4.0),
        ("async-std", 1.9, 1.0),
    ];
    let models = [
        ("gemma3:latest", 100.0),
        ("llama3.1:8b-instruct-q4_0", 68.0),
        ("qwen2.5:7b", 76.0),
    ];
    let mut out = Vec::new();
    for (model, rate) in models {
        for scenario in [Scenario::BaselineVsChimera, Scenario::ChimeraHomo] {
            for (backend, slowdown, ttft_factor) in backends {
                let mut s = CellSpec::new(backend, model, scenario);
                s.rate_tok_s = rate;
                s.slowdown = slowdown;
                s.ttft_ms = 40.0 * ttft_factor;
                s.noise = 0.03;
                if backend == "smol-1kb" && model == "qwen2.5:7b" {
                    s.preview = "<script>alert(1)</script></svg>".to_owned();
                }
                out.push((s, runs));
            }
        }
    }
    out
}
