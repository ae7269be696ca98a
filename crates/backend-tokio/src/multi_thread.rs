//! `tokio-default`: tokio's multi-thread work-stealing runtime.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use chimeraforge_core::{
    AsyncRuntime, Backend, BackendError, ClientOptions, JoinError, RuntimeFacts,
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

    fn build(
        opts: &ClientOptions,
    ) -> Result<(Arc<Self::Runtime>, Arc<Self::Client>), BackendError> {
        let fail = |reason: String| BackendError {
            backend: Self::NAME,
            reason,
        };
        let setting = worker_setting(std::env::var(WORKERS_ENV).ok()).map_err(fail)?;
        let rt = TokioMultiThread::new(setting).map_err(fail)?;
        let client = ReqwestClient::new(opts).map_err(fail)?;
        Ok((Arc::new(rt), Arc::new(client)))
    }
}

/// Where the worker count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkerSetting {
    Env(usize),
    Default(usize),
}

impl WorkerSetting {
    fn count(self) -> usize {
        match self {
            WorkerSetting::Env(n) | WorkerSetting::Default(n) => n,
        }
    }
}

/// Worker count from the env value, else `available_parallelism`.
fn worker_setting(env: Option<String>) -> Result<WorkerSetting, String> {
    match env {
        Some(value) => match value.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(WorkerSetting::Env(n)),
            _ => Err(format!(
                "{WORKERS_ENV}={value:?} is not a positive thread count"
            )),
        },
        None => Ok(WorkerSetting::Default(
            std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        )),
    }
}

/// A multi-thread tokio runtime with a fixed number of workers.
pub struct TokioMultiThread {
    rt: tokio::runtime::Runtime,
    workers: WorkerSetting,
}

impl TokioMultiThread {
    fn new(workers: WorkerSetting) -> Result<Self, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.count())
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
            WorkerSetting::Env(_) => format!("env {WORKERS_ENV}"),
            WorkerSetting::Default(_) => "available_parallelism".to_owned(),
        };
        let mut facts = ReqwestClient::facts();
        facts.scheduler = "tokio multi-thread work-stealing".to_owned();
        facts.worker_threads = self.workers.count();
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
        assert_eq!(worker_setting(Some("3".into())), Ok(WorkerSetting::Env(3)));
        assert_eq!(
            worker_setting(Some(" 2 ".into())),
            Ok(WorkerSetting::Env(2))
        );
    }

    #[test]
    fn bad_env_values_are_refused() {
        assert!(worker_setting(Some("0".into())).is_err());
        assert!(worker_setting(Some("many".into())).is_err());
    }

    #[test]
    fn default_is_available_parallelism() {
        let n = std::thread::available_parallelism().unwrap().get();
        assert_eq!(worker_setting(None), Ok(WorkerSetting::Default(n)));
    }

    #[test]
    fn facts_record_workers_and_source() {
        let rt = TokioMultiThread::new(WorkerSetting::Env(3)).unwrap();
        let facts = rt.describe();
        assert_eq!(facts.worker_threads, 3);
        assert!(facts
            .notes
            .contains(&("worker_threads_source".into(), format!("env {WORKERS_ENV}"))));
        assert!(facts.http_client.starts_with("reqwest"));
    }
}
