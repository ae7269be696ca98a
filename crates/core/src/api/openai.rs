//! OpenAI-compatible streaming (`/v1/chat/completions`, `/v1/completions`): server-sent
//! events whose `data:` payloads are JSON chunks, ended by `data: [DONE]`.
//!
//! Handles what vLLM, llama.cpp, SGLang and TGI send: comments (`: ping`), `event:`/`id:`
//! fields, multi-line `data:`, CRLF line ends, a usage chunk with empty `choices`, and
//! llama.cpp's `timings` object.

use super::lines::LineSplitter;
use super::tools::{json_type, optional_str};
use super::{CodecError, ServerStats, StreamEvent, ToolCallChunk};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
    timings: Option<Timings>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice {
    delta: Option<Delta>,
    text: Option<String>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
    /// llama.cpp (with a reasoning format), vLLM's reasoning parsers, DeepSeek.
    reasoning_content: Option<String>,
    /// The newer name (vLLM, OpenRouter); a server sending both sends one text twice.
    reasoning: Option<String>,
    /// Tool-call fragments, checked by [`tool_call_chunks`] (its errors name the field).
    tool_calls: Option<Value>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    completion_tokens_details: Option<CompletionDetails>,
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Timings {
    prompt_n: Option<u64>,
    prompt_ms: Option<f64>,
    predicted_n: Option<u64>,
    predicted_ms: Option<f64>,
    cache_n: Option<u64>,
    predicted_per_second: Option<f64>,
}

/// Sans-IO decoder for an OpenAI-style SSE stream.
#[derive(Debug)]
pub struct SseDecoder {
    lines: LineSplitter,
    data: Vec<u8>,
    has_data: bool,
    finished: bool,
    tool_indices: ToolIndices,
}

/// The `index` of tool-call fragments that come without one (the API requires it; a server
/// may still leave it out): a fragment with an id starts a call, one without continues the
/// last call.
#[derive(Debug, Default)]
struct ToolIndices {
    last: Option<u64>,
    next: u64,
}

impl ToolIndices {
    fn resolve(&mut self, index: Option<u64>, has_id: bool) -> u64 {
        let index = match (index, self.last) {
            (Some(i), _) => i,
            (None, Some(last)) if !has_id => last,
            (None, _) => self.next,
        };
        self.last = Some(index);
        self.next = self.next.max(index.saturating_add(1));
        index
    }
}

impl SseDecoder {
    pub fn new(max_line_bytes: usize) -> Self {
        SseDecoder {
            lines: LineSplitter::new(max_line_bytes),
            data: Vec::new(),
            has_data: false,
            finished: false,
            tool_indices: ToolIndices::default(),
        }
    }

    /// Feed body bytes, split anywhere; each complete event becomes zero or more events.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), CodecError> {
        let limit = self.max_event_bytes();
        let SseDecoder {
            lines,
            data,
            has_data,
            finished,
            tool_indices,
        } = self;
        lines.feed(chunk, |line, n| {
            if line.is_empty() {
                return dispatch(data, has_data, finished, tool_indices, n, out);
            }
            if line[0] == b':' {
                return Ok(());
            }
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (line, &b""[..]),
            };
            if field == b"data" {
                if *has_data {
                    data.push(b'\n');
                }
                if data.len() + value.len() > limit {
                    return Err(CodecError::LineTooLong { limit });
                }
                data.extend_from_slice(value);
                *has_data = true;
            }
            Ok(())
        })
    }

    /// End of body: an event not followed by a blank line is still dispatched.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), CodecError> {
        let rest = self.lines.take_rest();
        if !rest.is_empty() {
            self.feed(&rest, out)?;
            self.feed(b"\n", out)?;
        }
        let n = self.lines.line_number();
        dispatch(
            &mut self.data,
            &mut self.has_data,
            &mut self.finished,
            &mut self.tool_indices,
            n,
            out,
        )
    }

    /// One event may span several data lines; its joined payload is bounded like a line.
    fn max_event_bytes(&self) -> usize {
        self.lines.max_line_bytes()
    }
}

fn dispatch(
    data: &mut Vec<u8>,
    has_data: &mut bool,
    finished: &mut bool,
    tool_indices: &mut ToolIndices,
    line: u64,
    out: &mut Vec<StreamEvent>,
) -> Result<(), CodecError> {
    if !*has_data {
        return Ok(());
    }
    *has_data = false;
    let payload = std::mem::take(data);
    let text = std::str::from_utf8(&payload).map_err(|_| CodecError::InvalidUtf8 { line })?;
    let text = text.trim();
    if text == "[DONE]" {
        if !*finished {
            *finished = true;
            out.push(StreamEvent::Done { reason: None });
        }
        return Ok(());
    }
    let chunk: Chunk = serde_json::from_str(text).map_err(|e| CodecError::MalformedJson {
        line,
        reason: e.to_string(),
    })?;
    if let Some(err) = chunk.error {
        let msg = err
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| err.to_string());
        out.push(StreamEvent::ServerError(msg));
        return Ok(());
    }
    let mut finish_reason = None;
    for choice in chunk.choices {
        let (content, thought, tool_calls) = match choice.delta {
            Some(d) => (
                d.content,
                // The first non-empty of the two names (an empty one beside a full one is no thought).
                d.reasoning_content
                    .filter(|r| !r.is_empty())
                    .or(d.reasoning),
                d.tool_calls,
            ),
            None => (None, None, None),
        };
        if let Some(thought) = thought.filter(|t| !t.is_empty()) {
            out.push(StreamEvent::Reasoning(thought));
        }
        if let Some(piece) = content.or(choice.text) {
            out.push(StreamEvent::Text(piece));
        }
        if let Some(calls) = tool_calls {
            for chunk in tool_call_chunks(calls, tool_indices)
                .map_err(|reason| CodecError::MalformedToolCall { line, reason })?
            {
                out.push(StreamEvent::ToolCall(chunk));
            }
        }
        if choice.finish_reason.is_some() {
            finish_reason = choice.finish_reason;
        }
    }
    let mut stats = ServerStats::default();
    let mut has_stats = false;
    if let Some(u) = chunk.usage {
        stats.output_tokens = u.completion_tokens;
        stats.prompt_tokens = u.prompt_tokens;
        stats.reasoning_tokens = u.completion_tokens_details.and_then(|d| d.reasoning_tokens);
        stats.cached_prompt_tokens = u.prompt_tokens_details.and_then(|d| d.cached_tokens);
        has_stats = true;
    }
    if let Some(t) = chunk.timings {
        // `usage` counts every prompt token; llama.cpp's `prompt_n` only those evaluated
        // (not served from its prompt cache, `cache_n`), so `usage` wins where both are
        // present and `prompt_n + cache_n` is the prompt's length where it is not.
        stats.output_tokens = stats.output_tokens.or(t.predicted_n);
        let whole_prompt = t.prompt_n.map(|n| n + t.cache_n.unwrap_or(0));
        stats.prompt_tokens = stats.prompt_tokens.or(whole_prompt);
        stats.cached_prompt_tokens = stats.cached_prompt_tokens.or(t.cache_n);
        stats.eval_ms = t.predicted_ms;
        stats.prompt_eval_ms = t.prompt_ms;
        stats.reported_decode_tok_s = t.predicted_per_second;
        has_stats = true;
    }
    if let Some(reason) = &finish_reason {
        stats.done_reason = Some(reason.clone());
        has_stats = true;
    }
    if has_stats {
        out.push(StreamEvent::Stats(stats));
    }
    if let Some(reason) = finish_reason {
        if !*finished {
            *finished = true;
            out.push(StreamEvent::Done {
                reason: Some(reason),
            });
        }
    }
    Ok(())
}

/// The fragments of `delta.tool_calls` (`[{index, id?, type?, function: {name?, arguments?}}]`);
/// `Err` says which field is wrong and how.
fn tool_call_chunks(calls: Value, indices: &mut ToolIndices) -> Result<Vec<ToolCallChunk>, String> {
    let items = match calls {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => {
            return Err(format!(
                "delta.tool_calls is {}, not an array of call fragments",
                json_type(&other)
            ))
        }
    };
    let mut chunks = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("delta.tool_calls[{i}]");
        let Value::Object(call) = item else {
            return Err(format!("{at} is {}, not an object", json_type(&item)));
        };
        let index = match call.get("index") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| format!("{at}.index is {v}, not a non-negative integer"))?,
            ),
        };
        let id = optional_str(&call, "id", &format!("{at}.id"))?;
        let (name, arguments) = match call.get("function") {
            None | Some(Value::Null) => (None, None),
            Some(Value::Object(f)) => (
                optional_str(f, "name", &format!("{at}.function.name"))?,
                optional_str(f, "arguments", &format!("{at}.function.arguments")).map_err(|r| {
                    format!("{r} (the API streams the arguments as JSON text, in fragments)")
                })?,
            ),
            Some(other) => {
                return Err(format!(
                    "{at}.function is {}, not an object",
                    json_type(other)
                ))
            }
        };
        chunks.push(ToolCallChunk {
            index: Some(indices.resolve(index, id.as_deref().is_some_and(|s| !s.is_empty()))),
            id,
            name,
            arguments: arguments.unwrap_or_default(),
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
        ": keep-alive comment\r\n\r\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hé\"},\"finish_reason\":null}]}\r\n\r\n",
        "event: message\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\n",
        "data: \"delta\":{\"content\":\"llo 日本\"},\"finish_reason\":null}]}\n\n",
        "data:{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":2,\"total_tokens\":14},",
        "\"timings\":{\"prompt_n\":12,\"prompt_ms\":30.5,\"predicted_n\":2,\"predicted_ms\":20.0,\"predicted_per_second\":100.0}}\n\n",
        "data: [DONE]\n\n",
    );

    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<StreamEvent>, CodecError> {
        testing::decode_all(ApiKind::OpenaiChat, chunks)
    }

    fn expected() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Text("Hé".into()),
            StreamEvent::Text("llo 日本".into()),
            StreamEvent::Stats(ServerStats {
                done_reason: Some("length".into()),
                ..Default::default()
            }),
            StreamEvent::Done {
                reason: Some("length".into()),
            },
            StreamEvent::Stats(ServerStats {
                output_tokens: Some(2),
                prompt_tokens: Some(12),
                eval_ms: Some(20.0),
                prompt_eval_ms: Some(30.5),
                reported_decode_tok_s: Some(100.0),
                ..Default::default()
            }),
        ]
    }

    /// A llama.cpp usage chunk after a prompt-cache hit (shape as `llama-server` sends it):
    /// `usage.prompt_tokens` counts the whole prompt, `prompt_tokens_details.cached_tokens`
    /// and `timings.cache_n` the cached part, `timings.prompt_n` only what was evaluated.
    const CACHED: &str = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"completion_tokens\":32,\"prompt_tokens\":133,\"total_tokens\":165,",
        "\"prompt_tokens_details\":{\"cached_tokens\":128}},\"timings\":{\"cache_n\":128,\"prompt_n\":5,",
        "\"prompt_ms\":20.1,\"predicted_n\":32,\"predicted_ms\":1240.0,\"predicted_per_second\":25.0}}\n\n",
        "data: [DONE]\n\n",
    );

    fn cached_stats() -> ServerStats {
        ServerStats {
            output_tokens: Some(32),
            prompt_tokens: Some(133),
            eval_ms: Some(1240.0),
            prompt_eval_ms: Some(20.1),
            cached_prompt_tokens: Some(128),
            reported_decode_tok_s: Some(25.0),
            ..Default::default()
        }
    }

    #[test]
    fn cached_prompt_tokens_and_the_servers_own_rate_at_every_split() {
        testing::assert_every_split(
            ApiKind::OpenaiChat,
            CACHED.as_bytes(),
            &[
                StreamEvent::Text("a".into()),
                StreamEvent::Stats(cached_stats()),
                StreamEvent::Done { reason: None },
            ],
        );
        // llama.cpp's own rate, not 32 / 1.24 s = 25.8.
        assert_eq!(cached_stats().decode_tok_s(), Some(25.0));
    }

    #[test]
    fn timings_without_usage_count_the_whole_prompt_and_usage_alone_its_cached_part() {
        let timings_only = CACHED.replace(
            "\"usage\":{\"completion_tokens\":32,\"prompt_tokens\":133,\"total_tokens\":165,\"prompt_tokens_details\":{\"cached_tokens\":128}},",
            "",
        );
        assert_ne!(timings_only, CACHED);
        let usage_only = CACHED.replace(
            ",\"timings\":{\"cache_n\":128,\"prompt_n\":5,\"prompt_ms\":20.1,\"predicted_n\":32,\"predicted_ms\":1240.0,\"predicted_per_second\":25.0}",
            "",
        );
        assert_ne!(usage_only, CACHED);
        for (stream, want) in [
            (timings_only, cached_stats()),
            (
                usage_only,
                ServerStats {
                    output_tokens: Some(32),
                    prompt_tokens: Some(133),
                    cached_prompt_tokens: Some(128),
                    ..Default::default()
                },
            ),
        ] {
            testing::assert_every_split(
                ApiKind::OpenaiChat,
                stream.as_bytes(),
                &[
                    StreamEvent::Text("a".into()),
                    StreamEvent::Stats(want),
                    StreamEvent::Done { reason: None },
                ],
            );
        }
    }

    #[test]
    fn whole_every_two_way_split_and_byte_by_byte_decode_identically() {
        testing::assert_every_split(ApiKind::OpenaiChat, STREAM.as_bytes(), &expected());
    }

    proptest! {
        #[test]
        fn any_chunking_decodes_identically(cuts in proptest::collection::vec(0usize..STREAM.len(), 0..40)) {
            let chunks = testing::chunks_at(STREAM.as_bytes(), cuts);
            prop_assert_eq!(decode_all(&chunks).unwrap(), expected());
        }
    }

    /// A reasoning model on `/v1/chat/completions` as llama.cpp (`--reasoning-format`) and
    /// vLLM stream it: thoughts in `delta.reasoning_content` (`FIELD`), then the answer in
    /// `delta.content`; usage counts the thoughts in `completion_tokens_details`.
    const REASONING: &str = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"FIELD\":\"Ok\"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"FIELD\":\"ay, 日本\"},\"finish_reason\":null}]}\r\n\r\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hé\"},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8,",
        "\"completion_tokens_details\":{\"reasoning_tokens\":2}}}\n\n",
        "data: [DONE]\n\n",
    );

    fn reasoning_expected() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Reasoning("Ok".into()),
            StreamEvent::Reasoning("ay, 日本".into()),
            StreamEvent::Text("Hé".into()),
            StreamEvent::Stats(ServerStats {
                done_reason: Some("stop".into()),
                ..Default::default()
            }),
            StreamEvent::Done {
                reason: Some("stop".into()),
            },
            StreamEvent::Stats(ServerStats {
                output_tokens: Some(3),
                prompt_tokens: Some(5),
                reasoning_tokens: Some(2),
                ..Default::default()
            }),
        ]
    }

    #[test]
    fn reasoning_content_is_reasoning_on_every_split() {
        let stream = REASONING.replace("FIELD", "reasoning_content");
        testing::assert_every_split(
            ApiKind::OpenaiChat,
            stream.as_bytes(),
            &reasoning_expected(),
        );
    }

    #[test]
    fn reasoning_is_reasoning_on_every_split() {
        let stream = REASONING.replace("FIELD", "reasoning");
        testing::assert_every_split(
            ApiKind::OpenaiChat,
            stream.as_bytes(),
            &reasoning_expected(),
        );
    }

    #[test]
    fn both_reasoning_names_in_one_delta_are_one_thought() {
        let out = decode_all(&[
            b"data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"x\",\"reasoning\":\"x\"}}]}\n\n",
        ])
        .unwrap();
        assert_eq!(out, vec![StreamEvent::Reasoning("x".into())]);
        // An empty reasoning_content beside a full reasoning is no reason to drop the thought.
        let out = decode_all(&[
            b"data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"\",\"reasoning\":\"y\"}}]}\n\n",
        ])
        .unwrap();
        assert_eq!(out, vec![StreamEvent::Reasoning("y".into())]);
    }

    #[test]
    fn completions_text_field_is_text() {
        let out = decode_all(&[
            b"data: {\"choices\":[{\"text\":\"abc\",\"finish_reason\":null}]}\n\ndata: [DONE]\n\n",
        ])
        .unwrap();
        assert_eq!(
            out,
            vec![
                StreamEvent::Text("abc".into()),
                StreamEvent::Done { reason: None }
            ]
        );
    }

    #[test]
    fn error_event_is_a_server_error() {
        let out = decode_all(&[
            b"data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n",
        ])
        .unwrap();
        assert_eq!(out, vec![StreamEvent::ServerError("boom".into())]);
    }

    #[test]
    fn event_without_trailing_blank_line_is_dispatched_at_end() {
        let out = decode_all(&[b"data: {\"choices\":[{\"text\":\"a\"}]}"]).unwrap();
        assert_eq!(out, vec![StreamEvent::Text("a".into())]);
    }

    #[test]
    fn malformed_payload_is_reported() {
        let err = decode_all(&[b"data: {nope\n\n"]).unwrap_err();
        assert!(matches!(err, CodecError::MalformedJson { .. }), "{err:?}");
    }

    fn chunk(index: u64, id: Option<&str>, name: Option<&str>, args: &str) -> StreamEvent {
        StreamEvent::ToolCall(ToolCallChunk {
            index: Some(index),
            id: id.map(str::to_owned),
            name: name.map(str::to_owned),
            arguments: args.to_owned(),
        })
    }

    /// Two parallel tool calls as vLLM streams them: each call's first fragment has id,
    /// type and name with empty arguments, later fragments only `index` and an arguments
    /// piece, the two calls interleaved; then `finish_reason: "tool_calls"` and usage.
    const PARALLEL_TOOLS: &str = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_9f1\",\"type\":\"function\",\"index\":0,\"function\":{\"name\":\"web_search\",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"query\\\": \\\"日\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"call_a20\",\"type\":\"function\",\"index\":1,\"function\":{\"name\":\"fetch\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\r\n\r\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{\\\"url\\\": 1}\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"本\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":9,\"total_tokens\":49}}\n\n",
        "data: [DONE]\n\n",
    );

    fn tools_end(completion_tokens: u64, prompt_tokens: u64) -> Vec<StreamEvent> {
        vec![
            StreamEvent::Stats(ServerStats {
                done_reason: Some("tool_calls".into()),
                ..Default::default()
            }),
            StreamEvent::Done {
                reason: Some("tool_calls".into()),
            },
            StreamEvent::Stats(ServerStats {
                output_tokens: Some(completion_tokens),
                prompt_tokens: Some(prompt_tokens),
                ..Default::default()
            }),
        ]
    }

    #[test]
    fn parallel_tool_calls_interleaved_by_index_at_every_split() {
        let mut expected = vec![
            chunk(0, Some("call_9f1"), Some("web_search"), ""),
            chunk(0, None, None, "{\"query\": \"日"),
            chunk(1, Some("call_a20"), Some("fetch"), ""),
            chunk(1, None, None, "{\"url\": 1}"),
            chunk(0, None, None, "本\"}"),
            StreamEvent::Text(String::new()),
        ];
        expected.extend(tools_end(9, 40));
        testing::assert_every_split(ApiKind::OpenaiChat, PARALLEL_TOOLS.as_bytes(), &expected);
        let mut calls = crate::api::ToolCallAssembly::default();
        for ev in expected {
            if let StreamEvent::ToolCall(c) = ev {
                calls.push(c);
            }
        }
        let calls = calls.into_calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (calls[0].id.as_str(), calls[0].name.as_str()),
            ("call_9f1", "web_search")
        );
        assert_eq!(calls[0].arguments, "{\"query\": \"日本\"}");
        assert_eq!(
            (calls[1].id.as_str(), calls[1].arguments.as_str()),
            ("call_a20", "{\"url\": 1}")
        );
    }

    /// A model that says something first and then calls a tool (llama.cpp's shape: the
    /// call's first fragment has the name, then arguments pieces).
    const TEXT_THEN_TOOL: &str = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Let me \"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"look.\"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"abc\",\"type\":\"function\",\"function\":{\"name\":\"web_search\",\"arguments\":\"{\\\"query\\\":\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"x\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":4,\"total_tokens\":11}}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn text_then_a_tool_call_at_every_split() {
        let mut expected = vec![
            StreamEvent::Text("Let me ".into()),
            StreamEvent::Text("look.".into()),
            chunk(0, Some("abc"), Some("web_search"), "{\"query\":"),
            chunk(0, None, None, "\"x\"}"),
        ];
        expected.extend(tools_end(4, 7));
        testing::assert_every_split(ApiKind::OpenaiChat, TEXT_THEN_TOOL.as_bytes(), &expected);
    }

    proptest! {
        #[test]
        fn any_chunking_of_parallel_tool_calls_decodes_identically(
            cuts in proptest::collection::vec(0usize..PARALLEL_TOOLS.len(), 0..40)
        ) {
            let whole = decode_all(&[PARALLEL_TOOLS.as_bytes()]).unwrap();
            let chunks = testing::chunks_at(PARALLEL_TOOLS.as_bytes(), cuts);
            prop_assert_eq!(decode_all(&chunks).unwrap(), whole);
        }
    }

    #[test]
    fn fragments_without_an_index_start_a_call_with_an_id_and_continue_the_last_without() {
        let out = decode_all(&[concat!(
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"b\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n",
        )
        .as_bytes()])
        .unwrap();
        assert_eq!(
            out,
            vec![
                chunk(0, Some("a"), Some("f"), "{"),
                chunk(0, None, None, "}"),
                chunk(1, Some("b"), Some("g"), "{}"),
            ]
        );
    }

    #[test]
    fn malformed_tool_call_fields_name_the_field() {
        for (delta, want) in [
            (
                "{\"tool_calls\":{\"index\":0}}",
                "delta.tool_calls is an object, not an array",
            ),
            ("{\"tool_calls\":[7]}", "delta.tool_calls[0] is a number"),
            (
                "{\"tool_calls\":[{\"index\":-1}]}",
                "delta.tool_calls[0].index is -1, not a non-negative integer",
            ),
            (
                "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":{\"q\":1}}}]}",
                "delta.tool_calls[0].function.arguments is an object, not a string (the API streams",
            ),
            (
                "{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":3}}]}",
                "delta.tool_calls[0].function.name is a number, not a string",
            ),
            (
                "{\"tool_calls\":[{\"index\":0,\"function\":\"f\"}]}",
                "delta.tool_calls[0].function is a string, not an object",
            ),
        ] {
            let stream = format!(
                "data: {{\"choices\":[{{\"delta\":{{\"content\":\"a\"}}}}]}}\n\ndata: {{\"choices\":[{{\"delta\":{delta}}}]}}\n\n"
            );
            let err = decode_all(&[stream.as_bytes()]).unwrap_err();
            match &err {
                CodecError::MalformedToolCall { line: 4, reason } => {
                    assert!(reason.contains(want), "{reason}")
                }
                other => panic!("{delta}: {other:?}"),
            }
            assert!(err.to_string().starts_with("malformed tool call at line 4: "));
        }
    }
}
