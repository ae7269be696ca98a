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

impl JoinError {
    /// A task that panicked with `payload` (what `catch_unwind` returned).
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> JoinError {
        let msg = if let Some(s) = payload.downcast_ref::<&str>() {
            format!("task panicked: {s}")
        } else if let Some(s) = payload.downcast_ref::<String>() {
            format!("task panicked: {s}")
        } else {
            "task panicked".to_owned()
        };
        JoinError(msg)
    }
}

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

/// How many threads a backend polls tasks with, and where that number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadCount {
    /// Set by an environment variable.
    Env(usize),
    /// `std::thread::available_parallelism` (every runtime's own default).
    Default(usize),
}

impl ThreadCount {
    pub fn get(self) -> usize {
        match self {
            ThreadCount::Env(n) | ThreadCount::Default(n) => n,
        }
    }

    /// Read environment variable `var`: unset means `available_parallelism`; anything but a
    /// positive integer is refused, so the recorded count is always the one in effect.
    pub fn from_env(var: &str) -> Result<Self, String> {
        Self::parse(var, std::env::var(var).ok())
    }

    /// [`ThreadCount::from_env`] on a given value of `var`.
    pub fn parse(var: &str, value: Option<String>) -> Result<Self, String> {
        match value {
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => Ok(ThreadCount::Env(n)),
                _ => Err(format!("{var}={v:?} is not a positive thread count")),
            },
            None => Ok(ThreadCount::Default(
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ThreadCount;

    #[test]
    fn thread_count_from_env_values() {
        assert_eq!(
            ThreadCount::parse("V", Some("3".into())),
            Ok(ThreadCount::Env(3))
        );
        for bad in ["0", "x", " 3", "-1"] {
            let e = ThreadCount::parse("V", Some(bad.into())).unwrap_err();
            assert!(e.contains("V=") && e.contains("positive"), "{e}");
        }
        let n = std::thread::available_parallelism().unwrap().get();
        assert_eq!(ThreadCount::parse("V", None), Ok(ThreadCount::Default(n)));
        assert_eq!(ThreadCount::Env(4).get(), 4);
    }
}
