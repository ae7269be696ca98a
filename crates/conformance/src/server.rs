//! A scripted HTTP/1.1 server on `std::net`: exact chunk splits, exact stalls.
//!
//! One thread per connection, bound to `127.0.0.1:0`. Each request is answered with a
//! [`Reply`] chosen by a script; every write is one `write_all` on a `TCP_NODELAY`
//! socket, so what the script says is one chunk leaves as one segment, and every pause
//! is a real pause. What happened on each exchange is recorded with `Instant`s on the
//! same clock the client reads.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `transfer-encoding: chunked`; each [`Step::Send`] is one HTTP chunk.
    Chunked,
    /// `content-length` = the sum of all [`Step::Send`] payloads.
    ContentLength,
    /// Neither header: the body ends when the server closes the connection, which it
    /// does after the last step (RFC 9112 §6.3 rule 8).
    CloseDelimited,
}

/// One step of a scripted response body.
#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes (non-empty) in one `write_all`.
    Send(Vec<u8>),
    /// Wait this long, watching the socket: if the peer closes, the exchange ends there.
    Pause(Duration),
    /// Write these bytes as they are, outside any framing (a malformed chunk line).
    Raw(Vec<u8>),
    /// Reset the connection (close with `SO_LINGER` 0, so the peer reads ECONNRESET);
    /// the exchange ends there.
    Reset,
    /// A flood: write these bytes (one chunk each time) again and again, `gap` apart (zero:
    /// as fast as the peer reads), until the peer closes or `limit` has passed. Writes are
    /// counted in [`Exchange::flood_writes`], not timed in `sent_at`.
    Flood {
        bytes: Vec<u8>,
        gap: Duration,
        limit: Duration,
    },
}

/// A scripted response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub framing: Framing,
    /// Pause before the response head is written (watching for the peer closing).
    pub head_delay: Duration,
    pub steps: Vec<Step>,
    /// `HTTP/1.0` in the status line instead of `HTTP/1.1`.
    pub http10: bool,
    /// Written after each chunk's size, `;` included (`;ext=1`), with chunked framing.
    pub chunk_extension: Option<String>,
    /// Extra header lines, written as given.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// A chunked `application/x-ndjson` reply with `status` and no body yet.
    pub fn new(status: u16) -> Self {
        Reply {
            status,
            content_type: Some("application/x-ndjson".to_owned()),
            framing: Framing::Chunked,
            head_delay: Duration::ZERO,
            steps: Vec::new(),
            http10: false,
            chunk_extension: None,
            headers: Vec::new(),
        }
    }

    /// Answer with an `HTTP/1.0` status line.
    pub fn http10(mut self) -> Self {
        self.http10 = true;
        self
    }

    /// Write `extension` (e.g. `;ext=1`) after each chunk size.
    pub fn chunk_extension(mut self, extension: &str) -> Self {
        self.chunk_extension = Some(extension.to_owned());
        self
    }

    /// Add the header line `name: value` to the head.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Append a write of `bytes` outside any framing.
    pub fn raw(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.steps.push(Step::Raw(bytes.into()));
        self
    }

    /// Append a connection reset.
    pub fn reset(mut self) -> Self {
        self.steps.push(Step::Reset);
        self
    }

    /// Append a flood of `bytes` (see [`Step::Flood`]). Only with chunked framing.
    pub fn flood(mut self, bytes: impl Into<Vec<u8>>, gap: Duration, limit: Duration) -> Self {
        let bytes = bytes.into();
        assert!(!bytes.is_empty(), "a scripted write must not be empty");
        assert_eq!(
            self.framing,
            Framing::Chunked,
            "a flood has no content-length"
        );
        self.steps.push(Step::Flood { bytes, gap, limit });
        self
    }

    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    pub fn content_type(mut self, content_type: &str) -> Self {
        self.content_type = Some(content_type.to_owned());
        self
    }

    pub fn head_delay(mut self, delay: Duration) -> Self {
        self.head_delay = delay;
        self
    }

    /// Append one write of `bytes`.
    pub fn send(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        let bytes = bytes.into();
        assert!(!bytes.is_empty(), "a scripted write must not be empty");
        self.steps.push(Step::Send(bytes));
        self
    }

    /// Append a pause.
    pub fn pause(mut self, dur: Duration) -> Self {
        self.steps.push(Step::Pause(dur));
        self
    }

    /// Append one write per chunk, with `gap` between consecutive writes.
    pub fn send_split<I, C>(mut self, chunks: I, gap: Duration) -> Self
    where
        I: IntoIterator<Item = C>,
        C: Into<Vec<u8>>,
    {
        for (i, chunk) in chunks.into_iter().enumerate() {
            if i > 0 && !gap.is_zero() {
                self = self.pause(gap);
            }
            self = self.send(chunk);
        }
        self
    }

    fn body_len(&self) -> usize {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Send(b) => b.len(),
                Step::Pause(_) | Step::Raw(_) | Step::Reset | Step::Flood { .. } => 0,
            })
            .sum()
    }
}

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ReceivedRequest {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What happened on one request/response exchange.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub request: ReceivedRequest,
    /// When the whole request (head and body) had been read.
    pub received_at: Instant,
    /// When each [`Step::Send`] write returned, in order.
    pub sent_at: Vec<Instant>,
    /// When the response was completely written.
    pub finished_at: Option<Instant>,
    /// When the server saw the peer close (EOF, reset or a failed write) mid-response.
    pub peer_closed_at: Option<Instant>,
    /// Writes made by [`Step::Flood`] steps.
    pub flood_writes: u64,
    /// Which connection the request came on: 0 for the first accepted, and so on.
    pub connection: usize,
}

/// When the server closes a connection between requests on its own, as real servers do
/// (llama.cpp after 5 s idle, nginx after 1000 requests), without a word to the client.
/// A reply carrying a `connection: close` header always closes its connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Closes {
    /// Close a connection that has been idle this long after a response.
    pub idle: Option<Duration>,
    /// Close a connection once it has answered this many requests.
    pub after_requests: Option<usize>,
}

type Script = dyn Fn(&ReceivedRequest) -> Reply + Send + Sync;

struct State {
    script: Box<Script>,
    closes: Closes,
    exchanges: Mutex<Vec<Exchange>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    connections: AtomicUsize,
    stop: AtomicBool,
}

impl State {
    fn exchanges(&self) -> MutexGuard<'_, Vec<Exchange>> {
        self.exchanges.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A loopback HTTP/1.1 server answering every request with a scripted [`Reply`].
pub struct ScriptedServer {
    addr: SocketAddr,
    state: Arc<State>,
}

impl ScriptedServer {
    /// Start serving on `127.0.0.1:0`; `script` picks the reply for each request.
    pub fn start(script: impl Fn(&ReceivedRequest) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_closing(Closes::default(), script)
    }

    /// [`ScriptedServer::start`], closing connections between requests as `closes` says.
    pub fn start_closing(
        closes: Closes,
        script: impl Fn(&ReceivedRequest) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            script: Box::new(script),
            closes,
            exchanges: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let accept_state = Arc::clone(&state);
        thread::Builder::new()
            .name("scripted-accept".into())
            .spawn(move || accept_loop(listener, accept_state))
            .expect("spawn accept thread");
        ScriptedServer { addr, state }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A snapshot of every exchange so far, in the order requests were received.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.state.exchanges().clone()
    }

    /// The most responses that were being written at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>) {
    for stream in listener.incoming() {
        if state.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let connection = state.connections.fetch_add(1, Ordering::SeqCst);
        let conn_state = Arc::clone(&state);
        let spawned = thread::Builder::new()
            .name("scripted-conn".into())
            .spawn(move || serve_connection(stream, &conn_state, connection));
        if spawned.is_err() {
            return;
        }
    }
}

/// Serve requests on one keep-alive connection until the peer closes it (or the server
/// does, as `state.closes` says).
fn serve_connection(stream: TcpStream, state: &State, connection: usize) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream);
    let mut answered = 0;
    loop {
        if let Some(idle) = state.closes.idle.filter(|_| answered > 0) {
            if !request_within(&mut reader, idle) {
                return;
            }
        }
        let request = match read_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) | Err(_) => return,
        };
        let reply = (state.script)(&request);
        let index = {
            let mut exchanges = state.exchanges();
            exchanges.push(Exchange {
                request,
                received_at: Instant::now(),
                sent_at: Vec::new(),
                finished_at: None,
                peer_closed_at: None,
                flood_writes: 0,
                connection,
            });
            exchanges.len() - 1
        };
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let completed = play(&mut reader, &reply, state, index);
        state.in_flight.fetch_sub(1, Ordering::SeqCst);
        answered += 1;
        let announced = reply
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close"));
        let limit = state.closes.after_requests.is_some_and(|n| answered >= n);
        // A close-delimited body ends with the connection.
        if !completed || reply.framing == Framing::CloseDelimited || announced || limit {
            return;
        }
    }
}

/// Wait up to `idle` for the next request to start arriving; false when it did not (or
/// the peer closed): the connection is then closed.
fn request_within(reader: &mut BufReader<TcpStream>, idle: Duration) -> bool {
    if !reader.buffer().is_empty() {
        return true;
    }
    if reader.get_ref().set_read_timeout(Some(idle)).is_err() {
        return false;
    }
    let arrived = loop {
        match reader.fill_buf() {
            Ok(bytes) => break !bytes.is_empty(),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break false,
        }
    };
    let _ = reader.get_ref().set_read_timeout(None);
    arrived
}

/// Write `reply`; false if the peer closed the connection before it was complete, or the
/// script reset it.
fn play(reader: &mut BufReader<TcpStream>, reply: &Reply, state: &State, index: usize) -> bool {
    let closed = |state: &State| {
        state.exchanges()[index].peer_closed_at = Some(Instant::now());
        false
    };
    if !reply.head_delay.is_zero() && !watch(reader, reply.head_delay) {
        return closed(state);
    }
    let mut head = format!(
        "HTTP/1.{} {} {}\r\n",
        if reply.http10 { 0 } else { 1 },
        reply.status,
        reason_phrase(reply.status)
    );
    if let Some(ct) = &reply.content_type {
        head.push_str(&format!("content-type: {ct}\r\n"));
    }
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match reply.framing {
        Framing::Chunked => head.push_str("transfer-encoding: chunked\r\n"),
        Framing::ContentLength => {
            head.push_str(&format!("content-length: {}\r\n", reply.body_len()))
        }
        Framing::CloseDelimited => {}
    }
    head.push_str("\r\n");
    if reader.get_ref().write_all(head.as_bytes()).is_err() {
        return closed(state);
    }
    for step in &reply.steps {
        match step {
            Step::Send(bytes) => {
                let frame = match reply.framing {
                    Framing::Chunked => {
                        let ext = reply.chunk_extension.as_deref().unwrap_or("");
                        let mut frame = format!("{:x}{ext}\r\n", bytes.len()).into_bytes();
                        frame.extend_from_slice(bytes);
                        frame.extend_from_slice(b"\r\n");
                        frame
                    }
                    Framing::ContentLength | Framing::CloseDelimited => bytes.clone(),
                };
                if reader.get_ref().write_all(&frame).is_err() {
                    return closed(state);
                }
                state.exchanges()[index].sent_at.push(Instant::now());
            }
            Step::Pause(dur) => {
                if !watch(reader, *dur) {
                    return closed(state);
                }
            }
            Step::Raw(bytes) => {
                if reader.get_ref().write_all(bytes).is_err() {
                    return closed(state);
                }
                state.exchanges()[index].sent_at.push(Instant::now());
            }
            Step::Reset => {
                set_linger_zero(reader.get_ref());
                return false;
            }
            Step::Flood { bytes, gap, limit } => {
                let mut frame = format!("{:x}\r\n", bytes.len()).into_bytes();
                frame.extend_from_slice(bytes);
                frame.extend_from_slice(b"\r\n");
                let end = Instant::now() + *limit;
                while Instant::now() < end {
                    if reader.get_ref().write_all(&frame).is_err() {
                        return closed(state);
                    }
                    state.exchanges()[index].flood_writes += 1;
                    if !gap.is_zero() && !watch(reader, *gap) {
                        return closed(state);
                    }
                }
            }
        }
    }
    if reply.framing == Framing::Chunked {
        let ext = reply.chunk_extension.as_deref().unwrap_or("");
        if reader
            .get_ref()
            .write_all(format!("0{ext}\r\n\r\n").as_bytes())
            .is_err()
        {
            return closed(state);
        }
    }
    state.exchanges()[index].finished_at = Some(Instant::now());
    true
}

/// `SO_LINGER` with a zero timeout: closing the socket then sends RST, not FIN.
fn set_linger_zero(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid open socket and a correctly sized `linger` value.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt SO_LINGER: {}",
        std::io::Error::last_os_error()
    );
}

/// Wait `dur` watching the socket; false if the peer closed or reset it meanwhile.
fn watch(reader: &mut BufReader<TcpStream>, dur: Duration) -> bool {
    let deadline = Instant::now() + dur;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        if reader.get_ref().set_read_timeout(Some(left)).is_err() {
            return false;
        }
        let seen = match reader.fill_buf() {
            Ok([]) => Some(false),
            // A client talking mid-response (pipelining): keep it for the next request.
            Ok(_) => {
                thread::sleep(left);
                Some(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => Some(false),
        };
        let _ = reader.get_ref().set_read_timeout(None);
        match seen {
            Some(open) => return open,
            None => continue,
        }
    }
}

/// Read one request; `None` on a clean EOF before any byte of it.
fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<ReceivedRequest>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let mut request = ReceivedRequest {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
    if chunked {
        request.body = read_chunked(reader)?;
    } else if let Some(len) = request.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| std::io::Error::new(ErrorKind::InvalidData, "bad content-length"))?;
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        request.body = body;
    }
    Ok(Some(request))
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| std::io::Error::new(ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        line.clear();
        reader.read_line(&mut line)?;
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_exchange(server: &ScriptedServer, request: &[u8]) -> Vec<u8> {
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream.write_all(request).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn chunked_reply_is_framed_exactly() {
        let server = ScriptedServer::start(|_| Reply::new(200).send("ab").send("cde"));
        let out = raw_exchange(&server, b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.ends_with("\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"),
            "{text}"
        );
        let ex = server.exchanges();
        assert_eq!(ex.len(), 1);
        assert_eq!(ex[0].request.method, "GET");
        assert_eq!(ex[0].request.path, "/x");
        assert_eq!(ex[0].sent_at.len(), 2);
        assert!(ex[0].finished_at.is_some());
    }

    #[test]
    fn content_length_reply_and_request_body() {
        let server = ScriptedServer::start(|req| {
            Reply::new(404)
                .framing(Framing::ContentLength)
                .content_type("application/json")
                .send(req.body.clone())
        });
        let out = raw_exchange(
            &server,
            b"POST /p HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody",
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("content-length: 4\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nbody"), "{text}");
        assert_eq!(
            server.exchanges()[0].request.header("CONTENT-LENGTH"),
            Some("4")
        );
    }

    #[test]
    fn chunked_request_body_is_decoded() {
        let server = ScriptedServer::start(|_| Reply::new(200).send("ok"));
        raw_exchange(
            &server,
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
        assert_eq!(server.exchanges()[0].request.body, b"abcde");
    }

    #[test]
    fn http10_close_delimited_reply_ends_with_the_connection() {
        let server = ScriptedServer::start(|_| {
            Reply::new(200)
                .http10()
                .framing(Framing::CloseDelimited)
                .send("ab")
                .send("cde")
        });
        let out = raw_exchange(&server, b"GET / HTTP/1.1\r\n\r\n");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
        assert!(!text.contains("content-length") && !text.contains("transfer-encoding"));
        assert!(text.ends_with("\r\n\r\nabcde"), "{text}");
    }

    #[test]
    fn chunk_extensions_raw_bytes_and_extra_headers_are_written() {
        let server = ScriptedServer::start(|_| {
            Reply::new(200)
                .chunk_extension(";ext=1")
                .header("x-extra", "yes")
                .send("hello")
                .raw("zz\r\n")
        });
        let out = raw_exchange(&server, b"GET / HTTP/1.1\r\n\r\n");
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("x-extra: yes\r\n"), "{text}");
        assert!(
            text.ends_with("\r\n\r\n5;ext=1\r\nhello\r\nzz\r\n0;ext=1\r\n\r\n"),
            "{text}"
        );
    }

    #[test]
    fn reset_step_resets_the_connection() {
        let server = ScriptedServer::start(|_| {
            Reply::new(200)
                .send("first")
                .pause(Duration::from_millis(50))
                .reset()
        });
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut buf = [0; 256];
        let mut got = Vec::new();
        let err = loop {
            match stream.read(&mut buf) {
                Ok(0) => panic!("clean EOF instead of a reset after {got:?}"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
        assert!(got.ends_with(b"5\r\nfirst\r\n"));
        assert!(server.exchanges()[0].finished_at.is_none());
    }

    #[test]
    fn peer_close_during_pause_is_seen() {
        let server = ScriptedServer::start(|_| {
            Reply::new(200)
                .send("first")
                .pause(Duration::from_secs(5))
                .send("never")
        });
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut buf = [0; 256];
        let _ = stream.read(&mut buf).unwrap();
        let dropped_at = Instant::now();
        drop(stream);
        let deadline = Instant::now() + Duration::from_secs(2);
        while server.exchanges()[0].peer_closed_at.is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        let closed = server.exchanges()[0].peer_closed_at.expect("close seen");
        assert!(closed.duration_since(dropped_at) < Duration::from_millis(500));
    }
}
