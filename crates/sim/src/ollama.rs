//! Ollama's API: NDJSON generation, and the model listing endpoints.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::{cap, int, tool_calls_text, tool_to_call, tools_text, GenerationRequest};
use crate::config::ModelProfile;
use crate::engine::{Timings, Wire};
use crate::model::{LoadKey, ModelSlot};
use crate::timestamp::rfc3339;

/// What `/api/version` reports.
pub const VERSION: &str = "0.0.0-chimeraforge-sim";

/// How long Ollama keeps an idle model by default (for `/api/ps`'s `expires_at`).
const KEEP_ALIVE: Duration = Duration::from_secs(300);

#[derive(Deserialize, Default)]
struct Options {
    #[serde(default, deserialize_with = "int")]
    num_ctx: Option<i64>,
    #[serde(default, deserialize_with = "int")]
    num_gpu: Option<i64>,
    #[serde(default, deserialize_with = "int")]
    num_predict: Option<i64>,
    #[serde(default, deserialize_with = "int")]
    seed: Option<i64>,
    #[serde(default)]
    sim_fault: Option<String>,
}

#[derive(Deserialize)]
struct GenerateRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    options: Option<Options>,
    #[serde(default)]
    sim_fault: Option<String>,
    /// `true`, `false` or a level (`"high"`); only `false` stops a reasoning model thinking.
    #[serde(default)]
    think: Option<serde_json::Value>,
}

/// A message of any role: `system`, `user`, `assistant` (with `tool_calls`, its content
/// may be empty or null), `tool` (a tool's result; its `tool_name` is not checked).
#[derive(Deserialize)]
struct ChatMessage {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    messages: Vec<ChatMessage>,
    #[serde(default)]
    tools: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    options: Option<Options>,
    #[serde(default)]
    sim_fault: Option<String>,
    /// `true`, `false` or a level (`"high"`); only `false` stops a reasoning model thinking.
    #[serde(default)]
    think: Option<serde_json::Value>,
}

fn request(
    model: String,
    prompt_parts: Vec<String>,
    stream: Option<bool>,
    options: Option<Options>,
    sim_fault: Option<String>,
    think: Option<serde_json::Value>,
    wire: OllamaWire,
) -> Result<GenerationRequest, String> {
    if model.is_empty() {
        return Err("model is required".to_string());
    }
    let options = options.unwrap_or_default();
    let load_only = prompt_parts.is_empty();
    Ok(GenerationRequest {
        wire: Arc::new(wire),
        model,
        prompt_parts,
        // Ollama streams unless told not to.
        stream: stream.unwrap_or(true),
        max_tokens: cap(options.num_predict),
        seed: options.seed,
        load_key: Some(LoadKey::new(options.num_ctx, options.num_gpu)),
        sim_fault: sim_fault.or(options.sim_fault),
        load_only,
        think: think != Some(serde_json::Value::Bool(false)),
    })
}

/// Parse a `POST /api/generate` body.
pub(crate) fn parse_generate(body: &[u8]) -> Result<GenerationRequest, String> {
    let r: GenerateRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut parts: Vec<String> = r.system.into_iter().collect();
    parts.push(r.prompt);
    // Ollama loads the model and returns at once when the prompt is empty.
    if parts.last().is_some_and(|p| p.is_empty()) {
        parts.clear();
    }
    let wire = OllamaWire::new(&r.model, false, None);
    request(
        r.model,
        parts,
        r.stream,
        r.options,
        r.sim_fault,
        r.think,
        wire,
    )
}

/// Parse a `POST /api/chat` body.
pub(crate) fn parse_chat(body: &[u8]) -> Result<GenerationRequest, String> {
    let r: ChatRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let tools = r.tools.unwrap_or_default();
    let tool = tool_to_call(&tools, r.messages.last().map(|m| m.role.as_str()))?;
    let mut parts = Vec::new();
    for m in r.messages {
        parts.push(m.content.unwrap_or_default());
        parts.extend(tool_calls_text(m.tool_calls.as_deref().unwrap_or_default()));
    }
    // Tools count as prompt, but a request of nothing but tools still only loads the model.
    if !parts.is_empty() {
        parts.splice(0..0, tools_text(&tools));
    }
    let wire = OllamaWire::new(&r.model, true, tool);
    request(
        r.model,
        parts,
        r.stream,
        r.options,
        r.sim_fault,
        r.think,
        wire,
    )
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct Final {
    done_reason: &'static str,
    total_duration: u64,
    load_duration: u64,
    prompt_eval_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_eval_cached_count: Option<u32>,
    prompt_eval_duration: u64,
    eval_count: u32,
    eval_duration: u64,
}

/// One NDJSON line of `/api/generate` (`response`) or `/api/chat` (`message`).
#[derive(Serialize)]
struct Line<'a> {
    model: &'a str,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<&'a str>,
    /// `/api/generate`'s reasoning text (chat puts it in `message.thinking`).
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<Message<'a>>,
    done: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    stats: Option<Final>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Ollama's NDJSON framing of one generation.
pub(crate) struct OllamaWire {
    model: String,
    chat: bool,
    /// The tool the model calls instead of answering in text (chat with `tools` only).
    tool: Option<ToolCallWire>,
}

/// A tool call made of the answer tokens, held back until complete (as Ollama's tool
/// parser does) and sent whole: `{"function": {"name", "arguments": {"query": <text>}}}`.
struct ToolCallWire {
    name: String,
    held: Mutex<String>,
}

impl ToolCallWire {
    fn calls(&self, query: &str) -> serde_json::Value {
        json!([{"function": {"name": self.name, "arguments": {"query": query}}}])
    }
}

impl OllamaWire {
    /// The framing of `/api/chat` (`chat`) or `/api/generate`, calling `tool` if set.
    fn new(model: &str, chat: bool, tool: Option<String>) -> Self {
        OllamaWire {
            model: model.to_string(),
            chat,
            tool: tool.map(|name| ToolCallWire {
                name,
                held: Mutex::new(String::new()),
            }),
        }
    }

    /// One line: answer `text`, and reasoning `thinking` when there is some.
    fn line(&self, text: &str, thinking: Option<&str>, stats: Option<Final>) -> Vec<u8> {
        self.line_with(text, thinking, None, stats)
    }

    /// One line, with `tool_calls` in its message (chat only).
    fn line_with(
        &self,
        text: &str,
        thinking: Option<&str>,
        tool_calls: Option<serde_json::Value>,
        stats: Option<Final>,
    ) -> Vec<u8> {
        let (response, message, thinking) = if self.chat {
            (
                None,
                Some(Message {
                    role: "assistant",
                    content: text,
                    thinking,
                    tool_calls,
                }),
                None,
            )
        } else {
            (Some(text), None, thinking)
        };
        let line = Line {
            model: &self.model,
            created_at: rfc3339(SystemTime::now()),
            response,
            thinking,
            message,
            done: stats.is_some(),
            stats,
        };
        let mut out = serde_json::to_vec(&line).expect("serializable line");
        out.push(b'\n');
        out
    }

    /// The reply to an empty-prompt request: the model is loaded, nothing generated.
    fn load_reply(&self) -> Vec<u8> {
        let mut value = if self.chat {
            json!({"model": self.model, "created_at": rfc3339(SystemTime::now()),
                   "message": {"role": "assistant", "content": ""}})
        } else {
            json!({"model": self.model, "created_at": rfc3339(SystemTime::now()), "response": ""})
        };
        value["done_reason"] = json!("load");
        value["done"] = json!(true);
        serde_json::to_vec(&value).expect("serializable reply")
    }
}

fn stats(t: &Timings) -> Final {
    Final {
        done_reason: t.done_reason.as_str(),
        total_duration: nanos(t.total),
        load_duration: nanos(t.load),
        prompt_eval_count: t.prompt_tokens,
        prompt_eval_cached_count: t.cached_tokens,
        prompt_eval_duration: nanos(t.prefill),
        eval_count: t.output_tokens,
        eval_duration: nanos(t.eval),
    }
}

impl Wire for OllamaWire {
    fn token(&self, _index: u32, last: bool, text: &str, reasoning: bool, out: &mut Vec<Bytes>) {
        if let (Some(tool), false) = (&self.tool, reasoning) {
            let mut held = tool.held.lock().expect("tool call lock");
            held.push_str(text);
            if last {
                let calls = tool.calls(&std::mem::take(&mut *held));
                out.push(self.line_with("", None, Some(calls), None).into());
            }
            return;
        }
        // A thought goes in `thinking` beside an empty answer, as Ollama streams it.
        let line = if reasoning {
            self.line("", Some(text), None)
        } else {
            self.line(text, None, None)
        };
        out.push(line.into());
    }

    fn finish(&self, timings: &Timings, out: &mut Vec<Bytes>) {
        out.push(self.line("", None, Some(stats(timings))).into());
    }

    fn error(&self, message: &str, out: &mut Vec<Bytes>) {
        let mut line = serde_json::to_vec(&json!({ "error": message })).expect("serializable");
        line.push(b'\n');
        out.push(line.into());
    }

    fn malformed(&self) -> Bytes {
        Bytes::from_static(b"{\"model\": not json (chimeraforge-sim fault malformed_line)\n")
    }

    fn whole(&self, text: &str, thinking: &str, timings: &Timings) -> Vec<u8> {
        let thinking = (!thinking.is_empty()).then_some(thinking);
        let mut body = match &self.tool {
            Some(tool) => {
                self.line_with("", thinking, Some(tool.calls(text)), Some(stats(timings)))
            }
            None => self.line(text, thinking, Some(stats(timings))),
        };
        body.pop();
        body
    }

    fn loaded(&self) -> Vec<u8> {
        self.load_reply()
    }
}

fn details(p: &ModelProfile) -> serde_json::Value {
    json!({
        "parent_model": "",
        "format": "gguf",
        "family": p.family,
        "families": [p.family],
        "parameter_size": p.parameter_size,
        "quantization_level": p.quantization_level,
    })
}

/// `GET /api/tags`: every served model.
pub(crate) fn tags(models: &[Arc<ModelSlot>], started: SystemTime) -> serde_json::Value {
    let models: Vec<_> = models
        .iter()
        .map(|m| {
            let p = &m.profile;
            json!({
                "name": p.name,
                "model": p.name,
                "modified_at": rfc3339(started),
                "size": p.size_bytes,
                "digest": p.digest,
                "details": details(p),
            })
        })
        .collect();
    json!({ "models": models })
}

/// `GET /api/ps`: the models loaded now, with the options they were loaded with.
pub(crate) fn ps(models: &[Arc<ModelSlot>]) -> serde_json::Value {
    let models: Vec<_> = models
        .iter()
        .filter_map(|m| {
            let (key, since) = m.resident()?;
            let p = &m.profile;
            Some(json!({
                "name": p.name,
                "model": p.name,
                "size": p.size_bytes,
                "digest": p.digest,
                "details": details(p),
                "expires_at": rfc3339(since.max(SystemTime::now()) + KEEP_ALIVE),
                "size_vram": p.size_bytes,
                "context_length": key.num_ctx,
            }))
        })
        .collect();
    json!({ "models": models })
}

#[derive(Deserialize)]
struct ShowRequest {
    #[serde(default)]
    model: String,
    /// The field's older name.
    #[serde(default)]
    name: String,
}

/// The model a `POST /api/show` body names.
pub(crate) fn parse_show(body: &[u8]) -> Result<String, String> {
    let r: ShowRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let model = if r.model.is_empty() { r.name } else { r.model };
    if model.is_empty() {
        return Err("model is required".to_string());
    }
    Ok(model)
}

/// `POST /api/show`: details and `model_info` with `<family>.block_count`.
pub(crate) fn show(m: &ModelSlot, started: SystemTime) -> serde_json::Value {
    let p = &m.profile;
    let mut info = serde_json::Map::new();
    info.insert("general.architecture".into(), json!(p.family));
    info.insert("general.name".into(), json!(p.name));
    info.insert(format!("{}.block_count", p.family), json!(p.block_count));
    info.insert(format!("{}.context_length", p.family), json!(131_072));
    json!({
        "license": "",
        "modelfile": format!("# simulated by chimeraforge-sim\nFROM {}\n", p.name),
        "parameters": "",
        "template": "{{ .Prompt }}",
        "details": details(p),
        "model_info": info,
        "capabilities": ["completion"],
        "modified_at": rfc3339(started),
    })
}
