//! Each fault mode sends the bytes the crate docs promise.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{ollama_text, post, send, start, Raw};
use serde_json::{json, Value};

use chimeraforge_sim::{FaultMode, FaultPlan, SimConfig};

const TIMEOUT: Duration = Duration::from_secs(10);

fn fixed() -> chimeraforge_sim::SimHandle {
    start(SimConfig::profile("fixed").unwrap())
}

/// An Ollama generate of `tokens` tokens with the fault header `fault`.
fn ollama(addr: SocketAddr, fault: &str, tokens: u32) -> Raw {
    let body = json!({"model": "gemma3:latest", "prompt": "tell me", "options": {"num_predict": tokens, "seed": 1}});
    send(
        addr,
        "POST",
        "/api/generate",
        &[("x-sim-fault", fault)],
        body.to_string().as_bytes(),
        TIMEOUT,
    )
}

fn openai(addr: SocketAddr, fault: &str, tokens: u32) -> Raw {
    let body = json!({"model": "gemma3:latest", "messages": [{"role": "user", "content": "tell me"}],
                      "stream": true, "max_tokens": tokens, "seed": 1});
    send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("x-sim-fault", fault)],
        body.to_string().as_bytes(),
        TIMEOUT,
    )
}

fn lines(raw: &Raw) -> Vec<Vec<u8>> {
    raw.lines(b"\n").into_iter().map(|(_, l)| l).collect()
}

fn is_token_line(line: &[u8]) -> bool {
    serde_json::from_slice::<Value>(line)
        .is_ok_and(|v| v["done"] == false && v["response"].is_string())
}

fn is_done_line(line: &[u8]) -> bool {
    serde_json::from_slice::<Value>(line).is_ok_and(|v| v["done"] == true)
}

#[test]
fn http500_model_not_found_unauthorized() {
    let sim = fixed();
    let raw = ollama(sim.addr(), "http500", 5);
    assert_eq!(raw.status, 500);
    assert_eq!(
        raw.text(),
        r#"{"error":"chimeraforge-sim: injected fault http500"}"#
    );
    let raw = openai(sim.addr(), "http500", 5);
    assert_eq!(raw.status, 500);
    let body: Value = serde_json::from_slice(&raw.body()).unwrap();
    assert_eq!(body["error"]["type"], "server_error");

    let raw = ollama(sim.addr(), "model_not_found", 5);
    assert_eq!(raw.status, 404);
    assert_eq!(
        raw.text(),
        r#"{"error":"model \"gemma3:latest\" not found, try pulling it first"}"#
    );

    let raw = ollama(sim.addr(), "unauthorized", 5);
    assert_eq!(raw.status, 401);
    assert_eq!(raw.text(), r#"{"error":"unauthorized"}"#);
    let raw = openai(sim.addr(), "unauthorized", 5);
    assert_eq!(raw.status, 401);
    let body: Value = serde_json::from_slice(&raw.body()).unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(sim.stats().faults, 5);
}

#[test]
fn malformed_line_then_the_stream_goes_on() {
    let sim = fixed();
    let raw = ollama(sim.addr(), "malformed_line; after_tokens=2", 5);
    assert!(raw.complete);
    let lines = lines(&raw);
    assert_eq!(lines.len(), 7);
    assert!(is_token_line(&lines[0]) && is_token_line(&lines[1]));
    assert!(
        serde_json::from_slice::<Value>(&lines[2]).is_err(),
        "{:?}",
        String::from_utf8_lossy(&lines[2])
    );
    assert!(lines[3..6].iter().all(|l| is_token_line(l)));
    assert!(is_done_line(&lines[6]));

    let raw = openai(sim.addr(), "malformed_line; after_tokens=2", 5);
    let events: Vec<String> = raw.sse().into_iter().map(|(_, d)| d).collect();
    // role, 2 tokens, malformed, 3 tokens, finish, [DONE]
    assert_eq!(events.len(), 9, "{events:?}");
    assert!(serde_json::from_str::<Value>(&events[3]).is_err());
    assert_eq!(events[8], "[DONE]");
}

#[test]
fn error_midstream_ends_with_an_error_line() {
    let sim = fixed();
    let raw = ollama(sim.addr(), "error_midstream", 8);
    assert!(raw.complete, "the body ends cleanly");
    let lines = lines(&raw);
    assert_eq!(lines.len(), 4);
    assert!(lines[..3].iter().all(|l| is_token_line(l)));
    let error: Value = serde_json::from_slice(&lines[3]).unwrap();
    assert!(error["error"].as_str().unwrap().contains("error_midstream"));

    let raw = openai(sim.addr(), "error_midstream", 8);
    let events: Vec<String> = raw.sse().into_iter().map(|(_, d)| d).collect();
    assert_eq!(events.len(), 6, "{events:?}");
    let error: Value = serde_json::from_str(&events[4]).unwrap();
    assert_eq!(error["error"]["type"], "server_error");
    assert_eq!(events[5], "[DONE]");

    // Not streamed: a 500 with the error.
    let body = json!({"model": "gemma3:latest", "prompt": "x", "stream": false, "options": {"num_predict": 8}});
    let raw = send(
        sim.addr(),
        "POST",
        "/api/generate",
        &[("x-sim-fault", "error_midstream")],
        body.to_string().as_bytes(),
        TIMEOUT,
    );
    assert_eq!(raw.status, 500);
}

#[test]
fn close_before_done_drops_the_connection() {
    let sim = fixed();
    let raw = ollama(sim.addr(), "close_before_done", 8);
    assert_eq!(raw.status, 200);
    assert!(!raw.complete, "no chunked terminator");
    let tokens: Vec<_> = raw.chunks.iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(tokens.len(), 3);
    assert!(tokens
        .iter()
        .all(|l| is_token_line(l.strip_suffix(b"\n").unwrap())));
    // It closed rather than hung: well before the 10 s read timeout.
    assert!(raw.end_at < Duration::from_secs(2));

    let raw = openai(sim.addr(), "close_before_done; after_tokens=0", 8);
    assert_eq!(raw.status, 200);
    assert!(!raw.complete);
    assert!(raw.chunks.is_empty());

    // after_tokens=0 on Ollama: not even headers (they come with the first line).
    let raw = ollama(sim.addr(), "close_before_done; after_tokens=0", 8);
    assert_eq!(raw.status, 0);
}

#[test]
fn stall_before_first_byte_delays_everything() {
    let sim = fixed();
    let raw = ollama(sim.addr(), "stall_before_first_byte; stall_ms=150", 3);
    assert!(
        raw.headers_at >= Duration::from_millis(200),
        "{:?}",
        raw.headers_at
    );
    let lines = raw.ndjson();
    assert_eq!(lines.len(), 4);
    let first = lines[0].0;
    assert!(
        first >= Duration::from_millis(200) && first < Duration::from_millis(230),
        "{first:?}"
    );
    let total = lines[3].1["total_duration"].as_u64().unwrap();
    assert!(total >= 220_000_000, "{total}");
    // OpenAI sends headers at once normally; this fault holds them back too.
    let raw = openai(sim.addr(), "stall_before_first_byte; stall_ms=150", 3);
    assert!(
        raw.headers_at >= Duration::from_millis(150),
        "{:?}",
        raw.headers_at
    );
}

#[test]
fn stall_midstream_pauses_then_continues() {
    let sim = fixed();
    let raw = ollama(
        sim.addr(),
        "stall_midstream; stall_ms=150; after_tokens=2",
        5,
    );
    assert!(raw.complete);
    let lines = raw.ndjson();
    assert_eq!(lines.len(), 6);
    let gap = lines[2].0 - lines[1].0;
    assert!(
        gap >= Duration::from_millis(158) && gap < Duration::from_millis(190),
        "gap {gap:?}"
    );
    let other_gap = lines[1].0 - lines[0].0;
    assert!(other_gap < Duration::from_millis(20), "{other_gap:?}");
    // The stall is inside eval_duration: 4 gaps of 10 ms + 150 ms.
    assert_eq!(lines[5].1["eval_duration"], 190_000_000u64);
}

#[test]
fn slow_drip_sends_one_byte_per_chunk() {
    let sim = fixed();
    let normal = ollama(sim.addr(), "", 3);
    let raw = ollama(sim.addr(), "slow_drip; drip_gap_ms=0", 3);
    assert!(raw.complete);
    assert!(raw.chunks.iter().all(|(_, c)| c.len() == 1));
    assert_eq!(ollama_text(&raw.ndjson()), ollama_text(&normal.ndjson()));
    assert!(raw.chunks.len() > 200);
    // With a gap, the bytes arrive in separate reads.
    let raw = openai(sim.addr(), "slow_drip; drip_gap_ms=1", 1);
    assert!(raw.complete);
    assert!(raw.chunks.iter().all(|(_, c)| c.len() == 1));
    assert!(
        raw.reads as f64 > raw.chunks.len() as f64 * 0.5,
        "{} reads for {} bytes",
        raw.reads,
        raw.chunks.len()
    );
    assert_eq!(raw.sse().last().unwrap().1, "[DONE]");
}

#[test]
fn oversized_line_is_one_long_valid_line() {
    let sim = fixed();
    let normal = ollama(sim.addr(), "", 5);
    let raw = ollama(sim.addr(), "oversized_line; oversized_bytes=100000", 5);
    let lines = raw.lines(b"\n");
    assert_eq!(lines[3].1.len() + 1, 100_000);
    assert!(lines
        .iter()
        .enumerate()
        .all(|(i, (_, l))| i == 3 || l.len() < 1000));
    // Padding is JSON whitespace: the text is unchanged.
    assert_eq!(ollama_text(&raw.ndjson()), ollama_text(&normal.ndjson()));
    // The default is 2 MiB.
    let raw = ollama(sim.addr(), "oversized_line", 5);
    let longest = raw
        .lines(b"\n")
        .into_iter()
        .map(|(_, l)| l.len() + 1)
        .max()
        .unwrap();
    assert_eq!(longest, 2 * 1024 * 1024);
    let raw = openai(sim.addr(), "oversized_line; oversized_bytes=50000", 5);
    let longest = raw
        .lines(b"\n\n")
        .into_iter()
        .map(|(_, l)| l.len() + 2)
        .max()
        .unwrap();
    assert_eq!(longest, 50_000);
}

#[test]
fn invalid_utf8_puts_bad_bytes_in_a_token() {
    let sim = fixed();
    let raw = ollama(sim.addr(), "invalid_utf8", 5);
    assert!(raw.complete);
    let lines = lines(&raw);
    assert_eq!(lines.len(), 6);
    let bad = &lines[3];
    assert!(std::str::from_utf8(bad).is_err());
    assert!(bad.windows(2).any(|w| w == [0xff, 0xfe]));
    assert!(bad.starts_with(b"{\"model\":\"gemma3:latest\""));
    for (i, line) in lines.iter().enumerate().filter(|&(i, _)| i != 3) {
        assert!(std::str::from_utf8(line).is_ok(), "line {i}");
    }
}

#[test]
fn wrong_content_type_is_html() {
    let sim = fixed();
    let raw = ollama(sim.addr(), "wrong_content_type", 5);
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(raw.text().starts_with("<!DOCTYPE html>"));
}

#[test]
fn never_done_holds_the_stream_open_without_a_final_line() {
    let sim = fixed();
    let raw = ollama(sim.addr(), "never_done; stall_ms=200", 4);
    assert!(raw.complete, "ends cleanly after the stall");
    let lines = lines(&raw);
    assert_eq!(lines.len(), 4);
    assert!(lines.iter().all(|l| is_token_line(l)));
    // Last token at 80 ms, then 200 ms of nothing.
    assert!(raw.end_at >= Duration::from_millis(280), "{:?}", raw.end_at);
}

#[test]
fn fault_from_json_field_and_plan() {
    let sim = fixed();
    let body = json!({"model": "gemma3:latest", "prompt": "x", "sim_fault": "http500"});
    assert_eq!(post(sim.addr(), "/api/generate", &body).status, 500);
    let body =
        json!({"model": "gemma3:latest", "prompt": "x", "options": {"sim_fault": "unauthorized"}});
    assert_eq!(post(sim.addr(), "/api/generate", &body).status, 401);
    let body = json!({"model": "gemma3:latest", "messages": [], "sim_fault": "wrong_content_type"});
    assert_eq!(
        post(sim.addr(), "/v1/chat/completions", &body).header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let body = json!({"model": "gemma3:latest", "prompt": "x", "sim_fault": "explode"});
    assert_eq!(post(sim.addr(), "/api/generate", &body).status, 400);
    assert_eq!(ollama(sim.addr(), "slow_drip; volume=11", 1).status, 400);

    let mut config = SimConfig::profile("null").unwrap();
    config.faults = FaultPlan {
        mode: Some(FaultMode::Http500),
        every_nth_request: Some(2),
        ..FaultPlan::default()
    };
    let sim = start(config);
    let body = json!({"model": "gemma3:latest", "prompt": "x", "options": {"num_predict": 2}});
    let statuses: Vec<u16> = (0..4)
        .map(|_| post(sim.addr(), "/api/generate", &body).status)
        .collect();
    assert_eq!(statuses, [200, 500, 200, 500]);
    // A per-request fault wins over the plan.
    assert_eq!(ollama(sim.addr(), "unauthorized", 2).status, 401);
    assert_eq!(sim.stats().faults, 3);
}

#[test]
fn faults_on_whole_replies() {
    let sim = fixed();
    let whole = |fault: &str| {
        let body = json!({"model": "gemma3:latest", "prompt": "x", "stream": false, "options": {"num_predict": 4}});
        send(
            sim.addr(),
            "POST",
            "/api/generate",
            &[("x-sim-fault", fault)],
            body.to_string().as_bytes(),
            TIMEOUT,
        )
    };
    let raw = whole("malformed_line");
    assert_eq!(raw.status, 200);
    assert!(serde_json::from_slice::<Value>(&raw.body()).is_err());
    let raw = whole("close_before_done");
    assert_eq!(raw.status, 0, "no response at all");
    let raw = whole("invalid_utf8");
    assert!(std::str::from_utf8(&raw.body()).is_err());
    let raw = whole("oversized_line; oversized_bytes=4096");
    assert_eq!(raw.body().len(), 4096);
    let raw = whole("slow_drip; drip_gap_ms=0");
    assert!(raw.chunks.iter().all(|(_, c)| c.len() == 1));
    let reply: Value = serde_json::from_slice(&raw.body()).unwrap();
    assert_eq!(reply["eval_count"], 4);
}
