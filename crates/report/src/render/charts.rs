//! The HTML report's charts, as inline SVG. Each row or panel is labelled with what it shows
//! and the n it rests on, so no chart needs a separate legend.

use super::svg::{color, tick_label, ticks, Linear, Svg};
use super::text::{num, signed};
use crate::analysis::{Analysis, BoxStats, CellKey, Metric, Timeline};
use chimeraforge_core::record::Phase;

const WIDTH: f64 = 1140.0;
const LABEL_W: f64 = 300.0;
const VALUE_W: f64 = 285.0;
const ROW_H: f64 = 24.0;
const HEAD_H: f64 = 26.0;
const TOP: f64 = 12.0;
const AXIS_H: f64 = 46.0;

fn backend_color(a: &Analysis, backend: &str) -> &'static str {
    color(a.backends.iter().position(|b| b == backend).unwrap_or(0))
}

/// One row of a row chart: the cell, what to write after its label, the value text.
struct RowSpec {
    key: CellKey,
    n_label: String,
    value: String,
}

/// A chart with one row per cell, grouped under "model · scenario" headings, a shared x axis
/// at the bottom, labels on the left and values on the right.
fn row_chart(
    a: &Analysis,
    title: &str,
    x_label: &str,
    domain: (f64, f64),
    reference: Option<(f64, &str)>,
    rows: &[RowSpec],
    mut draw: impl FnMut(&mut Svg, &Linear, usize, f64),
) -> String {
    let (lo, hi, step, tick_values) = ticks(domain.0, domain.1, 8);
    let x0 = LABEL_W + 10.0;
    let x1 = WIDTH - VALUE_W - 10.0;
    let x = Linear::new((lo, hi), (x0, x1));
    let mut heads = 0;
    let mut last: Option<String> = None;
    for r in rows {
        let h = r.key.workload();
        if last.as_ref() != Some(&h) {
            heads += 1;
            last = Some(h);
        }
    }
    let plot_h = heads as f64 * HEAD_H + rows.len() as f64 * ROW_H;
    let height = TOP + plot_h + AXIS_H;
    let mut svg = Svg::new(WIDTH, height, title);
    let y_end = TOP + plot_h;
    for t in &tick_values {
        let px = x.at(*t);
        svg.line(px, TOP, px, y_end, "grid");
        svg.text(px, y_end + 16.0, "middle", "tick", &tick_label(*t, step));
    }
    svg.line(x0, y_end, x1, y_end, "axis");
    svg.text(
        (x0 + x1) / 2.0,
        y_end + 36.0,
        "middle",
        "axis-label",
        x_label,
    );
    if let Some((v, label)) = reference {
        if v >= lo && v <= hi {
            let px = x.at(v);
            svg.line(px, TOP, px, y_end, "ref");
            svg.text(px + 4.0, TOP + 10.0, "start", "ref-label", label);
        }
    }
    let mut y = TOP;
    let mut last: Option<String> = None;
    for (i, r) in rows.iter().enumerate() {
        let h = r.key.workload();
        if last.as_ref() != Some(&h) {
            svg.text(4.0, y + HEAD_H - 8.0, "start", "row-head", &h);
            y += HEAD_H;
            last = Some(h);
        }
        let cy = y + ROW_H / 2.0;
        if i % 2 == 0 {
            svg.rect(0.0, y, WIDTH, ROW_H, "band", "#f4f6f8", None);
        }
        svg.rect(
            16.0,
            cy - 5.0,
            10.0,
            10.0,
            "swatch",
            backend_color(a, &r.key.backend),
            None,
        );
        svg.text(
            32.0,
            cy + 4.0,
            "start",
            "row-label",
            &format!("{}  {}", r.key.backend, r.n_label),
        );
        draw(&mut svg, &x, i, cy);
        svg.text(WIDTH - VALUE_W + 4.0, cy + 4.0, "start", "value", &r.value);
        y += ROW_H;
    }
    svg.finish()
}

/// Measured efficiency per cell: mean with its 95% bootstrap CI, and the seed's estimate.
pub fn efficiency(a: &Analysis) -> String {
    let mut rows = Vec::new();
    let mut lo = f64::INFINITY;
    let mut hi = 100.0f64;
    for c in &a.cells {
        let eff = c.metric(Metric::Efficiency);
        let est = c
            .metric(Metric::EstimatedEfficiency)
            .summary
            .map(|s| s.mean);
        let value = match (eff.summary, eff.ci) {
            (Some(s), Some(ci)) => format!(
                "{}% [{}, {}]; est. {}%",
                num(s.mean, 1),
                num(ci.lo, 1),
                num(ci.hi, 1),
                est.map_or("–".into(), |e| num(e, 1))
            ),
            (Some(s), None) => format!("{}% (n too small for a CI)", num(s.mean, 1)),
            _ => "no successful run".to_owned(),
        };
        for v in [
            eff.ci.map(|c| c.lo),
            eff.ci.map(|c| c.hi),
            eff.summary.map(|s| s.mean),
            est,
        ]
        .into_iter()
        .flatten()
        {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        rows.push(RowSpec {
            key: c.key.clone(),
            n_label: format!("n = {}", eff.n()),
            value,
        });
    }
    if !lo.is_finite() {
        lo = 0.0;
    }
    row_chart(
        a,
        "Efficiency per cell: measured mean with 95% bootstrap CI (whiskers); hollow diamond: the seed's estimated formula",
        "efficiency, % (● measured mean, whiskers 95% CI; ◇ seed formula, estimated)",
        (lo, hi),
        Some((100.0, "100% = N× speedup")),
        &rows,
        |svg, x, i, cy| {
            let c = &a.cells[i];
            let eff = c.metric(Metric::Efficiency);
            let col = backend_color(a, &c.key.backend);
            if let Some(ci) = eff.ci {
                svg.line_color(x.at(ci.lo), cy, x.at(ci.hi), cy, "whisker", col);
                svg.line_color(x.at(ci.lo), cy - 5.0, x.at(ci.lo), cy + 5.0, "whisker", col);
                svg.line_color(x.at(ci.hi), cy - 5.0, x.at(ci.hi), cy + 5.0, "whisker", col);
            }
            if let Some(e) = c.metric(Metric::EstimatedEfficiency).summary {
                let px = x.at(e.mean);
                let d = format!(
                    "M{:.1},{:.1}l5,5l-5,5l-5,-5z",
                    px,
                    cy - 5.0
                );
                svg.path(
                    &d,
                    "estimate",
                    "#555",
                    Some(&format!(
                        "{}: seed formula (estimated) {}% over {} runs",
                        c.key,
                        num(e.mean, 1),
                        e.n
                    )),
                );
            }
            if let Some(s) = eff.summary {
                svg.circle(
                    x.at(s.mean),
                    cy,
                    5.0,
                    "mean",
                    col,
                    Some(&format!(
                        "{}: measured efficiency {}% (mean of {} runs)",
                        c.key,
                        num(s.mean, 2),
                        s.n
                    )),
                );
            }
        },
    )
}

fn box_marks(
    svg: &mut Svg,
    x: &Linear,
    b: &BoxStats,
    cy: f64,
    col: &str,
    whisker_hi: f64,
    tip: &str,
) {
    svg.line_color(x.at(b.min), cy, x.at(b.q1), cy, "whisker", col);
    svg.line_color(x.at(b.q3), cy, x.at(whisker_hi), cy, "whisker", col);
    svg.line_color(
        x.at(whisker_hi),
        cy - 4.0,
        x.at(whisker_hi),
        cy + 4.0,
        "whisker",
        col,
    );
    svg.line_color(x.at(b.min), cy - 4.0, x.at(b.min), cy + 4.0, "whisker", col);
    svg.rect(
        x.at(b.q1),
        cy - 7.0,
        x.at(b.q3) - x.at(b.q1),
        14.0,
        "box",
        col,
        Some(tip),
    );
    svg.line(x.at(b.median), cy - 7.0, x.at(b.median), cy + 7.0, "median");
}

/// TTFT of every concurrent-phase call, per cell: box (quartiles, median, min–max) and the
/// calls themselves when there are few.
pub fn ttft(a: &Analysis) -> String {
    let mut rows = Vec::new();
    let mut hi = 0.0f64;
    for d in &a.distributions {
        let (n_label, value) = match &d.ttft_ms {
            Some(b) => {
                hi = hi.max(b.max);
                (
                    format!("n = {} calls, {} runs", b.n, d.runs),
                    format!(
                        "median {} ms (IQR {}–{})",
                        num(b.median, 1),
                        num(b.q1, 1),
                        num(b.q3, 1)
                    ),
                )
            }
            None => (
                format!("n = 0 calls, {} runs", d.runs),
                "no TTFT".to_owned(),
            ),
        };
        rows.push(RowSpec {
            key: d.key.clone(),
            n_label,
            value,
        });
    }
    row_chart(
        a,
        "TTFT per call, concurrent phase: box = quartiles, line = median, whiskers = min to max, dots = calls",
        "time to first token, ms (concurrent phase, per call)",
        (0.0, hi),
        None,
        &rows,
        |svg, x, i, cy| {
            let d = &a.distributions[i];
            let Some(b) = &d.ttft_ms else { return };
            let col = backend_color(a, &d.key.backend);
            let tip = format!(
                "{}: TTFT min {} / q1 {} / median {} / q3 {} / max {} ms over {} calls",
                d.key,
                num(b.min, 1),
                num(b.q1, 1),
                num(b.median, 1),
                num(b.q3, 1),
                num(b.max, 1),
                b.n
            );
            box_marks(svg, x, b, cy, col, b.max, &tip);
            // Deterministic jitter so equal values do not hide each other.
            for (j, v) in d.ttft_points.iter().enumerate() {
                let dy = ((j * 7919) % 11) as f64 - 5.0;
                svg.circle(x.at(*v), cy + dy, 1.8, "point", "#222", None);
            }
        },
    )
}

/// Raw inter-chunk gaps (between consecutive text events of a call), concurrent phase.
pub fn gaps(a: &Analysis) -> String {
    let mut rows = Vec::new();
    let mut hi = 0.0f64;
    for d in &a.distributions {
        let (n_label, value) = match &d.gap_ms {
            Some(b) => {
                hi = hi.max(b.p99);
                (
                    format!("n = {} gaps, {} calls", b.n, d.gap_calls),
                    format!(
                        "p50 {} · p90 {} · p99 {} · max {} ms",
                        short(b.median),
                        short(b.p90),
                        short(b.p99),
                        short(b.max)
                    ),
                )
            }
            None => ("n = 0 gaps".to_owned(), "no gaps".to_owned()),
        };
        rows.push(RowSpec {
            key: d.key.clone(),
            n_label,
            value,
        });
    }
    row_chart(
        a,
        "Inter-chunk gaps, concurrent phase: box = quartiles, line = median, whiskers = min to p99 (max in the text)",
        "gap between consecutive text events, ms (raw, not TPOT; axis ends at the largest p99)",
        (0.0, hi),
        None,
        &rows,
        |svg, x, i, cy| {
            let d = &a.distributions[i];
            let Some(b) = &d.gap_ms else { return };
            let col = backend_color(a, &d.key.backend);
            let tip = format!(
                "{}: gaps p50 {} / p90 {} / p99 {} / max {} ms over {} gaps",
                d.key,
                num(b.median, 2),
                num(b.p90, 2),
                num(b.p99, 2),
                num(b.max, 2),
                b.n
            );
            box_marks(svg, x, b, cy, col, b.p99, &tip);
            svg.line(x.at(b.p90), cy - 4.0, x.at(b.p90), cy + 4.0, "median");
        },
    )
}

/// Points drawn per scatter panel at most; above, every k-th run (stated on the panel).
pub const MAX_SCATTER_POINTS: usize = 2000;

/// Throughput delta vs measured efficiency, one panel per backend, every successful run.
pub fn scatter(a: &Analysis) -> String {
    const PANEL_W: f64 = 360.0;
    const PANEL_H: f64 = 290.0;
    const PER_ROW: usize = 3;
    let points: Vec<Vec<(f64, f64, String)>> = a
        .backends
        .iter()
        .map(|b| {
            a.runs
                .iter()
                .filter(|r| &r.key.backend == b)
                .filter_map(|r| {
                    let (x, y) = (r.throughput_delta_tok_s?, r.efficiency_pct?);
                    (x.is_finite() && y.is_finite()).then(|| {
                        let tip = format!(
                            "{} run {}: throughput Δ {} tok/s, efficiency {}%",
                            r.key,
                            r.run_index + 1,
                            signed(x, 2),
                            num(y, 2)
                        );
                        (x, y, tip)
                    })
                })
                .collect()
        })
        .collect();
    // Efficiency shares one axis; each panel's own throughput-delta range sets its x axis,
    // so one backend's outlier does not flatten every other panel.
    let (mut ylo, mut yhi) = (f64::INFINITY, 100.0f64);
    for (_, y, _) in points.iter().flatten() {
        ylo = ylo.min(*y);
        yhi = yhi.max(*y);
    }
    if !ylo.is_finite() {
        ylo = 0.0;
    }
    let (ylo, yhi, ystep, yt) = ticks(ylo, yhi, 5);
    let rows = a.backends.len().div_ceil(PER_ROW).max(1);
    let height = rows as f64 * PANEL_H + 10.0;
    let mut svg = Svg::new(
        WIDTH,
        height,
        "Throughput delta (agent 0 − agent 1) vs measured efficiency, one point per successful run, one panel per backend (each panel its own x axis)",
    );
    for (i, (backend, pts)) in a.backends.iter().zip(&points).enumerate() {
        let ox = (i % PER_ROW) as f64 * (PANEL_W + 6.0);
        let oy = (i / PER_ROW) as f64 * PANEL_H;
        let (px0, px1) = (ox + 56.0, ox + PANEL_W - 10.0);
        let (py0, py1) = (oy + 36.0, oy + PANEL_H - 48.0);
        let (xlo, xhi) = pts
            .iter()
            .fold((0.0f64, 0.0f64), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
        let (xlo, xhi, xstep, xt) = ticks(xlo, xhi, 5);
        let x = Linear::new((xlo, xhi), (px0, px1));
        let y = Linear::new((ylo, yhi), (py1, py0));
        let r = a.correlations.iter().find(|c| &c.scope == backend);
        let r_text = r
            .and_then(|c| c.pearson.as_ref().ok())
            .map_or("r n/a".to_owned(), |c| {
                format!("Pearson r = {}", num(c.r, 2))
            });
        let col = backend_color(a, backend);
        svg.rect(ox + 4.0, oy + 6.0, 10.0, 10.0, "swatch", col, None);
        svg.text(
            ox + 20.0,
            oy + 15.0,
            "start",
            "row-head",
            &format!("{backend}  (n = {} runs, {r_text})", pts.len()),
        );
        grid_and_axes(&mut svg, (&x, &xt, xstep), (&y, &yt, ystep));
        if xlo < 0.0 && xhi > 0.0 {
            svg.line(x.at(0.0), py0, x.at(0.0), py1, "ref");
        }
        svg.text(
            (px0 + px1) / 2.0,
            py1 + 32.0,
            "middle",
            "axis-label",
            "throughput Δ, tok/s (agent 0 − agent 1)",
        );
        svg.raw(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"axis-label\" transform=\"rotate(-90 {:.1} {:.1})\">efficiency (measured), %</text>\n",
            ox + 14.0,
            (py0 + py1) / 2.0,
            ox + 14.0,
            (py0 + py1) / 2.0
        ));
        let stride = pts.len().div_ceil(MAX_SCATTER_POINTS).max(1);
        if stride > 1 {
            svg.text(
                px1,
                py0 - 4.0,
                "end",
                "tick",
                &format!("showing every {stride}th of {} runs", pts.len()),
            );
        }
        for (px, py, tip) in pts.iter().step_by(stride) {
            svg.circle(x.at(*px), y.at(*py), 3.0, "dot", col, Some(tip));
        }
    }
    svg.finish()
}

/// TTFT against prompt tokens, one panel per cell whose agents carry their history: every
/// call, hollow alone (sequential phase), filled beside the others (concurrent phase).
pub fn context(a: &Analysis) -> String {
    const PANEL_W: f64 = 360.0;
    const PANEL_H: f64 = 290.0;
    const PER_ROW: usize = 3;
    let (mut ylo, mut yhi) = (0.0f64, 0.0f64);
    for p in a.context.iter().flat_map(|s| &s.points) {
        ylo = ylo.min(p.ttft_ms);
        yhi = yhi.max(p.ttft_ms);
    }
    let (ylo, yhi, ystep, yt) = ticks(ylo, yhi, 5);
    let rows = a.context.len().div_ceil(PER_ROW).max(1);
    let mut svg = Svg::new(
        WIDTH,
        rows as f64 * PANEL_H + 10.0,
        "TTFT against prompt tokens per call of the agents with history, one panel per cell; hollow: alone (sequential phase), filled: concurrent phase",
    );
    for (i, s) in a.context.iter().enumerate() {
        let ox = (i % PER_ROW) as f64 * (PANEL_W + 6.0);
        let oy = (i / PER_ROW) as f64 * PANEL_H;
        let (px0, px1) = (ox + 56.0, ox + PANEL_W - 10.0);
        let (py0, py1) = (oy + 42.0, oy + PANEL_H - 48.0);
        let xhi = s
            .points
            .iter()
            .map(|p| p.prompt_tokens as f64)
            .fold(0.0, f64::max);
        let (xlo, xhi, xstep, xt) = ticks(0.0, xhi, 5);
        let x = Linear::new((xlo, xhi), (px0, px1));
        let y = Linear::new((ylo, yhi), (py1, py0));
        let col = backend_color(a, &s.key.backend);
        svg.rect(ox + 4.0, oy + 6.0, 10.0, 10.0, "swatch", col, None);
        svg.text(
            ox + 20.0,
            oy + 15.0,
            "start",
            "row-head",
            &truncate(
                &format!(
                    "{}  (n = {} calls, {} runs)",
                    s.key.backend,
                    s.points.len(),
                    s.runs
                ),
                44,
            ),
        );
        svg.text(
            ox + 20.0,
            oy + 29.0,
            "start",
            "tick",
            &truncate(&s.key.workload(), 56),
        );
        grid_and_axes(&mut svg, (&x, &xt, xstep), (&y, &yt, ystep));
        svg.text(
            (px0 + px1) / 2.0,
            py1 + 32.0,
            "middle",
            "axis-label",
            "prompt tokens (server-reported)",
        );
        svg.raw(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"axis-label\" transform=\"rotate(-90 {:.1} {:.1})\">TTFT, ms</text>\n",
            ox + 14.0,
            (py0 + py1) / 2.0,
            ox + 14.0,
            (py0 + py1) / 2.0
        ));
        let stride = s.points.len().div_ceil(MAX_SCATTER_POINTS).max(1);
        for p in s.points.iter().step_by(stride) {
            let alone = p.phase == Phase::Sequential;
            let tip = format!(
                "{}: call {}, {} prompt tokens, TTFT {} ms ({})",
                s.key,
                p.turn + 1,
                p.prompt_tokens,
                num(p.ttft_ms, 1),
                if alone { "alone" } else { "concurrent" }
            );
            let (cx, cy) = (x.at(p.prompt_tokens as f64), y.at(p.ttft_ms));
            if alone {
                svg.raw(&format!(
                    "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3\" fill=\"#ffffff\" stroke=\"{col}\" stroke-width=\"1.2\"><title>{}</title></circle>\n",
                    super::text::html(&tip)
                ));
            } else {
                svg.circle(cx, cy, 3.0, "dot", col, Some(&tip));
            }
        }
    }
    svg.finish()
}

/// The concurrent phase of one run: agents as lanes, each call a bar from send to done,
/// each text arrival a tick.
/// Every timeline shares one time axis, so backends compare at a glance.
pub fn timeline(a: &Analysis, t: &Timeline) -> String {
    const LANE_LABEL_W: f64 = 170.0;
    let end = a
        .timelines
        .iter()
        .flat_map(|t| t.lanes.iter().flat_map(|l| &l.calls).map(|c| c.done_ms))
        .fold(t.wall_ms, f64::max);
    // A graph's tool waits and lane ends may reach past its last call's end.
    let end = a
        .timelines
        .iter()
        .filter(|t| t.graph)
        .flat_map(|t| &t.lanes)
        .flat_map(|l| {
            l.calls
                .iter()
                .map(|c| c.done_ms + c.tool_wait_ms.unwrap_or(0.0))
                .chain([l.end_ms])
        })
        .fold(end, f64::max);
    let (lo, hi, step, tv) = ticks(0.0, end, 10);
    let x0 = LANE_LABEL_W;
    let x1 = WIDTH - 20.0;
    let x = Linear::new((lo, hi), (x0, x1));
    let plot_h = t.lanes.len() as f64 * LANE_H;
    let height = TOP + 8.0 + plot_h + AXIS_H;
    let mut title = format!(
        "Timeline of the concurrent phase of {} run {}: agents as lanes, calls as bars from send to done, ticks at text arrivals",
        t.key,
        t.run_index + 1
    );
    if t.graph {
        title.push_str("; hatched: tool waits; arrows: from each dependency's end to its dependent's start; dashed outline and ★: the critical path");
    }
    let mut svg = Svg::new(WIDTH, height, &title);
    if t.graph {
        svg.raw(GRAPH_DEFS);
    }
    let y_top = TOP + 8.0;
    let y_end = y_top + plot_h;
    for v in &tv {
        svg.line(x.at(*v), y_top, x.at(*v), y_end, "grid");
        svg.text(
            x.at(*v),
            y_end + 16.0,
            "middle",
            "tick",
            &tick_label(*v, step),
        );
    }
    svg.line(x0, y_end, x1, y_end, "axis");
    svg.text(
        (x0 + x1) / 2.0,
        y_end + 36.0,
        "middle",
        "axis-label",
        "time since the barrier released the agents, ms",
    );
    svg.line(x.at(t.wall_ms), y_top - 8.0, x.at(t.wall_ms), y_end, "ref");
    svg.text(
        x.at(t.wall_ms) - 4.0,
        y_top - 1.0,
        "end",
        "ref-label",
        &format!("T_conc = {} ms", num(t.wall_ms, 1)),
    );
    let col = backend_color(a, &t.key.backend);
    for (i, lane) in t.lanes.iter().enumerate() {
        let y = y_top + i as f64 * LANE_H;
        let (by, bh) = (y + 16.0, LANE_H - 20.0);
        let star = if t.graph && lane.critical { "★ " } else { "" };
        svg.text_tip(
            4.0,
            by + bh / 2.0 + 4.0,
            "start",
            "row-label",
            &truncate(&format!("{star}agent {i}: {}", lane.agent_id), 26),
            &format!("agent {i}: {}{}", lane.agent_id, lane_note(t, i)),
        );
        if t.graph {
            graph_lane(&mut svg, &x, t, i, by, bh, col);
        }
        for c in &lane.calls {
            let tip = format!(
                "{} / {}: sent at {} ms, first text at {}, done at {} ms; {} text events{}\noutput: {}",
                lane.agent_id,
                c.call,
                num(c.send_ms, 1),
                c.first_text_ms
                    .map_or("–".to_owned(), |f| format!(
                        "{} ms (TTFT {} ms)",
                        num(f, 1),
                        num(f - c.send_ms, 1)
                    )),
                num(c.done_ms, 1),
                c.text_ms.len(),
                c.error
                    .as_ref()
                    .map_or(String::new(), |e| format!("; FAILED: {e}")),
                c.output_preview
            );
            let bx = x.at(c.send_ms);
            let bw = x.at(c.done_ms) - bx;
            let class = if c.error.is_some() {
                "call failed"
            } else {
                "call"
            };
            svg.rect(bx, by, bw, bh, class, col, Some(&tip));
            if let Some(f) = c.first_text_ms {
                svg.rect(bx, by, x.at(f) - bx, bh, "waiting", "#ffffff", None);
            }
            if !c.text_ms.is_empty() {
                let mut d = String::with_capacity(c.text_ms.len() * 16);
                for tm in &c.text_ms {
                    d.push_str(&format!(
                        "M{:.1},{:.1}v{:.1}",
                        x.at(*tm),
                        by + 2.0,
                        bh - 4.0
                    ));
                }
                svg.path(&d, "ticks", "#111", None);
            }
            if bw > 70.0 {
                svg.text(
                    bx + 2.0,
                    by - 3.0,
                    "start",
                    "call-label",
                    &truncate(&c.call, 24),
                );
            }
        }
    }
    svg.finish()
}

/// The hatch of tool waits and the head of dependency arrows, once per graph timeline (the
/// same ids in every one, so repeated definitions in one page agree).
const GRAPH_DEFS: &str = "<defs><pattern id=\"cf-tool-hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#ffffff\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#555\" stroke-width=\"2\"/></pattern><marker id=\"cf-arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0L10,5L0,10z\" fill=\"#333\"/></marker></defs>\n";

/// Lane height and label width of [`timeline`], shared with [`graph_lane`].
const LANE_H: f64 = 46.0;

/// What a lane's hover tip adds on a graph: what the agent waited on, whether it is on the
/// critical path.
fn lane_note(t: &Timeline, i: usize) -> String {
    if !t.graph {
        return String::new();
    }
    let lane = &t.lanes[i];
    let after: Vec<&str> = lane
        .after
        .iter()
        .filter_map(|&d| t.lanes.get(d).map(|l| l.agent_id.as_str()))
        .collect();
    format!(
        "; started at {} ms{}, ended at {} ms{}",
        num(lane.start_ms, 1),
        if after.is_empty() {
            String::new()
        } else {
            format!(" after {}", after.join(", "))
        },
        num(lane.end_ms, 1),
        if lane.critical {
            "; on the critical path"
        } else {
            ""
        }
    )
}

/// A graph lane's extras: its calls' tool waits (hatched), arrows from its dependencies'
/// ends to its start, and an outline when it is on the critical path.
fn graph_lane(svg: &mut Svg, x: &Linear, t: &Timeline, i: usize, by: f64, bh: f64, col: &str) {
    let lane = &t.lanes[i];
    for c in &lane.calls {
        let Some(w) = c.tool_wait_ms else { continue };
        let bx = x.at(c.done_ms);
        svg.raw(&format!(
            "<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"url(#cf-tool-hatch)\" stroke=\"{col}\" stroke-width=\"0.8\" fill-opacity=\"0.9\"><title>{}</title></rect>\n",
            by + 3.0,
            (x.at(c.done_ms + w) - bx).max(0.5),
            bh - 6.0,
            super::text::html(&format!(
                "{} / {}: tool wait {} ms, from {} to {} ms",
                lane.agent_id,
                c.call,
                num(w, 1),
                num(c.done_ms, 1),
                num(c.done_ms + w, 1)
            ))
        ));
    }
    let mid = |j: usize| by - (i as f64 - j as f64) * LANE_H + bh / 2.0;
    for &d in &lane.after {
        let Some(dep) = t.lanes.get(d) else { continue };
        let (x1, y1, x2, y2) = (x.at(dep.end_ms), mid(d), x.at(lane.start_ms), mid(i));
        svg.raw(&format!(
            "<path d=\"M{x1:.1},{y1:.1}C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}\" fill=\"none\" stroke=\"#333\" stroke-width=\"1.2\" marker-end=\"url(#cf-arrow)\"><title>{}</title></path>\n",
            x1 + 12.0,
            x2 - 12.0,
            super::text::html(&format!(
                "{} ended at {} ms; {} started at {} ms",
                dep.agent_id,
                num(dep.end_ms, 1),
                lane.agent_id,
                num(lane.start_ms, 1)
            ))
        ));
    }
    if lane.critical {
        let (x1, x2) = (x.at(lane.start_ms), x.at(lane.end_ms));
        svg.raw(&format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#111\" stroke-width=\"1.6\" stroke-dasharray=\"6 3\"><title>{}</title></rect>\n",
            x1 - 2.0,
            by - 2.0,
            (x2 - x1).max(0.5) + 4.0,
            bh + 4.0,
            super::text::html(&format!(
                "{}: on the critical path (the longest chain of sequential-phase durations, {} ms)",
                lane.agent_id,
                t.critical_path_ms.map_or("–".to_owned(), |c| num(c, 1))
            ))
        ));
    }
}

/// Three significant figures at most, for the narrow value column.
/// A plot's grid lines at its ticks, their labels and its two axes: `x` and `y` each as
/// (scale, ticks, tick step). The plot spans the scales' ranges (`y` runs bottom to top).
fn grid_and_axes(svg: &mut Svg, x: (&Linear, &[f64], f64), y: (&Linear, &[f64], f64)) {
    let ((xs, xt, xstep), (ys, yt, ystep)) = (x, y);
    let (px0, px1) = xs.range();
    let (py1, py0) = ys.range();
    for t in xt {
        svg.line(xs.at(*t), py0, xs.at(*t), py1, "grid");
        svg.text(
            xs.at(*t),
            py1 + 14.0,
            "middle",
            "tick",
            &tick_label(*t, xstep),
        );
    }
    for t in yt {
        svg.line(px0, ys.at(*t), px1, ys.at(*t), "grid");
        svg.text(
            px0 - 4.0,
            ys.at(*t) + 4.0,
            "end",
            "tick",
            &tick_label(*t, ystep),
        );
    }
    svg.line(px0, py1, px1, py1, "axis");
    svg.line(px0, py0, px0, py1, "axis");
}

fn short(x: f64) -> String {
    let d = if x.abs() >= 100.0 {
        0
    } else if x.abs() >= 10.0 {
        1
    } else {
        2
    };
    num(x, d)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}
