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

    /// A client for one agent, with this one's settings and connections of its own: under
    /// [`ConnectionPolicy::KeepAlive`] the agent's warm connection lives in it, so no other
    /// agent can take it. Under `Fresh` it may share whatever this client shares. `tls` is
    /// how it checks its endpoint's certificate (https only; a plain URL ignores it).
    fn for_agent(&self, tls: &TlsTrust) -> Result<Self, HttpError>
    where
        Self: Sized;

    /// Connections this client has opened so far (hidden retries inside the client
    /// included), and how many of them replaced a kept-alive one.
    fn connections(&self) -> ConnectionCounts;
}

/// A client's connections so far; a call records the difference across itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    /// TCP connections opened.
    pub opened: u64,
    /// Of `opened`, those that replaced the agent's kept-alive connection after the server
    /// closed it (keep-alive only: every connection after an agent's first).
    pub reconnects: u64,
}

/// The connections one agent's client opened: counted where the client opens them.
#[derive(Debug, Default)]
pub struct ConnectionTally {
    opened: std::sync::atomic::AtomicU64,
}

impl ConnectionTally {
    /// One more connection opened.
    pub fn opened_one(&self) {
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The counts so far under `policy`.
    pub fn counts(&self, policy: ConnectionPolicy) -> ConnectionCounts {
        let opened = self.opened.load(std::sync::atomic::Ordering::Relaxed);
        ConnectionCounts {
            opened,
            reconnects: match policy {
                ConnectionPolicy::KeepAlive => opened.saturating_sub(1),
                ConnectionPolicy::Fresh => 0,
            },
        }
    }
}

/// Whether a client keeps its connections open between calls.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionPolicy {
    /// Each agent owns its connection for the whole run (opened by its warm-up call) and
    /// reuses it; a reused connection found closed before any response byte is replaced
    /// once, inside the call. What real clients do.
    #[default]
    KeepAlive,
    /// One new connection per call, closed with its response, whatever the server does.
    Fresh,
}

impl ConnectionPolicy {
    /// The name used in configs, on the command line and in records.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionPolicy::KeepAlive => "keep-alive",
            ConnectionPolicy::Fresh => "fresh",
        }
    }
}

impl std::fmt::Display for ConnectionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ConnectionPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keep-alive" => Ok(ConnectionPolicy::KeepAlive),
            "fresh" => Ok(ConnectionPolicy::Fresh),
            other => Err(format!(
                "unknown connection policy {other:?}: use \"keep-alive\" or \"fresh\""
            )),
        }
    }
}

/// Whether a failed attempt on a reused connection may be sent again on a new one: only
/// under keep-alive, only when the attempt reused a connection, and only when not one byte
/// of the response had arrived (the server cannot have started on it; anything later is
/// the call's failure, never retried).
pub fn may_retry(policy: ConnectionPolicy, reused: bool, response_bytes: u64) -> bool {
    policy == ConnectionPolicy::KeepAlive && reused && response_bytes == 0
}

/// Settings every backend's client is built with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClientOptions {
    /// TCP connect timeout, enforced by the client.
    #[serde(with = "crate::serde_ms")]
    pub connect_timeout: Duration,
    /// Connection reuse between calls (see [`ConnectionPolicy`]).
    #[serde(default)]
    pub connection: ConnectionPolicy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            connection: ConnectionPolicy::default(),
        }
    }
}

/// How a client checks an https endpoint's certificate (config `ca_file`, `tls_insecure`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsTrust {
    /// The endpoint's name, for the error that says what to fix.
    pub endpoint: String,
    /// A PEM file of CA certificates trusted for the endpoint besides the client's usual
    /// roots (on libcurl, instead of its bundle: curl's `CAINFO`).
    pub ca_file: Option<std::path::PathBuf>,
    /// Accept any certificate for any name: nothing is verified (self-signed test servers).
    pub insecure: bool,
}

impl TlsTrust {
    /// The error for a handshake with `url` that failed on the server's certificate
    /// (`reason`: the TLS stack's own words): names the endpoint, the URL and the fix.
    pub fn certificate_error(&self, url: &str, reason: &str) -> HttpError {
        let fix = match &self.ca_file {
            Some(f) => format!(
                "the certificate is not signed by a CA in its ca_file {} (nor, except on \
                 libcurl, by the usual roots): point ca_file at the PEM of the CA that signed \
                 the server's certificate",
                f.display()
            ),
            None => "the certificate is not signed by a CA the client trusts: set ca_file \
                     = \"PATH\" on the endpoint to the PEM of the CA that signed it (or, for a \
                     test server only, tls_insecure = true)"
                .to_owned(),
        };
        HttpError::Tls {
            url: url.to_owned(),
            reason: format!(
                "endpoint {:?}: the server's certificate was rejected ({reason}); {fix}",
                self.endpoint
            ),
        }
    }
}

/// Transport-level failure of a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The TLS handshake failed, e.g. on an untrusted certificate (a connect failure: the
    /// call records it as `connect`).
    #[error("TLS handshake with {url} failed: {reason}")]
    Tls { url: String, reason: String },
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
