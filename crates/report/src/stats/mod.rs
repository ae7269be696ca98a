//! Statistics over samples of run metrics, independent of how results are shown.
//!
//! Every function is pure and takes plain `&[f64]` samples (one value per run or per call).
//!
//! # Non-finite input
//! A NaN or infinite value in a sample is rejected with [`StatsError::NonFinite`], never
//! skipped: in a run record it means a broken measurement (say a 0/0 decode rate), and
//! silently dropping it would change `n` behind the reader's back. Filter first if that is
//! really what you want.
//!
//! # Undefined statistics
//! A statistic that is undefined for otherwise valid input (too few values, zero variance)
//! is an `Err` naming the reason, so a report can print "n/a (zero variance)"; call `.ok()`
//! where only presence matters.
//!
//! # Sign conventions
//! Two-sample functions take `(a, b)` and report `a` relative to `b`: a positive Welch `t`,
//! Cohen's d, Cliff's delta or mean difference all mean `a` tends to be larger.

mod bootstrap;
mod correlation;
mod effect_size;
mod fairness;
mod mann_whitney;
mod rank;
mod summary;
mod variance;
mod welch;

pub use bootstrap::{bootstrap_mean_ci, bootstrap_mean_diff_ci, BootstrapCi, BootstrapConfig};
pub use correlation::{pearson, spearman, Correlation};
pub use effect_size::{cliffs_delta, cohens_d, hedges_g};
pub use fairness::jain_index;
pub use mann_whitney::{mann_whitney_u, MannWhitney, MannWhitneyMethod, MANN_WHITNEY_EXACT_MAX_N};
pub(crate) use summary::percentile_sorted;
pub use summary::{percentile, Summary};
pub use variance::{one_way, FTest, VarianceDecomposition};
pub use welch::{welch_t_test, WelchTest};

/// Why a statistic could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// A sample (or group) has no values.
    #[error("sample {sample} is empty")]
    Empty { sample: usize },
    /// A sample has fewer values than the statistic needs.
    #[error("sample {sample} has {got} values, needs at least {needed}")]
    TooFew {
        sample: usize,
        got: usize,
        needed: usize,
    },
    /// A value is NaN or infinite.
    #[error("sample {sample} has non-finite value {value} at index {index}")]
    NonFinite {
        sample: usize,
        index: usize,
        value: f64,
    },
    /// Fewer groups than the statistic needs.
    #[error("{got} groups, needs at least {needed}")]
    TooFewGroups { got: usize, needed: usize },
    /// Paired samples differ in length.
    #[error("paired samples differ in length: {left} vs {right}")]
    LengthMismatch { left: usize, right: usize },
    /// The statistic divides by a variance (or spread) that is zero.
    #[error("zero variance, statistic undefined")]
    ZeroVariance,
    /// A value is negative where only non-negative values make sense.
    #[error("sample {sample} has negative value {value} at index {index}")]
    Negative {
        sample: usize,
        index: usize,
        value: f64,
    },
    /// All values are zero where the statistic divides by their magnitude.
    #[error("all values are zero, statistic undefined")]
    AllZero,
    /// A parameter is out of its range.
    #[error("invalid parameter {name}: {value}")]
    InvalidParameter { name: &'static str, value: f64 },
}

/// Rejects an empty sample or one with a non-finite value; `sample` names it in the error.
pub(crate) fn check(sample: usize, xs: &[f64]) -> Result<(), StatsError> {
    if xs.is_empty() {
        return Err(StatsError::Empty { sample });
    }
    match xs.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(StatsError::NonFinite {
            sample,
            index,
            value: xs[index],
        }),
        None => Ok(()),
    }
}

/// Like [`check`], and requires at least `needed` values.
pub(crate) fn check_len(sample: usize, xs: &[f64], needed: usize) -> Result<(), StatsError> {
    check(sample, xs)?;
    if xs.len() < needed {
        return Err(StatsError::TooFew {
            sample,
            got: xs.len(),
            needed,
        });
    }
    Ok(())
}

/// Compensated (Neumaier) sum, so means of long samples keep full precision.
pub(crate) fn sum(xs: &[f64]) -> f64 {
    let mut total = 0.0;
    let mut compensation = 0.0;
    for &x in xs {
        let t = total + x;
        compensation += if total.abs() >= x.abs() {
            (total - t) + x
        } else {
            (x - t) + total
        };
        total = t;
    }
    total + compensation
}

/// Arithmetic mean of a non-empty sample; exactly the value when all values are equal.
pub(crate) fn mean(xs: &[f64]) -> f64 {
    if is_constant(xs) {
        return xs[0];
    }
    sum(xs) / xs.len() as f64
}

/// Whether every value equals the first, so spreads can be exactly zero rather than rounding
/// noise (the mean of [0.1; 3] is not 0.1 in floating point).
pub(crate) fn is_constant(xs: &[f64]) -> bool {
    xs.iter().all(|&x| x == xs[0])
}

/// Sum of squared deviations from `mean` (corrected two-pass: the second term cancels the
/// rounding error in `mean`).
pub(crate) fn sum_sq_dev(xs: &[f64], mean: f64) -> f64 {
    if is_constant(xs) {
        return 0.0;
    }
    let mut sq = 0.0;
    let mut dev = 0.0;
    for &x in xs {
        let d = x - mean;
        sq += d * d;
        dev += d;
    }
    (sq - dev * dev / xs.len() as f64).max(0.0)
}

/// Sample variance (denominator n - 1) of a sample with at least two values.
pub(crate) fn sample_variance(xs: &[f64], mean: f64) -> f64 {
    sum_sq_dev(xs, mean) / (xs.len() - 1) as f64
}

/// Two-sided p-value of a t statistic with `df` degrees of freedom.
pub(crate) fn t_two_sided_p(t: f64, df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    let dist = StudentsT::new(0.0, 1.0, df).expect("df is positive and finite");
    (2.0 * dist.sf(t.abs())).min(1.0)
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Shared test samples; reference values come from `reference/stats_reference.py`.

    /// Seed report, per-run efficiency (%), Rust Gemma 3 baseline.
    pub const RUST: [f64; 5] = [97.46, 98.45, 95.70, 96.24, 98.72];
    /// Seed report, per-run efficiency (%), Python Gemma 3 baseline.
    pub const PY: [f64; 5] = [60.12, 84.07, 87.51, 83.94, 85.54];
    /// Small integers with ties within and between the two samples.
    pub const TIES_A: [f64; 10] = [3., 4., 2., 6., 2., 5., 4., 4., 7., 3.];
    pub const TIES_B: [f64; 11] = [6., 5., 7., 4., 8., 6., 9., 5., 7., 6., 8.];

    /// Asserts `actual` is within `rel` relative error of `expected`.
    #[track_caller]
    pub fn assert_close(actual: f64, expected: f64, rel: f64) {
        let err = (actual - expected).abs();
        let scale = expected.abs().max(f64::MIN_POSITIVE);
        assert!(
            err <= rel * scale,
            "actual {actual} vs expected {expected}: relative error {} > {rel}",
            err / scale
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_rejects_empty_and_non_finite() {
        assert_eq!(check(3, &[]), Err(StatsError::Empty { sample: 3 }));
        let err = check(1, &[1.0, f64::INFINITY]).unwrap_err();
        assert!(matches!(
            err,
            StatsError::NonFinite {
                sample: 1,
                index: 1,
                ..
            }
        ));
        assert!(matches!(
            check(0, &[f64::NAN]),
            Err(StatsError::NonFinite { index: 0, .. })
        ));
        assert_eq!(
            check_len(0, &[1.0], 2),
            Err(StatsError::TooFew {
                sample: 0,
                got: 1,
                needed: 2
            })
        );
    }

    #[test]
    fn compensated_sum_keeps_small_terms() {
        // Naive summation returns 0 here.
        assert_eq!(sum(&[1e16, 1.0, -1e16]), 1.0);
        assert_eq!(mean(&[1e16, 1.0, -1e16, 2.0]), 0.75);
    }

    #[test]
    fn constant_samples_have_exactly_zero_spread() {
        let xs = [0.1; 3];
        assert_eq!(mean(&xs), 0.1);
        assert_eq!(sum_sq_dev(&xs, mean(&xs)), 0.0);
        // Rounding noise a naive mean would leave behind:
        assert_ne!(xs.iter().sum::<f64>() / 3.0, 0.1);
    }

    #[test]
    fn error_messages_are_short_and_lowercase() {
        let msg = StatsError::TooFew {
            sample: 0,
            got: 1,
            needed: 2,
        }
        .to_string();
        assert_eq!(msg, "sample 0 has 1 values, needs at least 2");
    }
}
