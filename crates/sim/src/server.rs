//! The HTTP server: its own runtime and threads, routing, and the generation endpoints.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, Instant};

use crate::api::{json, reply, Api, GenerationRequest};
use crate::body::{Chunk, SimBody};
use crate::device::DeviceState;
use crate::engine::{
    generate, inject_invalid_utf8, pad_line, Collected, DoneReason, End, Job, Sink, StreamSink,
};
use crate::fault::{Fault, FaultMode, FaultPlan};
use crate::model::{same_model, ModelSlot};
use crate::stats::{SimStats, Stats};
use crate::text::{prompt_tokens, TextSeed};
use crate::{ollama, openai, SimConfig, SimError};

/// Largest request body accepted.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
/// Frames a stream may run ahead of the connection; 1 keeps "as fast as the client reads" honest.
const STREAM_BUFFER: usize = 1;
/// The header that picks a fault for one request.
pub const FAULT_HEADER: &str = "x-sim-fault";

/// Everything the request handlers share.
struct ServerState {
    device: DeviceState,
    models: Vec<Arc<ModelSlot>>,
    faults: FaultPlan,
    api_key: Option<String>,
    stats: Arc<Stats>,
    started: SystemTime,
    completion_ids: AtomicU64,
    /// Recent prompts as word lists, newest last (`SimConfig::prompt_cache`).
    prompt_cache: Option<std::sync::Mutex<std::collections::VecDeque<Vec<String>>>>,
}

/// Prompts the simulated prompt cache remembers.
pub const PROMPT_CACHE_ENTRIES: usize = 256;

impl ServerState {
    /// Words of `parts` served from the prompt cache (0 without one): the longest prefix
    /// shared with a remembered prompt, at most all but the last word (llama.cpp always
    /// evaluates at least one). Remembers `parts`.
    fn cached_words(&self, parts: &[String]) -> u32 {
        let Some(cache) = &self.prompt_cache else {
            return 0;
        };
        let words: Vec<String> = parts
            .iter()
            .flat_map(|p| p.split_whitespace())
            .map(str::to_owned)
            .collect();
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        let shared = cache
            .iter()
            .map(|w| w.iter().zip(&words).take_while(|(a, b)| a == b).count())
            .max()
            .unwrap_or(0)
            .min(words.len().saturating_sub(1));
        if cache.len() == PROMPT_CACHE_ENTRIES {
            cache.pop_front();
        }
        cache.push_back(words);
        u32::try_from(shared).unwrap_or(u32::MAX)
    }
}

impl ServerState {
    fn model(&self, name: &str) -> Option<Arc<ModelSlot>> {
        self.models
            .iter()
            .find(|m| same_model(name, &m.profile.name))
            .cloned()
    }
}

/// The simulated LLM server.
pub struct SimServer;

/// A running server; dropping it shuts the server down.
pub struct SimHandle {
    addr: SocketAddr,
    /// Under [`SimConfig::tls`]: the CA's PEM and the file it is written to.
    tls: Option<(String, crate::tls::CaFile)>,
    state: Arc<ServerState>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SimServer {
    /// Bind `addr` (port 0: the OS picks) and serve on the simulator's own runtime threads.
    ///
    /// Returns once the socket is listening. The address is bound exactly as given: use
    /// [`loopback`] for the usual 127.0.0.1; any other address exposes the simulator beyond
    /// this machine and must be chosen deliberately by the caller.
    pub fn start(config: SimConfig, addr: SocketAddr) -> Result<SimHandle, SimError> {
        config.validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("chimeraforge-sim")
            .enable_all()
            .build()
            .map_err(SimError::Runtime)?;
        let state = Arc::new(ServerState {
            device: DeviceState::new(config.device),
            models: config
                .models
                .into_iter()
                .map(|p| Arc::new(ModelSlot::new(p)))
                .collect(),
            faults: config.faults,
            api_key: config.api_key,
            stats: Arc::new(Stats::default()),
            started: SystemTime::now(),
            completion_ids: AtomicU64::new(0),
            prompt_cache: config
                .prompt_cache
                .then(|| std::sync::Mutex::new(std::collections::VecDeque::new())),
        });
        let listener = {
            let _enter = runtime.enter();
            listen(addr).map_err(SimError::Bind)?
        };
        let addr = listener.local_addr().map_err(SimError::Bind)?;
        let (acceptor, tls) = match config.tls {
            false => (None, None),
            true => {
                let made = crate::tls::make(addr)?;
                let file = crate::tls::CaFile::write(&made.ca_pem, addr)?;
                (Some(made.acceptor), Some((made.ca_pem, file)))
            }
        };
        let (shutdown, stop) = oneshot::channel();
        let serving = state.clone();
        let thread = std::thread::Builder::new()
            .name("chimeraforge-sim-accept".to_string())
            .spawn(move || {
                // Accept on a worker, so a new connection's task starts on the same thread.
                let accepting = runtime.spawn(accept_loop(listener, acceptor, serving, stop));
                let _ = runtime.block_on(accepting);
                // Cancels the remaining connection tasks; none of them blocks.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(SimError::Runtime)?;
        Ok(SimHandle {
            addr,
            tls,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }
}

/// The accept queue the simulator asks for. Rust std's `TcpListener::bind` asks for 128: at
/// 1,024 simultaneous connects the kernel then drops SYNs and the client retransmits after 1 s,
/// which a harness would misread as a 1 s TTFT. The kernel caps it at `net.core.somaxconn`
/// (4,096 by default since Linux 5.4).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Bind `addr` with `SO_REUSEADDR` (as std does on Unix) and listen with [`LISTEN_BACKLOG`].
/// Must run inside the runtime's context (the listener registers with its reactor).
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// `127.0.0.1:port`, the address the simulator is meant to listen on.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl SimHandle {
    /// The bound address (with the OS-chosen port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` (`https://` under [`SimConfig::tls`]), without a trailing slash.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Under [`SimConfig::tls`]: the file holding the PEM of the CA that signed the server's
    /// certificate (a client's `ca_file`), in the temporary directory until shutdown.
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        self.tls.as_ref().map(|(_, f)| f.path())
    }

    /// Under [`SimConfig::tls`]: the CA certificate, PEM.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|(pem, _)| pem.as_str())
    }

    /// Counters so far.
    pub fn stats(&self) -> SimStats {
        self.state.stats.snapshot()
    }

    /// Every streamed first token since the last call, in the order recorded (as they left,
    /// up to tokens leaving within microseconds of each other on different threads): when its
    /// request arrived, when it was due ([`FirstToken::due`](crate::FirstToken)) and when its
    /// bytes were handed to the connection. `left − due` is the simulator's own share of a
    /// measured TTFT bias (timer wake-up, task and connection scheduling); the spread of
    /// `arrival` over requests sent together is the time to get them all in: the client's
    /// connects and writes plus the simulator's accepts and reads. At most
    /// [`FIRST_TOKEN_SAMPLES`](crate::FIRST_TOKEN_SAMPLES) are kept between calls.
    pub fn take_first_tokens(&self) -> Vec<crate::FirstToken> {
        self.state.stats.take_first_tokens()
    }

    /// Stop accepting, drop every open connection and join the server's threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serve until Ctrl-C (for `chimeraforge sim`); prints the base URL to stderr once listening.
pub fn serve_blocking(config: SimConfig, addr: SocketAddr) -> Result<(), SimError> {
    let handle = SimServer::start(config, addr)?;
    eprintln!("chimeraforge-sim listening on {}", handle.base_url());
    if let Some(ca) = handle.ca_file() {
        eprintln!(
            "its certificate's CA: {} (set ca_file = {:?} on the endpoint; removed at exit)",
            ca.display(),
            ca.display().to_string()
        );
    }
    let waiter = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SimError::Runtime)?;
    let signal = waiter.block_on(tokio::signal::ctrl_c());
    handle.shutdown();
    signal.map_err(SimError::Signal)
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<ServerState>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of descriptors and the like: back off rather than spin.
                Err(_) => {
                    sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        // Tokens are small writes that must leave at once.
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve(TokioIo::new(stream), state).await,
                // The handshake in the connection's own task: a slow or failed one (a client
                // that rejects the certificate) holds up no other connection.
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        state.stats.tls_handshake();
                        serve(TokioIo::new(stream), state).await;
                    }
                }
            }
        });
    }
}

/// Serve HTTP/1.1 on one accepted connection until it closes.
async fn serve<I>(io: I, state: Arc<ServerState>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handle(state.clone(), req));
    // Keep-alive connections stay open until the client closes them: hyper's 30 s
    // header read timeout also runs while a kept connection waits for its next
    // request, and would close an agent's connection idle through a long
    // sequential phase (a real server's idle close is for the client to survive,
    // not for the simulator to impose).
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(None)
        .serve_connection(io, service)
        .await;
}

/// The endpoints, by method and path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Root,
    Version,
    Tags,
    Show,
    Ps,
    Generate,
    Chat,
    Health,
    Models,
    ChatCompletions,
    Completions,
    MethodNotAllowed(Api),
    NotFound,
}

impl Route {
    fn of(method: &Method, path: &str) -> Route {
        let path = path.trim_end_matches('/');
        let get = method == Method::GET || method == Method::HEAD;
        let post = method == Method::POST;
        let (route, api, allowed) = match path {
            "" => (Route::Root, Api::Ollama, get),
            "/api/version" => (Route::Version, Api::Ollama, get),
            "/api/tags" => (Route::Tags, Api::Ollama, get),
            "/api/show" => (Route::Show, Api::Ollama, post),
            "/api/ps" => (Route::Ps, Api::Ollama, get),
            "/api/generate" => (Route::Generate, Api::Ollama, post),
            "/api/chat" => (Route::Chat, Api::Ollama, post),
            "/health" => (Route::Health, Api::OpenAi, get),
            "/v1/models" => (Route::Models, Api::OpenAi, get),
            "/v1/chat/completions" => (Route::ChatCompletions, Api::OpenAi, post),
            "/v1/completions" => (Route::Completions, Api::OpenAi, post),
            _ => return Route::NotFound,
        };
        if allowed {
            route
        } else {
            Route::MethodNotAllowed(api)
        }
    }

    fn api(self) -> Api {
        match self {
            Route::Health | Route::Models | Route::ChatCompletions | Route::Completions => {
                Api::OpenAi
            }
            Route::MethodNotAllowed(api) => api,
            _ => Api::Ollama,
        }
    }

    fn needs_key(self) -> bool {
        !matches!(self, Route::Root | Route::Health)
    }
}

fn authorized(req: &Request<Incoming>, key: &str) -> bool {
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| given.trim() == key)
}

async fn handle(
    state: Arc<ServerState>,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, io::Error> {
    let route = Route::of(req.method(), req.uri().path());
    let endpoint = match route {
        Route::NotFound | Route::MethodNotAllowed(_) => "other".to_string(),
        Route::Root => format!("{} /", req.method()),
        _ => format!(
            "{} {}",
            req.method(),
            req.uri().path().trim_end_matches('/')
        ),
    };
    state.stats.request(&endpoint);
    let api = route.api();
    if let Some(key) = &state.api_key {
        if route.needs_key() && !authorized(&req, key) {
            return Ok(api.unauthorized());
        }
    }
    let response = match route {
        Route::Root => reply(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "Ollama is running",
        ),
        Route::Version => json(&serde_json::json!({ "version": ollama::VERSION })),
        Route::Tags => json(&ollama::tags(&state.models, state.started)),
        Route::Ps => json(&ollama::ps(&state.models)),
        Route::Health => json(&serde_json::json!({ "status": "ok" })),
        Route::Models => json(&openai::models(&state.models, state.started)),
        Route::Show => {
            let body = match read_body(req).await {
                Ok(body) => body,
                Err(response) => return Ok(response),
            };
            match ollama::parse_show(&body) {
                Err(e) => api.bad_request(&e),
                Ok(name) => match state.model(&name) {
                    Some(model) => json(&ollama::show(&model, state.started)),
                    None => api.model_not_found(&name),
                },
            }
        }
        Route::Generate | Route::Chat | Route::ChatCompletions | Route::Completions => {
            return generation(state, route, req).await;
        }
        Route::MethodNotAllowed(_) => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "405 method not allowed",
        ),
        Route::NotFound => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404 page not found",
        ),
    };
    Ok(response)
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<SimBody>> {
    match Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(Api::Ollama.bad_request(&format!("could not read request body: {e}"))),
    }
}

fn with_content_type(
    mut response: Response<SimBody>,
    content_type: &'static str,
) -> Response<SimBody> {
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The `wrong_content_type` reply: what a misrouted proxy or captive portal sends.
fn html_page() -> Response<SimBody> {
    reply(
        StatusCode::OK,
        "text/html; charset=utf-8",
        "<!DOCTYPE html>\n<html><head><title>chimeraforge-sim</title></head>\
         <body><h1>Not an API response</h1><p>fault wrong_content_type</p></body></html>\n",
    )
}

/// A whole body sent one byte per chunk (`slow_drip` on a non-streamed reply).
fn drip_body(bytes: Vec<u8>, gap: Duration) -> SimBody {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(async move {
        for byte in bytes {
            if tx.send(Chunk::Data(Bytes::from(vec![byte]))).await.is_err() {
                return;
            }
            if gap.is_zero() {
                tokio::task::yield_now().await;
            } else {
                sleep(gap).await;
            }
        }
    });
    SimBody::stream(None, rx)
}

async fn generation(
    state: Arc<ServerState>,
    route: Route,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, io::Error> {
    let api = route.api();
    let header_fault = req
        .headers()
        .get(FAULT_HEADER)
        .map(|v| v.to_str().unwrap_or("").trim().to_string())
        .filter(|v| !v.is_empty());
    let body = match read_body(req).await {
        Ok(body) => body,
        Err(response) => return Ok(response),
    };
    // The request has arrived: the schedule and total_duration count from here.
    let arrival = Instant::now();
    let id = state.completion_ids.fetch_add(1, Ordering::Relaxed) + 1;
    let parsed = match route {
        Route::Generate => ollama::parse_generate(&body),
        Route::Chat => ollama::parse_chat(&body),
        Route::ChatCompletions => openai::parse_chat(&body, id),
        _ => openai::parse_completion(&body, id),
    };
    let request = match parsed {
        Ok(request) => request,
        Err(e) => return Ok(api.bad_request(&e)),
    };
    let nth = state.stats.generation_request();
    let fault = match header_fault.as_deref().or(request.sim_fault.as_deref()) {
        Some(spec) => match state.faults.parse_request(spec) {
            Ok(fault) => Some(fault),
            Err(e) => return Ok(api.bad_request(&e.to_string())),
        },
        None => state.faults.for_request(nth),
    };
    if fault.is_some() {
        state.stats.fault();
    }
    match fault.map(|f| f.mode) {
        Some(FaultMode::Http500) => {
            return Ok(api.server_error("chimeraforge-sim: injected fault http500"))
        }
        Some(FaultMode::ModelNotFound) => return Ok(api.model_not_found(&request.model)),
        Some(FaultMode::Unauthorized) => return Ok(api.unauthorized()),
        Some(FaultMode::WrongContentType) => return Ok(html_page()),
        Some(FaultMode::StallBeforeFirstByte) => {
            sleep(fault.map_or(Duration::ZERO, |f| f.stall)).await
        }
        _ => {}
    }
    let start = Instant::now();
    let Some(model) = state.model(&request.model) else {
        return Ok(api.model_not_found(&request.model));
    };
    if request.load_only {
        return Ok(load_only(&state, model, &request).await);
    }
    let seed = TextSeed::new(
        request.seed,
        request.prompt_parts.iter().map(String::as_str),
    );
    // A reasoning model thinks first; a cap counts the thoughts too (as on real servers).
    let thoughts = if request.think {
        model.profile.reasoning_tokens
    } else {
        0
    };
    let (output_tokens, done_reason) = match request.max_tokens {
        Some(n) => (n, DoneReason::Length),
        None => (
            thoughts.saturating_add(seed.output_len(model.profile.default_output_tokens)),
            DoneReason::Stop,
        ),
    };
    let job = Job {
        model,
        load_key: request.load_key,
        prompt_tokens: prompt_tokens(request.prompt_parts.iter().map(String::as_str)),
        cached_tokens: state
            .prompt_cache
            .as_ref()
            .map(|_| state.cached_words(&request.prompt_parts)),
        output_tokens,
        reasoning_tokens: thoughts,
        done_reason,
        seed,
        fault,
        arrival,
        start: if fault.is_some_and(|f| f.mode == FaultMode::StallBeforeFirstByte) {
            start
        } else {
            arrival
        },
    };
    if request.stream {
        streamed(state, api, request, job).await
    } else {
        whole(state, api, request, job).await
    }
}

/// Ollama's empty-prompt request: load the model (if needed) and say so.
async fn load_only(
    state: &ServerState,
    model: Arc<ModelSlot>,
    request: &GenerationRequest,
) -> Response<SimBody> {
    let _device = state.device.admit().await;
    if model.acquire(request.load_key, Instant::now()).await.loaded {
        state.stats.load();
    }
    reply(
        StatusCode::OK,
        "application/json; charset=utf-8",
        request.wire.loaded(),
    )
}

async fn streamed(
    state: Arc<ServerState>,
    api: Api,
    request: GenerationRequest,
    job: Job,
) -> Result<Response<SimBody>, io::Error> {
    let drip = job
        .fault
        .filter(|f| f.mode == FaultMode::SlowDrip)
        .map(|f| f.drip_gap);
    let (tx, mut rx) = mpsc::channel(STREAM_BUFFER);
    let sink = StreamSink::new(tx, request.wire.clone(), drip, state.stats.clone());
    let task_state = state.clone();
    tokio::spawn(async move {
        let mut sink = Sink::Stream(sink);
        let end = generate(&task_state.device, &task_state.stats, job, &mut sink).await;
        if let (Ok(end), Sink::Stream(sink)) = (end, sink) {
            sink.close(end).await;
        }
    });
    // Ollama sends its headers with the first line; OpenAI servers send them at once.
    let mut due = None;
    let first = match api {
        Api::OpenAi => None,
        Api::Ollama => loop {
            match rx.recv().await {
                Some(Chunk::FirstTokenDue(s)) => due = Some(s),
                Some(Chunk::Data(first)) => break Some(first),
                Some(Chunk::Abort) => {
                    return Err(io::Error::other(
                        "connection dropped by fault close_before_done",
                    ))
                }
                None => return Ok(api.server_error("generation ended without output")),
            }
        },
    };
    let body = SimBody::stream(first, rx).timing_first_token(due, state.stats.clone());
    let response = Response::new(body);
    Ok(with_content_type(response, api.stream_content_type()))
}

async fn whole(
    state: Arc<ServerState>,
    api: Api,
    request: GenerationRequest,
    job: Job,
) -> Result<Response<SimBody>, io::Error> {
    let fault: Option<Fault> = job.fault;
    let mut sink = Sink::Collect(Collected::default());
    let end = generate(&state.device, &state.stats, job, &mut sink).await;
    let Sink::Collect(collected) = sink else {
        unreachable!("a whole reply collects");
    };
    let timings = match end {
        Ok(End::Finished(timings)) => timings,
        Ok(End::Error(message)) => return Ok(api.server_error(message)),
        Ok(End::Abort) | Err(_) => {
            return Err(io::Error::other(
                "connection dropped by fault close_before_done",
            ))
        }
        Ok(End::NeverDone(stall)) => {
            sleep(stall).await;
            return Err(io::Error::other("connection dropped by fault never_done"));
        }
    };
    for _ in 0..timings.output_tokens {
        state.stats.token();
    }
    let mut body = if collected.malformed {
        b"{\"model\": not json (chimeraforge-sim fault malformed_line)".to_vec()
    } else {
        inject_invalid_utf8(
            &request
                .wire
                .whole(&collected.text, &collected.thinking, &timings),
        )
    };
    if let Some(target) = collected.pad_to {
        body = pad_line(&body, target);
    }
    match fault.filter(|f| f.mode == FaultMode::SlowDrip) {
        Some(f) => {
            let response = Response::new(drip_body(body, f.drip_gap));
            Ok(with_content_type(
                response,
                "application/json; charset=utf-8",
            ))
        }
        None => Ok(reply(
            StatusCode::OK,
            "application/json; charset=utf-8",
            body,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With std's default backlog (128) the connects past ~129 that nobody accepts yet get
    /// their SYN dropped and wait for a 1 s retransmit; with ours they all complete at once.
    #[test]
    fn listener_queues_more_connects_than_std_default() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = {
            let _enter = runtime.enter();
            listen(loopback(0)).unwrap()
        };
        let addr = listener.local_addr().unwrap();
        // Nothing accepts: every connect below must be held by the kernel's accept queue.
        let mut held = Vec::new();
        for i in 0..300 {
            let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                .unwrap_or_else(|e| panic!("connect {i} of 300 not queued: {e}"));
            held.push(stream);
        }
        assert_eq!(held.len(), 300);
    }
}
