//! A simulated LLM server whose timing is known exactly: the measuring instrument's reference.
//!
//! `chimeraforge-sim` speaks Ollama's API (NDJSON) and the OpenAI-compatible API as vLLM and
//! llama.cpp serve it (SSE), over real HTTP/1.1 on hyper. It runs on **its own tokio runtime
//! on its own threads**, so a client on any async runtime (tokio, smol, async-std) in the
//! same process can use it, and the client's runtime does not carry the server's work.
//! Threads: [`SimConfig::worker_threads`] tokio workers (default 1) and one thread that
//! owns the runtime, per server, plus one process-wide timer thread (see below).
//!
//! ```no_run
//! use chimeraforge_sim::{loopback, SimConfig, SimServer};
//! let sim = SimServer::start(SimConfig::profile("fixed")?, loopback(0))?;
//! println!("{}", sim.base_url()); // http://127.0.0.1:PORT
//! sim.shutdown();
//! # Ok::<(), chimeraforge_sim::SimError>(())
//! ```
//!
//! [`SimServer::start`] binds exactly the address it is given. Use [`loopback`] (127.0.0.1);
//! a non-loopback address is allowed but exposes the simulator beyond this machine, so only
//! a caller that passes one explicitly gets one.
//!
//! # Endpoints
//!
//! Ollama: `POST /api/generate`, `POST /api/chat` (streamed as `application/x-ndjson` unless
//! `"stream": false`), `GET /api/tags`, `POST /api/show`, `GET /api/ps`, `GET /api/version`
//! (`0.0.0-chimeraforge-sim`), `GET /` (`Ollama is running`). An unknown model gets
//! `404 {"error":"model \"NAME\" not found, try pulling it first"}`; a model name without a
//! tag means `:latest`. An empty `prompt` (or no `messages`) loads the model and returns
//! `{"done":true,"done_reason":"load"}` at once, as Ollama does.
//!
//! OpenAI-compatible: `POST /v1/chat/completions`, `POST /v1/completions` (SSE as
//! `text/event-stream` when `"stream": true`), `GET /v1/models`, `GET /health`. A chat
//! stream opens with a `{"role":"assistant","content":""}` delta, then one chunk per token,
//! a chunk with `finish_reason`, a usage chunk (`"choices":[]`, `usage` and llama.cpp-style
//! `timings`) when `stream_options.include_usage` is true, then `data: [DONE]`. Errors use
//! OpenAI's `{"error":{"message","type","param","code"}}`.
//!
//! With [`SimConfig::tls`] every endpoint is served over https (TLS 1.2 and 1.3, rustls with
//! ring, HTTP/1.1 by ALPN): at start the simulator makes a CA and a server certificate it
//! signs for `localhost`, `127.0.0.1`, `::1` (and the bound address), and writes the CA's PEM
//! to a file in the temporary directory ([`SimHandle::ca_file`], removed at shutdown), which
//! a client names as its `ca_file`. [`SimStats::tls_handshakes`] counts completed handshakes.
//!
//! When [`SimConfig::api_key`] is set, every endpoint but `GET /health` and `GET /` requires
//! `Authorization: Bearer KEY`; otherwise 401 (OpenAI error body on `/v1`, `{"error":
//! "unauthorized"}` on Ollama's paths).
//!
//! Response headers: Ollama's streams send their headers together with the first line (as
//! Ollama does), so time-to-headers is not earlier than TTFT; OpenAI streams send headers
//! at once (as vLLM does), so a client that takes headers for the first token is caught.
//!
//! # Timing model (the ground truth)
//!
//! All instants are absolute deadlines on the server's monotonic clock; the server never
//! sleeps for an interval in a loop, so errors do not accumulate. Deadlines are kept by a
//! dedicated timer thread with nanosecond timeouts rather than tokio's millisecond timer
//! (which wakes 1-2 ms late): a token leaves typically well under 1 ms after its deadline,
//! never before it, and lateness does not grow along a stream.
//! (Fault stalls and drip gaps use tokio's timer; they need no such precision.)
//!
//! For one generation request that has arrived (headers and body read) at `t_arrive`:
//!
//! 1. **Device.** `Ideal` and `Shared` admit at once; `Serial` admits one request at a
//!    time in FIFO order and holds the device until the request's last token is sent (or
//!    its client goes away). `t_admit = t_arrive`, or the instant the device was handed to
//!    the request if it had to queue.
//! 2. **Load.** Each model remembers the options it is loaded with: `(num_ctx, num_gpu)`
//!    from Ollama's `options` (defaults 2048 and -1). The first request for a model, or an
//!    Ollama request whose `num_ctx`/`num_gpu` differ from the loaded ones, pays `load_ms`
//!    and makes its options the loaded ones. One load runs at a time per model: requests for
//!    the model that arrive during a load wait for it (and use it if their options match).
//!    A reload waits until every request using the old options has finished. OpenAI-endpoint
//!    requests take the model with whatever options it has (loading it with the defaults if
//!    it is not loaded). `t_ready = t_admit` if the model fits, `t_admit + load_ms` if this
//!    request loads it without waiting, else the instant its wait (and load) ended.
//! 3. **First token** at `t_first = t_ready + ttft_ms + prompt_tokens / prefill_tok_s`.
//!    Prompt tokens are whitespace-separated words: Ollama's `system` + `prompt`, or the
//!    `content` of every message (text parts of array contents; roles do not count; a
//!    `null` content is none), the name and arguments of an assistant message's
//!    `tool_calls` (OpenAI's arguments text as sent, Ollama's object serialized), and on
//!    chat with `tools` each tool's name and description: a conversation that grows turn by
//!    turn sends a prompt that grows with it.
//! 4. **Decode.** Token `i+1` is due at `deadline(i) + gap`, where `gap` is
//!    `1 / decode_tok_s` on `Ideal` and `Serial`, and on `Shared { capacity_tok_s }` is
//!    `max(1 / decode_tok_s, k / capacity_tok_s)` with `k` the number of streams that have
//!    sent their first token and not their last, counted when the gap is computed (so each
//!    stream decodes at `min(decode_tok_s, capacity_tok_s / k)`, recomputed every token).
//!    The final line is sent right after the last token.
//!
//! Because the schedule starts at `t_arrive` (not when the server got round to the request),
//! the server's own bookkeeping does not shift it; what a client measures beyond the
//! schedule is transport, wake-up latency and the client itself. Measured from a client on
//! loopback (release build, busy 2-core machine): median lateness ~0.5 ms, p90 ~1 ms, no
//! drift along a stream (`examples/accuracy.rs` prints this for the machine at hand).
//!
//! Output length is `num_predict` (Ollama) or `max_tokens` / `max_completion_tokens`
//! (OpenAI) when positive, with done reason `length`; otherwise a length in the model's
//! `default_output_tokens` range (inclusive) drawn from a hash of (seed, prompt parts), with
//! done reason `stop`. Token text is a word from a fixed 64-entry vocabulary chosen by a hash
//! of (seed, prompt parts, index): words with leading spaces, punctuation, and multi-byte
//! UTF-8 (`é`, `—`, `日本`, `🦀`, ...). A request without a seed uses a fixed one, so the
//! same request always gets the same text; temperature and sampling options are ignored.
//!
//! **Reasoning models.** A model with [`ModelProfile::reasoning_tokens`] `= r > 0` (every
//! model of the `reasoning` profile, `r = 24`) generates `r` reasoning tokens before its
//! answer, unless an Ollama request says `"think": false` (any other `think`, or none, thinks;
//! OpenAI-compatible servers have no such switch). They are tokens like any other: the first
//! is due at `t_first` and each takes its gap on the device. A cap counts them too (as on real
//! servers: `num_predict` / `max_tokens` bound every generated token), so a capped request
//! answers `max(0, cap − r)` tokens; an uncapped one answers its usual length after the `r`.
//! Each API's real shape: Ollama `/api/generate` lines `{"response":"","thinking":"…"}`,
//! `/api/chat` `{"message":{"role":"assistant","content":"","thinking":"…"}}`; OpenAI chat
//! `{"delta":{"reasoning_content":"…"}}` (llama.cpp with `--reasoning-format`, vLLM);
//! `/v1/completions` has no reasoning field, so there the thoughts are plain `text`.
//! Non-streamed replies carry them as `thinking` / `message.thinking` /
//! `message.reasoning_content`. Counts: `eval_count`, `usage.completion_tokens` and
//! `timings.predicted_n` are every token, thoughts included; chat's usage adds
//! `completion_tokens_details.reasoning_tokens = r'` (the thoughts sent).
//!
//! **Tool calls.** A chat request (`/api/chat`, `/v1/chat/completions`) with a non-empty
//! `tools` whose last message is the user's is answered with one call to the first tool
//! (a tool without `function.name` is a 400); after a tool result (`role: "tool"`) it is
//! answered in text. The answer tokens are the call's arguments `{"query": "<the tokens>"}`,
//! generated on the same schedule as text (thoughts first, if any). OpenAI chat streams it as
//! vLLM does: a first chunk with `delta.role` and `tool_calls[0]` = `{index: 0, id:
//! "call_<hex>", type: "function", function: {name, arguments: ""}}`, then one chunk per
//! token with an arguments fragment, then `finish_reason: "tool_calls"` and the usage.
//! Ollama holds the tokens back (as its tool parser does) and sends the call whole in one
//! line when the last token is due (`message.content: ""`, `message.tool_calls:
//! [{"function": {"name", "arguments": {"query": …}}}]`), then its final line; the first
//! frame out is then that line, and the first-token record times it. `/api/generate` and
//! `/v1/completions` ignore `tools`.
//!
//! Reported durations are the schedule above, not measurements (a client that reads slower
//! than the schedule does not change them): Ollama in ns, llama.cpp `timings` in ms.
//!
//! | reported | value |
//! |---|---|
//! | `load_duration` | `t_ready − t_admit`: exactly `load_ms` for an uncontended load, 0 when the model fits |
//! | `prompt_eval_count`, `usage.prompt_tokens`, `timings.prompt_n` | prompt tokens |
//! | `prompt_eval_duration`, `timings.prompt_ms` | `prompt_tokens / prefill_tok_s` (excludes `ttft_ms`) |
//! | `eval_count`, `usage.completion_tokens`, `timings.predicted_n` | output tokens `n` (reasoning included) |
//! | `usage.completion_tokens_details.reasoning_tokens` | chat only, when the model reasoned: its reasoning tokens |
//! | `eval_duration`, `timings.predicted_ms` | first token to last token: `(n − 1)` gaps plus stalls |
//! | `timings.predicted_per_second` | `(n − 1) / predicted_ms`, as llama.cpp b11434 computes it (captured fixtures): the decode rate |
//! | `timings.cache_n`, `usage.prompt_tokens_details.cached_tokens`, `prompt_eval_cached_count` | with `SimConfig::prompt_cache` only: prompt words shared with a recent prompt (all but the last); `timings.prompt_n` and the prefill time then count the rest |
//! | `total_duration` | `t_arrive` to the last token (queueing, load, TTFT, decode, stalls); `50 + 10·(n − 1)` ms exactly on `fixed` |
//!
//! A rate of 0 (or any non-positive or non-finite value) costs no time: the `null` profile
//! decodes as fast as the client reads (one token per HTTP chunk, at most one chunk queued
//! ahead of the connection).
//!
//! # Profiles ([`SimConfig::profile`])
//!
//! Each serves `gemma3:latest`, `llama3.1:8b-instruct-q4_0`, `qwen2.5:7b`, `gemma3:270m`.
//!
//! | profile | device | ttft | prefill | decode tok/s (in that order) | load | default output |
//! |---|---|---|---|---|---|---|
//! | `quickstart` | `shared:600` | 20 ms | 5000 tok/s | 400, 360, 380, 440 | 200 ms | 48–96 |
//! | `gpu-like` | `shared:150` | 80 ms | 1500 tok/s | 100, 68, 76, 250 | 3 s | 200–600 |
//! | `null` | `ideal` | 0 | free | unthrottled | 0 | 32–64 |
//! | `fixed` | `ideal` | 50 ms | free | 100 (10 ms gaps) | 0 | 50 |
//! | `reasoning` | `shared:600` | 20 ms | 5000 tok/s | 400, 360, 380, 440 | 200 ms | 24 reasoning + 48–96 |
//!
//! `reasoning` is `quickstart` with every model a reasoning model (24 reasoning tokens).
//!
//! On `fixed`, the last of `n` tokens is due `50 + 10·(n − 1)` ms after arrival.
//!
//! # Faults
//!
//! A [`FaultPlan`] in [`SimConfig::faults`] injects `mode` into every generation request
//! (or every `every_nth_request`-th: the n-th, 2n-th, ...). One request can pick a fault
//! itself with the header `x-sim-fault: MODE` or a `"sim_fault": "MODE"` field at the top
//! of the JSON body (or in Ollama's `options`); the header wins over the field, and both win
//! over the plan. Parameters can follow the mode: `stall_midstream; stall_ms=200;
//! after_tokens=2` (keys `after_tokens`, `stall_ms`, `oversized_bytes`, `drip_gap_ms`);
//! those not given come from the plan. An unknown mode gets 400. Faults apply to the four
//! generation endpoints only. The "fault point" is after `a = min(after_tokens, n)` tokens,
//! at the instant token `a` would have been due (right after the last token when `a = n`).
//!
//! | mode | what the client gets |
//! |---|---|
//! | `http500` | `500` and the API's error body (`{"error":"chimeraforge-sim: injected fault http500"}`) |
//! | `model_not_found` | `404` and the model-not-found body |
//! | `unauthorized` | `401` and the API's unauthorized body |
//! | `malformed_line` | at the fault point, one non-JSON line (`{"model": not json ...`; SSE `data: {"id": not json ...`), then the stream goes on normally |
//! | `error_midstream` | at the fault point, Ollama `{"error":"..."}\n` / SSE `data: {"error":{...}}` then `data: [DONE]`; the body then ends (no final line) |
//! | `close_before_done` | at the fault point, the connection is closed without the final line or the chunked terminator |
//! | `stall_before_first_byte` | nothing, not even headers, for `stall_ms`; then a normal reply (its `total_duration` includes the stall) |
//! | `stall_midstream` | `a` tokens, then nothing for `stall_ms`, then the rest on a schedule shifted by `stall_ms` (`eval_duration` includes it) |
//! | `slow_drip` | the body one byte per HTTP chunk, `drip_gap_ms` apart (default 1; 0 only yields); token deadlines stay absolute |
//! | `oversized_line` | token `min(a, n−1)` as a line of exactly `oversized_bytes` bytes (default 2 MiB, newlines included), padded with JSON whitespace before its last `}` so it parses to the normal token |
//! | `invalid_utf8` | token `min(a, n−1)` has the bytes `FF FE` as its text (inside the JSON string) |
//! | `wrong_content_type` | `200`, `content-type: text/html`, an HTML page |
//! | `never_done` | every token, then no final line; the body stays open for `stall_ms` and then ends cleanly |
//! | `flood` | `a` tokens, then tokens of 64 KiB of text each, back to back as fast as the client reads (the `decode_tok_s` schedule ignored), never a final line; it stops when the client goes away or after `stall_ms` (then the body ends cleanly) |
//!
//! With `"stream": false` the stream faults become: `malformed_line` → a body that is not
//! JSON; `error_midstream` → `500` with the error body after the fault point's time;
//! `close_before_done` → the connection closed without a response; `never_done` (and
//! `flood`) → no response for the generation time plus `stall_ms`, then closed; `oversized_line` → the
//! body padded to `oversized_bytes`; `invalid_utf8` → `FF FE` inside the text;
//! `stall_midstream` and `slow_drip` as streamed.

mod api;
mod body;
mod clock;
mod config;
mod device;
mod engine;
mod fault;
mod model;
mod ollama;
mod openai;
mod server;
mod stats;
mod text;
mod timestamp;
mod tls;

pub use config::{ModelProfile, SimConfig, PROFILE_NAMES, REASONING_PROFILE_TOKENS};
pub use device::Device;
pub use fault::{FaultMode, FaultPlan};
pub use ollama::VERSION;
pub use server::{loopback, serve_blocking, SimHandle, SimServer, FAULT_HEADER, LISTEN_BACKLOG};
pub use stats::{FirstToken, SimStats, FIRST_TOKEN_SAMPLES};
pub use tls::server_config as tls_server_config;

/// Why the simulator could not start or be configured.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listening socket could not be bound.
    #[error("could not bind the listening socket")]
    Bind(#[source] std::io::Error),
    /// The simulator's runtime or thread could not be started.
    #[error("could not start the simulator runtime")]
    Runtime(#[source] std::io::Error),
    /// Waiting for Ctrl-C failed.
    #[error("could not wait for ctrl-c")]
    Signal(#[source] std::io::Error),
    /// No preset has this name.
    #[error("unknown profile {0:?} (expected quickstart, gpu-like, null, fixed or reasoning)")]
    UnknownProfile(String),
    /// A device spec that is not `ideal`, `serial` or `shared:<tok/s>`.
    #[error("invalid device {0:?} (expected ideal, serial or shared:<tok/s>)")]
    InvalidDevice(String),
    /// A fault spec that names no mode or has a bad parameter.
    #[error("invalid fault {0:?}")]
    InvalidFault(String),
    /// A configuration the timing model cannot honour.
    #[error("invalid simulator config: {0}")]
    InvalidConfig(String),
    /// The certificate for [`SimConfig::tls`] could not be made, used or written.
    #[error("cannot serve https: {0}")]
    Tls(String),
}
