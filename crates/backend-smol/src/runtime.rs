//! An `async_executor::Executor` polled by a fixed number of threads.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use async_executor::{Executor, Task};
use chimeraforge_core::{
    AsyncRuntime, Backend, BackendError, Built, ClientOptions, JoinError, RuntimeFacts, ThreadCount,
};
use futures_lite::FutureExt;

use crate::client::IsahcClient;

/// Environment variable setting how many threads poll `smol-1kb` tasks.
pub const THREADS_ENV: &str = "CHIMERAFORGE_SMOL_THREADS";

/// async-executor + async-io with isahc read through a 1 KiB buffer.
pub struct Smol1Kb;

impl Backend for Smol1Kb {
    type Runtime = SmolRuntime;
    type Client = IsahcClient;

    const NAME: &'static str = "smol-1kb";

    fn build(opts: &ClientOptions) -> Result<Built<Self>, BackendError> {
        let fail = |reason: String| BackendError {
            backend: Self::NAME,
            reason,
        };
        let setting = ThreadCount::from_env(THREADS_ENV).map_err(fail)?;
        let rt = SmolRuntime::new(setting).map_err(fail)?;
        let client = IsahcClient::new(opts).map_err(fail)?;
        Ok((Arc::new(rt), Arc::new(client)))
    }
}

/// An executor polled by `threads` threads: `threads - 1` helpers plus the caller of
/// `block_on`, which runs the executor while it waits.
pub struct SmolRuntime {
    ex: Arc<Executor<'static>>,
    threads: ThreadCount,
    /// Dropping it closes the channel, which ends every helper's `run`.
    stop: Option<async_channel::Sender<()>>,
    helpers: Vec<JoinHandle<()>>,
}

impl SmolRuntime {
    fn new(threads: ThreadCount) -> Result<Self, String> {
        let ex = Arc::new(Executor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let mut helpers = Vec::with_capacity(threads.get() - 1);
        for i in 1..threads.get() {
            let ex = Arc::clone(&ex);
            let stopped = stopped.clone();
            let helper = std::thread::Builder::new()
                .name(format!("smol-1kb-worker-{i}"))
                .spawn(move || {
                    let _ = async_io::block_on(ex.run(stopped.recv()));
                })
                .map_err(|e| format!("cannot start executor thread: {e}"))?;
            helpers.push(helper);
        }
        Ok(SmolRuntime {
            ex,
            threads,
            stop: Some(stop),
            helpers,
        })
    }
}

impl Drop for SmolRuntime {
    fn drop(&mut self) {
        self.stop.take();
        for helper in self.helpers.drain(..) {
            let _ = helper.join();
        }
    }
}

impl AsyncRuntime for SmolRuntime {
    fn name(&self) -> &'static str {
        Smol1Kb::NAME
    }

    fn describe(&self) -> RuntimeFacts {
        let source = match self.threads {
            ThreadCount::Env(_) => format!("env {THREADS_ENV}"),
            ThreadCount::Default(_) => "available_parallelism".to_owned(),
        };
        let mut facts = IsahcClient::facts();
        facts.scheduler = "async-executor (global queue + work stealing)".to_owned();
        facts.worker_threads = self.threads.get();
        facts.notes.extend([
            ("worker_threads_source".to_owned(), source),
            (
                "worker_threads_detail".to_owned(),
                format!(
                    "{} helper thread(s) + the block_on caller, which runs the executor too",
                    self.threads.get() - 1
                ),
            ),
            ("spawn".to_owned(), "Executor::spawn".to_owned()),
            ("timer".to_owned(), "async_io::Timer".to_owned()),
            (
                "reactor".to_owned(),
                "async-io: driven by threads blocked in block_on, else its own 'async-io' thread"
                    .to_owned(),
            ),
        ]);
        facts
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        async_io::block_on(self.ex.run(fut))
    }

    fn spawn<F>(
        &self,
        fut: F,
    ) -> impl Future<Output = Result<F::Output, JoinError>> + Send + 'static + use<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = self.ex.spawn(AssertUnwindSafe(fut).catch_unwind());
        let handle = Detaching(Some(task));
        async move { handle.await.map_err(|panic| JoinError::from_panic(&*panic)) }
    }

    fn sleep(&self, dur: Duration) -> impl Future<Output = ()> + Send + 'static + use<> {
        async move {
            async_io::Timer::after(dur).await;
        }
    }
}

/// A task handle that detaches on drop, as tokio's and async-std's do.
struct Detaching<T>(Option<Task<T>>);

impl<T> Future for Detaching<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let task = self.0.as_mut().expect("polled after completion");
        let out = task.poll(cx);
        if out.is_ready() {
            self.0 = None;
        }
        out
    }
}

impl<T> Drop for Detaching<T> {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.detach();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn exactly_the_recorded_threads_poll_tasks() {
        let rt = SmolRuntime::new(ThreadCount::Env(3)).unwrap();
        assert_eq!(rt.describe().worker_threads, 3);
        let seen: HashSet<String> = rt.block_on(async {
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    rt.spawn(async {
                        // Block briefly so other threads pick up the rest of the queue.
                        std::thread::sleep(Duration::from_millis(5));
                        std::thread::current().name().unwrap_or("?").to_owned()
                    })
                })
                .collect();
            let mut seen = HashSet::new();
            for t in tasks {
                seen.insert(t.await.unwrap());
            }
            seen
        });
        assert!(seen.len() <= 3, "{seen:?}");
        assert!(seen.len() >= 2, "helpers never polled a task: {seen:?}");
    }

    #[test]
    fn one_thread_means_only_the_caller() {
        let rt = SmolRuntime::new(ThreadCount::Env(1)).unwrap();
        let caller = std::thread::current().id();
        let polled_on = rt.block_on(async {
            rt.spawn(async { std::thread::current().id() })
                .await
                .unwrap()
        });
        assert_eq!(polled_on, caller);
    }

    #[test]
    fn dropped_handle_detaches() {
        let rt = SmolRuntime::new(ThreadCount::Env(2)).unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        rt.block_on(async {
            drop(rt.spawn(async move {
                async_io::Timer::after(Duration::from_millis(20)).await;
                flag.store(true, Ordering::SeqCst);
            }));
            async_io::Timer::after(Duration::from_millis(100)).await;
        });
        assert!(ran.load(Ordering::SeqCst));
    }

    #[test]
    fn drop_joins_helpers() {
        let rt = SmolRuntime::new(ThreadCount::Env(4)).unwrap();
        drop(rt);
    }
}
