//! `chimeraforge doctor`: is every server of a config ready to be measured, and will the
//! config measure what it means to? Each problem comes with what to do next.
//!
//! Talks to servers through preflight's functions and the parent's blocking HTTP/1.1 client
//! ([`crate::http1`]; no async runtime), then makes one one-token generation per (endpoint,
//! model) the config uses, unless told not to.

use crate::config::{Config, SIM_URL};
use crate::http1::{self, HttpError};
use crate::preflight::{self, GET_TIMEOUT, MAX_REPLY_BYTES};
use chimeraforge_core::api::{ApiKind, ServerStats, StreamEvent};
use chimeraforge_core::workload::{self, Endpoint, ModelOptions, Scenario};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How bad a finding is: errors make `doctor` exit 1, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Ok,
    Info,
    Warning,
    Error,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warning => "WARN",
            Severity::Error => "ERROR",
        }
    }
}

/// One thing doctor found, and what to do about it.
#[derive(Debug, Clone)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
    /// What to do next; every warning and error has one.
    pub fix: Option<String>,
}

impl Finding {
    fn ok(message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Ok,
            message: message.into(),
            fix: None,
        }
    }
    fn info(message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Info,
            message: message.into(),
            fix: None,
        }
    }
    fn warn(message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Warning,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
    fn error(message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Error,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// What doctor learned about one endpoint.
#[derive(Debug, Clone)]
pub struct EndpointReport {
    pub name: String,
    /// The URL as checked (a simulator's real loopback URL for `sim` endpoints).
    pub url: String,
    pub api: ApiKind,
    pub simulated: bool,
    pub reachable: bool,
    /// The server software and version, as far as it says.
    pub server: Option<String>,
    /// Models the server has.
    pub models: Vec<String>,
    /// Models loaded in memory now (Ollama `/api/ps`), with their context length.
    pub loaded: Vec<(String, Option<u64>)>,
    /// Layers of each configured model the server could describe (`/api/show`).
    pub layers: BTreeMap<String, u64>,
    pub findings: Vec<Finding>,
}

/// Everything doctor found.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub config_name: String,
    pub config_path: String,
    pub endpoints: Vec<EndpointReport>,
    /// Findings about the config as a whole (shared servers, reloads, options).
    pub config: Vec<Finding>,
}

impl Diagnosis {
    fn all(&self) -> impl Iterator<Item = &Finding> {
        self.endpoints
            .iter()
            .flat_map(|e| &e.findings)
            .chain(&self.config)
    }

    pub fn errors(&self) -> usize {
        self.all().filter(|f| f.severity == Severity::Error).count()
    }

    pub fn warnings(&self) -> usize {
        self.all()
            .filter(|f| f.severity == Severity::Warning)
            .count()
    }

    /// Exit 0 when every endpoint is reachable and nothing is an error.
    pub fn healthy(&self) -> bool {
        self.errors() == 0 && self.endpoints.iter().all(|e| e.reachable)
    }
}

/// What doctor's one-token generation probe sends and how long it waits.
#[derive(Debug, Clone)]
pub(crate) struct ProbeSpec {
    /// The config's options with `num_predict` (`max_tokens`) = 1.
    pub options: ModelOptions,
    /// TCP connect timeout (the config's `connect_ms`).
    pub connect: Duration,
    /// From sending the request to the first token (the config's `first_byte_ms`).
    pub first_token: Duration,
    /// For the rest of the stream after the first token (the config's `idle_ms`).
    pub rest: Duration,
    pub max_line_bytes: usize,
    /// A server-reported load above this is named in the result, ms.
    pub cold_load_threshold_ms: f64,
}

impl ProbeSpec {
    /// The probe for `cfg`: its base options and timeouts, one output token.
    pub fn for_config(cfg: &Config) -> ProbeSpec {
        ProbeSpec {
            options: cfg.options.overlay(&ModelOptions {
                num_predict: Some(1),
                ..Default::default()
            }),
            connect: cfg.client.connect_timeout,
            first_token: cfg.settings.timeouts.first_byte,
            rest: cfg.settings.timeouts.idle,
            max_line_bytes: cfg.settings.max_line_bytes,
            cold_load_threshold_ms: cfg.settings.cold_load_threshold_ms,
        }
    }
}

/// Whether doctor makes a generation request on an endpoint, and if not why.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Generate<'a> {
    Probe(&'a ProbeSpec),
    /// Not probed, for this reason (shown as an info line).
    Skip(&'a str),
}

/// The prompt of the one-token probe.
pub(crate) const PROBE_PROMPT: &str = "Say OK.";
/// Largest probe reply read, bytes (one token and its statistics are far less).
const PROBE_MAX_BYTES: usize = 1 << 20;

/// Check one endpoint: reachable, dialect, version, models present and loaded, layers, and
/// (with [`Generate::Probe`]) a one-token generation with each model.
pub(crate) fn check_endpoint(
    ep: &Endpoint,
    simulated: bool,
    config_path: &str,
    models: &[String],
    generate: Generate<'_>,
) -> EndpointReport {
    let mut r = EndpointReport {
        name: ep.name.clone(),
        url: ep.base_url.clone(),
        api: ep.api,
        simulated,
        reachable: false,
        server: None,
        models: Vec::new(),
        loaded: Vec::new(),
        layers: BTreeMap::new(),
        findings: Vec::new(),
    };
    // The bench sends the endpoint's key (never printed); so does the check.
    let key = endpoint_key(ep, config_path, &mut r);
    let key = key.as_deref();
    let Some(models_there) = check_listing(ep, key, config_path, &mut r) else {
        return r;
    };
    r.models = models_there;
    describe_server(ep, key, &mut r);
    if let Generate::Skip(why) = generate {
        r.findings
            .push(Finding::info(format!("generation not probed: {why}")));
    }
    for model in models {
        check_model(ep, key, config_path, model, generate, &mut r);
    }
    r
}

/// The endpoint's API key; an error finding when its variable is not set.
fn endpoint_key(ep: &Endpoint, config_path: &str, r: &mut EndpointReport) -> Option<String> {
    match preflight::api_key(ep) {
        Ok(k) => k,
        Err(var) => {
            r.findings.push(Finding::error(
                format!("the API key variable {var} (api_key_env) is not set"),
                format!("export {var}=YOUR_KEY before running doctor and bench, or remove api_key_env from endpoint {:?} in {config_path}", ep.name),
            ));
            None
        }
    }
}

/// Reachable at all? One GET of the listing the bench needs: the models the server has, or
/// `None` (with the findings that say why) when there is no usable listing.
fn check_listing(
    ep: &Endpoint,
    key: Option<&str>,
    config_path: &str,
    r: &mut EndpointReport,
) -> Option<Vec<String>> {
    let base = &ep.base_url;
    let list_path = preflight::listing_path(ep.api);
    let (status, body) = match preflight::get(ep, list_path, key) {
        Ok(v) => v,
        Err(e @ (HttpError::Unreachable { .. } | HttpError::BadUrl { .. })) => {
            r.findings.push(Finding::error(
                format!("unreachable at {base}: {e}"),
                start_hint(ep, config_path),
            ));
            r.findings.push(Finding::info(
                "models, version and layers not checked: the server did not answer",
            ));
            return None;
        }
        Err(e) => {
            // Something accepted the connection: the server is up, not to be started.
            r.reachable = true;
            r.findings.push(transport_error(ep, &e, config_path));
            r.findings.push(Finding::info(format!(
                "models, version and layers not checked: no usable reply to GET {list_path}"
            )));
            return None;
        }
    };
    r.reachable = true;
    if status == 401 || status == 403 {
        let fix = match &ep.api_key_env {
            Some(var) => format!("check the key in {var}"),
            None => format!("set api_key_env = \"VAR\" on endpoint {:?} in {config_path} and export VAR=YOUR_KEY", ep.name),
        };
        r.findings.push(Finding::error(
            format!("answered HTTP {status} to GET {list_path}: the server wants an API key"),
            fix,
        ));
        return None;
    }
    if status != 200 {
        let other = if ep.api.is_ollama() {
            "an OpenAI-compatible server (llama.cpp, vLLM)? set api = \"openai-chat\""
        } else {
            "an Ollama server? set api = \"ollama\""
        };
        r.findings.push(Finding::error(
            format!("answered HTTP {status} to GET {list_path}: it does not speak the {} API the config says", api_name(ep.api)),
            format!("is it {other} for endpoint {:?} in {config_path}, or fix its url", ep.name),
        ));
        return None;
    }
    match preflight::parse_listing(ep.api, &body) {
        Ok(list) => Some(list.into_iter().map(|(name, _)| name).collect()),
        Err(e) => {
            r.findings.push(Finding::error(
                format!("answered GET {list_path} with something that is not JSON ({e}): it is not the {} API the config says", api_name(ep.api)),
                format!("check that {base} is the LLM server (its port) and `api` of endpoint {:?} in {config_path}", ep.name),
            ));
            None
        }
    }
}

/// The server's software and version, and (Ollama) the models loaded now: the reachable
/// finding and the loaded-models line.
fn describe_server(ep: &Endpoint, key: Option<&str>, r: &mut EndpointReport) {
    if ep.api.is_ollama() {
        r.server = preflight::get_json(ep, "/api/version", key)
            .and_then(|v| v.get("version")?.as_str().map(|v| format!("Ollama {v}")));
        if let Some(ps) = preflight::get_json(ep, "/api/ps", key) {
            r.loaded = loaded_models(&ps);
        }
    } else {
        r.server = openai_server(ep, key);
    }
    let version = r
        .server
        .clone()
        .unwrap_or_else(|| "version not reported".into());
    r.findings.push(Finding::ok(format!(
        "reachable, {} API, {version}",
        api_name(ep.api)
    )));
    if ep.api.is_ollama() {
        r.findings.push(Finding::info(if r.loaded.is_empty() {
            "loaded now (/api/ps): none".to_owned()
        } else {
            let loaded: Vec<String> = r
                .loaded
                .iter()
                .map(|(n, ctx)| match ctx {
                    Some(c) => format!("{n} (num_ctx {c})"),
                    None => n.clone(),
                })
                .collect();
            format!("loaded now (/api/ps): {}", loaded.join(", "))
        }));
    }
}

/// The models an Ollama `/api/ps` reply lists as loaded, with their context length.
fn loaded_models(ps: &serde_json::Value) -> Vec<(String, Option<u64>)> {
    ps.get("models")
        .and_then(|m| m.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    let name = m.get("name").or_else(|| m.get("model"))?.as_str()?;
                    Some((
                        name.to_owned(),
                        m.get("context_length").and_then(|c| c.as_u64()),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One configured model: present (else an error with the fix), its layers and whether it
/// is loaded (Ollama), and the one-token generation when probing.
fn check_model(
    ep: &Endpoint,
    key: Option<&str>,
    config_path: &str,
    model: &str,
    generate: Generate<'_>,
    r: &mut EndpointReport,
) {
    let base = &ep.base_url;
    if !preflight::has_model(ep.api, r.models.iter().map(String::as_str), model) {
        let have = if r.models.is_empty() {
            "none".to_owned()
        } else {
            r.models.join(", ")
        };
        let fix = if ep.api.is_ollama() {
            let host = host_port(base);
            format!("pull it: `OLLAMA_HOST={host} ollama pull {model}`, or remove it from `models` in {config_path}")
        } else {
            format!("start the server with that model (llama-server --alias {model}), or fix `models` in {config_path}")
        };
        r.findings.push(Finding::error(
            format!("model {model:?} is missing (the server has: {have})"),
            fix,
        ));
        return;
    }
    let mut facts = Vec::new();
    if ep.api.is_ollama() {
        if let Some(layers) = block_count(ep, model, key) {
            r.layers.insert(model.to_owned(), layers);
            facts.push(format!("{layers} layers"));
        }
        match r
            .loaded
            .iter()
            .find(|(n, _)| preflight::has_model(ep.api, std::iter::once(n.as_str()), model))
        {
            Some((_, Some(ctx))) => facts.push(format!("loaded now with num_ctx {ctx}")),
            Some((_, None)) => facts.push("loaded now".into()),
            None => facts.push("not loaded now; the bench's warm-up loads it".into()),
        }
    }
    r.findings.push(Finding::ok(format!(
        "model {model} present{}",
        if facts.is_empty() {
            String::new()
        } else {
            format!(": {}", facts.join("; "))
        }
    )));
    if let Generate::Probe(spec) = generate {
        r.findings
            .push(probe_generation(ep, model, key, spec, config_path));
    }
}

/// A request that failed below HTTP after something accepted the connection.
fn transport_error(ep: &Endpoint, e: &HttpError, config_path: &str) -> Finding {
    let host = host_port(&ep.base_url);
    match e {
        HttpError::Tls { .. } => Finding::error(
            e.to_string(),
            match &ep.ca_file {
                Some(_) => format!("point ca_file of endpoint {:?} in {config_path} at the PEM of the CA that signed the server's certificate (or check that {host} speaks TLS)", ep.name),
                None => format!("set ca_file = \"PATH\" on endpoint {:?} in {config_path} to the PEM of the CA that signed the server's certificate (tls_insecure = true skips the check, for test servers only), or check that {host} speaks TLS", ep.name),
            },
        ),
        HttpError::TimedOut { .. } => Finding::error(
            format!("{e}: the server accepted the connection but did not finish its reply"),
            format!("the server is up but slow or hung: check its log and load (a model load or a full queue holds replies) and restart it if it is hung; or another program listens on {host}: then fix the url of endpoint {:?} in {config_path}", ep.name),
        ),
        _ => Finding::error(
            e.to_string(),
            format!("check that {host} is the LLM server (http://, its port) and not another program, or fix the url of endpoint {:?} in {config_path}", ep.name),
        ),
    }
}

/// What `tls_insecure = true` gives up, for the bench's start and doctor.
pub fn insecure_warning(ep: &Endpoint) -> String {
    format!(
        "endpoint {:?} ({}) has tls_insecure = true: its server's certificate is not checked, so \
         nothing proves the replies come from that server\n  hint: set ca_file to the PEM of \
         the CA that signed its certificate instead",
        ep.name, ep.base_url
    )
}

/// `host:port` of a base URL, without its scheme.
fn host_port(base: &str) -> &str {
    base.trim_start_matches("http://")
        .trim_start_matches("https://")
}

/// The error message in an error reply's body: OpenAI's `error.message`, Ollama's `error`,
/// a `message`, or the text itself (shortened), with the API key blanked out should the
/// server echo it.
fn server_message(body: &[u8], key: Option<&str>) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = v
        .pointer("/error/message")
        .or_else(|| v.get("error"))
        .or_else(|| v.get("message"))
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    let text = redact(text, key);
    let mut short: String = text.chars().take(300).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// `text` without `key` (core's redaction, as every record and printed line has it).
fn redact(text: String, key: Option<&str>) -> String {
    chimeraforge_core::redact::Redactor::new(key)
        .text(&text)
        .into_owned()
}

/// What to do when a one-token generation answered `status`.
fn generation_fix(ep: &Endpoint, model: &str, status: u16, config_path: &str) -> String {
    let host = ep.base_url.trim_start_matches("http://");
    let path = ep.api.path();
    match status {
        404 if ep.api.is_ollama() => format!(
            "the server lists {model} but will not generate with it: pull it again (`OLLAMA_HOST={host} ollama pull {model}`) and check the server's log, or remove it from `models` in {config_path}; bench's calls to it would fail the same way"
        ),
        404 => format!(
            "the server lists {model} but answers 404 to {path}: does it serve that API and that model name (llama-server --alias {model}, vLLM --served-model-name {model})? fix `api` of endpoint {:?} or `models` in {config_path}",
            ep.name
        ),
        401 | 403 => match &ep.api_key_env {
            Some(var) => format!("the server refuses generation with the key in {var}: check it"),
            None => format!("set api_key_env = \"VAR\" on endpoint {:?} in {config_path} and export VAR=YOUR_KEY", ep.name),
        },
        400 | 422 => format!(
            "the server rejected the request: an option it does not accept? compare [options] in {config_path} with the server's log"
        ),
        500..=599 => format!(
            "the server failed to generate (out of memory loading the model with these options? num_ctx/num_gpu in {config_path}); its log says why"
        ),
        _ => "check the server's log; bench's calls would fail the same way".to_owned(),
    }
}

/// One streaming generation of one token with `model`, in the endpoint's API, with its key:
/// its TTFT (from sending the request to the first generated token, measured), or why it
/// failed and what to do.
fn probe_generation(
    ep: &Endpoint,
    model: &str,
    key: Option<&str>,
    spec: &ProbeSpec,
    config_path: &str,
) -> Finding {
    let path = ep.api.path();
    let what = format!("a one-token generation with {model} (POST {path})");
    let url = format!("{}{path}", ep.base_url);
    let body = workload::request_body(ep.api, model, "", PROBE_PROMPT, &spec.options);
    let trust = ep.tls();
    let req = http1::Request::post_json(&url, &body)
        .bearer(key)
        .trust(&trust)
        .accept("application/x-ndjson, text/event-stream, application/json");
    let limits = http1::Limits {
        connect: spec.connect,
        reply: spec.first_token,
        max_body: PROBE_MAX_BYTES,
    };
    let slow_fix = format!(
        "the server answers its listing but did not generate in time: a long model load, a model too big for the machine, or a hung server; check its log. If loads are this slow, raise first_byte_ms under [timeouts] in {config_path}: bench's calls would time out the same way"
    );
    let failed = |e: &HttpError, ttft: Option<Duration>| {
        let after = ttft.map_or(String::new(), |t| {
            format!(" after its first token ({:.1} ms)", ms(t))
        });
        let fix = match e {
            HttpError::TimedOut { .. } => slow_fix.clone(),
            HttpError::Unreachable { .. } => start_hint(ep, config_path),
            _ => "check the server's log; bench's calls would fail the same way".to_owned(),
        };
        Finding::error(format!("{what} failed{after}: {e}"), fix)
    };
    let mut reply = match http1::send(&req, limits) {
        Ok(reply) => reply,
        Err(e) => return failed(&e, None),
    };
    let status = reply.status();
    if status != 200 {
        reply.set_deadline(GET_TIMEOUT);
        let message = match reply.body() {
            Ok(b) => server_message(&b, key),
            Err(e) => format!("(its body could not be read: {e})"),
        };
        return Finding::error(
            format!("{what} failed: HTTP {status}: {message}"),
            generation_fix(ep, model, status, config_path),
        );
    }
    let mut decoder = ep.api.decoder(spec.max_line_bytes);
    let mut events = Vec::new();
    let mut ttft: Option<Duration> = None;
    let mut stats = ServerStats::default();
    let mut done = false;
    while !done {
        let (at, ended, decoded) = match reply.next_chunk() {
            Ok(Some((at, bytes))) => (at, false, decoder.feed(&bytes, &mut events)),
            Ok(None) => (Instant::now(), true, decoder.finish(&mut events)),
            Err(e) => return failed(&e, ttft),
        };
        if let Err(e) = decoded {
            return Finding::error(
                format!(
                    "{what}: the stream is not what the {} API sends: {e}",
                    api_name(ep.api)
                ),
                format!(
                    "check `api` of endpoint {:?} in {config_path} and the server's log",
                    ep.name
                ),
            );
        }
        for ev in events.drain(..) {
            match ev {
                // The first generated token of any kind, as bench's `ttft_ms`: a reasoning
                // model's one token is a thought.
                StreamEvent::Text(t) | StreamEvent::Reasoning(t)
                    if !t.is_empty() && ttft.is_none() =>
                {
                    ttft = Some(at.duration_since(reply.sent_at));
                    reply.set_deadline(spec.rest);
                }
                StreamEvent::Stats(s) => stats.merge(s),
                StreamEvent::Done { .. } => done = true,
                StreamEvent::ServerError(m) => {
                    return Finding::error(
                        format!(
                            "{what}: the server reported an error in the stream: {}",
                            redact(m, key)
                        ),
                        generation_fix(ep, model, 500, config_path),
                    )
                }
                _ => {}
            }
        }
        if ended && !done {
            let token = ttft.map_or("before any token".to_owned(), |t| {
                format!("after its first token ({:.1} ms)", ms(t))
            });
            return Finding::error(
                format!("{what}: the stream ended {token} without its end marker (done / [DONE]); bench records such calls as failed"),
                "check the server's log (did it crash or drop the connection?)".to_owned(),
            );
        }
    }
    let load = stats
        .load_ms
        .filter(|&l| l > spec.cold_load_threshold_ms)
        .map_or(String::new(), |l| {
            format!("; the server spent {l:.0} ms of it loading the model")
        });
    match ttft {
        Some(t) => Finding::ok(format!(
            "model {model} generates: TTFT {:.1} ms (measured: a one-token POST {path}, from sending the request to the first token{load})",
            ms(t)
        )),
        None => Finding::warn(
            format!("{what} finished without any text: TTFT not measured{load}"),
            "check the model and the server's log: a server that streams no token (text or reasoning) for a one-token request will not stream one for bench either".to_owned(),
        ),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn start_hint(ep: &Endpoint, config_path: &str) -> String {
    let host = ep.base_url.trim_start_matches("http://");
    let port = host.rsplit_once(':').map_or("11434", |(_, p)| p);
    let start = if ep.api.is_ollama() {
        format!("`OLLAMA_HOST={host} ollama serve`")
    } else {
        format!("`llama-server --port {port} -m MODEL.gguf` (or `just serve-real`)")
    };
    format!(
        "start the server: {start}\nor try chimeraforge without one: `chimeraforge sim --port {port}` (a simulated server)\nor fix the url of endpoint {:?} in {config_path}",
        ep.name
    )
}

fn api_name(api: ApiKind) -> &'static str {
    match api {
        ApiKind::Ollama => "ollama (/api/chat)",
        ApiKind::OllamaGenerate => "ollama-generate (/api/generate)",
        ApiKind::OpenaiChat => "openai-chat (/v1/chat/completions)",
        ApiKind::OpenaiCompletions => "openai-completions (/v1/completions)",
    }
}

/// What an OpenAI-compatible server says it is: llama.cpp (`/props`), vLLM (`/version`),
/// or Ollama's compatibility API (`/api/version`).
fn openai_server(ep: &Endpoint, key: Option<&str>) -> Option<String> {
    if let Some(props) = preflight::get_json(ep, "/props", key) {
        let build = props
            .get("build_info")
            .and_then(|b| b.as_str())
            .map(|b| format!(" {b}"))
            .unwrap_or_default();
        let ctx = props
            .pointer("/default_generation_settings/n_ctx")
            .and_then(|c| c.as_u64())
            .map(|c| format!(", n_ctx {c}"))
            .unwrap_or_default();
        return Some(format!("llama.cpp server{build}{ctx}"));
    }
    if let Some(v) = preflight::get_json(ep, "/api/version", key)
        .and_then(|v| v.get("version")?.as_str().map(str::to_owned))
    {
        return Some(format!("Ollama {v} (its OpenAI-compatible API)"));
    }
    preflight::get_json(ep, "/version", key)
        .and_then(|v| v.get("version")?.as_str().map(|v| format!("version {v}")))
}

/// Layers of `model` from `/api/show`'s `model_info["<family>.block_count"]`.
fn block_count(ep: &Endpoint, model: &str, key: Option<&str>) -> Option<u64> {
    let body = serde_json::to_vec(&serde_json::json!({ "model": model })).ok()?;
    let (status, reply) = http1::post_json(
        &format!("{}/api/show", ep.base_url),
        &body,
        key,
        &ep.tls(),
        GET_TIMEOUT,
        MAX_REPLY_BYTES,
    )
    .ok()?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&reply).ok()?;
    v.get("model_info")?
        .as_object()?
        .iter()
        .find(|(k, _)| k.ends_with(".block_count"))
        .and_then(|(_, n)| n.as_u64())
}

/// One agent in one scenario, as the config would run it.
struct Placement<'a> {
    scenario: Scenario,
    agent: &'a str,
    endpoint: &'a Endpoint,
    options: ModelOptions,
}

fn placements(cfg: &Config) -> Vec<Placement<'_>> {
    let mut v = Vec::new();
    for &scenario in &cfg.scenarios {
        for (i, t) in cfg.agents.iter().enumerate() {
            let endpoint = cfg
                .endpoints
                .iter()
                .find(|e| e.name == t.endpoint.name)
                .unwrap_or(&t.endpoint);
            v.push(Placement {
                scenario,
                agent: &t.id,
                endpoint,
                options: cfg
                    .options
                    .overlay(&scenario.options_for(i))
                    .overlay(&t.options),
            });
        }
    }
    v
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("server default".into(), |v| v.to_string())
}

/// Findings about the config as a whole: shared servers, reloads, options that are not
/// sent, num_gpu beyond a model's layers (with the layers the servers reported).
pub fn check_config(cfg: &Config, config_path: &str, reports: &[EndpointReport]) -> Vec<Finding> {
    let mut out = Vec::new();
    let places = placements(cfg);

    // Two endpoints, one server: the config separates agents that will share a server.
    for e in cfg.endpoints.iter().filter(|e| e.tls_insecure) {
        let text = insecure_warning(e);
        let (what, fix) = text.split_once("\n  hint: ").unwrap_or((&text, ""));
        out.push(Finding::warn(what, fix));
    }
    let mut by_url: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in &cfg.endpoints {
        if e.base_url != SIM_URL {
            by_url.entry(&e.base_url).or_default().push(&e.name);
        }
    }
    let mut shared = false;
    for (url, names) in &by_url {
        if names.len() > 1 {
            shared = true;
            out.push(Finding::warn(
                format!(
                    "endpoints {} all point at {url}: the agents the config separates will share one server",
                    names.join(", ")
                ),
                format!(
                    "start a second server (e.g. `OLLAMA_HOST=127.0.0.1:11435 ollama serve`) and point one endpoint at it in {config_path}; or, to measure one shared server on purpose, keep a single endpoint"
                ),
            ));
        }
    }
    if !shared && cfg.endpoints.len() > 1 {
        out.push(Finding::ok("each endpoint is a separate server"));
    }

    // Agents on the same Ollama server with different (num_ctx, num_gpu) for the same model
    // make Ollama reload the model back and forth inside the concurrent phase.
    let server_of = |e: &Endpoint| -> String {
        if e.base_url == SIM_URL {
            format!("sim:{}", e.name)
        } else {
            e.base_url.clone()
        }
    };
    let mut reloads = false;
    for &scenario in &cfg.scenarios {
        let mut by_server: BTreeMap<String, Vec<&Placement>> = BTreeMap::new();
        for p in places
            .iter()
            .filter(|p| p.scenario == scenario && p.endpoint.api.is_ollama())
        {
            by_server.entry(server_of(p.endpoint)).or_default().push(p);
        }
        for (server, group) in by_server {
            let key = |p: &Placement| (p.options.num_ctx, p.options.num_gpu);
            if group.windows(2).any(|w| key(w[0]) != key(w[1])) {
                reloads = true;
                let who = group
                    .iter()
                    .map(|p| {
                        format!(
                            "{} (num_ctx {}, num_gpu {})",
                            p.agent,
                            opt(p.options.num_ctx),
                            opt(p.options.num_gpu)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" and ");
                out.push(Finding::warn(
                    format!(
                        "scenario {scenario}: agents {who} share the server {server} with different load options: Ollama reloads the model each time the other agent's request arrives, so the concurrent phase measures reloads"
                    ),
                    format!(
                        "give each agent its own server (one [[endpoints]] per agent, different urls) in {config_path}, or give them the same num_ctx and num_gpu"
                    ),
                ));
            }
        }
    }
    if !reloads && cfg.endpoints.iter().any(|e| e.api.is_ollama()) {
        out.push(Finding::ok(
            "no scenario makes two agents on one Ollama server load a model with different options",
        ));
    }

    // num_gpu beyond the model's layers: Ollama offloads every layer; the excess means nothing.
    for model in &cfg.models {
        let layers = reports
            .iter()
            .filter_map(|r| r.layers.get(model))
            .copied()
            .min();
        let Some(layers) = layers else { continue };
        let mut over: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for p in places.iter().filter(|p| p.endpoint.api.is_ollama()) {
            if let Some(n) = p.options.num_gpu.filter(|&n| u64::from(n) > layers) {
                let scenarios = over.entry(n).or_default();
                if !scenarios.contains(&p.scenario.to_string()) {
                    scenarios.push(p.scenario.to_string());
                }
            }
        }
        let over: Vec<String> = over
            .iter()
            .map(|(n, sc)| format!("num_gpu {n} (in {})", sc.join(", ")))
            .collect();
        if !over.is_empty() {
            out.push(Finding::warn(
                format!(
                    "{model} has {layers} layers, but {} asks for more: Ollama offloads all {layers}, so this setting means \"every layer on the GPU\", not more",
                    over.join(", ")
                ),
                format!(
                    "nothing, if every layer on the GPU is what you meant; to compare partial offload, set num_gpu below {layers} in the agents' options in {config_path}"
                ),
            ));
        }
    }

    // OpenAI-compatible endpoints get no num_gpu/num_ctx/top_k/repeat_penalty.
    // (agent, endpoint) -> (options not sent, scenarios).
    type Unsent = (Vec<&'static str>, Vec<String>);
    let mut unsent: BTreeMap<(&str, &str), Unsent> = BTreeMap::new();
    for p in places.iter().filter(|p| !p.endpoint.api.is_ollama()) {
        let dropped = p.options.not_applicable_to_openai();
        if dropped.is_empty() {
            continue;
        }
        let e = unsent.entry((p.agent, &p.endpoint.name)).or_default();
        for d in dropped {
            if !e.0.contains(&d) {
                e.0.push(d);
            }
        }
        e.1.push(p.scenario.to_string());
    }
    for ((agent, endpoint), (options, scenarios)) in unsent {
        out.push(Finding::warn(
            format!(
                "agent {agent} on OpenAI-compatible endpoint {endpoint} is given {} (scenarios {}), which are not sent: that API has no such request fields, so scenarios that differ only in them measure the same thing",
                options.join(", "),
                scenarios.join(", ")
            ),
            "set them when launching the server (llama-server -c N -ngl N), or use an Ollama server with api = \"ollama\"; the bench records them as not applicable".to_string(),
        ));
    }

    // `think` where the endpoint's API has no field for it (or not in that form).
    // (agent, endpoint) -> (why, the value, scenarios).
    let mut unthought: BTreeMap<(&str, &str), (&'static str, String, Vec<String>)> =
        BTreeMap::new();
    for p in &places {
        let Some(why) = p.options.think_not_sent(p.endpoint.api) else {
            continue;
        };
        let value = p
            .options
            .think
            .map(|t| serde_json::to_string(&t).expect("a think value serializes"));
        let e = unthought
            .entry((p.agent, &p.endpoint.name))
            .or_insert_with(|| (why, value.unwrap_or_default(), Vec::new()));
        e.2.push(p.scenario.to_string());
    }
    for ((agent, endpoint), (why, value, scenarios)) in unthought {
        out.push(Finding::warn(
            format!(
                "agent {agent} on endpoint {endpoint} is given think = {value} (scenarios {}), which is not sent: {why}",
                scenarios.join(", ")
            ),
            format!(
                "for a reasoning model use api = \"openai-chat\" with think = \"low\", \"medium\" or \"high\" (sent as reasoning_effort), or an Ollama endpoint (sent as think); else remove think from {config_path}"
            ),
        ));
    }
    out
}

/// Check every endpoint of `cfg` (with `sim` endpoints resolved to running simulators in
/// `resolved`) and the config as a whole, with a one-token generation per (endpoint, model).
pub fn diagnose(cfg: &Config, config_path: &str, resolved: &[Endpoint]) -> Diagnosis {
    diagnose_with(cfg, config_path, resolved, true)
}

/// [`diagnose`], with the generation probe only when `generate` (`doctor --no-generate`
/// turns it off).
pub fn diagnose_with(
    cfg: &Config,
    config_path: &str,
    resolved: &[Endpoint],
    generate: bool,
) -> Diagnosis {
    let spec = ProbeSpec::for_config(cfg);
    // The endpoints some agent of some cell talks to (every agent count of a sweep).
    let used: BTreeSet<String> = cfg
        .agent_counts()
        .into_iter()
        .flat_map(|n| cfg.templates_for(n))
        .map(|t| t.endpoint.name)
        .collect();
    let endpoints: Vec<EndpointReport> = cfg
        .endpoints
        .iter()
        .map(|e| {
            let live = resolved.iter().find(|r| r.name == e.name).unwrap_or(e);
            let probe = if !generate {
                Generate::Skip("--no-generate")
            } else if !used.contains(&e.name) {
                Generate::Skip("no agent of the config uses this endpoint")
            } else {
                Generate::Probe(&spec)
            };
            check_endpoint(live, e.base_url == SIM_URL, config_path, &cfg.models, probe)
        })
        .collect();
    let config = check_config(cfg, config_path, &endpoints);
    Diagnosis {
        config_name: cfg.name.clone(),
        config_path: config_path.to_owned(),
        endpoints,
        config,
    }
}

/// Text wrapped at word boundaries to lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

const WIDTH: usize = 100;

fn push_finding(out: &mut String, f: &Finding) {
    for (i, line) in wrap(&f.message, WIDTH).iter().enumerate() {
        let label = if i == 0 { f.severity.label() } else { "" };
        out.push_str(&format!("  {label:<5}  {line}\n"));
    }
    if let Some(fix) = &f.fix {
        let mut first = true;
        for part in fix.lines() {
            for line in wrap(part, WIDTH - 5) {
                let lead = if first { "fix: " } else { "     " };
                first = false;
                out.push_str(&format!("         {lead}{line}\n"));
            }
        }
    }
}

/// The terminal report, ending with what to do next.
pub fn render(d: &Diagnosis, config_arg: &str) -> String {
    let mut out = format!(
        "chimeraforge doctor: config {} ({}), {} endpoint(s)\n",
        d.config_name,
        d.config_path,
        d.endpoints.len()
    );
    for e in &d.endpoints {
        let what = if e.simulated {
            format!(
                "embedded simulator (url = \"sim\"): started for this check at {}; `bench` starts its own on a free port",
                e.url
            )
        } else {
            e.url.clone()
        };
        out.push_str(&format!("\nendpoint {}  {what}\n", e.name));
        for f in &e.findings {
            push_finding(&mut out, f);
        }
    }
    out.push_str("\nconfig\n");
    for f in &d.config {
        push_finding(&mut out, f);
    }
    let (errors, warnings) = (d.errors(), d.warnings());
    let config_arg = if config_arg.is_empty() {
        String::new()
    } else {
        format!(" {config_arg}")
    };
    out.push('\n');
    if d.healthy() {
        out.push_str(&format!(
            "ready: {warnings} warning(s), no errors. Next: chimeraforge bench{config_arg}\n"
        ));
    } else {
        out.push_str(&format!(
            "not ready: {errors} error(s), {warnings} warning(s). Fix the errors above (each says how), then run `chimeraforge doctor{config_arg}` again.\n"
        ));
    }
    out
}
