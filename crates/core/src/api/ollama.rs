//! Ollama's streaming NDJSON (`/api/generate`, `/api/chat`): one JSON object per line.

use super::lines::LineSplitter;
use super::{ns_to_ms, CodecError, ServerStats, StreamEvent};
use serde::Deserialize;

#[derive(Deserialize)]
struct Line {
    response: Option<String>,
    /// `/api/generate`'s reasoning text (sent when the request asks to `think`).
    thinking: Option<String>,
    message: Option<Message>,
    #[serde(default)]
    done: bool,
    done_reason: Option<String>,
    eval_count: Option<u64>,
    eval_duration: Option<u64>,
    prompt_eval_count: Option<u64>,
    prompt_eval_duration: Option<u64>,
    /// Prompt tokens read from the cache (newer Ollama; part of `prompt_eval_count`).
    prompt_eval_cached_count: Option<u64>,
    load_duration: Option<u64>,
    total_duration: Option<u64>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
    /// `/api/chat`'s reasoning text.
    thinking: Option<String>,
}

/// Sans-IO decoder for an Ollama NDJSON stream.
#[derive(Debug)]
pub struct OllamaDecoder {
    lines: LineSplitter,
}

impl OllamaDecoder {
    pub fn new(max_line_bytes: usize) -> Self {
        OllamaDecoder {
            lines: LineSplitter::new(max_line_bytes),
        }
    }

    /// Feed body bytes, split anywhere; complete lines become events.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), CodecError> {
        self.lines.feed(chunk, |line, n| decode_line(line, n, out))
    }

    /// End of body: a final line without `\n` is still a line; half a JSON object is an error.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), CodecError> {
        let rest = self.lines.take_rest();
        if rest.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let n = self.lines.line_number() + 1;
        decode_line(&rest, n, out).map_err(|e| match e {
            CodecError::MalformedJson { .. } => CodecError::TruncatedLine { bytes: rest.len() },
            other => other,
        })
    }
}

fn decode_line(line: &[u8], n: u64, out: &mut Vec<StreamEvent>) -> Result<(), CodecError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let text = std::str::from_utf8(line).map_err(|_| CodecError::InvalidUtf8 { line: n })?;
    let parsed: Line = serde_json::from_str(text).map_err(|e| CodecError::MalformedJson {
        line: n,
        reason: e.to_string(),
    })?;
    if let Some(err) = parsed.error {
        let msg = match err {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        out.push(StreamEvent::ServerError(msg));
        return Ok(());
    }
    let (content, message_thinking) = match parsed.message {
        Some(m) => (m.content, m.thinking),
        None => (None, None),
    };
    let thinking = parsed
        .thinking
        .or(message_thinking)
        .filter(|t| !t.is_empty());
    let reasoned = thinking.is_some();
    if let Some(thought) = thinking {
        out.push(StreamEvent::Reasoning(thought));
    }
    if let Some(piece) = parsed.response.or(content) {
        // The empty `content`/`response` beside a thought is no keep-alive delta.
        if !((parsed.done || reasoned) && piece.is_empty()) {
            out.push(StreamEvent::Text(piece));
        }
    }
    if parsed.done {
        out.push(StreamEvent::Stats(ServerStats {
            output_tokens: parsed.eval_count,
            prompt_tokens: parsed.prompt_eval_count,
            eval_ms: ns_to_ms(parsed.eval_duration),
            prompt_eval_ms: ns_to_ms(parsed.prompt_eval_duration),
            load_ms: ns_to_ms(parsed.load_duration),
            total_ms: ns_to_ms(parsed.total_duration),
            done_reason: parsed.done_reason.clone(),
            reasoning_tokens: None,
            cached_prompt_tokens: parsed.prompt_eval_cached_count,
            // Ollama sends no rate: its rate is `eval_count / eval_duration`.
            reported_decode_tok_s: None,
        }));
        out.push(StreamEvent::Done {
            reason: parsed.done_reason,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{testing, ApiKind};
    use proptest::prelude::*;

    const STREAM: &str = concat!(
        "{\"model\":\"gemma3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"Hé\"},\"done\":false}\n",
        "{\"model\":\"gemma3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"llo 日本\"},\"done\":false}\n",
        "{\"model\":\"gemma3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\" —\"},\"done\":false}\r\n",
        "{\"model\":\"gemma3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,",
        "\"done_reason\":\"length\",\"total_duration\":2500000000,\"load_duration\":1000000,",
        "\"prompt_eval_count\":26,\"prompt_eval_duration\":130000000,\"eval_count\":3,\"eval_duration\":30000000}\n",
    );

    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<StreamEvent>, CodecError> {
        testing::decode_all(ApiKind::Ollama, chunks)
    }

    fn expected() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Text("Hé".into()),
            StreamEvent::Text("llo 日本".into()),
            StreamEvent::Text(" —".into()),
            StreamEvent::Stats(ServerStats {
                output_tokens: Some(3),
                prompt_tokens: Some(26),
                eval_ms: Some(30.0),
                prompt_eval_ms: Some(130.0),
                load_ms: Some(1.0),
                total_ms: Some(2500.0),
                done_reason: Some("length".into()),
                ..Default::default()
            }),
            StreamEvent::Done {
                reason: Some("length".into()),
            },
        ]
    }

    #[test]
    fn whole_every_two_way_split_and_byte_by_byte_decode_identically() {
        testing::assert_every_split(ApiKind::Ollama, STREAM.as_bytes(), &expected());
    }

    proptest! {
        #[test]
        fn any_chunking_decodes_identically(cuts in proptest::collection::vec(0usize..STREAM.len(), 0..40)) {
            let chunks = testing::chunks_at(STREAM.as_bytes(), cuts);
            prop_assert_eq!(decode_all(&chunks).unwrap(), expected());
        }
    }

    /// A thinking model on `/api/chat` (`think: true`): thoughts in `message.thinking` with
    /// empty `content`, then the answer; `eval_count` counts both.
    const CHAT_THINKING: &str = concat!(
        "{\"model\":\"qwen3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"Ok\"},\"done\":false}\n",
        "{\"model\":\"qwen3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"ay, 日本\"},\"done\":false}\n",
        "{\"model\":\"qwen3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"Hé\"},\"done\":false}\n",
        "{\"model\":\"qwen3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,",
        "\"done_reason\":\"stop\",\"eval_count\":3,\"eval_duration\":30000000}\n",
    );

    /// The same on `/api/generate`: thoughts in the top-level `thinking`, `response` empty.
    const GENERATE_THINKING: &str = concat!(
        "{\"model\":\"qwen3\",\"created_at\":\"t\",\"response\":\"\",\"thinking\":\"Ok\",\"done\":false}\n",
        "{\"model\":\"qwen3\",\"created_at\":\"t\",\"response\":\"\",\"thinking\":\"ay, 日本\",\"done\":false}\n",
        "{\"model\":\"qwen3\",\"created_at\":\"t\",\"response\":\"Hé\",\"done\":false}\n",
        "{\"model\":\"qwen3\",\"created_at\":\"t\",\"response\":\"\",\"done\":true,",
        "\"done_reason\":\"stop\",\"eval_count\":3,\"eval_duration\":30000000}\n",
    );

    fn thinking_expected() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Reasoning("Ok".into()),
            StreamEvent::Reasoning("ay, 日本".into()),
            StreamEvent::Text("Hé".into()),
            StreamEvent::Stats(ServerStats {
                output_tokens: Some(3),
                eval_ms: Some(30.0),
                done_reason: Some("stop".into()),
                ..Default::default()
            }),
            StreamEvent::Done {
                reason: Some("stop".into()),
            },
        ]
    }

    #[test]
    fn chat_thinking_is_reasoning_on_every_split() {
        testing::assert_every_split(
            ApiKind::Ollama,
            CHAT_THINKING.as_bytes(),
            &thinking_expected(),
        );
    }

    #[test]
    fn generate_thinking_is_reasoning_on_every_split() {
        testing::assert_every_split(
            ApiKind::OllamaGenerate,
            GENERATE_THINKING.as_bytes(),
            &thinking_expected(),
        );
    }

    #[test]
    fn empty_thinking_is_no_reasoning() {
        let out =
            decode_all(&[b"{\"response\":\"a\",\"thinking\":\"\",\"done\":false}\n"]).unwrap();
        assert_eq!(out, vec![StreamEvent::Text("a".into())]);
    }

    /// Newer Ollama's final line says how many prompt tokens came from its cache; the rate
    /// is Ollama's own definition, `eval_count / eval_duration` (it sends no rate field).
    #[test]
    fn cached_prompt_count_and_rate_as_ollama_defines_it_at_every_split() {
        let line = concat!(
            "{\"model\":\"gemma3\",\"message\":{\"role\":\"assistant\",\"content\":\"x\"},\"done\":false}\n",
            "{\"model\":\"gemma3\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,",
            "\"done_reason\":\"stop\",\"prompt_eval_count\":133,\"prompt_eval_cached_count\":128,",
            "\"prompt_eval_duration\":9000000,\"eval_count\":40,\"eval_duration\":1600000000}\n",
        );
        let stats = ServerStats {
            output_tokens: Some(40),
            prompt_tokens: Some(133),
            eval_ms: Some(1600.0),
            prompt_eval_ms: Some(9.0),
            done_reason: Some("stop".into()),
            cached_prompt_tokens: Some(128),
            ..Default::default()
        };
        assert_eq!(stats.decode_tok_s(), Some(25.0));
        testing::assert_every_split(
            ApiKind::Ollama,
            line.as_bytes(),
            &[
                StreamEvent::Text("x".into()),
                StreamEvent::Stats(stats),
                StreamEvent::Done {
                    reason: Some("stop".into()),
                },
            ],
        );
    }

    #[test]
    fn generate_response_field_is_text() {
        let out = decode_all(&[b"{\"response\":\"abc\",\"done\":false}\n"]).unwrap();
        assert_eq!(out, vec![StreamEvent::Text("abc".into())]);
    }

    #[test]
    fn error_line_is_a_server_error() {
        let out =
            decode_all(&[b"{\"error\":\"model \\\"x\\\" not found, try pulling it first\"}\n"])
                .unwrap();
        assert_eq!(
            out,
            vec![StreamEvent::ServerError(
                "model \"x\" not found, try pulling it first".into()
            )]
        );
    }

    #[test]
    fn final_line_without_newline_is_accepted() {
        let out = decode_all(&[
            b"{\"response\":\"a\",\"done\":false}\n{\"response\":\"b\",\"done\":false}",
        ])
        .unwrap();
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn truncated_last_line_is_an_error() {
        let err = decode_all(&[b"{\"response\":\"a\",\"done\":false}\n{\"respon"]).unwrap_err();
        assert_eq!(err, CodecError::TruncatedLine { bytes: 8 });
    }

    #[test]
    fn malformed_line_names_its_number() {
        let err = decode_all(&[b"{\"response\":\"a\"}\nnot json\n"]).unwrap_err();
        assert!(
            matches!(err, CodecError::MalformedJson { line: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn invalid_utf8_is_reported() {
        let err = decode_all(&[b"{\"response\":\"\xff\xfe\"}\n"]).unwrap_err();
        assert_eq!(err, CodecError::InvalidUtf8 { line: 1 });
    }

    #[test]
    fn line_limit_bounds_memory_even_without_newline() {
        let mut d = OllamaDecoder::new(64);
        let mut out = Vec::new();
        let big = vec![b'x'; 40];
        d.feed(&big, &mut out).unwrap();
        assert_eq!(
            d.feed(&big, &mut out).unwrap_err(),
            CodecError::LineTooLong { limit: 64 }
        );
    }
}
