//! Ranks with ties averaged, shared by the rank-based statistics.

/// Ranks of `xs` (1-based, ties get the average of the ranks they span) and the size of
/// each group of tied values (groups of one included).
pub(crate) fn average_ranks(xs: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_unstable_by(|&i, &j| xs[i].total_cmp(&xs[j]));
    let mut ranks = vec![0.0; xs.len()];
    let mut ties = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && xs[order[end]] == xs[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1..=end; their average:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        ties.push(end - start);
        start = end;
    }
    (ranks, ties)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_share_the_average_rank() {
        // scipy.stats.rankdata([3, 1, 4, 1, 5, 9, 2, 6, 5]) (method="average").
        let (ranks, ties) = average_ranks(&[3., 1., 4., 1., 5., 9., 2., 6., 5.]);
        assert_eq!(ranks, [4.0, 1.5, 5.0, 1.5, 6.5, 9.0, 3.0, 8.0, 6.5]);
        assert_eq!(ties.iter().sum::<usize>(), 9);
        assert_eq!(ties.iter().filter(|&&t| t == 2).count(), 2);
    }

    #[test]
    fn signed_zeros_tie() {
        let (ranks, _) = average_ranks(&[0.0, -0.0, 1.0]);
        assert_eq!(ranks, [1.5, 1.5, 3.0]);
    }
}
