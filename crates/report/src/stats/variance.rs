//! One-way decomposition of variance into between-group and within-group parts.

use serde::{Deserialize, Serialize};
use statrs::function::beta::beta_reg;

use super::{check, mean, sum_sq_dev, StatsError};

/// Sums of squares of a one-way layout (groups such as backends or models), in the squared
/// unit of the values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VarianceDecomposition {
    /// Number of groups, k.
    pub groups: usize,
    /// Number of values over all groups, n.
    pub n: usize,
    /// Σ_g n_g (mean_g - grand mean)².
    pub ss_between: f64,
    /// Σ_g Σ_i (x_gi - mean_g)².
    pub ss_within: f64,
    /// ss_between + ss_within = Σ (x - grand mean)².
    pub ss_total: f64,
    /// Share of the total sum of squares that lies between groups, ss_between / ss_total
    /// (eta squared, 0..=1).
    pub eta_squared: f64,
    /// One-way ANOVA F-test; `None` when undefined (every group constant, or n = k).
    pub f_test: Option<FTest>,
}

/// One-way ANOVA F-test of equal group means.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FTest {
    /// F = (ss_between / df_between) / (ss_within / df_within).
    pub f: f64,
    /// k - 1.
    pub df_between: f64,
    /// n - k.
    pub df_within: f64,
    /// P(F(df_between, df_within) >= f).
    pub p_value: f64,
}

/// Decomposes the variance of `groups` into between- and within-group sums of squares, with
/// the one-way ANOVA F-test (as `scipy.stats.f_oneway(*groups)`).
///
/// Needs two groups, none empty, and some variance overall (else `ZeroVariance`).
pub fn one_way(groups: &[&[f64]]) -> Result<VarianceDecomposition, StatsError> {
    if groups.len() < 2 {
        return Err(StatsError::TooFewGroups {
            got: groups.len(),
            needed: 2,
        });
    }
    for (g, xs) in groups.iter().enumerate() {
        check(g, xs)?;
    }
    let all: Vec<f64> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    let grand = mean(&all);
    let mut ss_between = 0.0;
    let mut ss_within = 0.0;
    for xs in groups {
        let m = mean(xs);
        ss_between += xs.len() as f64 * (m - grand) * (m - grand);
        ss_within += sum_sq_dev(xs, m);
    }
    let ss_total = ss_between + ss_within;
    if ss_total == 0.0 {
        return Err(StatsError::ZeroVariance);
    }
    let (k, n) = (groups.len(), all.len());
    let f_test = (n > k && ss_within > 0.0).then(|| {
        let (d1, d2) = ((k - 1) as f64, (n - k) as f64);
        let f = (ss_between / d1) / (ss_within / d2);
        FTest {
            f,
            df_between: d1,
            df_within: d2,
            // Upper tail as I_x(d2/2, d1/2) with x = d2 / (d2 + d1 f), without the 1 - cdf
            // cancellation that loses small p-values.
            p_value: beta_reg(d2 / 2.0, d1 / 2.0, d2 / (d2 + d1 * f)),
        }
    });
    Ok(VarianceDecomposition {
        groups: k,
        n,
        ss_between,
        ss_within,
        ss_total,
        eta_squared: ss_between / ss_total,
        f_test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::fixtures::{assert_close, PY, RUST, TIES_A};

    const REL: f64 = 1e-12;

    // scipy.stats.f_oneway docstring example (mussel shell measurements, McDonald et al.).
    const TILLAMOOK: [f64; 10] = [
        0.0571, 0.0813, 0.0831, 0.0976, 0.0817, 0.0859, 0.0735, 0.0659, 0.0923, 0.0836,
    ];
    const NEWPORT: [f64; 8] = [
        0.0873, 0.0662, 0.0672, 0.0819, 0.0749, 0.0649, 0.0835, 0.0725,
    ];
    const PETERSBURG: [f64; 7] = [0.0974, 0.1352, 0.0817, 0.1016, 0.0968, 0.1064, 0.105];
    const MAGADAN: [f64; 8] = [
        0.1033, 0.0915, 0.0781, 0.0685, 0.0677, 0.0697, 0.0764, 0.0689,
    ];
    const TVARMINNE: [f64; 6] = [0.0703, 0.1026, 0.0956, 0.0973, 0.1039, 0.1045];

    #[test]
    fn matches_scipy_mussels() {
        // scipy.stats.f_oneway(tillamook, newport, petersburg, magadan, tvarminne):
        // F = 7.121019471642449, p = 0.00028122423145345433. Sums of squares with numpy.
        let v = one_way(&[&TILLAMOOK, &NEWPORT, &PETERSBURG, &MAGADAN, &TVARMINNE]).unwrap();
        assert_eq!((v.groups, v.n), (5, 39));
        assert_close(v.ss_between, 0.00451967410714286, REL);
        assert_close(v.ss_within, 0.005394905892857144, REL);
        assert_close(v.ss_total, 0.009914579999999997, REL);
        assert_close(v.eta_squared, 0.45586137861037596, REL);
        let f = v.f_test.unwrap();
        assert_eq!((f.df_between, f.df_within), (4.0, 34.0));
        assert_close(f.f, 7.121019471642449, REL);
        assert_close(f.p_value, 0.00028122423145345433, REL);
    }

    #[test]
    fn matches_scipy_on_the_original_report() {
        // scipy.stats.f_oneway(RUST, PY): F = 11.192580812107927, p = 0.010147417738099856.
        let v = one_way(&[&RUST, &PY]).unwrap();
        assert_close(v.ss_between, 729.1452100000002, REL);
        assert_close(v.ss_within, 521.1632400000002, REL);
        assert_close(v.eta_squared, 0.5831722644120338, REL);
        let f = v.f_test.unwrap();
        assert_close(f.f, 11.192580812107927, REL);
        assert_close(f.p_value, 0.010147417738099856, REL);
        // Two groups: F is Student's t squared with pooled variance, so p matches
        // scipy.stats.ttest_ind(RUST, PY) (equal_var=True) as well.
    }

    #[test]
    fn small_p_values_keep_relative_precision() {
        // scipy.stats.f_oneway(RUST, PY, TIES_A): F = 571.6393512656851, p = 2.570609488882362e-16.
        let f = one_way(&[&RUST, &PY, &TIES_A]).unwrap().f_test.unwrap();
        assert_close(f.f, 571.6393512656851, REL);
        assert_close(f.p_value, 2.570609488882362e-16, REL);
    }

    #[test]
    fn degenerate_input() {
        assert_eq!(
            one_way(&[&RUST]),
            Err(StatsError::TooFewGroups { got: 1, needed: 2 })
        );
        assert_eq!(one_way(&[&RUST, &[]]), Err(StatsError::Empty { sample: 1 }));
        assert!(matches!(
            one_way(&[&RUST, &[1.0, f64::NAN]]),
            Err(StatsError::NonFinite {
                sample: 1,
                index: 1,
                ..
            })
        ));
        assert_eq!(
            one_way(&[&[2.0, 2.0], &[2.0]]),
            Err(StatsError::ZeroVariance)
        );
        // Constant groups with different means: all variance is between, F undefined.
        let v = one_way(&[&[1.0, 1.0], &[3.0, 3.0, 3.0]]).unwrap();
        assert_eq!((v.ss_within, v.eta_squared, v.f_test), (0.0, 1.0, None));
        // One value per group: no within-group degrees of freedom.
        let v = one_way(&[&[1.0], &[2.0], &[4.0]]).unwrap();
        assert_eq!(v.f_test, None);
        assert_eq!(v.eta_squared, 1.0);
        // Singleton groups beside larger ones are fine.
        assert!(one_way(&[&[1.0], &RUST]).unwrap().f_test.is_some());
    }
}
