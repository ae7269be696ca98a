//! The run protocol, written once and monomorphized per backend:
//! warm-up (not measured), a sequential phase (each agent alone, one after another, in a
//! topological order of the agents' graph) and a concurrent phase (all agents released
//! together from a barrier, each its own task on the runtime under test; an agent with
//! dependencies starts as soon as all of them finished). Phase order and sequential agent
//! order alternate between runs.

use crate::call::{execute_call, CallSettings, CallTarget};
use crate::graph::Graph;
use crate::http::HttpClient;
use crate::metrics::run_metrics_with_graph;
use crate::metrics::RunMetrics;
use crate::record::{
    AgentPhaseRecord, CallError, CallErrorKind, CallRecord, Phase, PhaseOrder, PhaseRecord,
    RunRecord, RunStatus,
};
use crate::rt::{AsyncRuntime, JoinError};
use crate::workload::{Agent, Transcript, Turn};
use serde::{Deserialize, Serialize};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How one run is carried out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    pub run_index: u32,
    pub agents: Vec<Agent>,
    pub phase_order: PhaseOrder,
    /// Agent indices in the order the sequential phase runs them.
    pub sequential_order: Vec<usize>,
    /// Output tokens of each warm-up call; 0 disables warm-up.
    pub warmup_tokens: u32,
    pub settings: CallSettings,
    /// Run only the concurrent phase (no sequential baseline, so no speedup): for overhead
    /// probes with many agents, where a sequential phase would take N times as long.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub concurrent_only: bool,
    /// Names this run uniquely in the matrix (e.g. `run 3 tokio-default gemma3 chimera-homo`);
    /// it ends each agent's tag in each phase (see [`agent_tag`]), so no server prompt cache,
    /// even one kept across requests like llama.cpp's, serves one run's, phase's or agent's
    /// prompts to another. Empty: `run N`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_tag: String,
    /// The invocation's prompt nonce (empty with `prompt_cache = "allow"`): it leads every
    /// tag, so nothing an earlier invocation sent is a prefix of what this one sends.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prompt_nonce: String,
}

impl RunPlan {
    /// The default alternation: even runs go sequential-first with agents in order, odd
    /// runs concurrent-first with agents reversed, so drift and cache effects don't always
    /// land on the same phase or agent. Agents with dependencies (`after`) go in the
    /// topological order closest to that (`Graph::topological_order`).
    pub fn alternating(
        run_index: u32,
        agents: Vec<Agent>,
        warmup_tokens: u32,
        settings: CallSettings,
    ) -> Self {
        let n = agents.len();
        let even = run_index % 2 == 0;
        RunPlan {
            run_index,
            phase_order: if even {
                PhaseOrder::SequentialFirst
            } else {
                PhaseOrder::ConcurrentFirst
            },
            sequential_order: {
                let preferred: Vec<usize> = if even {
                    (0..n).collect()
                } else {
                    (0..n).rev().collect()
                };
                match Graph::of(&agents) {
                    Ok(g) => g.topological_order(&preferred),
                    // Reported as the run's failure by `execute_run`.
                    Err(_) => preferred,
                }
            },
            agents,
            warmup_tokens,
            settings,
            concurrent_only: false,
            run_tag: String::new(),
            prompt_nonce: String::new(),
        }
    }
}

/// Called between phases, never inside a measured one: where a caller samples its own
/// cost (CPU, memory) per phase. `()` observes nothing and compiles to nothing.
pub trait PhaseObserver {
    /// `phase` is about to start.
    fn phase_starting(&mut self, _phase: Phase) {}
    /// `phase` has ended: every agent of it finished (or the phase failed).
    fn phase_ended(&mut self, _phase: Phase) {}
    /// A counter the calls of agent `index` add their text events to, for live progress
    /// read from another thread. Asked once per run, before anything is measured.
    fn live_tokens(&self, _index: usize) -> Option<Arc<AtomicU64>> {
        None
    }
}

impl PhaseObserver for () {}

/// What a run produced, before it is wrapped in a [`crate::record::RunRecord`].
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub warmup: Vec<CallRecord>,
    pub sequential: Option<PhaseRecord>,
    pub concurrent: Option<PhaseRecord>,
    pub metrics: Option<RunMetrics>,
    pub status: RunStatus,
}

/// Execute `plan` on runtime `rt` with `client`. Call from inside `rt.block_on`.
///
/// `api_keys[i]` is agent i's API key, resolved by the caller (never recorded).
pub async fn execute_run<R: AsyncRuntime, C: HttpClient>(
    rt: Arc<R>,
    client: Arc<C>,
    plan: &RunPlan,
    api_keys: &[Option<String>],
) -> RunOutcome {
    execute_run_observed(rt, client, plan, api_keys, &mut ()).await
}

/// [`execute_run`], telling `observer` where each phase starts and ends.
pub async fn execute_run_observed<R: AsyncRuntime, C: HttpClient, O: PhaseObserver>(
    rt: Arc<R>,
    client: Arc<C>,
    plan: &RunPlan,
    api_keys: &[Option<String>],
    observer: &mut O,
) -> RunOutcome {
    let live: Vec<_> = (0..plan.agents.len())
        .map(|i| observer.live_tokens(i))
        .collect();
    // Each tool step's latency, drawn once per run, agent and call: the same in both phases.
    let tool_waits: Vec<Vec<Option<Duration>>> = plan
        .agents
        .iter()
        .map(|a| tool_waits(a, plan.run_index))
        .collect();
    // Each phase sends its own tag first (see `Agent::tagged`), and each agent its own (two
    // agents of one template would otherwise send identical prompts): built here, before
    // anything is measured.
    let jobs_for = |phase: Phase| -> Vec<Arc<AgentJob>> {
        plan.agents
            .iter()
            .enumerate()
            .map(|(i, a)| {
                Arc::new(AgentJob {
                    agent: a.tagged(&agent_tag(plan, phase, a)),
                    api_key: api_keys.get(i).cloned().flatten(),
                    settings: plan.settings.clone(),
                    live_tokens: live[i].clone(),
                    tool_waits: tool_waits[i].clone(),
                })
            })
            .collect()
    };
    let mut out = RunOutcome {
        warmup: Vec::new(),
        sequential: None,
        concurrent: None,
        metrics: None,
        status: RunStatus::Ok,
    };
    let graph = match Graph::of(&plan.agents) {
        Ok(g) => g,
        Err(e) => {
            let call = failed_call(
                &plan.agents[0],
                Phase::Warmup.as_str(),
                format!("the agents cannot run: {e}; fix the agents' `after` lists"),
            );
            out.status = failed(Phase::Warmup, &call);
            out.warmup.push(call);
            return out;
        }
    };
    // Each agent its own client, for the whole run: under keep-alive its connection is
    // its own, opened by its warm-up call and reused by every later call.
    let mut clients = Vec::with_capacity(plan.agents.len());
    for a in &plan.agents {
        match client.for_agent(&a.endpoint.tls()) {
            Ok(c) => clients.push(Arc::new(c)),
            Err(e) => {
                let call = failed_call(
                    a,
                    Phase::Warmup.as_str(),
                    format!("cannot build the agent's client: {e}"),
                );
                out.status = failed(Phase::Warmup, &call);
                out.warmup.push(call);
                return out;
            }
        }
    }

    if plan.warmup_tokens > 0 {
        observer.phase_starting(Phase::Warmup);
        out.warmup = warm_up(&rt, &clients, &jobs_for(Phase::Warmup), plan.warmup_tokens).await;
        observer.phase_ended(Phase::Warmup);
        if let Some(c) = out.warmup.iter().find(|c| c.error.is_some()) {
            out.status = failed(Phase::Warmup, c);
            return out;
        }
    }

    let phases: &[Phase] = match (plan.concurrent_only, plan.phase_order) {
        (true, _) => &[Phase::Concurrent],
        (false, PhaseOrder::SequentialFirst) => &[Phase::Sequential, Phase::Concurrent],
        (false, PhaseOrder::ConcurrentFirst) => &[Phase::Concurrent, Phase::Sequential],
    };
    for &phase in phases {
        observer.phase_starting(phase);
        let record = match phase {
            Phase::Concurrent => concurrent_phase(&rt, &clients, &jobs_for(phase), &graph).await,
            _ => {
                let order = graph.topological_order(&plan.sequential_order);
                sequential_phase(&rt, &clients, &jobs_for(phase), &graph, &order).await
            }
        };
        observer.phase_ended(phase);
        let failure = record
            .agents
            .iter()
            .flat_map(|a| &a.calls)
            .find(|c| c.error.is_some())
            .map(|c| failed(phase, c));
        match phase {
            Phase::Concurrent => out.concurrent = Some(record),
            _ => out.sequential = Some(record),
        }
        if let Some(status) = failure {
            out.status = status;
            return out;
        }
    }
    if let (Some(s), Some(c)) = (&out.sequential, &out.concurrent) {
        out.metrics = Some(run_metrics_with_graph(s, c, &graph));
    }
    out
}

/// What leads everything `agent` sends in `phase` of `plan` (see `Agent::tagged`):
/// `{nonce} {phase} {agent id} {run_tag}` (`run N` for an empty run tag; no nonce when there is
/// none). The nonce first: an earlier invocation shares no more than the chat template's
/// opening with it. Then what tells phases, agents and runs apart, so two prompts of one
/// invocation share at most the nonce, phase, agent id and run number (about 20 tokens) before
/// they differ. `sequential` and `concurrent` have the same length, so the two measured phases
/// send prompts of the same length.
pub fn agent_tag(plan: &RunPlan, phase: Phase, agent: &Agent) -> String {
    tag_of(
        &plan.prompt_nonce,
        &plan.run_tag,
        plan.run_index,
        phase,
        &agent.id,
    )
}

/// [`agent_tag`] from its parts (a [`RunRecord`] keeps them all).
pub fn tag_of(nonce: &str, run_tag: &str, run_index: u32, phase: Phase, agent_id: &str) -> String {
    let run = match run_tag {
        "" => format!("run {run_index}"),
        run => run.to_owned(),
    };
    let tag = format!("{} {agent_id} {run}", phase.as_str());
    match nonce {
        "" => tag,
        nonce => format!("{nonce} {tag}"),
    }
}

/// Each call's tool wait for `agent` in run `run_index` (`None`: no tool step after it).
fn tool_waits(agent: &Agent, run_index: u32) -> Vec<Option<Duration>> {
    let seed = agent.options.seed.unwrap_or(0);
    agent
        .calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.tool.as_ref().map(|t| {
                let ms = t.latency_ms.draw(seed, run_index, &agent.id, i);
                Duration::try_from_secs_f64(ms / 1e3).unwrap_or(Duration::ZERO)
            })
        })
        .collect()
}

impl RunRecord {
    /// The request body agent `agent` sent as call `call` in `phase`, given the text its
    /// previous call returned: the tag as the protocol built it, from this record's nonce,
    /// run tag and run index.
    pub fn request_body(&self, phase: Phase, agent: usize, call: usize, previous: &str) -> Vec<u8> {
        self.call_body(
            phase,
            agent,
            call,
            &Transcript::with_previous(call, previous),
        )
    }

    /// [`RunRecord::request_body`] after the turns and dependencies' answers in `transcript`.
    pub fn call_body(
        &self,
        phase: Phase,
        agent: usize,
        call: usize,
        transcript: &Transcript,
    ) -> Vec<u8> {
        let a = &self.agents[agent];
        let tag = tag_of(
            &self.prompt_nonce,
            &self.run_tag,
            self.run_index,
            phase,
            &a.id,
        );
        a.tagged(&tag).call_body(call, transcript)
    }
}

fn failed(phase: Phase, call: &CallRecord) -> RunStatus {
    RunStatus::Failed {
        phase,
        agent_id: call.agent_id.clone(),
        call: call.call.clone(),
        error: call.error.clone().expect("only called for failed calls"),
    }
}

struct AgentJob {
    agent: Agent,
    api_key: Option<String>,
    settings: CallSettings,
    live_tokens: Option<Arc<AtomicU64>>,
    /// `tool_waits[i]`: the tool step's latency after call i.
    tool_waits: Vec<Option<Duration>>,
}

/// One short call per agent, on the agent's own client: the first agent of each distinct
/// (endpoint, model, options) goes alone, in turn, so the model is resident with those
/// options before anything is measured; then the other agents together. Every agent's
/// connection is open (under keep-alive) before a measured phase starts.
async fn warm_up<R: AsyncRuntime, C: HttpClient>(
    rt: &Arc<R>,
    clients: &[Arc<C>],
    agents: &[Arc<AgentJob>],
    tokens: u32,
) -> Vec<CallRecord> {
    let mut seen = Vec::new();
    let (mut loaders, mut rest) = (Vec::new(), Vec::new());
    for (i, job) in agents.iter().enumerate() {
        let a = &job.agent;
        let key = (a.url(), a.model.clone(), a.options.clone());
        if seen.contains(&key) {
            rest.push(i);
        } else {
            seen.push(key);
            loaders.push(i);
        }
    }
    let mut records = Vec::new();
    for &i in &loaders {
        records.push(warm_call(&**rt, &*clients[i], &agents[i], tokens).await);
        if records.last().is_some_and(|r| r.error.is_some()) {
            return records;
        }
    }
    let handles: Vec<_> = rest
        .iter()
        .map(|&i| {
            let (rt2, client, job) = (
                Arc::clone(rt),
                Arc::clone(&clients[i]),
                Arc::clone(&agents[i]),
            );
            rt.spawn(async move { warm_call(&*rt2, &*client, &job, tokens).await })
        })
        .collect();
    for (h, &i) in handles.into_iter().zip(&rest) {
        records.push(match h.await {
            Ok(r) => r,
            Err(e) => failed_call(
                &agents[i].agent,
                Phase::Warmup.as_str(),
                format!("agent task failed: {e}"),
            ),
        });
    }
    records
}

/// One agent's warm-up call: `tokens` output tokens, not measured.
async fn warm_call<R: AsyncRuntime, C: HttpClient>(
    rt: &R,
    client: &C,
    job: &AgentJob,
    tokens: u32,
) -> CallRecord {
    let a = &job.agent;
    let mut warm = a.clone();
    warm.options.num_predict = Some(tokens);
    // No tools in warm-up: one short text call.
    if let Some(c) = warm.calls.first_mut() {
        c.tool = None;
    }
    let target = CallTarget {
        agent_id: &a.id,
        call: Phase::Warmup.as_str(),
        url: a.url(),
        model: &a.model,
        api: a.endpoint.api,
        body: warm.request_body(0, ""),
        api_key: job.api_key.as_deref(),
        num_predict: warm.options.num_predict,
        live_tokens: None,
    };
    let start = rt.now();
    execute_call(rt, client, target, &job.settings, start)
        .await
        .record
}

/// What one agent did in a phase: its record, when it ended, and its final answer (the text
/// its last call returned, for the agents that run after it).
type AgentRun = (AgentPhaseRecord, Instant, String);

/// An agent's calls in order; a call's output feeds the next call's prompt, a tool step's
/// wait follows its call. Stops at the first failed call (the next one would depend on it).
/// `outputs`: the final answers of the agents it runs after, by id.
async fn run_agent<R: AsyncRuntime, C: HttpClient>(
    rt: &R,
    client: &C,
    job: &AgentJob,
    phase_start: Instant,
    outputs: Vec<(String, String)>,
) -> AgentRun {
    let a = &job.agent;
    let start = rt.now();
    let mut calls = Vec::with_capacity(a.calls.len());
    let mut transcript = Transcript {
        turns: Vec::with_capacity(a.calls.len()),
        outputs,
    };
    for (i, spec) in a.calls.iter().enumerate() {
        let target = CallTarget {
            agent_id: &a.id,
            call: &spec.name,
            url: a.url(),
            model: &a.model,
            api: a.endpoint.api,
            body: a.call_body(i, &transcript),
            api_key: job.api_key.as_deref(),
            num_predict: a.options.num_predict,
            live_tokens: job.live_tokens.as_deref(),
        };
        let outcome = execute_call(rt, client, target, &job.settings, phase_start).await;
        let mut record = outcome.record;
        let failed = record.error.is_some();
        transcript.turns.push(Turn {
            text: outcome.text,
            tool_calls: outcome.tool_calls,
        });
        if let (false, Some(Some(wait))) = (failed, job.tool_waits.get(i)) {
            let t = rt.now();
            rt.sleep(*wait).await;
            record.tool_wait_ms = Some(ms_between(t, rt.now()));
        }
        calls.push(record);
        if failed {
            break;
        }
    }
    let end = rt.now();
    let record = AgentPhaseRecord {
        agent_id: a.id.clone(),
        start_ms: ms_between(phase_start, start),
        duration_ms: ms_between(start, end),
        calls,
    };
    let answer = transcript.turns.pop().map(|t| t.text).unwrap_or_default();
    (record, end, answer)
}

fn ms_between(a: Instant, b: Instant) -> f64 {
    b.saturating_duration_since(a).as_secs_f64() * 1e3
}

/// Run an agent as its own task on the runtime (both phases use the same path, so the
/// only difference between them is concurrency).
fn spawn_agent<R: AsyncRuntime, C: HttpClient>(
    rt: &Arc<R>,
    client: &Arc<C>,
    job: &Arc<AgentJob>,
    phase_start: Instant,
    outputs: Vec<(String, String)>,
) -> impl std::future::Future<Output = Result<AgentRun, JoinError>> + Send + 'static {
    let (rt2, client, job) = (Arc::clone(rt), Arc::clone(client), Arc::clone(job));
    rt.spawn(async move { run_agent(&*rt2, &*client, &job, phase_start, outputs).await })
}

/// The final answers of the agents agent `i` runs after, by id (`answers[d]`: agent d's).
fn outputs_for(
    graph: &Graph,
    agents: &[Arc<AgentJob>],
    answers: &[String],
    i: usize,
) -> Vec<(String, String)> {
    graph.after[i]
        .iter()
        .map(|&d| (agents[d].agent.id.clone(), answers[d].clone()))
        .collect()
}

/// Each agent alone, in `order` (topological), each given its dependencies' answers.
async fn sequential_phase<R: AsyncRuntime, C: HttpClient>(
    rt: &Arc<R>,
    clients: &[Arc<C>],
    agents: &[Arc<AgentJob>],
    graph: &Graph,
    order: &[usize],
) -> PhaseRecord {
    let phase_start = rt.now();
    let mut slots: Vec<Option<AgentPhaseRecord>> = vec![None; agents.len()];
    let mut answers = vec![String::new(); agents.len()];
    let mut last_end = phase_start;
    for &i in order {
        let outputs = outputs_for(graph, agents, &answers, i);
        let (rec, end, answer) = join_or_panic_record(
            spawn_agent(rt, &clients[i], &agents[i], phase_start, outputs).await,
            &agents[i],
        );
        last_end = last_end.max(end);
        answers[i] = answer;
        let failed = rec.error().is_some();
        slots[i] = Some(rec);
        if failed {
            break;
        }
    }
    PhaseRecord {
        phase: Phase::Sequential,
        wall_ms: ms_between(phase_start, last_end),
        agents: slots.into_iter().flatten().collect(),
    }
}

/// A dependency's word to an agent waiting on it: its id and final answer, `None` when it
/// failed.
type Finished = (String, Option<String>);

/// Every agent its own task, released together from a barrier; an agent with dependencies
/// then waits until each of them finished (its inbox holds their answers) and starts at
/// once. A dependent of a failed agent does not start (and has no record).
async fn concurrent_phase<R: AsyncRuntime, C: HttpClient>(
    rt: &Arc<R>,
    clients: &[Arc<C>],
    agents: &[Arc<AgentJob>],
    graph: &Graph,
) -> PhaseRecord {
    let n = agents.len();
    let (ready_tx, ready_rx) = async_channel::bounded::<()>(n.max(1));
    let (go_tx, go_rx) = async_channel::bounded::<()>(1);
    // The release instant is the phase origin for every agent: set just before release.
    let release_at = Arc::new(std::sync::OnceLock::<Instant>::new());
    // inbox i: what agent i's dependencies say when they finish. Only those dependencies'
    // tasks hold its senders, so a dependency whose task died closes it.
    let inboxes: Vec<_> = (0..n)
        .map(|i| async_channel::bounded::<Finished>(graph.after[i].len().max(1)))
        .collect();
    let mut handles = Vec::with_capacity(n);
    for (i, (job, client)) in agents.iter().zip(clients).enumerate() {
        let release_at = Arc::clone(&release_at);
        let (ready, go) = (ready_tx.clone(), go_rx.clone());
        let (rt2, client2, job2) = (Arc::clone(rt), Arc::clone(client), Arc::clone(job));
        let waits = graph.after[i].len();
        let inbox = inboxes[i].1.clone();
        let dependents: Vec<_> = (0..n)
            .filter(|&k| graph.after[k].contains(&i))
            .map(|k| inboxes[k].0.clone())
            .collect();
        handles.push(rt.spawn(async move {
            let _ = ready.send(()).await;
            let _ = go.recv().await;
            let origin = *release_at.get().expect("set before release");
            let mut outputs = Vec::with_capacity(waits);
            for _ in 0..waits {
                match inbox.recv().await {
                    Ok((id, Some(answer))) => outputs.push((id, answer)),
                    _ => break,
                }
            }
            let id = job2.agent.id.clone();
            if outputs.len() < waits {
                for d in &dependents {
                    let _ = d.send((id.clone(), None)).await;
                }
                return None;
            }
            let (rec, end, answer) = run_agent(&*rt2, &*client2, &job2, origin, outputs).await;
            let answer = rec.error().is_none().then_some(answer);
            for d in &dependents {
                let _ = d.send((id.clone(), answer.clone())).await;
            }
            Some((rec, end, String::new()))
        }));
    }
    drop(inboxes);
    drop(ready_tx);
    for _ in 0..n {
        let _ = ready_rx.recv().await;
    }
    let t0 = rt.now();
    release_at.set(t0).expect("set once");
    drop(go_tx);
    drop(go_rx);
    let mut records = Vec::with_capacity(n);
    let mut last_end = t0;
    for (h, job) in handles.into_iter().zip(agents) {
        let joined = match h.await {
            Ok(None) => continue,
            Ok(Some(run)) => Ok(run),
            Err(e) => Err(e),
        };
        let (rec, end, _) = join_or_panic_record(joined, job);
        last_end = last_end.max(end);
        records.push(rec);
    }
    PhaseRecord {
        phase: Phase::Concurrent,
        wall_ms: ms_between(t0, last_end),
        agents: records,
    }
}

/// A task that panicked becomes a failed call record, so the run is recorded as failed.
fn join_or_panic_record(joined: Result<AgentRun, JoinError>, job: &AgentJob) -> AgentRun {
    match joined {
        Ok(r) => r,
        Err(e) => {
            let a = &job.agent;
            let first = a.calls.first().map(|c| c.name.as_str()).unwrap_or_default();
            let call = failed_call(a, first, format!("agent task failed: {e}"));
            let now = Instant::now();
            let rec = AgentPhaseRecord {
                agent_id: a.id.clone(),
                start_ms: 0.0,
                duration_ms: 0.0,
                calls: vec![call],
            };
            (rec, now, String::new())
        }
    }
}

/// A call that never reached the client (its task panicked, its client could not be
/// built), as a failed record, so the run is recorded as failed.
fn failed_call(a: &Agent, call: &str, message: String) -> CallRecord {
    let error = CallError {
        kind: CallErrorKind::Request,
        message,
        url: a.url(),
        model: a.model.clone(),
        status: None,
        bytes_received: 0,
        elapsed_ms: 0.0,
    };
    CallRecord {
        agent_id: a.id.clone(),
        call: call.to_owned(),
        url: a.url(),
        model: a.model.clone(),
        error: Some(error),
        ..CallRecord::default()
    }
}

#[cfg(test)]
mod tag_tests {
    use super::*;
    use crate::api::ApiKind;
    use crate::workload::{builtin_agents, Endpoint, ModelOptions, Scenario};

    /// Two agents of one template (ids `collector-0`, `collector-2`, one server) used to send
    /// byte-identical prompts in a phase, so the second was served from the first's cache.
    #[test]
    fn every_agent_and_phase_sends_its_own_prompt_of_one_length_per_phase() {
        let ep = Endpoint {
            name: "a".into(),
            base_url: "http://127.0.0.1:1".into(),
            api: ApiKind::OpenaiChat,
            api_key_env: None,
            ca_file: None,
            tls_insecure: false,
        };
        let t = builtin_agents(std::slice::from_ref(&ep));
        let agents: Vec<Agent> = crate::workload::replicate(&t, 3, &[ep], None)
            .iter()
            .enumerate()
            .map(|(i, a)| a.instantiate("m", Scenario::ChimeraHomo, i, &ModelOptions::default()))
            .collect();
        let mut plan = RunPlan::alternating(2, agents, 8, CallSettings::default());
        plan.run_tag = "run 3 be m chimera-homo".into();
        plan.prompt_nonce = "0123456789abcdef".into();
        let body = |phase, i: usize| {
            let a = &plan.agents[i];
            a.tagged(&agent_tag(&plan, phase, a)).request_body(0, "")
        };
        let mut seen = std::collections::HashSet::new();
        for phase in [Phase::Sequential, Phase::Concurrent] {
            for i in 0..3 {
                assert!(
                    seen.insert(body(phase, i)),
                    "{phase:?} agent {i} repeats a prompt"
                );
                assert_eq!(
                    body(Phase::Sequential, i).len(),
                    body(Phase::Concurrent, i).len()
                );
            }
        }
        assert_eq!(
            agent_tag(&plan, Phase::Concurrent, &plan.agents[2]),
            "0123456789abcdef concurrent collector-2 run 3 be m chimera-homo"
        );
        let other_invocation = RunPlan {
            prompt_nonce: "fedcba9876543210".into(),
            ..plan.clone()
        };
        let again = &other_invocation.agents[0];
        assert_ne!(
            again
                .tagged(&agent_tag(&other_invocation, Phase::Sequential, again))
                .request_body(0, "")[..60],
            body(Phase::Sequential, 0)[..60]
        );
        plan.run_tag.clear();
        plan.prompt_nonce.clear();
        assert_eq!(
            agent_tag(&plan, Phase::Warmup, &plan.agents[1]),
            "warmup insight-1 run 2"
        );
    }
}
