//! Rendering the figures: the markdown section (`overhead.md`), its chart, and the
//! terminal table.

use super::figures::{BackendOverhead, TtftBias};
use crate::affinity;
use chimeraforge_report::svg::{Linear, Svg};
use std::fmt::Write as _;

/// The N columns of the tables and the chart's x axis.
const NS: [usize; 5] = [1, 2, 8, 64, 1024];

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or("-".into(), f)
}

/// The connection policy a row's clients ran under; `-` for figures from before `overhead`
/// recorded it.
pub(crate) fn policy(r: &BackendOverhead) -> &'static str {
    r.connection.map_or("-", |p| p.as_str())
}

/// The header of every table's first two columns: who, under which policy.
const LEAD: &str = "| backend | connection |";
const LEAD_RULE: &str = "|---|---|";

/// A row's first two cells (see [`LEAD`]).
fn lead(r: &BackendOverhead) -> String {
    format!("| {} | {} |", r.backend, policy(r))
}

/// A table of one (p50, p99) pair per N for every backend, from each N's [`TtftBias`].
fn p50_p99_table(
    s: &mut String,
    results: &[BackendOverhead],
    pair: impl Fn(&TtftBias) -> (Option<f64>, Option<f64>),
) {
    let rows: Vec<&BackendOverhead> = results.iter().collect();
    pair_table(
        s,
        &rows,
        |r, n| r.bias(n).map_or((None, None), &pair),
        |v| format!("{v:.2}"),
    );
}

/// A table of one (p50, p99) pair per N for each of `rows`, written by `fmt`.
fn pair_table(
    s: &mut String,
    rows: &[&BackendOverhead],
    pair: impl Fn(&BackendOverhead, usize) -> (Option<f64>, Option<f64>),
    fmt: impl Fn(f64) -> String,
) {
    let _ = write!(s, "{LEAD}");
    for n in NS {
        let _ = write!(s, " N={n} p50 | N={n} p99 |");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{LEAD_RULE}{}", "---:|".repeat(NS.len() * 2));
    for r in rows {
        let _ = write!(s, "{}", lead(r));
        for n in NS {
            let (p50, p99) = pair(r, n);
            let f = |v: Option<f64>| opt(v, &fmt);
            let _ = write!(s, " {} | {} |", f(p50), f(p99));
        }
        let _ = writeln!(s);
    }
}

/// The markdown section: one table per measurement, with the targets beside them;
/// `cores`: the machine's, where the figures were measured.
pub(crate) fn markdown(results: &[BackendOverhead], cores: usize) -> String {
    let mut s = String::new();
    let placement = match results.iter().find_map(|r| r.pinned.as_ref()) {
        Some(p) => format!(
            "Simulators ran on CPU {}, clients on CPU {} (`--pin`).",
            affinity::list(&p.server),
            affinity::list(&p.client)
        ),
        None => "Server and client shared every CPU.".to_owned(),
    };
    let mut policies: Vec<&str> = Vec::new();
    for p in results
        .iter()
        .filter_map(|r| r.connection)
        .map(|p| p.as_str())
    {
        if !policies.contains(&p) {
            policies.push(p);
        }
    }
    let _ = writeln!(
        s,
        "## Client overhead (the simulator as a null model)\n\n\
         Each backend ran in its own child process against simulators in the parent, on a \
         machine with {cores} core(s); client CPU and memory are the child's getrusage, \
         sampled between phases. {placement} Connection policies, each a row of its own \
         (`keep-alive`: each agent reuses its connection, opened in warm-up; `fresh`: a new \
         connection per call): {}.\n",
        policies.join(", ")
    );
    let _ = writeln!(
        s,
        "### TTFT bias: measured TTFT − scheduled 50 ms (`fixed`), ms (target, keep-alive at N = 64: p99 within 1.5× the floor's, below 2 ms with `--pin`)\n"
    );
    p50_p99_table(&mut s, results, |b| (Some(b.p50_ms), Some(b.p99_ms)));
    let _ = writeln!(
        s,
        "\n### The simulator's share of that bias: first token handed to its connection − schedule, ms\n\n\
         The same calls, timed inside the server. What remains of the bias is the request's \
         way in (connect, send, accept, parse) and the response's way out (kernel, the \
         client's wake-up, read and decode). A p99 is not additive: compare p50s, and read \
         the p99s as bounds.\n"
    );
    p50_p99_table(&mut s, results, |b| (b.server_p50_ms, b.server_p99_ms));
    let _ = writeln!(
        s,
        "\n### The burst: N agents × 1 call released together, ms\n\n\
         `send` is the spread of the client's t_send stamps (first to last agent to start its \
         call); `arrive` the spread of the same requests' arrivals at the server (first to \
         last request read). A client that got every request out at once would show ~0 for both.\n\n\
         {LEAD} N=64 send | N=64 arrive | N=1024 send | N=1024 arrive |\n{LEAD_RULE}---:|---:|---:|---:|"
    );
    for r in results {
        let b = |n| r.bias(n);
        let f = |v: Option<f64>| opt(v, |v| format!("{v:.1}"));
        let _ = writeln!(
            s,
            "{} {} | {} | {} | {} |",
            lead(r),
            f(b(64).and_then(|b| b.send_spread_ms)),
            f(b(64).and_then(|b| b.arrival_spread_ms)),
            f(b(1024).and_then(|b| b.send_spread_ms)),
            f(b(1024).and_then(|b| b.arrival_spread_ms)),
        );
    }
    let _ = writeln!(
        s,
        "\n### Client CPU per call in the concurrent phase, µs (user + system; connect, request, response, tokens, close)\n\n\
         The calls differ between columns (from `ttft-1`, `ideal-2`, `ideal-8`, `ideal-64`, \
         `mem-1024`: 8, 24, 24, 16 and 4 tokens per call; `--probes` may pick others), so \
         compare backends within a column, not columns with each other.\n"
    );
    let _ = write!(s, "{LEAD}");
    for n in NS {
        let _ = write!(s, " N={n} |");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{LEAD_RULE}{}", "---:|".repeat(NS.len()));
    for r in results {
        let _ = write!(s, "{}", lead(r));
        for n in NS {
            let v = r.cpu_per_call_us.iter().find(|c| c.0 == n).map(|c| c.1);
            let _ = write!(s, " {} |", opt(v, |v| format!("{v:.0}")));
        }
        let _ = writeln!(s);
    }
    floor_section(&mut s, results);
    targets_section(&mut s, results);
    let _ = writeln!(
        s,
        "\n### Ideal-device efficiency (measured speedup / N; targets ≥ 99% at N = 2, and at N = 64 with keep-alive)\n\n\
         Calls of 24 tokens (280 ms) at N = 2 and 8, 16 tokens (200 ms) at N = 64, and 48 \
         tokens (520 ms) in the last column (not run with `--quick`).\n\n\
         {LEAD} N=2 | N=8 | N=64 | N=64, 520 ms calls |\n{LEAD_RULE}---:|---:|---:|---:|"
    );
    for r in results {
        let e = |n| opt(r.eff(n), |v| format!("{:.2}%", v * 100.0));
        let long = opt(
            r.efficiency_long_calls
                .iter()
                .find(|e| e.0 == 64)
                .map(|e| e.1),
            |v| format!("{:.2}%", v * 100.0),
        );
        let _ = writeln!(s, "{} {} | {} | {} | {long} |", lead(r), e(2), e(8), e(64));
    }
    let _ = writeln!(
        s,
        "\n### Ingest ceiling on `null`: output tokens per client CPU-second (targets: best ≥ 500,000, every backend ≥ 100,000)\n\n\
         {LEAD} poll threads | N=1 tok/CPU-s | N=1 busy cores | N=64 tok/CPU-s | N=64 busy cores |\n{LEAD_RULE}---:|---:|---:|---:|---:|"
    );
    for r in results {
        let i = |n| r.ingest_at(n);
        let _ = writeln!(
            s,
            "{} {} | {} | {} | {} | {} |",
            lead(r),
            r.worker_threads,
            opt(i(1).map(|x| x.tokens_per_cpu_s), |v| format!("{v:.0}")),
            opt(i(1).map(|x| x.busy_cores), |v| format!("{v:.2}")),
            opt(i(64).map(|x| x.tokens_per_cpu_s), |v| format!("{v:.0}")),
            opt(i(64).map(|x| x.busy_cores), |v| format!("{v:.2}")),
        );
    }
    let _ = writeln!(
        s,
        "\n### Memory per extra concurrent agent (peak RSS; target < 256 KiB; 1,024 agents on one client)\n\n\
         {LEAD} RSS N=1 | RSS N=64 | RSS N=1024 | KiB/agent to 64 | KiB/agent to 1024 |\n{LEAD_RULE}---:|---:|---:|---:|---:|"
    );
    for r in results {
        let rss = |n: usize| {
            r.peak_rss_kib
                .iter()
                .find(|x| x.0 == n)
                .map_or("-".into(), |x| format!("{} KiB", x.1))
        };
        let _ = writeln!(
            s,
            "{} {} | {} | {} | {} | {} |",
            lead(r),
            rss(1),
            rss(64),
            rss(1024),
            opt(r.kib_per_agent(64), |v| format!("{v:.1}")),
            opt(r.kib_per_agent(1024), |v| format!("{v:.1}")),
        );
    }
    let notes: Vec<String> = results
        .iter()
        .flat_map(|r| {
            r.notes
                .iter()
                .map(move |n| format!("- {} ({}): {n}", r.backend, policy(r)))
        })
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(s, "\n### Notes\n\n{}", notes.join("\n"));
    }
    let _ = writeln!(s, "\n### {CHART_TITLE}\n");
    s.push_str(&chart(results));
    s
}

/// Each backend against the floor: its TTFT bias and CPU per call over the floor's.
fn floor_section(s: &mut String, results: &[BackendOverhead]) {
    let rows: Vec<&BackendOverhead> = results.iter().filter(|r| r.vs_floor.is_some()).collect();
    if rows.is_empty() {
        return;
    }
    let times = |v: f64| format!("{v:.2}×");
    let _ = writeln!(
        s,
        "\n### Against the floor: each figure divided by the `{}` client's, same invocation\n\n\
         The floor is the simplest correct client for this protocol: one OS thread per agent, \
         blocking `std::net` sockets, a hand-rolled HTTP/1.1 request, the same codecs and run \
         protocol, on the same probes, under the same connection policy as the row. 1.00× is \
         as cheap as the work itself; what is above it is the runtime and its client. `-`: no \
         figure on one side (or a floor figure of 0).\n\n\
         TTFT bias, p50 and p99 (target, keep-alive at N = 64: p99 ≤ 1.5×):\n",
        super::floor::NAME
    );
    pair_table(
        s,
        &rows,
        |r, n| {
            let b = r.vs_floor.as_ref().and_then(|v| v.bias(n));
            (b.and_then(|b| b.p50), b.and_then(|b| b.p99))
        },
        times,
    );
    let _ = writeln!(
        s,
        "\nClient CPU per call (targets, keep-alive: the best backend ≤ 2×, every Rust backend ≤ 4×):\n"
    );
    let _ = write!(s, "{LEAD}");
    for n in NS {
        let _ = write!(s, " N={n} |");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{LEAD_RULE}{}", "---:|".repeat(NS.len()));
    for r in rows {
        let _ = write!(s, "{}", lead(r));
        for n in NS {
            let v = r.vs_floor.as_ref().and_then(|v| v.cpu(n));
            let _ = write!(s, " {} |", opt(v, times));
        }
        let _ = writeln!(s);
    }
}

/// Issue 17's targets for keep-alive at N = 64 on `fixed`, row by row: what was measured,
/// and whether it meets the target (`-`: not measured in this invocation).
fn targets_section(s: &mut String, results: &[BackendOverhead]) {
    use chimeraforge_core::ConnectionPolicy::KeepAlive;
    let rows: Vec<&BackendOverhead> = results
        .iter()
        .filter(|r| !r.is_floor() && r.connection == Some(KeepAlive))
        .collect();
    if rows.is_empty() {
        return;
    }
    let verdict = |v: Option<f64>, shown: String, met: fn(f64) -> bool| match v {
        Some(v) => format!("{shown} {}", if met(v) { "yes" } else { "**no**" }),
        None => "-".to_owned(),
    };
    let pinned = rows.iter().any(|r| r.pinned.is_some());
    let _ = writeln!(
        s,
        "\n### Keep-alive targets at N = 64 (`ideal-64` on `fixed`)\n\n\
         TTFT bias p99 within 1.5× the floor's; below 2 ms with `--pin` ({}); ideal-device \
         efficiency ≥ 99%; client CPU per call within 4× the floor's for every Rust backend \
         and 2× for the best.\n\n\
         | backend | bias p99 × floor | bias p99 | efficiency | CPU per call × floor |\n|---|---:|---:|---:|---:|",
        if pinned {
            "this run was pinned"
        } else {
            "this run was not: the 2 ms target does not apply to it"
        }
    );
    for r in &rows {
        let vs = r.vs_floor.as_ref();
        let ratio = vs.and_then(|v| v.bias(64)).and_then(|b| b.p99);
        let p99 = r.bias(64).map(|b| b.p99_ms);
        let cpu = vs.and_then(|v| v.cpu(64));
        let python = r.backend.starts_with("python");
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.backend,
            verdict(ratio, opt(ratio, |v| format!("{v:.2}×")), |v| v <= 1.5),
            match (p99, pinned) {
                (Some(v), true) => verdict(Some(v), format!("{v:.2} ms"), |v| v < 2.0),
                (p99, false) => opt(p99, |v| format!("{v:.2} ms")),
                (None, true) => "-".to_owned(),
            },
            verdict(
                r.eff(64),
                opt(r.eff(64), |v| format!("{:.2}%", v * 100.0)),
                |v| { v >= 0.99 }
            ),
            if python {
                opt(cpu, |v| format!("{v:.2}× (no target)"))
            } else {
                verdict(cpu, opt(cpu, |v| format!("{v:.2}×")), |v| v <= 4.0)
            },
        );
    }
    let best = rows
        .iter()
        .filter_map(|r| Some((r.backend.as_str(), r.vs_floor.as_ref()?.cpu(64)?)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((name, v)) = best {
        let met = if v <= 2.0 { "yes" } else { "**no**" };
        let _ = writeln!(
            s,
            "\nThe lowest CPU per call × floor: {name}, {v:.2}× (≤ 2×: {met})."
        );
    }
}

const CHART_TITLE: &str = "TTFT bias p99 against N";

/// Colours of the chart's backends, in their order.
const COLORS: [&str; 5] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

/// The chart stands outside the HTML report, whose stylesheet styles the shared builder's
/// classes: it carries its own.
const CHART_STYLE: &str = "text{font-family:sans-serif;font-size:11px}.axis{stroke:#888}\
     .series{stroke-width:2}.fresh{stroke-dasharray:6 3}";

/// An inline SVG: TTFT bias p99 (ms, linear) against N (log2), one line per backend and
/// policy: a colour per backend, dashed under `fresh`.
fn chart(results: &[BackendOverhead]) -> String {
    let (w, h, pad) = (560.0, 260.0, 40.0);
    let max_y = results
        .iter()
        .flat_map(|r| r.ttft_bias_ms.iter().map(|b| b.p99_ms))
        .fold(1.0f64, f64::max);
    // N = 1 .. 1,024 is log2 N = 0 .. 10.
    let x = Linear::new((0.0, 10.0), (pad, w - pad));
    let x = |n: usize| x.at((n as f64).log2());
    let y = Linear::new((0.0, max_y), (h - pad, pad));
    let mut svg = Svg::new(w, h, CHART_TITLE);
    svg.style(CHART_STYLE);
    svg.line(pad, h - pad, w - pad, h - pad, "axis");
    svg.line(pad, pad, pad, h - pad, "axis");
    svg.text(
        pad,
        pad - 8.0,
        "start",
        "title",
        &format!("TTFT bias p99, ms (max {max_y:.2})"),
    );
    for n in NS {
        svg.text(x(n), h - pad + 14.0, "middle", "tick", &format!("N={n}"));
    }
    let mut backends: Vec<&str> = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let b = match backends.iter().position(|b| *b == r.backend) {
            Some(b) => b,
            None => {
                backends.push(&r.backend);
                backends.len() - 1
            }
        };
        let c = COLORS[b % COLORS.len()];
        let points: Vec<(f64, f64)> = r
            .ttft_bias_ms
            .iter()
            .map(|b| (x(b.agents), y.at(b.p99_ms)))
            .collect();
        let fresh = r.connection == Some(chimeraforge_core::ConnectionPolicy::Fresh);
        svg.polyline(&points, if fresh { "series fresh" } else { "series" }, c);
        let legend_y = pad + 14.0 * i as f64;
        let label = match r.connection {
            Some(p) => format!("{} {p}", r.backend),
            None => r.backend.clone(),
        };
        svg.text_color(w - pad - 150.0, legend_y, "start", "legend", c, &label);
    }
    svg.finish()
}

/// The terminal table: one line per backend with the headline figures.
pub(crate) fn table(results: &[BackendOverhead]) -> String {
    let mut s = format!(
        "{:<14} {:<10} {:>7} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>8} {:>8} {:>12} {:>12} {:>10} {:>10}\n",
        "backend",
        "connection",
        "threads",
        "bias50@1",
        "bias99@64",
        "×fl b99@64",
        "×fl cpu@64",
        "srv99@64",
        "bias99@1k",
        "eff@2",
        "eff@64",
        "tok/CPU-s@1",
        "tok/CPU-s@64",
        "KiB/ag@64",
        "KiB/ag@1k"
    );
    for r in results {
        let vs = r.vs_floor.as_ref();
        let _ = writeln!(
            s,
            "{:<14} {:<10} {:>7} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>8} {:>8} {:>12} {:>12} {:>10} {:>10}",
            r.backend,
            policy(r),
            r.worker_threads,
            opt(r.bias(1).map(|b| b.p50_ms), |v| format!("{v:.2}ms")),
            opt(r.bias(64).map(|b| b.p99_ms), |v| format!("{v:.2}ms")),
            opt(vs.and_then(|v| v.bias(64)).and_then(|b| b.p99), |v| format!(
                "{v:.2}×"
            )),
            opt(vs.and_then(|v| v.cpu(64)), |v| format!("{v:.2}×")),
            opt(r.bias(64).and_then(|b| b.server_p99_ms), |v| format!(
                "{v:.2}ms"
            )),
            opt(r.bias(1024).map(|b| b.p99_ms), |v| format!("{v:.1}ms")),
            opt(r.eff(2), |v| format!("{:.2}%", v * 100.0)),
            opt(r.eff(64), |v| format!("{:.2}%", v * 100.0)),
            opt(r.ingest_at(1).map(|i| i.tokens_per_cpu_s), |v| format!(
                "{v:.0}"
            )),
            opt(r.ingest_at(64).map(|i| i.tokens_per_cpu_s), |v| format!(
                "{v:.0}"
            )),
            opt(r.kib_per_agent(64), |v| format!("{v:.1}")),
            opt(r.kib_per_agent(1024), |v| format!("{v:.1}")),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The markdown and the terminal table of a fixed set of figures are what they were:
    /// `tests/data/overhead/` holds the figures and the text (`UPDATE_GOLDEN=1` rewrites it).
    #[test]
    fn rendering_of_fixed_figures_is_unchanged() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/overhead");
        let figures = std::fs::read_to_string(dir.join("figures.json")).unwrap();
        let mut results: Vec<BackendOverhead> = serde_json::from_str(&figures).unwrap();
        // As `overhead` does once every backend and the floor are measured.
        super::super::figures::with_floor_ratios(&mut results);
        // The one line that depends on this machine.
        let cores = crate::scaling::cores();
        let md = markdown(&results, cores).replace(
            &format!("machine with {cores} core(s)"),
            "machine with CORES core(s)",
        );
        let files = [("overhead.md", md), ("table.txt", table(&results))];
        for (name, text) in &files {
            if std::env::var_os("UPDATE_GOLDEN").is_some() {
                std::fs::write(dir.join(name), text).unwrap();
            }
            let want = std::fs::read_to_string(dir.join(name)).unwrap();
            assert!(
                *text == want,
                "{name} differs from tests/data/overhead/{name}"
            );
        }
    }
}
