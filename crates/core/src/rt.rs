//! The async runtime a backend measures with.
//!
//! Generic, not `dyn`: the run protocol is monomorphized per backend so no trait
//! object sits on the measured path (criterion's `AsyncExecutor`, quinn's `Runtime`).

use std::future::Future;
use std::time::{Duration, Instant};

/// A task that panicked or was cancelled before it produced its output.
#[derive(Debug, thiserror::Error)]
#[error("task failed: {0}")]
pub struct JoinError(pub String);

/// An async runtime: run a future to completion, spawn tasks, sleep, read the clock.
pub trait AsyncRuntime: Send + Sync + 'static {
    /// Backend name as it appears in results (`tokio-default`, `smol-1kb`, ...).
    fn name(&self) -> &'static str;

    /// Facts about this runtime recorded with every run (threads, buffer sizes, ...).
    fn describe(&self) -> RuntimeFacts;

    /// Run `fut` to completion on this runtime, blocking the calling thread.
    fn block_on<F: Future>(&self, fut: F) -> F::Output;

    /// Spawn `fut` as its own task on this runtime; it starts running without being awaited.
    ///
    /// Must be called from inside [`AsyncRuntime::block_on`].
    fn spawn<F>(
        &self,
        fut: F,
    ) -> impl Future<Output = Result<F::Output, JoinError>> + Send + 'static + use<Self, F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Sleep for `dur` using this runtime's timer.
    fn sleep(&self, dur: Duration) -> impl Future<Output = ()> + Send + 'static + use<Self>;

    /// Monotonic clock used for every measured timestamp.
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Recorded description of a runtime as configured for a run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RuntimeFacts {
    /// Scheduler flavour, e.g. `multi-thread work-stealing`, `current-thread + LocalSet`.
    pub scheduler: String,
    /// Threads that poll tasks (worker threads of the executor).
    pub worker_threads: usize,
    /// HTTP client crate and version, e.g. `reqwest 0.12`.
    pub http_client: String,
    /// Size of the buffer the response body is read through, if the backend fixes one (bytes).
    pub read_buffer_bytes: Option<usize>,
    /// Anything else worth recording (key, value).
    pub notes: Vec<(String, String)>,
}
