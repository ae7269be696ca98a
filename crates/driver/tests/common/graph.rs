//! An agent graph for the driver's tests: an orchestrator, three workers fanned out from it
//! (the second with two calls, optionally a tool step between them), an aggregator fanned in.
//! Included with `#[path]` by the tests that use it.
#![allow(dead_code)] // each test binary uses part of it

use chimeraforge::child::ChildJob;
use chimeraforge_core::api::ApiKind;
use chimeraforge_core::call::CallSettings;
use chimeraforge_core::protocol::RunPlan;
use chimeraforge_core::workload::{
    Agent, CallSpec, Endpoint, Latency, ModelOptions, Scenario, ToolStep,
};
use chimeraforge_core::ClientOptions;
use chimeraforge_sim::SimHandle;

pub const MODEL: &str = "gemma3:latest";

/// The graph's agent ids and dependencies, in run order.
pub const GRAPH: [(&str, &[&str]); 5] = [
    ("orch", &[]),
    ("w1", &["orch"]),
    ("w2", &["orch"]),
    ("w3", &["orch"]),
    ("agg", &["w1", "w2", "w3"]),
];

/// The graph's agents on `servers` (round robin) speaking `api`, `tokens` per call, seed 42;
/// `tool_ms`: the latency of w2's tool step (none: w2 makes its two calls back to back).
pub fn graph_agents(
    servers: &[&SimHandle],
    api: ApiKind,
    tokens: u32,
    tool_ms: Option<f64>,
) -> Vec<Agent> {
    GRAPH
        .iter()
        .enumerate()
        .map(|(i, (id, after))| {
            let s = servers[i % servers.len()];
            let mut calls = vec![CallSpec {
                name: "work".into(),
                prompt: match *after {
                    [] => "Plan three tasks.".to_owned(),
                    deps => format!(
                        "Work on: {}",
                        deps.iter()
                            .map(|d| format!("{{output:{d}}}"))
                            .collect::<Vec<_>>()
                            .join(" / ")
                    ),
                },
                tool: None,
            }];
            if *id == "w2" {
                calls[0].tool = tool_ms.map(|ms| ToolStep {
                    name: "web_search".into(),
                    latency_ms: Latency::Fixed(ms),
                    offer: true,
                });
                calls.push(CallSpec {
                    name: "answer".into(),
                    prompt: "Answer from what you found: {previous}".into(),
                    tool: None,
                });
            }
            Agent {
                id: (*id).into(),
                label: (*id).into(),
                system: format!("You are {id}."),
                model: MODEL.into(),
                endpoint: Endpoint {
                    name: format!("sim{}", i % servers.len()),
                    base_url: s.base_url(),
                    api,
                    api_key_env: None,
                    ca_file: None,
                    tls_insecure: false,
                },
                options: ModelOptions {
                    num_predict: Some(tokens),
                    seed: Some(42),
                    ..ModelOptions::chimera()
                },
                calls,
                after: after.iter().map(|d| (*d).to_owned()).collect(),
                history: false,
            }
        })
        .collect()
}

/// Run `run_index` of [`graph_agents`] on `backend`.
pub fn graph_job(
    backend: &str,
    servers: &[&SimHandle],
    run_index: u32,
    api: ApiKind,
    tokens: u32,
    tool_ms: Option<f64>,
) -> ChildJob {
    ChildJob {
        backend: backend.into(),
        model: MODEL.into(),
        scenario: Scenario::ChimeraHomo,
        client: ClientOptions::default(),
        plan: RunPlan::alternating(
            run_index,
            graph_agents(servers, api, tokens, tool_ms),
            4,
            CallSettings::default(),
        ),
    }
}
