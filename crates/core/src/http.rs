//! The HTTP client a backend measures with: send one request, stream the body back.
//!
//! Timeouts are split by who can enforce them: the connect timeout belongs to the client
//! (it owns the socket), while first-byte, idle and total timeouts are enforced once, in
//! [`crate::call`], on top of any client with the runtime's own timer.

use bytes::Bytes;
use std::future::Future;
use std::time::Duration;

/// HTTP method; the harness only needs these two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// One request. `body` is already-serialized JSON for `Post`.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    /// Extra headers, e.g. `authorization`. `content-type: application/json` is implied for POST.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl HttpRequest {
    /// A JSON POST to `url`.
    pub fn post_json(url: impl Into<String>, body: impl Into<Bytes>) -> Self {
        HttpRequest {
            method: Method::Post,
            url: url.into(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A GET of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        HttpRequest {
            method: Method::Get,
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }
}

/// Response head plus a body still streaming.
pub struct HttpResponse<B> {
    pub status: u16,
    pub content_type: Option<String>,
    /// The `content-encoding` header, when the server sent one (the harness asks for
    /// `identity`; anything else is a body it cannot decode).
    pub content_encoding: Option<String>,
    pub body: B,
}

/// A response body read chunk by chunk, as bytes arrive.
pub trait BodyStream: Send + 'static {
    /// The next chunk, `Ok(None)` at the end of the body. Never waits to fill a buffer:
    /// whatever the transport has is returned as soon as it is there.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, HttpError>> + Send;
}

/// An HTTP/1.1 client.
pub trait HttpClient: Send + Sync + 'static {
    type Body: BodyStream;

    /// Send `req`; resolves once the response head has arrived.
    fn send(
        &self,
        req: HttpRequest,
    ) -> impl Future<Output = Result<HttpResponse<Self::Body>, HttpError>> + Send;
}

/// Settings every backend's client is built with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClientOptions {
    /// TCP connect timeout, enforced by the client.
    #[serde(with = "crate::serde_ms")]
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Transport-level failure of a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("connect to {url} timed out")]
    ConnectTimeout { url: String },
    #[error("invalid url {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("request failed: {0}")]
    Request(String),
    #[error("reading the body failed: {0}")]
    Body(String),
    /// The response's HTTP framing could not be read: a malformed status line, header or
    /// chunk size line, a head over the client's size limit, an invalid content-length.
    /// Not a peer closing or resetting the connection (that is [`HttpError::Body`]).
    #[error("the response's HTTP framing is invalid: {0}")]
    Framing(String),
}
