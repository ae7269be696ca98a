//! The parent's own HTTP (the pre-bench check and `doctor`) against servers that keep the
//! connection open after a complete reply, frame bodies every way HTTP/1.1 allows, never
//! finish a reply, or list a model they then refuse to generate with; and doctor's one-token
//! generation probe.

use chimeraforge::doctor::{self, Severity};
use chimeraforge::preflight;
use chimeraforge_core::api::ApiKind;
use chimeraforge_core::workload::Endpoint;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{parse, run_bin as run, text};

/// One request as the raw server read it.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    /// The request line and headers as sent.
    head: String,
    body: Vec<u8>,
}

/// What the raw server does with a connection.
#[derive(Debug, Clone)]
enum Act {
    /// Write these bytes as they are (head and framing included).
    Write(Vec<u8>),
    Pause(Duration),
    /// Close the connection (a close-delimited reply ends here).
    Close,
}

type Script = dyn Fn(&Req) -> Vec<Act> + Send + Sync;

/// A loopback server that answers each request with raw bytes and, unless the script says
/// `Close`, keeps the connection open afterwards for the next request, as an HTTP/1.1
/// server with keep-alive does, whatever the client asked.
struct RawServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Req>>>,
}

impl RawServer {
    fn start(script: impl Fn(&Req) -> Vec<Act> + Send + Sync + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (script, seen) = (Arc::clone(&script), Arc::clone(&seen));
                std::thread::spawn(move || serve(conn, &*script, &seen));
            }
        });
        RawServer { addr, requests }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, script: &Script, seen: &Mutex<Vec<Req>>) {
    // A client that never closes does not keep this thread forever.
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = conn.set_nodelay(true);
    let mut reader = BufReader::new(conn);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut first = head.split_whitespace();
        let method = first.next().unwrap_or_default().to_owned();
        let path = first.next().unwrap_or_default().to_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let req = Req {
            method,
            path,
            head,
            body,
        };
        seen.lock().unwrap().push(req.clone());
        for act in script(&req) {
            match act {
                Act::Write(bytes) => {
                    if reader.get_mut().write_all(&bytes).is_err() {
                        return;
                    }
                }
                Act::Pause(d) => std::thread::sleep(d),
                Act::Close => return,
            }
        }
    }
}

/// A complete reply framed by Content-Length (the connection stays open).
fn with_length(status: &str, content_type: &str, body: &str) -> Act {
    Act::Write(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn json(body: &str) -> Act {
    with_length("200 OK", "application/json", body)
}

/// A chunked reply head; each chunk follows as its own write.
fn chunked_head(content_type: &str) -> Act {
    Act::Write(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes(),
    )
}

/// One chunk with an extension.
fn chunk(data: &str) -> Act {
    Act::Write(format!("{:x};ext=\"a;b\"\r\n{data}\r\n", data.len()).into_bytes())
}

fn last_chunk() -> Act {
    Act::Write(b"0;end=1\r\nX-Trailer: t\r\n\r\n".to_vec())
}

const TAGS: &str = r#"{"models":[{"name":"m:1","model":"m:1","digest":"abc123"}]}"#;

/// Ollama's reply to a one-token chat, NDJSON, chunked, after `ttft` of silence.
fn ollama_chat(ttft: Duration) -> Vec<Act> {
    vec![
        chunked_head("application/x-ndjson"),
        Act::Pause(ttft),
        chunk("{\"model\":\"m:1\",\"message\":{\"role\":\"assistant\",\"content\":\"OK\"},\"done\":false}\n"),
        chunk("{\"model\":\"m:1\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"length\",\"eval_count\":1,\"load_duration\":2000000}\n"),
        last_chunk(),
    ]
}

/// An Ollama server with keep-alive replies framed by Content-Length (chunked for the
/// stream), listing `m:1`; generation as `generate` says.
fn keepalive_ollama(generate: impl Fn() -> Vec<Act> + Send + Sync + 'static) -> RawServer {
    RawServer::start(move |req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/api/tags") => vec![json(TAGS)],
        ("GET", "/api/version") => vec![json(r#"{"version":"0.9.9"}"#)],
        ("GET", "/api/ps") => vec![json(r#"{"models":[]}"#)],
        ("POST", "/api/show") => vec![json(r#"{"model_info":{"x.block_count":12}}"#)],
        ("POST", "/api/chat") => generate(),
        _ => vec![with_length(
            "404 Not Found",
            "text/plain",
            "404 page not found",
        )],
    })
}

fn endpoint(url: &str, api: ApiKind) -> Endpoint {
    Endpoint {
        name: "e".into(),
        base_url: url.into(),
        api,
        api_key_env: None,
        ca_file: None,
        tls_insecure: false,
    }
}

const HEAD: &str = r#"name = "t"
runs = 1
models = ["m:1"]
scenarios = ["baseline-vs-chimera"]
[options]
num_predict = 8
seed = 1
"#;

fn config_text(url: &str, api: &str) -> String {
    format!("{HEAD}[[endpoints]]\nname = \"e\"\nurl = \"{url}\"\napi = \"{api}\"\n")
}

#[test]
fn preflight_reads_a_content_length_reply_on_a_connection_left_open() {
    let server = keepalive_ollama(|| ollama_chat(Duration::ZERO));
    let t0 = Instant::now();
    let facts = preflight::check(&endpoint(&server.url(), ApiKind::Ollama), &["m:1".into()])
        .expect("a complete reply is read without waiting for a close");
    // Well under the 5 s a GET may take: nothing waited for a close (loose for loaded CI).
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    assert_eq!(facts.version.as_deref(), Some("0.9.9"));
    assert_eq!(
        facts.models,
        vec![("m:1".to_owned(), Some("abc123".to_owned()))]
    );
}

#[test]
fn preflight_decodes_a_chunked_listing_with_extensions_and_trailers() {
    let server = RawServer::start(|req| match req.path.as_str() {
        "/v1/models" => vec![
            chunked_head("application/json"),
            chunk(r#"{"object":"list","data":[{"id":"#),
            chunk(r#""m:1","object":"model"}]}"#),
            last_chunk(),
        ],
        _ => vec![with_length("404 Not Found", "text/plain", "no")],
    });
    let t0 = Instant::now();
    let facts = preflight::check(
        &endpoint(&server.url(), ApiKind::OpenaiChat),
        &["m:1".into()],
    )
    .expect("a chunked reply ends at its last chunk");
    // Well under the 5 s a GET may take: nothing waited for a close (loose for loaded CI).
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    assert_eq!(facts.models, vec![("m:1".to_owned(), None)]);
}

#[test]
fn preflight_reads_a_close_delimited_reply_and_asks_http11_with_connection_close() {
    let server = RawServer::start(|_| {
        vec![
            Act::Write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n".to_vec()),
            Act::Write(TAGS.as_bytes().to_vec()),
            Act::Close,
        ]
    });
    let facts = preflight::check(&endpoint(&server.url(), ApiKind::Ollama), &["m:1".into()])
        .expect("a reply without a length runs to the close");
    assert_eq!(facts.models[0].0, "m:1");
    let requests = server.requests();
    let tags = requests.iter().find(|r| r.path == "/api/tags").unwrap();
    let head = tags.head.to_ascii_lowercase();
    assert!(head.starts_with("get /api/tags http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nhost: {}\r\n", server.addr)),
        "{head}"
    );
}

/// A server that accepts, sends a head promising 1000 bytes and 10 of them, then waits.
fn never_finishing() -> RawServer {
    RawServer::start(|_| {
        vec![Act::Write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"models\":"
                .to_vec(),
        )]
    })
}

#[test]
fn preflight_calls_a_reply_that_never_finishes_a_timeout_not_unreachable() {
    let server = never_finishing();
    let t0 = Instant::now();
    let err = preflight::check(&endpoint(&server.url(), ApiKind::Ollama), &["m:1".into()])
        .expect_err("an unfinished reply fails")
        .to_string();
    let waited = t0.elapsed();
    assert!(
        err.contains(&format!(
            "timed out reading the reply to GET /api/tags from {} after 5 s",
            server.url()
        )),
        "{err}"
    );
    assert!(
        !err.contains("unreachable") && !err.contains("start the server"),
        "{err}"
    );
    assert!(err.contains("busy or hung"), "{err}");
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(9),
        "{waited:?}"
    );
}

#[test]
fn doctor_says_a_hung_server_is_up_but_hung_not_to_start_it() {
    let server = never_finishing();
    let cfg = parse(config_text(&server.url(), "ollama"));
    let d = doctor::diagnose(&cfg, "t.toml", &cfg.endpoints);
    let report = doctor::render(&d, "t.toml");
    assert!(!d.healthy(), "{report}");
    let e = &d.endpoints[0];
    let error = e
        .findings
        .iter()
        .find(|f| f.severity == Severity::Error)
        .expect("an error");
    assert!(
        error.message.contains(&format!(
            "timed out reading the reply to GET /api/tags from {} after 5 s",
            server.url()
        )),
        "{report}"
    );
    let fix = error.fix.as_deref().unwrap();
    assert!(fix.contains("slow or hung"), "{report}");
    assert!(
        !report.contains("unreachable") && !report.contains("start the server"),
        "{report}"
    );
}

#[test]
fn doctor_on_a_keep_alive_server_is_ready_and_measures_a_one_token_ttft() {
    let server = keepalive_ollama(|| ollama_chat(Duration::from_millis(150)));
    let cfg = parse(config_text(&server.url(), "ollama"));
    let t0 = Instant::now();
    let d = doctor::diagnose(&cfg, "t.toml", &cfg.endpoints);
    let report = doctor::render(&d, "t.toml");
    assert!(d.healthy(), "{report}");
    assert!(t0.elapsed() < Duration::from_millis(4500), "{report}");
    assert_eq!(
        d.endpoints[0].server.as_deref(),
        Some("Ollama 0.9.9"),
        "{report}"
    );
    assert!(report.contains("model m:1 present: 12 layers"), "{report}");
    let probe = d.endpoints[0]
        .findings
        .iter()
        .find(|f| f.message.contains("generates: TTFT"))
        .unwrap_or_else(|| panic!("no probe line: {report}"));
    assert_eq!(probe.severity, Severity::Ok);
    let ttft: f64 = probe
        .message
        .split("TTFT ")
        .nth(1)
        .and_then(|s| s.split(" ms").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{}", probe.message));
    // From sending the request to the first token: the server's 150 ms silence is in it.
    assert!((150.0..2000.0).contains(&ttft), "{ttft} ms: {report}");
    assert!(probe.message.contains("measured"), "{report}");
    // The probe asks for one token, in the endpoint's API, streaming.
    let chat = server
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/chat")
        .expect("a generation request");
    let body: serde_json::Value = serde_json::from_slice(&chat.body).unwrap();
    assert_eq!(body["model"], "m:1");
    assert_eq!(body["stream"], true);
    assert_eq!(body["options"]["num_predict"], 1);
}

/// Ollama's answer to a model it lists but cannot load.
fn ollama_404() -> Vec<Act> {
    vec![with_length(
        "404 Not Found",
        "application/json",
        r#"{"error":"model \"m:1\" not found, try pulling it first"}"#,
    )]
}

#[test]
fn doctor_exits_1_when_a_listed_model_is_refused_at_generation() {
    let server = keepalive_ollama(ollama_404);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("t.toml");
    std::fs::write(&cfg, config_text(&server.url(), "ollama")).unwrap();
    let o = run(&["doctor", cfg.to_str().unwrap()], tmp.path());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("model m:1 present"), "{t}");
    assert!(
        t.contains(
            "ERROR  a one-token generation with m:1 (POST /api/chat) failed: HTTP 404: model \"m:1\" not found"
        ),
        "{t}"
    );
    assert!(t.contains("ollama pull m:1"), "{t}");
    assert!(t.contains("not ready: 1 error(s)"), "{t}");
}

#[test]
fn doctor_quotes_an_openai_servers_error_message_when_generation_is_refused() {
    let server = RawServer::start(|req| match req.path.as_str() {
        "/v1/models" => vec![json(r#"{"object":"list","data":[{"id":"m:1"}]}"#)],
        "/v1/chat/completions" => vec![with_length(
            "404 Not Found",
            "application/json",
            r#"{"error":{"message":"The model `m:1` does not exist.","type":"invalid_request_error","code":404}}"#,
        )],
        _ => vec![with_length("404 Not Found", "text/plain", "File Not Found")],
    });
    let cfg = parse(config_text(&server.url(), "openai-chat"));
    let d = doctor::diagnose(&cfg, "t.toml", &cfg.endpoints);
    let report = doctor::render(&d, "t.toml");
    assert!(!d.healthy(), "{report}");
    let error = d.endpoints[0]
        .findings
        .iter()
        .find(|f| f.severity == Severity::Error)
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        error.message.contains(
            "(POST /v1/chat/completions) failed: HTTP 404: The model `m:1` does not exist."
        ),
        "{report}"
    );
    assert!(
        error.fix.as_deref().unwrap().contains("--alias m:1"),
        "{report}"
    );
    let chat = server
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/chat/completions")
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&chat.body).unwrap();
    assert_eq!(body["max_tokens"], 1);
    assert_eq!(body["stream"], true);
}

#[test]
fn doctor_no_generate_skips_the_probe() {
    let server = keepalive_ollama(ollama_404);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("t.toml");
    std::fs::write(&cfg, config_text(&server.url(), "ollama")).unwrap();
    let o = run(
        &["doctor", cfg.to_str().unwrap(), "--no-generate"],
        tmp.path(),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("generation not probed: --no-generate"), "{t}");
    assert!(!t.contains("HTTP 404"), "{t}");
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.method != "POST" || r.path != "/api/chat"),
        "no generation request"
    );
}

#[test]
fn doctor_on_the_quickstart_probes_every_endpoint_and_shows_a_ttft() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&["doctor"], tmp.path());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let endpoints = t.matches("\nendpoint ").count();
    assert!(endpoints >= 1, "{t}");
    assert_eq!(
        t.matches("model gemma3:latest generates: TTFT ").count(),
        endpoints,
        "{t}"
    );
    assert!(t.contains("ready:"), "{t}");
}

/// A reasoning model's one token is a thought: the probe's TTFT is the first token of any
/// kind (as bench's `ttft_ms`), not "finished without any text".
#[test]
fn doctor_on_a_reasoning_model_times_its_first_thought() {
    let tmp = tempfile::tempdir().unwrap();
    let config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench-configs/reasoning-sim.toml");
    let o = run(&["doctor", config.to_str().unwrap()], tmp.path());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains(" generates: TTFT "), "{t}");
    assert!(!t.contains("without any text"), "{t}");
}

#[test]
fn doctor_quotes_a_refused_generation_without_the_api_key_it_echoes() {
    const KEY: &str = "sk-doctor-probe-secret-4242";
    const VAR: &str = "CHIMERAFORGE_TEST_PROBE_KEY";
    let server = RawServer::start(|req| match req.path.as_str() {
        "/v1/models" => vec![json(r#"{"object":"list","data":[{"id":"m:1"}]}"#)],
        "/v1/chat/completions" => {
            let auth = req
                .head
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                .unwrap_or_default()
                .trim()
                .to_owned();
            let body = serde_json::json!({"error": {"message": format!("bad key: {auth}")}});
            vec![with_length(
                "401 Unauthorized",
                "application/json",
                &body.to_string(),
            )]
        }
        _ => vec![with_length("404 Not Found", "text/plain", "no")],
    });
    // The variable is this test's own; no other test reads or writes it.
    std::env::set_var(VAR, KEY);
    let cfg =
        parse(config_text(&server.url(), "openai-chat") + &format!("api_key_env = \"{VAR}\"\n"));
    let d = doctor::diagnose(&cfg, "t.toml", &cfg.endpoints);
    let report = doctor::render(&d, "t.toml");
    assert!(!d.healthy(), "{report}");
    assert!(
        d.endpoints[0]
            .findings
            .iter()
            .any(|f| f.severity == Severity::Error
                && f.message.ends_with(
                    "failed: HTTP 401: bad key: Authorization: Bearer [redacted api key]"
                )),
        "{report}"
    );
    assert!(!report.contains(KEY), "{report}");
    assert!(report.contains(VAR), "{report}");
}

#[test]
fn doctor_times_out_a_generation_that_sends_no_token_within_first_byte_ms() {
    // The head arrives at once; no token ever does.
    let server = keepalive_ollama(|| vec![chunked_head("application/x-ndjson")]);
    let cfg = parse(config_text(&server.url(), "ollama") + "[timeouts]\nfirst_byte_ms = 300\n");
    let t0 = Instant::now();
    let d = doctor::diagnose(&cfg, "t.toml", &cfg.endpoints);
    let report = doctor::render(&d, "t.toml");
    assert!(!d.healthy(), "{report}");
    assert!(t0.elapsed() < Duration::from_secs(4), "{report}");
    let error = d.endpoints[0]
        .findings
        .iter()
        .find(|f| f.severity == Severity::Error)
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        error.message.ends_with(&format!(
            "(POST /api/chat) failed: timed out reading the reply to POST /api/chat from {} after 300 ms",
            server.url()
        )),
        "{report}"
    );
    assert!(
        error.fix.as_deref().unwrap().contains("first_byte_ms"),
        "{report}"
    );
}
