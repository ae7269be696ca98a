//! Mann-Whitney U (Wilcoxon rank-sum) test.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use super::rank::average_ranks;
use super::{check, StatsError};

/// Largest size of either sample for which the exact null distribution is used.
pub const MANN_WHITNEY_EXACT_MAX_N: usize = 20;

/// How a Mann-Whitney p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MannWhitneyMethod {
    /// Exact null distribution of U, counted over all rank arrangements (no ties, both
    /// samples at most [`MANN_WHITNEY_EXACT_MAX_N`]).
    Exact,
    /// Normal approximation with tie correction and continuity correction.
    Asymptotic,
}

/// Mann-Whitney U test, two-sided.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MannWhitney {
    /// U of sample `a`: the number of pairs with a_i > b_j, ties counting one half
    /// (`R_a - n_a (n_a + 1) / 2`, in 0..=n_a n_b).
    pub u: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    pub method: MannWhitneyMethod,
}

/// Mann-Whitney U test of `a` against `b` (independent samples).
///
/// Without ties and with both samples of at most [`MANN_WHITNEY_EXACT_MAX_N`] values the
/// p-value is exact: `2 P(U >= max(U_a, U_b))` by counting, as
/// `scipy.stats.mannwhitneyu(a, b, alternative="two-sided", method="exact")`. Otherwise it is
/// the normal approximation with tie correction and continuity correction, as
/// `method="asymptotic"`. When every value ties (no ranking information) p = 1.
pub fn mann_whitney_u(a: &[f64], b: &[f64]) -> Result<MannWhitney, StatsError> {
    check(0, a)?;
    check(1, b)?;
    let (n1, n2) = (a.len(), b.len());
    let combined: Vec<f64> = a.iter().chain(b).copied().collect();
    let (ranks, ties) = average_ranks(&combined);
    let rank_sum_a: f64 = ranks[..n1].iter().sum();
    let u = rank_sum_a - (n1 * (n1 + 1)) as f64 / 2.0;
    let u_max = u.max((n1 * n2) as f64 - u);
    let no_ties = ties.iter().all(|&t| t == 1);
    let (p, method) = if no_ties && n1.max(n2) <= MANN_WHITNEY_EXACT_MAX_N {
        // Without ties U is an integer.
        let p = exact_upper_tail(n1, n2, u_max as usize);
        (p, MannWhitneyMethod::Exact)
    } else {
        (
            asymptotic_upper_tail(u_max, n1, n2, &ties),
            MannWhitneyMethod::Asymptotic,
        )
    };
    Ok(MannWhitney {
        u,
        p_value: (2.0 * p).min(1.0),
        method,
    })
}

/// P(U >= u) under the null for sample sizes `n1`, `n2` without ties, by counting the
/// rank arrangements with each value of U.
fn exact_upper_tail(n1: usize, n2: usize, u: usize) -> f64 {
    let counts = exact_counts(n1, n2);
    let total: u64 = counts.iter().sum();
    let tail: u64 = counts.iter().skip(u).sum();
    tail as f64 / total as f64
}

/// Number of arrangements of `n1` a's and `n2` b's giving U = 0..=n1 n2. Uses
/// c(m, n, u) = c(m - 1, n, u - n) + c(m, n - 1, u): the largest value is either an `a`
/// (beating all n b's) or a `b`. Totals are C(n1 + n2, n1) <= C(40, 20) < 2^38 here.
fn exact_counts(n1: usize, n2: usize) -> Vec<u64> {
    // prev[n] = c(m - 1, n, ·), cur[n] = c(m, n, ·).
    let mut prev: Vec<Vec<u64>> = vec![vec![1]; n2 + 1];
    for m in 1..=n1 {
        let mut cur: Vec<Vec<u64>> = Vec::with_capacity(n2 + 1);
        cur.push(vec![1]);
        for n in 1..=n2 {
            let mut c = vec![0u64; m * n + 1];
            for (u, &k) in prev[n].iter().enumerate() {
                c[u + n] += k;
            }
            for (u, &k) in cur[n - 1].iter().enumerate() {
                c[u] += k;
            }
            cur.push(c);
        }
        prev = cur;
    }
    prev.swap_remove(n2)
}

/// P(U >= u) by the normal approximation with tie and continuity corrections (scipy's).
fn asymptotic_upper_tail(u: f64, n1: usize, n2: usize, ties: &[usize]) -> f64 {
    let (n1, n2) = (n1 as f64, n2 as f64);
    let n = n1 + n2;
    let tie_term: f64 = ties.iter().map(|&t| (t * t * t - t) as f64).sum();
    let var = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if var <= 0.0 {
        // Every value ties: U sits at its mean and carries no evidence.
        return 1.0;
    }
    let z = (u - n1 * n2 / 2.0 - 0.5) / var.sqrt();
    Normal::standard().sf(z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::fixtures::{assert_close, PY, RUST, TIES_A, TIES_B};

    // statrs' erfc (normal tail) is good to about 1e-10 relative.
    const REL: f64 = 1e-9;
    const M12: [f64; 12] = [
        1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30, 2.01, 0.91, 2.22,
    ];
    #[allow(clippy::approx_constant)] // 3.141 is a measurement, not pi.
    const M15: [f64; 15] = [
        0.878, 0.647, 0.598, 2.051, 1.061, 1.291, 1.062, 3.141, 1.292, 1.711, 0.441, 1.191, 1.331,
        2.571, 0.731,
    ];
    const L21: [f64; 21] = [
        10.002, 10.597, 9.452, 8.219, 9.091, 8.017, 10.12, 12.68, 9.016, 8.759, 10.98, 10.714,
        10.211, 8.139, 9.941, 11.391, 7.312, 9.085, 6.198, 7.421, 6.317,
    ];
    const L25: [f64; 25] = [
        10.295, 7.198, 11.814, 11.47, 10.439, 3.45, 9.384, 10.854, 11.34, 6.41, 9.567, 8.064,
        8.573, 14.183, 8.577, 10.902, 13.653, 9.249, 10.665, 11.331, 11.191, 7.325, 11.228, 15.076,
        6.359,
    ];

    #[test]
    fn exact_matches_scipy_on_the_original_report() {
        // scipy.stats.mannwhitneyu(RUST, PY, alternative="two-sided", method="exact"):
        // U = 25.0, p = 0.007936507936507936 (= 2/252).
        let m = mann_whitney_u(&RUST, &PY).unwrap();
        assert_eq!(m.method, MannWhitneyMethod::Exact);
        assert_eq!(m.u, 25.0);
        assert_close(m.p_value, 0.007936507936507936, 1e-12);
        let r = mann_whitney_u(&PY, &RUST).unwrap();
        assert_eq!(r.u, 0.0);
        assert_close(r.p_value, m.p_value, 1e-12);
    }

    #[test]
    fn exact_matches_scipy_beyond_its_auto_limit() {
        // scipy.stats.mannwhitneyu(M12, M15, alternative="two-sided", method="exact"):
        // U = 125.0, p = 0.09261015677760866.
        let m = mann_whitney_u(&M12, &M15).unwrap();
        assert_eq!(m.method, MannWhitneyMethod::Exact);
        assert_eq!(m.u, 125.0);
        assert_close(m.p_value, 0.09261015677760866, REL);
    }

    #[test]
    fn ties_use_the_corrected_normal_approximation() {
        // scipy.stats.mannwhitneyu(TIES_A, TIES_B, alternative="two-sided", method="asymptotic"):
        // U = 15.0, p = 0.0049552002065750955.
        let m = mann_whitney_u(&TIES_A, &TIES_B).unwrap();
        assert_eq!(m.method, MannWhitneyMethod::Asymptotic);
        assert_eq!(m.u, 15.0);
        assert_close(m.p_value, 0.0049552002065750955, REL);
    }

    #[test]
    fn large_samples_use_the_normal_approximation() {
        // scipy.stats.mannwhitneyu(L21, L25, alternative="two-sided", method="asymptotic"):
        // U = 199.0, p = 0.16473516911059038 (method="exact" gives 0.16627927413941096).
        let m = mann_whitney_u(&L21, &L25).unwrap();
        assert_eq!(m.method, MannWhitneyMethod::Asymptotic);
        assert_eq!(m.u, 199.0);
        assert_close(m.p_value, 0.16473516911059038, REL);
    }

    #[test]
    fn exact_counts_are_a_distribution() {
        // C(40, 20) arrangements, symmetric about n1 n2 / 2.
        let c = exact_counts(20, 20);
        assert_eq!(c.len(), 401);
        assert_eq!(c.iter().sum::<u64>(), 137_846_528_820);
        assert!(c.iter().eq(c.iter().rev()));
        // n1 = 1: U is uniform on 0..=n2.
        assert_eq!(exact_counts(1, 4), [1, 1, 1, 1, 1]);
        assert_eq!(exact_counts(0, 3), [1]);
    }

    #[test]
    fn degenerate_input() {
        assert!(matches!(
            mann_whitney_u(&[], &RUST),
            Err(StatsError::Empty { sample: 0 })
        ));
        assert!(matches!(
            mann_whitney_u(&RUST, &[f64::NAN]),
            Err(StatsError::NonFinite { sample: 1, .. })
        ));
        // One value each: U is 0 or 1 with equal chance, p = 1.
        let m = mann_whitney_u(&[1.0], &[2.0]).unwrap();
        assert_eq!(
            (m.u, m.p_value, m.method),
            (0.0, 1.0, MannWhitneyMethod::Exact)
        );
        // Every value ties: no evidence either way.
        let m = mann_whitney_u(&[3.0; 4], &[3.0; 6]).unwrap();
        assert_eq!(
            (m.u, m.p_value, m.method),
            (12.0, 1.0, MannWhitneyMethod::Asymptotic)
        );
        // Identical samples without ties within: p = 1 (clipped).
        assert_eq!(mann_whitney_u(&RUST, &RUST).unwrap().p_value, 1.0);
    }
}
