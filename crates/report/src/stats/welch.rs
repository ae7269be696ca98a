//! Welch's unequal-variances t-test.

use serde::{Deserialize, Serialize};

use super::{check_len, mean, sample_variance, t_two_sided_p, StatsError};

/// Welch's t-test of equal means, two-sided.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WelchTest {
    /// t = (mean(a) - mean(b)) / sqrt(var(a)/n_a + var(b)/n_b), sample variances.
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom (not an integer in general).
    pub df: f64,
    /// Two-sided p-value from Student's t with `df` degrees of freedom.
    pub p_value: f64,
}

/// Welch's t-test of `a` against `b` (independent samples, variances not assumed equal),
/// as `scipy.stats.ttest_ind(a, b, equal_var=False)`.
///
/// Needs two values per sample; [`StatsError::ZeroVariance`] when both samples are constant.
pub fn welch_t_test(a: &[f64], b: &[f64]) -> Result<WelchTest, StatsError> {
    check_len(0, a, 2)?;
    check_len(1, b, 2)?;
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (ma, mb) = (mean(a), mean(b));
    let (sa, sb) = (sample_variance(a, ma) / na, sample_variance(b, mb) / nb);
    let se2 = sa + sb;
    if se2 == 0.0 {
        return Err(StatsError::ZeroVariance);
    }
    let t = (ma - mb) / se2.sqrt();
    let df = se2 * se2 / (sa * sa / (na - 1.0) + sb * sb / (nb - 1.0));
    Ok(WelchTest {
        t,
        df,
        p_value: t_two_sided_p(t, df),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::fixtures::{assert_close, PY, RUST, TIES_A, TIES_B};

    const REL: f64 = 1e-12;

    #[test]
    fn matches_scipy_on_the_original_report() {
        // scipy.stats.ttest_ind(RUST, PY, equal_var=False) -> statistic, pvalue, df.
        let w = welch_t_test(&RUST, &PY).unwrap();
        assert_close(w.t, 3.3455314693046794, REL);
        assert_close(w.df, 4.109637428584294, REL);
        assert_close(w.p_value, 0.02753285426877553, REL);
        // Swapping the samples flips the sign only.
        let r = welch_t_test(&PY, &RUST).unwrap();
        assert_close(r.t, -w.t, REL);
        assert_close(r.p_value, w.p_value, REL);
    }

    #[test]
    fn matches_scipy_with_ties() {
        // scipy.stats.ttest_ind(TIES_A, TIES_B, equal_var=False).
        let w = welch_t_test(&TIES_A, &TIES_B).unwrap();
        assert_close(w.t, -3.567901135106636, REL);
        assert_close(w.df, 18.405178781021483, REL);
        assert_close(w.p_value, 0.00213704779348722, REL);
    }

    #[test]
    fn degenerate_input() {
        assert!(matches!(
            welch_t_test(&[1.0], &RUST),
            Err(StatsError::TooFew { sample: 0, .. })
        ));
        assert!(matches!(
            welch_t_test(&RUST, &[]),
            Err(StatsError::Empty { sample: 1 })
        ));
        assert_eq!(
            welch_t_test(&[2.0, 2.0], &[3.0, 3.0, 3.0]),
            Err(StatsError::ZeroVariance)
        );
        assert!(matches!(
            welch_t_test(&RUST, &[1.0, f64::NAN]),
            Err(StatsError::NonFinite {
                sample: 1,
                index: 1,
                ..
            })
        ));
        // One constant sample is fine: only its own variance term vanishes.
        let w = welch_t_test(&[5.0, 5.0, 5.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!(w.t > 0.0 && w.p_value < 1.0);
        // Identical samples: t = 0, p = 1.
        let w = welch_t_test(&RUST, &RUST).unwrap();
        assert_eq!(w.t, 0.0);
        assert_close(w.p_value, 1.0, 1e-12);
    }
}
