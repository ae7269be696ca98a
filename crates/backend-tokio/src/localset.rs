//! `tokio-localset`: a current-thread runtime where every task runs on the thread that
//! called `block_on`, through a `LocalSet` and `spawn_local`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chimeraforge_core::{
    AsyncRuntime, Backend, BackendError, Built, ClientOptions, JoinError, RuntimeFacts, TlsTrust,
};

use crate::client::ReqwestClient;

/// Current-thread tokio runtime + `LocalSet` with reqwest.
pub struct TokioLocalSet;

impl Backend for TokioLocalSet {
    type Runtime = TokioLocalSetRuntime;
    type Client = ReqwestClient;

    const NAME: &'static str = "tokio-localset";

    fn build(opts: &ClientOptions) -> Result<Built<Self>, BackendError> {
        let fail = |reason: String| BackendError {
            backend: Self::NAME,
            reason,
        };
        let rt = TokioLocalSetRuntime::new().map_err(fail)?;
        let client = ReqwestClient::new(opts, &TlsTrust::default()).map_err(fail)?;
        Ok((Arc::new(rt), Arc::new(client)))
    }
}

/// A current-thread tokio runtime; `block_on` drives a fresh `LocalSet`.
pub struct TokioLocalSetRuntime {
    rt: tokio::runtime::Runtime,
}

impl TokioLocalSetRuntime {
    fn new() -> Result<Self, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start tokio: {e}"))?;
        Ok(TokioLocalSetRuntime { rt })
    }
}

impl AsyncRuntime for TokioLocalSetRuntime {
    fn name(&self) -> &'static str {
        TokioLocalSet::NAME
    }

    fn describe(&self) -> RuntimeFacts {
        let mut facts = ReqwestClient::facts();
        facts.scheduler = "tokio current-thread + LocalSet".to_owned();
        facts.worker_threads = 1;
        facts.notes.extend([
            (
                "spawn".to_owned(),
                "tokio::task::spawn_local (on the block_on thread)".to_owned(),
            ),
            ("timer".to_owned(), "tokio::time::sleep".to_owned()),
        ]);
        facts
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        // A LocalSet is !Send, so each block_on gets its own instead of storing one.
        let local = tokio::task::LocalSet::new();
        self.rt.block_on(local.run_until(fut))
    }

    fn spawn<F>(
        &self,
        fut: F,
    ) -> impl Future<Output = Result<F::Output, JoinError>> + Send + 'static + use<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = tokio::task::spawn_local(fut);
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
    use std::thread::{self, ThreadId};

    #[test]
    fn spawned_tasks_run_on_the_block_on_thread() {
        let rt = TokioLocalSetRuntime::new().unwrap();
        let caller = thread::current().id();
        let seen: Vec<ThreadId> = rt.block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    rt.spawn(async {
                        tokio::task::yield_now().await;
                        thread::current().id()
                    })
                })
                .collect();
            let mut seen = Vec::new();
            for t in tasks {
                seen.push(t.await.unwrap());
            }
            seen
        });
        assert!(
            seen.iter().all(|id| *id == caller),
            "{seen:?} vs {caller:?}"
        );
    }

    #[test]
    fn facts_say_one_thread() {
        let facts = TokioLocalSetRuntime::new().unwrap().describe();
        assert_eq!(facts.worker_threads, 1);
        assert!(facts.scheduler.contains("LocalSet"));
    }
}
