//! Before anything is measured: is each endpoint up, and does it have each model?
//! Runs in the parent over a plain HTTP/1.0 GET (no async runtime involved).

use chimeraforge_core::api::ApiKind;
use chimeraforge_core::workload::Endpoint;
use serde::Serialize;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
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

/// GET `url` with HTTP/1.0 (so the reply is never chunked); returns (status, body).
pub fn http_get(url: &str, timeout: Duration) -> Result<(u16, Vec<u8>), String> {
    http_request("GET", url, None, None, timeout)
}

/// GET `url` as [`http_get`] does, with `Authorization: Bearer KEY` when a key is given.
pub fn http_get_with_key(
    url: &str,
    api_key: Option<&str>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    http_request("GET", url, None, api_key, timeout)
}

/// POST a JSON `body` to `url` with HTTP/1.0; returns (status, body).
pub fn http_post_json(url: &str, body: &[u8], timeout: Duration) -> Result<(u16, Vec<u8>), String> {
    http_request("POST", url, Some(body), None, timeout)
}

fn http_request(
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    api_key: Option<&str>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url} is not an http:// URL"))?;
    let (host_port, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let with_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host_port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host_port} resolves to no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut request =
        format!("{method} {path} HTTP/1.0\r\nHost: {host_port}\r\nAccept: application/json\r\n");
    if let Some(b) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    if let Some(key) = api_key {
        request.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    s.write_all(&bytes).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.take(16 << 20)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("malformed HTTP response (no header end)")?;
    let head = String::from_utf8_lossy(&buf[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("malformed HTTP status line")?;
    Ok((status, buf[split + 4..].to_vec()))
}

fn get_json(ep: &Endpoint, path: &str) -> Result<serde_json::Value, PreflightError> {
    let url = format!("{}{path}", ep.base_url);
    // The measured calls send the endpoint's key; so must the check (never printed).
    let key = ep
        .api_key_env
        .as_ref()
        .and_then(|var| std::env::var(var).ok());
    let (status, body) =
        http_get_with_key(&url, key.as_deref(), Duration::from_secs(5)).map_err(|reason| {
            PreflightError::Unreachable {
                endpoint: ep.name.clone(),
                url: ep.base_url.clone(),
                reason,
            }
        })?;
    if status == 401 || status == 403 {
        let (key_state, fix) = match (&ep.api_key_env, &key) {
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
    serde_json::from_slice(&body).map_err(|e| PreflightError::Unreachable {
        endpoint: ep.name.clone(),
        url: url.clone(),
        reason: format!("{path} did not return JSON: {e}"),
    })
}

/// Check `ep` is up and has every model in `models`.
pub fn check(ep: &Endpoint, models: &[String]) -> Result<ServerFacts, PreflightError> {
    let (version, available) = if ep.api.is_ollama() {
        let version = get_json(ep, "/api/version")
            .ok()
            .and_then(|v| v.get("version")?.as_str().map(str::to_owned));
        let tags = get_json(ep, "/api/tags")?;
        let list = tags
            .get("models")
            .and_then(|m| m.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|m| {
                        let name = m.get("name").or_else(|| m.get("model"))?.as_str()?;
                        let digest = m.get("digest").and_then(|d| d.as_str()).map(str::to_owned);
                        Some((name.to_owned(), digest))
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        (version, list)
    } else {
        let models = get_json(ep, "/v1/models")?;
        let list = models
            .get("data")
            .and_then(|m| m.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|m| Some((m.get("id")?.as_str()?.to_owned(), None)))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        (None, list)
    };
    for model in models {
        let present = available.iter().any(|(name, _)| {
            name == model
                || (ep.api.is_ollama()
                    && !model.contains(':')
                    && name == &format!("{model}:latest"))
        });
        if !present {
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
