//! Correlation of paired samples.

use serde::{Deserialize, Serialize};

use super::rank::average_ranks;
use super::{check_len, mean, t_two_sided_p, StatsError};

/// A correlation coefficient with its two-sided test of zero correlation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Correlation {
    /// Coefficient in -1..=1.
    pub r: f64,
    /// Two-sided p-value of r = 0, from t = r sqrt((n - 2) / (1 - r²)) with n - 2 degrees of
    /// freedom.
    pub p_value: f64,
    /// Number of pairs.
    pub n: usize,
}

/// Pearson's r of paired `x`, `y`, as `scipy.stats.pearsonr(x, y)` (whose exact p-value,
/// for normal data, equals the t form used here).
///
/// Needs 3 pairs and variance in both; otherwise `TooFew` or `ZeroVariance`.
pub fn pearson(x: &[f64], y: &[f64]) -> Result<Correlation, StatsError> {
    check_pairs(x, y)?;
    let r = pearson_r(x, y)?;
    Ok(Correlation {
        r,
        p_value: correlation_p(r, x.len()),
        n: x.len(),
    })
}

/// Spearman's rho of paired `x`, `y`: Pearson's r of their ranks, ties averaged, as
/// `scipy.stats.spearmanr(x, y)`. The p-value uses the same t approximation as scipy.
///
/// Needs 3 pairs and at least two distinct values in both; otherwise `TooFew` or
/// `ZeroVariance`.
pub fn spearman(x: &[f64], y: &[f64]) -> Result<Correlation, StatsError> {
    check_pairs(x, y)?;
    let (rx, _) = average_ranks(x);
    let (ry, _) = average_ranks(y);
    let r = pearson_r(&rx, &ry)?;
    Ok(Correlation {
        r,
        p_value: correlation_p(r, x.len()),
        n: x.len(),
    })
}

fn check_pairs(x: &[f64], y: &[f64]) -> Result<(), StatsError> {
    check_len(0, x, 3)?;
    check_len(1, y, 3)?;
    if x.len() != y.len() {
        return Err(StatsError::LengthMismatch {
            left: x.len(),
            right: y.len(),
        });
    }
    Ok(())
}

fn pearson_r(x: &[f64], y: &[f64]) -> Result<f64, StatsError> {
    let (mx, my) = (mean(x), mean(y));
    // Deviations are scaled by their largest magnitude so the sums of squares cannot
    // overflow; r is scale-free.
    let scale = |xs: &[f64], m: f64| xs.iter().fold(0.0, |s: f64, &v| s.max((v - m).abs()));
    let (kx, ky) = (scale(x, mx), scale(y, my));
    if kx == 0.0 || ky == 0.0 {
        return Err(StatsError::ZeroVariance);
    }
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        let (dx, dy) = ((a - mx) / kx, (b - my) / ky);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    Ok((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

fn correlation_p(r: f64, n: usize) -> f64 {
    let df = (n - 2) as f64;
    let one_minus_r2 = (1.0 - r) * (1.0 + r);
    if one_minus_r2 <= 0.0 {
        return 0.0;
    }
    t_two_sided_p(r * (df / one_minus_r2).sqrt(), df)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::fixtures::{assert_close, PY, RUST, TIES_A, TIES_B};

    const REL: f64 = 1e-12;

    #[test]
    fn pearson_matches_scipy() {
        // scipy.stats.pearsonr(RUST, PY): statistic, pvalue.
        let c = pearson(&RUST, &PY).unwrap();
        assert_close(c.r, -0.11367717814438934, REL);
        assert_close(c.p_value, 0.8555740585963414, REL);
        assert_eq!(c.n, 5);
        // scipy.stats.pearsonr(TIES_A, TIES_B[:10]).
        let c = pearson(&TIES_A, &TIES_B[..10]).unwrap();
        assert_close(c.r, -0.318709046079756, REL);
        assert_close(c.p_value, 0.36942841525344383, REL);
    }

    #[test]
    fn spearman_matches_scipy() {
        // scipy.stats.spearmanr(RUST, PY): statistic, pvalue.
        let c = spearman(&RUST, &PY).unwrap();
        assert_close(c.r, -0.1, REL);
        assert_close(c.p_value, 0.8728885715695384, REL);
        // scipy.stats.spearmanr(TIES_A, TIES_B[:10]) (ties in both).
        let c = spearman(&TIES_A, &TIES_B[..10]).unwrap();
        assert_close(c.r, -0.3616352201257862, REL);
        assert_close(c.p_value, 0.3045147465392507, REL);
    }

    #[test]
    fn perfect_correlation_has_zero_p() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let y = [10.0, 20.0, 30.0, 40.0];
        let c = pearson(&x, &y).unwrap();
        assert_eq!((c.r, c.p_value), (1.0, 0.0));
        let c = spearman(&x, &[-1.0, -8.0, -27.0, -64.0]).unwrap();
        assert_eq!((c.r, c.p_value), (-1.0, 0.0));
        // Squares of the deviation sums overflow f64 here.
        let c = pearson(&[1e200, 2e200, 4e200], &[3e200, 6e200, 12e200]).unwrap();
        assert!((c.r - 1.0).abs() < 1e-12);
    }

    #[test]
    fn degenerate_input() {
        assert!(matches!(
            pearson(&[1.0, 2.0], &[1.0, 2.0]),
            Err(StatsError::TooFew { needed: 3, .. })
        ));
        assert!(matches!(
            spearman(&[], &[]),
            Err(StatsError::Empty { sample: 0 })
        ));
        assert_eq!(
            pearson(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]),
            Err(StatsError::LengthMismatch { left: 3, right: 4 })
        );
        assert_eq!(
            pearson(&[5.0; 4], &[1.0, 2.0, 3.0, 4.0]),
            Err(StatsError::ZeroVariance)
        );
        assert_eq!(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[7.0; 4]),
            Err(StatsError::ZeroVariance)
        );
        assert!(matches!(
            spearman(&[1.0, 2.0, 3.0], &[1.0, f64::NAN, 3.0]),
            Err(StatsError::NonFinite {
                sample: 1,
                index: 1,
                ..
            })
        ));
    }
}
