//! The OpenAI-compatible API as vLLM and llama.cpp speak it: SSE generation, `/v1/models`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::{
    cap, int, json_string_body, tool_calls_text, tool_to_call, tools_text, GenerationRequest,
};
use crate::engine::{Timings, Wire};
use crate::model::ModelSlot;
use crate::timestamp::unix_seconds;

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The fields both generation endpoints share.
#[derive(Deserialize)]
struct Common {
    #[serde(default)]
    model: String,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default, deserialize_with = "int")]
    max_tokens: Option<i64>,
    #[serde(default, deserialize_with = "int")]
    max_completion_tokens: Option<i64>,
    #[serde(default, deserialize_with = "int")]
    seed: Option<i64>,
    #[serde(default)]
    sim_fault: Option<String>,
}

/// A message of any role: `system`, `user`, `assistant` (its `content` may be null beside
/// `tool_calls`), `tool` (a tool's result; its `tool_call_id` is not checked).
#[derive(Deserialize)]
struct ChatMessage {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: serde_json::Value,
    #[serde(default)]
    tool_calls: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(flatten)]
    common: Common,
    #[serde(default)]
    messages: Vec<ChatMessage>,
    #[serde(default)]
    tools: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct CompletionRequest {
    #[serde(flatten)]
    common: Common,
    #[serde(default)]
    prompt: serde_json::Value,
}

/// The text of a message `content` or a `prompt`: a string, or an array of strings / text parts.
fn text_of(value: serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::String(s) => vec![s],
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|item| match item {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Object(mut part) => match part.remove("text") {
                    Some(serde_json::Value::String(s)) => Some(s),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn request(
    common: Common,
    prompt_parts: Vec<String>,
    chat: bool,
    tool: Option<String>,
    id: u64,
) -> Result<GenerationRequest, String> {
    if common.model.is_empty() {
        return Err("you must provide a model parameter".to_string());
    }
    let include_usage = common.stream_options.unwrap_or_default().include_usage;
    let stream = common.stream.unwrap_or(false);
    Ok(GenerationRequest {
        wire: Arc::new(OpenAiWire {
            id: if chat {
                format!("chatcmpl-sim{id}")
            } else {
                format!("cmpl-sim{id}")
            },
            created: unix_seconds(SystemTime::now()),
            model: common.model.clone(),
            chat,
            include_usage,
            tool: tool.map(|name| ToolCallWire {
                name,
                id: format!("call_{:016x}", id.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                opened: AtomicBool::new(false),
            }),
        }),
        model: common.model,
        prompt_parts,
        stream,
        max_tokens: cap(common.max_tokens.or(common.max_completion_tokens)),
        seed: common.seed,
        // OpenAI-compatible servers take the model as it is loaded.
        load_key: None,
        sim_fault: common.sim_fault,
        load_only: false,
        // OpenAI-compatible servers have no switch that stops a reasoning model thinking.
        think: true,
    })
}

/// Parse a `POST /v1/chat/completions` body; `id` numbers the completion.
pub(crate) fn parse_chat(body: &[u8], id: u64) -> Result<GenerationRequest, String> {
    let r: ChatRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let tools = r.tools.unwrap_or_default();
    let tool = tool_to_call(&tools, r.messages.last().map(|m| m.role.as_str()))?;
    let mut parts = tools_text(&tools);
    for m in r.messages {
        parts.extend(text_of(m.content));
        parts.extend(tool_calls_text(m.tool_calls.as_deref().unwrap_or_default()));
    }
    request(r.common, parts, true, tool, id)
}

/// Parse a `POST /v1/completions` body; `id` numbers the completion.
pub(crate) fn parse_completion(body: &[u8], id: u64) -> Result<GenerationRequest, String> {
    let r: CompletionRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    request(r.common, text_of(r.prompt), false, None, id)
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    /// A thought, as llama.cpp (`--reasoning-format deepseek`) and vLLM stream it.
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

/// One fragment of a streamed tool call: the first has id, type and name, the others only
/// the index and a piece of the arguments.
#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct ChatChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    index: u32,
    text: &'a str,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Choice<'a> {
    Chat(ChatChoice<'a>),
    Text(TextChoice<'a>),
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
    /// Chat with reasoning only: how many of `completion_tokens` were thoughts.
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<CompletionDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Serialize)]
struct CompletionDetails {
    reasoning_tokens: u32,
}

#[derive(Serialize)]
struct PromptTokensDetails {
    cached_tokens: u32,
}

/// llama.cpp's `timings` object (milliseconds).
#[derive(Serialize)]
struct LlamaTimings {
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_n: Option<u32>,
    prompt_n: u32,
    prompt_ms: f64,
    prompt_per_second: f64,
    predicted_n: u32,
    predicted_ms: f64,
    predicted_per_second: f64,
}

#[derive(Serialize)]
struct StreamChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<Choice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timings: Option<LlamaTimings>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `n` per second over `d`, as llama.cpp computes it (0 when no time passed).
fn per_second(n: u32, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        f64::from(n) / d.as_secs_f64()
    }
}

/// `completion_tokens` counts the thoughts too, as OpenAI's usage does.
fn usage(t: &Timings, chat: bool) -> Usage {
    Usage {
        prompt_tokens: t.prompt_tokens,
        completion_tokens: t.output_tokens,
        total_tokens: t.prompt_tokens.saturating_add(t.output_tokens),
        completion_tokens_details: (chat && t.reasoning_tokens > 0).then_some(CompletionDetails {
            reasoning_tokens: t.reasoning_tokens,
        }),
        prompt_tokens_details: t
            .cached_tokens
            .map(|cached_tokens| PromptTokensDetails { cached_tokens }),
    }
}

fn timings(t: &Timings) -> LlamaTimings {
    // llama.cpp's `prompt_n` counts the evaluated tokens only, `cache_n` the cached ones.
    let evaluated = t.prompt_tokens - t.cached_tokens.unwrap_or(0).min(t.prompt_tokens);
    LlamaTimings {
        cache_n: t.cached_tokens,
        prompt_n: evaluated,
        prompt_ms: ms(t.prefill),
        prompt_per_second: per_second(evaluated, t.prefill),
        predicted_n: t.output_tokens,
        predicted_ms: ms(t.eval),
        // As llama.cpp (b11434) computes it: `predicted_ms` spans the n − 1 intervals after
        // the first token, and so does its rate (captured: 24 tokens, 2737.266 ms, 8.4025/s).
        predicted_per_second: per_second(t.output_tokens.saturating_sub(1), t.eval),
    }
}

fn event(value: &impl Serialize) -> Bytes {
    let mut out = b"data: ".to_vec();
    serde_json::to_writer(&mut out, value).expect("serializable event");
    out.extend_from_slice(b"\n\n");
    out.into()
}

const DONE: &[u8] = b"data: [DONE]\n\n";

/// The SSE framing of one chat or text completion.
pub(crate) struct OpenAiWire {
    id: String,
    created: u64,
    model: String,
    chat: bool,
    include_usage: bool,
    /// The tool the model calls instead of answering in text (chat with `tools` only).
    tool: Option<ToolCallWire>,
}

/// A tool call the answer tokens stream as: `{"query": "<the tokens>"}` in fragments.
struct ToolCallWire {
    name: String,
    id: String,
    /// The call's first fragment (id, type, name) has gone out.
    opened: AtomicBool,
}

/// The arguments fragment of answer token `text`: the whole is `{"query": "<text...>"}`.
fn arguments_fragment(first: bool, last: bool, text: &str) -> String {
    let open = if first { "{\"query\": \"" } else { "" };
    let close = if last { "\"}" } else { "" };
    format!("{open}{}{close}", json_string_body(text))
}

impl OpenAiWire {
    fn chunk<'a>(&'a self, choices: Vec<Choice<'a>>) -> StreamChunk<'a> {
        StreamChunk {
            id: &self.id,
            object: if self.chat {
                "chat.completion.chunk"
            } else {
                "text_completion"
            },
            created: self.created,
            model: &self.model,
            choices,
            usage: None,
            timings: None,
        }
    }

    fn choice<'a>(
        &self,
        role: Option<&'static str>,
        text: Option<&'a str>,
        finish: Option<&'static str>,
    ) -> Choice<'a> {
        self.choice_with(role, text, None, finish)
    }

    fn choice_with<'a>(
        &self,
        role: Option<&'static str>,
        text: Option<&'a str>,
        reasoning: Option<&'a str>,
        finish: Option<&'static str>,
    ) -> Choice<'a> {
        if self.chat {
            Choice::Chat(ChatChoice {
                index: 0,
                delta: Delta {
                    role,
                    content: text,
                    reasoning_content: reasoning,
                    tool_calls: None,
                },
                finish_reason: finish,
            })
        } else {
            Choice::Text(TextChoice {
                index: 0,
                text: text.unwrap_or(""),
                logprobs: None,
                finish_reason: finish,
            })
        }
    }
}

impl Wire for OpenAiWire {
    fn token(&self, index: u32, last: bool, text: &str, reasoning: bool, out: &mut Vec<Bytes>) {
        if let (Some(tool), false) = (&self.tool, reasoning) {
            return self.tool_token(tool, index, last, text, out);
        }
        if index == 0 && self.chat {
            // OpenAI and vLLM open a chat stream with the role and empty content.
            out.push(event(&self.chunk(vec![self.choice(
                Some("assistant"),
                Some(""),
                None,
            )])));
        }
        // A thought is `delta.reasoning_content` on chat; `/v1/completions` has no such
        // field, so there a thought is plain text, as a raw completion's would be.
        let choice = if reasoning && self.chat {
            self.choice_with(None, None, Some(text), None)
        } else {
            self.choice(None, Some(text), None)
        };
        out.push(event(&self.chunk(vec![choice])));
    }

    fn finish(&self, t: &Timings, out: &mut Vec<Bytes>) {
        let reason = Some(match self.tool {
            Some(_) => "tool_calls",
            None => t.done_reason.as_str(),
        });
        out.push(event(&self.chunk(vec![self.choice(None, None, reason)])));
        if self.include_usage {
            let mut last = self.chunk(Vec::new());
            last.usage = Some(usage(t, self.chat));
            last.timings = Some(timings(t));
            out.push(event(&last));
        }
        out.push(Bytes::from_static(DONE));
    }

    fn error(&self, message: &str, out: &mut Vec<Bytes>) {
        out.push(event(&json!({
            "error": { "message": message, "type": "server_error", "param": null, "code": 500 }
        })));
        out.push(Bytes::from_static(DONE));
    }

    fn malformed(&self) -> Bytes {
        Bytes::from_static(b"data: {\"id\": not json (chimeraforge-sim fault malformed_line)\n\n")
    }

    fn whole(&self, text: &str, thinking: &str, t: &Timings) -> Vec<u8> {
        let reason = match self.tool {
            Some(_) => "tool_calls",
            None => t.done_reason.as_str(),
        };
        let choice = if self.chat {
            let mut message = match &self.tool {
                Some(tool) => json!({"role": "assistant", "content": null, "tool_calls": [{
                    "id": tool.id, "type": "function", "function": {
                        "name": tool.name,
                        "arguments": arguments_fragment(true, true, text),
                    }
                }]}),
                None => json!({"role": "assistant", "content": text}),
            };
            if !thinking.is_empty() {
                message["reasoning_content"] = json!(thinking);
            }
            json!({"index": 0, "message": message, "finish_reason": reason})
        } else {
            json!({"index": 0, "text": format!("{thinking}{text}"), "logprobs": null, "finish_reason": reason})
        };
        let body = json!({
            "id": self.id,
            "object": if self.chat { "chat.completion" } else { "text_completion" },
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": usage(t, self.chat),
            "timings": timings(t),
        });
        serde_json::to_vec(&body).expect("serializable reply")
    }
}

impl OpenAiWire {
    /// Answer token `index` of a tool call: the call's first fragment (with the role when
    /// nothing came before) ahead of the first, then the token's arguments fragment.
    fn tool_token(
        &self,
        tool: &ToolCallWire,
        index: u32,
        last: bool,
        text: &str,
        out: &mut Vec<Bytes>,
    ) {
        let first = !tool.opened.swap(true, Ordering::Relaxed);
        let fragment =
            |id: Option<&str>, kind: Option<&'static str>, name: Option<&str>, arguments: &str| {
                let delta = Delta {
                    role: (first && index == 0 && id.is_some()).then_some("assistant"),
                    content: None,
                    reasoning_content: None,
                    tool_calls: Some([ToolCallDelta {
                        index: 0,
                        id,
                        kind,
                        function: FunctionDelta { name, arguments },
                    }]),
                };
                event(&self.chunk(vec![Choice::Chat(ChatChoice {
                    index: 0,
                    delta,
                    finish_reason: None,
                })]))
            };
        if first {
            out.push(fragment(
                Some(tool.id.as_str()),
                Some("function"),
                Some(tool.name.as_str()),
                "",
            ));
        }
        let arguments = arguments_fragment(first, last, text);
        out.push(fragment(None, None, None, &arguments));
    }
}

/// `GET /v1/models`.
pub(crate) fn models(models: &[Arc<ModelSlot>], started: SystemTime) -> serde_json::Value {
    let data: Vec<_> = models
        .iter()
        .map(|m| {
            json!({
                "id": m.profile.name,
                "object": "model",
                "created": unix_seconds(started),
                "owned_by": "chimeraforge-sim",
            })
        })
        .collect();
    json!({ "object": "list", "data": data })
}
