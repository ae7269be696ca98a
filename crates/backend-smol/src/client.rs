//! isahc (libcurl) as the HTTP client, its body read through a 1 KiB buffer.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use chimeraforge_core::http::{ConnectionCounts, Method};
use chimeraforge_core::{
    BodyStream, ClientOptions, ConnectionPolicy, ConnectionTally, HttpClient, HttpError,
    HttpRequest, HttpResponse, RuntimeFacts, TlsTrust,
};
use futures_lite::AsyncReadExt;
use isahc::config::{CaCertificate, Configurable, SslOption, VersionNegotiation};
use isahc::error::ErrorKind;
use isahc::{AsyncBody, ResponseExt};

/// Size of the buffer each body read goes through (bytes).
pub const READ_BUFFER_BYTES: usize = 1024;

/// How long curl may keep an idle connection under keep-alive: longer than any run, so
/// only the server closes it.
const KEEP_IDLE: Duration = Duration::from_secs(24 * 3600);

/// isahc over libcurl's multi interface, HTTP/1.1, no total timeout.
pub struct IsahcClient {
    client: isahc::HttpClient,
    opts: ClientOptions,
    /// Set on each request (so an agent's client under fresh, which shares the run's one
    /// libcurl thread, still checks its own endpoint's way).
    trust: TlsTrust,
    tally: ConnectionTally,
    /// The local address of the last connection a response came on: a new one means curl
    /// opened a connection (isahc does not pass on curl's count of them).
    last_local: Mutex<Option<SocketAddr>>,
}

impl IsahcClient {
    /// A client with `opts.connect_timeout`, HTTP/1.1, no proxy, no `Expect: 100-continue`;
    /// under fresh, curl may not reuse a connection (its connection cache is off, so it
    /// closes each one after its transfer).
    pub fn new(opts: &ClientOptions) -> Result<Self, String> {
        let builder = isahc::HttpClient::builder()
            .connect_timeout(opts.connect_timeout)
            .version_negotiation(VersionNegotiation::http11())
            .proxy(None::<isahc::http::Uri>)
            // curl would otherwise hold a large POST body up to 1 s for a 100 Continue.
            .expect_continue(false)
            .automatic_decompression(false)
            .tcp_nodelay();
        let builder = match opts.connection {
            ConnectionPolicy::KeepAlive => builder.connection_cache_ttl(KEEP_IDLE),
            ConnectionPolicy::Fresh => builder.connection_cache_size(0),
        };
        let client = builder
            .build()
            .map_err(|e| format!("cannot build isahc client: {e}"))?;
        Ok(IsahcClient::with(client, opts, &TlsTrust::default()))
    }

    fn with(client: isahc::HttpClient, opts: &ClientOptions, trust: &TlsTrust) -> Self {
        IsahcClient {
            client,
            opts: opts.clone(),
            trust: trust.clone(),
            tally: ConnectionTally::default(),
            last_local: Mutex::new(None),
        }
    }

    /// Count the connection an exchange used when it is not the last one seen.
    fn saw(&self, local: Option<SocketAddr>) {
        let Some(local) = local else { return };
        let mut last = self.last_local.lock().unwrap_or_else(|e| e.into_inner());
        if *last != Some(local) || self.opts.connection == ConnectionPolicy::Fresh {
            *last = Some(local);
            self.tally.opened_one();
        }
    }

    /// Facts about the client, for the runtime to complete.
    pub(crate) fn facts() -> RuntimeFacts {
        RuntimeFacts {
            http_client: format!("isahc 1.8 ({})", isahc::version()),
            read_buffer_bytes: Some(READ_BUFFER_BYTES),
            notes: vec![
                (
                    "http_io".to_owned(),
                    "isahc drives libcurl (multi interface) on its own agent thread; \
                     not an async runtime: body bytes reach the executor through a pipe"
                        .to_owned(),
                ),
                (
                    "body_read".to_owned(),
                    "one read into the 1 KiB buffer per chunk, returned as soon as it \
                     has any bytes"
                        .to_owned(),
                ),
                (
                    "send_resolves".to_owned(),
                    "at the first body byte or the end of the response, not at the head".to_owned(),
                ),
                (
                    "dropped_body".to_owned(),
                    "curl aborts the transfer at its next write callback, so a stalled \
                     connection closes when the server next sends"
                        .to_owned(),
                ),
                (
                    "connection_reuse".to_owned(),
                    "keep-alive: one isahc client (one libcurl multi, its own thread) per \
                     agent, idle connections kept for the run; curl itself sends a request \
                     once more on a new connection when a reused one closed before any \
                     response byte, and each connection is counted by its local address. \
                     fresh: one isahc client for the run with curl's connection cache off \
                     (CURLOPT_FORBID_REUSE) and `Connection: close` on every request"
                        .to_owned(),
                ),
                (
                    "tls".to_owned(),
                    "libcurl's own OpenSSL backend (the system libssl), its default CA bundle; \
                     an endpoint's ca_file replaces that bundle (CURLOPT_CAINFO), tls_insecure \
                     turns off peer and host verification; the handshake is inside the connect"
                        .to_owned(),
                ),
                ("proxy".to_owned(), "none (env proxies ignored)".to_owned()),
                (
                    "framing_errors".to_owned(),
                    "not all told apart from a broken connection: isahc passes on libcurl's \
                     error code, not curl's text, and curl reports a reset, a malformed chunk \
                     and a response head over 300 KiB in total all as error 56 \
                     (CURLE_RECV_ERROR); 56 is recorded as a body error mid-body \
                     (closed_before_done before the final line) and a request error before \
                     the head. curl's codes 8, 61 and 100 (a header line over 100 KiB) are \
                     framing"
                        .to_owned(),
                ),
            ],
            ..RuntimeFacts::default()
        }
    }
}

impl HttpClient for IsahcClient {
    type Body = IsahcBody;

    async fn send(&self, req: HttpRequest) -> Result<HttpResponse<Self::Body>, HttpError> {
        let invalid = |reason: String| HttpError::InvalidUrl {
            url: req.url.clone(),
            reason,
        };
        let uri: isahc::http::Uri = req.url.parse().map_err(|e| invalid(format!("{e}")))?;
        if uri.scheme().is_none() || uri.host().is_none() {
            return Err(invalid("needs a scheme and a host".to_owned()));
        }
        let mut builder = isahc::Request::builder().uri(uri);
        if let Some(ca) = &self.trust.ca_file {
            builder = builder.ssl_ca_certificate(CaCertificate::file(ca));
        }
        if self.trust.insecure {
            builder = builder.ssl_options(
                SslOption::DANGER_ACCEPT_INVALID_CERTS | SslOption::DANGER_ACCEPT_INVALID_HOSTS,
            );
        }
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if self.opts.connection == ConnectionPolicy::Fresh {
            builder = builder.header("connection", "close");
        }
        let request = match req.method {
            Method::Get => builder.method("GET").body(AsyncBody::empty()),
            Method::Post => builder
                .method("POST")
                .header("content-type", "application/json")
                .body(AsyncBody::from(req.body.to_vec())),
        }
        .map_err(|e| invalid(e.to_string()))?;
        let resp = match self.client.send_async(request).await {
            Ok(resp) => resp,
            Err(e) => {
                self.saw(e.local_addr());
                return Err(send_error(&self.trust, &req.url, e));
            }
        };
        self.saw(resp.local_addr());
        let (parts, body) = resp.into_parts();
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_encoding = parts
            .headers
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(HttpResponse {
            status: parts.status.as_u16(),
            content_type,
            content_encoding,
            body: IsahcBody {
                body,
                buf: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
            },
        })
    }

    fn for_agent(&self, tls: &TlsTrust) -> Result<Self, HttpError> {
        self.agent_client(tls).map_err(HttpError::Request)
    }

    fn connections(&self) -> ConnectionCounts {
        self.tally.counts(self.opts.connection)
    }
}

impl IsahcClient {
    fn agent_client(&self, tls: &TlsTrust) -> Result<Self, String> {
        match self.opts.connection {
            // Each agent's connections in a cache of its own.
            ConnectionPolicy::KeepAlive => {
                let own = IsahcClient::new(&self.opts)?;
                Ok(IsahcClient::with(own.client, &self.opts, tls))
            }
            // Nothing is cached: the run's one libcurl thread serves every agent.
            ConnectionPolicy::Fresh => Ok(IsahcClient::with(self.client.clone(), &self.opts, tls)),
        }
    }
}

fn send_error(trust: &TlsTrust, url: &str, e: isahc::Error) -> HttpError {
    let url = url.to_owned();
    match e.kind() {
        // No client certificate is ever configured: isahc's "bad client certificate" is
        // curl's CURLE_SSL_CACERT_BADFILE, the endpoint's ca_file.
        ErrorKind::BadServerCertificate | ErrorKind::BadClientCertificate => {
            trust.certificate_error(&url, &describe(&e))
        }
        ErrorKind::ConnectionFailed | ErrorKind::NameResolution => HttpError::Connect {
            url,
            reason: describe(&e),
        },
        // Only the connect timeout is configured, so any timeout here is that one.
        ErrorKind::Timeout => HttpError::ConnectTimeout { url },
        _ => curl_error(&e, Stage::Head).unwrap_or_else(|| HttpError::Request(describe(&e))),
    }
}

/// Where in the exchange an error came.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before the response head was complete (`send`).
    Head,
    /// While reading the body.
    Body,
}

// libcurl's error codes (curl/curl.h) that say something about the framing or the connection.
const CURLE_WEIRD_SERVER_REPLY: i64 = 8;
const CURLE_PARTIAL_FILE: i64 = 18;
const CURLE_GOT_NOTHING: i64 = 52;
const CURLE_SEND_ERROR: i64 = 55;
const CURLE_RECV_ERROR: i64 = 56;
const CURLE_BAD_CONTENT_ENCODING: i64 = 61;
const CURLE_TOO_LARGE: i64 = 100;

/// The libcurl error behind an isahc error, if curl produced it.
fn curl_source(e: &isahc::Error) -> Option<&curl::Error> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(c) = s.downcast_ref::<curl::Error>() {
            return Some(c);
        }
        source = s.source();
    }
    None
}

/// An error from curl as one of our kinds, with curl's own code and text in the message.
/// `None` for errors that did not come from curl. isahc keeps curl's code but not curl's
/// detail text (its error buffer), so a code that stands for several causes is reported
/// with all of them.
fn curl_error(e: &isahc::Error, stage: Stage) -> Option<HttpError> {
    let c = curl_source(e)?;
    let curl = format!("curl error {}: {}", c.code(), c.description());
    Some(match i64::from(c.code()) {
        // A chunk or status line curl could not parse, an unknown transfer coding, a value
        // over curl's limits.
        CURLE_WEIRD_SERVER_REPLY => {
            HttpError::Framing(format!("the server's reply is not valid HTTP/1.1 ({curl})"))
        }
        CURLE_BAD_CONTENT_ENCODING => HttpError::Framing(format!(
            "the response's transfer coding cannot be decoded ({curl})"
        )),
        CURLE_TOO_LARGE => HttpError::Framing(format!(
            "a header line of the response head (or another part of the response) is larger \
             than curl accepts, 100 KiB a header line ({curl})"
        )),
        CURLE_PARTIAL_FILE => HttpError::Body(format!(
            "the server closed the connection before the end of the body ({curl})"
        )),
        CURLE_GOT_NOTHING => HttpError::Request(format!(
            "the server closed the connection without sending a response ({curl})"
        )),
        CURLE_SEND_ERROR => HttpError::Request(format!(
            "sending the request failed: the connection was reset or closed ({curl})"
        )),
        CURLE_RECV_ERROR => {
            let what = match stage {
                Stage::Head => {
                    "reading the response head failed: the connection was reset or broke, \
                     or curl refused the head (malformed, or over curl's 300 KiB in total)"
                }
                Stage::Body => {
                    "reading the body failed: the connection was reset or broke, or curl \
                     could not decode the chunked framing (a malformed chunk)"
                }
            };
            let msg = format!("{what} ({curl}; isahc passes on curl's code, not its detail)");
            match stage {
                Stage::Head => HttpError::Request(msg),
                Stage::Body => HttpError::Body(msg),
            }
        }
        _ => match stage {
            Stage::Head => HttpError::Request(format!("{} ({curl})", e.kind())),
            Stage::Body => HttpError::Body(format!("{} ({curl})", e.kind())),
        },
    })
}

/// An isahc error and its sources, without isahc's bare "unknown error" (its word for an
/// I/O error) when a source says more.
fn describe(e: &isahc::Error) -> String {
    let mut parts = Vec::new();
    let top = e.to_string();
    let mut source = std::error::Error::source(e);
    if source.is_none() || top != "unknown error" {
        parts.push(top);
    }
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

/// A body read's error as one of our kinds.
fn body_error(e: std::io::Error) -> HttpError {
    let isahc_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<isahc::Error>());
    match isahc_error {
        Some(ie) => curl_error(ie, Stage::Body).unwrap_or_else(|| HttpError::Body(describe(ie))),
        // isahc's word for a transfer that stopped without curl saying why.
        None if e.kind() == std::io::ErrorKind::ConnectionAborted => HttpError::Body(
            "the transfer stopped before the end of the body without an error from curl \
             (connection aborted)"
                .to_owned(),
        ),
        None => HttpError::Body(e.to_string()),
    }
}

/// An isahc response body, read through a [`READ_BUFFER_BYTES`] buffer.
pub struct IsahcBody {
    body: AsyncBody,
    buf: Box<[u8]>,
}

impl BodyStream for IsahcBody {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        // One read: whatever is there now, never waiting to fill the buffer.
        let n = self.body.read(&mut self.buf).await.map_err(body_error)?;
        Ok((n > 0).then(|| Bytes::copy_from_slice(&self.buf[..n])))
    }
}
