//! Ollama's streaming NDJSON (`/api/generate`, `/api/chat`): one JSON object per line.

use super::lines::LineSplitter;
use super::tools::{json_type, optional_str};
use super::{ns_to_ms, CodecError, ServerStats, StreamEvent, ToolCallChunk};
use serde::Deserialize;
use serde_json::Value;

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
    /// Whole tool calls, checked by [`tool_call_chunks`] (its errors name the field).
    tool_calls: Option<Value>,
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
    let (content, message_thinking, tool_calls) = match parsed.message {
        Some(m) => (m.content, m.thinking, m.tool_calls),
        None => (None, None, None),
    };
    let tool_calls = match tool_calls {
        Some(calls) => tool_call_chunks(calls)
            .map_err(|reason| CodecError::MalformedToolCall { line: n, reason })?,
        None => Vec::new(),
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
        // The empty `content`/`response` beside a thought or a tool call is no keep-alive delta.
        if !((parsed.done || reasoned || !tool_calls.is_empty()) && piece.is_empty()) {
            out.push(StreamEvent::Text(piece));
        }
    }
    out.extend(tool_calls.into_iter().map(StreamEvent::ToolCall));
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

/// The calls of `message.tool_calls` (`[{id?, function: {index?, name, arguments: {..}}}]`),
/// each one whole, its arguments object serialized; `Err` says which field is wrong and how.
fn tool_call_chunks(calls: Value) -> Result<Vec<ToolCallChunk>, String> {
    let items = match calls {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => {
            return Err(format!(
                "message.tool_calls is {}, not an array of calls",
                json_type(&other)
            ))
        }
    };
    let mut chunks = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("message.tool_calls[{i}]");
        let Value::Object(call) = item else {
            return Err(format!("{at} is {}, not an object", json_type(&item)));
        };
        let id = optional_str(&call, "id", &format!("{at}.id"))?;
        let function = match call.get("function") {
            Some(Value::Object(f)) => f,
            None | Some(Value::Null) => return Err(format!("{at} has no function")),
            Some(other) => {
                return Err(format!(
                    "{at}.function is {}, not an object",
                    json_type(other)
                ))
            }
        };
        let name = optional_str(function, "name", &format!("{at}.function.name"))?
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("{at}.function has no name"))?;
        let arguments = match function.get("arguments") {
            None | Some(Value::Null) => "{}".to_owned(),
            // Ollama sends an object; a proxy may have turned it into the JSON text already.
            Some(Value::String(text)) => text.clone(),
            Some(args @ Value::Object(_)) => args.to_string(),
            Some(other) => {
                return Err(format!(
                    "{at}.function.arguments is {}, not an object",
                    json_type(other)
                ))
            }
        };
        chunks.push(ToolCallChunk {
            index: None,
            id,
            name: Some(name),
            arguments,
        });
    }
    Ok(chunks)
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

    fn whole(id: Option<&str>, name: &str, args: &str) -> StreamEvent {
        StreamEvent::ToolCall(ToolCallChunk {
            index: None,
            id: id.map(str::to_owned),
            name: Some(name.into()),
            arguments: args.into(),
        })
    }

    /// Ollama `/api/chat` with tools: the text the model said first streams as usual, then
    /// the calls come whole in one line (content empty; newer versions add `id` and
    /// `function.index`), then the final line with the counts.
    const TEXT_THEN_TOOLS: &str = concat!(
        "{\"model\":\"qwen3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"Let me \"},\"done\":false}\n",
        "{\"model\":\"qwen3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"look.\"},\"done\":false}\n",
        "{\"model\":\"qwen3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[",
        "{\"function\":{\"name\":\"web_search\",\"arguments\":{\"query\":\"日本\",\"limit\":3}}},",
        "{\"id\":\"call_x1\",\"function\":{\"index\":1,\"name\":\"fetch\",\"arguments\":{}}}]},\"done\":false}\r\n",
        "{\"model\":\"qwen3\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,",
        "\"done_reason\":\"stop\",\"prompt_eval_count\":50,\"eval_count\":20,\"eval_duration\":200000000}\n",
    );

    #[test]
    fn text_then_whole_tool_calls_at_every_split() {
        testing::assert_every_split(
            ApiKind::Ollama,
            TEXT_THEN_TOOLS.as_bytes(),
            &[
                StreamEvent::Text("Let me ".into()),
                StreamEvent::Text("look.".into()),
                // serde_json writes an object's keys sorted.
                whole(None, "web_search", "{\"limit\":3,\"query\":\"日本\"}"),
                whole(Some("call_x1"), "fetch", "{}"),
                StreamEvent::Stats(ServerStats {
                    output_tokens: Some(20),
                    prompt_tokens: Some(50),
                    eval_ms: Some(200.0),
                    done_reason: Some("stop".into()),
                    ..Default::default()
                }),
                StreamEvent::Done {
                    reason: Some("stop".into()),
                },
            ],
        );
    }

    proptest! {
        #[test]
        fn any_chunking_of_tool_calls_decodes_identically(
            cuts in proptest::collection::vec(0usize..TEXT_THEN_TOOLS.len(), 0..40)
        ) {
            let all = decode_all(&[TEXT_THEN_TOOLS.as_bytes()]).unwrap();
            let chunks = testing::chunks_at(TEXT_THEN_TOOLS.as_bytes(), cuts);
            prop_assert_eq!(decode_all(&chunks).unwrap(), all);
        }
    }

    #[test]
    fn arguments_already_as_text_or_absent_are_accepted() {
        let out = decode_all(&[concat!(
            "{\"message\":{\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}},",
            "{\"function\":{\"name\":\"g\"}}]},\"done\":false}\n"
        )
        .as_bytes()])
        .unwrap();
        assert_eq!(
            out,
            vec![whole(None, "f", "{\"a\":1}"), whole(None, "g", "{}")]
        );
    }

    #[test]
    fn malformed_tool_call_fields_name_the_field() {
        for (calls, want) in [
            (
                "{}",
                "message.tool_calls is an object, not an array of calls",
            ),
            ("[1]", "message.tool_calls[0] is a number, not an object"),
            ("[{}]", "message.tool_calls[0] has no function"),
            (
                "[{\"function\":[]}]",
                "message.tool_calls[0].function is an array, not an object",
            ),
            (
                "[{\"function\":{\"arguments\":{}}}]",
                "message.tool_calls[0].function has no name",
            ),
            (
                "[{\"function\":{\"name\":\"f\",\"arguments\":[1]}}]",
                "message.tool_calls[0].function.arguments is an array, not an object",
            ),
            (
                "[{\"id\":5,\"function\":{\"name\":\"f\"}}]",
                "message.tool_calls[0].id is a number, not a string",
            ),
        ] {
            let stream = format!(
                "{{\"message\":{{\"content\":\"a\"}},\"done\":false}}\n{{\"message\":{{\"content\":\"\",\"tool_calls\":{calls}}},\"done\":false}}\n"
            );
            let err = decode_all(&[stream.as_bytes()]).unwrap_err();
            assert_eq!(
                err,
                CodecError::MalformedToolCall {
                    line: 2,
                    reason: want.into()
                },
                "{calls}"
            );
        }
    }
}
