//! Conformance cases for the connection policy (`ClientOptions::connection`): one kept
//! connection per agent under keep-alive, one new connection per call under fresh, on
//! every backend and whatever the server does; a kept connection the server closed is
//! replaced once inside the call (before any response byte, never after) and counted.

use std::sync::Arc;
use std::time::Duration;

use chimeraforge_core::api::ApiKind;
use chimeraforge_core::call::{
    execute_call, CallErrorKind, CallRecord, CallSettings, CallTarget, Timeouts,
};
use chimeraforge_core::protocol::{execute_run, RunOutcome, RunPlan};
use chimeraforge_core::record::RunStatus;
use chimeraforge_core::workload::{builtin_agents, replicate, Endpoint, ModelOptions, Scenario};
use chimeraforge_core::{
    AsyncRuntime, Backend, ClientOptions, ConnectionPolicy, HttpClient, TlsTrust,
};

use crate::server::{Closes, Exchange, Reply, ScriptedServer};

pub(crate) const MODEL: &str = "gemma3:270m";

pub(crate) fn options(connection: ConnectionPolicy) -> ClientOptions {
    ClientOptions {
        connection,
        ..ClientOptions::default()
    }
}

/// An agent's client of backend `B` under `connection`, and its runtime.
fn agent_client<B: Backend>(connection: ConnectionPolicy) -> (Arc<B::Runtime>, Arc<B::Client>) {
    let (rt, client) = B::build(&options(connection)).unwrap_or_else(|e| panic!("{e}"));
    let agent = client
        .for_agent(&TlsTrust::default())
        .unwrap_or_else(|e| panic!("{}: agent client: {e}", B::NAME));
    (rt, Arc::new(agent))
}

/// A complete Ollama chat stream: two text lines and the final one.
pub(crate) fn chat_stream() -> Reply {
    let line = |text: &str| {
        format!("{{\"model\":\"{MODEL}\",\"message\":{{\"role\":\"assistant\",\"content\":\"{text}\"}},\"done\":false}}\n")
    };
    Reply::new(200).send(line("o")).send(line("k")).send(format!(
        "{{\"model\":\"{MODEL}\",\"message\":{{\"role\":\"assistant\",\"content\":\"\"}},\"done\":true,\"eval_count\":2}}\n"
    ))
}

pub(crate) fn settings() -> CallSettings {
    CallSettings {
        timeouts: Timeouts {
            first_byte: Duration::from_secs(5),
            idle: Duration::from_secs(5),
            total: Duration::from_secs(10),
        },
        ..CallSettings::default()
    }
}

/// One measured chat call on `client` to `server`.
async fn call<R: AsyncRuntime, C: HttpClient>(
    rt: &R,
    client: &C,
    server: &ScriptedServer,
) -> CallRecord {
    let target = CallTarget {
        agent_id: "conformance",
        call: "c",
        url: server.url("/api/chat"),
        model: MODEL,
        api: ApiKind::Ollama,
        body: b"{}".to_vec(),
        api_key: None,
        num_predict: None,
        live_tokens: None,
    };
    execute_call(rt, client, target, &settings(), rt.now())
        .await
        .record
}

pub(crate) fn ok(r: &CallRecord, case: &str) {
    assert!(r.error.is_none(), "{case}: the call failed: {:?}", r.error);
    assert_eq!(
        r.output_preview, "ok",
        "{case}: the text is not the reply's"
    );
}

/// `(connections_opened, reconnects)` of each record.
pub(crate) fn counts(records: &[CallRecord]) -> Vec<(u64, u64)> {
    records
        .iter()
        .map(|r| (r.connections_opened, r.reconnects))
        .collect()
}

/// A whole run (warm-up, both phases) of three agents against a server that counts its
/// connections and never closes one itself (it ignores `Connection: close`).
fn run_three_agents<B: Backend>(
    connection: ConnectionPolicy,
) -> (RunOutcome, Vec<String>, ScriptedServer) {
    let server = ScriptedServer::start(|_| chat_stream());
    let ep = Endpoint {
        name: "scripted".into(),
        base_url: server.url(""),
        api: ApiKind::Ollama,
        api_key_env: None,
        ca_file: None,
        tls_insecure: false,
    };
    let base = ModelOptions {
        num_predict: Some(2),
        seed: Some(1),
        ..Default::default()
    };
    let agents = replicate(
        &builtin_agents(std::slice::from_ref(&ep)),
        3,
        &[ep],
        Some(1),
    )
    .iter()
    .enumerate()
    .map(|(i, t)| t.instantiate(MODEL, Scenario::ChimeraHomo, i, &base))
    .collect();
    let (rt, client) = B::build(&options(connection)).unwrap_or_else(|e| panic!("{e}"));
    let plan = RunPlan::alternating(0, agents, 2, settings());
    let outcome = rt.block_on(execute_run(Arc::clone(&rt), client, &plan, &[]));
    assert!(
        matches!(outcome.status, RunStatus::Ok),
        "{}: the run failed: {:?}",
        B::NAME,
        outcome.status
    );
    let ids = plan.agents.iter().map(|a| a.id.clone()).collect();
    (outcome, ids, server)
}

/// Every call of `agent_id` in `record`, warm-up first.
fn calls_of<'a>(record: &'a RunOutcome, agent_id: &str) -> Vec<&'a CallRecord> {
    let measured = [&record.sequential, &record.concurrent]
        .into_iter()
        .flatten()
        .flat_map(|p| &p.agents)
        .filter(|a| a.agent_id == agent_id)
        .flat_map(|a| &a.calls);
    record
        .warmup
        .iter()
        .filter(|c| c.agent_id == agent_id)
        .chain(measured)
        .collect()
}

/// The agent whose tag (`[{phase} {id} run 0]`) leads the request.
fn sender<'a>(ex: &Exchange, ids: &'a [String]) -> &'a str {
    let body = String::from_utf8_lossy(&ex.request.body);
    ids.iter()
        .find(|id| body.contains(&format!(" {id} run 0]")))
        .unwrap_or_else(|| panic!("a request from no agent: {body}"))
}

/// Keep-alive: each agent opens one connection, in its warm-up call, and sends every
/// later call over it; the server (which ignores `Connection: close` and never closes)
/// sees one connection per agent.
pub fn keep_alive_is_one_connection_per_agent<B: Backend>() {
    let (record, ids, server) = run_three_agents::<B>(ConnectionPolicy::KeepAlive);
    for id in &ids {
        let calls = calls_of(&record, id);
        assert_eq!(calls.len(), 5, "{}: {id}'s calls", B::NAME);
        let opened: Vec<u64> = calls.iter().map(|c| c.connections_opened).collect();
        assert_eq!(
            opened,
            [1, 0, 0, 0, 0],
            "{}: {id} should open its connection in its warm-up call and reuse it",
            B::NAME
        );
        assert!(calls.iter().all(|c| c.reconnects == 0));
    }
    assert_eq!(
        server.connections(),
        ids.len(),
        "{}: one connection per agent",
        B::NAME
    );
    for ex in server.exchanges() {
        assert_eq!(ex.request.header("connection"), None, "{}", B::NAME);
        let on_same: Vec<&str> = server
            .exchanges()
            .iter()
            .filter(|e| e.connection == ex.connection)
            .map(|e| sender(e, &ids))
            .collect();
        assert!(
            on_same.iter().all(|s| *s == sender(&ex, &ids)),
            "{}: connection {} carried calls of several agents: {on_same:?}",
            B::NAME,
            ex.connection
        );
    }
}

/// Fresh: every call, warm-up included, opens a new connection, sends `Connection:
/// close`, and the client closes it even though this server would keep it open.
pub fn fresh_is_one_connection_per_call<B: Backend>() {
    let (record, ids, server) = run_three_agents::<B>(ConnectionPolicy::Fresh);
    let mut calls = 0;
    for id in &ids {
        for c in calls_of(&record, id) {
            assert_eq!(
                (c.connections_opened, c.reconnects),
                (1, 0),
                "{}: {id}'s call {} under fresh",
                B::NAME,
                c.call
            );
            calls += 1;
        }
    }
    assert_eq!(
        server.connections(),
        calls,
        "{}: one connection per call",
        B::NAME
    );
    for ex in server.exchanges() {
        assert_eq!(
            ex.request.header("connection"),
            Some("close"),
            "{}",
            B::NAME
        );
    }
}

/// A server that closes an idle connection between two calls (llama.cpp does after 5 s):
/// the second call opens a new one, counted as a reconnect, and succeeds.
pub fn idle_close_between_calls_reconnects<B: Backend>() {
    let server = ScriptedServer::start_closing(
        Closes {
            idle: Some(Duration::from_millis(100)),
            after_requests: None,
        },
        |_| chat_stream(),
    );
    let (rt, client) = agent_client::<B>(ConnectionPolicy::KeepAlive);
    let records = rt.block_on(async {
        let first = call(&*rt, &*client, &server).await;
        rt.sleep(Duration::from_millis(400)).await;
        let second = call(&*rt, &*client, &server).await;
        let third = call(&*rt, &*client, &server).await;
        vec![first, second, third]
    });
    let case = format!("{}: idle close", B::NAME);
    records.iter().for_each(|r| ok(r, &case));
    assert_eq!(counts(&records), [(1, 0), (1, 1), (0, 0)], "{case}");
    assert_eq!(server.connections(), 2, "{case}");
}

/// A server that closes each connection after two requests, without saying so: every
/// third call finds its kept connection closed, opens one more, and succeeds.
pub fn close_after_n_requests_reconnects<B: Backend>() {
    let server = ScriptedServer::start_closing(
        Closes {
            idle: None,
            after_requests: Some(2),
        },
        |_| chat_stream(),
    );
    let (rt, client) = agent_client::<B>(ConnectionPolicy::KeepAlive);
    let records = rt.block_on(async {
        let mut records = Vec::new();
        for _ in 0..5 {
            records.push(call(&*rt, &*client, &server).await);
        }
        records
    });
    let case = format!("{}: close after 2 requests", B::NAME);
    records.iter().for_each(|r| ok(r, &case));
    assert_eq!(
        counts(&records),
        [(1, 0), (0, 0), (1, 1), (0, 0), (1, 1)],
        "{case}"
    );
    assert_eq!(server.connections(), 3, "{case}");
    assert_eq!(
        server.exchanges().len(),
        5,
        "{case}: a request was sent twice"
    );
}

/// `Connection: close` in a response: the client does not send on that connection again.
pub fn connection_close_in_a_response_is_obeyed<B: Backend>() {
    let server = ScriptedServer::start(|_| chat_stream().header("connection", "close"));
    let (rt, client) = agent_client::<B>(ConnectionPolicy::KeepAlive);
    let records = rt.block_on(async {
        let first = call(&*rt, &*client, &server).await;
        let second = call(&*rt, &*client, &server).await;
        vec![first, second]
    });
    let case = format!("{}: Connection: close in a response", B::NAME);
    records.iter().for_each(|r| ok(r, &case));
    assert_eq!(counts(&records), [(1, 0), (1, 1)], "{case}");
    assert_eq!(server.exchanges().len(), 2, "{case}");
}

/// A burst of agents whose kept connections the server has all closed since their last
/// call (each after one request): every agent finds its connection stale mid-burst,
/// replaces it once inside the call, and every call succeeds.
pub fn stale_connections_mid_burst_are_replaced<B: Backend>() {
    const AGENTS: usize = 4;
    let server = ScriptedServer::start_closing(
        Closes {
            idle: None,
            after_requests: Some(1),
        },
        |_| chat_stream(),
    );
    let (rt, client) =
        B::build(&options(ConnectionPolicy::KeepAlive)).unwrap_or_else(|e| panic!("{e}"));
    let server = Arc::new(server);
    let clients: Vec<Arc<B::Client>> = (0..AGENTS)
        .map(|_| {
            Arc::new(
                client
                    .for_agent(&TlsTrust::default())
                    .expect("agent client"),
            )
        })
        .collect();
    let records: Vec<Vec<CallRecord>> = rt.block_on(async {
        for c in &clients {
            ok(&call(&*rt, &**c, &server).await, "warm-up");
        }
        rt.sleep(Duration::from_millis(50)).await;
        let handles: Vec<_> = clients
            .iter()
            .map(|c| {
                let (rt2, c, server) = (Arc::clone(&rt), Arc::clone(c), Arc::clone(&server));
                rt.spawn(async move {
                    let burst = call(&*rt2, &*c, &server).await;
                    let after = call(&*rt2, &*c, &server).await;
                    vec![burst, after]
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.expect("agent task"));
        }
        out
    });
    let case = format!("{}: stale connections mid-burst", B::NAME);
    for agent in &records {
        agent.iter().for_each(|r| ok(r, &case));
        assert_eq!(counts(agent), [(1, 1), (1, 1)], "{case}");
    }
    assert_eq!(server.connections(), 3 * AGENTS, "{case}");
    assert_eq!(
        server.exchanges().len(),
        3 * AGENTS,
        "{case}: a request was sent twice"
    );
}

/// A kept connection that breaks after part of the response arrived is the call's failure:
/// never sent again (the server may be generating it), the partial text kept, no
/// reconnect counted.
pub fn no_retry_after_part_of_a_response<B: Backend>() {
    let partial = ScriptedServer::start({
        let n = std::sync::atomic::AtomicUsize::new(0);
        move |_| {
            if n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                let line = format!("{{\"model\":\"{MODEL}\",\"message\":{{\"role\":\"assistant\",\"content\":\"o\"}},\"done\":false}}\n");
                Reply::new(200)
                    .send(line)
                    .pause(Duration::from_millis(20))
                    .reset()
            } else {
                chat_stream()
            }
        }
    });
    let (rt, client) = agent_client::<B>(ConnectionPolicy::KeepAlive);
    let records = rt.block_on(async {
        let first = call(&*rt, &*client, &partial).await;
        let second = call(&*rt, &*client, &partial).await;
        vec![first, second]
    });
    let case = format!("{}: broken after part of a response", B::NAME);
    ok(&records[0], &case);
    let err = records[1].error.as_ref().unwrap_or_else(|| {
        panic!("{case}: the call was retried after response bytes arrived and came back whole")
    });
    assert!(
        matches!(
            err.kind,
            CallErrorKind::ClosedBeforeDone | CallErrorKind::Body
        ),
        "{case}: {err:?}"
    );
    assert_eq!(records[1].output_preview, "o", "{case}");
    assert_eq!(counts(&records), [(1, 0), (0, 0)], "{case}");
    assert_eq!(
        partial.exchanges().len(),
        2,
        "{case}: the request was sent again after response bytes arrived"
    );
}
