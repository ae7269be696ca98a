//! Bench configuration (TOML): parsed, validated, every error pointing at file:line:column.

use chimeraforge_core::api::ApiKind;
use chimeraforge_core::call::{CallSettings, Timeouts};
use chimeraforge_core::graph::{Graph, GraphError};
use chimeraforge_core::workload::{
    builtin_agents, output_placeholders, replicate, AgentTemplate, CallSpec, Endpoint, Latency,
    ModelOptions, PromptCache, Scenario, ToolStep,
};
use chimeraforge_core::{BackendId, ClientOptions, ConnectionPolicy};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The endpoint URL that means "start an embedded simulator for this endpoint".
pub const SIM_URL: &str = "sim";

/// A configuration problem, located in its file.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}\n  hint: {hint}")]
pub struct ConfigError {
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    runs: Spanned<i64>,
    backends: Option<Vec<Spanned<String>>>,
    models: Spanned<Vec<Spanned<String>>>,
    scenarios: Spanned<Vec<Spanned<String>>>,
    #[serde(default = "default_warmup_tokens")]
    warmup_tokens: u32,
    shuffle_seed: Option<u64>,
    options: Option<Spanned<ModelOptions>>,
    #[serde(default)]
    timeouts: RawTimeouts,
    #[serde(default = "default_cold_load_ms")]
    cold_load_threshold_ms: Spanned<f64>,
    #[serde(default = "default_max_line_bytes")]
    max_line_bytes: Spanned<i64>,
    runaway_factor: Option<Spanned<f64>>,
    max_response_bytes: Option<Spanned<i64>>,
    simulator: Option<Spanned<RawSimulator>>,
    endpoints: Spanned<Vec<RawEndpoint>>,
    /// `agents = N` (the seed agents replicated to N) or `[[agents]]` tables.
    agents: Option<Spanned<RawAgents>>,
    scaling: Option<Spanned<RawScaling>>,
    #[serde(default)]
    prompt_cache: PromptCache,
    /// `connection = "keep-alive" | "fresh"` (see `ClientOptions::connection`).
    #[serde(default)]
    connection: ConnectionPolicy,
}

/// The most agents one run may have (a socket each, in the client and in the server).
pub(crate) const MAX_AGENTS: usize = 10_000;

/// The most runs per cell (`runs` and `--runs`).
pub const MAX_RUNS: u32 = 100_000;

/// The smallest `max_response_bytes`: 64 KiB, about 256 tokens of OpenAI-style SSE (an event
/// is ~250 bytes); below it an ordinary call would fail as `runaway_stream`.
pub(crate) const MIN_RESPONSE_BYTES: i64 = 64 * 1024;

/// The shortest `max_line_bytes`: below it not even a server's closing stats line fits, so
/// every call would fail as `line_too_long`.
pub(crate) const MIN_LINE_BYTES: i64 = 1024;

/// The longest timeout, ms (a day): longer is no timeout at all, and would overflow the clock.
pub(crate) const MAX_TIMEOUT_MS: i64 = 86_400_000;

/// `agents` is either a count or a list of agent tables (TOML cannot have both under one key).
enum RawAgents {
    Count(i64),
    List(Vec<RawAgent>),
}

impl<'de> Deserialize<'de> for RawAgents {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawAgents;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of agents (agents = 8) or [[agents]] tables")
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawAgents, E> {
                Ok(RawAgents::Count(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawAgents, E> {
                Ok(RawAgents::Count(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawAgents, A::Error> {
                let mut list = Vec::new();
                while let Some(a) = seq.next_element::<RawAgent>()? {
                    list.push(a);
                }
                Ok(RawAgents::List(list))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScaling {
    agents: Option<Spanned<Vec<Spanned<i64>>>>,
    max_agents: Option<Spanned<i64>>,
}

fn default_warmup_tokens() -> u32 {
    8
}
fn default_cold_load_ms() -> Spanned<f64> {
    Spanned::new(
        0..0,
        chimeraforge_core::call::DEFAULT_COLD_LOAD_THRESHOLD_MS,
    )
}
fn default_max_line_bytes() -> Spanned<i64> {
    Spanned::new(0..0, 1 << 20)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    connect_ms: Option<Spanned<i64>>,
    first_byte_ms: Option<Spanned<i64>>,
    idle_ms: Option<Spanned<i64>>,
    total_ms: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSimulator {
    #[serde(default = "default_profile")]
    profile: Spanned<String>,
    #[serde(default = "default_device")]
    device: Spanned<String>,
    /// Serve https with a certificate made at start (the endpoints trust it by `ca_file`).
    #[serde(default)]
    tls: bool,
}

fn default_profile() -> Spanned<String> {
    Spanned::new(0..0, "quickstart".into())
}
fn default_device() -> Spanned<String> {
    Spanned::new(0..0, "ideal".into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    name: Spanned<String>,
    url: Spanned<String>,
    #[serde(default = "default_api")]
    api: ApiKind,
    api_key_env: Option<Spanned<String>>,
    /// https only: a PEM file of CA certificates, relative to the config's directory.
    ca_file: Option<Spanned<String>>,
    /// https only: accept any certificate.
    tls_insecure: Option<Spanned<bool>>,
}

fn default_api() -> ApiKind {
    ApiKind::Ollama
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    id: Spanned<String>,
    label: Option<String>,
    #[serde(default)]
    system: String,
    endpoint: Spanned<String>,
    #[serde(default)]
    options: ModelOptions,
    calls: Spanned<Vec<RawCall>>,
    /// Ids of the agents this one starts after.
    after: Option<Spanned<Vec<Spanned<String>>>>,
    history: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    name: String,
    prompt: Spanned<String>,
    tool: Option<Spanned<RawTool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    name: Spanned<String>,
    /// A number of ms, or `{ min, max }`.
    latency_ms: Spanned<toml::Value>,
    /// Offer the tool through the API's `tools` (default true).
    #[serde(default)]
    offer: Option<bool>,
}

/// The embedded simulator's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimSettings {
    pub profile: String,
    pub device: String,
    /// `tls = true`: https, each `sim` endpoint's `ca_file` the simulator's certificate.
    #[serde(default)]
    pub tls: bool,
}

/// A validated configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub name: String,
    pub description: String,
    pub runs: u32,
    /// Backend names, or `None` for every backend this binary contains.
    pub backends: Option<Vec<BackendId>>,
    pub models: Vec<String>,
    pub scenarios: Vec<Scenario>,
    pub warmup_tokens: u32,
    pub shuffle_seed: Option<u64>,
    /// Options under every agent's scenario options (output length control).
    pub options: ModelOptions,
    pub client: ClientOptions,
    pub settings: CallSettings,
    pub simulator: Option<SimSettings>,
    pub endpoints: Vec<Endpoint>,
    /// The agents of every cell: the templates, already replicated when `agents = N`.
    pub agents: Vec<AgentTemplate>,
    /// `[scaling]`: the agent counts a scaling sweep runs each cell at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
    /// `prompt_cache`: `isolate` (the default: a per-invocation nonce leads every measured
    /// prompt) or `allow` (prompts repeat across invocations).
    #[serde(default)]
    pub prompt_cache: PromptCache,
}

/// A scaling sweep: every cell runs at each agent count (the count is part of the cell).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    /// Agent counts, ascending, distinct.
    pub agents: Vec<usize>,
}

impl Config {
    /// The agent counts cells run at: the sweep's, or `[None]` (the configured agents as they are).
    pub fn agent_counts(&self) -> Vec<Option<usize>> {
        match &self.scaling {
            Some(s) => s.agents.iter().map(|&n| Some(n)).collect(),
            None => vec![None],
        }
    }

    /// The agent templates of a cell with `count` agents (`None`: as configured): the
    /// configured templates replicated round-robin (ids `{id}-{i}`, seeds base + i,
    /// endpoints round-robin).
    pub fn templates_for(&self, count: Option<usize>) -> Vec<AgentTemplate> {
        match count {
            None => self.agents.clone(),
            Some(n) => replicate(&self.agents, n, &self.endpoints, self.options.seed),
        }
    }
}

/// Powers of two from 1 up to `max`, and `max` itself when it is not one.
pub(crate) fn powers_of_two_to(max: usize) -> Vec<usize> {
    let mut v: Vec<usize> = std::iter::successors(Some(1usize), |n| n.checked_mul(2))
        .take_while(|&n| n <= max)
        .collect();
    if v.last() != Some(&max) && max > 0 {
        v.push(max);
    }
    v
}

/// A config file's text and where it came from.
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    pub fn read(path: &Path) -> anyhow::Result<Source> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read config {}: {e}\n  hint: pass the path of a TOML file, e.g. bench-configs/quickstart.toml",
                path.display()
            )
        })?;
        Ok(Source {
            path: path.to_owned(),
            text,
        })
    }

    fn error(
        &self,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = line_col(&self.text, span.start);
        ConfigError {
            path: self.path.display().to_string(),
            line,
            column,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Parse and validate `src`: the TOML, then each part in the order its errors are reported
/// (the first problem found is the one reported).
pub fn parse(src: &Source) -> Result<Config, ConfigError> {
    let raw = read_toml(src)?;
    let name = name(src, &raw.name)?;
    let runs = runs(src, &raw.runs)?;
    let models = models(src, &raw.models)?;
    let cold_load_threshold_ms = cold_load_threshold_ms(src, &raw.cold_load_threshold_ms)?;
    let max_line_bytes = max_line_bytes(src, &raw.max_line_bytes)?;
    let scenarios = scenarios(src, &raw.scenarios)?;
    if let Some(o) = &raw.options {
        check_options(src, o.get_ref(), o.span())?;
    }
    let endpoints = endpoints(src, &raw.endpoints)?;
    let simulator = simulator(src, raw.simulator.as_ref(), &endpoints)?;
    let (agent_count, raw_agents) = agent_count(src, raw.agents.as_ref())?;
    let scaling = match &raw.scaling {
        None => None,
        Some(sc) => Some(scaling(src, sc, agent_count, raw.agents.as_ref())?),
    };
    let agents = agents(src, raw_agents, &endpoints)?;
    if raw.scaling.is_some() {
        if let Some(after) = raw_agents.iter().find_map(|a| a.after.as_ref()) {
            if !after.get_ref().is_empty() {
                return Err(src.error(
                    after.span(),
                    "`after` cannot be combined with [scaling]: a sweep replicates the agents under new ids, and a graph names its agents",
                    "drop [scaling] to run the graph as configured, or drop `after` to sweep independent agents",
                ));
            }
        }
    }
    let base_seed = raw.options.as_ref().and_then(|o| o.get_ref().seed);
    let agents = match agent_count {
        Some(n) => replicate(&agents, n, &endpoints, base_seed),
        None => agents,
    };
    let backends = backends(src, raw.backends.as_deref())?;
    let runaway_factor = runaway_factor(src, raw.runaway_factor.as_ref())?;
    let max_response_bytes = max_response_bytes(src, raw.max_response_bytes.as_ref())?;
    let (connect_timeout, timeouts) = timeouts(src, &raw.timeouts)?;
    Ok(Config {
        name,
        description: raw.description,
        runs,
        backends,
        models,
        scenarios,
        warmup_tokens: raw.warmup_tokens,
        shuffle_seed: raw.shuffle_seed,
        options: raw.options.map(Spanned::into_inner).unwrap_or_default(),
        client: ClientOptions {
            connect_timeout,
            connection: raw.connection,
        },
        settings: CallSettings {
            timeouts,
            max_line_bytes,
            cold_load_threshold_ms,
            runaway_factor,
            max_response_bytes,
        },
        simulator,
        endpoints,
        agents,
        scaling,
        prompt_cache: raw.prompt_cache,
    })
}

/// The file as TOML, every key known.
fn read_toml(src: &Source) -> Result<RawConfig, ConfigError> {
    toml::from_str(&src.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        src.error(
            span,
            e.message().to_owned(),
            "see docs/configs.md for every key and its default",
        )
    })
}

/// `name`: usable in a directory name.
fn name(src: &Source, raw: &Spanned<String>) -> Result<String, ConfigError> {
    let name = raw.get_ref().trim().to_owned();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(src.error(
            raw.span(),
            format!(
                "config name {:?} is not usable in a directory name",
                raw.get_ref()
            ),
            "use letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(name)
}

/// `runs`: 1 to [`MAX_RUNS`].
fn runs(src: &Source, raw: &Spanned<i64>) -> Result<u32, ConfigError> {
    let runs = *raw.get_ref();
    if !(1..=i64::from(MAX_RUNS)).contains(&runs) {
        return Err(src.error(
            raw.span(),
            format!("runs = {runs} is out of range"),
            format!("runs must be between 1 and {MAX_RUNS}"),
        ));
    }
    Ok(runs as u32)
}

/// `models`: at least one, none empty, none twice.
fn models(src: &Source, raw: &Spanned<Vec<Spanned<String>>>) -> Result<Vec<String>, ConfigError> {
    let list = raw.get_ref();
    if list.is_empty() {
        return Err(src.error(
            raw.span(),
            "no models listed",
            "list at least one model, e.g. models = [\"gemma3:latest\"]",
        ));
    }
    for (i, m) in list.iter().enumerate() {
        if m.get_ref().trim().is_empty() {
            return Err(src.error(
                m.span(),
                "a model name is empty",
                "use the name the server knows, e.g. \"gemma3:latest\" (Ollama) or the model id (OpenAI)",
            ));
        }
        if list[..i].iter().any(|x| x.get_ref() == m.get_ref()) {
            return Err(src.error(
                m.span(),
                format!("model {:?} is listed twice", m.get_ref()),
                "list each model once (a cell is backend × model × scenario; runs sets how often each is measured)",
            ));
        }
    }
    Ok(list.iter().map(|m| m.get_ref().clone()).collect())
}

/// `cold_load_threshold_ms`: a finite number of ms, at least 0.
fn cold_load_threshold_ms(src: &Source, raw: &Spanned<f64>) -> Result<f64, ConfigError> {
    let ms = *raw.get_ref();
    if !ms.is_finite() || ms < 0.0 {
        return Err(src.error(
            raw.span(),
            format!("cold_load_threshold_ms = {ms} is not a finite number of ms ≥ 0"),
            "e.g. cold_load_threshold_ms = 100 (the default): a load above it flags the call cold_load",
        ));
    }
    Ok(ms)
}

/// `max_line_bytes`: at least [`MIN_LINE_BYTES`].
fn max_line_bytes(src: &Source, raw: &Spanned<i64>) -> Result<usize, ConfigError> {
    let bytes = *raw.get_ref();
    if bytes < MIN_LINE_BYTES {
        return Err(src.error(
            raw.span(),
            format!("max_line_bytes = {bytes} is too small: every stream line would fail as line_too_long"),
            format!("use at least {MIN_LINE_BYTES}; the default is 1048576 (1 MiB)"),
        ));
    }
    Ok(bytes as usize)
}

/// `scenarios`: known names, each once, at least one.
fn scenarios(
    src: &Source,
    raw: &Spanned<Vec<Spanned<String>>>,
) -> Result<Vec<Scenario>, ConfigError> {
    let mut scenarios = Vec::new();
    for s in raw.get_ref() {
        let sc: Scenario =
            s.get_ref()
                .parse()
                .map_err(|e: chimeraforge_core::workload::UnknownScenario| {
                    src.error(
                    s.span(),
                    e.to_string(),
                    "scenarios are the report's: baseline-vs-chimera, chimera-hetero, chimera-homo",
                )
                })?;
        if scenarios.contains(&sc) {
            return Err(src.error(
                s.span(),
                format!("scenario {sc} is listed twice"),
                "list each scenario once",
            ));
        }
        scenarios.push(sc);
    }
    if scenarios.is_empty() {
        return Err(src.error(
            raw.span(),
            "no scenarios listed",
            "e.g. scenarios = [\"baseline-vs-chimera\", \"chimera-homo\"]",
        ));
    }
    Ok(scenarios)
}

/// `[[endpoints]]`: named, each name once, an http:// or https:// URL or `sim`, a usable key
/// variable; `ca_file` (a readable PEM with a certificate) and `tls_insecure` on https only.
fn endpoints(src: &Source, raw: &Spanned<Vec<RawEndpoint>>) -> Result<Vec<Endpoint>, ConfigError> {
    let mut endpoints: Vec<Endpoint> = Vec::new();
    for e in raw.get_ref() {
        let ename = e.name.get_ref().clone();
        if ename.trim().is_empty() {
            return Err(src.error(
                e.name.span(),
                "an endpoint name is empty",
                "name each endpoint (agents refer to it by name), e.g. name = \"ollama-11434\"",
            ));
        }
        if let Some(var) = &e.api_key_env {
            let v = var.get_ref();
            if v.is_empty() || v.contains(['=', '\0']) {
                return Err(src.error(
                    var.span(),
                    format!("endpoint {ename:?}: api_key_env = {v:?} is not an environment variable name"),
                    "name the variable that holds the key, e.g. api_key_env = \"OPENAI_API_KEY\" (the key itself never goes in the config)",
                ));
            }
        }
        if endpoints.iter().any(|x| x.name == ename) {
            return Err(src.error(
                e.name.span(),
                format!("endpoint {ename:?} is defined twice"),
                "give each endpoint a distinct name",
            ));
        }
        let url = e.url.get_ref().trim_end_matches('/').to_owned();
        if url != SIM_URL {
            check_url(&url).map_err(|why| {
                src.error(
                    e.url.span(),
                    format!("endpoint {ename:?}: {why}"),
                    "use http://HOST:PORT or https://HOST:PORT, or \"sim\" for an embedded simulator",
                )
            })?;
        }
        let https = url.starts_with("https://");
        let tls_insecure = e.tls_insecure.as_ref().is_some_and(|v| *v.get_ref());
        if let (Some(v), false) = (&e.tls_insecure, https) {
            if *v.get_ref() {
                return Err(src.error(
                    v.span(),
                    format!("endpoint {ename:?}: tls_insecure is for https endpoints; {url:?} is not one"),
                    "drop tls_insecure, or use an https:// URL",
                ));
            }
        }
        let ca_file = match &e.ca_file {
            None => None,
            Some(f) if !https => {
                return Err(src.error(
                    f.span(),
                    format!("endpoint {ename:?}: ca_file is for https endpoints; {url:?} is not one"),
                    "drop ca_file, or use an https:// URL",
                ))
            }
            Some(f) if tls_insecure => {
                return Err(src.error(
                    f.span(),
                    format!("endpoint {ename:?}: ca_file and tls_insecure = true together: with tls_insecure nothing is verified"),
                    "keep ca_file (the server's certificate is checked against it), or tls_insecure alone",
                ))
            }
            Some(f) => Some(ca_file(src, &ename, f)?),
        };
        endpoints.push(Endpoint {
            name: ename,
            base_url: url,
            api: e.api,
            api_key_env: e.api_key_env.as_ref().map(|v| v.get_ref().clone()),
            ca_file,
            tls_insecure,
        });
    }
    if endpoints.is_empty() {
        return Err(src.error(
            raw.span(),
            "no endpoints defined",
            "add [[endpoints]] with name and url",
        ));
    }
    Ok(endpoints)
}

/// An endpoint's `ca_file`: relative to the config's directory, a file that reads as PEM
/// with at least one certificate. Returned absolute, so a child process finds it too.
fn ca_file(src: &Source, endpoint: &str, raw: &Spanned<String>) -> Result<PathBuf, ConfigError> {
    let given = Path::new(raw.get_ref());
    let dir = src.path.parent().unwrap_or(Path::new(""));
    let path = dir.join(given);
    let path = std::path::absolute(&path).unwrap_or(path);
    let bad = |why: String| {
        src.error(
            raw.span(),
            format!("endpoint {endpoint:?}: ca_file {:?} {why}", raw.get_ref()),
            "point ca_file at a PEM file of the CA certificate(s) that signed the server's certificate (a relative path starts at the config file's directory)",
        )
    };
    let bytes = std::fs::read(&path)
        .map_err(|e| bad(format!("cannot be read ({}: {e})", path.display())))?;
    chimeraforge_core::tls::pem_certificates(&bytes)
        .map_err(|why| bad(format!("({}) {why}", path.display())))?;
    Ok(path)
}

/// `[simulator]`: a known profile and device; the quickstart's when an endpoint is `sim`
/// and the table is absent; none when no endpoint is simulated.
fn simulator(
    src: &Source,
    raw: Option<&Spanned<RawSimulator>>,
    endpoints: &[Endpoint],
) -> Result<Option<SimSettings>, ConfigError> {
    let uses_sim = endpoints.iter().any(|e| e.base_url == SIM_URL);
    Ok(match (raw, uses_sim) {
        (Some(s), _) => {
            let s = s.get_ref();
            chimeraforge_sim::SimConfig::profile(s.profile.get_ref()).map_err(|e| {
                src.error(
                    s.profile.span(),
                    e.to_string(),
                    "profiles: quickstart, gpu-like, null, fixed, reasoning",
                )
            })?;
            s.device
                .get_ref()
                .parse::<chimeraforge_sim::Device>()
                .map_err(|e| {
                    src.error(
                        s.device.span(),
                        e.to_string(),
                        "devices: ideal, serial, shared:CAPACITY_TOK_S",
                    )
                })?;
            Some(SimSettings {
                profile: s.profile.get_ref().clone(),
                device: s.device.get_ref().clone(),
                tls: s.tls,
            })
        }
        (None, true) => Some(SimSettings {
            profile: "quickstart".into(),
            device: "ideal".into(),
            tls: false,
        }),
        (None, false) => None,
    })
}

/// An agent count `what = n`: 1 to [`MAX_AGENTS`].
fn agent_count_in_range(
    src: &Source,
    n: i64,
    span: std::ops::Range<usize>,
    what: &str,
) -> Result<usize, ConfigError> {
    if (1..=MAX_AGENTS as i64).contains(&n) {
        Ok(n as usize)
    } else {
        Err(src.error(
            span,
            format!("{what} = {n} is out of range"),
            format!("an agent count is between 1 and {MAX_AGENTS}"),
        ))
    }
}

/// `agents`: `agents = N` (the count), or `[[agents]]` tables (not an empty list).
fn agent_count<'a>(
    src: &Source,
    raw: Option<&'a Spanned<RawAgents>>,
) -> Result<(Option<usize>, &'a [RawAgent]), ConfigError> {
    Ok(match raw {
        None => (None, &[]),
        Some(a) => match a.get_ref() {
            RawAgents::Count(n) => (
                Some(agent_count_in_range(src, *n, a.span(), "agents")?),
                &[],
            ),
            RawAgents::List(list) if list.is_empty() => {
                return Err(src.error(
                    a.span(),
                    "agents is an empty list",
                    "define agents with [[agents]] tables, or give a count: agents = 8",
                ))
            }
            RawAgents::List(list) => (None, list.as_slice()),
        },
    })
}

/// `[scaling]`: agent counts as a list or up to `max_agents`, not beside `agents = N`.
fn scaling(
    src: &Source,
    sc: &Spanned<RawScaling>,
    agent_count: Option<usize>,
    raw_agents: Option<&Spanned<RawAgents>>,
) -> Result<Scaling, ConfigError> {
    if let (Some(n), Some(a)) = (agent_count, raw_agents) {
        return Err(src.error(
            a.span(),
            format!("agents = {n} and [scaling] both set the number of agents"),
            "drop `agents = N` (the sweep replicates the agents itself), or drop [scaling]",
        ));
    }
    let s = sc.get_ref();
    let counts = match (&s.agents, &s.max_agents) {
        (Some(_), Some(m)) => {
            return Err(src.error(
                m.span(),
                "[scaling] sets both agents and max_agents",
                "use agents = [1, 2, 4] for a list, or max_agents = 64 for powers of two",
            ))
        }
        (None, None) => {
            return Err(src.error(
                sc.span(),
                "[scaling] names no agent counts",
                "add agents = [1, 2, 4, 8] or max_agents = 64",
            ))
        }
        (None, Some(m)) => powers_of_two_to(agent_count_in_range(
            src,
            *m.get_ref(),
            m.span(),
            "max_agents",
        )?),
        (Some(list), None) => {
            if list.get_ref().is_empty() {
                return Err(src.error(
                    list.span(),
                    "[scaling] agents is an empty list",
                    "e.g. agents = [1, 2, 4, 8]",
                ));
            }
            let mut counts: Vec<usize> = Vec::new();
            for n in list.get_ref() {
                let c = agent_count_in_range(src, *n.get_ref(), n.span(), "agents")?;
                if counts.contains(&c) {
                    return Err(src.error(
                        n.span(),
                        format!("agent count {c} is listed twice"),
                        "list each count once",
                    ));
                }
                counts.push(c);
            }
            counts.sort_unstable();
            counts
        }
    };
    Ok(Scaling { agents: counts })
}

/// `[[agents]]` tables (each id once, a defined endpoint, at least one call, valid
/// options), or the built-in agents when there are none.
fn agents(
    src: &Source,
    raw: &[RawAgent],
    endpoints: &[Endpoint],
) -> Result<Vec<AgentTemplate>, ConfigError> {
    if raw.is_empty() {
        return Ok(builtin_agents(endpoints));
    }
    let mut agents: Vec<AgentTemplate> = Vec::new();
    for a in raw {
        let id = a.id.get_ref().clone();
        if id.trim().is_empty() {
            return Err(src.error(
                a.id.span(),
                "an agent id is empty",
                "give each agent a distinct id, e.g. id = \"planner\"",
            ));
        }
        if agents.iter().any(|x| x.id == id) {
            return Err(src.error(
                a.id.span(),
                format!("agent id {id:?} is used twice"),
                "give each agent a distinct id",
            ));
        }
        let endpoint = endpoints
            .iter()
            .find(|e| &e.name == a.endpoint.get_ref())
            .cloned()
            .ok_or_else(|| {
                let names: Vec<_> = endpoints.iter().map(|e| e.name.as_str()).collect();
                src.error(
                    a.endpoint.span(),
                    format!(
                        "agent {id:?} names endpoint {:?}, which is not defined",
                        a.endpoint.get_ref()
                    ),
                    format!("defined endpoints: {}", names.join(", ")),
                )
            })?;
        if a.calls.get_ref().is_empty() {
            return Err(src.error(
                a.calls.span(),
                format!("agent {id:?} makes no calls"),
                "add at least one call: calls = [{ name = \"analysis\", prompt = \"...\" }]",
            ));
        }
        check_options(src, &a.options, a.id.span())?;
        let chat = matches!(endpoint.api, ApiKind::Ollama | ApiKind::OpenaiChat);
        let history = a.history.as_ref().is_some_and(|h| *h.get_ref());
        if let (false, Some(h)) = (chat, a.history.as_ref().filter(|h| *h.get_ref())) {
            return Err(src.error(
                h.span(),
                format!(
                    "agent {id:?}: history needs a chat API, and endpoint {:?} uses {}",
                    endpoint.name,
                    endpoint.api.path()
                ),
                "use an endpoint with api = \"ollama\" (/api/chat) or \"openai-chat\", or drop history",
            ));
        }
        let after: Vec<String> = a
            .after
            .as_ref()
            .map(|l| l.get_ref().iter().map(|x| x.get_ref().clone()).collect())
            .unwrap_or_default();
        let calls = calls(src, &id, a.calls.get_ref(), &endpoint, chat, &after)?;
        agents.push(AgentTemplate {
            label: a.label.clone().unwrap_or_else(|| id.clone()),
            id,
            system: a.system.clone(),
            endpoint,
            options: a.options.clone(),
            calls,
            after,
            history,
        });
    }
    graph(src, raw, &agents)?;
    Ok(agents)
}

/// An agent's calls: tool steps only on a chat API and not on the last call, valid latencies,
/// `{output:ID}` only for an ID in the agent's `after`.
fn calls(
    src: &Source,
    id: &str,
    raw: &[RawCall],
    endpoint: &Endpoint,
    chat: bool,
    after: &[String],
) -> Result<Vec<CallSpec>, ConfigError> {
    let mut calls = Vec::with_capacity(raw.len());
    for (i, c) in raw.iter().enumerate() {
        let prompt = c.prompt.get_ref();
        if let Some(missing) = output_placeholders(prompt)
            .into_iter()
            .find(|o| !after.iter().any(|a| a == o))
        {
            return Err(src.error(
                c.prompt.span(),
                format!(
                    "agent {id:?}, call {:?}: {{output:{missing}}} names an agent this one does not run after",
                    c.name
                ),
                format!("add {missing:?} to the agent's after list (after = [\"{missing}\"]), so its answer exists when this call is sent"),
            ));
        }
        let tool = match &c.tool {
            None => None,
            Some(t) => {
                if !chat {
                    return Err(src.error(
                        t.span(),
                        format!(
                            "agent {id:?}, call {:?}: a tool step needs a chat API, and endpoint {:?} uses {}",
                            c.name, endpoint.name, endpoint.api.path()
                        ),
                        "use an endpoint with api = \"ollama\" (/api/chat) or \"openai-chat\", or drop the tool step",
                    ));
                }
                if i + 1 == raw.len() {
                    return Err(src.error(
                        t.span(),
                        format!(
                            "agent {id:?}: its last call {:?} has a tool step, and no call follows to send the tool's result to",
                            c.name
                        ),
                        "add a call after it (its prompt can use {previous}), or move the tool step to an earlier call",
                    ));
                }
                Some(tool_step(src, t.get_ref())?)
            }
        };
        calls.push(CallSpec {
            name: c.name.clone(),
            prompt: prompt.clone(),
            tool,
        });
    }
    Ok(calls)
}

/// `tool = { name, latency_ms = N | { min, max } }`: a name, finite latencies in
/// 0..=[`MAX_TIMEOUT_MS`], min ≤ max.
fn tool_step(src: &Source, t: &RawTool) -> Result<ToolStep, ConfigError> {
    let name = t.name.get_ref().trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
    {
        return Err(src.error(
            t.name.span(),
            format!("tool name {:?} is not a function name", t.name.get_ref()),
            "use letters, digits, '_' or '-', e.g. name = \"web_search\"",
        ));
    }
    let hint = "latency_ms is a number of ms (latency_ms = 200) or a range drawn uniformly per run (latency_ms = { min = 100, max = 300 }), each between 0 and 86400000";
    let bad = |what: String| Err(src.error(t.latency_ms.span(), what, hint));
    let number = |v: &toml::Value| match v {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => None,
    };
    let in_range = |ms: f64| ms.is_finite() && (0.0..=MAX_TIMEOUT_MS as f64).contains(&ms);
    let latency = match t.latency_ms.get_ref() {
        toml::Value::Table(range) => {
            if let Some(k) = range.keys().find(|k| *k != "min" && *k != "max") {
                return bad(format!("latency_ms has an unknown key {k:?}"));
            }
            match (
                range.get("min").and_then(number),
                range.get("max").and_then(number),
            ) {
                (Some(min), Some(max)) => Latency::Uniform { min, max },
                _ => return bad("latency_ms = { ... } needs numbers min and max".into()),
            }
        }
        v => match number(v) {
            Some(ms) => Latency::Fixed(ms),
            None => return bad(format!("latency_ms = {v} is not a number of ms")),
        },
    };
    match latency {
        Latency::Fixed(ms) if !in_range(ms) => {
            return bad(format!("latency_ms = {ms} is not a number of ms ≥ 0"))
        }
        Latency::Uniform { min, max } if !in_range(min) || !in_range(max) => {
            return bad(format!(
                "latency_ms = {{ min = {min}, max = {max} }} is not a range of ms ≥ 0"
            ))
        }
        Latency::Uniform { min, max } if min > max => {
            return bad(format!("latency_ms has min = {min} above max = {max}"))
        }
        _ => {}
    }
    Ok(ToolStep {
        name: name.to_owned(),
        latency_ms: latency,
        offer: t.offer.unwrap_or(true),
    })
}

/// The agents' `after` lists form a graph that can run: known ids, no agent after itself, no
/// cycle. Errors point at the offending agent's `after`.
fn graph(src: &Source, raw: &[RawAgent], agents: &[AgentTemplate]) -> Result<(), ConfigError> {
    let Err(e) = Graph::from_ids(agents.iter().map(|a| (a.id.as_str(), a.after.as_slice()))) else {
        return Ok(());
    };
    let (agent, hint) = match &e {
        GraphError::UnknownAgent { agent, .. } => (
            agent.clone(),
            format!(
                "after lists agent ids of this config: {}",
                agents.iter().map(|a| a.id.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ),
        GraphError::SelfDependency { agent } => (
            agent.clone(),
            "remove the agent's own id from its after list".to_owned(),
        ),
        GraphError::Cycle { cycle } => (
            cycle[0].clone(),
            "an agent cannot wait, directly or through others, on itself: remove one id from one of these after lists".to_owned(),
        ),
    };
    let span = raw
        .iter()
        .find(|a| *a.id.get_ref() == agent)
        .and_then(|a| a.after.as_ref())
        .map_or(0..0, |l| l.span());
    Err(src.error(span, e.to_string(), hint))
}

/// `backends`: known names, each once; `None` (every backend this binary can run) when
/// absent or when it lists `all`.
fn backends(
    src: &Source,
    raw: Option<&[Spanned<String>]>,
) -> Result<Option<Vec<BackendId>>, ConfigError> {
    let Some(list) = raw else {
        return Ok(None);
    };
    for (i, b) in list.iter().enumerate() {
        let n = b.get_ref();
        if n != "all" && !crate::backends::ALL_NAMES.contains(&n.as_str()) {
            return Err(src.error(
                b.span(),
                format!("unknown backend {n:?}"),
                format!("backends: all, {}", crate::backends::ALL_NAMES.join(", ")),
            ));
        }
        if list[..i].iter().any(|x| x.get_ref() == n) {
            return Err(src.error(
                b.span(),
                format!("backend {n:?} is listed twice"),
                "list each backend once (a cell is backend × model × scenario)",
            ));
        }
    }
    Ok((!list.iter().any(|n| n.get_ref() == "all"))
        .then(|| list.iter().map(|s| BackendId::new(s.get_ref())).collect()))
}

/// `runaway_factor`: finite, at least 1; core's default when absent.
fn runaway_factor(src: &Source, raw: Option<&Spanned<f64>>) -> Result<f64, ConfigError> {
    match raw {
        Some(f) if !(f.get_ref().is_finite() && *f.get_ref() >= 1.0) => Err(src.error(
            f.span(),
            format!(
                "runaway_factor = {} is not a finite number of at least 1: every call that generates its full num_predict would fail as runaway_stream",
                f.get_ref()
            ),
            "a call fails as runaway_stream after runaway_factor x num_predict text events; \
             use a finite number of at least 1, e.g. runaway_factor = 4",
        )),
        Some(f) => Ok(*f.get_ref()),
        None => Ok(chimeraforge_core::call::DEFAULT_RUNAWAY_FACTOR),
    }
}

/// `max_response_bytes`: at least [`MIN_RESPONSE_BYTES`]; core's default when absent.
fn max_response_bytes(src: &Source, raw: Option<&Spanned<i64>>) -> Result<u64, ConfigError> {
    match raw {
        Some(b) if *b.get_ref() < MIN_RESPONSE_BYTES => Err(src.error(
            b.span(),
            format!(
                "max_response_bytes = {} is below {MIN_RESPONSE_BYTES}: a call of a few hundred tokens would not fit and every call would fail as runaway_stream",
                b.get_ref()
            ),
            "a call fails as runaway_stream after this many body bytes; use a size above 0, \
             e.g. max_response_bytes = 67108864 (64 MiB)",
        )),
        Some(b) => Ok(*b.get_ref() as u64),
        None => Ok(chimeraforge_core::call::DEFAULT_MAX_RESPONSE_BYTES),
    }
}

/// `[timeouts]`: each 1 ms to a day; the connect timeout (the client's) and the call's,
/// defaults where absent.
fn timeouts(src: &Source, t: &RawTimeouts) -> Result<(Duration, Timeouts), ConfigError> {
    for (key, v) in [
        ("connect_ms", &t.connect_ms),
        ("first_byte_ms", &t.first_byte_ms),
        ("idle_ms", &t.idle_ms),
        ("total_ms", &t.total_ms),
    ] {
        let Some(v) = v else { continue };
        let n = *v.get_ref();
        if !(1..=MAX_TIMEOUT_MS).contains(&n) {
            return Err(src.error(
                v.span(),
                format!("[timeouts] {key} = {n} is out of range: {}", if n <= 0 { "every call would time out at once" } else { "longer than a day" }),
                format!("a timeout is between 1 and {MAX_TIMEOUT_MS} ms (a day); the defaults are in docs/configs.md"),
            ));
        }
    }
    let defaults = Timeouts::default();
    let ms = |v: &Option<Spanned<i64>>, d: Duration| {
        v.as_ref()
            .map(|v| Duration::from_millis(*v.get_ref() as u64))
            .unwrap_or(d)
    };
    let connect = ms(&t.connect_ms, ClientOptions::default().connect_timeout);
    let timeouts = Timeouts {
        first_byte: ms(&t.first_byte_ms, defaults.first_byte),
        idle: ms(&t.idle_ms, defaults.idle),
        total: ms(&t.total_ms, defaults.total),
    };
    Ok((connect, timeouts))
}

fn check_url(url: &str) -> Result<(), String> {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(format!("{url:?} is not an http:// or https:// URL"));
    };
    let host_port = rest.split('/').next().unwrap_or("");
    let port = host_port.rsplit_once(':').map(|(_, p)| p);
    match port {
        Some(p) if p.parse::<u16>().is_ok_and(|p| p > 0) => Ok(()),
        Some(p) => Err(format!("port {p:?} is not a valid port (1-65535)")),
        None if !host_port.is_empty() => Ok(()),
        None => Err("the URL has no host".into()),
    }
}

fn check_options(
    src: &Source,
    o: &ModelOptions,
    span: std::ops::Range<usize>,
) -> Result<(), ConfigError> {
    let bad =
        |what: String| Err(src.error(span.clone(), what, "see docs/configs.md for valid ranges"));
    if let Some(t) = o.temperature {
        if !(0.0..=2.0).contains(&t) {
            return bad(format!("temperature {t} is outside 0..=2"));
        }
    }
    if let Some(p) = o.top_p {
        if !(0.0..=1.0).contains(&p) {
            return bad(format!("top_p {p} is outside 0..=1"));
        }
    }
    if let Some(r) = o.repeat_penalty {
        if !r.is_finite() || r < 0.0 {
            return bad(format!("repeat_penalty {r} is not a finite number ≥ 0"));
        }
    }
    if o.num_predict == Some(0) {
        return bad("num_predict = 0 would generate nothing".into());
    }
    if o.num_ctx == Some(0) {
        return bad("num_ctx = 0 is not a context size".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(&Source {
            path: "t.toml".into(),
            text: text.into(),
        })
    }

    const OK: &str = r#"
name = "t"
runs = 2
models = ["gemma3:latest"]
scenarios = ["baseline-vs-chimera", "chimera-homo"]
[options]
num_predict = 64
seed = 42
[[endpoints]]
name = "a"
url = "sim"
[[endpoints]]
name = "b"
url = "http://127.0.0.1:11435"
"#;

    #[test]
    fn valid_config_parses_with_builtin_agents() {
        let c = parse_str(OK).unwrap();
        assert_eq!(c.runs, 2);
        assert_eq!(c.agents.len(), 2);
        assert_eq!(c.agents[1].endpoint.base_url, "http://127.0.0.1:11435");
        assert_eq!(c.simulator.unwrap().profile, "quickstart");
        assert_eq!(c.options.num_predict, Some(64));
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let e = parse_str(&OK.replace("runs = 2", "runs = 2\nrunz = 3")).unwrap_err();
        assert_eq!((e.line, e.column), (4, 1), "{e}");
        assert!(e.message.contains("runz"), "{e}");
    }

    #[test]
    fn unknown_scenario_points_at_it() {
        let e = parse_str(&OK.replace("\"chimera-homo\"", "\"chimera-homogeneous\"")).unwrap_err();
        assert_eq!(e.line, 5);
        assert!(e.message.contains("chimera-homogeneous"), "{e}");
        assert!(e.hint.contains("chimera-homo"));
    }

    #[test]
    fn zero_runs_rejected() {
        let e = parse_str(&OK.replace("runs = 2", "runs = 0")).unwrap_err();
        assert!(e.message.contains("runs = 0"), "{e}");
    }

    #[test]
    fn agent_naming_missing_endpoint_rejected() {
        let text = format!("{OK}\n[[agents]]\nid = \"x\"\nendpoint = \"zzz\"\ncalls = [{{ name = \"c\", prompt = \"p\" }}]\n");
        let e = parse_str(&text).unwrap_err();
        assert!(e.message.contains("zzz") && e.hint.contains("a, b"), "{e}");
    }

    #[test]
    fn duplicate_agent_ids_rejected() {
        let agent = "\n[[agents]]\nid = \"x\"\nendpoint = \"a\"\ncalls = [{ name = \"c\", prompt = \"p\" }]\n";
        let e = parse_str(&format!("{OK}{agent}{agent}")).unwrap_err();
        assert!(e.message.contains("used twice"), "{e}");
    }

    #[test]
    fn bad_port_rejected_and_https_accepted() {
        let e = parse_str(&OK.replace("11435", "99999")).unwrap_err();
        assert!(e.message.contains("99999"), "{e}");
        let e = parse_str(&OK.replace("http://127.0.0.1:11435", "https://127.0.0.1:99999"))
            .unwrap_err();
        assert!(e.message.contains("99999"), "{e}");
        let e = parse_str(&OK.replace("http://127", "ftp://127")).unwrap_err();
        assert!(e.message.contains("https://"), "{e}");
        let c = parse_str(&OK.replace("http://127", "https://127")).unwrap();
        assert_eq!(c.endpoints[1].base_url, "https://127.0.0.1:11435");
        assert_eq!(
            (c.endpoints[1].ca_file.as_ref(), c.endpoints[1].tls_insecure),
            (None, false)
        );
    }

    /// `OK` with `extra` lines in endpoint "b"'s table, read as `dir/t.toml`.
    fn parse_in(dir: &Path, https: bool, extra: &str) -> Result<Config, ConfigError> {
        let url = if https {
            "https://127.0.0.1:11435"
        } else {
            "http://127.0.0.1:11435"
        };
        let text = OK.replace(
            "url = \"http://127.0.0.1:11435\"",
            &format!("url = \"{url}\"\n{extra}"),
        );
        parse(&Source {
            path: dir.join("t.toml"),
            text,
        })
    }

    /// A self-signed certificate, PEM (made once, by the simulator's TLS).
    fn some_ca_pem() -> String {
        let mut cfg = chimeraforge_sim::SimConfig::profile("null").unwrap();
        cfg.tls = true;
        let sim = chimeraforge_sim::SimServer::start(cfg, chimeraforge_sim::loopback(0)).unwrap();
        sim.ca_pem().unwrap().to_owned()
    }

    #[test]
    fn ca_file_is_read_relative_to_the_config_and_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("certs")).unwrap();
        std::fs::write(dir.path().join("certs/ca.pem"), some_ca_pem()).unwrap();
        let c = parse_in(dir.path(), true, "ca_file = \"certs/ca.pem\"").unwrap();
        let got = c.endpoints[1].ca_file.clone().unwrap();
        assert!(got.is_absolute(), "{}", got.display());
        assert_eq!(
            std::fs::read(&got).unwrap(),
            std::fs::read(dir.path().join("certs/ca.pem")).unwrap()
        );

        // Missing, not PEM, PEM without a certificate: each at the key's line and column.
        let e = parse_in(dir.path(), true, "ca_file = \"certs/nope.pem\"").unwrap_err();
        assert!(
            e.message.contains("nope.pem") && e.message.contains("cannot be read"),
            "{e}"
        );
        assert_eq!((e.line, e.column), (15, 11), "{e}");
        std::fs::write(
            dir.path().join("junk.pem"),
            "-----BEGIN CERTIFICATE-----\n!!!\n",
        )
        .unwrap();
        let e = parse_in(dir.path(), true, "ca_file = \"junk.pem\"").unwrap_err();
        assert!(e.message.contains("not valid PEM"), "{e}");
        std::fs::write(dir.path().join("empty.pem"), "nothing here\n").unwrap();
        let e = parse_in(dir.path(), true, "ca_file = \"empty.pem\"").unwrap_err();
        assert!(e.message.contains("no certificate"), "{e}");
        assert!(e.hint.contains("PEM"), "{e}");
    }

    #[test]
    fn tls_keys_only_on_https_and_not_together() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), some_ca_pem()).unwrap();
        let e = parse_in(dir.path(), false, "ca_file = \"ca.pem\"").unwrap_err();
        assert!(e.message.contains("ca_file is for https"), "{e}");
        let e = parse_in(dir.path(), false, "tls_insecure = true").unwrap_err();
        assert!(e.message.contains("tls_insecure is for https"), "{e}");
        assert_eq!((e.line, e.column), (15, 16), "{e}");
        let e = parse_in(
            dir.path(),
            true,
            "tls_insecure = true\nca_file = \"ca.pem\"",
        )
        .unwrap_err();
        assert!(e.message.contains("together"), "{e}");
        let c = parse_in(dir.path(), true, "tls_insecure = true").unwrap();
        assert!(c.endpoints[1].tls_insecure);
        // false is the default, said out loud: fine anywhere.
        parse_in(dir.path(), false, "tls_insecure = false").unwrap();
    }

    #[test]
    fn simulator_tls_is_read() {
        let c = parse_str(&format!("{OK}\n[simulator]\ntls = true\n")).unwrap();
        assert!(c.simulator.unwrap().tls);
        assert!(!parse_str(OK).unwrap().simulator.unwrap().tls);
    }

    #[test]
    fn temperature_range_checked() {
        let e = parse_str(&OK.replace("seed = 42", "seed = 42\ntemperature = 5.0")).unwrap_err();
        assert!(e.message.contains("temperature"), "{e}");
    }

    #[test]
    fn agent_count_replicates_builtin_agents_round_robin() {
        let c = parse_str(&OK.replace("runs = 2", "runs = 2\nagents = 5")).unwrap();
        assert_eq!(c.agents.len(), 5);
        assert_eq!(c.agents[3].id, "insight-3");
        assert_eq!(c.agents[3].options.seed, Some(45));
        assert_eq!(c.agents[2].endpoint.name, "a");
        assert_eq!(c.agents[3].endpoint.name, "b");
        assert_eq!(c.agent_counts(), vec![None]);
    }

    #[test]
    fn agent_count_out_of_range_is_located() {
        let e = parse_str(&OK.replace("runs = 2", "runs = 2\nagents = 0")).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("agents = 0"), "{e}");
        let e = parse_str(&OK.replace("runs = 2", "runs = 2\nagents = \"many\"")).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
    }

    #[test]
    fn custom_agents_still_parse_as_tables() {
        let agent = "\n[[agents]]\nid = \"x\"\nendpoint = \"b\"\ncalls = [{ name = \"c\", prompt = \"p\" }]\n";
        let c = parse_str(&format!("{OK}{agent}")).unwrap();
        assert_eq!(c.agents.len(), 1);
        assert_eq!(c.agents[0].endpoint.name, "b");
        let text =
            format!("{OK}\n[[agents]]\nid = \"x\"\nendpoint = \"b\"\nbogus = 1\ncalls = []\n");
        let e = parse_str(&text).unwrap_err();
        assert!(e.message.contains("bogus"), "{e}");
        assert_eq!(e.line, 19, "{e}");
    }

    #[test]
    fn scaling_sweeps_agent_counts() {
        let c = parse_str(&format!("{OK}\n[scaling]\nmax_agents = 8\n")).unwrap();
        let counts = c.agent_counts();
        assert_eq!(counts, vec![Some(1), Some(2), Some(4), Some(8)]);
        let t = c.templates_for(Some(8));
        assert_eq!(t.len(), 8);
        assert_eq!(t[7].id, "insight-7");
        assert_eq!(c.templates_for(None).len(), 2);
        let c = parse_str(&format!("{OK}\n[scaling]\nagents = [4, 1]\n")).unwrap();
        assert_eq!(c.scaling.unwrap().agents, vec![1, 4]);
        assert_eq!(powers_of_two_to(12), vec![1, 2, 4, 8, 12]);
    }

    #[test]
    fn scaling_errors_are_located() {
        let e = parse_str(&format!("{OK}\n[scaling]\nagents = [1, 2, 2]\n")).unwrap_err();
        assert_eq!(e.line, 17, "{e}");
        assert!(e.message.contains("twice"), "{e}");
        let e = parse_str(&format!("{OK}\n[scaling]\nmax_agents = 0\n")).unwrap_err();
        assert!(e.message.contains("max_agents = 0"), "{e}");
        let e = parse_str(&format!("{OK}\n[scaling]\n")).unwrap_err();
        assert!(e.message.contains("no agent counts"), "{e}");
        let both = OK.replace("runs = 2", "runs = 2\nagents = 4");
        let e = parse_str(&format!("{both}\n[scaling]\nmax_agents = 4\n")).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
    }

    /// The error for `OK` with `from` replaced by `to`, located at `line` and naming `what`.
    fn rejected_at(from: &str, to: &str, line: usize, what: &str) -> ConfigError {
        assert!(OK.contains(from), "{from}");
        let e = parse_str(&OK.replacen(from, to, 1)).unwrap_err();
        assert_eq!(e.line, line, "{to}: {e}");
        assert!(e.column > 1, "{to}: points at the value: {e}");
        assert!(e.message.contains(what), "{to}: {e}");
        assert!(!e.hint.is_empty(), "{to}: {e}");
        e
    }

    #[test]
    fn non_finite_or_negative_cold_load_threshold_is_located() {
        for v in ["nan", "inf", "-inf", "-1.0"] {
            let e = rejected_at(
                "runs = 2",
                &format!("runs = 2\ncold_load_threshold_ms = {v}"),
                4,
                "cold_load_threshold_ms",
            );
            assert!(e.hint.contains("100"), "{e}");
        }
        let c = parse_str(&OK.replace("runs = 2", "runs = 2\ncold_load_threshold_ms = 0")).unwrap();
        assert_eq!(c.settings.cold_load_threshold_ms, 0.0);
    }

    #[test]
    fn zero_and_huge_timeouts_are_located() {
        for key in ["connect_ms", "first_byte_ms", "idle_ms", "total_ms"] {
            for v in ["0", "-5", "86400001"] {
                rejected_at(
                    "[[endpoints]]",
                    &format!("[timeouts]\n{key} = {v}\n[[endpoints]]"),
                    10,
                    key,
                );
            }
        }
        let c = parse_str(&OK.replacen(
            "[[endpoints]]",
            "[timeouts]\nconnect_ms = 1\ntotal_ms = 86400000\n[[endpoints]]",
            1,
        ))
        .unwrap();
        assert_eq!(c.client.connect_timeout, Duration::from_millis(1));
        assert_eq!(c.settings.timeouts.total, Duration::from_secs(86_400));
    }

    #[test]
    fn a_max_line_bytes_no_line_fits_is_located() {
        for v in ["0", "-1", "1023"] {
            let e = rejected_at(
                "runs = 2",
                &format!("runs = 2\nmax_line_bytes = {v}"),
                4,
                "max_line_bytes",
            );
            assert!(e.hint.contains("1024"), "{e}");
        }
        let c = parse_str(&OK.replace("runs = 2", "runs = 2\nmax_line_bytes = 1024")).unwrap();
        assert_eq!(c.settings.max_line_bytes, 1024);
    }

    #[test]
    fn a_model_listed_twice_or_empty_is_located() {
        let e = rejected_at(
            "models = [\"gemma3:latest\"]",
            "models = [\"gemma3:latest\", \"gemma3:latest\"]",
            4,
            "listed twice",
        );
        assert_eq!(e.column, 28, "the second one: {e}");
        rejected_at(
            "models = [\"gemma3:latest\"]",
            "models = [\" \"]",
            4,
            "empty",
        );
    }

    #[test]
    fn a_backend_listed_twice_is_located() {
        rejected_at(
            "runs = 2",
            "runs = 2\nbackends = [\"tokio-default\", \"tokio-default\"]",
            4,
            "listed twice",
        );
    }

    #[test]
    fn empty_endpoint_names_agent_ids_and_key_variables_are_located() {
        rejected_at("name = \"a\"", "name = \"\"", 10, "endpoint name is empty");
        rejected_at(
            "url = \"sim\"",
            "url = \"sim\"\napi_key_env = \"\"",
            12,
            "not an environment variable name",
        );
        rejected_at(
            "url = \"sim\"",
            "url = \"sim\"\napi_key_env = \"A=B\"",
            12,
            "not an environment variable name",
        );
        let agent = "\n[[agents]]\nid = \"\"\nendpoint = \"a\"\ncalls = [{ name = \"c\", prompt = \"p\" }]\n";
        let e = parse_str(&format!("{OK}{agent}")).unwrap_err();
        assert_eq!(e.line, 17, "{e}");
        assert!(e.message.contains("agent id is empty"), "{e}");
    }

    #[test]
    fn a_non_finite_repeat_penalty_is_rejected() {
        for v in ["nan", "inf"] {
            let e =
                parse_str(&OK.replace("seed = 42", &format!("seed = 42\nrepeat_penalty = {v}")))
                    .unwrap_err();
            assert!(e.message.contains("repeat_penalty"), "{e}");
        }
    }

    #[test]
    fn runaway_caps_parse_default_and_are_validated() {
        let c = parse_str(OK).unwrap();
        assert_eq!(c.settings.runaway_factor, 4.0);
        assert_eq!(c.settings.max_response_bytes, 64 << 20);
        let set = OK.replace(
            "runs = 2",
            "runs = 2\nrunaway_factor = 2.5\nmax_response_bytes = 100000",
        );
        let c = parse_str(&set).unwrap();
        assert_eq!(c.settings.runaway_factor, 2.5);
        assert_eq!(c.settings.max_response_bytes, 100000);
        assert_eq!(c.settings.token_cap(Some(10)), 25);
        for bad in ["nan", "inf", "-inf", "0", "-1.5", "0.5"] {
            let text = OK.replace("runs = 2", &format!("runs = 2\nrunaway_factor = {bad}"));
            let e = parse_str(&text).unwrap_err();
            assert_eq!((e.line, e.column), (4, 18), "{bad}: {e}");
            assert!(e.message.contains("runaway_factor"), "{bad}: {e}");
            assert!(e.hint.contains("runaway_factor = 4"), "{bad}: {e}");
        }
        for bad in ["0", "-5", "65535"] {
            let text = OK.replace("runs = 2", &format!("runs = 2\nmax_response_bytes = {bad}"));
            let e = parse_str(&text).unwrap_err();
            assert_eq!((e.line, e.column), (4, 22), "{bad}: {e}");
            assert!(e.message.contains("max_response_bytes"), "{bad}: {e}");
        }
    }

    #[test]
    fn malformed_toml_is_located() {
        let e = parse_str("name = \"t\"\nruns = [\n").unwrap_err();
        assert!(e.line >= 2, "{e}");
    }

    #[test]
    fn think_is_an_option_globally_and_per_agent_and_a_bad_value_is_located() {
        use chimeraforge_core::workload::{Effort, Think};
        let c = parse_str(&OK.replace("seed = 42\n", "seed = 42\nthink = true\n")).unwrap();
        assert_eq!(c.options.think, Some(Think::On(true)));
        let agents = r#"
[[agents]]
id = "x"
endpoint = "a"
options = { think = "low" }
calls = [{ name = "c", prompt = "p" }]
"#;
        let c = parse_str(&format!("{OK}{agents}")).unwrap();
        assert_eq!(c.agents[0].options.think, Some(Think::Effort(Effort::Low)));
        let e = parse_str(&OK.replace("seed = 42\n", "seed = 42\nthink = \"max\"\n")).unwrap_err();
        assert_eq!((e.line, e.column), (9, 9), "{e}");
        assert!(e.message.contains("\"medium\""), "{e}");
    }

    /// `OK` (endpoint a: Ollama chat, b: Ollama chat) plus these agents; endpoint "g" uses
    /// /api/generate.
    fn with_agents(agents: &str) -> String {
        format!(
            "{OK}[[endpoints]]\nname = \"g\"\nurl = \"sim\"\napi = \"ollama-generate\"\n{agents}"
        )
    }

    const GRAPH: &str = r#"
[[agents]]
id = "orch"
endpoint = "a"
calls = [{ name = "plan", prompt = "Plan." }]

[[agents]]
id = "w"
endpoint = "b"
after = ["orch"]
history = true
calls = [
  { name = "look", prompt = "Look at {output:orch}", tool = { name = "web_search", latency_ms = 200 } },
  { name = "answer", prompt = "Answer." },
]

[[agents]]
id = "agg"
endpoint = "a"
after = ["w", "orch"]
calls = [{ name = "sum", prompt = "Sum {output:w} and {output:orch}", tool = { name = "t", latency_ms = { min = 1, max = 2.5 } } }, { name = "end", prompt = "End." }]
"#;

    /// The error for `GRAPH` (after `OK`) with `from` replaced by `to`, at the line of `at`
    /// (the first line of the file containing it, after the replacement) and naming `what`.
    fn graph_rejected(from: &str, to: &str, at: &str, what: &str) -> ConfigError {
        assert!(GRAPH.contains(from), "{from}");
        let text = with_agents(&GRAPH.replacen(from, to, 1));
        let e = parse_str(&text).unwrap_err();
        let line = text.lines().position(|l| l.contains(at)).unwrap() + 1;
        assert_eq!(e.line, line, "{to}: {e}");
        assert!(e.message.contains(what), "{to}: {e}");
        assert!(!e.hint.is_empty(), "{to}: {e}");
        e
    }

    #[test]
    fn a_graph_with_tools_history_and_outputs_parses() {
        let c = parse_str(&with_agents(GRAPH)).unwrap();
        let [orch, w, agg] = c.agents.as_slice() else {
            panic!("{:?}", c.agents)
        };
        assert!(orch.after.is_empty() && !orch.history);
        assert_eq!(w.after, ["orch"]);
        assert!(w.history);
        assert_eq!(
            w.calls[0].tool,
            Some(ToolStep {
                name: "web_search".into(),
                latency_ms: Latency::Fixed(200.0),
                offer: true,
            })
        );
        assert_eq!(w.calls[1].tool, None);
        assert_eq!(agg.after, ["w", "orch"]);
        assert_eq!(
            agg.calls[0].tool.as_ref().unwrap().latency_ms,
            Latency::Uniform { min: 1.0, max: 2.5 }
        );
    }

    #[test]
    fn unknown_self_and_cyclic_dependencies_point_at_after() {
        let orch = "endpoint = \"a\"\ncalls = [{ name = \"plan\"";
        let e = graph_rejected(
            orch,
            "endpoint = \"a\"\nafter = [\"orc\"]\ncalls = [{ name = \"plan\"",
            "after = [\"orc\"]",
            "\"orc\", which is not an agent",
        );
        assert!(e.hint.contains("orch, w, agg"), "{e}");
        assert!(e.column > 1, "{e}");
        graph_rejected(
            orch,
            "endpoint = \"a\"\nafter = [\"orch\"]\ncalls = [{ name = \"plan\"",
            "after = [\"orch\"]",
            "runs after itself",
        );
        let e = graph_rejected(
            "endpoint = \"a\"\ncalls = [{ name = \"plan\"",
            "endpoint = \"a\"\nafter = [\"agg\"]\ncalls = [{ name = \"plan\"",
            "after = [\"agg\"]",
            "orch -> w -> agg -> orch",
        );
        assert!(e.hint.contains("cycle") || e.hint.contains("itself"), "{e}");
    }

    #[test]
    fn an_output_placeholder_needs_its_agent_in_after() {
        let e = graph_rejected(
            "after = [\"w\", \"orch\"]",
            "after = [\"w\"]",
            "Sum {output:w}",
            "{output:orch}",
        );
        assert!(e.hint.contains("after = [\"orch\"]"), "{e}");
    }

    #[test]
    fn tools_and_history_need_a_chat_api() {
        let e = graph_rejected(
            "id = \"w\"\nendpoint = \"b\"",
            "id = \"w\"\nendpoint = \"g\"",
            "history = true",
            "history needs a chat API",
        );
        assert!(e.hint.contains("openai-chat"), "{e}");
        graph_rejected(
            "id = \"agg\"\nendpoint = \"a\"",
            "id = \"agg\"\nendpoint = \"g\"",
            "Sum {output:w}",
            "tool step needs a chat API",
        );
    }

    #[test]
    fn a_tool_step_on_the_last_call_is_rejected() {
        graph_rejected(
            ", { name = \"end\", prompt = \"End.\" }",
            "",
            "Sum {output:w}",
            "no call follows",
        );
    }

    #[test]
    fn bad_latencies_and_tool_names_are_located() {
        for bad in [
            "-1",
            "nan",
            "inf",
            "\"fast\"",
            "{ min = 3, max = 2 }",
            "{ min = -1, max = 2 }",
            "{ min = 1 }",
            "{ min = 1, max = 2, mean = 1 }",
            "86400001",
        ] {
            let e = graph_rejected(
                "latency_ms = 200",
                &format!("latency_ms = {bad}"),
                "tool = { name = \"web_search\"",
                "latency_ms",
            );
            assert!(e.hint.contains("min = 100, max = 300"), "{bad}: {e}");
        }
        graph_rejected(
            "name = \"web_search\"",
            "name = \"web search\"",
            "tool = { name = \"web search\"",
            "not a function name",
        );
    }

    #[test]
    fn after_is_rejected_with_scaling() {
        let text = format!("{}\n[scaling]\nmax_agents = 4\n", with_agents(GRAPH));
        let e = parse_str(&text).unwrap_err();
        let line = text
            .lines()
            .position(|l| l.contains("after = [\"orch\"]"))
            .unwrap()
            + 1;
        assert_eq!(e.line, line, "{e}");
        assert!(e.message.contains("[scaling]"), "{e}");
        // Independent agents still sweep.
        let plain = GRAPH
            .replace("after = [\"orch\"]\n", "")
            .replace("after = [\"w\", \"orch\"]\n", "")
            .replace("{output:orch}", "")
            .replace("{output:w}", "");
        let text = format!("{}\n[scaling]\nmax_agents = 4\n", with_agents(&plain));
        assert_eq!(parse_str(&text).unwrap().templates_for(Some(4)).len(), 4);
    }

    #[test]
    fn connection_policy_defaults_to_keep_alive_and_is_located_when_unknown() {
        assert_eq!(
            parse_str(OK).unwrap().client.connection,
            ConnectionPolicy::KeepAlive
        );
        let fresh = OK.replacen("runs = 2", "runs = 2\nconnection = \"fresh\"", 1);
        assert_eq!(
            parse_str(&fresh).unwrap().client.connection,
            ConnectionPolicy::Fresh
        );
        rejected_at(
            "runs = 2",
            "runs = 2\nconnection = \"pooled\"",
            4,
            "keep-alive",
        );
    }
}
