//! Faults: every simulator fault mode, through the real HTTP path of every backend, ends in
//! the right typed failure (kind, url, model, bytes, elapsed within the timeouts), and a
//! slow but healthy stream (`slow_drip`) succeeds. One generic body per fault, instantiated
//! per backend; each body runs on Ollama's NDJSON API and on the OpenAI SSE API.

use chimeraforge::child::{run_job, ChildJob};
use chimeraforge_core::api::ApiKind;
use chimeraforge_core::call::{
    execute_call, CallErrorKind, CallOutcome, CallSettings, CallTarget, Timeouts,
};
use chimeraforge_core::protocol::RunPlan;
use chimeraforge_core::record::{Phase, RunStatus};
use chimeraforge_core::workload::{builtin_agents, request_body, Endpoint, ModelOptions, Scenario};
use chimeraforge_core::{AsyncRuntime, Backend, ClientOptions};
use chimeraforge_sim::{SimConfig, SimHandle, SimServer};
use std::time::Duration;

const MODEL: &str = "gemma3:latest";
const FIRST_BYTE_MS: u64 = 300;
const IDLE_MS: u64 = 300;
const TOTAL_MS: u64 = 3_000;
/// Longer than every timeout above, so a stall is always caught by one of them.
const STALL_MS: u64 = 4_000;
const MAX_LINE: usize = 16 * 1024;
const OVERSIZED: usize = 4 << 20;
const TOKENS: u32 = 8;
/// Scheduling slack for elapsed-time checks on a loaded 2-core machine.
const SLACK_MS: f64 = 1_500.0;
const APIS: [ApiKind; 2] = [ApiKind::Ollama, ApiKind::OpenaiChat];

fn start() -> SimHandle {
    // `fixed`: 50 ms to the first token, then 10 ms per token; ideal device.
    let mut cfg = SimConfig::profile("fixed").expect("fixed profile exists");
    cfg.faults.stall_ms = STALL_MS;
    cfg.faults.after_tokens = 3;
    cfg.faults.oversized_bytes = OVERSIZED;
    cfg.faults.drip_gap_ms = 1;
    SimServer::start(cfg, "127.0.0.1:0".parse().unwrap()).expect("simulator starts")
}

fn settings() -> CallSettings {
    settings_with_total(TOTAL_MS)
}

fn settings_with_total(total_ms: u64) -> CallSettings {
    CallSettings {
        timeouts: Timeouts {
            first_byte: Duration::from_millis(FIRST_BYTE_MS),
            idle: Duration::from_millis(IDLE_MS),
            total: Duration::from_millis(total_ms),
        },
        max_line_bytes: MAX_LINE,
        cold_load_threshold_ms: 500.0,
        ..CallSettings::default()
    }
}

fn url(sim: &SimHandle, api: ApiKind) -> String {
    format!("{}{}", sim.base_url(), api.path())
}

/// One streaming call on backend `B` with the simulator fault `fault` (a per-request spec
/// in the body's `sim_fault`), or none.
fn call<B: Backend>(sim: &SimHandle, api: ApiKind, fault: Option<&str>) -> CallOutcome {
    call_with::<B>(sim, api, fault, TOKENS, &settings())
}

fn call_with<B: Backend>(
    sim: &SimHandle,
    api: ApiKind,
    fault: Option<&str>,
    tokens: u32,
    s: &CallSettings,
) -> CallOutcome {
    let options = ModelOptions {
        num_predict: Some(tokens),
        seed: Some(7),
        ..Default::default()
    };
    let body = request_body(api, MODEL, "", "say something", &options);
    let mut json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    if let Some(f) = fault {
        json["sim_fault"] = serde_json::json!(f);
    }
    let (rt, client) = B::build(&ClientOptions::default()).expect("backend builds");
    let target = CallTarget {
        agent_id: "a",
        call: "c",
        url: url(sim, api),
        model: MODEL,
        api,
        body: serde_json::to_vec(&json).unwrap(),
        api_key: None,
        num_predict: Some(tokens),
        live_tokens: None,
    };
    let start = rt.now();
    rt.block_on(execute_call(&*rt, &*client, target, s, start))
}

/// The call failed with `kind`, labelled with its url and model, within the total timeout.
fn expect_failure(
    o: &CallOutcome,
    sim: &SimHandle,
    api: ApiKind,
    kind: CallErrorKind,
    backend: &str,
) -> chimeraforge_core::call::CallError {
    let e = o
        .record
        .error
        .clone()
        .unwrap_or_else(|| panic!("{backend} {api:?}: expected {kind:?}, the call succeeded"));
    assert_eq!(e.kind, kind, "{backend} {api:?}: {e}");
    assert_eq!(e.url, url(sim, api), "{backend} {api:?}");
    assert_eq!(e.model, MODEL, "{backend} {api:?}");
    assert_eq!(
        e.bytes_received, o.record.bytes_received,
        "{backend} {api:?}"
    );
    assert!(
        e.elapsed_ms <= TOTAL_MS as f64 + SLACK_MS,
        "{backend} {api:?}: {kind:?} after {} ms, total timeout is {TOTAL_MS} ms",
        e.elapsed_ms
    );
    assert!(!e.message.is_empty());
    e
}

pub fn http_status<B: Backend>(mode: &str, status: u16) {
    let sim = start();
    for api in APIS {
        let o = call::<B>(&sim, api, Some(mode));
        let e = expect_failure(&o, &sim, api, CallErrorKind::HttpStatus, B::NAME);
        assert_eq!(e.status, Some(status), "{} {api:?}: {e}", B::NAME);
        assert!(
            e.bytes_received > 0,
            "{} {api:?}: error body counted",
            B::NAME
        );
        assert!(e.message.contains(&status.to_string()), "{e}");
        assert!(o.record.ttft_ms.is_none() && o.text.is_empty());
    }
}

/// Midstream faults: some text arrived first (after_tokens = 3), then the typed failure.
pub fn midstream<B: Backend>(mode: &str, kind: CallErrorKind) {
    let sim = start();
    for api in APIS {
        let o = call::<B>(&sim, api, Some(mode));
        let e = expect_failure(&o, &sim, api, kind, B::NAME);
        assert_eq!(e.status, Some(200), "{} {api:?}: {e}", B::NAME);
        assert!(e.bytes_received > 0, "{} {api:?}: {e}", B::NAME);
        assert!(
            o.record.text_events >= 2 && o.record.ttft_ms.is_some(),
            "{} {api:?}: tokens before the fault were measured: {:?}",
            B::NAME,
            o.record
        );
    }
}

pub fn stall_before_first_byte<B: Backend>() {
    let sim = start();
    for api in APIS {
        let o = call::<B>(&sim, api, Some("stall_before_first_byte"));
        let e = expect_failure(&o, &sim, api, CallErrorKind::FirstByteTimeout, B::NAME);
        assert_eq!(e.bytes_received, 0, "{} {api:?}", B::NAME);
        assert!(
            e.elapsed_ms >= FIRST_BYTE_MS as f64 - 1.0
                && e.elapsed_ms <= FIRST_BYTE_MS as f64 + SLACK_MS,
            "{} {api:?}: first-byte timeout after {} ms",
            B::NAME,
            e.elapsed_ms
        );
    }
}

pub fn stall_midstream<B: Backend>() {
    let sim = start();
    for api in APIS {
        let o = call::<B>(&sim, api, Some("stall_midstream"));
        let e = expect_failure(&o, &sim, api, CallErrorKind::IdleTimeout, B::NAME);
        assert!(e.bytes_received > 0);
        let last_text = o.record.text_offsets_ms.last().copied().unwrap_or(0.0);
        let silent = e.elapsed_ms - last_text;
        assert!(
            silent >= IDLE_MS as f64 - 1.0 && silent <= IDLE_MS as f64 + SLACK_MS,
            "{} {api:?}: idle timeout {silent} ms after the last text",
            B::NAME
        );
    }
}

/// Every token, then silence: the idle timeout ends it when the silence is long, and a
/// clean end without the final line is `closed_before_done` when it is short.
pub fn never_done<B: Backend>() {
    let sim = start();
    for api in APIS {
        let o = call::<B>(&sim, api, Some("never_done"));
        let e = expect_failure(&o, &sim, api, CallErrorKind::IdleTimeout, B::NAME);
        assert_eq!(o.record.text_events, u64::from(TOKENS), "{e}");
        let o = call::<B>(&sim, api, Some("never_done; stall_ms=50"));
        expect_failure(&o, &sim, api, CallErrorKind::ClosedBeforeDone, B::NAME);
        assert_eq!(o.record.text_events, u64::from(TOKENS));
    }
}

/// A slow stream is not a broken one: one byte per chunk, 1 ms apart (a 3-token stream
/// takes 1-3 s), succeeds with the same text as an undisturbed call: the idle timeout
/// (300 ms) is about silence, not speed. The total timeout is raised for this one.
pub fn slow_drip<B: Backend>() {
    let sim = start();
    let s = settings_with_total(15_000);
    for api in APIS {
        let clean = call_with::<B>(&sim, api, None, 3, &s);
        assert!(clean.record.error.is_none(), "{:?}", clean.record.error);
        let o = call_with::<B>(&sim, api, Some("slow_drip"), 3, &s);
        assert!(
            o.record.error.is_none(),
            "{} {api:?}: slow_drip failed: {}",
            B::NAME,
            o.record.error.as_ref().unwrap()
        );
        assert_eq!(o.text, clean.text, "{} {api:?}", B::NAME);
        assert_eq!(o.record.output_tokens, clean.record.output_tokens);
        assert_eq!(o.record.bytes_received, clean.record.bytes_received);
        assert!(o.record.text_events >= 3);
    }
}

/// A line longer than max_line_bytes fails as line_too_long without reading the whole
/// line: memory stays bounded by the limit (plus one transport chunk).
pub fn oversized_line<B: Backend>() {
    let sim = start();
    for api in APIS {
        let o = call::<B>(&sim, api, Some("oversized_line"));
        let e = expect_failure(&o, &sim, api, CallErrorKind::LineTooLong, B::NAME);
        assert!(
            e.bytes_received < (OVERSIZED / 4) as u64,
            "{} {api:?}: read {} bytes of a {OVERSIZED}-byte line before giving up",
            B::NAME,
            e.bytes_received
        );
    }
}

pub fn wrong_content_type<B: Backend>() {
    let sim = start();
    for api in APIS {
        let o = call::<B>(&sim, api, Some("wrong_content_type"));
        let e = expect_failure(&o, &sim, api, CallErrorKind::WrongContentType, B::NAME);
        assert_eq!(e.status, Some(200));
        assert!(e.message.contains("text/html"), "{e}");
    }
}

/// A whole run against a server whose 4th generation request fails (warm-up and the
/// first measured calls succeed): the run is recorded as failed with its typed cause and
/// phase, the phase it failed in is kept with the failed call in it; nothing panics.
pub fn failed_run_is_recorded<B: Backend>() {
    let mut cfg = SimConfig::profile("fixed").unwrap();
    cfg.faults.mode = Some(chimeraforge_sim::FaultMode::Http500);
    cfg.faults.every_nth_request = Some(4);
    let sim = SimServer::start(cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let ep = Endpoint {
        name: "sim".into(),
        base_url: sim.base_url(),
        api: ApiKind::Ollama,
        api_key_env: None,
        ca_file: None,
        tls_insecure: false,
    };
    let base = ModelOptions {
        num_predict: Some(4),
        seed: Some(1),
        ..Default::default()
    };
    let agents = builtin_agents(&[ep])
        .iter()
        .enumerate()
        .map(|(i, t)| t.instantiate(MODEL, Scenario::ChimeraHomo, i, &base))
        .collect();
    let job = ChildJob {
        backend: B::NAME.into(),
        model: MODEL.into(),
        scenario: Scenario::ChimeraHomo,
        client: ClientOptions::default(),
        plan: RunPlan::alternating(0, agents, 4, settings()),
    };
    let r = run_job::<B>(&job).expect("backend builds");
    let RunStatus::Failed {
        phase,
        error,
        agent_id,
        call,
    } = &r.status
    else {
        panic!("{}: the run should have failed", B::NAME);
    };
    assert_eq!(
        error.kind,
        CallErrorKind::HttpStatus,
        "{}: {error}",
        B::NAME
    );
    assert_eq!(error.status, Some(500));
    assert_ne!(*phase, Phase::Warmup, "{}: {error}", B::NAME);
    let kept = match phase {
        Phase::Sequential => r.sequential.as_ref(),
        _ => r.concurrent.as_ref(),
    }
    .expect("the failed phase is kept");
    let failed_call = kept
        .agents
        .iter()
        .flat_map(|a| &a.calls)
        .find(|c| c.error.is_some())
        .expect("the failed call is in its phase");
    assert_eq!((&failed_call.agent_id, &failed_call.call), (agent_id, call));
    assert!(r.metrics.is_none());
    let line = serde_json::to_string(&r).unwrap();
    let back: chimeraforge_core::record::RunRecord = serde_json::from_str(&line).unwrap();
    assert_eq!(back.status, r.status);
}

macro_rules! faults {
    ($modname:ident, $backend:ty) => {
        mod $modname {
            use chimeraforge_core::call::CallErrorKind as K;
            type B = $backend;
            #[test]
            fn http500() {
                super::http_status::<B>("http500", 500);
            }
            #[test]
            fn model_not_found() {
                super::http_status::<B>("model_not_found", 404);
            }
            #[test]
            fn unauthorized() {
                super::http_status::<B>("unauthorized", 401);
            }
            #[test]
            fn malformed_line() {
                super::midstream::<B>("malformed_line", K::MalformedStream);
            }
            #[test]
            fn error_midstream() {
                super::midstream::<B>("error_midstream", K::ServerError);
            }
            #[test]
            fn close_before_done() {
                super::midstream::<B>("close_before_done", K::ClosedBeforeDone);
            }
            #[test]
            fn invalid_utf8() {
                super::midstream::<B>("invalid_utf8", K::InvalidUtf8);
            }
            #[test]
            fn stall_before_first_byte() {
                super::stall_before_first_byte::<B>();
            }
            #[test]
            fn stall_midstream() {
                super::stall_midstream::<B>();
            }
            #[test]
            fn never_done() {
                super::never_done::<B>();
            }
            #[test]
            fn slow_drip_succeeds() {
                super::slow_drip::<B>();
            }
            #[test]
            fn oversized_line() {
                super::oversized_line::<B>();
            }
            #[test]
            fn wrong_content_type() {
                super::wrong_content_type::<B>();
            }
            #[test]
            fn failed_run_is_recorded() {
                super::failed_run_is_recorded::<B>();
            }
        }
    };
}

#[cfg(feature = "tokio-default")]
faults!(tokio_default, chimeraforge_backend_tokio::TokioDefault);
#[cfg(feature = "tokio-localset")]
faults!(tokio_localset, chimeraforge_backend_tokio::TokioLocalSet);
#[cfg(feature = "smol-1kb")]
faults!(smol_1kb, chimeraforge_backend_smol::Smol1Kb);
#[cfg(feature = "async-std")]
faults!(async_std, chimeraforge_backend_async_std::AsyncStd);
