//! surf's transport: async-h1 writes the request, we read the response; under keep-alive
//! the connection is kept for the agent's next request, under fresh it closes with the body.
//!
//! surf's stock `H1Client` returns a connection to its pool when a half-read body is
//! dropped (the next request then reads the rest of the old response), caps each host
//! at 50 connections and has no connect timeout. This connector has none of that: a
//! connection is kept only when its response was read to its exact end (nothing left
//! over, no `Connection: close`, HTTP/1.1), and each agent has its own (one slot).
//!
//! async-h1 2.3's response decoder rejects chunk extensions and HTTP/1.0 (close-delimited)
//! responses, which every other backend reads, so the response is read here instead:
//! the head with `httparse`, the body by [`crate::framing`] (content-length, chunked or
//! until close), straight off the socket.
//!
//! https: rustls (futures-rustls) over the same socket, configured by core's `tls` module;
//! the handshake is part of opening the connection, inside the connect timeout.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use async_std::net::{TcpStream, ToSocketAddrs};
use chimeraforge_core::{ConnectionPolicy, ConnectionTally};
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use futures_rustls::TlsConnector;
use http_client::http_types::headers::CONTENT_TYPE;
use http_client::http_types::url::{Host, Url};
use http_client::http_types::{Body, StatusCode};
use http_client::{Error, HttpClient, Request, Response};
use rustls::pki_types::ServerName;

use crate::framing::{self, BodyFraming, ChunkedDecoder, FramingError, Head, MAX_HEAD_BYTES};

/// Bytes asked of the socket per read while reading a head or chunked framing.
const SOCKET_READ_BYTES: usize = 8 * 1024;

/// Why a connection could not be opened; recovered by downcasting surf's error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectFailure {
    #[error("connect timed out")]
    TimedOut,
    #[error("{0}")]
    Failed(io::Error),
    /// The TCP connection opened; the TLS handshake on it failed.
    #[error("{0}")]
    Handshake(io::Error),
}

/// A connection: plain TCP, or TLS over it.
#[derive(Debug)]
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_close(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// An HTTP/1.x transport for surf with a connect timeout and, under keep-alive, one kept
/// connection (an agent's calls are sequential, so one is all it needs).
#[derive(Debug)]
pub(crate) struct H1Connector {
    pub(crate) connect_timeout: Duration,
    pub(crate) policy: ConnectionPolicy,
    /// For https URLs: rustls configured for the agent's endpoint.
    tls: Arc<rustls::ClientConfig>,
    /// The connection kept for the next request (keep-alive only).
    pub(crate) idle: Arc<Mutex<Option<Kept>>>,
    pub(crate) tally: Arc<ConnectionTally>,
}

impl H1Connector {
    pub(crate) fn new(
        connect_timeout: Duration,
        policy: ConnectionPolicy,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        H1Connector {
            connect_timeout,
            policy,
            tls,
            idle: Arc::new(Mutex::new(None)),
            tally: Arc::new(ConnectionTally::default()),
        }
    }

    /// The kept connection, if it goes to `url`'s origin (one to another is closed).
    fn take_idle(&self, url: &Url) -> Option<Conn> {
        let kept = self.idle.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        (kept.origin == origin(url)).then_some(kept.stream)
    }

    async fn open(&self, url: &Url) -> Result<Conn, Error> {
        let tls = (url.scheme() == "https").then(|| TlsConnector::from(Arc::clone(&self.tls)));
        let stream = connect(url, self.connect_timeout, tls)
            .await
            .map_err(|e| Error::new(StatusCode::BadGateway, e))?;
        self.tally.opened_one();
        Ok(stream)
    }
}

/// A connection kept for the next request, and where it goes.
#[derive(Debug)]
pub(crate) struct Kept {
    origin: String,
    stream: Conn,
}

/// Scheme, host and port: what a kept connection may be reused for.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Why one exchange on a connection failed.
enum Attempt {
    /// The connection was closed or reset before one byte of the response came back (the
    /// request may have been written or not): the server never started on it.
    Unanswered(Error),
    Failed(Error),
}

/// Write `req` (async-h1's encoder) on `stream` and read the response head.
async fn exchange(req: Request, stream: &mut Conn) -> Result<(Head, Vec<u8>), Attempt> {
    let mut encoder = async_h1::client::Encoder::new(req);
    let unanswered = |e| Attempt::Unanswered(Error::new(StatusCode::BadGateway, e));
    futures_lite::io::copy(&mut encoder, &mut *stream)
        .await
        .map_err(unanswered)?;
    // rustls holds the last record until flushed.
    stream.flush().await.map_err(unanswered)?;
    read_head(stream).await
}

#[http_client::async_trait]
impl HttpClient for H1Connector {
    async fn send(&self, mut req: Request) -> Result<Response, Error> {
        if !matches!(req.url().scheme(), "http" | "https") {
            return Err(Error::from_str(
                StatusCode::BadRequest,
                format!(
                    "unsupported scheme {:?}: http or https only",
                    req.url().scheme()
                ),
            ));
        }
        let url = req.url().clone();
        let kept = match self.policy {
            ConnectionPolicy::KeepAlive => self.take_idle(&url),
            ConnectionPolicy::Fresh => None,
        };
        let (mut stream, again) = match kept {
            // The request is written twice at most: keep a copy for the retry.
            Some(stream) => (stream, Some(clone_request(&mut req).await?)),
            None => (self.open(&url).await?, None),
        };
        let (head, leftover) = match exchange(req, &mut stream).await {
            Ok(got) => got,
            Err(Attempt::Unanswered(e)) => match again {
                Some(req) if chimeraforge_core::http::may_retry(self.policy, true, 0) => {
                    stream = self.open(&url).await?;
                    match exchange(req, &mut stream).await {
                        Ok(got) => got,
                        Err(Attempt::Unanswered(e) | Attempt::Failed(e)) => return Err(e),
                    }
                }
                _ => return Err(e),
            },
            Err(Attempt::Failed(e)) => return Err(e),
        };
        let framing = framing::body_framing(&head).map_err(framing_error)?;
        let keep = (self.policy == ConnectionPolicy::KeepAlive && reusable(&head, framing))
            .then(|| (Arc::clone(&self.idle), origin(&url)));
        response(head, framing, stream, leftover, keep)
    }
}

/// A copy of `req` to send again: its body is read into memory and set on both (the
/// harness's bodies are small JSON documents already in memory).
async fn clone_request(req: &mut Request) -> Result<Request, Error> {
    let body = req.take_body();
    let mime = body.mime().clone();
    let bytes = body.into_bytes().await?;
    let with_body = |bytes: Vec<u8>| {
        let mut body = Body::from_bytes(bytes);
        body.set_mime(mime.clone());
        body
    };
    let mut copy = req.clone();
    copy.set_body(with_body(bytes.clone()));
    req.set_body(with_body(bytes));
    Ok(copy)
}

/// Whether the connection may carry another request once this response's body is read:
/// HTTP/1.1, no `Connection: close`, and a body that ends by its framing.
fn reusable(head: &Head, framing: BodyFraming) -> bool {
    let close = head.values("connection").any(|v| {
        v.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    });
    head.minor_version == 1 && !close && framing != BodyFraming::UntilClose
}

fn framing_error(e: FramingError) -> Error {
    Error::new(StatusCode::BadGateway, e)
}

/// Read up to the end of the first final (non-1xx) response head: the head and whatever
/// bytes of the body came with it. A close or reset before the first byte is
/// [`Attempt::Unanswered`].
async fn read_head(stream: &mut Conn) -> Result<(Head, Vec<u8>), Attempt> {
    let mut buf: Vec<u8> = Vec::with_capacity(SOCKET_READ_BYTES);
    let mut received = 0usize;
    loop {
        if !buf.is_empty() {
            if let Some(head) =
                framing::parse_head(&buf).map_err(|e| Attempt::Failed(framing_error(e)))?
            {
                let rest = buf.split_off(head.len);
                // 1xx heads are interim (101 is never asked for): the real one follows.
                if (100..200).contains(&head.status) && head.status != 101 {
                    buf = rest;
                    continue;
                }
                return Ok((head, rest));
            }
        }
        let have = buf.len();
        let want = SOCKET_READ_BYTES.min(MAX_HEAD_BYTES + 1 - have.min(MAX_HEAD_BYTES));
        buf.resize(have + want, 0);
        let read = stream.read(&mut buf[have..]).await;
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                let e = Error::new(StatusCode::BadGateway, e);
                return Err(if received == 0 {
                    Attempt::Unanswered(e)
                } else {
                    Attempt::Failed(e)
                });
            }
        };
        buf.truncate(have + n);
        received += n;
        if n == 0 {
            let e = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                if received == 0 {
                    "the server closed the connection without sending a response".to_owned()
                } else {
                    format!(
                        "the server closed the connection after {have} bytes of the response head"
                    )
                },
            );
            let e = Error::new(StatusCode::BadGateway, e);
            return Err(if received == 0 {
                Attempt::Unanswered(e)
            } else {
                Attempt::Failed(e)
            });
        }
    }
}

/// The response surf hands back: `head`'s status and headers, a body read off `stream`.
fn response(
    head: Head,
    framing: BodyFraming,
    stream: Conn,
    leftover: Vec<u8>,
    keep: Option<(Arc<Mutex<Option<Kept>>>, String)>,
) -> Result<Response, Error> {
    let status = StatusCode::try_from(head.status).map_err(|_| {
        framing_error(FramingError(format!(
            "status code {} is not one http-types can represent",
            head.status
        )))
    })?;
    let mut res = Response::new(status);
    for (name, value) in &head.headers {
        // http-types panics on a value that is not ASCII: escape obs-text.
        let value = match std::str::from_utf8(value) {
            Ok(v) if v.is_ascii() => v.to_owned(),
            _ => value.escape_ascii().to_string(),
        };
        res.append_header(name.to_ascii_lowercase().as_str(), value.as_str());
    }
    let had_content_type = res.header(CONTENT_TYPE).is_some();
    let end = leftover.len();
    let reader = BodyReader {
        stream: Some(stream),
        buf: leftover,
        pos: 0,
        end,
        decode: match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => Decode::Done,
            BodyFraming::Length(left) => Decode::Length { left },
            BodyFraming::Chunked => Decode::Chunked(ChunkedDecoder::new()),
            BodyFraming::UntilClose => Decode::UntilClose,
        },
        keep,
    };
    res.set_body(Body::from_reader(BufReader::new(reader), None));
    if !had_content_type {
        // set_body adds the body's own `application/octet-stream`: the server sent none.
        res.remove_header(CONTENT_TYPE);
    }
    Ok(res)
}

enum Decode {
    Length { left: u64 },
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// A response body read off its connection, which it owns and closes when dropped.
struct BodyReader {
    /// The connection, until the reader is dropped (then it is kept or closed).
    stream: Option<Conn>,
    /// Bytes read off the socket not yet decoded: `buf[pos..end]`.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    decode: Decode,
    /// Where the connection goes back when the body was read to its exact end
    /// (keep-alive, a reusable response).
    keep: Option<(Arc<Mutex<Option<Kept>>>, String)>,
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        let at_end = matches!(self.decode, Decode::Done | Decode::Length { left: 0 })
            && self.pos == self.end;
        if let (true, Some((slot, origin)), Some(stream)) =
            (at_end, self.keep.take(), self.stream.take())
        {
            let kept = Kept { origin, stream };
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(kept);
        }
    }
}

fn early_eof(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, msg)
}

impl AsyncRead for BodyReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            if matches!(this.decode, Decode::Length { left: 0 }) {
                this.decode = Decode::Done;
            }
            let input = &this.buf[this.pos..this.end];
            if !input.is_empty() {
                let n = match &mut this.decode {
                    Decode::Done => return Poll::Ready(Ok(0)),
                    Decode::Length { left } => {
                        let n = input
                            .len()
                            .min(out.len())
                            .min(usize::try_from(*left).unwrap_or(usize::MAX));
                        *left -= n as u64;
                        out[..n].copy_from_slice(&input[..n]);
                        this.pos += n;
                        n
                    }
                    Decode::UntilClose => {
                        let n = input.len().min(out.len());
                        out[..n].copy_from_slice(&input[..n]);
                        this.pos += n;
                        n
                    }
                    Decode::Chunked(d) => {
                        let (used, n) = d
                            .decode(input, out)
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                        this.pos += used;
                        if n == 0 && d.is_done() {
                            this.decode = Decode::Done;
                            return Poll::Ready(Ok(0));
                        }
                        n
                    }
                };
                if n > 0 {
                    return Poll::Ready(Ok(n));
                }
                continue;
            }
            // Nothing buffered: plain bodies read straight into `out`.
            let Some(stream) = this.stream.as_mut() else {
                return Poll::Ready(Ok(0));
            };
            let stream = Pin::new(stream);
            match &mut this.decode {
                Decode::Done => return Poll::Ready(Ok(0)),
                Decode::Length { left } => {
                    let cap = out.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    let n = ready!(stream.poll_read(cx, &mut out[..cap]))?;
                    if n == 0 {
                        return Poll::Ready(Err(early_eof(format!(
                            "the connection closed {left} bytes before the end of the \
                             content-length body"
                        ))));
                    }
                    *left -= n as u64;
                    return Poll::Ready(Ok(n));
                }
                Decode::UntilClose => {
                    let n = ready!(stream.poll_read(cx, out))?;
                    if n == 0 {
                        this.decode = Decode::Done;
                    }
                    return Poll::Ready(Ok(n));
                }
                Decode::Chunked(d) => {
                    if d.is_done() {
                        this.decode = Decode::Done;
                        return Poll::Ready(Ok(0));
                    }
                    this.buf.resize(SOCKET_READ_BYTES, 0);
                    let n = ready!(stream.poll_read(cx, &mut this.buf))?;
                    if n == 0 {
                        return Poll::Ready(Err(early_eof(
                            "the connection closed inside the chunked body, before its last chunk"
                                .to_owned(),
                        )));
                    }
                    this.pos = 0;
                    this.end = n;
                }
            }
        }
    }
}

/// Resolve and connect within `timeout`, trying each address in turn; with `tls`, the
/// handshake too, within what is left of `timeout`.
async fn connect(
    url: &Url,
    timeout: Duration,
    tls: Option<TlsConnector>,
) -> Result<Conn, ConnectFailure> {
    let started = std::time::Instant::now();
    let port = url.port_or_known_default().unwrap_or(80);
    let attempt = async {
        let addrs: Vec<SocketAddr> = match url.host() {
            Some(Host::Ipv4(ip)) => vec![SocketAddr::from((ip, port))],
            Some(Host::Ipv6(ip)) => vec![SocketAddr::from((ip, port))],
            Some(Host::Domain(name)) => (name, port).to_socket_addrs().await?.collect(),
            None => return Err(io::Error::new(io::ErrorKind::InvalidInput, "no host")),
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host resolved to no address");
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    let stream = async_std::future::timeout(timeout, attempt)
        .await
        .map_err(|_| ConnectFailure::TimedOut)?
        .map_err(ConnectFailure::Failed)?;
    stream.set_nodelay(true).map_err(ConnectFailure::Failed)?;
    let Some(tls) = tls else {
        return Ok(Conn::Plain(stream));
    };
    let name = match url.host() {
        Some(Host::Ipv4(ip)) => ServerName::IpAddress(std::net::IpAddr::V4(ip).into()),
        Some(Host::Ipv6(ip)) => ServerName::IpAddress(std::net::IpAddr::V6(ip).into()),
        Some(Host::Domain(name)) => ServerName::try_from(name.to_owned())
            .map_err(|e| ConnectFailure::Failed(io::Error::new(io::ErrorKind::InvalidInput, e)))?,
        None => {
            return Err(ConnectFailure::Failed(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no host",
            )))
        }
    };
    let left = timeout.saturating_sub(started.elapsed());
    let stream = async_std::future::timeout(left, tls.connect(name, stream))
        .await
        .map_err(|_| ConnectFailure::TimedOut)?
        .map_err(ConnectFailure::Handshake)?;
    Ok(Conn::Tls(Box::new(stream)))
}
