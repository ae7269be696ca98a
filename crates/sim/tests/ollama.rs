//! Ollama API shapes, through real HTTP on loopback.

mod common;

use common::{get, ollama_text, post, start};
use serde_json::json;

use chimeraforge_sim::SimConfig;

fn null() -> chimeraforge_sim::SimHandle {
    start(SimConfig::profile("null").unwrap())
}

#[test]
fn generate_streams_ndjson_with_final_stats() {
    let sim = null();
    let raw = post(
        sim.addr(),
        "/api/generate",
        &json!({"model": "gemma3:latest", "prompt": "why is the sky blue", "system": "be brief",
                "stream": true, "options": {"num_predict": 12, "seed": 42, "num_ctx": 512, "num_gpu": 80,
                "temperature": 1.0, "top_p": 0.9, "top_k": 40, "repeat_penalty": 1.1}}),
    );
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(raw.header("transfer-encoding"), Some("chunked"));
    assert!(raw.complete);
    // One token per HTTP chunk, then the final line in its own chunk.
    assert_eq!(raw.chunks.len(), 13);
    assert!(raw.chunks.iter().all(|(_, c)| c.ends_with(b"\n")));
    let lines = raw.ndjson();
    assert_eq!(lines.len(), 13);
    for (_, line) in &lines[..12] {
        let keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 4, "{line}");
        assert_eq!(line["model"], "gemma3:latest");
        assert_eq!(line["done"], false);
        assert!(line["created_at"].as_str().unwrap().ends_with('Z'));
        assert!(!line["response"].as_str().unwrap().is_empty());
    }
    let last = &lines[12].1;
    assert_eq!(last["done"], true);
    assert_eq!(last["response"], "");
    assert_eq!(last["done_reason"], "length");
    assert_eq!(last["eval_count"], 12);
    // "be brief" + "why is the sky blue": 7 words.
    assert_eq!(last["prompt_eval_count"], 7);
    for field in [
        "total_duration",
        "load_duration",
        "prompt_eval_duration",
        "eval_duration",
    ] {
        assert!(last[field].is_u64(), "{field} in {last}");
    }
    // Key order as Ollama writes it.
    let line = std::str::from_utf8(&raw.chunks[0].1).unwrap();
    assert!(
        line.starts_with("{\"model\":\"gemma3:latest\",\"created_at\":\""),
        "{line}"
    );
    let line = std::str::from_utf8(&raw.chunks[12].1).unwrap();
    assert!(
        line.contains(
            "\"response\":\"\",\"done\":true,\"done_reason\":\"length\",\"total_duration\":"
        ),
        "{line}"
    );
}

#[test]
fn chat_streams_messages() {
    let sim = null();
    let raw = post(
        sim.addr(),
        "/api/chat",
        &json!({"model": "qwen2.5:7b", "messages": [{"role": "system", "content": "you are terse"},
                {"role": "user", "content": "hello there"}], "stream": true, "options": {"num_predict": 5}}),
    );
    assert_eq!(raw.status, 200);
    let lines = raw.ndjson();
    assert_eq!(lines.len(), 6);
    for (_, line) in &lines[..5] {
        assert_eq!(line["message"]["role"], "assistant");
        assert!(!line["message"]["content"].as_str().unwrap().is_empty());
        assert!(line.get("response").is_none());
    }
    let last = &lines[5].1;
    assert_eq!(last["done"], true);
    assert_eq!(last["message"]["content"], "");
    assert_eq!(last["prompt_eval_count"], 5);
    assert_eq!(last["eval_count"], 5);
}

#[test]
fn same_request_same_text_and_seed_matters() {
    let sim = null();
    let body = |seed: i64| json!({"model": "gemma3", "prompt": "tell me a story", "options": {"seed": seed}});
    let a = ollama_text(&post(sim.addr(), "/api/generate", &body(1)).ndjson());
    let b = ollama_text(&post(sim.addr(), "/api/generate", &body(1)).ndjson());
    let c = ollama_text(&post(sim.addr(), "/api/generate", &body(2)).ndjson());
    assert_eq!(a, b);
    assert_ne!(a, c);
    // No cap: the length is drawn from the null profile's 32..=64 and the reason is "stop".
    let lines = post(sim.addr(), "/api/generate", &body(1)).ndjson();
    let last = &lines.last().unwrap().1;
    assert_eq!(last["done_reason"], "stop");
    let n = last["eval_count"].as_u64().unwrap();
    assert!((32..=64).contains(&n), "{n}");
    assert_eq!(lines.len() as u64, n + 1);
    // The output contains multi-byte UTF-8 somewhere over a few prompts.
    let any_multibyte = (0..20).any(|s| {
        let text = ollama_text(&post(sim.addr(), "/api/generate", &body(s)).ndjson());
        text.len() > text.chars().count()
    });
    assert!(any_multibyte);
}

#[test]
fn non_streamed_reply_is_one_object() {
    let sim = null();
    let streamed = ollama_text(
        &post(
            sim.addr(),
            "/api/generate",
            &json!({"model": "gemma3:latest", "prompt": "hi", "options": {"num_predict": 8}}),
        )
        .ndjson(),
    );
    let raw = post(
        sim.addr(),
        "/api/generate",
        &json!({"model": "gemma3:latest", "prompt": "hi", "stream": false, "options": {"num_predict": 8}}),
    );
    assert_eq!(raw.status, 200);
    assert!(raw.header("content-length").is_some());
    let reply: serde_json::Value = serde_json::from_slice(&raw.body()).unwrap();
    assert_eq!(reply["done"], true);
    assert_eq!(reply["eval_count"], 8);
    assert_eq!(reply["response"].as_str().unwrap(), streamed);
}

#[test]
fn unknown_model_is_ollamas_404() {
    let sim = null();
    let raw = post(
        sim.addr(),
        "/api/generate",
        &json!({"model": "nope:1b", "prompt": "hi"}),
    );
    assert_eq!(raw.status, 404);
    assert_eq!(
        raw.text(),
        r#"{"error":"model \"nope:1b\" not found, try pulling it first"}"#
    );
    let raw = post(sim.addr(), "/api/show", &json!({"model": "nope:1b"}));
    assert_eq!(raw.status, 404);
}

#[test]
fn listing_endpoints() {
    let sim = null();
    let tags: serde_json::Value =
        serde_json::from_slice(&get(sim.addr(), "/api/tags").body()).unwrap();
    let models = tags["models"].as_array().unwrap();
    assert_eq!(models.len(), 4);
    let gemma = &models[0];
    assert_eq!(gemma["name"], "gemma3:latest");
    assert_eq!(gemma["model"], "gemma3:latest");
    assert_eq!(gemma["digest"].as_str().unwrap().len(), 64);
    assert!(gemma["size"].as_u64().unwrap() > 0);
    assert!(gemma["modified_at"].is_string());
    assert_eq!(gemma["details"]["family"], "gemma3");
    assert_eq!(gemma["details"]["parameter_size"], "4.3B");
    assert_eq!(gemma["details"]["quantization_level"], "Q4_K_M");

    let version: serde_json::Value =
        serde_json::from_slice(&get(sim.addr(), "/api/version").body()).unwrap();
    assert_eq!(version, json!({"version": "0.0.0-chimeraforge-sim"}));

    let show = post(
        sim.addr(),
        "/api/show",
        &json!({"model": "llama3.1:8b-instruct-q4_0"}),
    );
    let show: serde_json::Value = serde_json::from_slice(&show.body()).unwrap();
    assert_eq!(show["model_info"]["llama.block_count"], 32);
    assert_eq!(show["details"]["family"], "llama");

    let ps: serde_json::Value = serde_json::from_slice(&get(sim.addr(), "/api/ps").body()).unwrap();
    assert_eq!(ps["models"].as_array().unwrap().len(), 0);
    post(
        sim.addr(),
        "/api/generate",
        &json!({"model": "qwen2.5:7b", "prompt": "x", "options": {"num_ctx": 4096, "num_predict": 1}}),
    );
    let ps: serde_json::Value = serde_json::from_slice(&get(sim.addr(), "/api/ps").body()).unwrap();
    let loaded = ps["models"].as_array().unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0]["name"], "qwen2.5:7b");
    assert_eq!(loaded[0]["context_length"], 4096);

    assert_eq!(get(sim.addr(), "/").text(), "Ollama is running");
    assert_eq!(get(sim.addr(), "/api/nothing").status, 404);
    assert_eq!(get(sim.addr(), "/api/generate").status, 405);
    let stats = sim.stats();
    assert_eq!(stats.per_endpoint["GET /api/tags"], 1);
    assert_eq!(stats.per_endpoint["POST /api/generate"], 1);
    assert_eq!(stats.tokens, 1);
}

#[test]
fn empty_prompt_only_loads() {
    let mut config = SimConfig::profile("fixed").unwrap();
    config.models[0].load_ms = 60.0;
    let sim = start(config);
    let raw = post(
        sim.addr(),
        "/api/generate",
        &json!({"model": "gemma3:latest", "prompt": ""}),
    );
    assert_eq!(raw.status, 200);
    let reply: serde_json::Value = serde_json::from_slice(&raw.body()).unwrap();
    assert_eq!(reply["done"], true);
    assert_eq!(reply["done_reason"], "load");
    assert!(raw.end_at.as_millis() >= 60, "{:?}", raw.end_at);
    assert_eq!(sim.stats().loads, 1);
    assert_eq!(sim.stats().tokens, 0);
}

#[test]
fn bad_json_is_400() {
    let sim = null();
    let raw = common::send(
        sim.addr(),
        "POST",
        "/api/generate",
        &[],
        b"{not json",
        std::time::Duration::from_secs(5),
    );
    assert_eq!(raw.status, 400);
    let reply: serde_json::Value = serde_json::from_slice(&raw.body()).unwrap();
    assert!(reply["error"].is_string());
}
