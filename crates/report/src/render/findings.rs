//! The findings in plain language, shared by the Markdown and HTML reports. A difference is
//! stated only when the tests support it; everything else says "within noise" or why it
//! could not be tested. Text is plain (unescaped); each renderer escapes it.

use super::text::{num, p_eq, signed};
use crate::analysis::{kind_name, Analysis, Contrast, Factor, Metric, Verdict};
use crate::stats::{t_two_sided_p, Summary};

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// A difference both tests support.
    Difference,
    /// A difference the tests do not support.
    WithinNoise,
    /// Too few runs to test.
    NotTestable,
    /// The seed's estimated efficiency against the measured one.
    SeedFormula,
    /// Flags and failures: counts, not comparisons.
    Caveat,
    /// A cell whose graph efficiency is far below 100%: the server, not the agents' graph,
    /// held concurrency back.
    FarBelowGraph,
}

/// Graph efficiency below this (%), by the CI's upper bound where there is one, is a finding:
/// the level below which `low_speedup` flags efficiency.
pub const GRAPH_EFFICIENCY_LOW_PCT: f64 = 75.0;

/// One sentence of the findings.
#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: FindingKind,
    pub text: String,
}

fn finding(kind: FindingKind, text: String) -> Finding {
    Finding { kind, text }
}

/// Findings on one subject (a metric, the seed formula, caveats).
#[derive(Debug, Clone)]
pub struct FindingGroup {
    pub title: String,
    /// The headline group (measured efficiency): shown first and in full.
    pub headline: bool,
    /// Counts in a few words, e.g. "3 differ, 2 within noise".
    pub summary: String,
    pub findings: Vec<Finding>,
}

/// Every finding, grouped, most important first.
pub fn findings(a: &Analysis) -> Vec<FindingGroup> {
    let mut groups = Vec::new();
    let alpha = a.config.alpha;
    for metric in Metric::CONTRASTED {
        let of: Vec<&Contrast> = a.contrasts.iter().filter(|c| c.metric == metric).collect();
        if of.is_empty() {
            continue;
        }
        let count = |v: Verdict| of.iter().filter(|c| c.verdict == v).count();
        let (differ, noise, untested) = (
            count(Verdict::Differs),
            count(Verdict::WithinNoise),
            count(Verdict::TooFewRuns),
        );
        let headline = metric == Metric::Efficiency;
        let mut fs: Vec<Finding> = of
            .iter()
            .filter(|c| c.verdict == Verdict::Differs)
            .map(|c| finding(FindingKind::Difference, difference(c)))
            .collect();
        if headline {
            fs.extend(
                of.iter()
                    .filter(|c| c.verdict == Verdict::WithinNoise)
                    .map(|c| finding(FindingKind::WithinNoise, within_noise(c))),
            );
        } else if noise > 0 {
            fs.push(finding(
                FindingKind::WithinNoise,
                format!("{noise} other pair(s) do not differ beyond noise (not both Welch and Mann-Whitney at p < {alpha}); see the gap tables."),
            ));
        }
        if untested > 0 {
            fs.push(finding(
                FindingKind::NotTestable,
                format!("{untested} pair(s) have too few runs to test."),
            ));
        }
        let mut title = metric.phrase();
        if let Some(first) = title.get(..1) {
            title = first.to_uppercase() + &title[1..];
        }
        groups.push(FindingGroup {
            title,
            headline,
            summary: format!("{differ} differ, {noise} within noise, {untested} not testable"),
            findings: fs,
        });
    }

    let below = far_below_graph(a);
    if !below.is_empty() {
        groups.push(FindingGroup {
            title: "Graph efficiency (measured)".to_owned(),
            headline: false,
            summary: format!(
                "{} cell(s) far below 100% (under {GRAPH_EFFICIENCY_LOW_PCT}%)",
                below.len()
            ),
            findings: below,
        });
    }

    let mut untestable_fs = Vec::new();
    let untestable: Vec<&Contrast> = a
        .contrasts
        .iter()
        .filter(|c| c.verdict == Verdict::TooFewRuns)
        .collect();
    if !untestable.is_empty() {
        let mut sizes: Vec<(usize, usize)> = untestable.iter().map(|c| (c.n_a, c.n_b)).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let sizes: Vec<String> = sizes.iter().map(|(x, y)| format!("{x} vs {y}")).collect();
        untestable_fs.push(finding(
            FindingKind::NotTestable,
            format!(
                "{} comparison(s) rest on too few runs to test (n = {} runs): with 3 or fewer runs on a side, Mann-Whitney cannot reach p < {alpha} whatever the data. Run more (5 or more per cell) before reading a difference into them.",
                untestable.len(),
                sizes.join(", ")
            ),
        ));
    }
    let single: Vec<String> = a
        .cells
        .iter()
        .filter(|c| c.n_ok == 1)
        .map(|c| c.key.to_string())
        .collect();
    if !single.is_empty() {
        untestable_fs.push(finding(
            FindingKind::NotTestable,
            format!(
                "{} cell(s) have a single successful run (no sd, no CI, no tests): {}.",
                single.len(),
                single.join("; ")
            ),
        ));
    }
    if !untestable_fs.is_empty() {
        groups.push(FindingGroup {
            title: "Not testable".to_owned(),
            headline: false,
            summary: format!("{} note(s)", untestable_fs.len()),
            findings: untestable_fs,
        });
    }
    let seed = seed_formula(a);
    if !seed.is_empty() {
        groups.push(FindingGroup {
            title: "The seed's formula (estimated) against measured efficiency".to_owned(),
            headline: false,
            summary: format!("{} note(s)", seed.len()),
            findings: seed,
        });
    }
    let caveats = caveats(a);
    if !caveats.is_empty() {
        groups.push(FindingGroup {
            title: "Caveats".to_owned(),
            headline: false,
            summary: format!("{} note(s)", caveats.len()),
            findings: caveats,
        });
    }
    groups
}

fn who(c: &Contrast) -> (String, &str, &str) {
    (
        c.factor.fixed(&c.a),
        c.factor.level(&c.a),
        c.factor.level(&c.b),
    )
}

fn tests(c: &Contrast) -> String {
    let mut s = format!("n = {} vs {} runs", c.n_a, c.n_b);
    if let Some(w) = c.welch {
        s.push_str(&format!("; Welch {}", p_eq(w.p_value)));
    } else {
        s.push_str("; Welch undefined (no variance)");
    }
    if let Some(m) = c.mann_whitney {
        s.push_str(&format!(", Mann-Whitney {}", p_eq(m.p_value)));
    }
    if let Some(g) = c.hedges_g {
        s.push_str(&format!("; Hedges' g = {}", signed(g, 2)));
    }
    if let Some(d) = c.cliffs_delta {
        s.push_str(&format!(", Cliff's δ = {}", signed(d, 2)));
    }
    s
}

fn diff_text(c: &Contrast) -> String {
    let d = c.metric.decimals();
    match c.diff {
        Some(ci) => format!(
            "{} {} (95% CI {} to {})",
            signed(ci.estimate, d),
            c.metric.diff_unit(),
            signed(ci.lo, d),
            signed(ci.hi, d)
        )
        .replace("  ", " "),
        None => "–".to_owned(),
    }
}

fn difference(c: &Contrast) -> String {
    let (fixed, a, b) = who(c);
    let d = c.metric.decimals();
    let higher = c.diff.is_some_and(|ci| ci.estimate > 0.0);
    format!(
        "On {fixed}, {factor} {a} has {dir} {metric} than {b}: {ma} vs {mb}, a − b = {diff}; {tests}.",
        factor = c.factor.name(),
        dir = if higher { "higher" } else { "lower" },
        metric = c.metric.phrase(),
        ma = c.mean_a.map_or("–".into(), |x| with_unit(x, d, c.metric.unit())),
        mb = c.mean_b.map_or("–".into(), |x| with_unit(x, d, c.metric.unit())),
        diff = diff_text(c),
        tests = tests(c),
    )
}

/// "96.1%", "40.2 ms", "1.020 ×", "0.998".
fn with_unit(x: f64, decimals: usize, unit: &str) -> String {
    match unit {
        "" => num(x, decimals),
        "%" => format!("{}%", num(x, decimals)),
        u => format!("{} {u}", num(x, decimals)),
    }
}

fn within_noise(c: &Contrast) -> String {
    let (fixed, a, b) = who(c);
    let plural = match c.factor {
        Factor::Backend => "backends",
        Factor::Model => "models",
    };
    let mut tests = format!("n = {} vs {} runs", c.n_a, c.n_b);
    match (c.welch, c.mann_whitney) {
        (Some(w), Some(m)) => tests.push_str(&format!(
            "; Welch {}, Mann-Whitney {}",
            p_eq(w.p_value),
            p_eq(m.p_value)
        )),
        (None, Some(m)) => tests.push_str(&format!(
            "; Welch undefined (no variance), Mann-Whitney {}",
            p_eq(m.p_value)
        )),
        _ => {}
    }
    format!(
        "On {fixed}, {plural} {a} and {b} do not differ in {metric} beyond noise: a − b = {diff}; {tests}.",
        metric = c.metric.phrase(),
        diff = diff_text(c),
    )
}

/// Per cell: does the seed's formula over- or understate measured efficiency? Paired per
/// run; stated only when a one-sample t-test gives p < alpha and the bootstrap CI of the
/// mean gap excludes 0.
fn seed_formula(a: &Analysis) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut agree = Vec::new();
    let mut too_few = 0;
    for cell in &a.cells {
        let gap = cell.metric(Metric::EstimateGap);
        let (Some(s), Some(ci)) = (gap.summary, gap.ci) else {
            too_few += usize::from(gap.n() == 1);
            continue;
        };
        let p = paired_p(&s);
        let excludes_zero = ci.lo > 0.0 || ci.hi < 0.0;
        if p.is_some_and(|p| p < a.config.alpha) && excludes_zero {
            let est = cell
                .metric(Metric::EstimatedEfficiency)
                .summary
                .map(|s| s.mean);
            let meas = cell.metric(Metric::Efficiency).summary.map(|s| s.mean);
            out.push(finding(
                FindingKind::SeedFormula,
                format!(
                    "On {key}, the seed's formula reads {est}% efficiency (estimated) where the measured efficiency is {meas}%: it {verb} by {gap} pp (estimated − measured, 95% CI {lo} to {hi} pp; n = {n} runs, paired t-test {p}).",
                    key = cell.key,
                    est = est.map_or("–".into(), |x| num(x, 1)),
                    meas = meas.map_or("–".into(), |x| num(x, 1)),
                    verb = if s.mean > 0.0 { "overstates" } else { "understates" },
                    gap = num(s.mean.abs(), 1),
                    lo = signed(ci.lo, 1),
                    hi = signed(ci.hi, 1),
                    n = s.n,
                    p = p_eq(p.unwrap_or(0.0)),
                ),
            ));
        } else {
            agree.push(format!("{} (n = {})", cell.key, s.n));
        }
    }
    if !agree.is_empty() {
        out.push(finding(
            FindingKind::SeedFormula,
            format!(
                "The seed's formula and measured efficiency agree within noise in {} cell(s): {}.",
                agree.len(),
                agree.join("; ")
            ),
        ));
    }
    if too_few > 0 {
        out.push(finding(
            FindingKind::NotTestable,
            format!("{too_few} cell(s) have one successful run: n too small to compare the seed's formula with measured efficiency."),
        ));
    }
    out
}

/// Cells whose graph efficiency is below [`GRAPH_EFFICIENCY_LOW_PCT`]: the upper bound of
/// its CI where there is one, else the mean (said to rest on too few runs for a CI).
fn far_below_graph(a: &Analysis) -> Vec<Finding> {
    let mut out = Vec::new();
    for cell in &a.cells {
        let ge = cell.metric(Metric::GraphEfficiency);
        let Some(s) = ge.summary else { continue };
        let (below, ci) = match ge.ci {
            Some(ci) => (
                ci.hi < GRAPH_EFFICIENCY_LOW_PCT,
                format!("95% CI {} to {}%", num(ci.lo, 1), num(ci.hi, 1)),
            ),
            None => (
                s.mean < GRAPH_EFFICIENCY_LOW_PCT,
                "too few runs for a CI".to_owned(),
            ),
        };
        if !below || s.mean <= 0.0 {
            continue;
        }
        let mean_of = |m: Metric| {
            cell.metric(m)
                .summary
                .map_or("–".into(), |s| num(s.mean, 2))
        };
        out.push(finding(
            FindingKind::FarBelowGraph,
            format!(
                "On {key}, graph efficiency is {mean}% ({ci}; n = {n} runs): the concurrent phase took {times}× the critical path an infinitely parallel server would need. Concurrency gave a {speedup}× speedup where the agents' graph allows {ceiling}×.",
                key = cell.key,
                mean = num(s.mean, 1),
                n = s.n,
                times = num(100.0 / s.mean, 2),
                speedup = mean_of(Metric::Speedup),
                ceiling = mean_of(Metric::GraphCeiling),
            ),
        ));
    }
    out
}

/// Two-sided p of a one-sample t-test of mean 0; `None` when undefined.
fn paired_p(s: &Summary) -> Option<f64> {
    let sd = s.std?;
    if sd == 0.0 {
        return (s.mean != 0.0).then_some(0.0);
    }
    let t = s.mean / (sd / (s.n as f64).sqrt());
    Some(t_two_sided_p(t, (s.n - 1) as f64))
}

/// Reads one flag's count.
type FlagCount = fn(&crate::analysis::FlagCounts) -> usize;

fn caveats(a: &Analysis) -> Vec<Finding> {
    let mut out = Vec::new();
    let n_ok = a.n_ok();
    let flag = |get: FlagCount| -> (usize, Vec<String>) {
        let total = a.cells.iter().map(|c| get(&c.flags)).sum();
        let cells = a
            .cells
            .iter()
            .filter(|c| get(&c.flags) > 0)
            .map(|c| format!("{} ({} of {})", c.key, get(&c.flags), c.n_ok))
            .collect();
        (total, cells)
    };
    let notes: [(FlagCount, &str); 5] = [
        (|f| f.cold_load, "cold_load: a measured call paid a model load, so the warm-up did not keep the model resident (e.g. agents with different num_ctx on one server); these runs time a load, not a decode"),
        (|f| f.ttft_anomaly, "ttft_anomaly: a concurrent-phase TTFT above 3 s"),
        (|f| f.low_speedup, "low_speedup: measured efficiency below 75% (speedup below 1.5 for two agents)"),
        (|f| f.length_mismatch, "length_mismatch: an agent's output length differed between the phases; runs.csv has the token-normalized speedup"),
        (|f| f.prompt_cache, "prompt_cache: the server reported at least 90% of an agent's first prompt as served from its prompt cache, so these runs' TTFTs time a cache hit, not a prompt evaluation (prompts repeated from an earlier invocation: prompt_cache = \"allow\", or records from before the per-invocation nonce)"),
    ];
    for (get, what) in notes {
        let (total, cells) = flag(get);
        if total > 0 {
            out.push(finding(
                FindingKind::Caveat,
                format!(
                    "{total} of {n_ok} successful runs flagged {what}. Cells: {}.",
                    cells.join("; ")
                ),
            ));
        }
    }
    for g in &a.identical_requests {
        let names: Vec<&str> = g.scenarios.iter().map(|s| s.name()).collect();
        out.push(finding(
            FindingKind::Caveat,
            format!(
                "{} on {} with {} agents: scenarios {} sent identical requests (the options that tell them apart, such as num_gpu and num_ctx, are Ollama load options, not request fields of an OpenAI-compatible API): they are one measurement under {} labels, not {} measurements.",
                g.backend,
                g.model,
                g.agents,
                names.join(" and "),
                names.len(),
                names.len()
            ),
        ));
    }
    let failed = a.failures.runs.len();
    let missing = a.failures.missing.len();
    if failed + missing > 0 {
        let kinds: Vec<String> = a
            .failures
            .by_kind
            .iter()
            .map(|(k, n)| format!("{} × {n}", kind_name(*k)))
            .collect();
        out.push(finding(
            FindingKind::Caveat,
            format!(
                "{failed} run(s) failed{} and {missing} scheduled run(s) have no record{}; statistics rest on the {n_ok} successful runs (see Failures).",
                if kinds.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", kinds.join(", "))
                },
                if missing == 0 {
                    String::new()
                } else {
                    let causes: Vec<String> = a
                        .failures
                        .missing_by_cause
                        .iter()
                        .map(|(k, n)| format!("{k} × {n}"))
                        .collect();
                    format!(" ({})", causes.join(", "))
                }
            ),
        ));
    }
    out
}
