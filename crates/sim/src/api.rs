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
