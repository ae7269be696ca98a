//! Real llama.cpp (`llama-server`, Gemma 3 270M) SSE streams, captured verbatim with
//! `curl -sN` (see scripts/real-engine.sh), decoded at every two-way split.

use chimeraforge_core::api::{ApiKind, ServerStats, StreamEvent};

fn decode(api: ApiKind, chunks: &[&[u8]]) -> Vec<StreamEvent> {
    let mut d = api.decoder(1 << 20);
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c, &mut out).unwrap();
    }
    d.finish(&mut out).unwrap();
    out
}

fn summarize(events: &[StreamEvent]) -> (usize, String, ServerStats, usize) {
    let mut texts = 0;
    let mut text = String::new();
    let mut stats = ServerStats::default();
    let mut dones = 0;
    for e in events {
        match e {
            StreamEvent::Text(t) if !t.is_empty() => {
                texts += 1;
                text.push_str(t);
            }
            StreamEvent::Stats(s) => stats.merge(s.clone()),
            StreamEvent::Done { .. } => dones += 1,
            _ => {}
        }
    }
    (texts, text, stats, dones)
}

/// What the fixture's final chunk says, copied from it: the prompt's length, its cached part
/// (`cache_n`) and llama.cpp's own `predicted_per_second`.
struct Expect {
    output_tokens: u64,
    prompt_tokens: u64,
    cached: u64,
    rate: f64,
}

fn check(api: ApiKind, bytes: &[u8], want: Expect) {
    let whole = decode(api, &[bytes]);
    let (texts, text, stats, dones) = summarize(&whole);
    assert_eq!(stats.output_tokens, Some(want.output_tokens));
    assert_eq!(stats.prompt_tokens, Some(want.prompt_tokens));
    assert_eq!(stats.cached_prompt_tokens, Some(want.cached));
    // The rate as llama.cpp defines it: its own field, (predicted_n - 1) / predicted_ms here,
    // not predicted_n / predicted_ms (3.2% higher).
    assert_eq!(stats.decode_tok_s(), Some(want.rate));
    let naive = stats.output_tokens.unwrap() as f64 / (stats.eval_ms.unwrap() / 1e3);
    assert!(naive > want.rate * 1.02, "{naive} vs {}", want.rate);
    // ... and that field is (n - 1) / predicted_ms, the definition methodology.md states.
    let defined = (want.output_tokens - 1) as f64 / (stats.eval_ms.unwrap() / 1e3);
    assert!(
        (defined - want.rate).abs() <= want.rate * 1e-6,
        "{defined} vs {}",
        want.rate
    );
    assert!(stats.eval_ms.unwrap() > 0.0 && stats.prompt_eval_ms.unwrap() > 0.0);
    assert_eq!(stats.done_reason.as_deref(), Some("length"));
    assert_eq!(dones, 1);
    let n = want.output_tokens as usize;
    assert!((n - 2..=n).contains(&texts), "{texts} text events");
    assert!(!text.is_empty());
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        assert_eq!(decode(api, &[a, b]), whole, "split at {i}");
    }
}

#[test]
fn llamacpp_chat_stream_decodes_at_every_split() {
    check(
        ApiKind::OpenaiChat,
        include_bytes!("fixtures/llamacpp_chat_stream.txt"),
        Expect {
            output_tokens: 32,
            prompt_tokens: 31,
            cached: 0,
            rate: 9.985044979406648,
        },
    );
}

#[test]
fn llamacpp_completions_stream_decodes_at_every_split() {
    // usage.prompt_tokens (6) wins over timings.prompt_n (5: one token came from cache).
    check(
        ApiKind::OpenaiCompletions,
        include_bytes!("fixtures/llamacpp_completions_stream.txt"),
        Expect {
            output_tokens: 32,
            prompt_tokens: 6,
            cached: 1,
            rate: 9.829480705363535,
        },
    );
}

#[test]
fn llamacpp_prompt_cache_hit_decodes_at_every_split() {
    // The same request sent twice to `llama-server --no-jinja --chat-template gemma`
    // (scripts/real-engine.sh serve, 2026-12-04): the second reply, 19 of its 24 prompt
    // tokens from the prompt cache (`cache_n`, `cached_tokens`), `prompt_n` 5.
    check(
        ApiKind::OpenaiChat,
        include_bytes!("fixtures/llamacpp_chat_cached_stream.txt"),
        Expect {
            output_tokens: 24,
            prompt_tokens: 24,
            cached: 19,
            rate: 7.0032190448583584,
        },
    );
}
