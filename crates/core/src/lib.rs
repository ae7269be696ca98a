//! chimeraforge-core: the vocabulary shared by every crate.
//!
//! - [`rt`] and [`http`]: the runtime/client trait pair each backend implements.
//! - [`api`]: sans-IO stream codecs (Ollama NDJSON, OpenAI SSE) and request bodies.
//! - [`workload`]: agents, calls, options and scenarios: what is sent.
//! - [`graph`]: agent graphs (`after`): a topological order and the critical path.
//! - [`record`]: what is written, every type of it (runs, phases, calls, metrics).
//! - [`metrics`]: what is computed from records; the one percentile and Jain index.
//! - [`call`]: one streaming call, timed, with its timeouts: fills in a call record.
//! - [`protocol`]: the run protocol (warm-up, sequential, concurrent), written once: fills in
//!   a run record.
//! - [`BackendId`]: a backend's name, typed.
//! - [`redact`]: API keys kept out of everything recorded or printed; which keys can be sent.

pub mod api;
pub mod backend_id;
pub mod call;
pub mod graph;
pub mod http;
pub mod metrics;
pub mod protocol;
pub mod record;
pub mod redact;
pub mod rt;
#[cfg(feature = "tls")]
pub mod tls;
pub mod workload;

use std::sync::Arc;

pub use backend_id::BackendId;
pub use http::{
    BodyStream, ClientOptions, ConnectionCounts, ConnectionPolicy, ConnectionTally, HttpClient,
    HttpError, HttpRequest, HttpResponse, TlsTrust,
};
pub use rt::{AsyncRuntime, JoinError, RuntimeFacts, ThreadCount};

/// A runtime and the HTTP client that runs on it: the unit the harness compares.
pub trait Backend {
    type Runtime: AsyncRuntime;
    type Client: HttpClient;

    /// Name as used on the command line and in results.
    const NAME: &'static str;

    /// Build the runtime and a client for it.
    fn build(opts: &ClientOptions) -> Result<Built<Self>, BackendError>;
}

/// A built backend: its runtime and its client, shared with the tasks of a run.
pub type Built<B> = (Arc<<B as Backend>::Runtime>, Arc<<B as Backend>::Client>);

/// A backend that could not be constructed.
#[derive(Debug, thiserror::Error)]
#[error("cannot build backend {backend}: {reason}")]
pub struct BackendError {
    pub backend: &'static str,
    pub reason: String,
}

/// Serialize a `Duration` as fractional milliseconds.
pub mod serde_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        if !(ms.is_finite() && ms >= 0.0) {
            return Err(serde::de::Error::custom(format!(
                "duration must be a non-negative number of milliseconds, got {ms}"
            )));
        }
        Ok(Duration::from_secs_f64(ms / 1e3))
    }
}
