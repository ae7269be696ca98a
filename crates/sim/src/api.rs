//! What both APIs share: a parsed generation request and error replies in each API's shape.

use std::sync::Arc;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::{Deserialize, Deserializer};

use crate::body::SimBody;
use crate::engine::Wire;
use crate::model::LoadKey;

/// Which API an endpoint belongs to, so errors come back in the shape its clients parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    Ollama,
    OpenAi,
}

/// A generation request from either API, reduced to what the timing model needs.
pub(crate) struct GenerationRequest {
    pub model: String,
    /// Texts whose words count as prompt tokens and seed the output (system, prompt or messages).
    pub prompt_parts: Vec<String>,
    pub stream: bool,
    /// `num_predict` / `max_tokens` when positive.
    pub max_tokens: Option<u32>,
    pub seed: Option<i64>,
    pub load_key: Option<LoadKey>,
    pub sim_fault: Option<String>,
    /// Ollama's "empty prompt loads the model" request.
    pub load_only: bool,
    /// `false` when the request turns a reasoning model's thinking off (Ollama `think: false`).
    pub think: bool,
    pub wire: Arc<dyn Wire>,
}

/// A response with a JSON (or other) body.
pub(crate) fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<bytes::Bytes>,
) -> Response<SimBody> {
    let mut response = Response::new(SimBody::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A `200 application/json` reply of a serializable value.
pub(crate) fn json(value: &impl serde::Serialize) -> Response<SimBody> {
    reply(
        StatusCode::OK,
        "application/json; charset=utf-8",
        serde_json::to_vec(value).expect("serializable reply"),
    )
}

impl Api {
    /// The content type of a streamed generation.
    pub(crate) fn stream_content_type(self) -> &'static str {
        match self {
            Api::Ollama => "application/x-ndjson",
            Api::OpenAi => "text/event-stream",
        }
    }

    /// An error reply: Ollama `{"error":"..."}`, OpenAI `{"error":{"message",...}}`.
    pub(crate) fn error(
        self,
        status: StatusCode,
        message: &str,
        kind: &str,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Response<SimBody> {
        let body = match self {
            Api::Ollama => serde_json::json!({ "error": message }),
            Api::OpenAi => serde_json::json!({
                "error": { "message": message, "type": kind, "param": param, "code": code }
            }),
        };
        reply(
            status,
            "application/json; charset=utf-8",
            serde_json::to_vec(&body).expect("serializable error"),
        )
    }

    pub(crate) fn bad_request(self, message: &str) -> Response<SimBody> {
        self.error(
            StatusCode::BAD_REQUEST,
            message,
            "invalid_request_error",
            None,
            None,
        )
    }

    /// Ollama's wording, in the API's shape.
    pub(crate) fn model_not_found(self, model: &str) -> Response<SimBody> {
        let message = format!("model \"{model}\" not found, try pulling it first");
        self.error(
            StatusCode::NOT_FOUND,
            &message,
            "invalid_request_error",
            Some("model"),
            Some("model_not_found"),
        )
    }

    pub(crate) fn unauthorized(self) -> Response<SimBody> {
        let message = match self {
            Api::Ollama => "unauthorized",
            Api::OpenAi => "Incorrect API key provided.",
        };
        self.error(
            StatusCode::UNAUTHORIZED,
            message,
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        )
    }

    pub(crate) fn server_error(self, message: &str) -> Response<SimBody> {
        self.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            message,
            "server_error",
            None,
            None,
        )
    }
}

/// An optional integer that clients may send as `2048` or `2048.0`.
pub(crate) fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let n: Option<serde_json::Number> = Option::deserialize(d)?;
    Ok(n.and_then(|n| {
        n.as_i64()
            .or_else(|| n.as_u64().map(|u| u as i64))
            .or_else(|| n.as_f64().map(|f| f as i64))
    }))
}

/// A token cap: only positive values cap (Ollama's -1 and -2 mean "no cap").
pub(crate) fn cap(value: Option<i64>) -> Option<u32> {
    value
        .filter(|&v| v > 0)
        .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
}

/// The tool a chat request makes the model call: the first of its `tools` when it has any
/// and its last message is the user's (after a tool result the model answers in text).
pub(crate) fn tool_to_call(
    tools: &[serde_json::Value],
    last_role: Option<&str>,
) -> Result<Option<String>, String> {
    let Some(first) = tools.first() else {
        return Ok(None);
    };
    let name = first
        .pointer("/function/name")
        .and_then(serde_json::Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            "tools[0].function.name is required (a tool is {\"type\": \"function\", \
             \"function\": {\"name\": ..., \"parameters\": {...}}})"
                .to_string()
        })?;
    Ok((last_role == Some("user")).then(|| name.to_string()))
}

/// Prompt text of a request's tools, as a chat template renders them into the prompt:
/// each tool's name and description.
pub(crate) fn tools_text(tools: &[serde_json::Value]) -> Vec<String> {
    tools
        .iter()
        .filter_map(|t| t.get("function"))
        .flat_map(|f| ["name", "description"].map(|k| f.get(k).and_then(|v| v.as_str())))
        .flatten()
        .map(str::to_string)
        .collect()
}

/// Prompt text of an assistant message's `tool_calls`: each call's name and arguments
/// (OpenAI's JSON text as is, Ollama's object serialized).
pub(crate) fn tool_calls_text(calls: &[serde_json::Value]) -> Vec<String> {
    let mut parts = Vec::new();
    for f in calls.iter().filter_map(|c| c.get("function")) {
        if let Some(name) = f.get("name").and_then(|v| v.as_str()) {
            parts.push(name.to_string());
        }
        match f.get("arguments") {
            Some(serde_json::Value::String(s)) => parts.push(s.clone()),
            Some(serde_json::Value::Null) | None => {}
            Some(other) => parts.push(other.to_string()),
        }
    }
    parts
}

/// `text` as the inside of a JSON string (escaped, without the quotes).
pub(crate) fn json_string_body(text: &str) -> String {
    let quoted = serde_json::to_string(text).expect("a string serializes");
    quoted[1..quoted.len() - 1].to_string()
}
