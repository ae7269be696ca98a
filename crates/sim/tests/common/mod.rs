//! A minimal blocking HTTP/1.1 client that keeps what test assertions need: every HTTP chunk
//! with the time it arrived, and whether the chunked body ended properly.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use chimeraforge_sim::{loopback, ModelProfile, SimConfig, SimHandle, SimServer};

/// One response as it came off the wire.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// When the status line and headers had arrived, from just before the request was written.
    pub headers_at: Duration,
    /// HTTP chunks (or one piece for a content-length body) and when each was complete.
    pub chunks: Vec<(Duration, Vec<u8>)>,
    /// The chunked terminator (or the whole content-length body) arrived.
    pub complete: bool,
    /// When the connection closed or the body ended, whichever came first.
    pub end_at: Duration,
    /// Bytes read per `read` call, for checking how the body was split on the wire.
    pub reads: usize,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body(&self) -> Vec<u8> {
        self.chunks.iter().flat_map(|(_, c)| c.clone()).collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body()).expect("utf-8 body")
    }

    /// NDJSON lines parsed, with the arrival time of the chunk that completed each.
    pub fn ndjson(&self) -> Vec<(Duration, serde_json::Value)> {
        self.lines(b"\n")
            .into_iter()
            .map(|(t, l)| (t, serde_json::from_slice(&l).expect("json line")))
            .collect()
    }

    /// SSE `data:` payloads, with arrival times.
    pub fn sse(&self) -> Vec<(Duration, String)> {
        self.lines(b"\n\n")
            .into_iter()
            .map(|(t, l)| {
                let s = String::from_utf8(l).expect("utf-8 event");
                let data = s.strip_prefix("data: ").expect("data: event").to_string();
                (t, data)
            })
            .collect()
    }

    /// Split the body at `sep`, stamping each piece with the arrival of its last byte.
    pub fn lines(&self, sep: &[u8]) -> Vec<(Duration, Vec<u8>)> {
        let mut out = Vec::new();
        let mut current = Vec::new();
        for (t, chunk) in &self.chunks {
            for &b in chunk {
                current.push(b);
                if current.ends_with(sep) {
                    current.truncate(current.len() - sep.len());
                    out.push((*t, std::mem::take(&mut current)));
                }
            }
        }
        assert!(current.is_empty(), "body ends mid-line: {current:?}");
        out
    }
}

/// Send one request on a fresh connection and read the whole response (or until `timeout`).
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Raw {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let start = Instant::now();
    stream.write_all(&request).expect("write request");
    read_response(stream, start, timeout)
}

/// `send` with a JSON body.
pub fn post(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Raw {
    send(
        addr,
        "POST",
        path,
        &[],
        body.to_string().as_bytes(),
        Duration::from_secs(10),
    )
}

pub fn get(addr: SocketAddr, path: &str) -> Raw {
    send(addr, "GET", path, &[], b"", Duration::from_secs(10))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn read_response(mut stream: TcpStream, start: Instant, timeout: Duration) -> Raw {
    let deadline = start + timeout;
    let mut buf: Vec<u8> = Vec::new();
    let mut raw = Raw {
        status: 0,
        headers: Vec::new(),
        headers_at: Duration::ZERO,
        chunks: Vec::new(),
        complete: false,
        end_at: Duration::ZERO,
        reads: 0,
    };
    let mut head_done = false;
    let mut chunked = false;
    let mut content_length: Option<usize> = None;
    let mut scratch = [0u8; 64 * 1024];
    loop {
        // Parse as much as the buffer holds.
        if !head_done {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let mut lines = head.split("\r\n");
                let status_line = lines.next().unwrap();
                raw.status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
                for line in lines {
                    let (k, v) = line.split_once(':').unwrap();
                    raw.headers
                        .push((k.trim().to_string(), v.trim().to_string()));
                }
                raw.headers_at = start.elapsed();
                chunked = raw
                    .header("transfer-encoding")
                    .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
                content_length = raw.header("content-length").map(|v| v.parse().unwrap());
                buf.drain(..end + 4);
                head_done = true;
            }
        }
        if head_done {
            if chunked {
                while let Some(line_end) = find(&buf, b"\r\n") {
                    let size = usize::from_str_radix(
                        std::str::from_utf8(&buf[..line_end]).unwrap().trim(),
                        16,
                    )
                    .expect("chunk size");
                    if size == 0 {
                        if buf.len() >= line_end + 4 {
                            raw.complete = true;
                        }
                        break;
                    }
                    if buf.len() < line_end + 2 + size + 2 {
                        break;
                    }
                    let data = buf[line_end + 2..line_end + 2 + size].to_vec();
                    buf.drain(..line_end + 2 + size + 2);
                    raw.chunks.push((start.elapsed(), data));
                }
            } else if let Some(len) = content_length {
                if buf.len() >= len {
                    raw.chunks.push((start.elapsed(), buf[..len].to_vec()));
                    raw.complete = true;
                }
            }
            if raw.complete {
                raw.end_at = start.elapsed();
                return raw;
            }
        }
        let now = Instant::now();
        if now >= deadline {
            raw.end_at = start.elapsed();
            return raw;
        }
        stream.set_read_timeout(Some(deadline - now)).unwrap();
        match stream.read(&mut scratch) {
            Ok(0) => break,
            Ok(n) => {
                raw.reads += 1;
                buf.extend_from_slice(&scratch[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                raw.end_at = start.elapsed();
                return raw;
            }
            Err(_) => break,
        }
    }
    // Closed: a body without length runs to the close.
    if head_done && !chunked && content_length.is_none() && !buf.is_empty() {
        raw.chunks.push((start.elapsed(), std::mem::take(&mut buf)));
    }
    raw.end_at = start.elapsed();
    raw
}

/// A server on 127.0.0.1 with an OS-chosen port.
pub fn start(config: SimConfig) -> SimHandle {
    SimServer::start(config, loopback(0)).expect("start simulator")
}

/// A one-model config with the given speeds and device.
pub fn config(
    device: chimeraforge_sim::Device,
    ttft_ms: f64,
    decode_tok_s: f64,
    load_ms: f64,
) -> SimConfig {
    SimConfig {
        device,
        models: vec![ModelProfile {
            name: "m:latest".to_string(),
            ttft_ms,
            prefill_tok_s: 0.0,
            decode_tok_s,
            load_ms,
            default_output_tokens: (20, 20),
            ..ModelProfile::default()
        }],
        ..SimConfig::profile("fixed").unwrap()
    }
}

/// The concatenated `response` / `message.content` of Ollama NDJSON lines (excluding the last).
pub fn ollama_text(lines: &[(Duration, serde_json::Value)]) -> String {
    lines
        .iter()
        .filter(|(_, l)| l["done"] == false)
        .map(|(_, l)| {
            l["response"]
                .as_str()
                .or_else(|| l["message"]["content"].as_str())
                .unwrap()
                .to_string()
        })
        .collect()
}
