//! Percentile-bootstrap confidence intervals, reproducible from a seed.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::summary::percentile_sorted;
use super::{check_len, is_constant, mean, StatsError};

/// How to bootstrap: number of resamples, RNG seed and confidence level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    /// Number of resamples (default 10,000).
    pub resamples: usize,
    /// Seed of the ChaCha8 generator (default 0).
    pub seed: u64,
    /// Confidence level in (0, 1) (default 0.95).
    pub level: f64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            resamples: 10_000,
            seed: 0,
            level: 0.95,
        }
    }
}

impl BootstrapConfig {
    /// The default configuration with another seed.
    pub fn with_seed(seed: u64) -> Self {
        BootstrapConfig {
            seed,
            ..Self::default()
        }
    }
}

/// A bootstrap confidence interval, with what is needed to reproduce it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapCi {
    /// The statistic on the original sample(s), in the values' unit.
    pub estimate: f64,
    /// Lower bound: the (1 - level)/2 percentile of the resampled statistics.
    pub lo: f64,
    /// Upper bound: the (1 + level)/2 percentile of the resampled statistics.
    pub hi: f64,
    pub level: f64,
    pub seed: u64,
    pub resamples: usize,
}

/// Percentile-bootstrap confidence interval of the mean of `xs`.
///
/// Each resample draws n values with replacement; the bounds are percentiles (linear
/// interpolation, see [`super::percentile`]) of the resampled means, as
/// `scipy.stats.bootstrap((xs,), numpy.mean, method="percentile")`. Resample j draws from
/// ChaCha8 keyed by the little-endian seed (zero-padded to 32 bytes) on stream j, with
/// unbiased bounded integers (Lemire's method): identical on every platform.
///
/// Needs two values; a constant sample gives lo = hi = its value.
pub fn bootstrap_mean_ci(xs: &[f64], config: &BootstrapConfig) -> Result<BootstrapCi, StatsError> {
    check_len(0, xs, 2)?;
    check_config(config)?;
    let constant = is_constant(xs);
    let means = resample(config, |rng| resampled_mean(xs, constant, rng));
    Ok(interval(mean(xs), means, config))
}

/// Percentile-bootstrap confidence interval of mean(a) - mean(b) for independent samples:
/// each resample draws `a` and then `b` with replacement, each from itself, on the same
/// stream (a constant sample draws nothing). See [`bootstrap_mean_ci`] for the rest.
pub fn bootstrap_mean_diff_ci(
    a: &[f64],
    b: &[f64],
    config: &BootstrapConfig,
) -> Result<BootstrapCi, StatsError> {
    check_len(0, a, 2)?;
    check_len(1, b, 2)?;
    check_config(config)?;
    let (constant_a, constant_b) = (is_constant(a), is_constant(b));
    let diffs = resample(config, |rng| {
        resampled_mean(a, constant_a, rng) - resampled_mean(b, constant_b, rng)
    });
    Ok(interval(mean(a) - mean(b), diffs, config))
}

fn check_config(config: &BootstrapConfig) -> Result<(), StatsError> {
    if config.resamples == 0 {
        return Err(StatsError::InvalidParameter {
            name: "resamples",
            value: 0.0,
        });
    }
    if !(config.level > 0.0 && config.level < 1.0) {
        return Err(StatsError::InvalidParameter {
            name: "level",
            value: config.level,
        });
    }
    Ok(())
}

/// The statistic of each resample, resample j drawing from its own stream j: resamples
/// are independent of each other, so more resamples extend the set rather than reshuffle
/// it, and any split of the work (across threads, say) gives the same numbers.
fn resample(
    config: &BootstrapConfig,
    mut statistic: impl FnMut(&mut ChaCha8Rng) -> f64,
) -> Vec<f64> {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&config.seed.to_le_bytes());
    (0..config.resamples)
        .map(|j| {
            let mut rng = ChaCha8Rng::from_seed(key);
            rng.set_stream(j as u64);
            statistic(&mut rng)
        })
        .collect()
}

fn interval(estimate: f64, mut stats: Vec<f64>, config: &BootstrapConfig) -> BootstrapCi {
    stats.sort_unstable_by(f64::total_cmp);
    let tail = (1.0 - config.level) / 2.0 * 100.0;
    BootstrapCi {
        estimate,
        lo: percentile_sorted(&stats, tail),
        hi: percentile_sorted(&stats, 100.0 - tail),
        level: config.level,
        seed: config.seed,
        resamples: config.resamples,
    }
}

/// Mean of one resample of `xs` drawn with replacement; exactly the value for a constant
/// sample (whose resampled means would otherwise carry rounding noise).
fn resampled_mean(xs: &[f64], constant: bool, rng: &mut ChaCha8Rng) -> f64 {
    if constant {
        return xs[0];
    }
    let n = xs.len();
    // Four partial sums break the chain of dependent additions: about 1.8x faster.
    let mut partial = [0.0; 4];
    match u32::try_from(n) {
        Ok(n32) => {
            for i in 0..n {
                partial[i % 4] += xs[index_u32(rng, n32)];
            }
        }
        Err(_) => {
            for i in 0..n {
                partial[i % 4] += xs[index_u64(rng, n as u64)];
            }
        }
    }
    ((partial[0] + partial[1]) + (partial[2] + partial[3])) / n as f64
}

/// Uniform index in 0..n without modulo bias (Lemire, "Fast random integer generation in an
/// interval", 2019), spelled out so the stream does not depend on rand's sampling code.
fn index_u32(rng: &mut ChaCha8Rng, n: u32) -> usize {
    let mut m = u64::from(rng.next_u32()) * u64::from(n);
    if (m as u32) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u32) < threshold {
            m = u64::from(rng.next_u32()) * u64::from(n);
        }
    }
    (m >> 32) as usize
}

/// [`index_u32`] for samples of 2^32 values or more.
fn index_u64(rng: &mut ChaCha8Rng, n: u64) -> usize {
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::fixtures::{PY, RUST};

    /// Deterministic, roughly normal test data: sums of 12 uniforms from ChaCha8 stream 99.
    fn normalish(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let s: f64 = (0..12).map(|_| rng.next_u32() as f64 / 4294967296.0).sum();
                100.0 + 10.0 * (s - 6.0)
            })
            .collect()
    }

    #[test]
    fn same_seed_same_interval() {
        let config = BootstrapConfig::with_seed(42);
        let a = bootstrap_mean_ci(&PY, &config).unwrap();
        let b = bootstrap_mean_ci(&PY, &config).unwrap();
        assert_eq!(a, b);
        let c = bootstrap_mean_ci(&PY, &BootstrapConfig::with_seed(43)).unwrap();
        assert_ne!((a.lo, a.hi), (c.lo, c.hi));
        assert_eq!((a.seed, a.resamples, a.level), (42, 10_000, 0.95));
    }

    #[test]
    fn interval_is_pinned_across_platforms() {
        // Our own output, not a reference value: it pins the resampling stream (ChaCha8,
        // stream per resample, Lemire indices) so any change to it is deliberate.
        let config = BootstrapConfig::with_seed(7);
        let ci = bootstrap_mean_ci(&PY, &config).unwrap();
        assert_eq!((ci.lo, ci.hi), (69.968, 86.108));
        let ci = bootstrap_mean_ci(&normalish(200, 3), &config).unwrap();
        assert_eq!((ci.lo, ci.hi), (98.98863740124246, 101.74606572545308));
        let ci = bootstrap_mean_diff_ci(&normalish(30, 4), &normalish(40, 5), &config).unwrap();
        assert_eq!((ci.lo, ci.hi), (-5.29177899686232, 4.9819652355998745));
    }

    #[test]
    fn agrees_loosely_with_scipy() {
        // scipy.stats.bootstrap((x,), numpy.mean, method="percentile", n_resamples=10000,
        // random_state=1): RUST (96.268, 98.36), PY (69.968, 86.134); and for
        // mean(a) - mean(b) over (RUST, PY): (10.858, 27.442). Different generator, so
        // compare to within resampling noise only.
        let config = BootstrapConfig::default();
        let cases = [
            (
                bootstrap_mean_ci(&RUST, &config).unwrap(),
                96.268,
                98.36,
                0.1,
            ),
            (
                bootstrap_mean_ci(&PY, &config).unwrap(),
                69.968,
                86.134,
                0.5,
            ),
            (
                bootstrap_mean_diff_ci(&RUST, &PY, &config).unwrap(),
                10.858,
                27.442,
                0.5,
            ),
        ];
        for (ci, lo, hi, tol) in cases {
            assert!(
                (ci.lo - lo).abs() < tol && (ci.hi - hi).abs() < tol,
                "{ci:?}"
            );
        }
    }

    #[test]
    fn interval_contains_the_estimate() {
        let config = BootstrapConfig::with_seed(1);
        for xs in [&RUST[..], &PY[..], &normalish(50, 3)] {
            let ci = bootstrap_mean_ci(xs, &config).unwrap();
            assert_eq!(ci.estimate, mean(xs));
            assert!(ci.lo < ci.estimate && ci.estimate < ci.hi, "{ci:?}");
        }
        let ci = bootstrap_mean_diff_ci(&RUST, &PY, &config).unwrap();
        assert_eq!(ci.estimate, mean(&RUST) - mean(&PY));
        assert!(ci.lo < ci.estimate && ci.estimate < ci.hi, "{ci:?}");
    }

    #[test]
    fn interval_shrinks_like_one_over_root_n() {
        // Fewer resamples than the default keep this quick in debug builds.
        let config = BootstrapConfig {
            resamples: 2_000,
            ..BootstrapConfig::with_seed(5)
        };
        let width = |n| {
            let ci = bootstrap_mean_ci(&normalish(n, 11), &config).unwrap();
            ci.hi - ci.lo
        };
        let (w25, w100, w1600) = (width(25), width(100), width(1600));
        assert!(w100 < w25 && w1600 < w100);
        // 64x the values: about an eighth of the width.
        let ratio = w25 / w1600;
        assert!((5.0..11.0).contains(&ratio), "{ratio}");
        // Width near 2 * 1.96 * sd / sqrt(n) with sd = 10: 0.98 at n = 1600.
        assert!((0.85..1.12).contains(&w1600), "{w1600}");
    }

    #[test]
    fn difference_flips_sign_with_order() {
        let config = BootstrapConfig::with_seed(9);
        let ab = bootstrap_mean_diff_ci(&RUST, &PY, &config).unwrap();
        let ba = bootstrap_mean_diff_ci(&PY, &RUST, &config).unwrap();
        assert_eq!(ab.estimate, -ba.estimate);
        assert!(ab.lo > 0.0 && ba.hi < 0.0);
    }

    #[test]
    fn degenerate_input() {
        let config = BootstrapConfig::default();
        assert_eq!(
            bootstrap_mean_ci(&[], &config),
            Err(StatsError::Empty { sample: 0 })
        );
        assert!(matches!(
            bootstrap_mean_ci(&[1.0], &config),
            Err(StatsError::TooFew { needed: 2, .. })
        ));
        assert!(matches!(
            bootstrap_mean_ci(&[1.0, f64::NAN], &config),
            Err(StatsError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            bootstrap_mean_diff_ci(&RUST, &[1.0], &config),
            Err(StatsError::TooFew { sample: 1, .. })
        ));
        let zero = BootstrapConfig {
            resamples: 0,
            ..config
        };
        assert!(matches!(
            bootstrap_mean_ci(&RUST, &zero),
            Err(StatsError::InvalidParameter {
                name: "resamples",
                ..
            })
        ));
        for level in [0.0, 1.0, f64::NAN] {
            let bad = BootstrapConfig { level, ..config };
            assert!(matches!(
                bootstrap_mean_ci(&RUST, &bad),
                Err(StatsError::InvalidParameter { name: "level", .. })
            ));
        }
        // A constant sample: every resample has the same mean.
        let ci = bootstrap_mean_ci(&[0.1; 3], &config).unwrap();
        assert_eq!((ci.lo, ci.estimate, ci.hi), (0.1, 0.1, 0.1));
        let ci = bootstrap_mean_diff_ci(&[0.3; 3], &[0.1; 5], &config).unwrap();
        assert_eq!((ci.lo, ci.hi), (ci.estimate, ci.estimate));
        assert_eq!(ci.estimate, 0.3 - 0.1);
    }

    #[test]
    fn more_resamples_extend_the_set() {
        let xs = normalish(100, 8);
        let few = BootstrapConfig {
            resamples: 300,
            ..BootstrapConfig::with_seed(3)
        };
        let many = BootstrapConfig {
            resamples: 1_000,
            ..few
        };
        let statistic = |rng: &mut ChaCha8Rng| resampled_mean(&xs, false, rng);
        assert_eq!(resample(&few, statistic), resample(&many, statistic)[..300]);
    }

    #[test]
    fn indices_are_uniform() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut counts = [0u32; 7];
        for _ in 0..70_000 {
            counts[index_u32(&mut rng, 7)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[index_u64(&mut rng, 3)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
    }
}
