//! surf as the HTTP client, its body read through an 8 KiB buffer.

use bytes::Bytes;
use std::sync::Arc;

use chimeraforge_core::http::{ConnectionCounts, Method};
use chimeraforge_core::{
    BodyStream, ClientOptions, ConnectionPolicy, ConnectionTally, HttpClient, HttpError,
    HttpRequest, HttpResponse, RuntimeFacts, TlsTrust,
};
use futures_lite::AsyncReadExt;
use surf::http::{headers, mime};

use crate::connector::{ConnectFailure, H1Connector};
use crate::framing::{FramingError, MAX_HEAD_BYTES};

/// Size of the buffer each body read goes through (bytes).
pub const READ_BUFFER_BYTES: usize = 8 * 1024;

/// surf over async-h1 and our connector, no total timeout.
pub struct SurfClient {
    client: surf::Client,
    opts: ClientOptions,
    trust: TlsTrust,
    tally: Arc<ConnectionTally>,
}

impl SurfClient {
    /// A client with `opts.connect_timeout`, `opts.connection` and no middleware; https
    /// through rustls configured for `trust` (webpki roots plus the endpoint's `ca_file`).
    pub fn new(opts: &ClientOptions, trust: &TlsTrust) -> Result<Self, String> {
        let tls = chimeraforge_core::tls::client_config(trust)?;
        let connector = H1Connector::new(opts.connect_timeout, opts.connection, tls);
        let tally = Arc::clone(&connector.tally);
        Ok(SurfClient {
            client: surf::Client::with_http_client(connector),
            opts: opts.clone(),
            trust: trust.clone(),
            tally,
        })
    }

    /// Facts about the client, for the runtime to complete.
    pub(crate) fn facts() -> RuntimeFacts {
        RuntimeFacts {
            http_client: "surf 2.3 (request written by async-h1 2.3, response read by our \
                          connector; pure-Rust HTTP/1.x)"
                .to_owned(),
            read_buffer_bytes: Some(READ_BUFFER_BYTES),
            notes: vec![
                (
                    "body_read".to_owned(),
                    "one read into the 8 KiB buffer per chunk, returned as soon as it has \
                     any bytes, never more than one HTTP chunk's data"
                        .to_owned(),
                ),
                (
                    "connection_reuse".to_owned(),
                    "keep-alive: our connector keeps one connection per agent, only once \
                     its response was read to its exact end (HTTP/1.1, no `Connection: \
                     close`); a request on it that sees the connection close before any \
                     response byte is sent once more on a new one. fresh: a new connection \
                     per request, closed with its body, and `Connection: close` (surf's \
                     H1Client pool, unused, reuses half-read connections)"
                        .to_owned(),
                ),
                (
                    "framing".to_owned(),
                    format!(
                        "HTTP/1.0 and 1.1 responses, content-length, chunked (extensions and \
                         trailers ignored) or until close, read by our connector (async-h1's \
                         decoder reads neither chunk extensions nor HTTP/1.0); head up to {} KiB",
                        MAX_HEAD_BYTES / 1024
                    ),
                ),
                (
                    "dns".to_owned(),
                    "async-std's blocking pool; skipped for IP literals".to_owned(),
                ),
                (
                    "tls".to_owned(),
                    "rustls 0.23 (ring) through futures-rustls on async-std's socket: the \
                     webpki roots plus the endpoint's ca_file; the handshake is inside the \
                     connect (and its timeout)"
                        .to_owned(),
                ),
                ("proxy".to_owned(), "none".to_owned()),
            ],
            ..RuntimeFacts::default()
        }
    }
}

impl HttpClient for SurfClient {
    type Body = SurfBody;

    async fn send(&self, req: HttpRequest) -> Result<HttpResponse<Self::Body>, HttpError> {
        let url = surf::Url::parse(&req.url).map_err(|e| HttpError::InvalidUrl {
            url: req.url.clone(),
            reason: e.to_string(),
        })?;
        let mut request = match req.method {
            Method::Get => surf::Request::new(surf::http::Method::Get, url),
            Method::Post => {
                let mut request = surf::Request::new(surf::http::Method::Post, url);
                let mut body = surf::Body::from_bytes(req.body.to_vec());
                body.set_mime(mime::JSON);
                request.set_body(body);
                request
            }
        };
        for (name, value) in &req.headers {
            request.append_header(name.as_str(), value.as_str());
        }
        if self.opts.connection == ConnectionPolicy::Fresh {
            request.insert_header("connection", "close");
        }
        let mut resp = self
            .client
            .send(request)
            .await
            .map_err(|e| send_error(&self.trust, &req.url, e))?;
        let content_type = resp
            .header(headers::CONTENT_TYPE)
            .map(|v| v.last().as_str().to_owned());
        let content_encoding = resp
            .header(headers::CONTENT_ENCODING)
            .map(|v| v.last().as_str().to_owned());
        Ok(HttpResponse {
            status: resp.status().into(),
            content_type,
            content_encoding,
            body: SurfBody {
                body: resp.take_body(),
                buf: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
            },
        })
    }

    fn for_agent(&self, tls: &TlsTrust) -> Result<Self, HttpError> {
        SurfClient::new(&self.opts, tls).map_err(HttpError::Request)
    }

    fn connections(&self) -> ConnectionCounts {
        self.tally.counts(self.opts.connection)
    }
}

fn send_error(trust: &TlsTrust, url: &str, e: surf::Error) -> HttpError {
    let url = url.to_owned();
    match e.downcast_ref::<ConnectFailure>() {
        Some(ConnectFailure::TimedOut) => HttpError::ConnectTimeout { url },
        Some(ConnectFailure::Handshake(io)) => {
            match chimeraforge_core::tls::certificate_rejection(io) {
                Some(rejected) => trust.certificate_error(&url, &rejected.to_string()),
                None => HttpError::Tls {
                    url,
                    reason: io.to_string(),
                },
            }
        }
        Some(ConnectFailure::Failed(io)) => HttpError::Connect {
            url,
            reason: io.to_string(),
        },
        None => match e.downcast_ref::<FramingError>() {
            Some(framing) => HttpError::Framing(framing.0.clone()),
            None => HttpError::Request(e.to_string()),
        },
    }
}

/// A surf response body, read through a [`READ_BUFFER_BYTES`] buffer.
pub struct SurfBody {
    body: surf::Body,
    buf: Box<[u8]>,
}

impl BodyStream for SurfBody {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        // One read: whatever is there now, never waiting to fill the buffer.
        let n = self.body.read(&mut self.buf).await.map_err(body_error)?;
        Ok((n > 0).then(|| Bytes::copy_from_slice(&self.buf[..n])))
    }
}

/// A body read's error: the connector's framing errors are [`HttpError::Framing`], the
/// rest (a reset, an early close) [`HttpError::Body`].
fn body_error(e: std::io::Error) -> HttpError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<FramingError>())
    {
        Some(framing) => HttpError::Framing(framing.0.clone()),
        None => HttpError::Body(e.to_string()),
    }
}
