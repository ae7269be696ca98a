//! What a server has done, for tests and the driver.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    /// TLS handshakes completed (https only): the connections clients opened and kept.
    pub tls_handshakes: u64,
}

/// One streamed first token, timed inside the simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstToken {
    /// Its request had arrived (headers and body read).
    pub arrival: Instant,
    /// It was scheduled for this instant (arrival, or the end of a load, queue wait or
    /// fault stall before the first byte, + TTFT + prefill).
    pub due: Instant,
    /// Its bytes were handed to the connection (hyper writes them in the same poll).
    pub left: Instant,
}

impl FirstToken {
    /// How late it left: `left − due`.
    pub fn late(&self) -> Duration {
        self.left.saturating_duration_since(self.due)
    }
}

/// How many first tokens a server holds until they are taken.
pub const FIRST_TOKEN_SAMPLES: usize = 1 << 16;

/// The live counters behind [`SimStats`].
#[derive(Default)]
pub(crate) struct Stats {
    requests: AtomicU64,
    generation_requests: AtomicU64,
    tokens: AtomicU64,
    loads: AtomicU64,
    faults: AtomicU64,
    tls_handshakes: AtomicU64,
    per_endpoint: Mutex<BTreeMap<String, u64>>,
    first_tokens: Mutex<Vec<FirstToken>>,
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

    pub(crate) fn tls_handshake(&self) {
        self.tls_handshakes.fetch_add(1, Ordering::Relaxed);
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

    /// A streamed first token reached its connection. Keeps at most [`FIRST_TOKEN_SAMPLES`]
    /// until they are taken, so a long-running server nobody asks does not grow without bound.
    pub(crate) fn first_token(&self, t: FirstToken) {
        let mut samples = self.first_tokens.lock().expect("stats lock");
        if samples.len() < FIRST_TOKEN_SAMPLES {
            samples.push(t);
        }
    }

    /// The first tokens recorded since the last call, in the order recorded (see
    /// `SimHandle::take_first_tokens`).
    pub(crate) fn take_first_tokens(&self) -> Vec<FirstToken> {
        std::mem::take(&mut *self.first_tokens.lock().expect("stats lock"))
    }

    pub(crate) fn snapshot(&self) -> SimStats {
        SimStats {
            requests: self.requests.load(Ordering::Relaxed),
            generation_requests: self.generation_requests.load(Ordering::Relaxed),
            tokens: self.tokens.load(Ordering::Relaxed),
            loads: self.loads.load(Ordering::Relaxed),
            faults: self.faults.load(Ordering::Relaxed),
            per_endpoint: self.per_endpoint.lock().expect("stats lock").clone(),
            tls_handshakes: self.tls_handshakes.load(Ordering::Relaxed),
        }
    }
}
