//! reqwest as the HTTP client of both tokio backends.

use bytes::Bytes;
use chimeraforge_core::http::Method;
use chimeraforge_core::{
    BodyStream, ClientOptions, HttpClient, HttpError, HttpRequest, HttpResponse, RuntimeFacts,
};

/// reqwest over hyper's HTTP/1.1 client; no total timeout (the core enforces those).
pub struct ReqwestClient {
    client: reqwest::Client,
}

impl ReqwestClient {
    /// A client with `opts.connect_timeout`, HTTP/1.1 only, no proxy, unbounded pool.
    pub fn new(opts: &ClientOptions) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .http1_only()
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot build reqwest client: {e}"))?;
        Ok(ReqwestClient { client })
    }

    /// Facts about the client, for the runtime to complete.
    pub(crate) fn facts() -> RuntimeFacts {
        RuntimeFacts {
            http_client: "reqwest 0.12 (hyper 1, HTTP/1.1 only)".to_owned(),
            read_buffer_bytes: None,
            notes: vec![
                (
                    "body_read".to_owned(),
                    "Response::chunk: each hyper data frame as it arrives".to_owned(),
                ),
                (
                    "connection_reuse".to_owned(),
                    "none in practice: the harness sends `Connection: close` on every call \
                     (the client would keep idle connections otherwise)"
                        .to_owned(),
                ),
                ("proxy".to_owned(), "none (env proxies ignored)".to_owned()),
                (
                    "dns".to_owned(),
                    "getaddrinfo on tokio's blocking pool; skipped for IP literals".to_owned(),
                ),
            ],
            ..RuntimeFacts::default()
        }
    }
}

impl HttpClient for ReqwestClient {
    type Body = ReqwestBody;

    async fn send(&self, req: HttpRequest) -> Result<HttpResponse<Self::Body>, HttpError> {
        let url = reqwest::Url::parse(&req.url).map_err(|e| HttpError::InvalidUrl {
            url: req.url.clone(),
            reason: e.to_string(),
        })?;
        let mut builder = match req.method {
            Method::Get => self.client.get(url),
            Method::Post => self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(req.body),
        };
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let resp = builder.send().await.map_err(|e| send_error(&req.url, e))?;
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_encoding = resp
            .headers()
            .get(reqwest::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(HttpResponse {
            status: resp.status().as_u16(),
            content_type,
            content_encoding,
            body: ReqwestBody { resp },
        })
    }
}

fn send_error(url: &str, e: reqwest::Error) -> HttpError {
    let url = url.to_owned();
    if e.is_connect() && e.is_timeout() {
        HttpError::ConnectTimeout { url }
    } else if e.is_connect() {
        HttpError::Connect {
            url,
            reason: error_chain(&e),
        }
    } else if e.is_builder() {
        HttpError::InvalidUrl {
            url,
            reason: error_chain(&e),
        }
    } else if find_source::<hyper::Error>(&e).is_some_and(hyper::Error::is_parse) {
        // hyper's own words say which: "message head is too large" (over its 408 KiB),
        // "invalid HTTP version parsed", ...
        HttpError::Framing(format!(
            "the response head could not be read: {}",
            error_chain(&e)
        ))
    } else {
        HttpError::Request(error_chain(&e))
    }
}

/// The first error of type `T` in `e`'s chain (`e` included).
fn find_source<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        next = err.source();
    }
    None
}

/// A body read's error: hyper's decoder reports bytes it cannot read as framing
/// (`InvalidData`/`InvalidInput` I/O errors: a bad chunk size line, chunk data longer than
/// its size); a reset or an early close is a body error.
fn body_error(e: reqwest::Error) -> HttpError {
    let framing = find_source::<std::io::Error>(&e).is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
        )
    });
    if framing {
        HttpError::Framing(error_chain(&e))
    } else {
        HttpError::Body(error_chain(&e))
    }
}

/// The error and its sources, joined: reqwest's top-level message alone says little.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A reqwest response body, read one hyper data frame at a time.
pub struct ReqwestBody {
    resp: reqwest::Response,
}

impl BodyStream for ReqwestBody {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        self.resp.chunk().await.map_err(body_error)
    }
}
