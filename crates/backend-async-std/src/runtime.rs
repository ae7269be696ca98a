//! async-std's runtime: `task::block_on`, `task::spawn` onto its global executor.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chimeraforge_core::{
    AsyncRuntime, Backend, BackendError, Built, ClientOptions, JoinError, RuntimeFacts,
    ThreadCount, TlsTrust,
};
use futures_lite::FutureExt;

use crate::client::SurfClient;

/// async-std's own variable for its global executor's thread count.
pub const THREADS_ENV: &str = "ASYNC_STD_THREAD_COUNT";

/// async-std with surf over async-h1.
pub struct AsyncStd;

impl Backend for AsyncStd {
    type Runtime = AsyncStdRuntime;
    type Client = SurfClient;

    const NAME: &'static str = "async-std";

    fn build(opts: &ClientOptions) -> Result<Built<Self>, BackendError> {
        let fail = |reason: String| BackendError {
            backend: Self::NAME,
            reason,
        };
        let threads = ThreadCount::from_env(THREADS_ENV).map_err(fail)?;
        // Start the global executor now, so it reads the environment we just read.
        async_std::task::block_on(async_std::task::spawn(async {}));
        let client = SurfClient::new(opts, &TlsTrust::default()).map_err(fail)?;
        Ok((Arc::new(AsyncStdRuntime { threads }), Arc::new(client)))
    }
}

/// A handle on async-std's process-wide runtime.
pub struct AsyncStdRuntime {
    threads: ThreadCount,
}

impl AsyncRuntime for AsyncStdRuntime {
    fn name(&self) -> &'static str {
        AsyncStd::NAME
    }

    fn describe(&self) -> RuntimeFacts {
        let source = match self.threads {
            ThreadCount::Env(_) => format!("env {THREADS_ENV}"),
            ThreadCount::Default(_) => "available_parallelism (async-std default)".to_owned(),
        };
        let mut facts = SurfClient::facts();
        facts.scheduler = "async-std global executor (async-global-executor)".to_owned();
        facts.worker_threads = self.threads.get();
        facts.notes.extend([
            ("worker_threads_source".to_owned(), source),
            (
                "block_on".to_owned(),
                "async_std::task::block_on: the calling thread polls only the root future; \
                 spawned tasks run on the global executor's threads"
                    .to_owned(),
            ),
            ("spawn".to_owned(), "async_std::task::spawn".to_owned()),
            ("timer".to_owned(), "async_std::task::sleep".to_owned()),
            (
                "requests_serialized".to_owned(),
                "no: no lock is held around any request".to_owned(),
            ),
        ]);
        facts
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        async_std::task::block_on(fut)
    }

    fn spawn<F>(
        &self,
        fut: F,
    ) -> impl Future<Output = Result<F::Output, JoinError>> + Send + 'static + use<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = async_std::task::spawn(AssertUnwindSafe(fut).catch_unwind());
        async move { task.await.map_err(|panic| JoinError::from_panic(&*panic)) }
    }

    fn sleep(&self, dur: Duration) -> impl Future<Output = ()> + Send + 'static + use<> {
        async_std::task::sleep(dur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawned_tasks_run_on_executor_threads() {
        let rt = AsyncStdRuntime {
            threads: ThreadCount::Default(1),
        };
        let caller = std::thread::current().id();
        let polled_on = rt.block_on(async {
            rt.spawn(async { std::thread::current().id() })
                .await
                .unwrap()
        });
        assert_ne!(polled_on, caller);
    }
}
