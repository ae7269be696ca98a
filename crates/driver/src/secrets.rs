//! The API keys of a config, read once from the environment and checked before anything is
//! sent, and the parent's redaction of them (see [`chimeraforge_core::redact`]).
//!
//! The measured children redact their own records; the parent redacts again, defensively,
//! at each edge where text leaves it: every line it prints ([`crate::out`]), every record it
//! appends to `runs.jsonl` and every manifest it writes ([`crate::results`]), and a failed
//! child's stderr tail ([`crate::matrix`]). The report is derived from those files.

use chimeraforge_core::redact::{check_key, KeyProblem, Redactor};
use chimeraforge_core::workload::Endpoint;
use std::borrow::Cow;
use std::sync::RwLock;

/// The keys this process knows (empty until [`install`]).
static REDACTOR: RwLock<Option<Redactor>> = RwLock::new(None);

/// A key in the environment that cannot be sent.
#[derive(Debug, thiserror::Error)]
#[error("endpoint {endpoint:?}: the API key in environment variable {var} (api_key_env) {problem}\n  hint: {hint}")]
pub struct KeyError {
    pub endpoint: String,
    pub var: String,
    pub problem: KeyProblem,
    pub hint: String,
}

/// Each endpoint's key (`None`: no `api_key_env`, or the variable is unset), checked: a key
/// that is empty or holds anything but visible ASCII is an error naming the endpoint and the
/// variable, before any request is sent.
pub fn read_keys(endpoints: &[Endpoint]) -> Result<Vec<Option<String>>, KeyError> {
    endpoints
        .iter()
        .map(|ep| {
            let Some(var) = &ep.api_key_env else {
                return Ok(None);
            };
            let Some(key) = std::env::var_os(var) else {
                return Ok(None);
            };
            let key = key.to_string_lossy().into_owned();
            check_key(&key).map_err(|problem| KeyError {
                endpoint: ep.name.clone(),
                var: var.clone(),
                hint: match &problem {
                    KeyProblem::Empty => format!(
                        "export {var} with the server's key, or unset it (and remove api_key_env) for a server without one"
                    ),
                    KeyProblem::Character { .. } => format!(
                        "set {var} to the key alone; a key read from a file often ends with a newline: export {var}=\"$(tr -d '[:space:]' < KEYFILE)\""
                    ),
                },
                problem,
            })?;
            Ok(Some(key))
        })
        .collect()
}

/// Check the keys of `endpoints` and redact them from everything this process prints or
/// writes from now on.
pub fn install(endpoints: &[Endpoint]) -> Result<(), KeyError> {
    let keys = read_keys(endpoints)?;
    let redactor = Redactor::new(keys.into_iter().flatten());
    *REDACTOR.write().unwrap_or_else(|e| e.into_inner()) = Some(redactor);
    Ok(())
}

/// `text` without the installed keys.
pub fn scrub(text: &str) -> Cow<'_, str> {
    match &*REDACTOR.read().unwrap_or_else(|e| e.into_inner()) {
        Some(r) if !r.is_empty() => Cow::Owned(r.text(text).into_owned()),
        _ => Cow::Borrowed(text),
    }
}

/// `value` without the installed keys, in every string.
pub fn scrub_json(value: &mut serde_json::Value) {
    if let Some(r) = &*REDACTOR.read().unwrap_or_else(|e| e.into_inner()) {
        r.json(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chimeraforge_core::api::ApiKind;

    fn endpoint(var: &str) -> Endpoint {
        Endpoint {
            name: "ep".into(),
            base_url: "http://127.0.0.1:1".into(),
            api: ApiKind::Ollama,
            api_key_env: Some(var.into()),
            ca_file: None,
            tls_insecure: false,
        }
    }

    #[test]
    fn a_key_with_a_newline_names_the_endpoint_and_the_variable() {
        let var = format!("CHIMERAFORGE_SECRETS_TEST_{}", std::process::id());
        std::env::set_var(&var, "sk-abc\r\nX-Injected: yes");
        let e = read_keys(&[endpoint(&var)]).unwrap_err().to_string();
        std::env::remove_var(&var);
        assert!(
            e.contains("endpoint \"ep\"") && e.contains(&var) && e.contains("carriage return"),
            "{e}"
        );
        assert!(e.contains("hint:"), "{e}");
        let unset = format!("{var}_UNSET");
        assert_eq!(read_keys(&[endpoint(&unset)]).unwrap(), [None]);
    }
}
