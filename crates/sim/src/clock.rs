//! Wake-ups at exact instants.
//!
//! tokio's timer works in whole milliseconds and wakes 1-2 ms after a deadline. That is a
//! constant bias a reference must not have (the harness measures its own TTFT overhead
//! against the simulator's schedule), so token deadlines are kept by one timer thread that
//! sleeps on a condition variable with nanosecond timeouts and wakes tasks when they are due
//! (typically within ~0.1 ms). The thread is started on first use and idles when nothing waits.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// A task to wake at `at`; ordered so the heap's top is the earliest.
struct Entry {
    at: Instant,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at)
    }
}

struct Timer {
    queue: Mutex<BinaryHeap<Entry>>,
    changed: Condvar,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            queue: Mutex::new(BinaryHeap::new()),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("chimeraforge-sim-timer".to_string())
            .spawn(move || run(timer))
            .expect("spawn the simulator's timer thread");
        timer
    })
}

fn run(timer: &Timer) {
    let mut queue = timer.queue.lock().expect("timer queue");
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        while queue.peek().is_some_and(|e| e.at <= now) {
            due.push(queue.pop().expect("peeked").waker);
        }
        if !due.is_empty() {
            drop(queue);
            due.into_iter().for_each(Waker::wake);
            queue = timer.queue.lock().expect("timer queue");
            continue;
        }
        queue = match queue.peek().map(|e| e.at) {
            Some(at) => {
                timer
                    .changed
                    .wait_timeout(queue, at - now)
                    .expect("timer queue")
                    .0
            }
            None => timer.changed.wait(queue).expect("timer queue"),
        };
    }
}

/// A future that completes at `at`, not before.
pub(crate) struct SleepUntil {
    at: Instant,
}

pub(crate) fn sleep_until(at: Instant) -> SleepUntil {
    SleepUntil { at }
}

/// Sleep until `deadline` on this clock; a past deadline costs nothing.
pub(crate) async fn wait_until(deadline: tokio::time::Instant) {
    if deadline > tokio::time::Instant::now() {
        sleep_until(deadline.into_std()).await;
    }
}

impl Future for SleepUntil {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        let timer = timer();
        let mut queue = timer.queue.lock().expect("timer queue");
        let earliest = queue.peek().is_none_or(|e| self.at < e.at);
        // Re-polls queue the waker again; a stale entry only causes one spurious wake.
        queue.push(Entry {
            at: self.at,
            waker: cx.waker().clone(),
        });
        drop(queue);
        if earliest {
            timer.changed.notify_one();
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wakes_at_the_deadline_not_before() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let start = Instant::now();
            let mut lateness = Vec::new();
            for i in 1..=20u32 {
                let at = start + Duration::from_millis(3) * i;
                sleep_until(at).await;
                lateness.push(Instant::now() - at);
            }
            // A wait that is already due does not sleep.
            let before = Instant::now();
            sleep_until(start).await;
            assert!(before.elapsed() < Duration::from_millis(1));
            lateness.sort();
            assert!(lateness[10] < Duration::from_millis(1), "{lateness:?}");
        });
    }

    #[test]
    fn earlier_deadlines_overtake_later_ones() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let start = Instant::now();
            let late = tokio::spawn(sleep_until(start + Duration::from_millis(200)));
            tokio::task::yield_now().await;
            sleep_until(start + Duration::from_millis(5)).await;
            assert!(start.elapsed() < Duration::from_millis(100));
            late.await.unwrap();
            assert!(start.elapsed() >= Duration::from_millis(200));
        });
    }
}
