//! Before anything is measured: is each endpoint up, and does it have each model?
//! Runs in the parent over its own blocking HTTP/1.1 client ([`crate::http1`]; no async
//! runtime involved). `chimeraforge doctor` asks its questions through the same functions.

use crate::http1::{self, HttpError};
use chimeraforge_core::api::ApiKind;
use chimeraforge_core::workload::Endpoint;
use serde::Serialize;
use std::time::Duration;

/// What a server said about itself.
#[derive(Debug, Clone, Serialize)]
pub struct ServerFacts {
    pub endpoint: String,
    pub base_url: String,
    pub api: ApiKind,
    pub version: Option<String>,
    /// Model names with their digests where the API gives them.
    pub models: Vec<(String, Option<String>)>,
}

/// An endpoint that is down, or lacks a model.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("endpoint {endpoint:?} at {url} is unreachable: {reason}\n  hint: start the server (e.g. `ollama serve`, `just serve-real`), or fix the url in the config; `chimeraforge doctor CONFIG` checks every endpoint")]
    Unreachable {
        endpoint: String,
        url: String,
        reason: String,
    },
    #[error("endpoint {endpoint:?}: {reason}\n  hint: set ca_file on the endpoint to the PEM of the CA that signed the server's certificate (tls_insecure = true skips the check, for test servers only); `chimeraforge doctor CONFIG` checks every endpoint")]
    Tls { endpoint: String, reason: String },
    #[error("endpoint {endpoint:?}: {reason}\n  hint: the server accepted the connection but did not finish its reply: it is up but busy or hung (a model load or a full queue holds replies; check its log, restart it if it is hung), or another program listens there; `chimeraforge doctor CONFIG` checks every endpoint")]
    TimedOut { endpoint: String, reason: String },
    #[error("endpoint {endpoint:?} at {url}: {reason}\n  hint: is {url} the LLM server (http://, its port), not another program? fix the url in the config; `chimeraforge doctor CONFIG` checks every endpoint")]
    BadReply {
        endpoint: String,
        url: String,
        reason: String,
    },
    #[error("endpoint {endpoint:?} at {url} refused the request to {path} (HTTP {status}): the API key is {key_state}\n  hint: {fix}")]
    Unauthorized {
        endpoint: String,
        url: String,
        path: String,
        status: u16,
        key_state: String,
        fix: String,
    },
    #[error("endpoint {endpoint:?} at {url} answered HTTP {status} to {path}\n  hint: is this an {api:?} server? check `api` in the config")]
    BadStatus {
        endpoint: String,
        url: String,
        path: String,
        status: u16,
        api: ApiKind,
    },
    #[error(
        "endpoint {endpoint:?} at {url} has no model {model:?}; it has: {available}\n  hint: {fix}"
    )]
    MissingModel {
        endpoint: String,
        url: String,
        model: String,
        available: String,
        fix: String,
    },
}

/// How long the pre-bench check and doctor wait for a GET: the connect, then the whole reply.
pub(crate) const GET_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest reply body read by a GET, bytes (a model listing is kilobytes).
pub(crate) const MAX_REPLY_BYTES: usize = 16 << 20;

/// The endpoint's API key, read from its `api_key_env` variable (never printed):
/// `Ok(None)` when it has none, `Err(VAR)` when the variable is not set.
pub(crate) fn api_key(ep: &Endpoint) -> Result<Option<String>, String> {
    match &ep.api_key_env {
        None => Ok(None),
        Some(var) => std::env::var(var).map(Some).map_err(|_| var.clone()),
    }
}

/// `GET {base}{path}` of `ep` with the key (and, over https, its certificate checked as
/// the endpoint says), over the parent's HTTP/1.1 client: (status, body).
pub(crate) fn get(
    ep: &Endpoint,
    path: &str,
    key: Option<&str>,
) -> Result<(u16, Vec<u8>), HttpError> {
    let url = format!("{}{path}", ep.base_url);
    http1::get(&url, key, &ep.tls(), GET_TIMEOUT, MAX_REPLY_BYTES)
}

/// `GET {base}{path}` of `ep` parsed as JSON; `None` unless it answers 200 with JSON.
pub(crate) fn get_json(ep: &Endpoint, path: &str, key: Option<&str>) -> Option<serde_json::Value> {
    match get(ep, path, key) {
        Ok((200, body)) => serde_json::from_slice(&body).ok(),
        _ => None,
    }
}

/// Where `api` lists its models: `/api/tags` (Ollama) or `/v1/models`.
pub(crate) fn listing_path(api: ApiKind) -> &'static str {
    if api.is_ollama() {
        "/api/tags"
    } else {
        "/v1/models"
    }
}

/// The models a listing names (Ollama `models[].name`/`model`, OpenAI `data[].id`), with
/// their digests where the API gives them. A JSON document without the list names none.
pub(crate) fn parse_listing(
    api: ApiKind,
    body: &[u8],
) -> Result<Vec<(String, Option<String>)>, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_slice(body)?;
    let (list, keys): (&str, &[&str]) = if api.is_ollama() {
        ("models", &["name", "model"])
    } else {
        ("data", &["id"])
    };
    Ok(v.get(list)
        .and_then(|m| m.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    let name = keys.iter().find_map(|k| m.get(*k)?.as_str())?;
                    let digest = m.get("digest").and_then(|d| d.as_str()).map(str::to_owned);
                    Some((name.to_owned(), digest))
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Whether `available` holds `model` (Ollama also answers `NAME` for `NAME:latest`).
pub(crate) fn has_model<'a>(
    api: ApiKind,
    mut available: impl Iterator<Item = &'a str>,
    model: &str,
) -> bool {
    available.any(|name| {
        name == model
            || (api.is_ollama() && !model.contains(':') && name == format!("{model}:latest"))
    })
}

/// The listing of `ep` (`/api/tags` or `/v1/models`) with its status checked.
fn listing(
    ep: &Endpoint,
    key: Option<&str>,
) -> Result<Vec<(String, Option<String>)>, PreflightError> {
    let path = listing_path(ep.api);
    let (status, body) = get(ep, path, key).map_err(|e| transport(ep, e))?;
    if status == 401 || status == 403 {
        let (key_state, fix) = match (&ep.api_key_env, key) {
            (None, _) => (
                "not configured".to_owned(),
                "set `api_key_env = \"VAR\"` on the endpoint and export VAR with the server's key"
                    .to_owned(),
            ),
            (Some(var), None) => (
                format!("unset (environment variable {var} is not set)"),
                format!("export {var} with the server's key"),
            ),
            (Some(var), Some(_)) => (
                format!("rejected (the value of {var})"),
                format!("check the key in {var}; it is sent as `Authorization: Bearer`"),
            ),
        };
        return Err(PreflightError::Unauthorized {
            endpoint: ep.name.clone(),
            url: ep.base_url.clone(),
            path: path.to_owned(),
            status,
            key_state,
            fix,
        });
    }
    if status != 200 {
        return Err(PreflightError::BadStatus {
            endpoint: ep.name.clone(),
            url: ep.base_url.clone(),
            path: path.to_owned(),
            status,
            api: ep.api,
        });
    }
    parse_listing(ep.api, &body).map_err(|e| PreflightError::BadReply {
        endpoint: ep.name.clone(),
        url: ep.base_url.clone(),
        reason: format!("GET {path} did not return JSON: {e}"),
    })
}

/// A GET that failed below HTTP: unreachable only when nothing accepted the connection.
fn transport(ep: &Endpoint, e: HttpError) -> PreflightError {
    match e {
        HttpError::Tls { .. } => PreflightError::Tls {
            endpoint: ep.name.clone(),
            reason: e.to_string(),
        },
        HttpError::Unreachable { .. } | HttpError::BadUrl { .. } => PreflightError::Unreachable {
            endpoint: ep.name.clone(),
            url: ep.base_url.clone(),
            reason: e.to_string(),
        },
        HttpError::TimedOut { .. } => PreflightError::TimedOut {
            endpoint: ep.name.clone(),
            reason: e.to_string(),
        },
        _ => PreflightError::BadReply {
            endpoint: ep.name.clone(),
            url: ep.base_url.clone(),
            reason: e.to_string(),
        },
    }
}

/// Check `ep` is up and has every model in `models`.
pub fn check(ep: &Endpoint, models: &[String]) -> Result<ServerFacts, PreflightError> {
    // The measured calls send the endpoint's key; so must the check (never printed). An
    // unset variable is reported by the server's 401, with the variable's name.
    let key = api_key(ep).ok().flatten();
    let key = key.as_deref();
    let available = listing(ep, key)?;
    let version = if ep.api.is_ollama() {
        get_json(ep, "/api/version", key)
            .and_then(|v| v.get("version")?.as_str().map(str::to_owned))
    } else {
        None
    };
    for model in models {
        if !has_model(ep.api, available.iter().map(|(n, _)| n.as_str()), model) {
            let names: Vec<&str> = available.iter().map(|(n, _)| n.as_str()).collect();
            return Err(PreflightError::MissingModel {
                endpoint: ep.name.clone(),
                url: ep.base_url.clone(),
                model: model.clone(),
                available: if names.is_empty() {
                    "(none)".into()
                } else {
                    names.join(", ")
                },
                fix: if ep.api.is_ollama() {
                    format!("run `ollama pull {model}` against that server, or fix `models` in the config")
                } else {
                    "start the server with that model (or --alias it), or fix `models` in the config".into()
                },
            });
        }
    }
    Ok(ServerFacts {
        endpoint: ep.name.clone(),
        base_url: ep.base_url.clone(),
        api: ep.api,
        version,
        models: available,
    })
}
