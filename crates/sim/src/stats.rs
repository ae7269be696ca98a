//! What a server has done, for tests and the driver.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

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

/// The live counters behind [`SimStats`].
#[derive(Default)]
pub(crate) struct Stats {
    requests: AtomicU64,
    generation_requests: AtomicU64,
    tokens: AtomicU64,
    loads: AtomicU64,
    faults: AtomicU64,
    per_endpoint: Mutex<BTreeMap<String, u64>>,
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
