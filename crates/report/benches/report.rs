//! Report generation for 10,000 synthetic runs (4 backends × 3 models × 2 scenarios × 417
//! runs), in memory: the analysis (per-cell statistics and bootstrap CIs, 240 contrasts,
//! variance split, correlations, distributions) and all three renderers. Target: under 2 s
//! on a 2-core machine.

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

fn bench(c: &mut Criterion) {
    let results = results(417);
    assert!(results.records.len() >= 10_000);
    let config = AnalysisConfig::default();
    let mut group = c.benchmark_group("report_10k_runs");
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
