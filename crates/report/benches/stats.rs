//! Cost of the per-cell statistics for 10,000 runs: `Summary` and the bootstrap CIs.

use chimeraforge_report::stats::{
    bootstrap_mean_ci, bootstrap_mean_diff_ci, mann_whitney_u, BootstrapConfig, Summary,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

/// Deterministic skewed sample (latency-like, ms) without a dependency on an RNG crate.
fn sample(n: usize, salt: u64) -> Vec<f64> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ salt;
    (0..n)
        .map(|_| {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let u = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
            100.0 - 20.0 * (1.0 - u).ln()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let xs = sample(10_000, 1);
    let ys = sample(10_000, 2);
    let config = BootstrapConfig::with_seed(1);
    c.bench_function("summary_10k", |b| b.iter(|| Summary::of(black_box(&xs))));
    c.bench_function("mann_whitney_10k_vs_10k", |b| {
        b.iter(|| mann_whitney_u(black_box(&xs), black_box(&ys)))
    });
    let mut slow = c.benchmark_group("bootstrap_10k_values_10k_resamples");
    slow.sample_size(10);
    slow.bench_function("mean_ci", |b| {
        b.iter(|| bootstrap_mean_ci(black_box(&xs), &config))
    });
    slow.bench_function("mean_diff_ci", |b| {
        b.iter(|| bootstrap_mean_diff_ci(black_box(&xs), black_box(&ys), &config))
    });
    slow.finish();
    let small = &xs[..30];
    c.bench_function("bootstrap_30_values_10k_resamples", |b| {
        b.iter(|| bootstrap_mean_ci(black_box(small), &config))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
