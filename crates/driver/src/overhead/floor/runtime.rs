//! The floor's runtime: one OS thread per task, each driving its one future with a parker
//! (a condvar) and the timers of its own sleeps. No reactor: the client's IO blocks the
//! task's thread, bounded by the thread's earliest timer (`io_limit`).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use chimeraforge_core::{AsyncRuntime, JoinError, RuntimeFacts};

/// Thread-per-task: `spawn` starts a thread, `sleep` is a timer of the polling thread.
pub struct ThreadPerTask;

impl AsyncRuntime for ThreadPerTask {
    fn name(&self) -> &'static str {
        super::NAME
    }

    fn describe(&self) -> RuntimeFacts {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        RuntimeFacts {
            scheduler: "one OS thread per task (the kernel schedules)".to_owned(),
            // Every task has a thread; what bounds them is the cores they share.
            worker_threads: cores,
            http_client: "chimeraforge floor: blocking std::net, hand-rolled HTTP/1.1".to_owned(),
            read_buffer_bytes: Some(super::client::READ_BUFFER_BYTES),
            notes: vec![
                (
                    "worker_threads_detail".to_owned(),
                    "a thread per task; the recorded count is the cores they share".to_owned(),
                ),
                (
                    "io".to_owned(),
                    "blocking reads and writes on the task's own thread, each bounded by the \
                     thread's earliest timer (SO_RCVTIMEO / SO_SNDTIMEO)"
                        .to_owned(),
                ),
                (
                    "timer".to_owned(),
                    "a condvar wait until the thread's earliest sleep".to_owned(),
                ),
            ],
        }
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        block_on(fut)
    }

    fn spawn<F>(
        &self,
        fut: F,
    ) -> impl Future<Output = Result<F::Output, JoinError>> + Send + 'static + use<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let slot = Arc::new(JoinSlot::<F::Output>::default());
        let done = Arc::clone(&slot);
        // On the heap once, as other runtimes keep their tasks: moving it to the thread and
        // into `block_on` moves a pointer, never copies the future through the stack.
        let fut = Box::pin(fut);
        let started = std::thread::Builder::new()
            .name("floor-task".to_owned())
            .spawn(move || {
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| block_on(fut)));
                done.complete(out.map_err(|p| JoinError::from_panic(&*p)));
            })
            .map(drop)
            .map_err(|e| JoinError(format!("cannot start a task thread: {e}")));
        async move {
            started?;
            Joining(slot).await
        }
    }

    fn sleep(&self, dur: Duration) -> impl Future<Output = ()> + Send + 'static + use<> {
        Sleep {
            deadline: Instant::now() + dur,
            registered: None,
        }
    }
}

/// Run `fut` to completion on this thread.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let parker = Arc::new(Parker::default());
    let waker = Waker::from(Arc::clone(&parker));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    let timers = TIMERS.with(Arc::clone);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        parker.park(&timers);
    }
}

/// How long this thread's IO may block: until its earliest timer. `Some(ZERO)`: a timer is
/// due, so the IO must yield to it now; `None`: no timer, block as long as it takes.
pub(crate) fn io_limit() -> Option<Duration> {
    TIMERS.with(|t| {
        t.earliest(true)
            .map(|d| d.saturating_duration_since(Instant::now()))
    })
}

/// A future that is pending once (waking itself), so that whatever it races registers its
/// timers before the blocking IO that follows bounds itself by them.
pub(crate) async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// Wakes the thread parked in [`block_on`].
#[derive(Default)]
struct Parker {
    state: Mutex<ParkState>,
    cv: Condvar,
}

#[derive(Default)]
struct ParkState {
    notified: bool,
    /// The thread waits on the condvar: only then does a wake need a syscall (a task that
    /// wakes itself, as [`yield_once`] does, needs none).
    waiting: bool,
}

impl Parker {
    /// Wait for a wake or this thread's next timer, whichever is first; a timer that passed
    /// is marked fired and its waker woken.
    fn park(&self, timers: &Timers) {
        let mut state = lock(&self.state);
        loop {
            if std::mem::take(&mut state.notified) {
                return;
            }
            state.waiting = true;
            match timers.earliest(false) {
                None => state = self.cv.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(due) => {
                    let now = Instant::now();
                    if due <= now {
                        state.waiting = false;
                        drop(state);
                        timers.fire(now);
                        return;
                    }
                    state = self
                        .cv
                        .wait_timeout(state, due - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
            state.waiting = false;
        }
    }
}

impl Wake for Parker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut state = lock(&self.state);
        state.notified = true;
        if state.waiting {
            self.cv.notify_one();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    static TIMERS: Arc<Timers> = Arc::new(Timers::default());
}

static NEXT_TIMER: AtomicU64 = AtomicU64::new(0);

/// The pending sleeps of one thread, by deadline.
#[derive(Default)]
struct Timers(Mutex<BTreeMap<(Instant, u64), (Waker, bool)>>);

impl Timers {
    /// The earliest deadline; `fired`: also those already fired (their sleep not yet polled).
    fn earliest(&self, fired: bool) -> Option<Instant> {
        lock(&self.0)
            .iter()
            .find(|(_, (_, f))| fired || !*f)
            .map(|((due, _), _)| *due)
    }

    fn fire(&self, now: Instant) {
        let mut due = Vec::new();
        for ((at, _), (waker, fired)) in lock(&self.0).iter_mut() {
            if *at > now {
                break;
            }
            if !*fired {
                *fired = true;
                due.push(waker.clone());
            }
        }
        due.into_iter().for_each(Waker::wake);
    }
}

/// `sleep`: ready at its deadline; pending, it is a timer of the thread that polled it.
struct Sleep {
    deadline: Instant,
    registered: Option<(Arc<Timers>, u64)>,
}

impl Sleep {
    fn deregister(&mut self) {
        if let Some((timers, id)) = self.registered.take() {
            lock(&timers.0).remove(&(self.deadline, id));
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.deregister();
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let here = TIMERS.with(Arc::clone);
        match &self.registered {
            Some((timers, id)) if Arc::ptr_eq(timers, &here) => {
                if let Some(entry) = lock(&here.0).get_mut(&(deadline, *id)) {
                    entry.0.clone_from(cx.waker());
                }
            }
            _ => {
                self.deregister();
                let id = NEXT_TIMER.fetch_add(1, Ordering::Relaxed);
                lock(&here.0).insert((deadline, id), (cx.waker().clone(), false));
                self.registered = Some((here, id));
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.deregister();
    }
}

/// A task's output, handed from its thread to whoever awaits it: the output once there,
/// and the waker of whoever waits for it.
struct JoinSlot<T>(Mutex<(Option<Joined<T>>, Option<Waker>)>);

type Joined<T> = Result<T, JoinError>;

impl<T> Default for JoinSlot<T> {
    fn default() -> Self {
        JoinSlot(Mutex::new((None, None)))
    }
}

impl<T> JoinSlot<T> {
    fn complete(&self, out: Result<T, JoinError>) {
        let waker = {
            let mut slot = lock(&self.0);
            slot.0 = Some(out);
            slot.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Awaits a [`JoinSlot`]; dropping it detaches the task (its thread runs on).
struct Joining<T>(Arc<JoinSlot<T>>);

impl<T> Future for Joining<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = lock(&self.0 .0);
        match slot.0.take() {
            Some(out) => Poll::Ready(out),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_runs_on_its_own_thread() {
        let rt = ThreadPerTask;
        let here = std::thread::current().id();
        let there = rt.block_on(async { rt.spawn(async { std::thread::current().id() }).await });
        assert_ne!(there.unwrap(), here);
    }

    #[test]
    fn a_dropped_sleep_leaves_no_timer() {
        let rt = ThreadPerTask;
        rt.block_on(async {
            let mut long = Box::pin(rt.sleep(Duration::from_secs(60)));
            // Polled once (registered), then dropped.
            let raced = futures_or(long.as_mut(), rt.sleep(Duration::from_millis(5))).await;
            assert!(raced);
            drop(long);
            assert_eq!(io_limit(), None);
        });
    }

    /// Poll `a` then `b` until one is ready; true when `b` finished first.
    async fn futures_or(
        mut a: Pin<&mut (impl Future<Output = ()> + ?Sized)>,
        b: impl Future<Output = ()>,
    ) -> bool {
        let mut b = pin!(b);
        std::future::poll_fn(|cx| {
            if a.as_mut().poll(cx).is_ready() {
                return Poll::Ready(false);
            }
            b.as_mut().poll(cx).map(|_| true)
        })
        .await
    }

    #[test]
    fn io_limit_is_zero_while_a_fired_timer_waits_for_its_sleep() {
        let timers = Timers::default();
        let now = Instant::now();
        let w = Waker::noop().clone();
        lock(&timers.0).insert((now, 0), (w.clone(), false));
        lock(&timers.0).insert((now + Duration::from_secs(9), 1), (w, false));
        timers.fire(now);
        assert_eq!(timers.earliest(false), Some(now + Duration::from_secs(9)));
        assert_eq!(timers.earliest(true), Some(now));
    }
}
