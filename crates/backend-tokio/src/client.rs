//! reqwest as the HTTP client of both tokio backends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use chimeraforge_core::http::{may_retry, ConnectionCounts, Method};
use chimeraforge_core::{
    BodyStream, ClientOptions, ConnectionPolicy, ConnectionTally, HttpClient, HttpError,
    HttpRequest, HttpResponse, RuntimeFacts, TlsTrust,
};

/// reqwest over hyper's HTTP/1.1 client; no total timeout (the core enforces those).
pub struct ReqwestClient {
    client: reqwest::Client,
    opts: ClientOptions,
    trust: TlsTrust,
    tally: Arc<ConnectionTally>,
    returning: Returning,
}

/// When the agent's last response ended on a connection hyper keeps (HTTP/1.1, no
/// `Connection: close`): for [`POOL_RETURN_WAIT`] after that instant the connection may still
/// be on its way back to hyper's pool, and only then does a new connect wait for it.
type Returning = Arc<std::sync::Mutex<Option<std::time::Instant>>>;

fn lock(r: &Returning) -> std::sync::MutexGuard<'_, Option<std::time::Instant>> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

impl ReqwestClient {
    /// A client with `opts.connect_timeout`, HTTP/1.1 only, no proxy; under keep-alive its
    /// idle connections never expire on the client's side, under fresh none is kept. https
    /// through rustls configured for `trust` (core's configuration: webpki roots plus the
    /// endpoint's `ca_file`); the handshake is part of the connect, inside the timeout.
    pub fn new(opts: &ClientOptions, trust: &TlsTrust) -> Result<Self, String> {
        let tls = chimeraforge_core::tls::client_config(trust)?;
        let tally = Arc::new(ConnectionTally::default());
        let returning = Returning::default();
        let builder = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .http1_only()
            .tcp_nodelay(true)
            .no_proxy()
            .use_preconfigured_tls(rustls::ClientConfig::clone(&tls))
            .connector_layer(CountConnections {
                tally: Arc::clone(&tally),
                policy: opts.connection,
                returning: Arc::clone(&returning),
            });
        let builder = match opts.connection {
            ConnectionPolicy::KeepAlive => builder.pool_idle_timeout(None),
            ConnectionPolicy::Fresh => builder.pool_max_idle_per_host(0),
        };
        let client = builder
            .build()
            .map_err(|e| format!("cannot build reqwest client: {e}"))?;
        Ok(ReqwestClient {
            client,
            opts: opts.clone(),
            trust: trust.clone(),
            tally,
            returning,
        })
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
                    "keep-alive: one reqwest client (one pool) per agent, idle connections \
                     kept for the run; a request that fails on a reused connection before \
                     its response head is sent once more on a new one (hyper does not say \
                     whether part of a head had arrived). hyper-util's own retry of a request \
                     the pool could not start is left on and counted: every connection is \
                     counted by a connector layer, which also makes a new connection started \
                     within 5 ms of the end of the agent's last kept response wait out the rest \
                     of those 5 ms for hyper's pool to get that connection back (it does so \
                     from a task of its own); a reconnect later than that does not wait. fresh: no idle connection kept \
                     and `Connection: close` on every request"
                        .to_owned(),
                ),
                (
                    "tls".to_owned(),
                    "rustls 0.23 (ring) given to reqwest: the webpki roots plus the endpoint's \
                     ca_file; the handshake is inside the connect (and its timeout)"
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
        if self.opts.connection == ConnectionPolicy::Fresh {
            builder = builder.header(reqwest::header::CONNECTION, "close");
        }
        let again = builder.try_clone();
        let opened = self.tally.counts(self.opts.connection).opened;
        let resp = match builder.send().await {
            Ok(resp) => resp,
            Err(e) => {
                let reused = self.tally.counts(self.opts.connection).opened == opened;
                match again {
                    Some(again)
                        if closed_unanswered(&e) && may_retry(self.opts.connection, reused, 0) =>
                    {
                        // The kept connection is the one that failed: nothing to wait for.
                        lock(&self.returning).take();
                        again
                            .send()
                            .await
                            .map_err(|e| send_error(&self.trust, &req.url, e))?
                    }
                    _ => return Err(send_error(&self.trust, &req.url, e)),
                }
            }
        };
        // Whichever connection carried this request, none is on its way back any more.
        lock(&self.returning).take();
        let kept = self.opts.connection == ConnectionPolicy::KeepAlive
            && resp.version() == reqwest::Version::HTTP_11
            && !resp
                .headers()
                .get(reqwest::header::CONNECTION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
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
            body: ReqwestBody {
                resp,
                returning: kept.then(|| Arc::clone(&self.returning)),
            },
        })
    }

    fn for_agent(&self, tls: &TlsTrust) -> Result<Self, HttpError> {
        ReqwestClient::new(&self.opts, tls).map_err(HttpError::Request)
    }

    fn connections(&self) -> ConnectionCounts {
        self.tally.counts(self.opts.connection)
    }
}

/// The connection closed (or was reset) before the response head: what a server's idle
/// or request-count close looks like to a request sent on a reused connection. Not a
/// timeout, not a head hyper could not parse.
fn closed_unanswered(e: &reqwest::Error) -> bool {
    if e.is_timeout() || e.is_connect() {
        return false;
    }
    if let Some(h) = find_source::<hyper::Error>(e) {
        if h.is_parse() || h.is_parse_status() || h.is_timeout() {
            return false;
        }
        if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
            return true;
        }
    }
    find_source::<std::io::Error>(e).is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::UnexpectedEof
        )
    })
}

/// How long after a kept response's end its connection may still be on its way back to
/// hyper's pool (see [`Counted`]). A connect started in that window waits out the rest of it
/// (inside its call's TTFT, and only then); a reconnect later than that does not wait.
const POOL_RETURN_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// A connector layer that counts the connections reqwest opens (its pool's and hyper-util's
/// hidden retries' alike), so a call records how many it opened.
#[derive(Clone)]
struct CountConnections {
    tally: Arc<ConnectionTally>,
    policy: ConnectionPolicy,
    returning: Returning,
}

impl<S> tower_layer::Layer<S> for CountConnections {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            tally: Arc::clone(&self.tally),
            policy: self.policy,
            returning: Arc::clone(&self.returning),
        }
    }
}

/// The counting connector. Under keep-alive, a connect started within [`POOL_RETURN_WAIT`]
/// of the end of the agent's last kept response first waits out the rest of it: hyper-util puts a finished connection back into its
/// pool from a task of its own, and on the multi-thread runtime the agent's next request
/// can get there first. hyper-util races the pool against the connector; when the pool
/// wins while we wait, it moves this connect to a background task of its own (to park a
/// spare connection), which we notice by the task we run in and stop: no spare is opened.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    tally: Arc<ConnectionTally>,
    policy: ConnectionPolicy,
    returning: Returning,
}

/// A connect given up because the pool handed the request its kept connection first.
#[derive(Debug)]
struct PoolWon;

impl std::fmt::Display for PoolWon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connect not needed: the agent's kept connection came back to the pool first")
    }
}

impl std::error::Error for PoolWon {}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, Req> tower_service::Service<Req> for Counted<S>
where
    S: tower_service::Service<Req>,
    S::Future: Send + 'static,
    S::Error: From<PoolWon>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let connecting = self.inner.call(req);
        let tally = Arc::clone(&self.tally);
        // Wait only while the agent's last kept connection may still be on its way back:
        // within POOL_RETURN_WAIT of its response's end, for what is left of it. A reconnect
        // after an idle close, a request limit or a retry does not wait.
        let wait = match (self.policy, lock(&self.returning).take()) {
            (ConnectionPolicy::KeepAlive, Some(ended)) => {
                POOL_RETURN_WAIT.checked_sub(ended.elapsed())
            }
            _ => None,
        };
        Box::pin(async move {
            // hyper-util's background task is a spawned task; the caller is the agent's
            // task, or no task at all under `block_on`.
            let caller = tokio::task::try_id();
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
                if tokio::task::try_id() != caller {
                    return Err(PoolWon.into());
                }
            }
            let conn = connecting.await?;
            if wait.is_some() && tokio::task::try_id() != caller {
                // The pool won while this connect ran: the request went out on the kept
                // connection, and this spare is closed unused, not counted against a call.
                return Err(PoolWon.into());
            }
            tally.opened_one();
            Ok(conn)
        })
    }
}

fn send_error(trust: &TlsTrust, url: &str, e: reqwest::Error) -> HttpError {
    if let Some(rejected) = chimeraforge_core::tls::certificate_rejection(&e) {
        return trust.certificate_error(url, &rejected.to_string());
    }
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
    /// Under keep-alive, for a response whose connection hyper keeps: stamped at its end.
    returning: Option<Returning>,
}

impl BodyStream for ReqwestBody {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        let chunk = self.resp.chunk().await.map_err(body_error)?;
        if chunk.is_none() {
            if let Some(r) = self.returning.take() {
                *lock(&r) = Some(std::time::Instant::now());
            }
        }
        Ok(chunk)
    }
}
