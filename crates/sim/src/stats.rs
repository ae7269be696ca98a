//! What a server has done, for tests and the driver.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A snapshot of a server's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SimStats {
    /// HTTP requests received, all endpoints.
    pub requests: u64,
    /// Generation requests (generate, chat, completions), the count `every_nth_request` uses.
    pub generation_requests: u64,
    /// Tokens sent (or collected for a non-streamed reply).
    pub tokens: u64,
    /// Model loads paid (first use and reloads).
    pub loads: u64,
    /// Faults injected, server-wide or per request.
    pub faults: u64,
    /// Requests per endpoint, keyed like `POST /api/generate`; unknown paths count as `other`.
    pub per_endpoint: BTreeMap<String, u64>,
}

/// How many first-token lateness samples a server holds until they are taken.
pub const FIRST_TOKEN_SAMPLES: usize = 1 << 16;

/// The live counters behind [`SimStats`].
#[derive(Default)]
pub(crate) struct Stats {
    requests: AtomicU64,
    generation_requests: AtomicU64,
    tokens: AtomicU64,
    loads: AtomicU64,
    faults: AtomicU64,
    per_endpoint: Mutex<BTreeMap<String, u64>>,
    first_token_late: Mutex<Vec<Duration>>,
}

impl Stats {
    pub(crate) fn request(&self, endpoint: &str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        *self
            .per_endpoint
            .lock()
            .expect("stats lock")
            .entry(endpoint.to_string())
            .or_default() += 1;
    }

    /// Count a generation request; returns its 1-based number.
    pub(crate) fn generation_request(&self) -> u64 {
        self.generation_requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn token(&self) {
        self.tokens.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn load(&self) {
        self.loads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn fault(&self) {
        self.faults.fetch_add(1, Ordering::Relaxed);
    }

    /// A streamed first token reached its connection this long after its schedule (the
    /// instant the body handed its bytes to hyper, which writes them in the same poll).
    /// Keeps at most [`FIRST_TOKEN_SAMPLES`] until they are taken, so a long-running server
    /// nobody asks does not grow without bound.
    pub(crate) fn first_token_late(&self, late: Duration) {
        let mut samples = self.first_token_late.lock().expect("stats lock");
        if samples.len() < FIRST_TOKEN_SAMPLES {
            samples.push(late);
        }
    }

    /// The first-token lateness samples recorded since the last call, in arrival order.
    pub(crate) fn take_first_token_lateness(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.first_token_late.lock().expect("stats lock"))
    }

    pub(crate) fn snapshot(&self) -> SimStats {
        SimStats {
            requests: self.requests.load(Ordering::Relaxed),
            generation_requests: self.generation_requests.load(Ordering::Relaxed),
            tokens: self.tokens.load(Ordering::Relaxed),
            loads: self.loads.load(Ordering::Relaxed),
            faults: self.faults.load(Ordering::Relaxed),
            per_endpoint: self.per_endpoint.lock().expect("stats lock").clone(),
        }
    }
}
