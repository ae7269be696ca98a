//! Fairness of an allocation across agents.

use super::{check, StatsError};

/// Jain's fairness index (Σx)² / (n Σx²) of non-negative values (such as per-agent
/// slowdowns): 1 when all are equal, 1/n when one agent has everything (core's
/// [`chimeraforge_core::metrics::jain_index`], which the run records' fairness comes from).
///
/// Rejects negative values (`Negative`) and all zeros (`AllZero`).
pub fn jain_index(xs: &[f64]) -> Result<f64, StatsError> {
    check(0, xs)?;
    if let Some(index) = xs.iter().position(|&x| x < 0.0) {
        return Err(StatsError::Negative {
            sample: 0,
            index,
            value: xs[index],
        });
    }
    chimeraforge_core::metrics::jain_index(xs).ok_or(StatsError::AllZero)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::fixtures::{assert_close, RUST};
    use proptest::prelude::*;

    #[test]
    fn matches_numpy() {
        // numpy: x.sum()**2 / (len(x) * (x**2).sum()).
        assert_close(jain_index(&RUST).unwrap(), 0.9998511919646909, 1e-12);
        assert_close(
            jain_index(&[1.0, 2.0, 3.0, 4.0]).unwrap(),
            0.8333333333333334,
            1e-12,
        );
    }

    #[test]
    fn bounds() {
        assert_eq!(jain_index(&[2.5; 4]).unwrap(), 1.0);
        assert_eq!(jain_index(&[7.0]).unwrap(), 1.0);
        assert_eq!(jain_index(&[0.0, 0.0, 5.0]).unwrap(), 1.0 / 3.0);
        assert_eq!(jain_index(&[1e300, 1e300]).unwrap(), 1.0);
    }

    #[test]
    fn degenerate_input() {
        assert_eq!(jain_index(&[]), Err(StatsError::Empty { sample: 0 }));
        assert_eq!(jain_index(&[0.0, 0.0]), Err(StatsError::AllZero));
        assert!(matches!(
            jain_index(&[1.0, -1.0]),
            Err(StatsError::Negative { index: 1, .. })
        ));
        assert!(matches!(
            jain_index(&[1.0, f64::NAN]),
            Err(StatsError::NonFinite { index: 1, .. })
        ));
    }

    proptest! {
        #[test]
        fn index_lies_between_one_over_n_and_one(xs in prop::collection::vec(0.0f64..1e6, 1..100)) {
            prop_assume!(xs.iter().any(|&x| x > 0.0));
            let j = jain_index(&xs).unwrap();
            let n = xs.len() as f64;
            prop_assert!(j >= 1.0 / n - 1e-12 && j <= 1.0, "{j}");
        }
    }
}
