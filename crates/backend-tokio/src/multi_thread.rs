//! `tokio-default`: tokio's multi-thread work-stealing runtime.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chimeraforge_core::{
    AsyncRuntime, Backend, BackendError, Built, ClientOptions, JoinError, RuntimeFacts,
    ThreadCount, TlsTrust,
};

use crate::client::ReqwestClient;

/// Environment variable overriding the worker thread count of `tokio-default`.
pub const WORKERS_ENV: &str = "CHIMERAFORGE_TOKIO_WORKERS";

/// Multi-thread tokio runtime with reqwest.
pub struct TokioDefault;

impl Backend for TokioDefault {
    type Runtime = TokioMultiThread;
    type Client = ReqwestClient;

    const NAME: &'static str = "tokio-default";

    fn build(opts: &ClientOptions) -> Result<Built<Self>, BackendError> {
        let fail = |reason: String| BackendError {
            backend: Self::NAME,
            reason,
        };
        let setting = ThreadCount::from_env(WORKERS_ENV).map_err(fail)?;
        let rt = TokioMultiThread::new(setting).map_err(fail)?;
        let client = ReqwestClient::new(opts, &TlsTrust::default()).map_err(fail)?;
        Ok((Arc::new(rt), Arc::new(client)))
    }
}

/// A multi-thread tokio runtime with a fixed number of workers.
pub struct TokioMultiThread {
    rt: tokio::runtime::Runtime,
    workers: ThreadCount,
}

impl TokioMultiThread {
    fn new(workers: ThreadCount) -> Result<Self, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.get())
            .thread_name("tokio-default-worker")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start tokio: {e}"))?;
        Ok(TokioMultiThread { rt, workers })
    }
}

impl AsyncRuntime for TokioMultiThread {
    fn name(&self) -> &'static str {
        TokioDefault::NAME
    }

    fn describe(&self) -> RuntimeFacts {
        let source = match self.workers {
            ThreadCount::Env(_) => format!("env {WORKERS_ENV}"),
            ThreadCount::Default(_) => "available_parallelism".to_owned(),
        };
        let mut facts = ReqwestClient::facts();
        facts.scheduler = "tokio multi-thread work-stealing".to_owned();
        facts.worker_threads = self.workers.get();
        facts.notes.extend([
            ("worker_threads_source".to_owned(), source),
            (
                "spawn".to_owned(),
                "Runtime::spawn (tokio::spawn on this runtime)".to_owned(),
            ),
            (
                "block_on".to_owned(),
                "the calling thread polls only the root future; spawned tasks run on \
                 the workers"
                    .to_owned(),
            ),
            ("timer".to_owned(), "tokio::time::sleep".to_owned()),
        ]);
        facts
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }

    fn spawn<F>(
        &self,
        fut: F,
    ) -> impl Future<Output = Result<F::Output, JoinError>> + Send + 'static + use<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = self.rt.spawn(fut);
        async move { task.await.map_err(|e| JoinError(e.to_string())) }
    }

    fn sleep(&self, dur: Duration) -> impl Future<Output = ()> + Send + 'static + use<> {
        // Created on first poll, so inside the runtime whose timer it uses.
        async move { tokio::time::sleep(dur).await }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_sets_the_worker_count() {
        assert_eq!(
            ThreadCount::parse(WORKERS_ENV, Some("3".into())),
            Ok(ThreadCount::Env(3))
        );
        // Padded values are refused, as every backend does (core's ThreadCount).
        assert!(ThreadCount::parse(WORKERS_ENV, Some(" 2 ".into())).is_err());
    }

    #[test]
    fn bad_env_values_are_refused() {
        assert!(ThreadCount::parse(WORKERS_ENV, Some("0".into())).is_err());
        assert!(ThreadCount::parse(WORKERS_ENV, Some("many".into())).is_err());
    }

    #[test]
    fn default_is_available_parallelism() {
        let n = std::thread::available_parallelism().unwrap().get();
        assert_eq!(
            ThreadCount::parse(WORKERS_ENV, None),
            Ok(ThreadCount::Default(n))
        );
    }

    #[test]
    fn facts_record_workers_and_source() {
        let rt = TokioMultiThread::new(ThreadCount::Env(3)).unwrap();
        let facts = rt.describe();
        assert_eq!(facts.worker_threads, 3);
        assert!(facts
            .notes
            .contains(&("worker_threads_source".into(), format!("env {WORKERS_ENV}"))));
        assert!(facts.http_client.starts_with("reqwest"));
    }
}
