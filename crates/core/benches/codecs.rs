//! Codec throughput in tokens parsed per second: realistic Ollama NDJSON (~130 bytes per
//! token) and OpenAI SSE (~200 bytes per token) streams, fed in network-sized chunks.
//!
//! `cargo bench -p chimeraforge-core --bench codecs`; criterion's "thrpt" is tokens/s on
//! one core (the decoder is single-threaded).
//!
//! Full size only under `cargo bench`. `cargo test --all-targets` builds this file in debug
//! and criterion runs each benchmark once as a test; that smoke run decodes 500-token
//! streams instead of 20,000.

use chimeraforge_core::api::{ApiKind, StreamEvent};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Tokens per stream when measuring; [`SMOKE_TOKENS`] under `cargo test`.
const TOKENS: usize = 20_000;
const SMOKE_TOKENS: usize = 500;
const WORDS: [&str; 8] = [
    " the", " latency", " é", " 日本", " —", " tokens", " 🦀", ",",
];

/// One Ollama `/api/chat` stream line per token plus the final line (~130 bytes per token).
fn ollama_stream(tokens: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..tokens {
        s.push_str(&format!(
            "{{\"model\":\"gemma3:latest\",\"created_at\":\"2025-06-01T12:00:{:02}.{:09}Z\",\"message\":{{\"role\":\"assistant\",\"content\":\"{}\"}},\"done\":false}}\n",
            i % 60,
            i,
            WORDS[i % WORDS.len()]
        ));
    }
    s.push_str(&format!("{{\"model\":\"gemma3:latest\",\"created_at\":\"2025-06-01T12:01:00.000000000Z\",\"message\":{{\"role\":\"assistant\",\"content\":\"\"}},\"done\":true,\"done_reason\":\"length\",\"total_duration\":2500000000,\"load_duration\":1000000,\"prompt_eval_count\":26,\"prompt_eval_duration\":130000000,\"eval_count\":{tokens},\"eval_duration\":2000000000}}\n"));
    s.into_bytes()
}

/// One SSE chat chunk per token, then finish, usage and `[DONE]` (~200 bytes per token).
fn sse_stream(tokens: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..tokens {
        s.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-{i:08}\",\"object\":\"chat.completion.chunk\",\"created\":1748779200,\"model\":\"gemma3:latest\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n",
            WORDS[i % WORDS.len()]
        ));
    }
    s.push_str("data: {\"id\":\"chatcmpl-x\",\"object\":\"chat.completion.chunk\",\"created\":1748779200,\"model\":\"gemma3:latest\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n");
    s.push_str(&format!(
        "data: {{\"id\":\"chatcmpl-x\",\"object\":\"chat.completion.chunk\",\"created\":1748779200,\"model\":\"gemma3:latest\",\"choices\":[],\"usage\":{{\"prompt_tokens\":26,\"completion_tokens\":{tokens},\"total_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
        tokens + 26
    ));
    s.into_bytes()
}

/// Decode `stream` fed in `chunk`-byte pieces; returns the text events seen.
fn decode(api: ApiKind, stream: &[u8], chunk: usize) -> usize {
    let mut d = api.decoder(1 << 20);
    let mut out = Vec::with_capacity(64);
    let mut texts = 0;
    for piece in stream.chunks(chunk) {
        d.feed(piece, &mut out).expect("valid stream");
        texts += out
            .drain(..)
            .filter(|e| matches!(e, StreamEvent::Text(_)))
            .count();
    }
    d.finish(&mut out).expect("valid end");
    texts
}

/// Whether criterion will measure (`cargo bench`) rather than run each benchmark once as a
/// test (`cargo test`, `cargo bench -- --test`): criterion 0.5's own rule in
/// `Criterion::configure_from_args`, which it does not expose.
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

fn codecs(c: &mut Criterion) {
    let tokens = if measuring() { TOKENS } else { SMOKE_TOKENS };
    for (name, api, stream) in [
        ("ollama-ndjson", ApiKind::Ollama, ollama_stream(tokens)),
        ("openai-sse", ApiKind::OpenaiChat, sse_stream(tokens)),
    ] {
        assert_eq!(decode(api, &stream, 4096), tokens, "{name}");
        let mut g = c.benchmark_group(format!("{name} ({} bytes/token)", stream.len() / tokens));
        g.throughput(Throughput::Elements(tokens as u64));
        for chunk in [1024usize, 4096, 16384] {
            g.bench_with_input(BenchmarkId::from_parameter(chunk), &chunk, |b, &chunk| {
                b.iter(|| decode(api, black_box(&stream), chunk))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, codecs);
criterion_main!(benches);
