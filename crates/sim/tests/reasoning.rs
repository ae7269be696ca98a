//! The reasoning mode: a reasoning model thinks N tokens before it answers, in each API's
//! real shape, timed like every other token, counted in the server's figures.

mod common;

use common::{post, start};
use serde_json::{json, Value};

use chimeraforge_sim::{SimConfig, REASONING_PROFILE_TOKENS};

/// `profile` with every model thinking `n` tokens first.
fn thinking(profile: &str, n: u32) -> chimeraforge_sim::SimHandle {
    let mut config = SimConfig::profile(profile).unwrap();
    for m in &mut config.models {
        m.reasoning_tokens = n;
    }
    start(config)
}

fn lines(raw: &common::Raw) -> Vec<Value> {
    raw.ndjson().into_iter().map(|(_, v)| v).collect()
}

fn sse(raw: &common::Raw) -> Vec<Value> {
    raw.sse()
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d != "[DONE]")
        .map(|d| serde_json::from_str(&d).unwrap())
        .collect()
}

#[test]
fn reasoning_profile_thinks_before_answering() {
    let sim = start(SimConfig::profile("reasoning").unwrap());
    let raw = post(
        sim.addr(),
        "/api/chat",
        &json!({"model": "gemma3:latest", "messages": [{"role": "user", "content": "hi"}],
                "think": true, "options": {"num_predict": 40}}),
    );
    let lines = lines(&raw);
    let thoughts = lines
        .iter()
        .filter(|l| l["message"].get("thinking").is_some())
        .count();
    assert_eq!(thoughts as u32, REASONING_PROFILE_TOKENS);
    assert_eq!(lines.last().unwrap()["eval_count"], 40);
}

#[test]
fn ollama_generate_thinks_in_thinking_then_answers_in_response() {
    let sim = thinking("null", 3);
    let raw = post(
        sim.addr(),
        "/api/generate",
        &json!({"model": "gemma3:latest", "prompt": "why", "think": true,
                "options": {"num_predict": 5, "seed": 1}}),
    );
    assert_eq!(raw.status, 200);
    let lines = lines(&raw);
    assert_eq!(lines.len(), 6, "{lines:?}");
    for l in &lines[..3] {
        assert!(!l["thinking"].as_str().unwrap().is_empty(), "{l}");
        assert_eq!(l["response"], "");
    }
    for l in &lines[3..5] {
        assert!(l.get("thinking").is_none(), "{l}");
        assert!(!l["response"].as_str().unwrap().is_empty());
    }
    // eval_count counts the thoughts too, as Ollama's does.
    assert_eq!(lines[5]["done"], true);
    assert_eq!(lines[5]["eval_count"], 5);
    assert!(lines[5].get("thinking").is_none());
}

#[test]
fn ollama_chat_thinks_in_message_thinking() {
    let sim = thinking("null", 2);
    let raw = post(
        sim.addr(),
        "/api/chat",
        &json!({"model": "qwen2.5:7b", "messages": [{"role": "user", "content": "hello"}],
                "think": "high", "options": {"num_predict": 4}}),
    );
    let lines = lines(&raw);
    assert_eq!(lines.len(), 5, "{lines:?}");
    for l in &lines[..2] {
        assert!(
            !l["message"]["thinking"].as_str().unwrap().is_empty(),
            "{l}"
        );
        assert_eq!(l["message"]["content"], "");
        assert!(l.get("thinking").is_none());
    }
    for l in &lines[2..4] {
        assert!(l["message"].get("thinking").is_none(), "{l}");
        assert!(!l["message"]["content"].as_str().unwrap().is_empty());
    }
    assert_eq!(lines[4]["eval_count"], 4);
}

#[test]
fn think_false_turns_thinking_off_on_ollama() {
    let sim = thinking("null", 3);
    let raw = post(
        sim.addr(),
        "/api/chat",
        &json!({"model": "qwen2.5:7b", "messages": [{"role": "user", "content": "hello"}],
                "think": false, "options": {"num_predict": 4}}),
    );
    let lines = lines(&raw);
    assert!(lines.iter().all(|l| l["message"].get("thinking").is_none()));
    assert_eq!(lines.len(), 5);
}

#[test]
fn openai_chat_thinks_in_reasoning_content_and_counts_it_in_usage() {
    let sim = thinking("null", 3);
    let raw = post(
        sim.addr(),
        "/v1/chat/completions",
        &json!({"model": "gemma3:latest", "messages": [{"role": "user", "content": "hi"}],
                "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 5}),
    );
    let chunks = sse(&raw);
    // role, 3 thoughts, 2 answer tokens, finish, usage
    assert_eq!(chunks.len(), 8, "{chunks:?}");
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    for c in &chunks[1..4] {
        let delta = &c["choices"][0]["delta"];
        assert!(
            !delta["reasoning_content"].as_str().unwrap().is_empty(),
            "{c}"
        );
        assert!(delta.get("content").is_none(), "{c}");
    }
    for c in &chunks[4..6] {
        let delta = &c["choices"][0]["delta"];
        assert!(delta.get("reasoning_content").is_none(), "{c}");
        assert!(!delta["content"].as_str().unwrap().is_empty());
    }
    let usage = &chunks[7]["usage"];
    assert_eq!(usage["completion_tokens"], 5);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 3);
    assert_eq!(chunks[7]["timings"]["predicted_n"], 5);
}

#[test]
fn openai_completions_have_no_reasoning_field() {
    let sim = thinking("null", 3);
    let raw = post(
        sim.addr(),
        "/v1/completions",
        &json!({"model": "gemma3:latest", "prompt": "hi", "stream": true,
                "stream_options": {"include_usage": true}, "max_tokens": 5}),
    );
    let chunks = sse(&raw);
    assert_eq!(chunks.len(), 7, "{chunks:?}");
    for c in &chunks[..5] {
        assert!(!c["choices"][0]["text"].as_str().unwrap().is_empty(), "{c}");
    }
    assert_eq!(chunks[6]["usage"]["completion_tokens"], 5);
    assert!(chunks[6]["usage"]
        .get("completion_tokens_details")
        .is_none());
}

#[test]
fn without_a_cap_the_answer_follows_the_thoughts() {
    let sim = thinking("fixed", 7);
    // `fixed` answers 50 tokens on its own; a reasoning model thinks 7 more first.
    let raw = post(
        sim.addr(),
        "/api/generate",
        &json!({"model": "gemma3:latest", "prompt": "why", "options": {"seed": 1}}),
    );
    let lines = lines(&raw);
    let last = lines.last().unwrap();
    assert_eq!(last["eval_count"], 57);
    assert_eq!(last["done_reason"], "stop");
    let answers = lines
        .iter()
        .filter(|l| !l["response"].as_str().unwrap_or("").is_empty())
        .count();
    assert_eq!(answers, 50);
    // Thoughts are decoded on the device schedule like every token: 50 ms to the first,
    // then 10 ms gaps; the reported durations are that schedule exactly.
    assert_eq!(last["eval_duration"], 56 * 10_000_000u64);
    assert_eq!(last["total_duration"], 50_000_000u64 + 56 * 10_000_000u64);
}

#[test]
fn non_streamed_replies_carry_the_thoughts_apart() {
    let sim = thinking("null", 2);
    let raw = post(
        sim.addr(),
        "/api/chat",
        &json!({"model": "gemma3:latest", "messages": [{"role": "user", "content": "hi"}],
                "stream": false, "options": {"num_predict": 4}}),
    );
    let body: Value = serde_json::from_slice(&raw.body()).unwrap();
    assert!(!body["message"]["thinking"].as_str().unwrap().is_empty());
    assert!(!body["message"]["content"].as_str().unwrap().is_empty());
    let raw = post(
        sim.addr(),
        "/v1/chat/completions",
        &json!({"model": "gemma3:latest", "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 4}),
    );
    let body: Value = serde_json::from_slice(&raw.body()).unwrap();
    let message = &body["choices"][0]["message"];
    assert!(!message["reasoning_content"].as_str().unwrap().is_empty());
    assert_eq!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"],
        2
    );
}
