//! One streaming call, timed on the runtime's monotonic clock, with its timeouts.
//!
//! Written once for every backend: the timestamps are taken here, so each backend is
//! measured the same way (t_send just before the request goes to the client, a chunk's
//! time when the client hands it over, before it is decoded).

use crate::api::{ApiKind, ServerStats, StreamEvent, ToolCallAssembly};
use crate::http::{BodyStream, HttpClient, HttpError, HttpRequest};
use crate::metrics::percentiles;
use crate::rt::AsyncRuntime;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a call produces (declared with the other record types).
pub use crate::record::{Basis, CallError, CallErrorKind, CallRecord, TokenCount};

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
    /// Longest stream line accepted (bounds the memory of one line being assembled; what
    /// bounds a whole stream is `runaway_factor` and `max_response_bytes`), bytes.
    pub max_line_bytes: usize,
    /// A call whose server-reported load time exceeds this is flagged `cold_load`, ms.
    pub cold_load_threshold_ms: f64,
    /// A call fails as `runaway_stream` once it has decoded more text events than this
    /// many times its `num_predict` (or than [`TOKEN_CAP_WITHOUT_NUM_PREDICT`] when the
    /// call sets none).
    #[serde(default = "default_runaway_factor")]
    pub runaway_factor: f64,
    /// A call fails as `runaway_stream` once its response body exceeds this, bytes.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
}

/// The default `runaway_factor`: a server may send fewer text events than tokens (several
/// tokens in one event, a split UTF-8 character held back), rarely more; four times what
/// was asked for is far past any honest stream and still cuts a flood off early.
pub const DEFAULT_RUNAWAY_FACTOR: f64 = 4.0;

/// The default `max_response_bytes`, 64 MiB: an OpenAI-compatible chunk is 250-450 bytes
/// per token and an Ollama line 120-200, so the longest honest reply the token cap lets
/// through ([`TOKEN_CAP_WITHOUT_NUM_PREDICT`] events at up to ~450 bytes, about 56 MiB)
/// fits; memory does not depend on it (the body is streamed, see [`KEPT_TEXT_BYTES`]).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 << 20;

/// The text-event cap of a call that sets no `num_predict` (Ollama's default is to
/// generate until the context is full): 128 Ki events, the largest common context window.
pub const TOKEN_CAP_WITHOUT_NUM_PREDICT: u64 = 128 * 1024;

/// Generated text one call keeps (for `{previous}` and `output_preview`): the first
/// 256 KiB, cut at a character boundary; `output_truncated` says when more arrived.
pub const KEPT_TEXT_BYTES: usize = 256 * 1024;

/// Text-event offsets a record keeps in `text_offsets_ms`: the first 16 Ki (at most
/// ~200 KB of JSON). The gap percentiles use every offset: in memory they are bounded by
/// the token cap (8 bytes each).
pub const KEPT_OFFSETS: usize = 16 * 1024;

fn default_runaway_factor() -> f64 {
    DEFAULT_RUNAWAY_FACTOR
}
fn default_max_response_bytes() -> u64 {
    DEFAULT_MAX_RESPONSE_BYTES
}

impl CallSettings {
    /// The most text events a call that asked for `num_predict` tokens may decode.
    pub fn token_cap(&self, num_predict: Option<u32>) -> u64 {
        match num_predict {
            Some(n) => {
                let cap = (self.runaway_factor * f64::from(n)).ceil();
                if cap >= u64::MAX as f64 {
                    u64::MAX
                } else {
                    (cap as u64).max(1)
                }
            }
            None => TOKEN_CAP_WITHOUT_NUM_PREDICT,
        }
    }
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
            runaway_factor: DEFAULT_RUNAWAY_FACTOR,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// A finished call: its record and the answer text (input to the next call; reasoning is
/// not part of it; the first [`KEPT_TEXT_BYTES`] of it).
pub struct CallOutcome {
    pub record: CallRecord,
    pub text: String,
    /// The tool calls the model made, assembled from the stream, in the order it made them.
    pub tool_calls: Vec<crate::api::ToolCall>,
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
    /// The output tokens the request asks for (its `num_predict` / `max_tokens`), which
    /// sets the call's runaway cap ([`CallSettings::token_cap`]).
    pub num_predict: Option<u32>,
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
    // Connection reuse is the client's (its `ConnectionPolicy`): it sends `Connection:
    // close` under `fresh` and retries a stale kept-alive connection itself.
    // Bodies are decoded as they arrive, uncompressed; a server that compresses anyway is
    // named as such (see `stream_call`), not misread as invalid UTF-8.
    req.headers
        .push(("accept-encoding".into(), "identity".into()));
    if let Some(key) = target.api_key {
        req.headers
            .push(("authorization".into(), format!("Bearer {key}")));
    }
    let t_send = rt.now();
    m.t_send = t_send;
    m.send_offset_ms = ms(t_send.saturating_duration_since(phase_start));
    let live = target.live_tokens;
    let before = client.connections();
    let result = stream_call(rt, client, req, target.api, settings, &mut m, live).await;
    let t_done = rt.now();
    let after = client.connections();
    let mut outcome = m.finish(t_done, result.err());
    outcome.record.connections_opened = after.opened.saturating_sub(before.opened);
    outcome.record.reconnects = after.reconnects.saturating_sub(before.reconnects);
    outcome
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
    text_truncated: bool,
    /// Text events decoded (all of them; `offsets_ms` holds at most `token_cap`).
    text_events: u64,
    /// Of `text_events`, those carrying a tool call or a fragment of one.
    tool_call_events: u64,
    tool_calls: ToolCallAssembly,
    token_cap: u64,
    runaway_factor: f64,
    num_predict: Option<u32>,
    bytes: u64,
    /// When the last body chunk arrived.
    t_last_chunk: Option<Instant>,
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
            text_truncated: false,
            text_events: 0,
            tool_call_events: 0,
            tool_calls: ToolCallAssembly::default(),
            token_cap: s.token_cap(t.num_predict),
            runaway_factor: s.runaway_factor,
            num_predict: t.num_predict,
            bytes: 0,
            t_last_chunk: None,
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
                self.generated(at)?;
                self.t_first_answer.get_or_insert(at);
                self.keep_text(&s);
            }
            StreamEvent::Text(_) => {}
            // Timed and capped like answer text (the server decodes it alike and counts it
            // against num_predict); its text is not kept.
            StreamEvent::Reasoning(s) if !s.is_empty() => {
                self.generated(at)?;
                self.reasoning_events += 1;
            }
            StreamEvent::Reasoning(_) => {}
            // A tool call is what the model generated instead of (or after) text: timed and
            // capped alike; assembled for the agent's next call, not part of the answer text.
            StreamEvent::ToolCall(chunk) => {
                self.generated(at)?;
                self.tool_call_events += 1;
                self.tool_calls.push(chunk);
            }
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

    /// A generated event of any kind (answer, reasoning, tool call) arrived at `at`: time it, count it,
    /// and fail the call once it is past the runaway cap.
    fn generated(&mut self, at: Instant) -> Result<(), (CallErrorKind, String)> {
        self.t_first.get_or_insert(at);
        self.t_last = Some(at);
        self.text_events += 1;
        if self.text_events > self.token_cap {
            return Err((CallErrorKind::RunawayStream, self.runaway_tokens_message()));
        }
        self.offsets_ms
            .push(ms(at.saturating_duration_since(self.t_send)));
        Ok(())
    }

    /// Append to the kept text, up to [`KEPT_TEXT_BYTES`] (cut at a character boundary).
    fn keep_text(&mut self, s: &str) {
        // Once cut, nothing more: a later short event that fits the bytes left over would
        // make the kept text no longer a prefix of the output.
        if self.text_truncated {
            return;
        }
        let room = KEPT_TEXT_BYTES.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
            return;
        }
        let mut cut = room;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.push_str(&s[..cut]);
        self.text_truncated = true;
    }

    fn runaway_tokens_message(&self) -> String {
        let asked = match self.num_predict {
            Some(n) => format!("runaway_factor {} x num_predict {n}", self.runaway_factor),
            None => "the cap for a call without num_predict".to_owned(),
        };
        format!(
            "runaway stream: more than {} text events ({asked}) and no end in sight; \
             the server generates past what was asked (set num_predict, or raise runaway_factor \
             if this server splits tokens into several events)",
            self.token_cap
        )
    }

    fn finish(mut self, t_done: Instant, error: Option<CallError>) -> CallOutcome {
        let since_send = |t: Instant| ms(t.saturating_duration_since(self.t_send));
        let ttft_ms = self.t_first.map(since_send);
        let decode_ms = match (self.t_first, self.t_last) {
            (Some(a), Some(b)) => Some(ms(b.saturating_duration_since(a))),
            _ => None,
        };
        let text_events = self.text_events;
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
        let gap_ms = percentiles(&gaps);
        drop(gaps);
        self.offsets_ms.truncate(KEPT_OFFSETS);
        self.offsets_ms.shrink_to_fit();
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
            gap_ms,
            server_decode_tok_s: self.server.as_ref().and_then(ServerStats::decode_tok_s),
            server: self.server,
            cold_load,
            output_preview: self.text.chars().take(PREVIEW_CHARS).collect(),
            error,
            ttft_answer_ms: self.t_first_answer.map(since_send),
            reasoning_events: self.reasoning_events,
            reasoning_tokens,
            answer_tokens,
            output_truncated: self.text_truncated,
            connections_opened: 0,
            reconnects: 0,
            tool_calls: self.tool_calls.len() as u64,
            tool_call_events: self.tool_call_events,
            tool_wait_ms: None,
        };
        CallOutcome {
            record,
            text: self.text,
            tool_calls: self.tool_calls.into_calls(),
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
        HttpError::Connect { .. } | HttpError::Tls { .. } => CallErrorKind::Connect,
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
        MalformedJson { .. } | TruncatedLine { .. } | MalformedToolCall { .. } => {
            CallErrorKind::MalformedStream
        }
    }
}

/// How recent the last chunk must be, when the total deadline fires, for the stream to
/// count as still arriving rather than stalled: the idle window, at most 1 s (a stream
/// silent for longer than a second is not "arriving", whatever the idle timeout allows).
fn arriving_window(to: Timeouts) -> Duration {
    to.idle.min(Duration::from_secs(1))
}

/// A `content-encoding` other than identity: the body is not the bytes the codec reads.
fn unasked_encoding(enc: Option<&str>) -> Option<&str> {
    let enc = enc?.trim();
    (!enc.is_empty() && !enc.eq_ignore_ascii_case("identity")).then_some(enc)
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
    let generated = match ev {
        StreamEvent::Text(t) | StreamEvent::Reasoning(t) => !t.is_empty(),
        StreamEvent::ToolCall(_) => true,
        _ => false,
    };
    if let (Some(c), true) = (live, generated) {
        c.fetch_add(1, Ordering::Relaxed);
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
    if let Some(enc) = unasked_encoding(resp.content_encoding.as_deref()) {
        let msg = format!(
            "the response body is encoded with content-encoding {enc:?}, which the request \
             did not accept (it asks for identity); turn compression off on the server or \
             the proxy in front of it"
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
                let at = rt.now();
                let msg = match m.t_last_chunk {
                    Some(last)
                        if kind == CallErrorKind::TotalTimeout
                            && at.saturating_duration_since(last) < arriving_window(to) =>
                    {
                        format!(
                            "the total time of {} ms ran out while tokens were still arriving \
                             (the last chunk came {:.0} ms before; raise total_ms or lower num_predict)",
                            to.total.as_millis(),
                            ms(at.saturating_duration_since(last))
                        )
                    }
                    _ => format!("stream stalled: {what} timeout"),
                };
                return Err(m.error(kind, msg, Some(200), at));
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
        m.t_last_chunk = Some(at);
        if m.bytes > settings.max_response_bytes {
            let msg = format!(
                "runaway stream: the response passed max_response_bytes ({} bytes) and no end in \
                 sight; the server sends far more than was asked (raise max_response_bytes if \
                 this reply is real)",
                settings.max_response_bytes
            );
            return Err(m.error(CallErrorKind::RunawayStream, msg, Some(200), at));
        }
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
            num_predict: None,
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

    fn fragment(index: u64, name: Option<&str>, args: &str) -> StreamEvent {
        StreamEvent::ToolCall(crate::api::ToolCallChunk {
            index: Some(index),
            id: None,
            name: name.map(str::to_owned),
            arguments: args.to_owned(),
        })
    }

    /// A call that answers with a tool call only: the first fragment is the first token,
    /// decode spans the fragments, and there is no answer text (nor its first token).
    #[test]
    fn a_tool_call_is_generated_output_but_no_answer_text() {
        let events = || {
            vec![
                StreamEvent::Text(String::new()),
                fragment(0, Some("web_search"), ""),
                fragment(0, None, "{\"query\":"),
                fragment(0, None, " \"x\"}"),
                StreamEvent::Done {
                    reason: Some("tool_calls".into()),
                },
            ]
        };
        let mut measured = events();
        measured.insert(
            4,
            StreamEvent::Stats(ServerStats {
                output_tokens: Some(6),
                ..Default::default()
            }),
        );
        let out = measure(measured);
        let r = &out.record;
        // The empty text came first (at 100 ms) and counts for nothing.
        assert!(close(r.ttft_ms, 110.0), "{:?}", r.ttft_ms);
        assert_eq!(r.ttft_answer_ms, None);
        assert!(close(r.decode_ms, 20.0));
        assert_eq!((r.text_events, r.tool_call_events, r.tool_calls), (3, 3, 1));
        assert_eq!(r.text_offsets_ms.len(), 3);
        assert_eq!(
            r.output_tokens,
            Some(TokenCount {
                value: 6,
                basis: Basis::Measured
            })
        );
        assert!(close(r.tpot_ms, 4.0), "{:?}", r.tpot_ms);
        assert_eq!(out.text, "");
        assert_eq!(r.output_preview, "");
        assert_eq!(
            out.tool_calls,
            vec![crate::api::ToolCall {
                id: "call_0".into(),
                name: "web_search".into(),
                arguments: "{\"query\": \"x\"}".into(),
            }]
        );
        // Without the server's count the events are counted.
        let out = measure(events());
        assert_eq!(
            out.record.output_tokens,
            Some(TokenCount {
                value: 3,
                basis: Basis::Estimated
            })
        );
    }

    /// Text, then two parallel calls interleaved: ttft at the text, ttft_answer too, the
    /// calls assembled by index in the order they began; `{previous}` gets the text only.
    #[test]
    fn text_then_parallel_tool_calls() {
        let out = measure(vec![
            StreamEvent::Text("Looking.".into()),
            fragment(1, Some("b"), "{"),
            fragment(0, Some("a"), "{"),
            fragment(1, None, "}"),
            fragment(0, None, "}"),
            StreamEvent::Done { reason: None },
        ]);
        let r = &out.record;
        assert!(close(r.ttft_ms, 100.0));
        assert_eq!(r.ttft_ms, r.ttft_answer_ms);
        assert_eq!((r.text_events, r.tool_call_events, r.tool_calls), (5, 4, 2));
        assert_eq!(out.text, "Looking.");
        let names: Vec<_> = out
            .tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(names, [("call_0", "b", "{}"), ("call_1", "a", "{}")]);
    }

    #[test]
    fn tool_call_fragments_count_against_the_runaway_cap() {
        let s = CallSettings {
            runaway_factor: 1.0,
            ..CallSettings::default()
        };
        let target = CallTarget {
            agent_id: "a",
            call: "c",
            url: "http://h/api/chat".into(),
            model: "m",
            api: ApiKind::OpenaiChat,
            body: Vec::new(),
            api_key: None,
            num_predict: Some(2),
            live_tokens: None,
        };
        let mut m = Measuring::new(&target, &s);
        let at = m.t_send;
        m.on_event(fragment(0, Some("f"), ""), at).unwrap();
        m.on_event(fragment(0, None, "{"), at).unwrap();
        let (kind, _) = m.on_event(fragment(0, None, "}"), at).unwrap_err();
        assert_eq!(kind, CallErrorKind::RunawayStream);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn target(num_predict: Option<u32>) -> CallTarget<'static> {
        CallTarget {
            agent_id: "a",
            call: "c",
            url: "http://x/api/chat".into(),
            model: "m",
            api: ApiKind::Ollama,
            body: Vec::new(),
            api_key: None,
            num_predict,
            live_tokens: None,
        }
    }

    fn text(s: &str) -> StreamEvent {
        StreamEvent::Text(s.to_owned())
    }

    #[test]
    fn token_cap_is_factor_times_num_predict_or_the_absolute_cap() {
        let s = CallSettings::default();
        assert_eq!(s.token_cap(Some(400)), 1600);
        assert_eq!(s.token_cap(None), TOKEN_CAP_WITHOUT_NUM_PREDICT);
        let s = CallSettings {
            runaway_factor: 0.01,
            ..CallSettings::default()
        };
        assert_eq!(s.token_cap(Some(10)), 1, "never below one event");
        let s = CallSettings {
            runaway_factor: 1e300,
            ..CallSettings::default()
        };
        assert_eq!(s.token_cap(Some(10)), u64::MAX);
    }

    /// More events than the record keeps: `text_offsets_ms` is the first KEPT_OFFSETS,
    /// `text_events` counts them all, and the gap percentiles are those of every gap.
    #[test]
    fn long_stream_keeps_a_prefix_of_offsets_and_exact_gaps() {
        let n = KEPT_OFFSETS + 5000;
        let mut m = Measuring::new(&target(None), &CallSettings::default());
        let t0 = m.t_send;
        // Gaps of 1 ms in the kept prefix, 9 ms after it: the p90 and p99 and max lie in
        // the part the record does not keep.
        let mut at = t0;
        let mut gaps = Vec::new();
        for i in 0..n {
            if i > 0 {
                let g = if i < KEPT_OFFSETS { 1 } else { 9 };
                at += Duration::from_millis(g);
                gaps.push(g as f64);
            }
            m.on_event(text("x"), at).unwrap();
        }
        let rec = m.finish(at, None).record;
        assert_eq!(rec.text_events, n as u64);
        assert_eq!(rec.text_offsets_ms.len(), KEPT_OFFSETS);
        let want = percentiles(&gaps).unwrap();
        let got = rec.gap_ms.unwrap();
        assert!((got.p99 - want.p99).abs() < 1e-6, "{got:?} vs {want:?}");
        assert!((got.p90 - want.p90).abs() < 1e-6, "{got:?} vs {want:?}");
        assert!((got.max - 9.0).abs() < 1e-6 && (got.p50 - 1.0).abs() < 1e-6);
        assert!(!rec.output_truncated);
    }

    /// The kept text stops at KEPT_TEXT_BYTES on a character boundary and says so.
    #[test]
    fn kept_text_is_a_bounded_prefix() {
        let mut m = Measuring::new(&target(None), &CallSettings::default());
        let at = m.t_send;
        let chunk = "é".repeat(1000); // 2000 bytes, two per character
        m.on_event(text("a"), at).unwrap(); // shifts every later boundary by one byte
        while m.text_events < 199 {
            m.on_event(text(&chunk), at).unwrap();
        }
        m.on_event(text("z"), at).unwrap(); // fits the byte left over, but comes after a cut
        let o = m.finish(at, None);
        assert!(o.record.output_truncated);
        assert!(o.text.len() <= KEPT_TEXT_BYTES && o.text.len() > KEPT_TEXT_BYTES - 2);
        assert!(o.text.starts_with("aé"));
        assert!(
            !o.text.ends_with('z'),
            "the kept text is a prefix of the output"
        );
        assert_eq!(o.record.text_events, 200);
    }

    /// One event past the cap is a runaway stream; up to it is not.
    #[test]
    fn events_past_the_cap_fail_as_runaway() {
        let s = CallSettings {
            runaway_factor: 2.0,
            ..CallSettings::default()
        };
        let mut m = Measuring::new(&target(Some(3)), &s);
        let at = m.t_send;
        for _ in 0..6 {
            m.on_event(text("t"), at).unwrap();
        }
        let (kind, msg) = m.on_event(text("t"), at).unwrap_err();
        assert_eq!(kind, CallErrorKind::RunawayStream);
        assert!(
            msg.contains("more than 6 text events (runaway_factor 2 x num_predict 3)"),
            "{msg}"
        );
        // Empty text events carry nothing and are not counted.
        let mut m = Measuring::new(&target(Some(1)), &s);
        for _ in 0..10 {
            m.on_event(text(""), at).unwrap();
        }
    }

    #[test]
    fn identity_is_the_only_accepted_encoding() {
        assert_eq!(unasked_encoding(None), None);
        assert_eq!(unasked_encoding(Some("identity")), None);
        assert_eq!(unasked_encoding(Some(" Identity ")), None);
        assert_eq!(unasked_encoding(Some("gzip")), Some("gzip"));
        assert_eq!(unasked_encoding(Some("br")), Some("br"));
    }
}
