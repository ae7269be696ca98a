//! Sans-IO HTTP/1.x response framing: the response head, how its body is delimited, and a
//! chunked-body decoder (bytes in, body bytes out).
//!
//! async-h1 2.3's own response decoder rejects two framings every other backend reads:
//! chunk extensions (`5;ext=1`, RFC 9112 §7.1.1) and HTTP/1.0 responses, whose body may be
//! delimited by the server closing the connection (§6.3 rule 8). This module reads both,
//! and reports what it cannot read as a [`FramingError`] naming what was wrong.

/// A response whose HTTP framing cannot be read: a malformed status line, header or chunk
/// size line, a head over [`MAX_HEAD_BYTES`], an invalid `content-length`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FramingError(pub String);

/// Longest response head accepted (status line and headers), bytes.
pub const MAX_HEAD_BYTES: usize = 256 * 1024;
/// Most header fields accepted in one response head.
pub const MAX_HEADERS: usize = 256;
/// Longest chunk size line accepted (size and extensions), bytes.
pub const MAX_CHUNK_LINE_BYTES: usize = 4 * 1024;
/// Longest trailer section accepted, bytes.
pub const MAX_TRAILER_BYTES: usize = 64 * 1024;

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub status: u16,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Bytes the head took, its final empty line included.
    pub len: usize,
}

impl Head {
    /// Every value of the header `name` (case-insensitive), in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Parse the response head at the start of `buf`: `Ok(None)` while it is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, FramingError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
            return Err(FramingError(format!(
                "the response head (status line and headers) is larger than the \
                 {} KiB this client accepts",
                MAX_HEAD_BYTES / 1024
            )))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::Version) => {
            return Err(FramingError(format!(
                "unsupported HTTP version in the status line {:?} (HTTP/1.0 and HTTP/1.1 are read)",
                first_line(buf)
            )))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(FramingError(format!(
                "the response head has more than {MAX_HEADERS} header fields"
            )))
        }
        Err(e) => {
            return Err(FramingError(format!(
                "malformed response head ({e}) after the status line {:?}",
                first_line(buf)
            )))
        }
    };
    if len > MAX_HEAD_BYTES {
        return Err(FramingError(format!(
            "the response head (status line and headers) is larger than the {} KiB this \
             client accepts",
            MAX_HEAD_BYTES / 1024
        )));
    }
    let (Some(minor_version), Some(status)) = (resp.version, resp.code) else {
        return Err(FramingError(
            "response head without a version or status".to_owned(),
        ));
    };
    let headers = resp
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect();
    Ok(Some(Head {
        minor_version,
        status,
        headers,
        len,
    }))
}

fn first_line(buf: &[u8]) -> String {
    let end = buf
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(buf.len())
        .min(120);
    String::from_utf8_lossy(&buf[..end]).trim_end().to_owned()
}

/// How a response body is delimited (RFC 9112 §6.3, for a response to GET or POST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: 204, 304.
    Empty,
    /// `content-length` bytes.
    Length(u64),
    /// `transfer-encoding: ..., chunked`.
    Chunked,
    /// Everything until the server closes the connection (neither header, or a transfer
    /// coding that does not end in chunked).
    UntilClose,
}

/// The framing of the body that follows `head`.
pub fn body_framing(head: &Head) -> Result<BodyFraming, FramingError> {
    if head.status == 204 || head.status == 304 {
        return Ok(BodyFraming::Empty);
    }
    let mut codings = Vec::new();
    for value in head.values("transfer-encoding") {
        for coding in value.split(|&b| b == b',') {
            let coding = coding.trim_ascii();
            if !coding.is_empty() {
                codings.push(coding.to_ascii_lowercase());
            }
        }
    }
    // A transfer-encoding overrides any content-length (§6.3 rule 3).
    if let Some(last) = codings.last() {
        return Ok(if last.as_slice() == b"chunked" {
            BodyFraming::Chunked
        } else {
            BodyFraming::UntilClose
        });
    }
    let mut length: Option<u64> = None;
    for value in head.values("content-length") {
        for part in value.split(|&b| b == b',') {
            let part = part.trim_ascii();
            let n = std::str::from_utf8(part)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    FramingError(format!(
                        "invalid content-length {:?}",
                        String::from_utf8_lossy(value)
                    ))
                })?;
            if length.is_some_and(|have| have != n) {
                return Err(FramingError(
                    "conflicting content-length values in one response".to_owned(),
                ));
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(BodyFraming::UntilClose, BodyFraming::Length))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size.
    Size,
    /// After the digits: whitespace or `;` extensions, up to the line's end.
    SizeTail { in_extension: bool },
    /// CR seen at the end of a size line.
    SizeLf,
    /// Chunk data; `left` bytes to go.
    Data { left: u64 },
    /// Expecting the CR (or a bare LF) after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// CR seen on the final empty line.
    TrailerEndLf,
    /// The last chunk and the trailer section have been read.
    Done,
}

/// A chunked transfer-coding decoder (RFC 9112 §7.1): chunk extensions and trailers are
/// read and ignored; a lone LF is accepted as a line end (§2.2).
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: u32,
    /// Bytes of the current size line or of the trailer section so far.
    line: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            line: 0,
        }
    }

    /// The last chunk and the trailers have been read: the body is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decode from `input` into `out`: returns (input bytes consumed, body bytes written).
    /// Stops when the input is used up, `out` is full, a chunk's data has ended (so one call
    /// yields at most one HTTP chunk, as hyper's and h11's decoders do) or the body is
    /// complete.
    pub fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), FramingError> {
        let mut i = 0;
        let mut w = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size => match hex_value(b) {
                    Some(d) => {
                        if self.digits == 16 {
                            return Err(FramingError(
                                "invalid chunk size: more than 16 hex digits".to_owned(),
                            ));
                        }
                        self.size = (self.size << 4) | u64::from(d);
                        self.digits += 1;
                        self.line += 1;
                        i += 1;
                    }
                    None if self.digits == 0 => {
                        return Err(FramingError(format!(
                            "invalid chunk size line: expected a hex digit, got {}",
                            show(b)
                        )))
                    }
                    None => {
                        self.state = State::SizeTail {
                            in_extension: false,
                        }
                    }
                },
                State::SizeTail { in_extension } => {
                    i += 1;
                    self.line += 1;
                    match b {
                        b'\r' => self.state = State::SizeLf,
                        b'\n' => self.end_size_line(),
                        b';' => self.state = State::SizeTail { in_extension: true },
                        b' ' | b'\t' => {}
                        _ if in_extension && b != 0x7f && b >= 0x20 => {}
                        _ => {
                            return Err(FramingError(format!(
                                "invalid chunk size line: {} after the size {:x}",
                                show(b),
                                self.size
                            )))
                        }
                    }
                    if self.line > MAX_CHUNK_LINE_BYTES {
                        return Err(FramingError(format!(
                            "chunk size line longer than {MAX_CHUNK_LINE_BYTES} bytes"
                        )));
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(FramingError(format!(
                            "invalid chunk size line: CR followed by {}, not LF",
                            show(b)
                        )));
                    }
                    i += 1;
                    self.end_size_line();
                }
                State::Data { left } => {
                    if w == out.len() {
                        break;
                    }
                    let n = (input.len() - i)
                        .min(out.len() - w)
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    out[w..w + n].copy_from_slice(&input[i..i + n]);
                    i += n;
                    w += n;
                    let left = left - n as u64;
                    if left == 0 {
                        self.state = State::DataCr;
                        break;
                    }
                    self.state = State::Data { left };
                }
                State::DataCr | State::DataLf => {
                    let want_cr = self.state == State::DataCr;
                    match b {
                        b'\r' if want_cr => self.state = State::DataLf,
                        b'\n' => self.state = State::Size,
                        _ => {
                            return Err(FramingError(format!(
                                "chunk data longer than its size line said: {} where the \
                                 line end after {} bytes belongs",
                                show(b),
                                self.size
                            )))
                        }
                    }
                    i += 1;
                    if self.state == State::Size {
                        self.size = 0;
                        self.digits = 0;
                        self.line = 0;
                    }
                }
                State::TrailerStart | State::TrailerLine => {
                    i += 1;
                    self.line += 1;
                    self.state = match (self.state, b) {
                        (State::TrailerStart, b'\r') => State::TrailerEndLf,
                        (State::TrailerStart, b'\n') => State::Done,
                        (_, b'\n') => State::TrailerStart,
                        _ => State::TrailerLine,
                    };
                    if self.line > MAX_TRAILER_BYTES {
                        return Err(FramingError(format!(
                            "chunked trailer section longer than {} KiB",
                            MAX_TRAILER_BYTES / 1024
                        )));
                    }
                }
                State::TrailerEndLf => {
                    if b != b'\n' {
                        return Err(FramingError(format!(
                            "invalid end of the chunked body: CR followed by {}, not LF",
                            show(b)
                        )));
                    }
                    i += 1;
                    self.state = State::Done;
                }
                State::Done => break,
            }
        }
        Ok((i, w))
    }

    fn end_size_line(&mut self) {
        self.line = 0;
        self.state = if self.size == 0 {
            State::TrailerStart
        } else {
            State::Data { left: self.size }
        };
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A byte as it reads in a message: `'x'` when printable, else `0x0d`.
fn show(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("{:?}", b as char)
    } else {
        format!("0x{b:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode `input` fed in pieces cut at `cuts`, through an output buffer of `out_len`.
    fn decode_split(
        input: &[u8],
        cuts: &[usize],
        out_len: usize,
    ) -> Result<(Vec<u8>, bool), FramingError> {
        let mut d = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut out = vec![0; out_len];
        let mut start = 0;
        for end in cuts.iter().copied().chain([input.len()]) {
            let mut piece = &input[start..end];
            start = end;
            while !piece.is_empty() && !d.is_done() {
                let (c, w) = d.decode(piece, &mut out)?;
                body.extend_from_slice(&out[..w]);
                piece = &piece[c..];
                assert!(c > 0 || w > 0 || d.is_done(), "no progress");
            }
        }
        Ok((body, d.is_done()))
    }

    /// Every single cut and every pair of cuts, through 1-byte and 7-byte output buffers.
    fn every_split(input: &[u8]) -> Vec<(Vec<usize>, usize)> {
        let mut out = Vec::new();
        for out_len in [1, 7, 8192] {
            out.push((vec![], out_len));
            for a in 1..input.len() {
                out.push((vec![a], out_len));
                for b in a + 1..input.len() {
                    out.push((vec![a, b], out_len));
                }
            }
        }
        out
    }

    #[test]
    fn extensions_trailers_and_bare_lf_decode_on_every_split() {
        let input =
            b"5;ext=1\r\nhello\r\n3 ; a=\"q;x\"; b\r\n, w\r\n2\nok\n0;last\r\nx-t: 1\r\n\r\n";
        for (cuts, out_len) in every_split(input) {
            let (body, done) = decode_split(input, &cuts, out_len).unwrap();
            assert_eq!(body, b"hello, wok", "cuts {cuts:?}, out {out_len}");
            assert!(done, "cuts {cuts:?}");
        }
    }

    #[test]
    fn one_call_yields_at_most_one_chunk_and_the_body_ends_exactly_at_the_last() {
        let mut d = ChunkedDecoder::new();
        let mut out = [0; 16];
        let input = b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\nNEXT";
        let (c, w) = d.decode(input, &mut out).unwrap();
        assert_eq!((c, w, &out[..w]), (5, 2, &b"ab"[..]));
        let (c2, w) = d.decode(&input[c..], &mut out).unwrap();
        assert_eq!((c2, w, &out[..w]), (8, 3, &b"cde"[..]));
        let (c3, w) = d.decode(&input[c + c2..], &mut out).unwrap();
        assert_eq!((c3, w), (7, 0));
        assert!(d.is_done());
        let mut d = ChunkedDecoder::new();
        let input = b"2\r\nab\r\n0\r\n";
        let mut at = 0;
        while at < input.len() {
            at += d.decode(&input[at..], &mut out).unwrap().0;
        }
        assert!(!d.is_done(), "the final empty line is still to come");
    }

    #[test]
    fn malformed_chunk_sizes_are_framing_errors_on_every_split() {
        let cases: [(&[u8], &str); 6] = [
            (
                b"2\r\nab\r\nzz\r\nxx\r\n0\r\n\r\n",
                "expected a hex digit, got 'z'",
            ),
            (b"\r\n", "expected a hex digit, got 0x0d"),
            (b"5x\r\nhello\r\n", "'x' after the size 5"),
            (b"2\r\nabc\r\n", "chunk data longer than its size line said"),
            (b"2\rX", "CR followed by 'X'"),
            (b"11111111111111111\r\n", "more than 16 hex digits"),
        ];
        for (input, want) in cases {
            for (cuts, out_len) in every_split(input) {
                let err = decode_split(input, &cuts, out_len).unwrap_err();
                assert!(
                    err.0.contains(want),
                    "{:?}: {err} (cuts {cuts:?})",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn long_size_lines_and_trailers_are_bounded() {
        let mut line = b"1;".to_vec();
        line.extend(std::iter::repeat_n(b'e', MAX_CHUNK_LINE_BYTES));
        let err = decode_split(&line, &[], 64).unwrap_err();
        assert!(err.0.contains("chunk size line longer"), "{err}");
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(b't', MAX_TRAILER_BYTES + 1));
        let err = decode_split(&trailers, &[], 64).unwrap_err();
        assert!(err.0.contains("trailer section longer"), "{err}");
    }

    fn head(text: &str) -> Head {
        parse_head(text.as_bytes()).unwrap().expect("complete head")
    }

    #[test]
    fn heads_of_both_versions_parse_and_partial_heads_wait() {
        let h = head("HTTP/1.0 200 OK\r\ncontent-type: application/x-ndjson\r\n\r\nbody");
        assert_eq!((h.minor_version, h.status, h.len), (0, 200, 55));
        assert_eq!(
            h.values("Content-Type").collect::<Vec<_>>(),
            [&b"application/x-ndjson"[..]]
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-ty").unwrap(), None);
        let err = parse_head(b"HTTP/2.0 200 OK\r\n\r\n").unwrap_err();
        assert!(err.0.contains("unsupported HTTP version"), "{err}");
        let err = parse_head(b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n").unwrap_err();
        assert!(err.0.contains("malformed response head"), "{err}");
    }

    #[test]
    fn oversized_heads_are_refused() {
        let mut big = b"HTTP/1.1 200 OK\r\nx-big: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES));
        let err = parse_head(&big).unwrap_err();
        assert!(err.0.contains("larger than the 256 KiB"), "{err}");
        big.extend_from_slice(b"\r\n\r\n");
        assert!(parse_head(&big).is_err());
    }

    #[test]
    fn body_framing_follows_rfc_9112() {
        let f = |text: &str| body_framing(&head(text));
        assert_eq!(f("HTTP/1.0 200 OK\r\n\r\n"), Ok(BodyFraming::UntilClose));
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"),
            Ok(BodyFraming::UntilClose)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n"),
            Ok(BodyFraming::Length(12))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\n\r\n"),
            Ok(BodyFraming::Length(3))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: gzip, Chunked\r\n\r\n"),
            Ok(BodyFraming::Chunked)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n"),
            Ok(BodyFraming::UntilClose)
        );
        assert_eq!(
            f("HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n"),
            Ok(BodyFraming::Empty)
        );
        assert!(f("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n").is_err());
        assert!(f("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n").is_err());
    }
}
