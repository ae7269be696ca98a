//! isahc (libcurl) as the HTTP client, its body read through a 1 KiB buffer.

use bytes::Bytes;
use chimeraforge_core::http::Method;
use chimeraforge_core::{
    BodyStream, ClientOptions, HttpClient, HttpError, HttpRequest, HttpResponse, RuntimeFacts,
};
use futures_lite::AsyncReadExt;
use isahc::config::{Configurable, VersionNegotiation};
use isahc::error::ErrorKind;
use isahc::AsyncBody;

/// Size of the buffer each body read goes through (bytes).
pub const READ_BUFFER_BYTES: usize = 1024;

/// isahc over libcurl's multi interface, HTTP/1.1, no total timeout.
pub struct IsahcClient {
    client: isahc::HttpClient,
}

impl IsahcClient {
    /// A client with `opts.connect_timeout`, HTTP/1.1, no proxy, no `Expect: 100-continue`.
    pub fn new(opts: &ClientOptions) -> Result<Self, String> {
        let client = isahc::HttpClient::builder()
            .connect_timeout(opts.connect_timeout)
            .version_negotiation(VersionNegotiation::http11())
            .proxy(None::<isahc::http::Uri>)
            // curl would otherwise hold a large POST body up to 1 s for a 100 Continue.
            .expect_continue(false)
            .automatic_decompression(false)
            .tcp_nodelay()
            .build()
            .map_err(|e| format!("cannot build isahc client: {e}"))?;
        Ok(IsahcClient { client })
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
                    "none in practice: the harness sends `Connection: close` on every call \
                     (the client would keep idle connections otherwise)"
                        .to_owned(),
                ),
                ("proxy".to_owned(), "none (env proxies ignored)".to_owned()),
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
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let request = match req.method {
            Method::Get => builder.method("GET").body(AsyncBody::empty()),
            Method::Post => builder
                .method("POST")
                .header("content-type", "application/json")
                .body(AsyncBody::from(req.body.to_vec())),
        }
        .map_err(|e| invalid(e.to_string()))?;
        let resp = self
            .client
            .send_async(request)
            .await
            .map_err(|e| send_error(&req.url, e))?;
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
}

fn send_error(url: &str, e: isahc::Error) -> HttpError {
    let url = url.to_owned();
    match e.kind() {
        ErrorKind::ConnectionFailed | ErrorKind::NameResolution => HttpError::Connect {
            url,
            reason: e.to_string(),
        },
        // Only the connect timeout is configured, so any timeout here is that one.
        ErrorKind::Timeout => HttpError::ConnectTimeout { url },
        _ => HttpError::Request(e.to_string()),
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
        let n = self
            .body
            .read(&mut self.buf)
            .await
            .map_err(|e| HttpError::Body(e.to_string()))?;
        Ok((n > 0).then(|| Bytes::copy_from_slice(&self.buf[..n])))
    }
}
