//! Report generation for 10,000 synthetic runs (4 backends × 3 models × 2 scenarios × 417
//! runs), in memory: the analysis (per-cell statistics and bootstrap CIs, 240 contrasts,
//! variance split, correlations, distributions) and all three renderers. Target: under 2 s
//! on a 2-core machine.
//!
//! Full size only under `cargo bench`. `cargo test --all-targets` builds this file in debug
//! and criterion runs each benchmark once as a test; that smoke run uses 5 runs per cell
//! (120 runs) and 100 bootstrap resamples, so the test command checks that the benchmark
//! works in seconds instead of spending minutes on unoptimized bootstraps (10,000 resamples
//! for each of the 240 contrasts of small cells).

#[path = "../tests/common/mod.rs"]
mod common;

use chimeraforge_report::{analyze, render_all, AnalysisConfig, Results};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::time::Duration;

fn results(runs_per_cell: u32) -> Results {
    let specs = common::matrix(runs_per_cell);
    Results {
        manifest: serde_json::from_value(common::manifest(&specs, &[]))
            .expect("the synthetic manifest reads"),
        records: common::records(&specs),
        ..Results::default()
    }
}

/// Whether criterion will measure (`cargo bench`) rather than run each benchmark once as a
/// test (`cargo test`, `cargo bench -- --test`): criterion 0.5's own rule in
/// `Criterion::configure_from_args`, which it does not expose.
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

fn bench(c: &mut Criterion) {
    let (runs_per_cell, config, name) = if measuring() {
        (417, AnalysisConfig::default(), "report_10k_runs")
    } else {
        let smoke = AnalysisConfig {
            resamples: 100,
            resamples_large: 100,
            ..AnalysisConfig::default()
        };
        (5, smoke, "report_120_runs_100_resamples")
    };
    let results = results(runs_per_cell);
    assert!(results.records.len() >= 24 * runs_per_cell as usize);
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("analyze", |b| {
        b.iter(|| analyze(black_box(&results), &config))
    });
    let analysis = analyze(&results, &config);
    group.bench_function("render_all", |b| {
        b.iter(|| render_all(black_box(&analysis)))
    });
    group.bench_function("analyze_and_render_all", |b| {
        b.iter(|| render_all(&analyze(black_box(&results), &config)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
