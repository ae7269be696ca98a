//! One streaming call, timed on the runtime's monotonic clock, with its timeouts.
//!
//! Written once for every backend: the timestamps are taken here, so each backend is
//! measured the same way (t_send just before the request goes to the client, a chunk's
//! time when the client hands it over, before it is decoded).

use crate::api::{ApiKind, ServerStats, StreamEvent};
use crate::http::{BodyStream, HttpClient, HttpError, HttpRequest};
use crate::metrics::{percentiles, Percentiles};
use crate::rt::AsyncRuntime;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Timeouts the call enforces with the runtime's timer (connect is the client's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// From sending the request to the first body byte, ms.
    #[serde(with = "crate::serde_ms", rename = "first_byte_ms")]
    pub first_byte: Duration,
    /// Longest silence between body chunks after the first, ms.
    #[serde(with = "crate::serde_ms", rename = "idle_ms")]
    pub idle: Duration,
    /// Whole call, ms.
    #[serde(with = "crate::serde_ms", rename = "total_ms")]
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(30),
            total: Duration::from_secs(600),
        }
    }
}

/// Settings shared by every call of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallSettings {
    pub timeouts: Timeouts,
    /// Longest stream line accepted (bounds memory on any stream), bytes.
    pub max_line_bytes: usize,
    /// A call whose server-reported load time exceeds this is flagged `cold_load`, ms.
    pub cold_load_threshold_ms: f64,
}

/// The default `cold_load_threshold_ms`. A warm Ollama call reports a `load_duration` of a
/// few ms to a few tens of ms; a reload (changed `num_ctx`/`num_gpu`, or an evicted model)
/// takes hundreds of ms to seconds. 100 ms sits between, so a short reload is flagged too.
pub const DEFAULT_COLD_LOAD_THRESHOLD_MS: f64 = 100.0;

impl Default for CallSettings {
    fn default() -> Self {
        CallSettings {
            timeouts: Timeouts::default(),
            max_line_bytes: 1 << 20,
            cold_load_threshold_ms: DEFAULT_COLD_LOAD_THRESHOLD_MS,
        }
    }
}

/// Whether a figure was measured directly or derived under an assumption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    Measured,
    Estimated,
}

/// Output tokens of a call and where the number comes from: the server's count
/// (`measured`) or the number of text events the client saw (`estimated`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TokenCount {
    pub value: u64,
    pub basis: Basis,
}

/// What kind of failure ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum CallErrorKind {
    Connect,
    ConnectTimeout,
    InvalidUrl,
    Request,
    HttpStatus,
    WrongContentType,
    FirstByteTimeout,
    IdleTimeout,
    TotalTimeout,
    Body,
    LineTooLong,
    InvalidUtf8,
    MalformedStream,
    ServerError,
    ClosedBeforeDone,
    Framing,
}

/// A failed call: what happened, where, and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CallError {
    pub kind: CallErrorKind,
    pub message: String,
    pub url: String,
    pub model: String,
    /// HTTP status, when the server answered with one other than 200.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub bytes_received: u64,
    pub elapsed_ms: f64,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (model {:?} at {}, after {:.0} ms, {} bytes received)",
            self.message, self.model, self.url, self.elapsed_ms, self.bytes_received
        )
    }
}

/// Everything measured about one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CallRecord {
    pub agent_id: String,
    /// The call's name in the agent's workload (`analysis`, `report`, `warmup`).
    pub call: String,
    pub url: String,
    pub model: String,
    /// When the request was sent, relative to the start of its phase, ms.
    pub send_offset_ms: f64,
    /// t_first - t_send: first chunk carrying non-empty generated text of any kind
    /// (reasoning or answer), ms.
    pub ttft_ms: Option<f64>,
    /// t_done - t_send: until the response body ended, ms.
    pub e2e_ms: f64,
    /// t_last - t_first: first to last text-carrying chunk (reasoning or answer), ms.
    pub decode_ms: Option<f64>,
    /// Every generated token, reasoning included (what the server decodes).
    pub output_tokens: Option<TokenCount>,
    /// Text events the client decoded: non-empty `response`/`content`/`delta` text and
    /// non-empty reasoning (`thinking`, `reasoning_content`, `reasoning`).
    pub text_events: u64,
    pub bytes_received: u64,
    /// Arrival of each text event (reasoning or answer) relative to t_send, ms (the raw
    /// inter-chunk record).
    pub text_offsets_ms: Vec<f64>,
    /// (tokens - 1) / (t_last - t_first), tok/s.
    pub client_decode_tok_s: Option<f64>,
    /// (t_last - t_first) / (tokens - 1), ms per output token after the first.
    pub tpot_ms: Option<f64>,
    /// Percentiles of raw gaps between consecutive text events, ms.
    pub gap_ms: Option<Percentiles>,
    /// Server-reported figures, as reported.
    pub server: Option<ServerStats>,
    /// Server-reported tokens / eval time, tok/s.
    pub server_decode_tok_s: Option<f64>,
    /// Server-reported load time above the threshold: a model (re)load landed in this call.
    pub cold_load: bool,
    /// First characters of the generated text (for reports; the full text is not kept).
    pub output_preview: String,
    pub error: Option<CallError>,
    /// t_first_answer - t_send: first chunk carrying non-empty answer text (`response`,
    /// `content`, `text`), after any reasoning, ms. Equals `ttft_ms` when nothing reasoned.
    #[serde(default)]
    pub ttft_answer_ms: Option<f64>,
    /// Of `text_events`, those carrying reasoning text.
    #[serde(default)]
    pub reasoning_events: u64,
    /// Of `output_tokens`, those spent reasoning: the server's count (`measured`), else
    /// `reasoning_events` (`estimated`); absent when the call reasoned not at all.
    #[serde(default)]
    pub reasoning_tokens: Option<TokenCount>,
    /// Of `output_tokens`, the answer's: output − the server's reasoning count when the
    /// server gives both, `output_tokens` when nothing reasoned, else the answer's text
    /// events (`estimated`).
    #[serde(default)]
    pub answer_tokens: Option<TokenCount>,
}

/// A finished call: its record and the full answer text (input to the next call; reasoning
/// is not part of it).
pub struct CallOutcome {
    pub record: CallRecord,
    pub text: String,
}

const PREVIEW_CHARS: usize = 160;
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// What to send: enough to build the request and label the record.
pub struct CallTarget<'a> {
    pub agent_id: &'a str,
    pub call: &'a str,
    pub url: String,
    pub model: &'a str,
    pub api: ApiKind,
    pub body: Vec<u8>,
    pub api_key: Option<&'a str>,
    /// Incremented once per text event, for live progress read by another thread (a relaxed
    /// atomic add: nanoseconds against the read that delivered the text). `None`: nothing.
    pub live_tokens: Option<&'a AtomicU64>,
}

/// Race `fut` against the runtime's timer; `None` when `limit` passed first.
pub async fn within<R: AsyncRuntime, F: Future>(
    rt: &R,
    limit: Duration,
    fut: F,
) -> Option<F::Output> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        rt.sleep(limit).await;
        None
    })
    .await
}

/// Run one streaming call and measure it. Never panics on bad input; failures come back
/// as a record with `error` set.
pub async fn execute_call<R: AsyncRuntime, C: HttpClient>(
    rt: &R,
    client: &C,
    target: CallTarget<'_>,
    settings: &CallSettings,
    phase_start: Instant,
) -> CallOutcome {
    let mut m = Measuring::new(&target, settings);
    let mut req = HttpRequest::post_json(target.url, target.body);
    // One fresh connection per call on every backend: pooling policies differ between
    // clients, and a reused connection can race a server's keep-alive timeout (llama.cpp
    // closes idle ones after 5 s), failing a measured call that nothing should retry.
    req.headers.push(("connection".into(), "close".into()));
    if let Some(key) = target.api_key {
        req.headers
            .push(("authorization".into(), format!("Bearer {key}")));
    }
    let t_send = rt.now();
    m.t_send = t_send;
    m.send_offset_ms = ms(t_send.saturating_duration_since(phase_start));
    let live = target.live_tokens;
    let result = stream_call(rt, client, req, target.api, settings, &mut m, live).await;
    let t_done = rt.now();
    m.finish(t_done, result.err())
}

struct Measuring {
    agent_id: String,
    call: String,
    url: String,
    model: String,
    cold_load_threshold_ms: f64,
    t_send: Instant,
    send_offset_ms: f64,
    t_first: Option<Instant>,
    t_first_answer: Option<Instant>,
    reasoning_events: u64,
    t_last: Option<Instant>,
    offsets_ms: Vec<f64>,
    text: String,
    bytes: u64,
    server: Option<ServerStats>,
    done: bool,
}

impl Measuring {
    fn new(t: &CallTarget<'_>, s: &CallSettings) -> Self {
        Measuring {
            agent_id: t.agent_id.to_owned(),
            call: t.call.to_owned(),
            url: t.url.clone(),
            model: t.model.to_owned(),
            cold_load_threshold_ms: s.cold_load_threshold_ms,
            t_send: Instant::now(),
            send_offset_ms: 0.0,
            t_first: None,
            t_first_answer: None,
            reasoning_events: 0,
            t_last: None,
            offsets_ms: Vec::new(),
            text: String::new(),
            bytes: 0,
            server: None,
            done: false,
        }
    }

    fn error(
        &self,
        kind: CallErrorKind,
        message: String,
        status: Option<u16>,
        at: Instant,
    ) -> CallError {
        CallError {
            kind,
            message,
            url: self.url.clone(),
            model: self.model.clone(),
            status,
            bytes_received: self.bytes,
            elapsed_ms: ms(at.saturating_duration_since(self.t_send)),
        }
    }

    fn on_event(&mut self, ev: StreamEvent, at: Instant) -> Result<(), (CallErrorKind, String)> {
        match ev {
            StreamEvent::Text(s) if !s.is_empty() => {
                self.t_first.get_or_insert(at);
                self.t_first_answer.get_or_insert(at);
                self.t_last = Some(at);
                self.offsets_ms
                    .push(ms(at.saturating_duration_since(self.t_send)));
                self.text.push_str(&s);
            }
            StreamEvent::Text(_) => {}
            // Timed like answer text (the server decodes it alike); its text is not kept.
            StreamEvent::Reasoning(s) if !s.is_empty() => {
                self.t_first.get_or_insert(at);
                self.t_last = Some(at);
                self.offsets_ms
                    .push(ms(at.saturating_duration_since(self.t_send)));
                self.reasoning_events += 1;
            }
            StreamEvent::Reasoning(_) => {}
            StreamEvent::Stats(s) => match &mut self.server {
                Some(have) => have.merge(s),
                None => self.server = Some(s),
            },
            StreamEvent::Done { reason } => {
                self.done = true;
                if let (Some(r), Some(s)) = (reason, &mut self.server) {
                    s.done_reason.get_or_insert(r);
                }
            }
            StreamEvent::ServerError(msg) => {
                return Err((
                    CallErrorKind::ServerError,
                    format!("server error in stream: {msg}"),
                ))
            }
        }
        Ok(())
    }

    fn finish(self, t_done: Instant, error: Option<CallError>) -> CallOutcome {
        let since_send = |t: Instant| ms(t.saturating_duration_since(self.t_send));
        let ttft_ms = self.t_first.map(since_send);
        let decode_ms = match (self.t_first, self.t_last) {
            (Some(a), Some(b)) => Some(ms(b.saturating_duration_since(a))),
            _ => None,
        };
        let text_events = self.offsets_ms.len() as u64;
        let output_tokens = match self.server.as_ref().and_then(|s| s.output_tokens) {
            Some(n) => Some(TokenCount {
                value: n,
                basis: Basis::Measured,
            }),
            None if text_events > 0 => Some(TokenCount {
                value: text_events,
                basis: Basis::Estimated,
            }),
            None => None,
        };
        let (client_decode_tok_s, tpot_ms) = match (output_tokens, decode_ms) {
            (Some(t), Some(d)) if t.value > 1 && d > 0.0 => {
                let per = d / (t.value - 1) as f64;
                (Some(1e3 / per), Some(per))
            }
            _ => (None, None),
        };
        let (reasoning_tokens, answer_tokens) = reasoning_split(
            self.server.as_ref(),
            output_tokens,
            text_events,
            self.reasoning_events,
        );
        let gaps: Vec<f64> = self.offsets_ms.windows(2).map(|w| w[1] - w[0]).collect();
        let cold_load = self
            .server
            .as_ref()
            .and_then(|s| s.load_ms)
            .is_some_and(|l| l > self.cold_load_threshold_ms);
        let record = CallRecord {
            agent_id: self.agent_id,
            call: self.call,
            url: self.url,
            model: self.model,
            send_offset_ms: self.send_offset_ms,
            ttft_ms,
            e2e_ms: since_send(t_done),
            decode_ms,
            output_tokens,
            text_events,
            bytes_received: self.bytes,
            text_offsets_ms: self.offsets_ms,
            client_decode_tok_s,
            tpot_ms,
            gap_ms: percentiles(&gaps),
            server_decode_tok_s: self.server.as_ref().and_then(ServerStats::decode_tok_s),
            server: self.server,
            cold_load,
            output_preview: self.text.chars().take(PREVIEW_CHARS).collect(),
            error,
            ttft_answer_ms: self.t_first_answer.map(since_send),
            reasoning_events: self.reasoning_events,
            reasoning_tokens,
            answer_tokens,
        };
        CallOutcome {
            record,
            text: self.text,
        }
    }
}

/// `(reasoning_tokens, answer_tokens)` of a call (see [`CallRecord`]): server counts where
/// the server gives them, else the events counted.
fn reasoning_split(
    server: Option<&ServerStats>,
    output: Option<TokenCount>,
    text_events: u64,
    reasoning_events: u64,
) -> (Option<TokenCount>, Option<TokenCount>) {
    let counted = |value| TokenCount {
        value,
        basis: Basis::Estimated,
    };
    let reasoning = match server.and_then(|s| s.reasoning_tokens) {
        Some(n) => Some(TokenCount {
            value: n,
            basis: Basis::Measured,
        }),
        None if reasoning_events > 0 => Some(counted(reasoning_events)),
        None => None,
    };
    let answer = match (output, reasoning) {
        (Some(o), Some(r)) if o.basis == Basis::Measured && r.basis == Basis::Measured => {
            Some(TokenCount {
                value: o.value.saturating_sub(r.value),
                basis: Basis::Measured,
            })
        }
        (o, None) => o,
        (_, Some(_)) => Some(counted(text_events - reasoning_events)),
    };
    (reasoning, answer)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn http_error_kind(e: &HttpError) -> CallErrorKind {
    match e {
        HttpError::Connect { .. } => CallErrorKind::Connect,
        HttpError::ConnectTimeout { .. } => CallErrorKind::ConnectTimeout,
        HttpError::InvalidUrl { .. } => CallErrorKind::InvalidUrl,
        HttpError::Request(_) => CallErrorKind::Request,
        HttpError::Body(_) => CallErrorKind::Body,
        HttpError::Framing(_) => CallErrorKind::Framing,
    }
}

fn codec_error_kind(e: &crate::api::CodecError) -> CallErrorKind {
    use crate::api::CodecError::*;
    match e {
        LineTooLong { .. } => CallErrorKind::LineTooLong,
        InvalidUtf8 { .. } => CallErrorKind::InvalidUtf8,
        MalformedJson { .. } | TruncatedLine { .. } => CallErrorKind::MalformedStream,
    }
}

fn content_type_fits(api: ApiKind, ct: Option<&str>) -> bool {
    let Some(ct) = ct else { return true };
    let ct = ct.to_ascii_lowercase();
    if api.is_ollama() {
        ct.contains("json")
    } else {
        ct.contains("event-stream")
    }
}

/// The message a server put in an error body (`{"error": "..."}` or
/// `{"error": {"message": "..."}}`), else the body's start.
fn error_body_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        let e = v.get("error")?;
        e.as_str()
            .map(str::to_owned)
            .or_else(|| e.get("message")?.as_str().map(str::to_owned))
    });
    from_json.unwrap_or_else(|| {
        String::from_utf8_lossy(&body[..body.len().min(300)])
            .trim()
            .to_owned()
    })
}

fn count_live(live: Option<&AtomicU64>, ev: &StreamEvent) {
    if let (Some(c), StreamEvent::Text(t) | StreamEvent::Reasoning(t)) = (live, ev) {
        if !t.is_empty() {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn stream_call<R: AsyncRuntime, C: HttpClient>(
    rt: &R,
    client: &C,
    req: HttpRequest,
    api: ApiKind,
    settings: &CallSettings,
    m: &mut Measuring,
    live: Option<&AtomicU64>,
) -> Result<(), CallError> {
    let to = settings.timeouts;
    let t_send = m.t_send;
    let total_deadline = t_send + to.total;
    let first_byte_deadline = t_send + to.first_byte.min(to.total);

    let head = within(
        rt,
        first_byte_deadline.saturating_duration_since(rt.now()),
        client.send(req),
    )
    .await;
    let mut resp = match head {
        None => {
            let kind = if to.total <= to.first_byte {
                CallErrorKind::TotalTimeout
            } else {
                CallErrorKind::FirstByteTimeout
            };
            let msg = format!(
                "no response within {} ms (first-byte timeout)",
                to.first_byte.min(to.total).as_millis()
            );
            return Err(m.error(kind, msg, None, rt.now()));
        }
        Some(Err(e)) => return Err(m.error(http_error_kind(&e), e.to_string(), None, rt.now())),
        Some(Ok(r)) => r,
    };

    if resp.status != 200 {
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_LIMIT {
            match within(rt, to.idle, resp.body.next_chunk()).await {
                Some(Ok(Some(c))) => body.extend_from_slice(&c),
                _ => break,
            }
        }
        let msg = format!("HTTP {}: {}", resp.status, error_body_message(&body));
        m.bytes = body.len() as u64;
        return Err(m.error(CallErrorKind::HttpStatus, msg, Some(resp.status), rt.now()));
    }
    if !content_type_fits(api, resp.content_type.as_deref()) {
        let msg = format!(
            "unexpected content type {:?} for the {:?} API (is this the right endpoint?)",
            resp.content_type.as_deref().unwrap_or(""),
            api
        );
        return Err(m.error(CallErrorKind::WrongContentType, msg, Some(200), rt.now()));
    }

    let mut decoder = api.decoder(settings.max_line_bytes);
    let mut events = Vec::new();
    loop {
        let now = rt.now();
        let (deadline, kind, what) = if m.bytes == 0 {
            (
                first_byte_deadline,
                CallErrorKind::FirstByteTimeout,
                "first byte",
            )
        } else {
            (now + to.idle, CallErrorKind::IdleTimeout, "idle")
        };
        let (deadline, kind, what) = if total_deadline <= deadline {
            (total_deadline, CallErrorKind::TotalTimeout, "total")
        } else {
            (deadline, kind, what)
        };
        let chunk = match within(
            rt,
            deadline.saturating_duration_since(now),
            resp.body.next_chunk(),
        )
        .await
        {
            None => {
                let msg = format!("stream stalled: {what} timeout");
                return Err(m.error(kind, msg, Some(200), rt.now()));
            }
            // A body that breaks off before the final line (EOF inside a chunked body, a
            // reset) is the server closing early, whatever words the client uses for it.
            Some(Err(HttpError::Body(e))) if !m.done => {
                let msg = format!(
                    "the connection closed before the server said the generation was done ({e})"
                );
                return Err(m.error(CallErrorKind::ClosedBeforeDone, msg, Some(200), rt.now()));
            }
            Some(Err(e)) => {
                return Err(m.error(http_error_kind(&e), e.to_string(), Some(200), rt.now()))
            }
            Some(Ok(None)) => break,
            Some(Ok(Some(c))) => c,
        };
        let at = rt.now();
        m.bytes += chunk.len() as u64;
        if let Err(e) = decoder.feed(&chunk, &mut events) {
            return Err(m.error(codec_error_kind(&e), e.to_string(), Some(200), at));
        }
        for ev in events.drain(..) {
            count_live(live, &ev);
            if let Err((kind, msg)) = m.on_event(ev, at) {
                return Err(m.error(kind, msg, Some(200), at));
            }
        }
    }
    let at = rt.now();
    if let Err(e) = decoder.finish(&mut events) {
        return Err(m.error(codec_error_kind(&e), e.to_string(), Some(200), at));
    }
    for ev in events.drain(..) {
        count_live(live, &ev);
        if let Err((kind, msg)) = m.on_event(ev, at) {
            return Err(m.error(kind, msg, Some(200), at));
        }
    }
    if !m.done {
        let msg = "the connection closed before the server said the generation was done".to_owned();
        return Err(m.error(CallErrorKind::ClosedBeforeDone, msg, Some(200), at));
    }
    Ok(())
}

#[cfg(test)]
mod reasoning_tests {
    use super::*;

    /// A call fed `events`, event i arriving i·10 ms after the first's 100 ms.
    fn measure(events: Vec<StreamEvent>) -> CallOutcome {
        let target = CallTarget {
            agent_id: "a",
            call: "c",
            url: "http://h/api/chat".into(),
            model: "m",
            api: ApiKind::Ollama,
            body: Vec::new(),
            api_key: None,
            live_tokens: None,
        };
        let mut m = Measuring::new(&target, &CallSettings::default());
        let t0 = Instant::now();
        m.t_send = t0;
        let mut at = t0 + Duration::from_millis(100);
        for ev in events {
            m.on_event(ev, at).unwrap();
            at += Duration::from_millis(10);
        }
        m.finish(at, None)
    }

    fn thinking(stats: ServerStats) -> Vec<StreamEvent> {
        vec![
            StreamEvent::Reasoning("Let".into()),
            StreamEvent::Reasoning(" me".into()),
            StreamEvent::Reasoning(" think".into()),
            StreamEvent::Text("An".into()),
            StreamEvent::Text("swer".into()),
            StreamEvent::Stats(stats),
            StreamEvent::Done { reason: None },
        ]
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-6)
    }

    #[test]
    fn reasoning_starts_ttft_and_the_answer_starts_ttft_answer() {
        let out = measure(thinking(ServerStats {
            output_tokens: Some(5),
            reasoning_tokens: Some(3),
            ..Default::default()
        }));
        let r = &out.record;
        assert!(close(r.ttft_ms, 100.0), "{:?}", r.ttft_ms);
        assert!(close(r.ttft_answer_ms, 130.0), "{:?}", r.ttft_answer_ms);
        // Decode spans every generated token: 5 tokens, first to last 40 ms.
        assert!(close(r.decode_ms, 40.0));
        assert!(close(r.tpot_ms, 10.0));
        assert_eq!(r.text_events, 5);
        assert_eq!(r.reasoning_events, 3);
        assert_eq!(r.text_offsets_ms.len(), 5);
        let measured = |value| {
            Some(TokenCount {
                value,
                basis: Basis::Measured,
            })
        };
        assert_eq!(r.output_tokens, measured(5));
        assert_eq!(r.reasoning_tokens, measured(3));
        assert_eq!(r.answer_tokens, measured(2));
        // Only the answer goes on to the next call (`{previous}`) and into the preview.
        assert_eq!(out.text, "Answer");
        assert_eq!(r.output_preview, "Answer");
    }

    #[test]
    fn without_a_server_reasoning_count_the_events_are_counted() {
        // Ollama: eval_count counts thoughts and answer, nothing says how many were thoughts.
        let out = measure(thinking(ServerStats {
            output_tokens: Some(5),
            ..Default::default()
        }));
        let r = &out.record;
        let estimated = |value| {
            Some(TokenCount {
                value,
                basis: Basis::Estimated,
            })
        };
        assert_eq!(r.output_tokens.unwrap().basis, Basis::Measured);
        assert_eq!(r.reasoning_tokens, estimated(3));
        assert_eq!(r.answer_tokens, estimated(2));
    }

    #[test]
    fn a_call_that_does_not_reason_has_one_ttft_and_all_tokens_answer() {
        let out = measure(vec![
            StreamEvent::Text("a".into()),
            StreamEvent::Text("b".into()),
            StreamEvent::Stats(ServerStats {
                output_tokens: Some(2),
                ..Default::default()
            }),
            StreamEvent::Done { reason: None },
        ]);
        let r = &out.record;
        assert_eq!(r.ttft_ms, r.ttft_answer_ms);
        assert_eq!(r.reasoning_tokens, None);
        assert_eq!(r.reasoning_events, 0);
        assert_eq!(r.answer_tokens, r.output_tokens);
    }

    #[test]
    fn a_call_cut_off_while_thinking_has_no_answer_ttft() {
        let out = measure(vec![
            StreamEvent::Reasoning("hmm".into()),
            StreamEvent::Done {
                reason: Some("length".into()),
            },
        ]);
        assert!(close(out.record.ttft_ms, 100.0));
        assert_eq!(out.record.ttft_answer_ms, None);
        assert_eq!(out.record.answer_tokens.unwrap().value, 0);
    }
}
