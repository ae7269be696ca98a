//! Tool calls: a chat request with `tools` whose last message is the user's is answered with
//! a call to the first tool, in each API's real streaming shape (parsed here with the
//! client's own codecs); after a tool result the model answers in text.

mod common;

use chimeraforge_core::api::{ApiKind, StreamEvent, ToolCall, ToolCallAssembly};
use common::{post, start};
use serde_json::{json, Value};

use chimeraforge_sim::SimConfig;

fn null() -> chimeraforge_sim::SimHandle {
    start(SimConfig::profile("null").unwrap())
}

/// One tool, in the shape both APIs take.
fn tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "web_search",
        "description": "Search the web for a query",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                       "required": ["query"]}}}])
}

/// The body decoded by core's codec, fed HTTP chunk by HTTP chunk as a backend would.
fn decode(api: ApiKind, raw: &common::Raw) -> Vec<StreamEvent> {
    let mut decoder = api.decoder(1 << 20);
    let mut events = Vec::new();
    for (_, chunk) in &raw.chunks {
        decoder.feed(chunk, &mut events).unwrap();
    }
    decoder.finish(&mut events).unwrap();
    events
}

fn assembled(events: &[StreamEvent]) -> Vec<ToolCall> {
    let mut calls = ToolCallAssembly::default();
    for ev in events {
        if let StreamEvent::ToolCall(c) = ev {
            calls.push(c.clone());
        }
    }
    calls.into_calls()
}

fn texts(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn output_and_prompt(events: &[StreamEvent]) -> (u64, u64) {
    let mut stats = chimeraforge_core::api::ServerStats::default();
    for ev in events {
        if let StreamEvent::Stats(s) = ev {
            stats.merge(s.clone());
        }
    }
    (stats.output_tokens.unwrap(), stats.prompt_tokens.unwrap())
}

/// The call's arguments: a JSON object with a non-empty string `query`.
fn query_of(call: &ToolCall) -> String {
    let args: Value = serde_json::from_str(&call.arguments).unwrap();
    let obj = args.as_object().unwrap();
    assert_eq!(obj.len(), 1, "{args}");
    let q = obj["query"].as_str().unwrap().to_string();
    assert!(!q.trim().is_empty());
    q
}

#[test]
fn openai_streams_a_tool_call_in_fragments_one_per_token() {
    let sim = null();
    let raw = post(
        sim.addr(),
        "/v1/chat/completions",
        &json!({"model": "gemma3:latest", "stream": true, "stream_options": {"include_usage": true},
                "max_tokens": 6, "tools": tools(),
                "messages": [{"role": "system", "content": "be brief"},
                             {"role": "user", "content": "find the weather"}]}),
    );
    assert_eq!(raw.status, 200);
    let data: Vec<String> = raw.sse().into_iter().map(|(_, d)| d).collect();
    // head, 6 fragments, finish, usage, [DONE]
    assert_eq!(data.len(), 10, "{data:?}");
    let chunks: Vec<Value> = data[..9]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let head = &chunks[0]["choices"][0]["delta"];
    assert_eq!(head["role"], "assistant");
    let call = &head["tool_calls"][0];
    assert_eq!(call["index"], 0);
    assert_eq!(call["type"], "function");
    assert_eq!(
        call["function"],
        json!({"name": "web_search", "arguments": ""})
    );
    let id = call["id"].as_str().unwrap();
    assert!(
        id.strip_prefix("call_")
            .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit())),
        "{id}"
    );
    for c in &chunks[1..7] {
        let fragment = &c["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(fragment["index"], 0);
        assert!(fragment.get("id").is_none() && fragment["function"].get("name").is_none());
        assert!(!fragment["function"]["arguments"]
            .as_str()
            .unwrap()
            .is_empty());
    }
    assert_eq!(chunks[7]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunks[8]["usage"]["completion_tokens"], 6);

    let events = decode(ApiKind::OpenaiChat, &raw);
    let calls = assembled(&events);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].id.as_str(), calls[0].name.as_str()),
        (id, "web_search")
    );
    query_of(&calls[0]);
    assert_eq!(texts(&events), "", "no answer text");
    let tool_events = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::ToolCall(_)))
        .count();
    assert_eq!(tool_events, 7);
    assert_eq!(output_and_prompt(&events).0, 6);
}

#[test]
fn ollama_sends_the_tool_call_whole_when_it_is_complete() {
    let sim = null();
    let raw = post(
        sim.addr(),
        "/api/chat",
        &json!({"model": "gemma3:latest", "tools": tools(), "options": {"num_predict": 6},
                "messages": [{"role": "user", "content": "find the weather"}]}),
    );
    assert_eq!(raw.status, 200);
    let lines: Vec<Value> = raw.ndjson().into_iter().map(|(_, v)| v).collect();
    assert_eq!(lines.len(), 2, "the call, then the final line: {lines:?}");
    let message = &lines[0]["message"];
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["content"], "");
    assert_eq!(lines[0]["done"], false);
    let calls = message["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["function"]["name"], "web_search");
    assert!(calls[0]["function"]["arguments"]["query"].is_string());
    assert_eq!(lines[1]["done"], true);
    assert_eq!(lines[1]["eval_count"], 6);

    let events = decode(ApiKind::Ollama, &raw);
    let calls = assembled(&events);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].id.as_str(), calls[0].name.as_str()),
        ("call_0", "web_search")
    );
    query_of(&calls[0]);
    assert_eq!(texts(&events), "");
}

/// The same request's call on both APIs carries the same generated query.
#[test]
fn both_apis_call_with_the_same_query() {
    let sim = null();
    let messages = json!([{"role": "user", "content": "find the weather"}]);
    let openai = post(
        sim.addr(),
        "/v1/chat/completions",
        &json!({"model": "gemma3:latest", "stream": true, "max_tokens": 9, "seed": 4,
                "tools": tools(), "messages": messages}),
    );
    let ollama = post(
        sim.addr(),
        "/api/chat",
        &json!({"model": "gemma3:latest", "options": {"num_predict": 9, "seed": 4},
                "tools": tools(), "messages": messages}),
    );
    let a = assembled(&decode(ApiKind::OpenaiChat, &openai));
    let b = assembled(&decode(ApiKind::Ollama, &ollama));
    assert_eq!(query_of(&a[0]), query_of(&b[0]));
}

#[test]
fn after_a_tool_result_the_answer_is_text_and_the_prompt_grew() {
    let sim = null();
    let first = [
        json!({"role": "system", "content": "be brief"}),
        json!({"role": "user", "content": "find the weather"}),
    ];
    for api in [ApiKind::OpenaiChat, ApiKind::Ollama] {
        let (assistant, result) = if api == ApiKind::OpenaiChat {
            (
                json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1",
                       "type": "function", "function": {"name": "web_search",
                       "arguments": "{\"query\": \"weather in Lyon\"}"}}]}),
                json!({"role": "tool", "tool_call_id": "call_1", "content": "sunny and warm"}),
            )
        } else {
            (
                json!({"role": "assistant", "content": "", "tool_calls": [{"function": {
                       "name": "web_search", "arguments": {"query": "weather in Lyon"}}}]}),
                json!({"role": "tool", "tool_name": "web_search", "content": "sunny and warm"}),
            )
        };
        let body = |messages: Vec<Value>| {
            if api == ApiKind::OpenaiChat {
                json!({"model": "gemma3:latest", "stream": true, "max_tokens": 5,
                       "stream_options": {"include_usage": true},
                       "tools": tools(), "messages": messages})
            } else {
                json!({"model": "gemma3:latest", "options": {"num_predict": 5},
                       "tools": tools(), "messages": messages})
            }
        };
        let path = api.path();
        let call = decode(api, &post(sim.addr(), path, &body(first.to_vec())));
        let mut conversation = first.to_vec();
        conversation.extend([assistant, result]);
        let raw = post(sim.addr(), path, &body(conversation));
        assert_eq!(raw.status, 200, "{api:?}: {}", raw.text());
        let answer = decode(api, &raw);
        assert!(assembled(&answer).is_empty(), "{api:?}");
        assert!(!texts(&answer).is_empty(), "{api:?}");
        let (out, grown) = output_and_prompt(&answer);
        assert_eq!(out, 5);
        // + the call's name, its arguments' words (OpenAI's text as sent, 4; Ollama's
        // object serialized compactly, 3) and the result's (3).
        let arguments = if api == ApiKind::OpenaiChat { 4 } else { 3 };
        assert_eq!(
            grown,
            output_and_prompt(&call).1 + 1 + arguments + 3,
            "{api:?}"
        );
    }
}

#[test]
fn generate_and_completions_ignore_tools() {
    let sim = null();
    let raw = post(
        sim.addr(),
        "/api/generate",
        &json!({"model": "gemma3:latest", "prompt": "hi", "tools": tools(),
                "options": {"num_predict": 3}}),
    );
    let events = decode(ApiKind::OllamaGenerate, &raw);
    assert!(assembled(&events).is_empty());
    assert!(!texts(&events).is_empty());
    let raw = post(
        sim.addr(),
        "/v1/completions",
        &json!({"model": "gemma3:latest", "prompt": "hi", "tools": tools(), "stream": true,
                "max_tokens": 3}),
    );
    let events = decode(ApiKind::OpenaiCompletions, &raw);
    assert!(assembled(&events).is_empty());
    assert!(!texts(&events).is_empty());
}

#[test]
fn a_reasoning_model_thinks_then_calls() {
    let mut config = SimConfig::profile("null").unwrap();
    for m in &mut config.models {
        m.reasoning_tokens = 2;
    }
    let sim = start(config);
    let raw = post(
        sim.addr(),
        "/v1/chat/completions",
        &json!({"model": "gemma3:latest", "stream": true, "max_tokens": 5, "tools": tools(),
                "messages": [{"role": "user", "content": "find the weather"}]}),
    );
    let events = decode(ApiKind::OpenaiChat, &raw);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            StreamEvent::Text(_) => "text",
            StreamEvent::Reasoning(_) => "reasoning",
            StreamEvent::ToolCall(_) => "tool",
            _ => "other",
        })
        .collect();
    // The opening role chunk (empty content), two thoughts, the call's head and 3 fragments.
    assert_eq!(
        kinds[..7],
        [
            "text",
            "reasoning",
            "reasoning",
            "tool",
            "tool",
            "tool",
            "tool"
        ]
    );
    query_of(&assembled(&events)[0]);
}

#[test]
fn a_tool_without_a_name_is_a_bad_request() {
    let sim = null();
    for path in ["/api/chat", "/v1/chat/completions"] {
        let raw = post(
            sim.addr(),
            path,
            &json!({"model": "gemma3:latest", "tools": [{"type": "function", "function": {}}],
                    "messages": [{"role": "user", "content": "x"}]}),
        );
        assert_eq!(raw.status, 400, "{path}");
        assert!(
            raw.text().contains("tools[0].function.name is required"),
            "{path}"
        );
    }
}

/// Tool-call tokens are generated at the device's pace, as text is: OpenAI's fragments
/// leave as their tokens are due; Ollama's whole call leaves when its last token is due, and that
/// frame is what the server's first-token record times (ideal device, 50 ms TTFT, 100 tok/s).
#[test]
fn tool_call_tokens_come_at_the_devices_pace() {
    use std::time::Duration;
    let sim = start(SimConfig::profile("fixed").unwrap());
    let messages = json!([{"role": "user", "content": "find the weather"}]);
    let openai = post(
        sim.addr(),
        "/v1/chat/completions",
        &json!({"model": "gemma3:latest", "stream": true, "max_tokens": 5,
                "tools": tools(), "messages": messages}),
    );
    let times: Vec<Duration> = openai.sse().into_iter().map(|(t, _)| t).collect();
    // Fragments 1..=5 are the tokens (the head goes out with the first); none can come
    // before it is due (a lower bound holds on a loaded machine, a gap would not).
    for (i, t) in times[1..6].iter().enumerate() {
        assert!(*t >= Duration::from_millis(50 + 10 * i as u64), "{times:?}");
    }
    let ollama = post(
        sim.addr(),
        "/api/chat",
        &json!({"model": "gemma3:latest", "options": {"num_predict": 5},
                "tools": tools(), "messages": messages}),
    );
    let (call_at, _) = ollama.ndjson()[0];
    assert!(call_at >= Duration::from_millis(90), "{call_at:?}");
    let firsts = sim.take_first_tokens();
    assert_eq!(firsts.len(), 2, "{firsts:?}");
    assert_eq!(firsts[0].due - firsts[0].arrival, Duration::from_millis(50));
    assert_eq!(firsts[1].due - firsts[1].arrival, Duration::from_millis(90));
}
