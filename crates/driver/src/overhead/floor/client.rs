//! The floor's HTTP/1.1 client: blocking `std::net` sockets, the request written by hand,
//! the response read through the parent's sans-IO parser ([`crate::http1::ResponseParser`]).
//!
//! Every blocking call is bounded by the task thread's earliest timer
//! (`runtime::io_limit`) and yields when it runs out, so the call protocol's
//! timeouts (a sleep raced against the IO) work as on any runtime.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chimeraforge_core::http::Method;
use chimeraforge_core::http::{ConnectionCounts, ConnectionPolicy, ConnectionTally};
use chimeraforge_core::{
    BodyStream, ClientOptions, HttpClient, HttpError, HttpRequest, HttpResponse,
};

use super::runtime::{io_limit, yield_once};
use crate::http1::{Event, Head, ParseError, ResponseParser};

/// Size of the buffer each read goes through (bytes).
pub const READ_BUFFER_BYTES: usize = 16 << 10;

/// The floor's client: blocking sockets, one request at a time per task.
pub struct FloorClient {
    connect_timeout: Duration,
    connection: ConnectionPolicy,
    pool: Arc<Pool>,
}

/// Idle connections by `host:port`, and what the client opened.
#[derive(Default)]
struct Pool {
    idle: Mutex<HashMap<String, Vec<TcpStream>>>,
    opened: ConnectionTally,
    retries: AtomicU64,
}

impl Pool {
    fn take(&self, host_port: &str) -> Option<TcpStream> {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(host_port)?
            .pop()
    }

    fn put(&self, host_port: String, sock: TcpStream) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(host_port)
            .or_default()
            .push(sock);
    }
}

impl FloorClient {
    /// A client with `opts`' connect timeout and connection policy.
    pub fn new(opts: &ClientOptions) -> Self {
        FloorClient {
            connect_timeout: opts.connect_timeout,
            connection: opts.connection,
            pool: Arc::default(),
        }
    }

    /// TCP connections opened so far.
    pub fn connections_opened(&self) -> u64 {
        self.pool.opened.counts(self.connection).opened
    }

    /// Requests that found their reused connection closed and were sent again on a new one.
    pub fn retries(&self) -> u64 {
        self.pool.retries.load(Ordering::Relaxed)
    }

    async fn connect(&self, host_port: &str, url: &str) -> Result<TcpStream, HttpError> {
        let connect_error = |reason: String| HttpError::Connect {
            url: url.to_owned(),
            reason,
        };
        let addrs: Vec<SocketAddr> = host_port
            .to_socket_addrs()
            .map_err(|e| connect_error(format!("cannot resolve {host_port}: {e}")))?
            .collect();
        let started = Instant::now();
        let (mut next, mut last) = (0, None);
        std::future::poll_fn(|_| loop {
            let Some(addr) = addrs.get(next) else {
                return Poll::Ready(Err(last.take().unwrap_or_else(|| {
                    connect_error(format!("{host_port} resolves to no address"))
                })));
            };
            let left = self.connect_timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Poll::Ready(Err(HttpError::ConnectTimeout {
                    url: url.to_owned(),
                }));
            }
            let limit = io_limit();
            if limit == Some(Duration::ZERO) {
                return Poll::Pending;
            }
            let bound = limit.map_or(left, |l| l.min(left));
            match TcpStream::connect_timeout(addr, bound) {
                Ok(sock) => {
                    self.pool.opened.opened_one();
                    let _ = sock.set_nodelay(true);
                    return Poll::Ready(Ok(sock));
                }
                // The thread's timer ran out first: yield to it (the connect starts over
                // with what is left of its own timeout if the task goes on).
                Err(e) if e.kind() == ErrorKind::TimedOut && bound < left => return Poll::Pending,
                Err(e) if e.kind() == ErrorKind::TimedOut => {
                    return Poll::Ready(Err(HttpError::ConnectTimeout {
                        url: url.to_owned(),
                    }))
                }
                Err(e) => {
                    last = Some(connect_error(e.to_string()));
                    next += 1;
                }
            }
        })
        .await
    }

    /// Write the request on `sock` and read the response head.
    async fn exchange(
        &self,
        sock: TcpStream,
        request: &[u8],
        host_port: &str,
    ) -> Result<HttpResponse<FloorBody>, Failed> {
        let mut conn = Conn::new(sock);
        let mut written = 0;
        bounded(|limit| {
            conn.sock.set_write_timeout(limit)?;
            while written < request.len() {
                match conn.sock.write(&request[written..]) {
                    Ok(0) => return Err(ErrorKind::WriteZero.into()),
                    Ok(n) => written += n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| {
            Failed::BeforeResponse(HttpError::Request(format!("sending the request: {e}")))
        })?;
        let mut pending = VecDeque::new();
        let head = loop {
            let (events, eof) = match conn.read().await {
                Ok(read) => read,
                Err(e) if conn.received == 0 => {
                    return Err(Failed::BeforeResponse(HttpError::Request(format!(
                        "reading the response: {e}"
                    ))))
                }
                Err(e) => return Err(Failed::After(HttpError::Request(e.to_string()))),
            };
            let events = events.map_err(|e| match e {
                ParseError::Truncated(why) if conn.received == 0 => Failed::BeforeResponse(
                    HttpError::Request(format!("the connection closed {why}")),
                ),
                ParseError::Truncated(why) => {
                    Failed::After(HttpError::Request(format!("the connection closed {why}")))
                }
                e => Failed::After(HttpError::Framing(format!("response head: {e}"))),
            })?;
            let mut head = None;
            for ev in events {
                match ev {
                    Event::Head(h) => head = Some(h),
                    Event::Body(b) => pending.push_back(Bytes::from(b)),
                    Event::End => conn.ended = true,
                }
            }
            conn.eof |= eof;
            if let Some(h) = head {
                break h;
            }
        };
        let reusable = self.connection == ConnectionPolicy::KeepAlive && keeps_alive(&head);
        let mut body = FloorBody {
            conn: Some(conn),
            pending,
            ended: false,
            back_to: reusable.then(|| (Arc::clone(&self.pool), host_port.to_owned())),
        };
        body.settle();
        Ok(HttpResponse {
            status: head.status,
            content_type: head.header("content-type").map(str::to_owned),
            content_encoding: head.header("content-encoding").map(str::to_owned),
            body,
        })
    }
}

/// A request that failed, and whether any byte of its response had arrived.
enum Failed {
    BeforeResponse(HttpError),
    After(HttpError),
}

impl Failed {
    fn error(self) -> HttpError {
        match self {
            Failed::BeforeResponse(e) | Failed::After(e) => e,
        }
    }
}

/// An HTTP/1.1 response that leaves its connection open (HTTP/1.0 closes by default).
fn keeps_alive(head: &Head) -> bool {
    let close = head
        .header("connection")
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
    head.version == "HTTP/1.1" && !close
}

/// The request's bytes: head and body; `Connection: close` under `fresh`, no `Connection`
/// header under keep-alive (HTTP/1.1's default, as the other backends send it).
fn request_bytes(
    req: &HttpRequest,
    path: &str,
    host_port: &str,
    connection: ConnectionPolicy,
) -> Result<Vec<u8>, HttpError> {
    let method = match req.method {
        Method::Get => "GET",
        Method::Post => "POST",
    };
    let connection = match connection {
        ConnectionPolicy::Fresh => "Connection: close\r\n",
        ConnectionPolicy::KeepAlive => "",
    };
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host_port}\r\n{connection}");
    let mut has_type = false;
    for (name, value) in &req.headers {
        if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("host") {
            continue;
        }
        if value.contains(['\r', '\n', '\0']) || name.contains(['\r', '\n', '\0', ':']) {
            return Err(HttpError::Request(format!(
                "header {name:?} contains a control character (CR, LF or NUL); it is not sent"
            )));
        }
        has_type |= name.eq_ignore_ascii_case("content-type");
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if req.method == Method::Post {
        if !has_type {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if req.method == Method::Post {
        bytes.extend_from_slice(&req.body);
    }
    Ok(bytes)
}

impl HttpClient for FloorClient {
    type Body = FloorBody;

    async fn send(&self, req: HttpRequest) -> Result<HttpResponse<FloorBody>, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl {
            url: req.url.clone(),
            reason: reason.to_owned(),
        };
        let plain_only = "the floor client speaks plain http:// only";
        if !req.url.starts_with("http://") {
            return Err(invalid(plain_only));
        }
        let t = crate::http1::target(&req.url).map_err(|_| invalid(plain_only))?;
        let request = request_bytes(&req, &t.path, &t.host_port, self.connection)?;
        let host_port = t.with_port();
        // Whatever this call is raced against registers its timers first.
        yield_once().await;
        let idle = match self.connection {
            ConnectionPolicy::KeepAlive => self.pool.take(&host_port),
            ConnectionPolicy::Fresh => None,
        };
        let reused = idle.is_some();
        let sock = match idle {
            Some(sock) => sock,
            None => self.connect(&host_port, &req.url).await?,
        };
        match self.exchange(sock, &request, &host_port).await {
            Ok(resp) => Ok(resp),
            // The server closed the idle connection: once more, on a new one.
            Err(Failed::BeforeResponse(_)) if reused => {
                self.pool.retries.fetch_add(1, Ordering::Relaxed);
                let sock = self.connect(&host_port, &req.url).await?;
                self.exchange(sock, &request, &host_port)
                    .await
                    .map_err(Failed::error)
            }
            Err(f) => Err(f.error()),
        }
    }

    /// Each agent its own pool: under keep-alive its warm connection is no one else's.
    /// Plain http only (an https URL is refused at `send`): there is no certificate to check.
    fn for_agent(&self, _tls: &chimeraforge_core::TlsTrust) -> Result<Self, HttpError> {
        Ok(FloorClient {
            connect_timeout: self.connect_timeout,
            connection: self.connection,
            pool: Arc::default(),
        })
    }

    fn connections(&self) -> ConnectionCounts {
        self.pool.opened.counts(self.connection)
    }
}

/// Run a blocking `op` given this thread's IO limit (its socket timeout); pending while a
/// timer is due or when the limit ran out.
fn bounded<T>(
    mut op: impl FnMut(Option<Duration>) -> std::io::Result<T>,
) -> impl std::future::Future<Output = std::io::Result<T>> {
    std::future::poll_fn(move |_| {
        let limit = io_limit();
        if limit == Some(Duration::ZERO) {
            return Poll::Pending;
        }
        match op(limit) {
            Err(e)
                if limit.is_some()
                    && matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                Poll::Pending
            }
            r => Poll::Ready(r),
        }
    })
}

/// A connection and its response's parser.
struct Conn {
    sock: TcpStream,
    parser: ResponseParser,
    /// What each read goes through (on the heap: a task's future stays small).
    buf: Box<[u8]>,
    /// The read timeout last set on the socket.
    read_timeout: Option<Duration>,
    /// Response bytes read so far.
    received: usize,
    /// The parser saw the end of the response.
    ended: bool,
    /// The server closed the connection.
    eof: bool,
}

impl Conn {
    fn new(sock: TcpStream) -> Self {
        // A reused connection keeps the timeout its last read set.
        let read_timeout = sock.read_timeout().unwrap_or(None);
        Conn {
            sock,
            // The call protocol caps the body (max_response_bytes); the parser does not.
            parser: ResponseParser::new(usize::MAX),
            buf: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
            read_timeout,
            received: 0,
            ended: false,
            eof: false,
        }
    }

    /// One read, parsed: its events (or the framing error) and whether it was the end of
    /// the connection.
    async fn read(&mut self) -> std::io::Result<(Result<Vec<Event>, ParseError>, bool)> {
        let n = bounded(|limit| {
            if limit != self.read_timeout {
                self.sock.set_read_timeout(limit)?;
                self.read_timeout = limit;
            }
            loop {
                match self.sock.read(&mut self.buf) {
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    r => return r,
                }
            }
        })
        .await?;
        self.received += n;
        let mut events = Vec::new();
        let parsed = if n == 0 {
            self.parser.eof(&mut events)
        } else {
            self.parser.feed(&self.buf[..n], &mut events)
        };
        Ok((parsed.map(|()| events), n == 0))
    }
}

/// A response body read from its connection as bytes arrive.
pub struct FloorBody {
    conn: Option<Conn>,
    pending: VecDeque<Bytes>,
    ended: bool,
    /// Where the connection goes when the body ends cleanly (keep-alive).
    back_to: Option<(Arc<Pool>, String)>,
}

impl FloorBody {
    /// After the parser's end: the connection back to the pool, or closed.
    fn settle(&mut self) {
        let Some(conn) = &self.conn else { return };
        if !conn.ended {
            return;
        }
        self.ended = true;
        let conn = self.conn.take().expect("checked above");
        if let Some((pool, host_port)) = self.back_to.take() {
            if !conn.eof && conn.parser.bytes_after_end() == 0 {
                pool.put(host_port, conn.sock);
            }
        }
    }
}

impl BodyStream for FloorBody {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        if let Some(b) = self.pending.pop_front() {
            return Ok(Some(b));
        }
        if self.ended {
            return Ok(None);
        }
        yield_once().await;
        loop {
            let conn = self.conn.as_mut().expect("open until the body ends");
            let (events, eof) = conn
                .read()
                .await
                .map_err(|e| HttpError::Body(e.to_string()))?;
            conn.eof |= eof;
            let events = events.map_err(|e| match e {
                ParseError::Truncated(why) => {
                    HttpError::Body(format!("the connection closed {why}"))
                }
                e => HttpError::Framing(e.to_string()),
            })?;
            for ev in events {
                match ev {
                    Event::Body(b) => self.pending.push_back(Bytes::from(b)),
                    Event::End => conn.ended = true,
                    Event::Head(_) => {}
                }
            }
            self.settle();
            if let Some(b) = self.pending.pop_front() {
                return Ok(Some(b));
            }
            if self.ended {
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overhead::floor::ThreadPerTask;
    use chimeraforge_core::AsyncRuntime;
    use std::io::BufRead;
    use std::net::TcpListener;

    /// What the test server does with one request: its connection's index and the
    /// request's index on that connection decide.
    #[derive(Clone, Copy)]
    enum Answer {
        /// A Content-Length reply; `close`: with `Connection: close`, then closed.
        Reply { close: bool },
        /// Close without a byte of reply.
        Hangup,
        /// Half a status line, then close.
        Partial,
    }

    /// A server on loopback answering every request by `script`; counts connections.
    fn serve(script: fn(usize, usize) -> Answer) -> (String, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/api/generate", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for (c, sock) in listener.incoming().enumerate() {
                count.fetch_add(1, Ordering::SeqCst);
                let sock = sock.unwrap();
                std::thread::spawn(move || {
                    let mut reader = std::io::BufReader::new(sock.try_clone().unwrap());
                    let mut sock = sock;
                    for r in 0.. {
                        let mut length = 0;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if let Some(v) =
                                line.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap();
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        match script(c, r) {
                            Answer::Reply { close } => {
                                let header = if close { "Connection: close\r\n" } else { "" };
                                let reply = format!(
                                    "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n{header}Content-Length: 3\r\n\r\nc{c}\n"
                                );
                                sock.write_all(reply.as_bytes()).unwrap();
                                if close {
                                    return;
                                }
                            }
                            Answer::Hangup => return,
                            Answer::Partial => {
                                let _ = sock.write_all(b"HTTP/1.1 2");
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    /// `calls` requests one after another; each body, or the error.
    fn calls(client: &FloorClient, url: &str, calls: usize) -> Vec<Result<String, HttpError>> {
        ThreadPerTask.block_on(async {
            let mut out = Vec::new();
            for _ in 0..calls {
                let result = async {
                    let mut body = client.send(HttpRequest::post_json(url, "{}")).await?.body;
                    let mut text = Vec::new();
                    while let Some(b) = body.next_chunk().await? {
                        text.extend_from_slice(&b);
                    }
                    Ok(String::from_utf8(text).unwrap())
                };
                out.push(result.await);
            }
            out
        })
    }

    fn keep_alive() -> FloorClient {
        FloorClient::new(&ClientOptions {
            connection: ConnectionPolicy::KeepAlive,
            ..ClientOptions::default()
        })
    }

    #[test]
    fn keep_alive_reuses_one_connection_and_fresh_opens_one_per_call() {
        let (url, accepted) = serve(|_, _| Answer::Reply { close: false });
        let client = keep_alive();
        let bodies = calls(&client, &url, 3);
        assert!(
            bodies.iter().all(|b| b.as_deref() == Ok("c0\n")),
            "{bodies:?}"
        );
        assert_eq!((client.connections_opened(), client.retries()), (1, 0));
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        let fresh = FloorClient::new(&ClientOptions {
            connection: ConnectionPolicy::Fresh,
            ..ClientOptions::default()
        });
        let bodies = calls(&fresh, &url, 3);
        assert!(bodies.iter().all(Result::is_ok), "{bodies:?}");
        assert_eq!((fresh.connections_opened(), fresh.retries()), (3, 0));
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
    }

    /// A connection reused after a read bounded by a timer (its socket kept that timeout)
    /// reads without one as long as it takes.
    #[test]
    fn a_reused_connection_drops_its_last_read_timeout() {
        let (url, _) = serve(|_, r| {
            if r == 1 {
                std::thread::sleep(Duration::from_millis(300));
            }
            Answer::Reply { close: false }
        });
        let client = keep_alive();
        let rt = ThreadPerTask;
        let first = rt.block_on(async {
            use chimeraforge_core::call::within;
            let limit = Duration::from_millis(100);
            let req = HttpRequest::post_json(&url, "{}");
            let resp = within(&rt, limit, client.send(req)).await.unwrap().unwrap();
            let mut body = resp.body;
            within(&rt, limit, body.next_chunk())
                .await
                .unwrap()
                .unwrap()
        });
        assert_eq!(first.as_deref(), Some(&b"c0\n"[..]));
        assert_eq!(calls(&client, &url, 1), [Ok("c0\n".into())]);
        assert_eq!((client.connections_opened(), client.retries()), (1, 0));
    }

    #[test]
    fn a_connection_closed_while_idle_is_replaced_once() {
        // Each connection serves one request and then hangs up on the next one.
        let (url, _) = serve(|_, r| {
            if r == 0 {
                Answer::Reply { close: false }
            } else {
                Answer::Hangup
            }
        });
        let client = keep_alive();
        let bodies = calls(&client, &url, 3);
        assert_eq!(
            bodies,
            [Ok("c0\n".into()), Ok("c1\n".into()), Ok("c2\n".into())]
        );
        assert_eq!((client.connections_opened(), client.retries()), (3, 2));
    }

    #[test]
    fn connection_close_in_a_reply_is_not_reused() {
        let (url, _) = serve(|_, _| Answer::Reply { close: true });
        let client = keep_alive();
        assert!(calls(&client, &url, 2).iter().all(Result::is_ok));
        assert_eq!((client.connections_opened(), client.retries()), (2, 0));
    }

    #[test]
    fn no_retry_once_reply_bytes_arrived() {
        let (url, _) = serve(|_, r| {
            if r == 0 {
                Answer::Reply { close: false }
            } else {
                Answer::Partial
            }
        });
        let client = keep_alive();
        let bodies = calls(&client, &url, 2);
        assert_eq!(bodies[0].as_deref(), Ok("c0\n"));
        let err = bodies[1].clone().unwrap_err();
        assert!(
            err.to_string()
                .contains("closed before the reply's headers ended"),
            "{err}"
        );
        assert_eq!((client.connections_opened(), client.retries()), (1, 0));
    }

    #[test]
    fn https_is_refused_as_an_invalid_url() {
        let client = keep_alive();
        let sent = ThreadPerTask.block_on(client.send(HttpRequest::get("https://127.0.0.1:1/")));
        match sent {
            Err(HttpError::InvalidUrl { reason, .. }) => assert!(reason.contains("http://")),
            Err(e) => panic!("got {e:?}"),
            Ok(_) => panic!("an https URL was sent in plain text"),
        }
        assert_eq!(client.connections_opened(), 0);
    }

    #[test]
    fn the_request_says_the_policy_and_drops_a_conflicting_header() {
        let mut req = HttpRequest::post_json("http://h:1/p", "{}");
        req.headers.push(("connection".into(), "close".into()));
        req.headers
            .push(("accept-encoding".into(), "identity".into()));
        let text = |c| String::from_utf8(request_bytes(&req, "/p", "h:1", c).unwrap()).unwrap();
        let ka = text(ConnectionPolicy::KeepAlive);
        assert!(
            ka.starts_with("POST /p HTTP/1.1\r\nHost: h:1\r\naccept-encoding: identity\r\n"),
            "{ka}"
        );
        assert!(!ka.to_ascii_lowercase().contains("connection"), "{ka}");
        assert!(ka.ends_with("accept-encoding: identity\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"), "{ka}");
        assert!(text(ConnectionPolicy::Fresh).contains("Connection: close\r\n"));
        req.headers.push(("x".into(), "a\r\nb".into()));
        assert!(request_bytes(&req, "/p", "h:1", ConnectionPolicy::Fresh).is_err());
    }
}
