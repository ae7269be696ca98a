//! The conformance cases, each written once, generic over a [`Backend`].
//!
//! Each case builds the backend, runs its body inside `block_on` and panics on the first
//! broken expectation. Cases take a process-wide lock so timing checks never compete
//! with each other for the machine's cores.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chimeraforge_core::api::ApiKind;
use chimeraforge_core::call::{
    execute_call, CallErrorKind, CallOutcome, CallRecord, CallSettings, CallTarget, Timeouts,
};
use chimeraforge_core::{
    AsyncRuntime, Backend, BodyStream, ClientOptions, HttpClient, HttpError, HttpRequest,
    HttpResponse,
};
use futures_lite::future;

pub use crate::connections::{
    close_after_n_requests_reconnects, connection_close_in_a_response_is_obeyed,
    fresh_is_one_connection_per_call, idle_close_between_calls_reconnects,
    keep_alive_is_one_connection_per_agent, no_retry_after_part_of_a_response,
    stale_connections_mid_burst_are_replaced,
};
use crate::server::{Framing, Reply, ScriptedServer};
use crate::unanswered::UnansweredAddr;

const FRAMINGS: [Framing; 2] = [Framing::Chunked, Framing::ContentLength];

/// How long the first bytes of a stream may lag behind the server's write.
pub const FIRST_CHUNK_MAX_LAG: Duration = Duration::from_millis(100);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

type Built<B> = (Arc<<B as Backend>::Runtime>, Arc<<B as Backend>::Client>);

fn build<B: Backend>(opts: &ClientOptions) -> Built<B> {
    B::build(opts).unwrap_or_else(|e| panic!("{}: {e}", B::NAME))
}

fn must_send<T>(res: Result<HttpResponse<T>, HttpError>) -> HttpResponse<T> {
    match res {
        Ok(resp) => resp,
        Err(e) => panic!("request failed: {e}"),
    }
}

fn must_fail<T>(res: Result<HttpResponse<T>, HttpError>) -> HttpError {
    match res {
        Ok(resp) => panic!("request unexpectedly succeeded with status {}", resp.status),
        Err(e) => e,
    }
}

/// Read a body to its end; every chunk must be non-empty.
async fn read_to_end<S: BodyStream>(body: &mut S) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next_chunk().await? {
        assert!(!chunk.is_empty(), "next_chunk returned an empty chunk");
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Read at least `n` bytes of a body that must not end before them.
async fn read_at_least<S: BodyStream>(body: &mut S, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < n {
        match body.next_chunk().await {
            Ok(Some(chunk)) => out.extend_from_slice(&chunk),
            Ok(None) => panic!("body ended after {} of {n} bytes", out.len()),
            Err(e) => panic!("body read failed: {e}"),
        }
    }
    out
}

/// `None` after `dur`: the losing side of a `future::or` race.
async fn give_up<R: AsyncRuntime, T>(rt: &R, dur: Duration) -> Option<T> {
    rt.sleep(dur).await;
    None
}

/// Poll `done` every 5 ms on the runtime's timer for at most `limit`.
async fn until<R: AsyncRuntime>(rt: &R, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        rt.sleep(Duration::from_millis(5)).await;
    }
}

/// An Ollama-style NDJSON line of exactly `width` bytes (newline included).
pub fn ndjson_line(text: &str, width: usize) -> Vec<u8> {
    let head = r#"{"model":"gemma3:270m","response":""#;
    let tail = "\",\"done\":false}\n";
    let pad = width
        .checked_sub(head.len() + text.len() + tail.len())
        .expect("width too small for the line");
    format!("{head}{text}{}{tail}", "x".repeat(pad)).into_bytes()
}

/// NDJSON lines full of multi-byte UTF-8 (2, 3 and 4 byte sequences, a ZWJ emoji).
pub fn utf8_payload() -> Vec<u8> {
    let words = [
        "héllo",
        "wörld",
        "世界",
        "🎉",
        "ñandú",
        "Ω≈ç",
        "日本語",
        "👩‍💻",
    ];
    (0..12)
        .map(|i| {
            format!(
                "{{\"response\":\"{} {}\",\"done\":false}}\n",
                words[i % words.len()],
                words[(i * 3 + 1) % words.len()]
            )
        })
        .collect::<String>()
        .into_bytes()
}

/// Cut `payload` at `cuts` (sorted, within bounds, deduplicated here).
fn split_at(payload: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts
        .iter()
        .copied()
        .filter(|&c| c > 0 && c < payload.len())
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts.into_iter().chain([payload.len()]) {
        chunks.push(payload[start..cut].to_vec());
        start = cut;
    }
    chunks
}

/// Split patterns: inside every multi-byte char, Fibonacci sizes, seeded random sizes,
/// and byte-by-byte for the first 40 bytes.
fn split_patterns(payload: &[u8]) -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let inside_chars: Vec<usize> = (0..payload.len())
        .filter(|&i| payload[i] & 0b1100_0000 == 0b1000_0000)
        .collect();
    let mut fib = Vec::new();
    let sizes = [1, 2, 3, 5, 8, 13, 21, 34];
    let mut at = 0;
    for i in 0.. {
        at += sizes[i % sizes.len()];
        if at >= payload.len() {
            break;
        }
        fib.push(at);
    }
    let mut random = Vec::new();
    let mut state: u64 = 0x5eed_cafe;
    let mut at = 0;
    loop {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        at += 1 + (state >> 58) as usize;
        if at >= payload.len() {
            break;
        }
        random.push(at);
    }
    let bytewise: Vec<usize> = (1..40).collect();
    vec![
        (
            "inside every multi-byte char",
            split_at(payload, &inside_chars),
        ),
        ("fibonacci sizes", split_at(payload, &fib)),
        ("seeded random sizes", split_at(payload, &random)),
        ("byte by byte, then the rest", split_at(payload, &bytewise)),
    ]
}

/// The backend names itself and records its facts.
pub fn facts_are_recorded<B: Backend>() {
    let _serial = serial();
    let (rt, _client) = build::<B>(&ClientOptions::default());
    assert_eq!(rt.name(), B::NAME);
    let facts = rt.describe();
    assert!(facts.worker_threads >= 1, "{facts:?}");
    assert!(!facts.scheduler.is_empty(), "{facts:?}");
    assert!(!facts.http_client.is_empty(), "{facts:?}");
    eprintln!("{}: {facts:#?}", B::NAME);
}

/// `sleep` waits at least its duration and not much longer.
pub fn sleep_waits_its_duration<B: Backend>() {
    let _serial = serial();
    let (rt, _client) = build::<B>(&ClientOptions::default());
    let took = rt.block_on(async {
        let start = rt.now();
        rt.sleep(Duration::from_millis(100)).await;
        start.elapsed()
    });
    assert!(took >= Duration::from_millis(99), "slept only {took:?}");
    assert!(took < Duration::from_millis(200), "slept {took:?}");
}

/// A spawned task runs without being awaited, and its output comes back.
pub fn spawned_task_runs_unawaited<B: Backend>() {
    let _serial = serial();
    let (rt, _client) = build::<B>(&ClientOptions::default());
    rt.block_on(async {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let handle = rt.spawn(async move {
            flag.store(true, Ordering::SeqCst);
            7u32
        });
        rt.sleep(Duration::from_millis(50)).await;
        assert!(
            ran.load(Ordering::SeqCst),
            "spawned task did not run before being awaited"
        );
        assert_eq!(handle.await.expect("join"), 7);
    });
}

fn explode() -> u8 {
    panic!("conformance: deliberate panic in a spawned task")
}

/// A panicking task yields a `JoinError`, and the runtime keeps working.
pub fn spawned_panic_is_join_error<B: Backend>() {
    let _serial = serial();
    let (rt, _client) = build::<B>(&ClientOptions::default());
    rt.block_on(async {
        let failed = rt.spawn(async { explode() }).await;
        assert!(failed.is_err(), "a panicking task must give a JoinError");
        let fine = rt.spawn(async { 1u8 }).await;
        assert_eq!(fine.expect("join after a panic"), 1);
    });
}

/// Two spawned tasks sleeping 200 ms each finish in about 200 ms, not 400.
pub fn spawn_overlap<B: Backend>() {
    let _serial = serial();
    let (rt, _client) = build::<B>(&ClientOptions::default());
    let took = rt.block_on(async {
        let start = rt.now();
        let a = rt.spawn(rt.sleep(Duration::from_millis(200)));
        let b = rt.spawn(rt.sleep(Duration::from_millis(200)));
        a.await.expect("join a");
        b.await.expect("join b");
        start.elapsed()
    });
    assert!(took >= Duration::from_millis(195), "took {took:?}");
    assert!(
        took < Duration::from_millis(350),
        "two 200 ms tasks took {took:?}: spawned tasks are serialized"
    );
}

/// A 60-byte line followed by a 500 ms stall arrives within 100 ms of being written.
pub fn first_chunk_is_not_held<B: Backend>() {
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let line = ndjson_line("Hi", 60);
    let rest = ndjson_line("there", 60);
    for framing in FRAMINGS {
        let (l, r) = (line.clone(), rest.clone());
        let server = ScriptedServer::start(move |_| {
            Reply::new(200)
                .framing(framing)
                .send(l.clone())
                .pause(Duration::from_millis(500))
                .send(r.clone())
        });
        rt.block_on(async {
            let req = HttpRequest::post_json(server.url("/api/generate"), "{}");
            let resp = must_send(client.send(req).await);
            assert_eq!(resp.status, 200);
            let mut body = resp.body;
            let first = read_at_least(&mut body, line.len()).await;
            let seen_at = Instant::now();
            let written = until(&*rt, Duration::from_secs(1), || {
                server
                    .exchanges()
                    .first()
                    .is_some_and(|e| !e.sent_at.is_empty())
            })
            .await;
            assert!(written, "server never recorded its first write");
            let written_at = server.exchanges()[0].sent_at[0];
            let lag = seen_at.saturating_duration_since(written_at);
            assert!(
                lag < FIRST_CHUNK_MAX_LAG,
                "{framing:?}: first 60 bytes reached the caller {lag:?} after the server wrote them"
            );
            assert_eq!(first, line, "{framing:?}: first line altered");
            let tail = read_to_end(&mut body).await.expect("rest of body");
            assert_eq!(tail, rest, "{framing:?}: second line altered");
        });
    }
}

/// Every byte arrives intact however the body is split, even inside a UTF-8 char.
pub fn bytes_survive_any_split<B: Backend>() {
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let payload = utf8_payload();
    let patterns = Arc::new(split_patterns(&payload));
    for framing in FRAMINGS {
        for (index, (name, chunks)) in patterns.iter().enumerate() {
            assert_eq!(chunks.concat(), payload, "bad split pattern {name}");
            let server_patterns = Arc::clone(&patterns);
            let server = ScriptedServer::start(move |_| {
                Reply::new(200)
                    .framing(framing)
                    .send_split(server_patterns[index].1.clone(), Duration::from_millis(1))
            });
            rt.block_on(async {
                let req = HttpRequest::post_json(server.url("/api/generate"), "{}");
                let mut body = must_send(client.send(req).await).body;
                let got = read_to_end(&mut body).await.expect("body");
                assert!(
                    got == payload,
                    "{framing:?}, {name}: body differs ({} bytes, want {})",
                    got.len(),
                    payload.len()
                );
                std::str::from_utf8(&got).expect("valid UTF-8");
            });
        }
    }
}

/// An 8 MiB body arrives complete, with content-length and chunked framing.
pub fn large_body_arrives_complete<B: Backend>() {
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let payload: Arc<Vec<u8>> = Arc::new(
        (0..8usize << 20)
            .map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8)
            .collect(),
    );
    for framing in FRAMINGS {
        let served = Arc::clone(&payload);
        let server = ScriptedServer::start(move |_| {
            let reply = Reply::new(200)
                .framing(framing)
                .content_type("application/octet-stream");
            match framing {
                Framing::ContentLength | Framing::CloseDelimited => reply.send(served.to_vec()),
                Framing::Chunked => {
                    reply.send_split(served.chunks(64 << 10).map(<[u8]>::to_vec), Duration::ZERO)
                }
            }
        });
        rt.block_on(async {
            let req = HttpRequest::get(server.url("/blob"));
            let mut body = must_send(client.send(req).await).body;
            let got = read_to_end(&mut body).await.expect("body");
            assert_eq!(got.len(), payload.len(), "{framing:?}: length");
            assert!(got == *payload, "{framing:?}: content differs");
        });
    }
}

/// 404 and 500 come back as responses whose bodies can be read.
pub fn error_statuses_have_readable_bodies<B: Backend>() {
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let cases = [
        (
            404,
            Framing::ContentLength,
            r#"{"error":"model \"nope\" not found, try pulling it first"}"#,
        ),
        (
            500,
            Framing::Chunked,
            r#"{"error":"llama runner process has terminated: exit status 2"}"#,
        ),
    ];
    for (status, framing, json) in cases {
        let server = ScriptedServer::start(move |_| {
            Reply::new(status)
                .framing(framing)
                .content_type("application/json; charset=utf-8")
                .send(json)
        });
        rt.block_on(async {
            let req = HttpRequest::post_json(server.url("/api/generate"), "{}");
            let resp = must_send(client.send(req).await);
            assert_eq!(resp.status, status);
            assert_eq!(
                resp.content_type.as_deref(),
                Some("application/json; charset=utf-8")
            );
            let mut body = resp.body;
            let got = read_to_end(&mut body).await.expect("error body");
            assert_eq!(String::from_utf8(got).expect("utf-8"), json);
        });
    }
}

/// Method, path, headers and a 64 KiB JSON body arrive intact, without waiting on
/// `Expect: 100-continue`.
pub fn request_arrives_intact<B: Backend>() {
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let server = ScriptedServer::start(|_| {
        Reply::new(200)
            .framing(Framing::ContentLength)
            .content_type("application/json")
            .send("{}")
    });
    let prompt = "Explain async runtimes. ".repeat((64 << 10) / 24);
    let json = format!(r#"{{"model":"gemma3:270m","prompt":"{prompt}","stream":true}}"#);
    rt.block_on(async {
        let mut req = HttpRequest::post_json(server.url("/api/generate"), json.clone());
        req.headers
            .push(("authorization".to_owned(), "Bearer t0k3n".to_owned()));
        let start = Instant::now();
        let mut body = must_send(client.send(req).await).body;
        assert_eq!(read_to_end(&mut body).await.expect("body"), b"{}");
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(500),
            "a 64 KiB POST took {took:?} (waiting on 100-continue?)"
        );
        let req = HttpRequest::get(server.url("/api/tags"));
        let mut body = must_send(client.send(req).await).body;
        read_to_end(&mut body).await.expect("body");
    });
    let exchanges = server.exchanges();
    assert_eq!(exchanges.len(), 2);
    let post = &exchanges[0].request;
    assert_eq!(post.method, "POST");
    assert_eq!(post.path, "/api/generate");
    assert!(
        post.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "content-type: {:?}",
        post.header("content-type")
    );
    assert_eq!(post.header("authorization"), Some("Bearer t0k3n"));
    assert_eq!(post.header("expect"), None, "client sent Expect");
    assert!(post.body == json.as_bytes(), "POST body altered");
    let get = &exchanges[1].request;
    assert_eq!(get.method, "GET");
    assert_eq!(get.path, "/api/tags");
    assert!(get.body.is_empty());
}

/// A closed port gives `HttpError::Connect`, promptly.
pub fn connect_refused_is_connect_error<B: Backend>() {
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let (err, took) = rt.block_on(async {
        let start = Instant::now();
        let req = HttpRequest::post_json(format!("http://127.0.0.1:{port}/api/generate"), "{}");
        (must_fail(client.send(req).await), start.elapsed())
    });
    assert!(matches!(err, HttpError::Connect { .. }), "got {err:?}");
    assert!(took < Duration::from_secs(1), "refusal took {took:?}");
}

/// An unanswered connect gives `HttpError::ConnectTimeout` after the configured timeout.
///
/// Skipped, with the reason printed, where a loopback listener's full accept queue does
/// not leave connects hanging (Linux does).
pub fn connect_timeout_is_enforced<B: Backend>() {
    let _serial = serial();
    let target = match UnansweredAddr::new() {
        Ok(target) => target,
        Err(reason) => {
            eprintln!("connect_timeout_is_enforced skipped: {reason}");
            return;
        }
    };
    let opts = ClientOptions {
        connect_timeout: Duration::from_millis(300),
        ..ClientOptions::default()
    };
    let (rt, client) = build::<B>(&opts);
    let (err, took) = rt.block_on(async {
        let start = Instant::now();
        let req = HttpRequest::post_json(format!("http://{}/api/generate", target.addr()), "{}");
        (must_fail(client.send(req).await), start.elapsed())
    });
    assert!(
        matches!(err, HttpError::ConnectTimeout { .. }),
        "got {err:?}"
    );
    assert!(took >= Duration::from_millis(280), "gave up after {took:?}");
    assert!(took < Duration::from_secs(2), "gave up after {took:?}");
}

/// A string that is not a URL gives `HttpError::InvalidUrl`.
pub fn invalid_url_is_rejected<B: Backend>() {
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let err = rt.block_on(async { must_fail(client.send(HttpRequest::get("not a url")).await) });
    assert!(matches!(err, HttpError::InvalidUrl { .. }), "got {err:?}");
}

/// 64 streams spawned on the runtime all complete, and all were open at once.
pub fn concurrent_streams_overlap<B: Backend>() {
    const STREAMS: usize = 64;
    const HEAD_DELAY: Duration = Duration::from_millis(200);
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let server = ScriptedServer::start(|req| {
        Reply::new(200)
            .head_delay(HEAD_DELAY)
            .send(format!(
                "{{\"agent\":\"{}\",\"response\":\"a\"}}\n",
                req.path
            ))
            .pause(Duration::from_millis(10))
            .send("{\"done\":true}\n")
    });
    let took = rt.block_on(async {
        let start = rt.now();
        let tasks: Vec<_> = (0..STREAMS)
            .map(|i| {
                let client = Arc::clone(&client);
                let url = server.url(&format!("/agent/{i}"));
                rt.spawn(async move {
                    let resp = client.send(HttpRequest::post_json(url, "{}")).await?;
                    let mut body = resp.body;
                    read_to_end(&mut body).await
                })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            let body = task.await.expect("join").expect("stream");
            let want =
                format!("{{\"agent\":\"/agent/{i}\",\"response\":\"a\"}}\n{{\"done\":true}}\n");
            assert_eq!(String::from_utf8(body).expect("utf-8"), want);
        }
        start.elapsed()
    });
    let serial_time = HEAD_DELAY * STREAMS as u32;
    assert!(
        took < serial_time / 8,
        "{STREAMS} streams of 200 ms took {took:?} (serial would be {serial_time:?})"
    );
    assert_eq!(
        server.max_in_flight(),
        STREAMS,
        "not every stream was open at the same time"
    );
}

/// Dropping a body mid-stream closes the connection: the server sees it within 500 ms.
pub fn dropped_body_closes_connection<B: Backend>() {
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let line = ndjson_line("tok", 60);
    let server = ScriptedServer::start(move |_| {
        let mut reply = Reply::new(200).send(line.clone());
        for _ in 0..150 {
            reply = reply.pause(Duration::from_millis(20)).send(line.clone());
        }
        reply
    });
    rt.block_on(async {
        let req = HttpRequest::post_json(server.url("/api/generate"), "{}");
        let mut resp = must_send(client.send(req).await);
        read_at_least(&mut resp.body, 60).await;
        drop(resp);
        let dropped_at = Instant::now();
        let closed = until(&*rt, Duration::from_secs(2), || {
            server.exchanges()[0].peer_closed_at.is_some()
        })
        .await;
        assert!(closed, "server never saw the connection close");
        let seen = server.exchanges()[0].peer_closed_at.expect("closed");
        let lag = seen.saturating_duration_since(dropped_at);
        assert!(
            lag < Duration::from_millis(500),
            "close seen {lag:?} after the drop"
        );
    });
    assert!(server.exchanges()[0].finished_at.is_none());
}

/// `sleep` raced with `futures_lite::future::or` abandons a stalled head and a stalled
/// `next_chunk` on time; the dropped stream is closed by the server's next write at the
/// latest, and the client keeps working.
pub fn abandoned_reads_are_safe<B: Backend>() {
    const GIVE_UP: Duration = Duration::from_millis(200);
    const STALL: Duration = Duration::from_secs(1);
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let line = ndjson_line("tok", 60);
    let server = ScriptedServer::start(move |req| match req.path.as_str() {
        "/slow-head" => Reply::new(200).head_delay(STALL).send(line.clone()),
        "/stall" => Reply::new(200)
            .send(line.clone())
            .pause(STALL)
            .send(line.clone())
            .pause(STALL)
            .send(line.clone()),
        _ => Reply::new(200).send("ok"),
    });
    rt.block_on(async {
        // No response head: abandon `send`.
        let start = Instant::now();
        let req = HttpRequest::post_json(server.url("/slow-head"), "{}");
        let sent = future::or(
            async { Some(client.send(req).await) },
            give_up(&*rt, GIVE_UP),
        )
        .await;
        let took = start.elapsed();
        assert!(sent.is_none(), "slow head arrived before {GIVE_UP:?}");
        assert!(took < GIVE_UP * 2, "abandoning send took {took:?}");

        // Head and one line, then a stall: abandon `next_chunk`.
        let req = HttpRequest::post_json(server.url("/stall"), "{}");
        let mut body = must_send(client.send(req).await).body;
        read_at_least(&mut body, 60).await;
        let start = Instant::now();
        let read = future::or(
            async { Some(body.next_chunk().await) },
            give_up(&*rt, GIVE_UP),
        )
        .await;
        let took = start.elapsed();
        assert!(read.is_none(), "stalled read returned {read:?}");
        assert!(
            took >= GIVE_UP - Duration::from_millis(1),
            "gave up after {took:?}"
        );
        assert!(took < GIVE_UP * 2, "abandoning next_chunk took {took:?}");
        drop(body);
        let dropped_at = Instant::now();
        let stall_exchange = || {
            server
                .exchanges()
                .into_iter()
                .find(|e| e.request.path == "/stall")
                .expect("stall exchange")
        };
        let closed = until(&*rt, STALL * 2 + Duration::from_millis(500), || {
            stall_exchange().peer_closed_at.is_some()
        })
        .await;
        assert!(
            closed,
            "an abandoned stream stayed open through the server's next write"
        );

        // The client still serves a fresh request promptly.
        let start = Instant::now();
        let mut body = must_send(client.send(HttpRequest::get(server.url("/ok"))).await).body;
        assert_eq!(read_to_end(&mut body).await.expect("body"), b"ok");
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(500),
            "request after abandonment took {took:?}"
        );
        let lag = stall_exchange()
            .peer_closed_at
            .expect("closed")
            .saturating_duration_since(dropped_at);
        eprintln!(
            "{}: abandoned stalled stream closed {lag:?} after the drop ({})",
            B::NAME,
            if lag < Duration::from_millis(300) {
                "at once"
            } else {
                "at the server's next write"
            }
        );
    });
}

/// A reasoning model's stream as Ollama sends it when asked to `think`: thoughts in
/// `message.thinking`, a pause, then the answer. Through the backend's client and the shared
/// call code, TTFT is the first thought's arrival and TTFT answer the first answer line's
/// (after the pause), the thoughts count as reasoning, and only the answer is the text a
/// next call quotes.
pub fn reasoning_stream_times_both_ttfts<B: Backend>() {
    use chimeraforge_core::api::ApiKind;
    use chimeraforge_core::call::{execute_call, CallSettings, CallTarget};
    const PAUSE: Duration = Duration::from_millis(150);
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let line = |field: &str, text: &str| {
        let message = match field {
            "thinking" => {
                format!("{{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"{text}\"}}")
            }
            _ => format!("{{\"role\":\"assistant\",\"content\":\"{text}\"}}"),
        };
        format!("{{\"model\":\"m\",\"message\":{message},\"done\":false}}\n").into_bytes()
    };
    let thoughts = [line("thinking", "Let"), line("thinking", " me")];
    let answer = [line("content", "Hi"), line("content", " there")];
    let done = b"{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"eval_count\":4,\"eval_duration\":1000000}\n".to_vec();
    for framing in FRAMINGS {
        let (t, a, d) = (thoughts.clone(), answer.clone(), done.clone());
        let server = ScriptedServer::start(move |_| {
            Reply::new(200)
                .framing(framing)
                .send(t[0].clone())
                .send(t[1].clone())
                .pause(PAUSE)
                .send(a[0].clone())
                .send(a[1].clone())
                .send(d.clone())
        });
        rt.block_on(async {
            let target = CallTarget {
                agent_id: "a",
                call: "analysis",
                url: server.url("/api/chat"),
                model: "m",
                api: ApiKind::Ollama,
                body: b"{}".to_vec(),
                api_key: None,
                num_predict: None,
                live_tokens: None,
            };
            let out = execute_call(&*rt, &*client, target, &CallSettings::default(), rt.now()).await;
            let r = &out.record;
            assert!(r.error.is_none(), "{framing:?}: {:?}", r.error);
            assert_eq!(out.text, "Hi there", "{framing:?}: the thoughts are not the answer");
            let (first, first_answer) = (r.ttft_ms.unwrap(), r.ttft_answer_ms.unwrap());
            assert!(
                first_answer - first >= 100.0,
                "{framing:?}: ttft {first:.1} ms, ttft answer {first_answer:.1} ms: the answer came {PAUSE:?} after the thoughts"
            );
            assert_eq!((r.text_events, r.reasoning_events), (4, 2), "{framing:?}");
            assert_eq!(r.reasoning_tokens.map(|t| t.value), Some(2), "{framing:?}");
            assert_eq!(r.answer_tokens.map(|t| t.value), Some(2), "{framing:?}");
        });
    }
}

/// A model answering with tool calls, in each chat API's real shape, after a pause behind
/// an empty opening chunk: through the backend's client and the shared call code, TTFT is
/// the first tool-call chunk's arrival (the empty chunk is no token), every tool-call chunk
/// is a generated event, and the calls come back assembled; there is no answer text, so
/// no answer TTFT. OpenAI streams two parallel calls in fragments interleaved by `index`;
/// Ollama sends its call whole, with no id (the client numbers it `call_0`).
pub fn tool_call_streams_are_generated_output<B: Backend>() {
    use chimeraforge_core::api::ToolCall;
    const PAUSE: Duration = Duration::from_millis(150);
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let sse = |delta: &str, finish: &str| {
        format!("data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n")
            .into_bytes()
    };
    let fragment = |index: u32, head: Option<(&str, &str)>, arguments: &str| {
        let mut call = serde_json::json!({"index": index, "function": {"arguments": arguments}});
        if let Some((id, name)) = head {
            call["id"] = id.into();
            call["type"] = "function".into();
            call["function"]["name"] = name.into();
        }
        sse(
            &serde_json::json!({ "tool_calls": [call] }).to_string(),
            "null",
        )
    };
    let openai = vec![
        sse("{\"role\":\"assistant\",\"content\":\"\"}", "null"),
        fragment(0, Some(("call_a", "web_search")), ""),
        fragment(1, Some(("call_b", "fetch")), ""),
        fragment(0, None, "{\"query\": "),
        fragment(1, None, "{\"url\": \"x\"}"),
        fragment(0, None, "\"日本\"}"),
        sse("{}", "\"tool_calls\""),
        b"data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":7,\"total_tokens\":27}}\n\ndata: [DONE]\n\n".to_vec(),
    ];
    let ollama = vec![
        b"{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":false}\n".to_vec(),
        "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"web_search\",\"arguments\":{\"query\":\"日本\"}}}]},\"done\":false}\n".as_bytes().to_vec(),
        b"{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"eval_count\":7,\"eval_duration\":1000000}\n".to_vec(),
    ];
    let call = |id: &str, name: &str, arguments: &str| ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: arguments.into(),
    };
    let cases = [
        (
            ApiKind::OpenaiChat,
            "text/event-stream",
            openai,
            5,
            vec![
                call("call_a", "web_search", "{\"query\": \"日本\"}"),
                call("call_b", "fetch", "{\"url\": \"x\"}"),
            ],
        ),
        (
            ApiKind::Ollama,
            "application/x-ndjson",
            ollama,
            1,
            vec![call("call_0", "web_search", "{\"query\":\"日本\"}")],
        ),
    ];
    for (api, content_type, chunks, events, calls) in cases {
        for framing in FRAMINGS {
            let script = chunks.clone();
            let server = ScriptedServer::start(move |_| {
                let mut reply = Reply::new(200)
                    .framing(framing)
                    .content_type(content_type)
                    .send(script[0].clone())
                    .pause(PAUSE);
                for chunk in &script[1..] {
                    reply = reply.send(chunk.clone());
                }
                reply
            });
            rt.block_on(async {
                let target = CallTarget {
                    agent_id: "a",
                    call: "search",
                    url: server.url(api.path()),
                    model: "m",
                    api,
                    body: b"{}".to_vec(),
                    api_key: None,
                    num_predict: None,
                    live_tokens: None,
                };
                let out =
                    execute_call(&*rt, &*client, target, &CallSettings::default(), rt.now()).await;
                let r = &out.record;
                let case = format!("{api:?} {framing:?}");
                assert!(r.error.is_none(), "{case}: {:?}", r.error);
                let ttft = r.ttft_ms.unwrap();
                assert!(
                    ttft >= 100.0,
                    "{case}: ttft {ttft:.1} ms: the first tool-call chunk came {PAUSE:?} after the empty opening one"
                );
                assert_eq!(r.ttft_answer_ms, None, "{case}: no answer text came");
                assert_eq!(
                    (r.text_events, r.tool_call_events, r.tool_calls),
                    (events, events, calls.len() as u64),
                    "{case}"
                );
                assert_eq!(r.output_tokens.map(|t| t.value), Some(7), "{case}");
                assert_eq!(out.text, "", "{case}: a tool call is not answer text");
                assert_eq!(out.tool_calls, calls, "{case}");
            });
        }
    }
}

/// The `RuntimeFacts` note a backend records when its client cannot tell a framing error
/// from a broken connection (isahc passes on libcurl's error code, not its text, and curl
/// gives both the same code). Such a backend reports a malformed chunk as
/// [`HttpError::Body`], with a message that names both possibilities; every other backend
/// must report [`HttpError::Framing`].
pub const FRAMING_ERRORS_NOTE: &str = "framing_errors";

fn framing_told_apart<R: AsyncRuntime>(rt: &R) -> bool {
    !rt.describe()
        .notes
        .iter()
        .any(|(key, _)| key == FRAMING_ERRORS_NOTE)
}

/// The Ollama final line the framing cases end their streams with.
const DONE_LINE: &[u8] = b"{\"model\":\"gemma3:270m\",\"response\":\"\",\"done\":true}\n";

/// One measured streaming call (`core::call::execute_call`, as `bench` runs it) to `url`,
/// with the framing cases' timeouts (5 s to the first byte and between chunks, 10 s in all).
fn measured_call<B: Backend>(rt: &B::Runtime, client: &B::Client, url: String) -> CallRecord {
    let settings = CallSettings {
        timeouts: Timeouts {
            first_byte: Duration::from_secs(5),
            idle: Duration::from_secs(5),
            total: Duration::from_secs(10),
        },
        ..CallSettings::default()
    };
    measure::<B>(rt, client, url, None, &settings).record
}

/// One measured call (`execute_call`, the harness's own path) on `rt` and `client` to `url`
/// on Ollama's `/api/generate` dialect, asking for `num_predict` tokens, with `settings`.
fn measure<B: Backend>(
    rt: &B::Runtime,
    client: &B::Client,
    url: String,
    num_predict: Option<u32>,
    settings: &CallSettings,
) -> CallOutcome {
    let target = CallTarget {
        agent_id: "conformance",
        call: "c",
        url,
        model: "gemma3:270m",
        api: ApiKind::OllamaGenerate,
        body: b"{}".to_vec(),
        api_key: None,
        num_predict,
        live_tokens: None,
    };
    rt.block_on(execute_call(rt, client, target, settings, rt.now()))
}

/// The message says something: not isahc's bare "unknown error", and it names `what`
/// (one of the words, case-insensitive).
fn assert_names(msg: &str, what: &[&str], case: &str) {
    let lower = msg.to_lowercase();
    assert!(
        !lower.contains("unknown error"),
        "{case}: the message does not say what happened: {msg:?}"
    );
    assert!(
        what.iter().any(|w| lower.contains(w)),
        "{case}: the message names none of {what:?}: {msg:?}"
    );
}

/// Read a body that must fail: its error, after all the bytes before the failure.
async fn read_to_failure<S: BodyStream>(body: &mut S, case: &str) -> (Vec<u8>, HttpError) {
    let mut got = Vec::new();
    loop {
        match body.next_chunk().await {
            Ok(Some(chunk)) => got.extend_from_slice(&chunk),
            Ok(None) => panic!(
                "{case}: the body ended cleanly after {} bytes; the error was swallowed",
                got.len()
            ),
            Err(e) => return (got, e),
        }
    }
}

/// Chunk extensions (`5;ext=1`, RFC 9112 §7.1.1, on the last chunk too) are read past, on
/// the body and on a measured call.
pub fn chunk_extensions_are_ignored<B: Backend>() {
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let line = ndjson_line("Hi", 60);
    for ext in [";ext=1", ";name=\"quoted;value\";flag"] {
        let l = line.clone();
        let server = ScriptedServer::start(move |_| {
            Reply::new(200)
                .chunk_extension(ext)
                .send(l.clone())
                .pause(Duration::from_millis(20))
                .send(DONE_LINE)
        });
        rt.block_on(async {
            let req = HttpRequest::post_json(server.url("/api/generate"), "{}");
            let mut body = must_send(client.send(req).await).body;
            let got = read_to_end(&mut body)
                .await
                .unwrap_or_else(|e| panic!("{ext}: chunk extension refused: {e}"));
            assert_eq!(
                got,
                [line.as_slice(), DONE_LINE].concat(),
                "{ext}: body altered"
            );
        });
        let record = measured_call::<B>(&rt, &client, server.url("/api/generate"));
        assert!(record.error.is_none(), "{ext}: {:?}", record.error);
        assert_eq!(record.text_events, 1, "{ext}");
    }
}

/// A response with neither content-length nor transfer-encoding is read until the server
/// closes (RFC 9112 §6.3 rule 8): HTTP/1.0, as simple servers send, and HTTP/1.1.
pub fn close_delimited_bodies_are_read_to_eof<B: Backend>() {
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let line = ndjson_line("Hi", 60);
    for http10 in [true, false] {
        let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        let l = line.clone();
        let server = ScriptedServer::start(move |_| {
            let reply = Reply::new(200)
                .framing(Framing::CloseDelimited)
                .send(l.clone())
                .pause(Duration::from_millis(20))
                .send(DONE_LINE);
            if http10 {
                reply.http10()
            } else {
                reply
            }
        });
        rt.block_on(async {
            let req = HttpRequest::post_json(server.url("/api/generate"), "{}");
            let resp = client
                .send(req)
                .await
                .unwrap_or_else(|e| panic!("{version} close-delimited response refused: {e}"));
            assert_eq!(resp.status, 200, "{version}");
            assert_eq!(resp.content_type.as_deref(), Some("application/x-ndjson"));
            let mut body = resp.body;
            let got = read_to_end(&mut body)
                .await
                .unwrap_or_else(|e| panic!("{version} close-delimited body failed: {e}"));
            assert_eq!(got, [line.as_slice(), DONE_LINE].concat(), "{version}");
        });
        let record = measured_call::<B>(&rt, &client, server.url("/api/generate"));
        assert!(record.error.is_none(), "{version}: {:?}", record.error);
        assert_eq!(record.text_events, 1, "{version}");
    }
}

/// A malformed chunk size after a good chunk is a framing error naming the chunk, never a
/// clean end and never "the connection closed"; a measured call records it as `framing`.
pub fn malformed_chunk_size_is_framing<B: Backend>() {
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let line = ndjson_line("Hi", 60);
    let l = line.clone();
    let server = ScriptedServer::start(move |_| {
        Reply::new(200)
            .send(l.clone())
            .pause(Duration::from_millis(50))
            .raw("zz\r\nnot a chunk\r\n")
            .pause(Duration::from_millis(500))
    });
    let told_apart = framing_told_apart(&*rt);
    rt.block_on(async {
        let req = HttpRequest::post_json(server.url("/api/generate"), "{}");
        let mut body = must_send(client.send(req).await).body;
        let (got, err) = read_to_failure(&mut body, "malformed chunk size").await;
        assert_eq!(got, line, "the good chunk before the bad one was altered");
        match (&err, told_apart) {
            (HttpError::Framing(msg), true) | (HttpError::Body(msg), false) => {
                assert_names(msg, &["chunk"], "malformed chunk size")
            }
            _ => panic!("malformed chunk size: got {err:?} (framing told apart: {told_apart})"),
        }
    });
    let record = measured_call::<B>(&rt, &client, server.url("/api/generate"));
    let e = record
        .error
        .expect("a malformed chunk size must fail the call");
    let want = if told_apart {
        CallErrorKind::Framing
    } else {
        CallErrorKind::ClosedBeforeDone
    };
    assert_eq!(e.kind, want, "{e}");
    assert_eq!(
        record.text_events, 1,
        "the token before the bad chunk was measured"
    );
}

/// A connection reset mid-stream is a body error naming the reset (not a framing error); a
/// measured call records it as `closed_before_done`.
pub fn reset_mid_stream_is_closed_before_done<B: Backend>() {
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let line = ndjson_line("Hi", 60);
    let l = line.clone();
    let server = ScriptedServer::start(move |_| {
        Reply::new(200)
            .send(l.clone())
            .pause(Duration::from_millis(50))
            .reset()
    });
    rt.block_on(async {
        let req = HttpRequest::post_json(server.url("/api/generate"), "{}");
        let mut body = must_send(client.send(req).await).body;
        let (got, err) = read_to_failure(&mut body, "reset mid-stream").await;
        assert_eq!(got, line, "the chunk before the reset was altered");
        match &err {
            HttpError::Body(msg) => assert_names(msg, &["reset"], "reset mid-stream"),
            _ => panic!("reset mid-stream: got {err:?}, want HttpError::Body"),
        }
    });
    let record = measured_call::<B>(&rt, &client, server.url("/api/generate"));
    let e = record.error.expect("a reset must fail the call");
    assert_eq!(e.kind, CallErrorKind::ClosedBeforeDone, "{e}");
    assert_names(&e.message, &["reset"], "reset mid-stream, measured");
}

/// A response header past every client's limit (one 1 MiB field; hyper takes 408 KiB of
/// head, libcurl 100 KiB a header line, our async-std connector 256 KiB) fails the request
/// as a framing error with a message about the head, not "unknown error"; a measured call
/// records `framing`.
pub fn oversized_response_head_is_refused<B: Backend>() {
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let server = ScriptedServer::start(|_| {
        Reply::new(200)
            .header("x-big", "a".repeat(1 << 20))
            .send(DONE_LINE)
    });
    rt.block_on(async {
        let req = HttpRequest::post_json(server.url("/api/generate"), "{}");
        match must_fail(client.send(req).await) {
            HttpError::Framing(msg) => assert_names(&msg, &["head"], "oversized head"),
            err => panic!("oversized head: got {err:?}, want HttpError::Framing"),
        }
    });
    let record = measured_call::<B>(&rt, &client, server.url("/api/generate"));
    let e = record.error.expect("an oversized head must fail the call");
    assert_eq!(e.kind, CallErrorKind::Framing, "{e}");
}

/// A response without content-type reports none (surf would fill in its body's
/// `application/octet-stream`, which a measured call then refused as the wrong type).
pub fn missing_content_type_is_none<B: Backend>() {
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let server = ScriptedServer::start(|_| {
        let mut reply = Reply::new(200).send(DONE_LINE);
        reply.content_type = None;
        reply
    });
    rt.block_on(async {
        let req = HttpRequest::post_json(server.url("/api/generate"), "{}");
        let resp = must_send(client.send(req).await);
        assert_eq!(resp.content_type, None, "the server sent no content-type");
        let mut body = resp.body;
        assert_eq!(read_to_end(&mut body).await.expect("body"), DONE_LINE);
    });
}

/// A content-length body the server cuts short (it closes after 60 of 1,000 bytes) is a
/// body error that says the connection closed, never a clean end of a shorter body; a
/// measured call records `closed_before_done`.
pub fn content_length_cut_short_is_a_body_error<B: Backend>() {
    let _serial = serial();
    let (rt, client) = build::<B>(&ClientOptions::default());
    let line = ndjson_line("Hi", 60);
    let l = line.clone();
    let server = ScriptedServer::start(move |_| {
        // Close-delimited framing writes no length of its own and closes after the last step.
        Reply::new(200)
            .framing(Framing::CloseDelimited)
            .header("content-length", "1000")
            .send(l.clone())
            .pause(Duration::from_millis(50))
    });
    rt.block_on(async {
        let req = HttpRequest::post_json(server.url("/api/generate"), "{}");
        let mut body = must_send(client.send(req).await).body;
        let (got, err) = read_to_failure(&mut body, "content-length cut short").await;
        assert_eq!(got, line, "the bytes before the close were altered");
        match &err {
            HttpError::Body(msg) => assert_names(
                msg,
                &["clos", "end of file", "eof"],
                "content-length cut short",
            ),
            _ => panic!("content-length cut short: got {err:?}, want HttpError::Body"),
        }
    });
    let record = measured_call::<B>(&rt, &client, server.url("/api/generate"));
    let e = record.error.expect("a body cut short must fail the call");
    assert_eq!(e.kind, CallErrorKind::ClosedBeforeDone, "{e}");
}

/// [`measure`] on a runtime and client of its own.
fn measured_outcome<B: Backend>(
    url: String,
    num_predict: Option<u32>,
    settings: &CallSettings,
) -> CallOutcome {
    let (rt, client) = build::<B>(&ClientOptions::default());
    measure::<B>(&rt, &client, url, num_predict, settings)
}

fn quick_settings() -> CallSettings {
    CallSettings {
        timeouts: Timeouts {
            first_byte: Duration::from_secs(5),
            idle: Duration::from_secs(5),
            total: Duration::from_secs(30),
        },
        ..CallSettings::default()
    }
}

/// A record a run can afford to keep: its JSON under `limit` bytes.
fn record_json_len(o: &CallOutcome) -> usize {
    serde_json::to_vec(&o.record)
        .expect("record serializes")
        .len()
}

/// The peer gave up on the flood: the server saw the connection close within `within`.
fn flood_was_cut(server: &ScriptedServer, within: Duration) {
    let deadline = Instant::now() + within;
    while server.exchanges()[0].peer_closed_at.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        server.exchanges()[0].peer_closed_at.is_some(),
        "the client kept reading the flood"
    );
}

/// A server that streams valid, fat tokens forever without `done` (issue 14): the call
/// stops at `runaway_factor` x `num_predict` text events as `runaway_stream`, long before
/// its total timeout, hangs up, and its record stays small.
pub fn flood_of_tokens_is_a_runaway_stream<B: Backend>() {
    const NUM_PREDICT: u32 = 8;
    let _serial = serial();
    let fat = ndjson_line("tok", 4 * 1024);
    let server = ScriptedServer::start(move |_| {
        Reply::new(200).send(ndjson_line("first", 80)).flood(
            fat.clone(),
            Duration::ZERO,
            Duration::from_secs(30),
        )
    });
    let s = quick_settings();
    let cap = s.token_cap(Some(NUM_PREDICT));
    assert_eq!(cap, 32);
    let o = measured_outcome::<B>(server.url("/api/generate"), Some(NUM_PREDICT), &s);
    let e = o.record.error.clone().expect("a flood must fail the call");
    assert_eq!(e.kind, CallErrorKind::RunawayStream, "{}: {e}", B::NAME);
    assert!(e.message.contains("more than 32 text events"), "{e}");
    assert!(e.message.contains("num_predict 8"), "{e}");
    assert!(
        e.elapsed_ms < 10_000.0,
        "{}: took {} ms",
        B::NAME,
        e.elapsed_ms
    );
    assert_eq!(o.record.text_events, cap + 1, "{}", B::NAME);
    assert_eq!(o.record.text_offsets_ms.len() as u64, cap);
    assert!(o.record.gap_ms.is_some());
    assert!(!o.record.output_truncated);
    assert!(o.text.starts_with("first"));
    let len = record_json_len(&o);
    assert!(len < 16 * 1024, "{}: a {len}-byte record", B::NAME);
    flood_was_cut(&server, Duration::from_secs(5));
}

/// Fat tokens with no `num_predict` (the event cap is 128 Ki): `max_response_bytes` ends
/// the call as `runaway_stream` just past the cap; the text kept is its first 256 KiB
/// (flagged `output_truncated`), and the record stays small.
pub fn flood_of_bytes_is_a_runaway_stream<B: Backend>() {
    const CAP: u64 = 2 << 20;
    const LINE: usize = 16 * 1024;
    let _serial = serial();
    let fat = ndjson_line("tok", LINE);
    let server = ScriptedServer::start(move |_| {
        Reply::new(200).flood(fat.clone(), Duration::ZERO, Duration::from_secs(30))
    });
    let s = CallSettings {
        max_response_bytes: CAP,
        ..quick_settings()
    };
    let o = measured_outcome::<B>(server.url("/api/generate"), None, &s);
    let e = o.record.error.clone().expect("a flood must fail the call");
    assert_eq!(e.kind, CallErrorKind::RunawayStream, "{}: {e}", B::NAME);
    assert!(
        e.message.contains("max_response_bytes (2097152 bytes)"),
        "{e}"
    );
    assert!(e.bytes_received > CAP, "{e}");
    // Over by at most what one read can hand over (a client buffer's worth).
    assert!(
        e.bytes_received <= CAP + 1024 * 1024,
        "{}: read {} bytes past a {CAP}-byte cap",
        B::NAME,
        e.bytes_received
    );
    assert!(o.record.output_truncated, "{}", B::NAME);
    assert_eq!(o.text.len(), chimeraforge_core::call::KEPT_TEXT_BYTES);
    assert_eq!(o.record.output_preview.chars().count(), 160);
    assert!(o.record.text_events > 100);
    let len = record_json_len(&o);
    assert!(len < 64 * 1024, "{}: a {len}-byte record", B::NAME);
    flood_was_cut(&server, Duration::from_secs(5));
}

/// Tokens still streaming when `total_ms` runs out: a `total_timeout` that says the time ran
/// out while tokens were arriving; a stream that went silent before it is "stalled".
pub fn total_timeout_says_whether_tokens_were_arriving<B: Backend>() {
    let _serial = serial();
    let line = ndjson_line("tok", 80);
    let server = ScriptedServer::start(move |req| match req.path.as_str() {
        "/arriving" => Reply::new(200).flood(
            line.clone(),
            Duration::from_millis(20),
            Duration::from_secs(10),
        ),
        _ => Reply::new(200)
            .send(line.clone())
            .pause(Duration::from_secs(10)),
    });
    let s = CallSettings {
        timeouts: Timeouts {
            first_byte: Duration::from_secs(5),
            idle: Duration::from_secs(5),
            total: Duration::from_millis(1500),
        },
        runaway_factor: 1e6,
        ..CallSettings::default()
    };
    let o = measured_outcome::<B>(server.url("/arriving"), Some(1000), &s);
    let e = o.record.error.expect("the total timeout fires");
    assert_eq!(e.kind, CallErrorKind::TotalTimeout, "{}: {e}", B::NAME);
    assert!(
        e.message
            .starts_with("the total time of 1500 ms ran out while tokens were still arriving"),
        "{}: {e}",
        B::NAME
    );
    let o = measured_outcome::<B>(server.url("/stalled"), Some(1000), &s);
    let e = o.record.error.expect("the total timeout fires");
    assert_eq!(e.kind, CallErrorKind::TotalTimeout, "{}: {e}", B::NAME);
    assert_eq!(e.message, "stream stalled: total timeout", "{}", B::NAME);
}

/// A compressed body the request did not ask for (it sends `accept-encoding: identity`) is
/// named by its content-encoding, not misread as invalid UTF-8 at line 1.
pub fn unasked_content_encoding_is_named<B: Backend>() {
    let _serial = serial();
    // The first bytes of a gzip member: magic, deflate, no flags, then deflate data.
    let gzip: Vec<u8> = vec![
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xab, 0x56, 0x2a, 0x4a,
    ];
    let server = ScriptedServer::start(move |_| {
        Reply::new(200)
            .header("content-encoding", "gzip")
            .send(gzip.clone())
    });
    let o = measured_outcome::<B>(server.url("/api/generate"), Some(8), &quick_settings());
    let e = o.record.error.expect("a gzip body must fail the call");
    assert_eq!(e.kind, CallErrorKind::WrongContentType, "{}: {e}", B::NAME);
    assert!(
        e.message.contains("content-encoding \"gzip\""),
        "{}: {e}",
        B::NAME
    );
    let ex = server.exchanges();
    assert_eq!(
        ex[0].request.header("accept-encoding"),
        Some("identity"),
        "{}",
        B::NAME
    );
}
