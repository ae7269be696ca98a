//! The parent's own HTTP/1.1 client, for the pre-bench check ([`crate::preflight`]) and
//! `chimeraforge doctor`: blocking, `std::net` only, no async runtime (the measured clients
//! live in the children; this one never measures a run).
//!
//! Every request says `Connection: close`. The reply is framed as HTTP/1.1 says: exactly
//! `Content-Length` bytes, a chunked body (chunk extensions and trailers included), or, only
//! when the reply has neither, everything until the server closes. So a server that keeps
//! the connection open after a complete reply is never waited out. A reply that does not
//! finish before its deadline is [`HttpError::TimedOut`], not a failure to connect.
//!
//! [`ResponseParser`] is sans-IO (bytes in, events out), so it is tested on every split of
//! its input; [`send`] only moves bytes between it and a socket.
//!
//! `https://` URLs go over rustls configured as the measured Rust clients are (core's
//! `tls` module: the webpki roots plus the endpoint's `ca_file`, or nothing verified under
//! `tls_insecure`), the handshake within the connect timeout.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use chimeraforge_core::TlsTrust;

/// Longest response head (status line and headers) accepted, bytes.
pub const MAX_HEAD_BYTES: usize = 64 << 10;
/// Longest line of the chunked framing (a chunk-size line, a trailer) accepted, bytes.
pub const MAX_FRAMING_LINE_BYTES: usize = 8 << 10;
/// Interim (1xx) responses skipped before the final one; more is an error.
const MAX_INTERIM: usize = 8;

/// A response's status line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    pub status: u16,
    /// Header names lowercased, values trimmed, in the order received.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the parser found in the bytes fed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The final response's head (interim 1xx responses are skipped).
    Head(Head),
    /// Body bytes, de-chunked.
    Body(Vec<u8>),
    /// The body is complete.
    End,
}

/// Bytes that are not a well-formed HTTP/1.x response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("it does not start with an HTTP/1.x status line (it starts {0:?})")]
    NotHttp(String),
    #[error("malformed status line {0:?}")]
    BadStatusLine(String),
    #[error("malformed header line {0:?}")]
    BadHeader(String),
    #[error("its headers exceed {limit} bytes")]
    HeadTooLarge { limit: usize },
    #[error("invalid Content-Length {0:?}")]
    BadContentLength(String),
    #[error("invalid chunk-size line {0:?}")]
    BadChunkSize(String),
    #[error("a chunk's data is not followed by CRLF (found {0:?})")]
    BadChunkEnd(String),
    #[error("a line of its chunked framing exceeds {limit} bytes")]
    FramingLineTooLong { limit: usize },
    #[error("more than {limit} interim (1xx) responses")]
    TooManyInterim { limit: usize },
    #[error("the body exceeds {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("the connection closed {0}")]
    Truncated(String),
}

#[derive(Debug)]
enum State {
    Head,
    Length { left: u64 },
    ChunkSize,
    ChunkData { left: u64 },
    ChunkEnd,
    Trailers,
    UntilClose,
    Done,
}

/// A sans-IO HTTP/1.x response parser: feed it bytes as they arrive, get [`Event`]s.
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    /// The head, or the current line of the chunked framing, so far.
    buf: Vec<u8>,
    max_body: usize,
    body_bytes: usize,
    interim: usize,
    /// Bytes fed after the end of the response (not this response's).
    after_end: usize,
}

impl ResponseParser {
    /// A parser for the reply to one request that is not `HEAD`, accepting a body of at
    /// most `max_body` bytes.
    pub fn new(max_body: usize) -> Self {
        ResponseParser {
            state: State::Head,
            buf: Vec::new(),
            max_body,
            body_bytes: 0,
            interim: 0,
            after_end: 0,
        }
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Bytes fed after the end of the response: a connection that has some is not at the
    /// start of a next response, so it cannot be reused.
    pub fn bytes_after_end(&self) -> usize {
        self.after_end
    }

    /// Feed the next bytes read; complete events are appended to `out`. Bytes after the end
    /// of the response are ignored (counted in [`ResponseParser::bytes_after_end`]).
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<Event>) -> Result<(), ParseError> {
        while !input.is_empty() {
            match &mut self.state {
                State::Done => {
                    self.after_end += input.len();
                    return Ok(());
                }
                State::Head => {
                    let scanned = self.buf.len();
                    self.buf.extend_from_slice(input);
                    input = &[];
                    let prefix = &self.buf[..self.buf.len().min(5)];
                    if !b"HTTP/".starts_with(prefix) {
                        let shown = String::from_utf8_lossy(&self.buf[..self.buf.len().min(40)]);
                        return Err(ParseError::NotHttp(shown.into_owned()));
                    }
                    match head_end(&self.buf, scanned.saturating_sub(2)) {
                        Some(end) if end <= MAX_HEAD_BYTES => {
                            let rest = self.buf.split_off(end);
                            let head = parse_head(&std::mem::take(&mut self.buf))?;
                            self.start_body(head, out)?;
                            // What followed the head is body (or the next head after a 1xx).
                            self.feed(&rest, out)?;
                        }
                        None if self.buf.len() <= MAX_HEAD_BYTES => {}
                        _ => {
                            return Err(ParseError::HeadTooLarge {
                                limit: MAX_HEAD_BYTES,
                            })
                        }
                    }
                }
                State::Length { left } => {
                    let n = input
                        .len()
                        .min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= n as u64;
                    let done = *left == 0;
                    self.body(&input[..n], out)?;
                    input = &input[n..];
                    if done {
                        self.finish(out);
                    }
                }
                State::UntilClose => {
                    self.body(input, out)?;
                    input = &[];
                }
                State::ChunkData { left } => {
                    let n = input
                        .len()
                        .min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = State::ChunkEnd;
                    }
                    self.body(&input[..n], out)?;
                    input = &input[n..];
                }
                State::ChunkSize | State::ChunkEnd | State::Trailers => {
                    let Some(line) = self.line(&mut input)? else {
                        continue;
                    };
                    match self.state {
                        State::ChunkSize => {
                            let size = chunk_size(&line)?;
                            self.state = if size == 0 {
                                State::Trailers
                            } else {
                                State::ChunkData { left: size }
                            };
                        }
                        State::ChunkEnd if line.is_empty() => self.state = State::ChunkSize,
                        State::ChunkEnd => {
                            return Err(ParseError::BadChunkEnd(
                                String::from_utf8_lossy(&line).into_owned(),
                            ))
                        }
                        // Trailer fields are read and dropped; the empty line ends the body.
                        _ if line.is_empty() => self.finish(out),
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// The connection closed: a close-delimited body ends here; anything else unfinished is
    /// [`ParseError::Truncated`].
    pub fn eof(&mut self, out: &mut Vec<Event>) -> Result<(), ParseError> {
        let why = match &self.state {
            State::Done => return Ok(()),
            State::UntilClose => {
                self.finish(out);
                return Ok(());
            }
            State::Head if self.buf.is_empty() => "without sending a reply".to_owned(),
            State::Head => "before the reply's headers ended".to_owned(),
            State::Length { left } => {
                format!("with {left} of the body's bytes (Content-Length) still to come")
            }
            State::ChunkSize | State::ChunkData { .. } | State::ChunkEnd => {
                "inside the chunked body, before its last chunk".to_owned()
            }
            State::Trailers => "before the end of the chunked body's trailers".to_owned(),
        };
        Err(ParseError::Truncated(why))
    }

    fn start_body(&mut self, head: Head, out: &mut Vec<Event>) -> Result<(), ParseError> {
        if (100..200).contains(&head.status) && head.status != 101 {
            self.interim += 1;
            if self.interim > MAX_INTERIM {
                return Err(ParseError::TooManyInterim { limit: MAX_INTERIM });
            }
            return Ok(()); // still State::Head: the final response follows
        }
        let chunked = head.header("transfer-encoding").map(|te| {
            te.rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
        });
        let length = match head.header("content-length") {
            Some(v) => Some(content_length(&head, v)?),
            None => None,
        };
        let no_body = head.status == 101 || head.status == 204 || head.status == 304;
        self.state = match (no_body, chunked, length) {
            (true, _, _) => State::Done,
            (false, Some(true), _) => State::ChunkSize,
            // A transfer coding other than chunked last: the body runs to the close.
            (false, Some(false), _) => State::UntilClose,
            (false, None, Some(0)) => State::Done,
            (false, None, Some(n)) if n > self.max_body as u64 => {
                return Err(ParseError::BodyTooLarge {
                    limit: self.max_body,
                })
            }
            (false, None, Some(n)) => State::Length { left: n },
            (false, None, None) => State::UntilClose,
        };
        out.push(Event::Head(head));
        if self.is_done() {
            out.push(Event::End);
        }
        Ok(())
    }

    fn body(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Result<(), ParseError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.body_bytes += bytes.len();
        if self.body_bytes > self.max_body {
            return Err(ParseError::BodyTooLarge {
                limit: self.max_body,
            });
        }
        match out.last_mut() {
            Some(Event::Body(b)) => b.extend_from_slice(bytes),
            _ => out.push(Event::Body(bytes.to_vec())),
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Event>) {
        self.state = State::Done;
        out.push(Event::End);
    }

    /// One line of the chunked framing (without its CRLF or LF) once it is complete.
    fn line(&mut self, input: &mut &[u8]) -> Result<Option<Vec<u8>>, ParseError> {
        let (line_part, complete) = match input.iter().position(|&b| b == b'\n') {
            Some(i) => (&input[..i], Some(i + 1)),
            None => (*input, None),
        };
        if self.buf.len() + line_part.len() > MAX_FRAMING_LINE_BYTES {
            return Err(ParseError::FramingLineTooLong {
                limit: MAX_FRAMING_LINE_BYTES,
            });
        }
        self.buf.extend_from_slice(line_part);
        match complete {
            None => {
                *input = &[];
                Ok(None)
            }
            Some(used) => {
                *input = &input[used..];
                let mut line = std::mem::take(&mut self.buf);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Ok(Some(line))
            }
        }
    }
}

/// The offset just past the empty line that ends a head (`\r\n\r\n` or `\n\n`), searching
/// from `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len()).find_map(|i| {
        if buf[i] != b'\n' {
            return None;
        }
        match buf.get(i + 1..) {
            Some([b'\n', ..]) => Some(i + 2),
            Some([b'\r', b'\n', ..]) => Some(i + 3),
            _ => None,
        }
    })
}

fn parse_head(bytes: &[u8]) -> Result<Head, ParseError> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let bad = || ParseError::BadStatusLine(status_line.to_owned());
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(bad());
    }
    let code = parts.next().unwrap_or_default();
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let status: u16 = code.parse().map_err(|_| bad())?;
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        match line.split_once(':') {
            Some((name, value))
                if !name.is_empty() && !name.contains(|c: char| c.is_ascii_whitespace()) =>
            {
                headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
            }
            _ => return Err(ParseError::BadHeader(line.to_owned())),
        }
    }
    Ok(Head {
        version: version.to_owned(),
        status,
        headers,
    })
}

/// The one Content-Length of `head` (repeated identical values are one value).
fn content_length(head: &Head, first: &str) -> Result<u64, ParseError> {
    let mut value: Option<u64> = None;
    for (_, v) in head.headers.iter().filter(|(k, _)| k == "content-length") {
        for part in v.split(',') {
            let part = part.trim();
            let n: u64 = if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse()
                    .map_err(|_| ParseError::BadContentLength(first.to_owned()))?
            } else {
                return Err(ParseError::BadContentLength(v.clone()));
            };
            if value.is_some_and(|prev| prev != n) {
                return Err(ParseError::BadContentLength(v.clone()));
            }
            value = Some(n);
        }
    }
    value.ok_or_else(|| ParseError::BadContentLength(first.to_owned()))
}

/// A chunk-size line's size: hex digits, then optional whitespace and `;extensions`.
fn chunk_size(line: &[u8]) -> Result<u64, ParseError> {
    let bad = || ParseError::BadChunkSize(String::from_utf8_lossy(line).into_owned());
    let text = std::str::from_utf8(line).map_err(|_| bad())?;
    let digits = text.split(';').next().unwrap_or_default().trim();
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    u64::from_str_radix(digits, 16).map_err(|_| bad())
}

/// A request that could not be made or whose reply could not be read. Each says which
/// request it was and to whom.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("{url} is not an http:// or https:// URL")]
    BadUrl { url: String },
    /// The connection was accepted; the TLS handshake failed (an untrusted certificate, a
    /// server that does not speak TLS there). `reason` names the endpoint and the fix.
    #[error("TLS handshake with {origin} failed: {reason}")]
    Tls { origin: String, reason: String },
    /// Nothing accepted the connection (refused, no route, the connect timed out, the host
    /// does not resolve): the only error that means "unreachable".
    #[error("{reason}")]
    Unreachable { origin: String, reason: String },
    #[error(
        "header {name} for {origin} contains a control character (CR, LF or NUL); it is not sent"
    )]
    BadHeaderValue { name: String, origin: String },
    /// The server accepted the connection but did not take the request or finish its reply
    /// in time.
    #[error("{}", timed_out_text(.method, .path, .origin, *.after, *.sending))]
    TimedOut {
        method: String,
        path: String,
        origin: String,
        after: Duration,
        sending: bool,
    },
    #[error("the connection to {origin} failed during {method} {path}: {reason}")]
    Io {
        method: String,
        path: String,
        origin: String,
        reason: String,
    },
    #[error("the reply to {method} {path} from {origin} is not valid HTTP/1.1: {error}")]
    Malformed {
        method: String,
        path: String,
        origin: String,
        error: ParseError,
    },
    #[error(
        "the reply to {method} {path} from {origin} exceeds {limit} bytes; the rest was not read"
    )]
    TooLarge {
        method: String,
        path: String,
        origin: String,
        limit: usize,
    },
}

fn timed_out_text(
    method: &str,
    path: &str,
    origin: &str,
    after: Duration,
    sending: bool,
) -> String {
    let what = if sending {
        format!("sending {method} {path} to {origin}")
    } else {
        format!("reading the reply to {method} {path} from {origin}")
    };
    format!("timed out {what} after {}", human(after))
}

/// A duration as a person reads it: `5 s`, `2.5 s`, `300 ms`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 1000 && ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else if ms >= 1000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{ms} ms")
    }
}

/// One request to make.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// `http://host[:port]/path`.
    pub url: &'a str,
    /// A JSON body (sent with `Content-Type: application/json`).
    pub json: Option<&'a [u8]>,
    /// Sent as `Authorization: Bearer KEY`; never printed.
    pub bearer: Option<&'a str>,
    pub accept: &'a str,
    /// How an https server's certificate is checked (`None`: the webpki roots).
    pub trust: Option<&'a TlsTrust>,
}

impl<'a> Request<'a> {
    /// `GET url`, accepting JSON.
    pub fn get(url: &'a str) -> Self {
        Request {
            method: "GET",
            url,
            json: None,
            bearer: None,
            accept: "application/json",
            trust: None,
        }
    }

    /// `POST url` with a JSON body.
    pub fn post_json(url: &'a str, body: &'a [u8]) -> Self {
        Request {
            method: "POST",
            url,
            json: Some(body),
            bearer: None,
            accept: "application/json",
            trust: None,
        }
    }

    pub fn bearer(mut self, key: Option<&'a str>) -> Self {
        self.bearer = key;
        self
    }

    pub fn accept(mut self, accept: &'a str) -> Self {
        self.accept = accept;
        self
    }

    /// Check an https server's certificate as `trust` says (the endpoint's).
    pub fn trust(mut self, trust: &'a TlsTrust) -> Self {
        self.trust = Some(trust);
        self
    }
}

/// How long a request may take and how much it may read.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For the TCP connect (per address the host resolves to).
    pub connect: Duration,
    /// From sending the request to the end of the response head; also the first deadline
    /// for the body (see [`Response::set_deadline`]).
    pub reply: Duration,
    /// Largest body read, bytes.
    pub max_body: usize,
}

/// Where an `http://` or `https://` URL points.
pub(crate) struct Target {
    /// `https://`: TLS over the connection.
    pub(crate) tls: bool,
    /// `http://host[:port]` (or `https://`).
    pub(crate) origin: String,
    /// `host[:port]`, as the Host header sends it.
    pub(crate) host_port: String,
    /// `/path?query`.
    pub(crate) path: String,
}

impl Target {
    /// The host alone, without brackets or port: the name a certificate must carry.
    fn host(&self) -> &str {
        let h = match self.host_port.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(rest),
            None => self
                .host_port
                .rsplit_once(':')
                .map_or(self.host_port.as_str(), |(h, _)| h),
        };
        h
    }

    /// `host:port` to resolve, with port 80 (443 for https) when the URL names none.
    pub(crate) fn with_port(&self) -> String {
        let has_port = if self.host_port.starts_with('[') {
            self.host_port.contains("]:")
        } else {
            self.host_port.contains(':')
        };
        if has_port {
            self.host_port.clone()
        } else if self.tls {
            format!("{}:443", self.host_port)
        } else {
            format!("{}:80", self.host_port)
        }
    }
}

pub(crate) fn target(url: &str) -> Result<Target, HttpError> {
    let bad = || HttpError::BadUrl {
        url: url.to_owned(),
    };
    let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (false, rest),
        (None, Some(rest)) => (true, rest),
        (None, None) => return Err(bad()),
    };
    let (host_port, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host_port.is_empty() {
        return Err(bad());
    }
    let scheme = if tls { "https" } else { "http" };
    Ok(Target {
        tls,
        origin: format!("{scheme}://{host_port}"),
        host_port: host_port.to_owned(),
        path: path.to_owned(),
    })
}

/// A response whose head has arrived and whose body is read as it comes.
pub struct Response {
    pub head: Head,
    /// When the request started to be written: the origin of a TTFT.
    pub sent_at: Instant,
    sock: Conn,
    parser: ResponseParser,
    /// Parsed events with the instant the read that brought their bytes returned.
    pending: VecDeque<(Instant, Event)>,
    deadline: Instant,
    budget: Duration,
    method: String,
    path: String,
    origin: String,
    ended: bool,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("head", &self.head)
            .field("origin", &self.origin)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A connection: plain TCP, or rustls over it.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// The TLS handshake on `sock` for `t`, within `limit`; its failure says what to fix.
fn handshake(
    mut sock: TcpStream,
    t: &Target,
    url: &str,
    trust: &TlsTrust,
    limit: Duration,
) -> Result<Conn, HttpError> {
    let failed = |reason: String| HttpError::Tls {
        origin: t.origin.clone(),
        reason,
    };
    let config = chimeraforge_core::tls::client_config(trust).map_err(failed)?;
    let name = rustls::pki_types::ServerName::try_from(t.host().to_owned()).map_err(|e| {
        failed(format!(
            "{:?} is not a name a certificate can carry: {e}",
            t.host()
        ))
    })?;
    let mut conn =
        rustls::ClientConnection::new(config, name).map_err(|e| failed(e.to_string()))?;
    let started = Instant::now();
    while conn.is_handshaking() {
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(failed(format!("not done within {}", human(limit))));
        }
        let _ = sock.set_read_timeout(Some(left));
        let _ = sock.set_write_timeout(Some(left));
        if let Err(e) = conn.complete_io(&mut sock) {
            return Err(match chimeraforge_core::tls::certificate_rejection(&e) {
                Some(rejected) => failed(
                    trust
                        .certificate_error(url, &rejected.to_string())
                        .to_string(),
                ),
                None => failed(format!("{e} (does the server speak TLS on that port?)")),
            });
        }
    }
    Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(conn, sock))))
}

/// Connect, send `req`, and read the response head.
pub fn send(req: &Request<'_>, limits: Limits) -> Result<Response, HttpError> {
    let t = target(req.url)?;
    let unreachable = |reason: String| HttpError::Unreachable {
        origin: t.origin.clone(),
        reason,
    };
    let addrs: Vec<_> = t
        .with_port()
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("cannot resolve {}: {e}", t.host_port)))?
        .collect();
    let mut last = None;
    let mut sock = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, limits.connect) {
            Ok(s) => {
                sock = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let sock = match (sock, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(unreachable(e.to_string())),
        (None, None) => {
            return Err(unreachable(format!(
                "{} resolves to no address",
                t.host_port
            )))
        }
    };
    let _ = sock.set_nodelay(true);
    let sock = if t.tls {
        let default = TlsTrust::default();
        handshake(
            sock,
            &t,
            req.url,
            req.trust.unwrap_or(&default),
            limits.connect,
        )?
    } else {
        Conn::Plain(sock)
    };

    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: {}\r\nUser-Agent: chimeraforge/{}\r\n",
        req.method,
        t.path,
        t.host_port,
        req.accept,
        env!("CARGO_PKG_VERSION")
    );
    if let Some(b) = req.json {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    if let Some(key) = req.bearer {
        if key.contains(['\r', '\n', '\0']) {
            return Err(HttpError::BadHeaderValue {
                name: "Authorization".into(),
                origin: t.origin.clone(),
            });
        }
        head.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(req.json.unwrap_or_default());

    let sent_at = Instant::now();
    let mut r = Response {
        head: Head {
            version: String::new(),
            status: 0,
            headers: Vec::new(),
        },
        sent_at,
        sock,
        parser: ResponseParser::new(limits.max_body),
        pending: VecDeque::new(),
        deadline: sent_at + limits.reply,
        budget: limits.reply,
        method: req.method.to_owned(),
        path: t.path.clone(),
        origin: t.origin.clone(),
        ended: false,
    };
    r.write_request(&bytes)?;
    // The parser's first event is always the head.
    loop {
        if let Some((_, Event::Head(head))) = r.pending.pop_front() {
            r.head = head;
            return Ok(r);
        }
        if !r.read_more()? {
            return Err(r.parse_error(ParseError::Truncated("without sending a reply".into())));
        }
    }
}

impl Response {
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// From now on the rest of the reply must arrive within `within` (the timeout message
    /// names `within`).
    pub fn set_deadline(&mut self, within: Duration) {
        self.deadline = Instant::now() + within;
        self.budget = within;
    }

    /// The next body bytes as they arrive, with the instant the read returned them;
    /// `None` at the end of the body.
    pub fn next_chunk(&mut self) -> Result<Option<(Instant, Vec<u8>)>, HttpError> {
        loop {
            match self.pending.pop_front() {
                Some((at, Event::Body(b))) => return Ok(Some((at, b))),
                Some((_, Event::End)) => {
                    self.ended = true;
                    return Ok(None);
                }
                Some((_, Event::Head(_))) => continue,
                None if self.ended => return Ok(None),
                None => {
                    self.read_more()?;
                }
            }
        }
    }

    /// The whole body.
    pub fn body(mut self) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        while let Some((_, b)) = self.next_chunk()? {
            body.extend_from_slice(&b);
        }
        Ok(body)
    }

    fn timed_out(&self, sending: bool) -> HttpError {
        HttpError::TimedOut {
            method: self.method.clone(),
            path: self.path.clone(),
            origin: self.origin.clone(),
            after: self.budget,
            sending,
        }
    }

    fn io(&self, e: &std::io::Error) -> HttpError {
        HttpError::Io {
            method: self.method.clone(),
            path: self.path.clone(),
            origin: self.origin.clone(),
            reason: e.to_string(),
        }
    }

    fn parse_error(&self, error: ParseError) -> HttpError {
        match error {
            ParseError::BodyTooLarge { limit } => HttpError::TooLarge {
                method: self.method.clone(),
                path: self.path.clone(),
                origin: self.origin.clone(),
                limit,
            },
            error => HttpError::Malformed {
                method: self.method.clone(),
                path: self.path.clone(),
                origin: self.origin.clone(),
                error,
            },
        }
    }

    fn left(&self) -> Option<Duration> {
        Some(self.deadline.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }

    fn write_request(&mut self, mut bytes: &[u8]) -> Result<(), HttpError> {
        while !bytes.is_empty() {
            let left = self.left().ok_or_else(|| self.timed_out(true))?;
            self.sock
                .tcp()
                .set_write_timeout(Some(left))
                .map_err(|e| self.io(&e))?;
            match self.sock.write(bytes) {
                Ok(0) => return Err(self.io(&ErrorKind::WriteZero.into())),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(self.timed_out(true))
                }
                Err(e) => return Err(self.io(&e)),
            }
        }
        // rustls holds the last record until flushed.
        self.sock.flush().map_err(|e| self.io(&e))
    }

    /// One read from the socket into the parser; false once the parser has ended.
    fn read_more(&mut self) -> Result<bool, HttpError> {
        if self.parser.is_done() {
            return Ok(false);
        }
        let mut buf = [0u8; 16 << 10];
        loop {
            let left = self.left().ok_or_else(|| self.timed_out(false))?;
            self.sock
                .tcp()
                .set_read_timeout(Some(left))
                .map_err(|e| self.io(&e))?;
            let mut events = Vec::new();
            let read = self.sock.read(&mut buf);
            let at = Instant::now();
            let parsed = match read {
                Ok(0) => self.parser.eof(&mut events),
                // A TLS peer that closed without close_notify: an end like any other (the
                // parser tells a cut-off reply from a complete one).
                Err(e)
                    if e.kind() == ErrorKind::UnexpectedEof
                        && matches!(self.sock, Conn::Tls(_)) =>
                {
                    self.parser.eof(&mut events)
                }
                Ok(n) => self.parser.feed(&buf[..n], &mut events),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(self.timed_out(false))
                }
                Err(e) => return Err(self.io(&e)),
            };
            parsed.map_err(|e| self.parse_error(e))?;
            self.pending.extend(events.into_iter().map(|e| (at, e)));
            return Ok(true);
        }
    }
}

/// `GET url` (with `Authorization: Bearer KEY` when a key is given; an https server's
/// certificate checked as `trust` says): the status and the whole body, all within
/// `timeout` of sending the request.
pub fn get(
    url: &str,
    key: Option<&str>,
    trust: &TlsTrust,
    timeout: Duration,
    max_body: usize,
) -> Result<(u16, Vec<u8>), HttpError> {
    let r = send(
        &Request::get(url).bearer(key).trust(trust),
        Limits {
            connect: timeout,
            reply: timeout,
            max_body,
        },
    )?;
    let status = r.status();
    Ok((status, r.body()?))
}

/// `POST url` with a JSON body: the status and the whole body, within `timeout`.
pub fn post_json(
    url: &str,
    body: &[u8],
    key: Option<&str>,
    trust: &TlsTrust,
    timeout: Duration,
    max_body: usize,
) -> Result<(u16, Vec<u8>), HttpError> {
    let r = send(
        &Request::post_json(url, body).bearer(key).trust(trust),
        Limits {
            connect: timeout,
            reply: timeout,
            max_body,
        },
    )?;
    let status = r.status();
    Ok((status, r.body()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes after a framed end are counted (a connection holding them cannot be reused),
    /// whether they came in the read that ended the body or later.
    #[test]
    fn bytes_after_the_end_are_counted() {
        let mut p = ResponseParser::new(1 << 20);
        let mut events = Vec::new();
        p.feed(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHT",
            &mut events,
        )
        .unwrap();
        assert!(p.is_done());
        assert_eq!(p.bytes_after_end(), 2);
        p.feed(b"TP/1.1", &mut events).unwrap();
        assert_eq!(p.bytes_after_end(), 8);
        let mut p = ResponseParser::new(1 << 20);
        p.feed(b"HTTP/1.1 204 No Content\r\n\r\n", &mut events)
            .unwrap();
        assert_eq!(p.bytes_after_end(), 0);
    }

    /// The head, the body and whether it ended, from `chunks` fed in order then EOF when
    /// `eof`.
    fn parse(
        chunks: &[&[u8]],
        eof: bool,
        max_body: usize,
    ) -> Result<(Option<Head>, Vec<u8>, bool), ParseError> {
        let mut p = ResponseParser::new(max_body);
        let mut events = Vec::new();
        for c in chunks {
            p.feed(c, &mut events)?;
        }
        if eof {
            p.eof(&mut events)?;
        }
        let mut head = None;
        let mut body = Vec::new();
        let mut ended = false;
        for e in events {
            match e {
                Event::Head(h) => {
                    assert!(head.is_none(), "two heads");
                    head = Some(h);
                }
                Event::Body(b) => {
                    assert!(!ended, "body after the end");
                    body.extend(b);
                }
                Event::End => {
                    assert!(!ended, "two ends");
                    ended = true;
                }
            }
        }
        Ok((head, body, ended))
    }

    /// `bytes` parses to the same result whole, split in two at every offset, split in
    /// three at every pair of offsets (short inputs), and byte by byte.
    fn every_split(
        bytes: &[u8],
        eof: bool,
        max_body: usize,
    ) -> Result<(Option<Head>, Vec<u8>, bool), ParseError> {
        let whole = parse(&[bytes], eof, max_body);
        // Errors match by kind: what a NotHttp shows depends on how much had arrived.
        let same = |got: &Result<_, ParseError>| match (got, &whole) {
            (Err(a), Err(b)) => std::mem::discriminant(a) == std::mem::discriminant(b),
            (a, b) => a == b,
        };
        for i in 0..=bytes.len() {
            let (a, b) = bytes.split_at(i);
            let got = parse(&[a, b], eof, max_body);
            assert!(same(&got), "split at {i}: {got:?} vs {whole:?}");
        }
        if bytes.len() <= 200 {
            for i in 0..=bytes.len() {
                for j in i..=bytes.len() {
                    let parts = [&bytes[..i], &bytes[i..j], &bytes[j..]];
                    let got = parse(&parts, eof, max_body);
                    assert!(same(&got), "split at {i}, {j}: {got:?} vs {whole:?}");
                }
            }
        }
        let ones: Vec<&[u8]> = bytes.chunks(1).collect();
        let got = parse(&ones, eof, max_body);
        assert!(same(&got), "byte by byte: {got:?} vs {whole:?}");
        whole
    }

    #[test]
    fn content_length_body_ends_at_its_length_without_a_close() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: keep-alive\r\n\r\n{\"a\":[1,2]}";
        let (head, body, ended) = every_split(bytes, false, 1 << 20).unwrap();
        let head = head.unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.version, "HTTP/1.1");
        assert_eq!(head.header("content-type"), Some("application/json"));
        assert_eq!(body, b"{\"a\":[1,2]}");
        assert!(
            ended,
            "a Content-Length body ends without waiting for the close"
        );
    }

    #[test]
    fn bytes_after_a_content_length_body_are_ignored() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n";
        let (_, body, ended) = every_split(bytes, false, 1 << 20).unwrap();
        assert_eq!(body, b"ok");
        assert!(ended);
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers_is_decoded() {
        let bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1 ; name=\"a;b\"\r\n,\r\nB\r\n 0123456789\r\n0;last\r\nX-Trailer: yes\r\nOther: 1\r\n\r\n";
        let (head, body, ended) = every_split(bytes, false, 1 << 20).unwrap();
        assert_eq!(head.unwrap().header("transfer-encoding"), Some("chunked"));
        assert_eq!(body, b"hello, 0123456789");
        assert!(ended);
    }

    #[test]
    fn chunked_body_with_bare_lf_lines_and_upper_hex() {
        let bytes = b"HTTP/1.1 200 OK\nTransfer-Encoding: gzip, Chunked\n\nB\nhello world\n0\n\n";
        let (_, body, ended) = every_split(bytes, false, 1 << 20).unwrap();
        assert_eq!(body, b"hello world");
        assert!(ended);
    }

    #[test]
    fn close_delimited_body_ends_only_at_eof() {
        let bytes = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it";
        let (head, body, ended) = every_split(bytes, false, 1 << 20).unwrap();
        assert_eq!(head.unwrap().version, "HTTP/1.0");
        assert_eq!(body, b"all of it");
        assert!(!ended, "without a length, the body runs to the close");
        let (_, body, ended) = every_split(bytes, true, 1 << 20).unwrap();
        assert_eq!(body, b"all of it");
        assert!(ended);
    }

    #[test]
    fn a_transfer_coding_not_ending_in_chunked_is_close_delimited() {
        let bytes =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcdef";
        let (_, body, ended) = every_split(bytes, true, 1 << 20).unwrap();
        assert_eq!(body, b"abcdef");
        assert!(ended);
    }

    #[test]
    fn interim_responses_are_skipped() {
        let bytes =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnah";
        let (head, body, ended) = every_split(bytes, false, 1 << 20).unwrap();
        assert_eq!(head.unwrap().status, 404);
        assert_eq!(body, b"nah");
        assert!(ended);
    }

    #[test]
    fn no_body_statuses_and_zero_length_end_at_the_head() {
        for bytes in [
            &b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ] {
            let (head, body, ended) = every_split(bytes, false, 1 << 20).unwrap();
            assert!(head.is_some());
            assert!(body.is_empty());
            assert!(ended, "{}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn repeated_equal_content_lengths_are_one_and_different_ones_an_error() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(every_split(ok, false, 1 << 20).unwrap().1, b"ok");
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        ] {
            assert!(
                matches!(
                    every_split(bad, false, 1 << 20),
                    Err(ParseError::BadContentLength(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn truncated_replies_say_where_they_stopped() {
        let cases: [(&[u8], &str); 5] = [
            (b"", "without sending a reply"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Le",
                "before the reply's headers ended",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
                "with 7 of the body's bytes",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                "inside the chunked body",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n",
                "trailers",
            ),
        ];
        for (bytes, why) in cases {
            match every_split(bytes, true, 1 << 20) {
                Err(ParseError::Truncated(w)) => assert!(w.contains(why), "{w}"),
                other => panic!("{}: {other:?}", String::from_utf8_lossy(bytes)),
            }
        }
    }

    #[test]
    fn malformed_framing_is_an_error_at_any_split() {
        type Case = (&'static [u8], fn(&ParseError) -> bool);
        let cases: [Case; 6] = [
            (b"SSH-2.0-OpenSSH_9.6\r\n", |e| {
                matches!(e, ParseError::NotHttp(_))
            }),
            (b"HTTP/2 200\r\n\r\n", |e| {
                matches!(e, ParseError::BadStatusLine(_))
            }),
            (b"HTTP/1.1 2000 OK\r\n\r\n", |e| {
                matches!(e, ParseError::BadStatusLine(_))
            }),
            (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", |e| {
                matches!(e, ParseError::BadHeader(_))
            }),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                |e| matches!(e, ParseError::BadChunkSize(_)),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
                |e| matches!(e, ParseError::BadChunkEnd(_)),
            ),
        ];
        for (bytes, expected) in cases {
            match every_split(bytes, false, 1 << 20) {
                Err(e) => assert!(expected(&e), "{}: {e:?}", String::from_utf8_lossy(bytes)),
                Ok(v) => panic!("{}: parsed as {v:?}", String::from_utf8_lossy(bytes)),
            }
        }
    }

    #[test]
    fn a_non_http_reply_is_rejected_from_its_first_bytes() {
        let mut p = ResponseParser::new(1 << 20);
        let mut out = Vec::new();
        assert!(matches!(
            p.feed(b"SSH-", &mut out),
            Err(ParseError::NotHttp(_))
        ));
    }

    #[test]
    fn the_body_cap_holds_for_every_framing() {
        for bytes in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n123456789"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n4\r\n6789\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n123456789",
        ] {
            assert_eq!(
                every_split(bytes, true, 8),
                Err(ParseError::BodyTooLarge { limit: 8 }),
                "{}",
                String::from_utf8_lossy(bytes)
            );
            assert_eq!(every_split(bytes, true, 9).unwrap().1, b"123456789");
        }
    }

    #[test]
    fn an_endless_head_or_framing_line_is_bounded() {
        let mut head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        head.resize(MAX_HEAD_BYTES + 10, b'a');
        let mut p = ResponseParser::new(1 << 20);
        assert_eq!(
            p.feed(&head, &mut Vec::new()),
            Err(ParseError::HeadTooLarge {
                limit: MAX_HEAD_BYTES
            })
        );
        let mut line = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;".to_vec();
        line.resize(line.len() + MAX_FRAMING_LINE_BYTES, b'x');
        let mut p = ResponseParser::new(1 << 20);
        assert_eq!(
            p.feed(&line, &mut Vec::new()),
            Err(ParseError::FramingLineTooLong {
                limit: MAX_FRAMING_LINE_BYTES
            })
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(5)), "5 s");
        assert_eq!(human(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(human(Duration::from_millis(300)), "300 ms");
    }

    #[test]
    fn a_timeout_names_the_request_and_the_server() {
        let e = HttpError::TimedOut {
            method: "GET".into(),
            path: "/api/tags".into(),
            origin: "http://127.0.0.1:9".into(),
            after: Duration::from_secs(5),
            sending: false,
        };
        assert_eq!(
            e.to_string(),
            "timed out reading the reply to GET /api/tags from http://127.0.0.1:9 after 5 s"
        );
    }
}
