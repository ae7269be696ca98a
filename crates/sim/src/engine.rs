//! The timing model: when each token of one request is due, and where it goes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};

use crate::body::{Chunk, Scheduled};
use crate::clock::wait_until;
use crate::device::DeviceState;
use crate::fault::{Fault, FaultMode};
use crate::model::{LoadKey, ModelSlot};
use crate::stats::Stats;
use crate::text::TextSeed;

/// Stands in for a token's text where `invalid_utf8` puts raw `FF FE` bytes after encoding.
pub(crate) const INVALID_UTF8_MARKER: &str = "@@chimeraforge-sim:invalid-utf8@@";
/// What `invalid_utf8` sends instead of the marker.
pub(crate) const INVALID_UTF8_BYTES: [u8; 2] = [0xff, 0xfe];
/// Text bytes of each token of a `flood` (well under the clients' 1 MiB line limit).
pub(crate) const FLOOD_TOKEN_BYTES: usize = 64 * 1024;
/// The message of `error_midstream`.
pub(crate) const MIDSTREAM_ERROR: &str = "chimeraforge-sim: injected fault error_midstream";

/// The time `tokens` take at `tok_s`; a non-positive or non-finite rate is free.
fn tokens_time(tokens: u32, tok_s: f64) -> Duration {
    if tok_s.is_finite() && tok_s > 0.0 {
        Duration::from_secs_f64(f64::from(tokens) / tok_s)
    } else {
        Duration::ZERO
    }
}

fn millis(ms: f64) -> Duration {
    if ms.is_finite() && ms > 0.0 {
        Duration::from_secs_f64(ms / 1000.0)
    } else {
        Duration::ZERO
    }
}

/// Why generation stopped, as both APIs spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DoneReason {
    /// The model's own length (no cap was set).
    Stop,
    /// The request's `num_predict` / `max_tokens`.
    Length,
}

impl DoneReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DoneReason::Stop => "stop",
            DoneReason::Length => "length",
        }
    }
}

/// The simulated truth about one finished generation, as the server reports it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timings {
    /// Waiting for and performing a model load.
    pub load: Duration,
    /// `prompt_tokens / prefill_tok_s`.
    pub prefill: Duration,
    /// First token to last token (stalls included).
    pub eval: Duration,
    /// Request arrival to the last token.
    pub total: Duration,
    pub prompt_tokens: u32,
    /// Prompt tokens served from the prompt cache (`None`: the server keeps none).
    pub cached_tokens: Option<u32>,
    /// Every generated token, reasoning included.
    pub output_tokens: u32,
    /// Of `output_tokens`, the reasoning ones (the first).
    pub reasoning_tokens: u32,
    pub done_reason: DoneReason,
}

/// How one API writes a generation; every pushed `Bytes` goes out as its own HTTP chunk.
pub(crate) trait Wire: Send + Sync {
    /// The chunks of token `index` with text `text` (reasoning text when `reasoning`;
    /// `last`: the generation's last token); the last one is the token's own line. A wire
    /// may hold a token back (Ollama sends a tool call whole once it is complete).
    fn token(&self, index: u32, last: bool, text: &str, reasoning: bool, out: &mut Vec<Bytes>);
    /// The chunks after the last token.
    fn finish(&self, timings: &Timings, out: &mut Vec<Bytes>);
    /// The chunks of an error reported inside a stream.
    fn error(&self, message: &str, out: &mut Vec<Bytes>);
    /// A line that is not JSON, framed as the stream frames lines.
    fn malformed(&self) -> Bytes;
    /// The single JSON body of a non-streamed reply (`thinking`: the reasoning text).
    fn whole(&self, text: &str, thinking: &str, timings: &Timings) -> Vec<u8>;
    /// The reply to Ollama's empty-prompt "just load the model" request.
    fn loaded(&self) -> Vec<u8> {
        b"{}".to_vec()
    }
}

/// One generation request, stripped of its API.
pub(crate) struct Job {
    pub model: Arc<ModelSlot>,
    /// Options the model must be loaded with; `None` takes it as it is (OpenAI endpoints).
    pub load_key: Option<LoadKey>,
    pub prompt_tokens: u32,
    /// Of `prompt_tokens`, those the prompt cache served (not prefilled); `None`: no cache.
    pub cached_tokens: Option<u32>,
    /// Every token to generate, reasoning included.
    pub output_tokens: u32,
    /// Of `output_tokens`, how many reason first (a reasoning model thinking).
    pub reasoning_tokens: u32,
    pub done_reason: DoneReason,
    pub seed: TextSeed,
    pub fault: Option<Fault>,
    /// When the request had arrived (headers and body read); `total_duration` counts from here.
    pub arrival: Instant,
    /// Where the schedule starts: `arrival`, or the end of a `stall_before_first_byte`.
    pub start: Instant,
}

/// How a generation ended.
pub(crate) enum End {
    Finished(Timings),
    /// `error_midstream`: report this message and stop.
    Error(&'static str),
    /// `close_before_done`: drop the connection.
    Abort,
    /// `never_done`: hold the body open this long, then end it without a final line.
    NeverDone(Duration),
}

/// The client went away; stop generating.
#[derive(Debug)]
pub(crate) struct Gone;

/// Where tokens go: out on the connection as they are due, or into one reply.
pub(crate) enum Sink {
    Stream(StreamSink),
    Collect(Collected),
}

pub(crate) struct StreamSink {
    tx: mpsc::Sender<Chunk>,
    wire: Arc<dyn Wire>,
    drip: Option<Duration>,
    stats: Arc<Stats>,
    /// A token's frames went out (until then each token announces itself as the first).
    sent_token: bool,
}

/// A non-streamed reply in the making.
#[derive(Default)]
pub(crate) struct Collected {
    pub text: String,
    pub thinking: String,
    /// `oversized_line`: pad the body to this many bytes.
    pub pad_to: Option<usize>,
    /// `malformed_line` happened: the body is not JSON.
    pub malformed: bool,
}

/// Insert JSON whitespace before the line's last `}` so it is `target` bytes long.
pub(crate) fn pad_line(line: &[u8], target: usize) -> Vec<u8> {
    let Some(brace) = line.iter().rposition(|&b| b == b'}') else {
        return line.to_vec();
    };
    let fill = target.saturating_sub(line.len());
    let mut out = Vec::with_capacity(line.len() + fill);
    out.extend_from_slice(&line[..brace]);
    out.resize(brace + fill, b' ');
    out.extend_from_slice(&line[brace..]);
    out
}

/// Replace the invalid-UTF-8 marker with the raw invalid bytes.
pub(crate) fn inject_invalid_utf8(line: &[u8]) -> Vec<u8> {
    let marker = INVALID_UTF8_MARKER.as_bytes();
    match line.windows(marker.len()).position(|w| w == marker) {
        Some(at) => [
            &line[..at],
            &INVALID_UTF8_BYTES[..],
            &line[at + marker.len()..],
        ]
        .concat(),
        None => line.to_vec(),
    }
}

impl StreamSink {
    pub(crate) fn new(
        tx: mpsc::Sender<Chunk>,
        wire: Arc<dyn Wire>,
        drip: Option<Duration>,
        stats: Arc<Stats>,
    ) -> Self {
        StreamSink {
            tx,
            wire,
            drip,
            stats,
            sent_token: false,
        }
    }

    async fn send(&self, frame: Bytes) -> Result<(), Gone> {
        let Some(gap) = self.drip else {
            return self.tx.send(Chunk::Data(frame)).await.map_err(|_| Gone);
        };
        for i in 0..frame.len() {
            self.tx
                .send(Chunk::Data(frame.slice(i..i + 1)))
                .await
                .map_err(|_| Gone)?;
            if gap.is_zero() {
                tokio::task::yield_now().await;
            } else {
                sleep(gap).await;
            }
        }
        Ok(())
    }

    async fn send_all(&self, frames: Vec<Bytes>) -> Result<(), Gone> {
        for frame in frames {
            self.send(frame).await?;
        }
        Ok(())
    }

    /// Send how the generation ended, then let the body end (or fail).
    pub(crate) async fn close(self, end: End) {
        let mut frames = Vec::new();
        match end {
            End::Finished(timings) => self.wire.finish(&timings, &mut frames),
            End::Error(message) => self.wire.error(message, &mut frames),
            End::Abort => {
                let _ = self.tx.send(Chunk::Abort).await;
                return;
            }
            End::NeverDone(stall) => {
                tokio::select! {
                    _ = sleep(stall) => {}
                    _ = self.tx.closed() => {}
                }
                return;
            }
        }
        let _ = self.send_all(frames).await;
    }
}

impl Sink {
    /// Await `f`, giving up if a streaming client goes away meanwhile (so a queued or
    /// loading request of a departed client does not hold the device).
    async fn unless_gone<F: std::future::Future>(&self, f: F) -> Result<F::Output, Gone> {
        match self {
            Sink::Stream(s) => tokio::select! {
                out = f => Ok(out),
                _ = s.tx.closed() => Err(Gone),
            },
            Sink::Collect(_) => Ok(f.await),
        }
    }

    async fn wait_until(&self, deadline: Instant) -> Result<(), Gone> {
        match self {
            Sink::Stream(s) => tokio::select! {
                _ = wait_until(deadline) => Ok(()),
                _ = s.tx.closed() => Err(Gone),
            },
            Sink::Collect(_) => {
                wait_until(deadline).await;
                Ok(())
            }
        }
    }

    async fn token(
        &mut self,
        index: u32,
        last: bool,
        text: &str,
        reasoning: bool,
        pad_to: Option<usize>,
    ) -> Result<(), Gone> {
        match self {
            Sink::Stream(s) => {
                let mut frames = Vec::with_capacity(2);
                s.wire.token(index, last, text, reasoning, &mut frames);
                s.sent_token |= !frames.is_empty();
                if let Some(last) = frames.last_mut() {
                    if text == INVALID_UTF8_MARKER {
                        *last = inject_invalid_utf8(last).into();
                    }
                    if let Some(target) = pad_to {
                        *last = pad_line(last, target).into();
                    }
                }
                s.send_all(frames).await?;
                s.stats.token();
            }
            Sink::Collect(c) => {
                if reasoning {
                    c.thinking.push_str(text);
                } else {
                    c.text.push_str(text);
                }
                c.pad_to = c.pad_to.or(pad_to);
            }
        }
        Ok(())
    }

    /// Whether no token's frames have gone out yet (the next token's may be the first).
    fn awaiting_first_frame(&self) -> bool {
        matches!(self, Sink::Stream(s) if !s.sent_token)
    }

    /// The next token is the first, scheduled for `due`, of a request that arrived at
    /// `arrival` (a streaming body times its exit).
    async fn first_token_due(&self, due: Instant, arrival: Instant) -> Result<(), Gone> {
        match self {
            Sink::Stream(s) => {
                s.tx.send(Chunk::FirstTokenDue(Scheduled {
                    due: due.into_std(),
                    arrival: arrival.into_std(),
                }))
                .await
                .map_err(|_| Gone)
            }
            Sink::Collect(_) => Ok(()),
        }
    }

    async fn malformed(&mut self) -> Result<(), Gone> {
        match self {
            Sink::Stream(s) => s.send(s.wire.malformed()).await,
            Sink::Collect(c) => {
                c.malformed = true;
                Ok(())
            }
        }
    }
}

/// A fault that replaces the rest of the stream at the fault point, if `mode` is one.
async fn line_fault(mode: Option<FaultMode>, sink: &mut Sink) -> Result<Option<End>, Gone> {
    match mode {
        Some(FaultMode::MalformedLine) => sink.malformed().await.map(|()| None),
        Some(FaultMode::ErrorMidstream) => Ok(Some(End::Error(MIDSTREAM_ERROR))),
        Some(FaultMode::CloseBeforeDone) => Ok(Some(End::Abort)),
        _ => Ok(None),
    }
}

/// `flood`: fat tokens back to back, as fast as the client takes them, never a final line,
/// until the client goes away or `limit` has passed. A whole (non-streamed) reply gets no
/// flood: it ends like `never_done`.
async fn flood(sink: &mut Sink, from: u32, limit: Duration) -> Result<End, Gone> {
    if let Sink::Collect(_) = sink {
        return Ok(End::NeverDone(limit));
    }
    let text = "flood ".repeat(FLOOD_TOKEN_BYTES / 6);
    let end = Instant::now() + limit;
    let mut i = from;
    while Instant::now() < end {
        sink.token(i, false, &text, false, None).await?;
        i = i.saturating_add(1);
    }
    Ok(End::NeverDone(Duration::ZERO))
}

/// Run one request through the timing model (see the crate docs), feeding `sink`.
pub(crate) async fn generate(
    device: &DeviceState,
    stats: &Stats,
    job: Job,
    sink: &mut Sink,
) -> Result<End, Gone> {
    let admission = sink.unless_gone(device.admit()).await?;
    // The schedule starts when the request arrived, or when it got the device if it queued.
    let admitted = if admission.waited {
        Instant::now()
    } else {
        job.start
    };
    let acquired = sink
        .unless_gone(job.model.acquire(job.load_key, admitted))
        .await?;
    if acquired.loaded {
        stats.load();
    }
    let _in_use = acquired.in_use;
    let _device = admission;
    let profile = &job.model.profile;
    let evaluated = job.prompt_tokens - job.cached_tokens.unwrap_or(0).min(job.prompt_tokens);
    let prefill = tokens_time(evaluated, profile.prefill_tok_s);
    let first_due = acquired.ready + millis(profile.ttft_ms) + prefill;

    let n = job.output_tokens.max(1);
    let reasoning = job.reasoning_tokens.min(n);
    let mode = job.fault.map(|f| f.mode);
    let stall = job.fault.map_or(Duration::ZERO, |f| f.stall);
    // Line faults happen once `at` tokens are out; token faults hit token `at` (or the last).
    let at = job.fault.map_or(u32::MAX, |f| f.after_tokens.min(n));
    let at_token = at.min(n - 1);

    let mut deadline = first_due;
    let mut first_sent = first_due;
    let mut decoding = None;
    for i in 0..n {
        if i == at && mode == Some(FaultMode::StallMidstream) {
            deadline += stall;
        }
        sink.wait_until(deadline).await?;
        if i == 0 {
            first_sent = deadline;
            decoding = Some(device.start_decoding());
        }
        // The first frame out carries the first token: token 0's, or a later token's when
        // the wire held the earlier ones back (Ollama's tool call).
        if sink.awaiting_first_frame() {
            sink.first_token_due(deadline, job.arrival).await?;
        }
        if i == at {
            if let Some(end) = line_fault(mode, sink).await? {
                return Ok(end);
            }
            if mode == Some(FaultMode::Flood) {
                return flood(sink, i, stall).await;
            }
        }
        let (text, pad_to) = match mode {
            Some(FaultMode::InvalidUtf8) if i == at_token => (INVALID_UTF8_MARKER, None),
            Some(FaultMode::OversizedLine) if i == at_token => {
                (job.seed.token(i), job.fault.map(|f| f.oversized_bytes))
            }
            _ => (job.seed.token(i), None),
        };
        sink.token(i, i + 1 == n, text, i < reasoning, pad_to)
            .await?;
        if i + 1 < n {
            deadline += device.interval(profile.decode_tok_s);
        }
    }
    drop(decoding);
    let last_sent = deadline;
    if at == n {
        if mode == Some(FaultMode::StallMidstream) {
            deadline += stall;
            sink.wait_until(deadline).await?;
        }
        if let Some(end) = line_fault(mode, sink).await? {
            return Ok(end);
        }
        if mode == Some(FaultMode::Flood) {
            return flood(sink, n, stall).await;
        }
    }
    if mode == Some(FaultMode::NeverDone) {
        return Ok(End::NeverDone(stall));
    }
    Ok(End::Finished(Timings {
        load: acquired.ready.saturating_duration_since(admitted),
        prefill,
        eval: last_sent - first_sent,
        total: deadline.saturating_duration_since(job.arrival),
        prompt_tokens: job.prompt_tokens,
        cached_tokens: job.cached_tokens,
        output_tokens: n,
        reasoning_tokens: reasoning,
        done_reason: job.done_reason,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_before_the_closing_brace() {
        let line = b"{\"a\":1}\n";
        let padded = pad_line(line, 20);
        assert_eq!(padded.len(), 20);
        assert!(padded.starts_with(b"{\"a\":1 "));
        assert!(padded.ends_with(b" }\n"));
        let value: serde_json::Value = serde_json::from_slice(&padded).unwrap();
        assert_eq!(value["a"], 1);
        assert_eq!(pad_line(line, 3), line.to_vec());
    }

    #[test]
    fn injects_invalid_bytes() {
        let line = format!("{{\"t\":\"x{INVALID_UTF8_MARKER}y\"}}");
        let out = inject_invalid_utf8(line.as_bytes());
        assert_eq!(out, b"{\"t\":\"x\xff\xfey\"}".to_vec());
        assert!(std::str::from_utf8(&out).is_err());
    }
}
