//! OpenAI-compatible API shapes and the API key, through real HTTP on loopback.

mod common;

use std::time::Duration;

use common::{get, post, send, start};
use serde_json::{json, Value};

use chimeraforge_sim::SimConfig;

fn null() -> chimeraforge_sim::SimHandle {
    start(SimConfig::profile("null").unwrap())
}

fn events(raw: &common::Raw) -> Vec<String> {
    raw.sse().into_iter().map(|(_, d)| d).collect()
}

#[test]
fn chat_completion_stream_shape() {
    let sim = null();
    let raw = post(
        sim.addr(),
        "/v1/chat/completions",
        &json!({"model": "gemma3:latest", "messages": [{"role": "user", "content": "count to ten please"}],
                "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 6,
                "temperature": 0.7, "top_p": 1.0, "seed": 3}),
    );
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-type"), Some("text/event-stream"));
    assert!(raw.complete);
    let events = events(&raw);
    // role, 6 tokens, finish, usage, [DONE]
    assert_eq!(events.len(), 10, "{events:?}");
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..9]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], id);
        assert_eq!(c["model"], "gemma3:latest");
        assert!(c["created"].is_u64());
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let mut text = String::new();
    for c in &chunks[1..7] {
        let choice = &c["choices"][0];
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["finish_reason"], Value::Null);
        let piece = choice["delta"]["content"].as_str().unwrap();
        assert!(!piece.is_empty());
        text.push_str(piece);
    }
    assert_eq!(chunks[7]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[7]["choices"][0]["delta"], json!({}));
    let usage = &chunks[8];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10})
    );
    let timings = &usage["timings"];
    assert_eq!(timings["prompt_n"], 4);
    assert_eq!(timings["predicted_n"], 6);
    for field in ["prompt_ms", "predicted_ms", "predicted_per_second"] {
        assert!(timings[field].is_f64(), "{field}");
    }
    // Same request, same text; the non-streamed reply says the same.
    let whole = post(
        sim.addr(),
        "/v1/chat/completions",
        &json!({"model": "gemma3:latest", "messages": [{"role": "user", "content": "count to ten please"}],
                "max_tokens": 6, "seed": 3}),
    );
    let whole: Value = serde_json::from_slice(&whole.body()).unwrap();
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(
        whole["choices"][0]["message"]["content"].as_str().unwrap(),
        text
    );
    assert_eq!(whole["choices"][0]["finish_reason"], "length");
    assert_eq!(whole["usage"]["completion_tokens"], 6);
}

#[test]
fn without_include_usage_there_is_no_usage_chunk() {
    let sim = null();
    let raw = post(
        sim.addr(),
        "/v1/chat/completions",
        &json!({"model": "gemma3:latest", "messages": [{"role": "user", "content": "hi"}], "stream": true, "max_tokens": 2}),
    );
    let events = events(&raw);
    assert_eq!(events.len(), 5, "{events:?}");
    assert!(events.iter().all(|e| !e.contains("usage")));
}

#[test]
fn text_completion_stream_shape() {
    let sim = null();
    let raw = post(
        sim.addr(),
        "/v1/completions",
        &json!({"model": "qwen2.5:7b", "prompt": "once upon a time", "stream": true,
                "stream_options": {"include_usage": true}, "max_tokens": 4}),
    );
    let events = events(&raw);
    assert_eq!(events.len(), 7, "{events:?}");
    let chunks: Vec<Value> = events[..6]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    for c in &chunks[..4] {
        assert_eq!(c["object"], "text_completion");
        assert!(!c["choices"][0]["text"].as_str().unwrap().is_empty());
        assert_eq!(c["choices"][0]["finish_reason"], Value::Null);
    }
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[5]["usage"]["completion_tokens"], 4);
    assert_eq!(chunks[5]["usage"]["prompt_tokens"], 4);
}

#[test]
fn unbounded_completion_stops_on_its_own() {
    let sim = null();
    let raw = post(
        sim.addr(),
        "/v1/completions",
        &json!({"model": "qwen2.5:7b", "prompt": "x", "seed": 9}),
    );
    let reply: Value = serde_json::from_slice(&raw.body()).unwrap();
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");
    let n = reply["usage"]["completion_tokens"].as_u64().unwrap();
    assert!((32..=64).contains(&n));
}

#[test]
fn models_and_health() {
    let sim = null();
    let models: Value = serde_json::from_slice(&get(sim.addr(), "/v1/models").body()).unwrap();
    assert_eq!(models["object"], "list");
    let data = models["data"].as_array().unwrap();
    assert_eq!(data.len(), 4);
    assert_eq!(data[0]["id"], "gemma3:latest");
    assert_eq!(data[0]["object"], "model");
    assert!(data[0]["owned_by"].is_string());
    assert_eq!(get(sim.addr(), "/health").text(), r#"{"status":"ok"}"#);
}

#[test]
fn unknown_model_is_404_in_openai_shape() {
    let sim = null();
    let raw = post(
        sim.addr(),
        "/v1/chat/completions",
        &json!({"model": "gpt-9", "messages": []}),
    );
    assert_eq!(raw.status, 404);
    let reply: Value = serde_json::from_slice(&raw.body()).unwrap();
    assert_eq!(reply["error"]["code"], "model_not_found");
    assert!(reply["error"]["message"]
        .as_str()
        .unwrap()
        .contains("gpt-9"));
}

#[test]
fn api_key_is_checked_when_set() {
    let mut config = SimConfig::profile("null").unwrap();
    config.api_key = Some("sekret".to_string());
    let sim = start(config);
    let body = json!({"model": "gemma3:latest", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        .to_string();
    let call = |headers: &[(&str, &str)]| {
        send(
            sim.addr(),
            "POST",
            "/v1/chat/completions",
            headers,
            body.as_bytes(),
            Duration::from_secs(5),
        )
    };
    for headers in [
        &[][..],
        &[("authorization", "Bearer wrong")][..],
        &[("authorization", "sekret")][..],
    ] {
        let raw = call(headers);
        assert_eq!(raw.status, 401, "{headers:?}");
        let reply: Value = serde_json::from_slice(&raw.body()).unwrap();
        assert_eq!(reply["error"]["code"], "invalid_api_key");
        assert_eq!(reply["error"]["type"], "invalid_request_error");
    }
    assert_eq!(call(&[("authorization", "Bearer sekret")]).status, 200);
    // Ollama paths answer in Ollama's shape; health stays open.
    let raw = get(sim.addr(), "/api/tags");
    assert_eq!(raw.status, 401);
    assert_eq!(raw.text(), r#"{"error":"unauthorized"}"#);
    assert_eq!(get(sim.addr(), "/health").status, 200);

    // Without a key configured, any or no header is accepted.
    let open = start(SimConfig::profile("null").unwrap());
    let raw = send(
        open.addr(),
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer x")],
        body.as_bytes(),
        Duration::from_secs(5),
    );
    assert_eq!(raw.status, 200);
}

/// With `prompt_cache`, a prompt's prefix shared with a recent prompt is reported cached as
/// llama.cpp reports it (all but the last word at most), on both APIs; presets keep none.
#[test]
fn prompt_cache_reports_shared_prefixes_as_llama_cpp_and_ollama_do() {
    let sim = start(SimConfig {
        prompt_cache: true,
        ..SimConfig::profile("null").unwrap()
    });
    let chat = |content: &str| -> Value {
        let raw = post(
            sim.addr(),
            "/v1/chat/completions",
            &json!({"model": "gemma3:latest", "messages": [{"role": "user", "content": content}],
                    "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 3}),
        );
        let events = events(&raw);
        serde_json::from_str(&events[events.len() - 2]).unwrap()
    };
    let cold = chat("count to ten please");
    assert_eq!(cold["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(cold["timings"]["cache_n"], 0);
    assert_eq!(cold["timings"]["prompt_n"], 4);
    let again = chat("count to ten please");
    assert_eq!(again["usage"]["prompt_tokens"], 4);
    assert_eq!(again["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
    assert_eq!(again["timings"]["cache_n"], 3);
    assert_eq!(again["timings"]["prompt_n"], 1);
    let prefix = chat("count to nine now");
    assert_eq!(prefix["timings"]["cache_n"], 2);
    let ollama = post(
        sim.addr(),
        "/api/chat",
        &json!({"model": "gemma3:latest", "messages": [{"role": "user", "content": "count to ten please"}],
                "options": {"num_predict": 2}}),
    );
    let last: Value = serde_json::from_str(
        std::str::from_utf8(&ollama.body())
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["prompt_eval_count"], 4);
    assert_eq!(last["prompt_eval_cached_count"], 3);

    let plain = null();
    let raw = post(
        plain.addr(),
        "/api/chat",
        &json!({"model": "gemma3:latest", "messages": [{"role": "user", "content": "count to ten please"}],
                "options": {"num_predict": 2}}),
    );
    assert!(!String::from_utf8_lossy(&raw.body()).contains("cached"));
}
