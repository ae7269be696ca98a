//! What is sent: agents, their calls, model options and the report's scenarios.

use crate::api::{ApiKind, ToolCall};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Ollama model options (`options` in `/api/chat`). `None` means "server default".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ModelOptions {
    /// Layers offloaded to the GPU (Ollama only; a launch setting elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_gpu: Option<u32>,
    /// Context window, tokens (Ollama only; a launch setting elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_ctx: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat_penalty: Option<f64>,
    /// Maximum output tokens (`max_tokens` on OpenAI-compatible servers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_predict: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Reasoning models: whether (and how hard) to think. Sent as Ollama's top-level
    /// `think` (not in `options`), as `reasoning_effort` on OpenAI chat when it is a level;
    /// nothing else (see [`ModelOptions::think_not_sent`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<Think>,
}

/// The `think` option: `true`/`false`, or an effort level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Think {
    On(bool),
    Effort(Effort),
}

/// A reasoning effort level (`"low"`, `"medium"`, `"high"`), as OpenAI's `reasoning_effort`
/// and Ollama's `think` for models that take levels (gpt-oss) spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    Low,
    Medium,
    High,
}

impl Effort {
    pub fn name(self) -> &'static str {
        match self {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        }
    }
}

impl Serialize for Think {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Think::On(b) => s.serialize_bool(*b),
            Think::Effort(e) => s.serialize_str(e.name()),
        }
    }
}

impl<'de> Deserialize<'de> for Think {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Think;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("think = true, false, \"low\", \"medium\" or \"high\"")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Think, E> {
                Ok(Think::On(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Think, E> {
                match v {
                    "low" => Ok(Think::Effort(Effort::Low)),
                    "medium" => Ok(Think::Effort(Effort::Medium)),
                    "high" => Ok(Think::Effort(Effort::High)),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Think {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Think".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "true, false, or an effort level",
            "anyOf": [{"type": "boolean"}, generator.subschema_for::<Effort>()]
        })
    }
}

impl ModelOptions {
    /// The report's "Chimera-optimized" setting: num_gpu=80, num_ctx=512, temperature=1.0.
    pub fn chimera() -> Self {
        ModelOptions {
            num_gpu: Some(80),
            num_ctx: Some(512),
            temperature: Some(1.0),
            ..Default::default()
        }
    }

    /// The second tuned setting of `chimera-hetero`: num_gpu=100, num_ctx=1024,
    /// temperature=1.0 (the report does not define it; see docs/methodology.md).
    pub fn chimera_alt() -> Self {
        ModelOptions {
            num_gpu: Some(100),
            num_ctx: Some(1024),
            temperature: Some(1.0),
            ..Default::default()
        }
    }

    /// `self` with every field that `over` sets replaced by `over`'s value.
    pub fn overlay(&self, over: &ModelOptions) -> ModelOptions {
        ModelOptions {
            num_gpu: over.num_gpu.or(self.num_gpu),
            num_ctx: over.num_ctx.or(self.num_ctx),
            temperature: over.temperature.or(self.temperature),
            top_p: over.top_p.or(self.top_p),
            top_k: over.top_k.or(self.top_k),
            repeat_penalty: over.repeat_penalty.or(self.repeat_penalty),
            num_predict: over.num_predict.or(self.num_predict),
            seed: over.seed.or(self.seed),
            think: over.think.or(self.think),
        }
    }

    /// Why `think` (when set) is not sent to `api`, if it is not: the request has no field
    /// for it there.
    pub fn think_not_sent(&self, api: ApiKind) -> Option<&'static str> {
        match (self.think?, api) {
            (_, ApiKind::Ollama | ApiKind::OllamaGenerate) => None,
            (_, ApiKind::OpenaiCompletions) => Some(
                "/v1/completions has no reasoning option (and streams no separate reasoning: a reasoning model's thoughts arrive as answer text there)",
            ),
            (Think::On(_), ApiKind::OpenaiChat) => Some(
                "OpenAI-compatible chat takes an effort level (reasoning_effort), not true/false",
            ),
            (Think::Effort(_), ApiKind::OpenaiChat) => None,
        }
    }

    /// Options that have no OpenAI-compatible request equivalent (server launch settings).
    pub fn not_applicable_to_openai(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.num_gpu.is_some() {
            v.push("num_gpu");
        }
        if self.num_ctx.is_some() {
            v.push("num_ctx");
        }
        if self.top_k.is_some() {
            v.push("top_k");
        }
        if self.repeat_penalty.is_some() {
            v.push("repeat_penalty");
        }
        v
    }
}

/// A server the agents talk to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Endpoint {
    pub name: String,
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:11434`.
    pub base_url: String,
    pub api: ApiKind,
    /// Environment variable holding an API key. The key itself is never written anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// https only: a PEM file of CA certificates trusted for this endpoint besides the
    /// client's usual roots (config `ca_file`, made absolute when the config is read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    /// https only: accept any certificate, nothing verified (config `tls_insecure`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls_insecure: bool,
}

impl Endpoint {
    /// How a client checks this endpoint's certificate.
    pub fn tls(&self) -> crate::http::TlsTrust {
        crate::http::TlsTrust {
            endpoint: self.name.clone(),
            ca_file: self.ca_file.clone(),
            insecure: self.tls_insecure,
        }
    }
}

/// One call an agent makes. `{previous}` in the prompt is replaced by the text the
/// agent's previous call returned (the seed's report call quotes its analysis call).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    pub name: String,
    pub prompt: String,
    /// A tool step after this call: the request offers the tool, the agent waits its latency,
    /// and the next call sends the result back (see [`ToolStep`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolStep>,
}

/// A tool the model is offered in a call, and the latency the agent waits for its result
/// before its next call (config `tool = { name = "web_search", latency_ms = 200 }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ToolStep {
    /// The function's name as offered to the model.
    pub name: String,
    pub latency_ms: Latency,
    /// Whether the request offers the tool through the API's `tools` (config `offer`, default
    /// true). `false`: a prompt-driven tool (the agent decides to run it, as ReAct-style
    /// agents do with models or servers without tool calling, e.g. llama.cpp without
    /// `--jinja`): no `tools` in the request, the result goes back as a user message.
    #[serde(default = "offered", skip_serializing_if = "is_offered")]
    pub offer: bool,
}

fn offered() -> bool {
    true
}

fn is_offered(offer: &bool) -> bool {
    *offer
}

/// A tool step's latency, ms: fixed, or uniform between `min` and `max` (drawn once per run,
/// agent and call, so both measured phases wait the same; see [`Latency::draw`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum Latency {
    Fixed(f64),
    Uniform { min: f64, max: f64 },
}

impl Latency {
    /// The latency of the tool step after call `call` of agent `agent_id` in run `run_index`,
    /// ms, drawn from `seed` (the agent's seed): a pure function of its arguments, mirrored by
    /// python's `workload.draw_latency_ms`.
    pub fn draw(&self, seed: u64, run_index: u32, agent_id: &str, call: usize) -> f64 {
        match *self {
            Latency::Fixed(ms) => ms,
            Latency::Uniform { min, max } => {
                let key =
                    seed ^ fnv1a(agent_id.as_bytes()) ^ (u64::from(run_index) << 32) ^ call as u64;
                // The top 53 bits as a fraction in [0, 1).
                let u = (splitmix64(key) >> 11) as f64 / (1u64 << 53) as f64;
                min + (max - min) * u
            }
        }
    }
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64's output function: a well-mixed u64 from any u64.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The text a tool step returns to the model: fixed and deterministic (the benchmark measures
/// the wait and the longer prompt, not a tool), the same for every call of tool `name`.
pub fn tool_result(name: &str) -> String {
    format!(
        "{name} found 3 results. 1. Independent requests overlap on a batching server. \
         2. A serial device runs one request at a time. 3. The longest chain of dependent \
         steps bounds how fast a graph of agents can finish."
    )
}

/// What one earlier call of an agent returned: its answer text and the tool calls it made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Turn {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
}

/// What a call's body depends on besides the agent itself: the agent's earlier turns in this
/// phase (`turns[j]`: call j) and the final answers of the agents it runs after (by id).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    pub turns: Vec<Turn>,
    pub outputs: Vec<(String, String)>,
}

impl Transcript {
    /// A transcript where the call before `index` answered `previous` (and no agent's output
    /// is known): all that an agent without tool steps, history or `{output:ID}` needs.
    pub fn with_previous(index: usize, previous: &str) -> Transcript {
        let mut turns = vec![Turn::default(); index];
        if let Some(last) = turns.last_mut() {
            last.text = previous.to_owned();
        }
        Transcript {
            turns,
            outputs: Vec::new(),
        }
    }
}

/// An agent as run in one cell: everything needed to build its requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Agent {
    pub id: String,
    pub label: String,
    pub system: String,
    pub model: String,
    pub endpoint: Endpoint,
    pub options: ModelOptions,
    pub calls: Vec<CallSpec>,
    /// Ids of the agents this one starts after (config `after`): it starts when all of them
    /// finished, in both measured phases. Empty: it starts at the phase's start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Config `history`: each call sends the agent's previous turns as chat messages, so
    /// the prompt grows call by call.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub history: bool,
}

/// Whether one invocation's measured prompts may be served from a server's prompt cache
/// filled by another invocation (config key `prompt_cache`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum PromptCache {
    /// Every measured prompt starts with a nonce drawn per invocation, so no invocation's
    /// prompts are in a server's cache when it starts (the default).
    #[default]
    Isolate,
    /// No nonce: a config run twice sends the same prompts, and a long-running server may
    /// answer the second invocation from its prompt cache (measuring warm caches on purpose).
    Allow,
}

impl PromptCache {
    pub fn name(self) -> &'static str {
        match self {
            PromptCache::Isolate => "isolate",
            PromptCache::Allow => "allow",
        }
    }
}

/// Hex digits of a prompt nonce: every invocation's nonce has this length, so prompts keep
/// their length (and token count, to within the tokenizer's split of the digits) from one
/// invocation to the next.
pub const NONCE_HEX_DIGITS: usize = 16;

/// A fresh per-invocation prompt nonce: [`NONCE_HEX_DIGITS`] lowercase hex digits from the
/// clock, the process id and the standard library's per-process random hash keys.
pub fn prompt_nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    h.write_u128(now);
    h.write_u32(std::process::id());
    format!("{:0width$x}", h.finish(), width = NONCE_HEX_DIGITS)
}

/// The placeholder in a call's prompt replaced by the previous call's output.
pub const PREVIOUS: &str = "{previous}";

/// `{output:ID}` in a call's prompt is replaced by agent ID's final answer (the text its last
/// call returned); ID must be in the agent's `after`.
pub const OUTPUT_OPEN: &str = "{output:";

/// The agent ids `{output:ID}` placeholders of `prompt` name, in order (each once).
pub fn output_placeholders(prompt: &str) -> Vec<&str> {
    let mut ids: Vec<&str> = Vec::new();
    let mut rest = prompt;
    while let Some(at) = rest.find(OUTPUT_OPEN) {
        let tail = &rest[at + OUTPUT_OPEN.len()..];
        let Some(end) = tail.find('}') else { break };
        let id = &tail[..end];
        if !ids.contains(&id) {
            ids.push(id);
        }
        rest = &tail[end + 1..];
    }
    ids
}

impl Agent {
    /// This agent with `[tag] ` at the very start of what it sends (its system prompt, or
    /// each call's prompt when it has none). The run protocol tags every phase differently
    /// (`run 3 sequential`, `run 3 concurrent`, `run 3 warmup`), so a server's prompt
    /// (prefix) cache never lets the phase that runs second skip work the first one did.
    pub fn tagged(&self, tag: &str) -> Agent {
        let mut a = self.clone();
        if a.system.is_empty() {
            for c in &mut a.calls {
                c.prompt = format!("[{tag}] {}", c.prompt);
            }
        } else {
            a.system = format!("[{tag}] {}", a.system);
        }
        a
    }

    /// The request body of call `index`, given the previous call's output (see
    /// [`Transcript::with_previous`]).
    pub fn request_body(&self, index: usize, previous: &str) -> Vec<u8> {
        self.call_body(index, &Transcript::with_previous(index, previous))
    }

    /// Call `index`'s prompt as sent: `{previous}` is the previous call's text, `{output:ID}`
    /// agent ID's answer where `transcript` knows it.
    pub fn prompt(&self, index: usize, transcript: &Transcript) -> String {
        let previous = match index {
            0 => "",
            i => transcript.turns.get(i - 1).map_or("", |t| t.text.as_str()),
        };
        let mut prompt = self.calls[index].prompt.replace(PREVIOUS, previous);
        for (id, text) in &transcript.outputs {
            prompt = prompt.replace(&format!("{OUTPUT_OPEN}{id}}}"), text);
        }
        prompt
    }

    /// The request body of call `index` after the turns in `transcript`: the one function the
    /// protocol sends and a record's bodies are rebuilt with.
    ///
    /// Chat messages: the system prompt; with `history`, every earlier call's (user, assistant)
    /// pair, else the previous call's pair only when that call had a tool step; each pair of a
    /// call with a tool step followed by the tool's result; then this call's prompt. A call
    /// with a tool step offers its tool (`tools`).
    pub fn call_body(&self, index: usize, transcript: &Transcript) -> Vec<u8> {
        let api = self.endpoint.api;
        let earlier: Vec<usize> = if self.history {
            (0..index).collect()
        } else if index > 0 && self.calls[index - 1].tool.is_some() {
            vec![index - 1]
        } else {
            Vec::new()
        };
        let mut messages = Vec::new();
        for j in earlier {
            let turn = transcript.turns.get(j).cloned().unwrap_or_default();
            messages.push(Message::User(self.prompt(j, transcript)));
            let tool = self.calls[j].tool.as_ref();
            messages.push(Message::Assistant(turn.clone()));
            if let Some(tool) = tool {
                let result = tool_result(&tool.name);
                if turn.tool_calls.is_empty() {
                    messages.push(Message::User(format!("Result of {}: {result}", tool.name)));
                } else {
                    for call in &turn.tool_calls {
                        messages.push(Message::Tool {
                            call: call.clone(),
                            result: result.clone(),
                        });
                    }
                }
            }
        }
        messages.push(Message::User(self.prompt(index, transcript)));
        chat_body(
            api,
            &self.model,
            &self.system,
            &messages,
            self.calls[index].tool.as_ref().filter(|t| t.offer),
            &self.options,
        )
    }

    /// Full URL of the streaming endpoint.
    pub fn url(&self) -> String {
        format!(
            "{}{}",
            self.endpoint.base_url.trim_end_matches('/'),
            self.endpoint.api.path()
        )
    }
}

/// One chat message after the system prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    User(String),
    /// An earlier answer as the server returned it: its tool calls when it made any, else
    /// its text.
    Assistant(Turn),
    /// A tool's result for one tool call.
    Tool {
        call: ToolCall,
        result: String,
    },
}

/// JSON body of a streaming generation request for `api`.
pub fn request_body(
    api: ApiKind,
    model: &str,
    system: &str,
    prompt: &str,
    options: &ModelOptions,
) -> Vec<u8> {
    chat_body(
        api,
        model,
        system,
        &[Message::User(prompt.to_owned())],
        None,
        options,
    )
}

/// The `tools` array offering `tool`: one function taking one string parameter, `query`.
fn tools_json(tool: &ToolStep) -> serde_json::Value {
    serde_json::json!([{
        "type": "function",
        "function": {
            "name": tool.name,
            "description": format!("Call {} with a query; it returns a short text result.", tool.name),
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "What to look up."}},
                "required": ["query"],
            },
        },
    }])
}

/// A message as `api` spells it (chat APIs only; tool calls in each API's shape).
fn message_json(api: ApiKind, m: &Message) -> serde_json::Value {
    use serde_json::{json, Value};
    match m {
        Message::User(text) => json!({"role": "user", "content": text}),
        Message::Assistant(turn) if turn.tool_calls.is_empty() => {
            json!({"role": "assistant", "content": turn.text})
        }
        Message::Assistant(turn) => {
            let calls: Vec<Value> = turn
                .tool_calls
                .iter()
                .map(|c| match api {
                    // Ollama takes the arguments as an object.
                    ApiKind::Ollama | ApiKind::OllamaGenerate => json!({
                        "function": {
                            "name": c.name,
                            "arguments": serde_json::from_str::<Value>(&c.arguments)
                                .unwrap_or_else(|_| json!(c.arguments)),
                        },
                    }),
                    _ => json!({
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }),
                })
                .collect();
            json!({"role": "assistant", "content": turn.text, "tool_calls": calls})
        }
        Message::Tool { call, result } => match api {
            ApiKind::Ollama | ApiKind::OllamaGenerate => {
                json!({"role": "tool", "content": result, "tool_name": call.name})
            }
            _ => json!({"role": "tool", "content": result, "tool_call_id": call.id}),
        },
    }
}

/// JSON body of a streaming generation request for `api` with `messages` after the system
/// prompt, offering `tool` when given. Generate and completions endpoints take one prompt:
/// the last message's text (config rejects tool steps and history there).
pub fn chat_body(
    api: ApiKind,
    model: &str,
    system: &str,
    messages: &[Message],
    tool: Option<&ToolStep>,
    options: &ModelOptions,
) -> Vec<u8> {
    use serde_json::{json, Map, Value};
    let prompt = match messages.last() {
        Some(Message::User(p)) => p.as_str(),
        _ => "",
    };
    let messages = || {
        let mut m = Vec::new();
        if !system.is_empty() {
            m.push(json!({"role": "system", "content": system}));
        }
        m.extend(messages.iter().map(|x| message_json(api, x)));
        Value::Array(m)
    };
    // Ollama takes `think` beside `options`, not in them.
    let ollama_options = ModelOptions {
        think: None,
        ..options.clone()
    };
    let mut body = match api {
        ApiKind::Ollama => json!({
            "model": model, "messages": messages(), "stream": true, "options": ollama_options,
        }),
        ApiKind::OllamaGenerate => {
            let mut b = json!({"model": model, "prompt": prompt, "stream": true, "options": ollama_options});
            if !system.is_empty() {
                b["system"] = json!(system);
            }
            b
        }
        ApiKind::OpenaiChat | ApiKind::OpenaiCompletions => {
            let mut b = Map::new();
            b.insert("model".into(), json!(model));
            if api == ApiKind::OpenaiChat {
                b.insert("messages".into(), messages());
            } else {
                let full = if system.is_empty() {
                    prompt.to_owned()
                } else {
                    format!("{system}\n\n{prompt}")
                };
                b.insert("prompt".into(), json!(full));
            }
            b.insert("stream".into(), json!(true));
            b.insert("stream_options".into(), json!({"include_usage": true}));
            if let Some(v) = options.num_predict {
                b.insert("max_tokens".into(), json!(v));
            }
            if let Some(v) = options.temperature {
                b.insert("temperature".into(), json!(v));
            }
            if let Some(v) = options.top_p {
                b.insert("top_p".into(), json!(v));
            }
            if let Some(v) = options.seed {
                b.insert("seed".into(), json!(v));
            }
            Value::Object(b)
        }
    };
    if let (Some(tool), ApiKind::Ollama | ApiKind::OpenaiChat) = (tool, api) {
        body["tools"] = tools_json(tool);
    }
    match (options.think, api) {
        (Some(t), ApiKind::Ollama | ApiKind::OllamaGenerate) => body["think"] = json!(t),
        (Some(Think::Effort(e)), ApiKind::OpenaiChat) => body["reasoning_effort"] = json!(e.name()),
        _ => {}
    }
    serde_json::to_vec(&body).expect("a JSON value always serializes")
}

/// The report's scenarios: which options each agent runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Agent 0 on server defaults, every other agent Chimera-optimized.
    BaselineVsChimera,
    /// Every agent tuned, with two different settings alternating (even: chimera, odd: chimera-alt).
    ChimeraHetero,
    /// Every agent with the same Chimera-optimized options.
    ChimeraHomo,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [
        Scenario::BaselineVsChimera,
        Scenario::ChimeraHetero,
        Scenario::ChimeraHomo,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::BaselineVsChimera => "baseline-vs-chimera",
            Scenario::ChimeraHetero => "chimera-hetero",
            Scenario::ChimeraHomo => "chimera-homo",
        }
    }

    /// Options this scenario gives agent `index` (before per-agent overrides).
    pub fn options_for(self, index: usize) -> ModelOptions {
        match self {
            Scenario::BaselineVsChimera if index == 0 => ModelOptions::default(),
            Scenario::ChimeraHetero if index % 2 == 1 => ModelOptions::chimera_alt(),
            _ => ModelOptions::chimera(),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scenario name that is not one of the report's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "unknown scenario {0:?}; expected one of: baseline-vs-chimera, chimera-hetero, chimera-homo"
)]
pub struct UnknownScenario(pub String);

impl FromStr for Scenario {
    type Err = UnknownScenario;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name() == s)
            .ok_or_else(|| UnknownScenario(s.to_owned()))
    }
}

/// An agent as configured, before a cell fixes its model and scenario options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentTemplate {
    pub id: String,
    pub label: String,
    pub system: String,
    pub endpoint: Endpoint,
    /// Explicit options for this agent, applied over the scenario's.
    pub options: ModelOptions,
    pub calls: Vec<CallSpec>,
    /// See [`Agent::after`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// See [`Agent::history`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub history: bool,
}

impl AgentTemplate {
    /// The agent as it runs with `model` in `scenario` as agent number `index`, with
    /// `base` options (fixed max tokens, seed) under the scenario's.
    pub fn instantiate(
        &self,
        model: &str,
        scenario: Scenario,
        index: usize,
        base: &ModelOptions,
    ) -> Agent {
        Agent {
            id: self.id.clone(),
            label: self.label.clone(),
            system: self.system.clone(),
            model: model.to_owned(),
            endpoint: self.endpoint.clone(),
            options: base
                .overlay(&scenario.options_for(index))
                .overlay(&self.options),
            calls: self.calls.clone(),
            after: self.after.clone(),
            history: self.history,
        }
    }
}

/// `templates` replicated round-robin to `n` agents: agent `i` is template `i % len` with id
/// `{id}-{i}`, seed `base_seed + i` (base: the template's own seed, else `base_seed`, else 0)
/// and endpoint `endpoints[i % len]`, so N agents spread over every configured server.
/// Empty `templates` or `endpoints` give no agents.
pub fn replicate(
    templates: &[AgentTemplate],
    n: usize,
    endpoints: &[Endpoint],
    base_seed: Option<u64>,
) -> Vec<AgentTemplate> {
    if templates.is_empty() || endpoints.is_empty() {
        return Vec::new();
    }
    (0..n)
        .map(|i| {
            let t = &templates[i % templates.len()];
            let mut a = t.clone();
            a.id = format!("{}-{i}", t.id);
            a.label = format!("{}-{i}", t.label);
            a.endpoint = endpoints[i % endpoints.len()].clone();
            let base = t.options.seed.or(base_seed).unwrap_or(0);
            a.options.seed = Some(base.wrapping_add(i as u64));
            a
        })
        .collect()
}

/// The agents a config without `[[agents]]` runs: the two of the original ("seed") report, a
/// data collector and an insight agent, two calls each (an analysis call, then a report call
/// quoting what the analysis returned). Named "built-in" so that "seed" in this code base
/// always means a random seed.
pub fn builtin_agents(endpoints: &[Endpoint]) -> Vec<AgentTemplate> {
    let ep = |i: usize| endpoints[i % endpoints.len()].clone();
    vec![
        AgentTemplate {
            id: "collector".into(),
            label: "DataCollector".into(),
            system: "You are DataCollector, a concise telemetry analyst. You gather benchmark \
                     measurements and state them as facts with numbers."
                .into(),
            endpoint: ep(0),
            options: ModelOptions::default(),
            after: Vec::new(),
            history: false,
            calls: vec![
                CallSpec {
                    tool: None,
                    name: "analysis".into(),
                    prompt: "Two LLM agents ran concurrently against two local model servers; \
                             per-agent decode rate, time to first token and wall time were \
                             recorded over five runs. List the five patterns in such data that \
                             matter most for capacity planning, one sentence each."
                        .into(),
                },
                CallSpec {
                    tool: None,
                    name: "report".into(),
                    prompt: "Write a short report for an engineering team based on your \
                             analysis below.\n\nAnalysis:\n{previous}"
                        .into(),
                },
            ],
        },
        AgentTemplate {
            id: "insight".into(),
            label: "InsightAgent".into(),
            system: "You are InsightAgent, an optimization advisor for LLM serving. You turn \
                     measurements into ranked, actionable recommendations."
                .into(),
            endpoint: ep(1),
            options: ModelOptions::default(),
            after: Vec::new(),
            history: false,
            calls: vec![
                CallSpec {
                    tool: None,
                    name: "analysis".into(),
                    prompt: "A server runs two concurrent LLM agents. Analyze which settings \
                             (GPU layers offloaded, context size, temperature, batch size) most \
                             affect throughput and latency, and why."
                        .into(),
                },
                CallSpec {
                    tool: None,
                    name: "report".into(),
                    prompt: "Turn the analysis below into three ranked recommendations with \
                             their expected impact.\n\nAnalysis:\n{previous}"
                        .into(),
                },
            ],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Vec<Endpoint> {
        ["a", "b"]
            .iter()
            .enumerate()
            .map(|(i, n)| Endpoint {
                name: (*n).into(),
                base_url: format!("http://127.0.0.1:{}", 11434 + i),
                api: ApiKind::Ollama,
                api_key_env: None,
                ca_file: None,
                tls_insecure: false,
            })
            .collect()
    }

    #[test]
    fn baseline_vs_chimera_matches_the_report() {
        let base = ModelOptions {
            num_predict: Some(128),
            seed: Some(7),
            ..Default::default()
        };
        let t = builtin_agents(&endpoints());
        let a = t[0].instantiate("gemma3:latest", Scenario::BaselineVsChimera, 0, &base);
        let b = t[1].instantiate("gemma3:latest", Scenario::BaselineVsChimera, 1, &base);
        assert_eq!(a.options, base);
        assert_eq!(b.options.num_gpu, Some(80));
        assert_eq!(b.options.num_ctx, Some(512));
        assert_eq!(b.options.temperature, Some(1.0));
        assert_eq!(b.options.num_predict, Some(128));
        assert_eq!(a.endpoint.base_url, "http://127.0.0.1:11434");
        assert_eq!(b.endpoint.base_url, "http://127.0.0.1:11435");
    }

    #[test]
    fn homo_gives_identical_options_and_hetero_different() {
        let t = builtin_agents(&endpoints());
        let base = ModelOptions::default();
        let homo: Vec<_> = (0..2)
            .map(|i| {
                t[i].instantiate("m", Scenario::ChimeraHomo, i, &base)
                    .options
            })
            .collect();
        assert_eq!(homo[0], homo[1]);
        let het: Vec<_> = (0..2)
            .map(|i| {
                t[i].instantiate("m", Scenario::ChimeraHetero, i, &base)
                    .options
            })
            .collect();
        assert_ne!(het[0], het[1]);
        assert_eq!(het[0], ModelOptions::chimera());
    }

    #[test]
    fn agent_overrides_win_over_scenario() {
        let mut t = builtin_agents(&endpoints());
        t[1].options.num_ctx = Some(2048);
        let b = t[1].instantiate("m", Scenario::ChimeraHomo, 1, &ModelOptions::default());
        assert_eq!(b.options.num_ctx, Some(2048));
        assert_eq!(b.options.num_gpu, Some(80));
    }

    #[test]
    fn ollama_chat_body_carries_options_and_previous_text() {
        let t = builtin_agents(&endpoints());
        let a = t[0].instantiate("gemma3", Scenario::ChimeraHomo, 0, &ModelOptions::default());
        let body: serde_json::Value =
            serde_json::from_slice(&a.request_body(1, "FIRST OUTPUT")).unwrap();
        assert_eq!(body["model"], "gemma3");
        assert_eq!(body["stream"], true);
        assert_eq!(body["options"]["num_ctx"], 512);
        assert!(body["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("FIRST OUTPUT"));
        assert_eq!(a.url(), "http://127.0.0.1:11434/api/chat");
    }

    #[test]
    fn openai_body_maps_equivalents_only() {
        let o = ModelOptions {
            num_predict: Some(64),
            seed: Some(1),
            ..ModelOptions::chimera()
        };
        let body: serde_json::Value =
            serde_json::from_slice(&request_body(ApiKind::OpenaiChat, "m", "sys", "hi", &o))
                .unwrap();
        assert_eq!(body["max_tokens"], 64);
        assert_eq!(body["seed"], 1);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert!(body.get("num_ctx").is_none() && body.get("options").is_none());
        assert_eq!(o.not_applicable_to_openai(), vec!["num_gpu", "num_ctx"]);
    }

    #[test]
    fn think_is_sent_only_where_the_api_takes_it() {
        let body = |api, think| -> serde_json::Value {
            let o = ModelOptions {
                think: Some(think),
                temperature: Some(1.0),
                ..Default::default()
            };
            serde_json::from_slice(&request_body(api, "m", "sys", "hi", &o)).unwrap()
        };
        let high = Think::Effort(Effort::High);
        for api in [ApiKind::Ollama, ApiKind::OllamaGenerate] {
            let b = body(api, Think::On(true));
            assert_eq!(b["think"], true, "{api:?}");
            assert!(b["options"].get("think").is_none(), "{b}");
            assert_eq!(b["options"]["temperature"], 1.0);
            assert_eq!(body(api, Think::On(false))["think"], false);
            assert_eq!(body(api, high)["think"], "high");
            assert_eq!(
                ModelOptions {
                    think: Some(high),
                    ..Default::default()
                }
                .think_not_sent(api),
                None
            );
        }
        let chat = body(ApiKind::OpenaiChat, high);
        assert_eq!(chat["reasoning_effort"], "high");
        assert!(chat.get("think").is_none());
        let on = body(ApiKind::OpenaiChat, Think::On(true));
        assert!(
            on.get("reasoning_effort").is_none() && on.get("think").is_none(),
            "{on}"
        );
        let text = body(ApiKind::OpenaiCompletions, high);
        assert!(text.get("reasoning_effort").is_none() && text.get("think").is_none());
        let with = |t| ModelOptions {
            think: Some(t),
            ..Default::default()
        };
        assert!(with(high)
            .think_not_sent(ApiKind::OpenaiCompletions)
            .is_some());
        assert!(with(Think::On(true))
            .think_not_sent(ApiKind::OpenaiChat)
            .is_some());
        assert_eq!(with(high).think_not_sent(ApiKind::OpenaiChat), None);
        assert_eq!(
            ModelOptions::default().think_not_sent(ApiKind::OpenaiCompletions),
            None
        );
        // Unset: no field at all, so requests to non-reasoning models are as before.
        let plain: serde_json::Value = serde_json::from_slice(&request_body(
            ApiKind::Ollama,
            "m",
            "",
            "hi",
            &ModelOptions::default(),
        ))
        .unwrap();
        assert!(plain.get("think").is_none());
    }

    /// The same golden strings as python/tests/test_workload.py's GOLDEN_THINK.
    #[test]
    fn think_bodies_are_golden() {
        let o = ModelOptions {
            think: Some(Think::Effort(Effort::High)),
            ..Default::default()
        };
        let golden = [
            (
                ApiKind::Ollama,
                r#"{"messages":[{"content":"p","role":"user"}],"model":"m","options":{},"stream":true,"think":"high"}"#,
            ),
            (
                ApiKind::OllamaGenerate,
                r#"{"model":"m","options":{},"prompt":"p","stream":true,"think":"high"}"#,
            ),
            (
                ApiKind::OpenaiChat,
                r#"{"messages":[{"content":"p","role":"user"}],"model":"m","reasoning_effort":"high","stream":true,"stream_options":{"include_usage":true}}"#,
            ),
            (
                ApiKind::OpenaiCompletions,
                r#"{"model":"m","prompt":"p","stream":true,"stream_options":{"include_usage":true}}"#,
            ),
        ];
        for (api, want) in golden {
            let body = request_body(api, "m", "", "p", &o);
            assert_eq!(String::from_utf8(body).unwrap(), want, "{api:?}");
        }
    }

    /// An agent of three calls on `api`: a tool step after the first, `{output:up}` in the
    /// second, `{previous}` in the third.
    fn tool_agent(api: ApiKind, history: bool) -> Agent {
        let call = |name: &str, prompt: &str, tool: Option<ToolStep>| CallSpec {
            name: name.into(),
            prompt: prompt.into(),
            tool,
        };
        Agent {
            id: "w".into(),
            label: "w".into(),
            system: "S".into(),
            model: "m".into(),
            endpoint: Endpoint {
                name: "e".into(),
                base_url: "http://h:1".into(),
                api,
                api_key_env: None,
                ca_file: None,
                tls_insecure: false,
            },
            options: ModelOptions::default(),
            calls: vec![
                call(
                    "look",
                    "Q",
                    Some(ToolStep {
                        name: "web_search".into(),
                        latency_ms: Latency::Fixed(200.0),
                        offer: true,
                    }),
                ),
                call("use", "U {output:up}", None),
                call("sum", "R {previous}", None),
            ],
            after: vec!["up".into()],
            history,
        }
    }

    fn transcript(tool_calls: bool) -> Transcript {
        let calls = if tool_calls {
            vec![ToolCall {
                id: "call_1".into(),
                name: "web_search".into(),
                arguments: r#"{"query":"x"}"#.into(),
            }]
        } else {
            Vec::new()
        };
        Transcript {
            turns: vec![
                Turn {
                    text: if tool_calls { "" } else { "T0" }.into(),
                    tool_calls: calls,
                },
                Turn {
                    text: "T1".into(),
                    tool_calls: Vec::new(),
                },
            ],
            outputs: vec![("up".into(), "UP".into())],
        }
    }

    const TOOLS: &str = r#""tools":[{"function":{"description":"Call web_search with a query; it returns a short text result.","name":"web_search","parameters":{"properties":{"query":{"description":"What to look up.","type":"string"}},"required":["query"],"type":"object"}},"type":"function"}]"#;
    const RESULT: &str = "web_search found 3 results. 1. Independent requests overlap on a batching server. 2. A serial device runs one request at a time. 3. The longest chain of dependent steps bounds how fast a graph of agents can finish.";

    /// The same golden strings as python/tests/test_workload.py's GOLDEN_GRAPH.
    /// `offer = false`: the call offers no `tools`, and the next call gets the result as a
    /// user message, as for a model that answered in text.
    #[test]
    fn a_prompt_driven_tool_is_not_offered() {
        let mut a = tool_agent(ApiKind::OpenaiChat, false);
        a.calls[0].tool.as_mut().unwrap().offer = false;
        let first = String::from_utf8(a.call_body(0, &transcript(false))).unwrap();
        assert_eq!(
            first,
            r#"{"messages":[{"content":"S","role":"system"},{"content":"Q","role":"user"}],"model":"m","stream":true,"stream_options":{"include_usage":true}}"#
        );
        let next = String::from_utf8(a.call_body(1, &transcript(false))).unwrap();
        assert!(next.contains(&format!(
            r#"{{"content":"Result of web_search: {RESULT}","role":"user"}}"#
        )));
        // Serialized only when false, so records of offered tools are unchanged.
        let json = serde_json::to_string(&a.calls[0].tool).unwrap();
        assert!(json.contains(r#""offer":false"#), "{json}");
        let back: ToolStep = serde_json::from_str(r#"{"name":"t","latency_ms":5}"#).unwrap();
        assert!(back.offer);
    }

    #[test]
    fn tool_step_history_and_output_bodies_are_golden() {
        let body = |api, history, call, tool_calls| {
            String::from_utf8(tool_agent(api, history).call_body(call, &transcript(tool_calls)))
                .unwrap()
        };
        let golden = [
            // The call with a tool step offers its tool.
            (
                body(ApiKind::OpenaiChat, false, 0, true),
                format!(
                    r#"{{"messages":[{{"content":"S","role":"system"}},{{"content":"Q","role":"user"}}],"model":"m","stream":true,"stream_options":{{"include_usage":true}},{TOOLS}}}"#
                ),
            ),
            (
                body(ApiKind::Ollama, false, 0, true),
                format!(
                    r#"{{"messages":[{{"content":"S","role":"system"}},{{"content":"Q","role":"user"}}],"model":"m","options":{{}},"stream":true,{TOOLS}}}"#
                ),
            ),
            // The next call: the previous pair, the tool call, its result, then its prompt.
            (
                body(ApiKind::OpenaiChat, false, 1, true),
                format!(
                    r#"{{"messages":[{{"content":"S","role":"system"}},{{"content":"Q","role":"user"}},{{"content":"","role":"assistant","tool_calls":[{{"function":{{"arguments":"{{\"query\":\"x\"}}","name":"web_search"}},"id":"call_1","type":"function"}}]}},{{"content":"{RESULT}","role":"tool","tool_call_id":"call_1"}},{{"content":"U UP","role":"user"}}],"model":"m","stream":true,"stream_options":{{"include_usage":true}}}}"#
                ),
            ),
            (
                body(ApiKind::Ollama, false, 1, true),
                format!(
                    r#"{{"messages":[{{"content":"S","role":"system"}},{{"content":"Q","role":"user"}},{{"content":"","role":"assistant","tool_calls":[{{"function":{{"arguments":{{"query":"x"}},"name":"web_search"}}}}]}},{{"content":"{RESULT}","role":"tool","tool_name":"web_search"}},{{"content":"U UP","role":"user"}}],"model":"m","options":{{}},"stream":true}}"#
                ),
            ),
            // A model that answered in text gets the result as a user message.
            (
                body(ApiKind::Ollama, false, 1, false),
                format!(
                    r#"{{"messages":[{{"content":"S","role":"system"}},{{"content":"Q","role":"user"}},{{"content":"T0","role":"assistant"}},{{"content":"Result of web_search: {RESULT}","role":"user"}},{{"content":"U UP","role":"user"}}],"model":"m","options":{{}},"stream":true}}"#
                ),
            ),
            // Without history, a call after a call with no tool step sends its prompt alone.
            (
                body(ApiKind::OpenaiChat, false, 2, false),
                r#"{"messages":[{"content":"S","role":"system"},{"content":"R T1","role":"user"}],"model":"m","stream":true,"stream_options":{"include_usage":true}}"#.to_owned(),
            ),
            // With history, every earlier pair.
            (
                body(ApiKind::OpenaiChat, true, 2, false),
                format!(
                    r#"{{"messages":[{{"content":"S","role":"system"}},{{"content":"Q","role":"user"}},{{"content":"T0","role":"assistant"}},{{"content":"Result of web_search: {RESULT}","role":"user"}},{{"content":"U UP","role":"user"}},{{"content":"T1","role":"assistant"}},{{"content":"R T1","role":"user"}}],"model":"m","stream":true,"stream_options":{{"include_usage":true}}}}"#
                ),
            ),
        ];
        for (i, (got, want)) in golden.iter().enumerate() {
            assert_eq!(got, want, "golden {i}");
        }
    }

    #[test]
    fn bodies_of_agents_without_the_new_features_are_unchanged() {
        let mut a = tool_agent(ApiKind::OpenaiChat, false);
        a.calls[0].tool = None;
        for i in 0..3 {
            let prompt = a.calls[i].prompt.replace(PREVIOUS, "prev");
            assert_eq!(
                a.request_body(i, "prev"),
                request_body(a.endpoint.api, "m", "S", &prompt, &a.options),
                "call {i}"
            );
        }
        assert_eq!(
            output_placeholders("a {output:x} b {output:y}{output:x} {output:"),
            ["x", "y"]
        );
    }

    #[test]
    fn prompts_grow_with_history() {
        let a = tool_agent(ApiKind::Ollama, true);
        let t = transcript(false);
        let lens: Vec<usize> = (0..3).map(|i| a.call_body(i, &t).len()).collect();
        assert!(lens[0] < lens[1] && lens[1] < lens[2], "{lens:?}");
    }

    #[test]
    fn latencies_are_fixed_or_drawn_reproducibly_within_bounds() {
        assert_eq!(Latency::Fixed(200.0).draw(1, 2, "a", 3), 200.0);
        let u = Latency::Uniform {
            min: 100.0,
            max: 300.0,
        };
        let draws: Vec<f64> = (0..50).map(|run| u.draw(7, run, "worker", 0)).collect();
        assert!(
            draws.iter().all(|d| (100.0..300.0).contains(d)),
            "{draws:?}"
        );
        assert!(draws.iter().any(|&d| d != draws[0]));
        assert_eq!(u.draw(7, 3, "worker", 0), draws[3]);
        // The same values as python/tests/test_workload.py's test_latency_draws_match_rust.
        assert_eq!(u.draw(0, 0, "a", 0), 174.34619268708184);
        assert_eq!(u.draw(42, 3, "worker-2", 1), 244.98387079878864);
        let parsed: ToolStep =
            serde_json::from_str(r#"{"name":"t","latency_ms":{"min":1,"max":2}}"#).unwrap();
        assert_eq!(parsed.latency_ms, Latency::Uniform { min: 1.0, max: 2.0 });
    }

    #[test]
    fn think_parses_from_bool_or_level_and_rejects_others() {
        let parse = |s: &str| serde_json::from_str::<ModelOptions>(s);
        assert_eq!(
            parse(r#"{"think": true}"#).unwrap().think,
            Some(Think::On(true))
        );
        assert_eq!(
            parse(r#"{"think": "medium"}"#).unwrap().think,
            Some(Think::Effort(Effort::Medium))
        );
        let e = parse(r#"{"think": "max"}"#).unwrap_err().to_string();
        assert!(e.contains("\"low\""), "{e}");
        let over = ModelOptions::default().overlay(&ModelOptions {
            think: Some(Think::On(false)),
            ..Default::default()
        });
        assert_eq!(over.think, Some(Think::On(false)));
    }

    #[test]
    fn replicate_spreads_ids_seeds_and_endpoints() {
        let eps = endpoints();
        let t = builtin_agents(&eps);
        let r = replicate(&t, 5, &eps, Some(42));
        let ids: Vec<_> = r.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "collector-0",
                "insight-1",
                "collector-2",
                "insight-3",
                "collector-4"
            ]
        );
        let seeds: Vec<_> = r.iter().map(|a| a.options.seed.unwrap()).collect();
        assert_eq!(seeds, [42, 43, 44, 45, 46]);
        assert_eq!(r[2].endpoint.name, "a");
        assert_eq!(r[3].endpoint.name, "b");
        assert_eq!(r[4].calls, t[0].calls);
        assert!(replicate(&t, 3, &[], None).is_empty());
        assert_eq!(replicate(&t, 1, &eps, None)[0].options.seed, Some(0));
    }

    #[test]
    fn tags_lead_what_is_sent_so_prefix_caches_cannot_span_phases() {
        let t = builtin_agents(&endpoints());
        let a = t[0].instantiate("m", Scenario::ChimeraHomo, 0, &ModelOptions::default());
        let seq: serde_json::Value =
            serde_json::from_slice(&a.tagged("run 0 sequential").request_body(1, "x")).unwrap();
        let conc: serde_json::Value =
            serde_json::from_slice(&a.tagged("run 0 concurrent").request_body(1, "x")).unwrap();
        let sys = |v: &serde_json::Value| v["messages"][0]["content"].as_str().unwrap().to_owned();
        assert!(sys(&seq).starts_with("[run 0 sequential] You are DataCollector"));
        assert_ne!(sys(&seq)[..20], sys(&conc)[..20]);
        let mut bare = a.clone();
        bare.system.clear();
        let b = bare.tagged("run 1 warmup");
        assert!(b
            .calls
            .iter()
            .all(|c| c.prompt.starts_with("[run 1 warmup] ")));
    }

    #[test]
    fn nonces_have_one_length_and_differ() {
        let a = prompt_nonce();
        let b = prompt_nonce();
        assert_eq!(a.len(), NONCE_HEX_DIGITS);
        assert_eq!(b.len(), NONCE_HEX_DIGITS);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn unknown_scenario_lists_valid_ones() {
        let e = "chimera-homogeneous".parse::<Scenario>().unwrap_err();
        assert!(e.to_string().contains("chimera-homo"));
    }
}
