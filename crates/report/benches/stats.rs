//! Cost of the per-cell statistics for 10,000 runs: `Summary` and the bootstrap CIs.
//!
//! Full size only under `cargo bench`. `cargo test --all-targets` builds this file in debug
//! and criterion runs each benchmark once as a test; that smoke run uses 300 values and
//! 1,000 resamples, so the test command checks that the benchmarks work in seconds.

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

/// Whether criterion will measure (`cargo bench`) rather than run each benchmark once as a
/// test (`cargo test`, `cargo bench -- --test`): criterion 0.5's own rule in
/// `Criterion::configure_from_args`, which it does not expose.
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

fn bench(c: &mut Criterion) {
    // The names carry the sizes; at full size they are the names criterion's saved
    // baselines are filed under.
    let (n, resamples, values, resampled) = if measuring() {
        (10_000, 10_000, "10k", "10k")
    } else {
        (300, 1_000, "300", "1k")
    };
    let xs = sample(n, 1);
    let ys = sample(n, 2);
    let config = BootstrapConfig {
        resamples,
        ..BootstrapConfig::with_seed(1)
    };
    c.bench_function(&format!("summary_{values}"), |b| {
        b.iter(|| Summary::of(black_box(&xs)))
    });
    c.bench_function(&format!("mann_whitney_{values}_vs_{values}"), |b| {
        b.iter(|| mann_whitney_u(black_box(&xs), black_box(&ys)))
    });
    let mut slow = c.benchmark_group(format!("bootstrap_{values}_values_{resampled}_resamples"));
    slow.sample_size(10);
    slow.bench_function("mean_ci", |b| {
        b.iter(|| bootstrap_mean_ci(black_box(&xs), &config))
    });
    slow.bench_function("mean_diff_ci", |b| {
        b.iter(|| bootstrap_mean_diff_ci(black_box(&xs), black_box(&ys), &config))
    });
    slow.finish();
    let small = &xs[..30];
    c.bench_function(&format!("bootstrap_30_values_{resampled}_resamples"), |b| {
        b.iter(|| bootstrap_mean_ci(black_box(small), &config))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
