//! The figures of one backend, as `overhead.json` holds them: what [`super::measure`]
//! collects and [`super::render`] shows.

use crate::affinity::Split;
use chimeraforge_core::ConnectionPolicy;
use serde::{Deserialize, Serialize};

/// Everything measured for one backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct BackendOverhead {
    pub(crate) backend: String,
    /// The connection policy its clients ran under (`overhead` measures each backend once
    /// per policy); `None` in an `overhead.json` written before it ran both.
    #[serde(default)]
    pub(crate) connection: Option<ConnectionPolicy>,
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
    /// This backend's figures as multiples of the floor's under the same connection policy,
    /// measured in the same invocation; `None` for the floor itself, or when the floor has
    /// no figures under this policy.
    #[serde(default)]
    pub(crate) vs_floor: Option<VsFloor>,
}

/// A backend's figures divided by the floor's (1.0: as cheap as the floor), for each N
/// both have.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct VsFloor {
    pub(crate) ttft_bias: Vec<BiasRatio>,
    /// (N, client CPU per call / the floor's).
    pub(crate) cpu_per_call: Vec<(usize, f64)>,
}

/// TTFT bias p50 and p99 at N agents, each divided by the floor's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BiasRatio {
    pub(crate) agents: usize,
    pub(crate) p50: Option<f64>,
    pub(crate) p99: Option<f64>,
}

/// `value / floor`, when the floor's is positive (a ratio to nothing is no ratio).
fn ratio(value: f64, floor: f64) -> Option<f64> {
    (floor > 0.0 && value.is_finite()).then(|| value / floor)
}

impl VsFloor {
    /// `r`'s figures against `floor`'s.
    pub(crate) fn of(r: &BackendOverhead, floor: &BackendOverhead) -> VsFloor {
        let ttft_bias = r
            .ttft_bias_ms
            .iter()
            .filter_map(|b| {
                let f = floor.bias(b.agents)?;
                Some(BiasRatio {
                    agents: b.agents,
                    p50: ratio(b.p50_ms, f.p50_ms),
                    p99: ratio(b.p99_ms, f.p99_ms),
                })
            })
            .collect();
        let cpu_per_call = r
            .cpu_per_call_us
            .iter()
            .filter_map(|&(n, us)| {
                let f = floor.cpu_per_call_us.iter().find(|c| c.0 == n)?;
                Some((n, ratio(us, f.1)?))
            })
            .collect();
        VsFloor {
            ttft_bias,
            cpu_per_call,
        }
    }

    pub(crate) fn bias(&self, n: usize) -> Option<&BiasRatio> {
        self.ttft_bias.iter().find(|b| b.agents == n)
    }

    pub(crate) fn cpu(&self, n: usize) -> Option<f64> {
        self.cpu_per_call.iter().find(|c| c.0 == n).map(|c| c.1)
    }
}

/// Set every backend's [`VsFloor`] from the floor's figures among `results` under the same
/// connection policy (the entry named [`super::floor::NAME`] with that policy): a
/// keep-alive backend is divided by the keep-alive floor, a fresh one by the fresh floor.
/// Without such a floor, none.
pub(crate) fn with_floor_ratios(results: &mut [BackendOverhead]) {
    let floors: Vec<BackendOverhead> = results.iter().filter(|r| r.is_floor()).cloned().collect();
    for r in results.iter_mut() {
        let floor = floors.iter().find(|f| f.connection == r.connection);
        r.vs_floor = match floor {
            Some(f) if !r.is_floor() => Some(VsFloor::of(r, f)),
            _ => None,
        };
    }
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
    /// These are the floor's figures, not a backend's.
    pub(crate) fn is_floor(&self) -> bool {
        self.backend == super::floor::NAME
    }

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

    fn bias(agents: usize, p50_ms: f64, p99_ms: f64) -> TtftBias {
        TtftBias {
            agents,
            p50_ms,
            p99_ms,
            max_ms: p99_ms,
            samples: 10,
            server_p50_ms: None,
            server_p99_ms: None,
            send_spread_ms: None,
            arrival_spread_ms: None,
        }
    }

    #[test]
    fn ratios_divide_by_the_floor_where_both_have_a_figure() {
        let floor = BackendOverhead {
            backend: super::super::floor::NAME.into(),
            ttft_bias_ms: vec![bias(1, 0.2, 0.5), bias(64, 0.0, 2.0)],
            cpu_per_call_us: vec![(1, 100.0), (64, 50.0)],
            ..Default::default()
        };
        let tokio = BackendOverhead {
            backend: "tokio-default".into(),
            ttft_bias_ms: vec![bias(1, 0.3, 1.0), bias(8, 1.0, 1.0), bias(64, 1.0, 5.0)],
            cpu_per_call_us: vec![(1, 150.0), (8, 10.0), (64, 200.0)],
            ..Default::default()
        };
        let mut all = vec![floor, tokio];
        with_floor_ratios(&mut all);
        assert_eq!(all[0].vs_floor, None, "the floor is the reference");
        let v = all[1].vs_floor.as_ref().unwrap();
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        assert!(close(v.bias(1).unwrap().p50, 1.5) && close(v.bias(1).unwrap().p99, 2.0));
        // A floor p50 of 0 gives no ratio; N = 8 has no floor figure at all.
        assert_eq!(v.bias(64).unwrap().p50, None);
        assert!(close(v.bias(64).unwrap().p99, 2.5));
        assert!(v.bias(8).is_none() && v.cpu(8).is_none());
        assert_eq!(v.cpu_per_call, [(1, 1.5), (64, 4.0)]);
        // Without the floor, no ratios.
        let mut alone = vec![all[1].clone()];
        with_floor_ratios(&mut alone);
        assert_eq!(alone[0].vs_floor, None);
    }

    /// Both policies in one invocation: each backend is divided by the floor of its own
    /// policy, never by the other one's; a policy without a floor gives no ratios.
    #[test]
    fn ratios_pair_each_backend_with_the_floor_of_its_policy() {
        use chimeraforge_core::ConnectionPolicy::*;
        let row = |backend: &str, connection, p99_ms, cpu_us| BackendOverhead {
            backend: backend.into(),
            connection: Some(connection),
            ttft_bias_ms: vec![bias(64, 1.0, p99_ms)],
            cpu_per_call_us: vec![(64, cpu_us)],
            ..Default::default()
        };
        let floor = super::super::floor::NAME;
        let mut all = vec![
            row(floor, KeepAlive, 2.0, 50.0),
            row("tokio-default", KeepAlive, 3.0, 100.0),
            row(floor, Fresh, 8.0, 200.0),
            row("tokio-default", Fresh, 16.0, 300.0),
        ];
        with_floor_ratios(&mut all);
        let v = |i: usize| all[i].vs_floor.clone().unwrap();
        assert_eq!(v(1).bias(64).unwrap().p99, Some(1.5));
        assert_eq!(v(1).cpu(64), Some(2.0));
        assert_eq!(v(3).bias(64).unwrap().p99, Some(2.0));
        assert_eq!(v(3).cpu(64), Some(1.5));
        assert_eq!(all[2].vs_floor, None, "the fresh floor is a reference too");
        // Only a keep-alive floor: the fresh backend has nothing to be divided by.
        let mut no_fresh_floor = vec![all[0].clone(), all[3].clone()];
        with_floor_ratios(&mut no_fresh_floor);
        assert_eq!(no_fresh_floor[1].vs_floor, None);
    }
}
