//! Descriptive statistics of one sample.

use serde::{Deserialize, Serialize};

pub(crate) use chimeraforge_core::metrics::percentile_sorted;

use super::{check, mean, sample_variance, StatsError};

/// Descriptive statistics of one sample, in the sample's own unit (ms, tok/s, %).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    pub mean: f64,
    /// Same as `p50`.
    pub median: f64,
    /// Sample standard deviation (denominator n - 1); `None` when n = 1.
    pub std: Option<f64>,
    /// Coefficient of variation `std / mean` (a ratio, not %); `None` when n = 1 or the
    /// mean is zero.
    pub cv: Option<f64>,
    pub min: f64,
    pub max: f64,
    /// Percentiles by linear interpolation, see [`percentile`].
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

impl Summary {
    /// Summarizes `xs`; `None` when it is empty or holds a NaN or infinity (see
    /// [`Summary::try_of`] for the reason).
    pub fn of(xs: &[f64]) -> Option<Summary> {
        Summary::try_of(xs).ok()
    }

    /// Summarizes `xs`, or says why not ([`StatsError::Empty`], [`StatsError::NonFinite`]).
    pub fn try_of(xs: &[f64]) -> Result<Summary, StatsError> {
        check(0, xs)?;
        let mut sorted = xs.to_vec();
        sorted.sort_unstable_by(f64::total_cmp);
        let mean = mean(xs);
        let std = (xs.len() > 1).then(|| sample_variance(xs, mean).sqrt());
        let cv = std.filter(|_| mean != 0.0).map(|s| s / mean);
        Ok(Summary {
            n: xs.len(),
            mean,
            median: percentile_sorted(&sorted, 50.0),
            std,
            cv,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            p50: percentile_sorted(&sorted, 50.0),
            p90: percentile_sorted(&sorted, 90.0),
            p99: percentile_sorted(&sorted, 99.0),
        })
    }
}

/// The `p`-th percentile of `xs` (`p` in percent, 0..=100), by linear interpolation between
/// the two nearest order statistics, numpy's default (see [`percentile_sorted`], core's one
/// definition of it).
pub fn percentile(xs: &[f64], p: f64) -> Result<f64, StatsError> {
    check(0, xs)?;
    if !(0.0..=100.0).contains(&p) {
        return Err(StatsError::InvalidParameter {
            name: "p",
            value: p,
        });
    }
    let mut sorted = xs.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    Ok(percentile_sorted(&sorted, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::fixtures::{assert_close, PY, RUST};
    use proptest::prelude::*;

    proptest! {
        /// The report's summary and Jain index reuse core's definitions (which the run
        /// records' percentiles and fairness come from), behind their typed errors: they agree.
        #[test]
        fn agrees_with_the_core_percentiles(xs in proptest::collection::vec(0.0f64..1e4, 1..60)) {
            let core = chimeraforge_core::metrics::percentiles(&xs).unwrap();
            let ours = Summary::of(&xs).unwrap();
            for (a, b) in [(core.p50, ours.p50), (core.p90, ours.p90), (core.p99, ours.p99), (core.max, ours.max)] {
                prop_assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} vs {b}");
            }
            let core_jain = chimeraforge_core::metrics::jain_index(&xs);
            let ours_jain = crate::stats::jain_index(&xs).ok();
            match (core_jain, ours_jain) {
                (Some(a), Some(b)) => prop_assert!((a - b).abs() <= 1e-12, "{a} vs {b}"),
                (a, b) => prop_assert_eq!(a.is_some(), b.is_some(), "jain {:?} vs {:?}", a, b),
            }
        }
    }

    const TEN: [f64; 10] = [12.5, 3.0, 7.25, 100.0, 41.0, 8.0, 8.0, 15.5, 0.5, 64.0];
    const REL: f64 = 1e-12;

    #[test]
    fn summary_matches_numpy() {
        // numpy.mean, numpy.median, numpy.std(x, ddof=1), numpy.percentile(x, q) for q in 50/90/99.
        let cases: [(&[f64], [f64; 6]); 3] = [
            (
                &RUST,
                [97.314, 97.46, 1.3273206093480205, 97.46, 98.612, 98.7092],
            ),
            (
                &PY,
                [80.236, 84.07, 11.337064434852616, 84.07, 86.722, 87.4312],
            ),
            (
                &TEN,
                [25.975, 10.25, 32.687588963125165, 10.25, 67.6, 96.76],
            ),
        ];
        for (xs, [mean, median, std, p50, p90, p99]) in cases {
            let s = Summary::of(xs).unwrap();
            assert_eq!(s.n, xs.len());
            assert_close(s.mean, mean, REL);
            assert_close(s.median, median, REL);
            assert_close(s.std.unwrap(), std, REL);
            assert_close(s.cv.unwrap(), std / mean, REL);
            assert_close(s.p50, p50, REL);
            assert_close(s.p90, p90, REL);
            assert_close(s.p99, p99, REL);
        }
        // std/mean from numpy: 0.013639564804118836 and 0.1412964808172468.
        assert_close(
            Summary::of(&RUST).unwrap().cv.unwrap(),
            0.013639564804118836,
            REL,
        );
        assert_close(
            Summary::of(&PY).unwrap().cv.unwrap(),
            0.1412964808172468,
            REL,
        );
        let s = Summary::of(&TEN).unwrap();
        assert_eq!((s.min, s.max), (0.5, 100.0));
    }

    #[test]
    fn percentile_matches_numpy_at_edges_and_quartiles() {
        // numpy.percentile(TEN, q) for q = 0, 25, 100 and numpy.percentile(RUST, 25).
        assert_eq!(percentile(&TEN, 0.0).unwrap(), 0.5);
        assert_close(percentile(&TEN, 25.0).unwrap(), 7.4375, REL);
        assert_eq!(percentile(&TEN, 100.0).unwrap(), 100.0);
        assert_close(percentile(&RUST, 25.0).unwrap(), 96.24, REL);
    }

    #[test]
    fn percentile_rejects_bad_p() {
        for p in [-1.0, 100.5, f64::NAN] {
            assert!(matches!(
                percentile(&TEN, p),
                Err(StatsError::InvalidParameter { name: "p", .. })
            ));
        }
    }

    #[test]
    fn single_value_has_no_spread() {
        let s = Summary::of(&[42.0]).unwrap();
        assert_eq!(s.n, 1);
        assert_eq!((s.mean, s.median, s.min, s.max), (42.0, 42.0, 42.0, 42.0));
        assert_eq!((s.p50, s.p90, s.p99), (42.0, 42.0, 42.0));
        assert_eq!((s.std, s.cv), (None, None));
    }

    #[test]
    fn all_equal_values_have_zero_spread() {
        let s = Summary::of(&[3.5; 7]).unwrap();
        assert_eq!((s.mean, s.std, s.cv), (3.5, Some(0.0), Some(0.0)));
        assert_eq!((s.p50, s.p99), (3.5, 3.5));
    }

    #[test]
    fn zero_mean_has_no_cv() {
        let s = Summary::of(&[-1.0, 1.0]).unwrap();
        assert_eq!(s.mean, 0.0);
        assert!(s.std.unwrap() > 0.0);
        assert_eq!(s.cv, None);
    }

    #[test]
    fn empty_and_non_finite_are_rejected() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::try_of(&[]), Err(StatsError::Empty { sample: 0 }));
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
        assert!(matches!(
            Summary::try_of(&[1.0, 2.0, f64::NEG_INFINITY]),
            Err(StatsError::NonFinite { index: 2, .. })
        ));
        assert!(percentile(&[f64::NAN], 50.0).is_err());
    }

    #[test]
    fn summary_serializes() {
        let json = serde_json::to_string(&Summary::of(&[1.0]).unwrap()).unwrap();
        assert!(json.contains("\"std\":null"), "{json}");
    }

    proptest! {
        #[test]
        fn percentiles_are_ordered_and_bounded(xs in prop::collection::vec(-1e6f64..1e6, 1..200)) {
            let s = Summary::of(&xs).unwrap();
            prop_assert!(s.min <= s.p50 && s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.max);
            prop_assert!(s.min <= s.mean + 1e-9 * s.mean.abs() && s.mean <= s.max + 1e-9 * s.mean.abs());
            prop_assert_eq!(percentile(&xs, 0.0).unwrap(), s.min);
            prop_assert_eq!(percentile(&xs, 100.0).unwrap(), s.max);
        }
    }
}
