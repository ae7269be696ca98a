//! Server APIs: request bodies and sans-IO stream codecs (bytes in, events out).
//!
//! The codecs never do I/O and keep no timing; [`crate::call`] timestamps each chunk
//! before feeding it here.

pub mod lines;
pub mod ollama;
pub mod openai;
pub mod tools;

pub use tools::{ToolCallAssembly, ToolCallChunk};

use serde::{Deserialize, Serialize};

/// Which wire API an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ApiKind {
    /// Ollama `POST /api/chat`, NDJSON stream (the default: the seed's agents chat).
    Ollama,
    /// Ollama `POST /api/generate`, NDJSON stream.
    OllamaGenerate,
    /// OpenAI-compatible `POST /v1/chat/completions`, SSE stream.
    OpenaiChat,
    /// OpenAI-compatible `POST /v1/completions`, SSE stream.
    OpenaiCompletions,
}

impl ApiKind {
    /// Path of the streaming generation endpoint.
    pub fn path(self) -> &'static str {
        match self {
            ApiKind::Ollama => "/api/chat",
            ApiKind::OllamaGenerate => "/api/generate",
            ApiKind::OpenaiChat => "/v1/chat/completions",
            ApiKind::OpenaiCompletions => "/v1/completions",
        }
    }

    /// Whether this is one of Ollama's native APIs.
    pub fn is_ollama(self) -> bool {
        matches!(self, ApiKind::Ollama | ApiKind::OllamaGenerate)
    }

    /// A fresh decoder for this API's stream.
    pub fn decoder(self, max_line_bytes: usize) -> Decoder {
        if self.is_ollama() {
            Decoder::Ollama(ollama::OllamaDecoder::new(max_line_bytes))
        } else {
            Decoder::OpenAi(openai::SseDecoder::new(max_line_bytes))
        }
    }
}

/// One thing a stream said.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// Generated answer text (may be empty: some servers send empty keep-alive deltas).
    Text(String),
    /// Generated reasoning text ("thinking"), never empty: Ollama's `thinking` /
    /// `message.thinking`, OpenAI-compatible `delta.reasoning_content` / `delta.reasoning`.
    Reasoning(String),
    /// A generated tool call, or a fragment of one: OpenAI `delta.tool_calls[]` (one event
    /// per entry, arguments streamed in fragments), Ollama `message.tool_calls[]` (each call
    /// whole). Generated output like text; [`ToolCallAssembly`] joins the pieces.
    ToolCall(ToolCallChunk),
    /// Server-side statistics (final Ollama line; OpenAI usage/timings chunk).
    Stats(ServerStats),
    /// The server says generation finished (`done: true`, `finish_reason`, `[DONE]`).
    Done { reason: Option<String> },
    /// The server reported an error inside the stream.
    ServerError(String),
}

/// One tool call a model made, assembled from a stream: what the agent answers with a tool
/// message in its next call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The server's id for it (OpenAI `tool_calls[].id`); Ollama sends none, so the client
    /// numbers them `call_0`, `call_1`, ... in the order they came.
    pub id: String,
    /// The function's name.
    pub name: String,
    /// The arguments as a JSON text (OpenAI streams it in fragments; Ollama sends an object,
    /// kept here serialized).
    pub arguments: String,
}

/// Server-reported figures for one call, in the server's own accounting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ServerStats {
    /// Generated tokens (`eval_count`, `usage.completion_tokens`, `timings.predicted_n`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Prompt tokens (`prompt_eval_count`, `usage.prompt_tokens`, `timings.prompt_n`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    /// Time spent generating (`eval_duration`, `timings.predicted_ms`), ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_ms: Option<f64>,
    /// Time spent on the prompt (`prompt_eval_duration`, `timings.prompt_ms`), ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_eval_ms: Option<f64>,
    /// Model load time (`load_duration`), ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_ms: Option<f64>,
    /// Whole request on the server (`total_duration`), ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<f64>,
    /// Why generation stopped (`done_reason`, `finish_reason`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    /// Of `output_tokens`, those spent reasoning
    /// (`usage.completion_tokens_details.reasoning_tokens`; Ollama sends no such count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// Prompt tokens the server took from its prompt (prefix) cache instead of evaluating
    /// them: llama.cpp `timings.cache_n`, OpenAI-style `usage.prompt_tokens_details.
    /// cached_tokens` (vLLM, SGLang, llama.cpp), Ollama `prompt_eval_cached_count`. Part of
    /// `prompt_tokens`. Absent: the server did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_prompt_tokens: Option<u64>,
    /// The server's own decode rate field, tok/s, where it sends one (llama.cpp
    /// `timings.predicted_per_second`). See [`ServerStats::decode_tok_s`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_decode_tok_s: Option<f64>,
}

impl ServerStats {
    /// Server decode rate as the server defines it, tok/s: its own rate field where it
    /// sends one (llama.cpp `timings.predicted_per_second`, which divides by a duration the
    /// server measured over one token fewer than `predicted_n`, so it is not
    /// `predicted_n / predicted_ms`), else output tokens / eval time (Ollama's definition:
    /// `eval_count / eval_duration`).
    pub fn decode_tok_s(&self) -> Option<f64> {
        if let Some(r) = self
            .reported_decode_tok_s
            .filter(|r| r.is_finite() && *r > 0.0)
        {
            return Some(r);
        }
        match (self.output_tokens, self.eval_ms) {
            (Some(n), Some(ms)) if ms > 0.0 => Some(n as f64 / (ms / 1e3)),
            _ => None,
        }
    }

    /// Fill fields this one lacks from `other` (later chunks may add what earlier lacked).
    pub fn merge(&mut self, other: ServerStats) {
        fn take<T>(a: &mut Option<T>, b: Option<T>) {
            if b.is_some() {
                *a = b;
            }
        }
        take(&mut self.output_tokens, other.output_tokens);
        take(&mut self.prompt_tokens, other.prompt_tokens);
        take(&mut self.eval_ms, other.eval_ms);
        take(&mut self.prompt_eval_ms, other.prompt_eval_ms);
        take(&mut self.load_ms, other.load_ms);
        take(&mut self.total_ms, other.total_ms);
        take(&mut self.done_reason, other.done_reason);
        take(&mut self.reasoning_tokens, other.reasoning_tokens);
        take(&mut self.cached_prompt_tokens, other.cached_prompt_tokens);
        take(&mut self.reported_decode_tok_s, other.reported_decode_tok_s);
    }
}

/// A stream the codec could not make sense of.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    #[error("a line exceeded {limit} bytes (the stream is not what the API promises, or raise max_line_bytes)")]
    LineTooLong { limit: usize },
    #[error("invalid UTF-8 in the stream at line {line}")]
    InvalidUtf8 { line: u64 },
    #[error("malformed JSON at line {line}: {reason}")]
    MalformedJson { line: u64, reason: String },
    #[error("the stream ended in the middle of a line ({bytes} bytes pending)")]
    TruncatedLine { bytes: usize },
    #[error("malformed tool call at line {line}: {reason}")]
    MalformedToolCall { line: u64, reason: String },
}

/// A decoder for either API family.
#[derive(Debug)]
pub enum Decoder {
    Ollama(ollama::OllamaDecoder),
    OpenAi(openai::SseDecoder),
}

impl Decoder {
    /// Feed the next chunk of body bytes; complete events are appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), CodecError> {
        match self {
            Decoder::Ollama(d) => d.feed(chunk, out),
            Decoder::OpenAi(d) => d.feed(chunk, out),
        }
    }

    /// The body ended: flush what is left.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), CodecError> {
        match self {
            Decoder::Ollama(d) => d.finish(out),
            Decoder::OpenAi(d) => d.finish(out),
        }
    }
}

/// Milliseconds from Ollama's nanosecond durations.
pub(crate) fn ns_to_ms(ns: Option<u64>) -> Option<f64> {
    ns.map(|v| v as f64 / 1e6)
}

/// Test helpers shared by both codecs' tests: decode a stream fed in given chunks, and the
/// chunkings every codec must survive.
#[cfg(test)]
pub(crate) mod testing {
    use super::{ApiKind, CodecError, StreamEvent};

    /// Decode `chunks` fed one after another, then the end of the body.
    pub fn decode_all(api: ApiKind, chunks: &[&[u8]]) -> Result<Vec<StreamEvent>, CodecError> {
        let mut d = api.decoder(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out)?;
        }
        d.finish(&mut out)?;
        Ok(out)
    }

    /// `bytes` cut at the (unsorted, possibly repeated) offsets `cuts`.
    pub fn chunks_at(bytes: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for c in cuts {
            let c = c.clamp(start, bytes.len());
            chunks.push(&bytes[start..c]);
            start = c;
        }
        chunks.push(&bytes[start..]);
        chunks
    }

    /// `bytes` decodes to `expected` whole, split in two at every offset, and byte by byte.
    pub fn assert_every_split(api: ApiKind, bytes: &[u8], expected: &[StreamEvent]) {
        assert_eq!(decode_all(api, &[bytes]).unwrap(), expected);
        for i in 0..=bytes.len() {
            let (a, b) = bytes.split_at(i);
            assert_eq!(decode_all(api, &[a, b]).unwrap(), expected, "split at {i}");
        }
        let ones: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode_all(api, &ones).unwrap(), expected);
    }
}
