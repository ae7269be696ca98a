//! Codec throughput in tokens parsed per second: realistic Ollama NDJSON (~130 bytes per
//! token) and OpenAI SSE (~200 bytes per token) streams, fed in network-sized chunks.
//!
//! `cargo bench -p chimeraforge-core --bench codecs`; criterion's "thrpt" is tokens/s on
//! one core (the decoder is single-threaded).

use chimeraforge_core::api::{ApiKind, StreamEvent};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const TOKENS: usize = 20_000;
const WORDS: [&str; 8] = [
    " the", " latency", " é", " 日本", " —", " tokens", " 🦀", ",",
];

/// One Ollama `/api/chat` stream line per token plus the final line (~130 bytes per token).
fn ollama_stream() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..TOKENS {
        s.push_str(&format!(
            "{{\"model\":\"gemma3:latest\",\"created_at\":\"2025-06-01T12:00:{:02}.{:09}Z\",\"message\":{{\"role\":\"assistant\",\"content\":\"{}\"}},\"done\":false}}\n",
            i % 60,
            i,
            WORDS[i % WORDS.len()]
        ));
    }
    s.push_str("{\"model\":\"gemma3:latest\",\"created_at\":\"2025-06-01T12:01:00.000000000Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"length\",\"total_duration\":2500000000,\"load_duration\":1000000,\"prompt_eval_count\":26,\"prompt_eval_duration\":130000000,\"eval_count\":20000,\"eval_duration\":2000000000}\n");
    s.into_bytes()
}

/// One SSE chat chunk per token, then finish, usage and `[DONE]` (~200 bytes per token).
fn sse_stream() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..TOKENS {
        s.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-{i:08}\",\"object\":\"chat.completion.chunk\",\"created\":1748779200,\"model\":\"gemma3:latest\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n",
            WORDS[i % WORDS.len()]
        ));
    }
    s.push_str("data: {\"id\":\"chatcmpl-x\",\"object\":\"chat.completion.chunk\",\"created\":1748779200,\"model\":\"gemma3:latest\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n");
    s.push_str("data: {\"id\":\"chatcmpl-x\",\"object\":\"chat.completion.chunk\",\"created\":1748779200,\"model\":\"gemma3:latest\",\"choices\":[],\"usage\":{\"prompt_tokens\":26,\"completion_tokens\":20000,\"total_tokens\":20026}}\n\ndata: [DONE]\n\n");
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

fn codecs(c: &mut Criterion) {
    for (name, api, stream) in [
        ("ollama-ndjson", ApiKind::Ollama, ollama_stream()),
        ("openai-sse", ApiKind::OpenaiChat, sse_stream()),
    ] {
        assert_eq!(decode(api, &stream, 4096), TOKENS, "{name}");
        let mut g = c.benchmark_group(format!("{name} ({} bytes/token)", stream.len() / TOKENS));
        g.throughput(Throughput::Elements(TOKENS as u64));
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
