//! The figures of one backend, as `overhead.json` holds them: what [`super::measure`]
//! collects and [`super::render`] shows.

use crate::affinity::Split;
use serde::{Deserialize, Serialize};

/// Everything measured for one backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct BackendOverhead {
    pub(crate) backend: String,
    pub(crate) worker_threads: usize,
    /// (N, p50, p99, max, samples): measured TTFT − 50 ms on `fixed`, ms.
    pub(crate) ttft_bias_ms: Vec<TtftBias>,
    /// (N, mean measured efficiency over runs) on the ideal device.
    pub(crate) efficiency: Vec<(usize, f64)>,
    /// The same for `ideal-64-long` (520 ms calls instead of 200 ms).
    #[serde(default)]
    pub(crate) efficiency_long_calls: Vec<(usize, f64)>,
    /// (N, output tokens per client CPU-second, client CPU-s per wall-s) on `null`.
    pub(crate) ingest: Vec<Ingest>,
    /// (N, client CPU µs per call in the concurrent phase, user + system) on `fixed`: what
    /// one call (connect, request, response head, its tokens, close) costs the client when N
    /// start together; N times it is the CPU a burst needs before its last call is served.
    #[serde(default)]
    pub(crate) cpu_per_call_us: Vec<(usize, f64)>,
    /// (N, peak RSS KiB) of the same small run.
    pub(crate) peak_rss_kib: Vec<(usize, u64)>,
    /// Problems: failed runs, client-bound warnings.
    pub(crate) notes: Vec<String>,
    /// CPUs of simulator and client when run with `--pin`; `None`: they shared every CPU.
    #[serde(default)]
    pub(crate) pinned: Option<Split>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TtftBias {
    pub(crate) agents: usize,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) samples: usize,
    /// The simulator's own share, for the same calls: how late each first token left the
    /// server (handed to its connection) after its schedule, p50/p99, ms. `None` when the
    /// server's samples could not be matched to the calls (a failed call).
    #[serde(default)]
    pub(crate) server_p50_ms: Option<f64>,
    #[serde(default)]
    pub(crate) server_p99_ms: Option<f64>,
    /// One-call-per-agent probes with N > 1, mean over runs: the client's t_send stamps of
    /// the burst, last − first, ms.
    #[serde(default)]
    pub(crate) send_spread_ms: Option<f64>,
    /// The same burst's requests arriving at the server, last − first, ms: the time to get
    /// N requests in, as the server saw it (the client's connects and writes plus the
    /// simulator's accepts and reads, which share the machine's cores).
    #[serde(default)]
    pub(crate) arrival_spread_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ingest {
    pub(crate) agents: usize,
    pub(crate) tokens_per_cpu_s: f64,
    pub(crate) busy_cores: f64,
    pub(crate) tokens: u64,
}

impl BackendOverhead {
    /// Extra KiB per extra concurrent agent, from N=1 to `n`.
    pub(crate) fn kib_per_agent(&self, n: usize) -> Option<f64> {
        let at = |k: usize| self.peak_rss_kib.iter().find(|(a, _)| *a == k).map(|x| x.1);
        Some((at(n)? as f64 - at(1)? as f64) / (n - 1) as f64)
    }

    pub(crate) fn bias(&self, n: usize) -> Option<&TtftBias> {
        self.ttft_bias_ms.iter().find(|b| b.agents == n)
    }

    pub(crate) fn eff(&self, n: usize) -> Option<f64> {
        self.efficiency.iter().find(|e| e.0 == n).map(|e| e.1)
    }

    pub(crate) fn ingest_at(&self, n: usize) -> Option<&Ingest> {
        self.ingest.iter().find(|i| i.agents == n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kib_per_agent_divides_by_extra_agents() {
        let o = BackendOverhead {
            peak_rss_kib: vec![(1, 10_000), (64, 10_630)],
            ..Default::default()
        };
        assert_eq!(o.kib_per_agent(64), Some(10.0));
        assert_eq!(o.kib_per_agent(1024), None);
        assert!(super::super::render::markdown(&[o], 1).contains("<svg"));
    }
}
