//! A few SVG primitives: a linear scale with round ticks, and an element writer that escapes
//! every piece of text it is given. The HTML report's charts and the driver's `overhead`
//! chart are written with it.

use super::text::html;
use std::fmt::Write;

/// Maps a domain interval onto a pixel range.
#[derive(Debug, Clone, Copy)]
pub struct Linear {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
}

impl Linear {
    pub fn new((d0, d1): (f64, f64), (r0, r1): (f64, f64)) -> Linear {
        let d1 = if d1 > d0 { d1 } else { d0 + 1.0 };
        Linear { d0, d1, r0, r1 }
    }

    /// The pixel range, as given (`(r0, r1)`).
    pub fn range(&self) -> (f64, f64) {
        (self.r0, self.r1)
    }

    /// Pixel position of `x`, clamped to the range.
    pub fn at(&self, x: f64) -> f64 {
        let t = ((x - self.d0) / (self.d1 - self.d0)).clamp(0.0, 1.0);
        self.r0 + t * (self.r1 - self.r0)
    }
}

/// Round ticks covering `lo..=hi`: the widened bounds, the step and the tick values.
pub fn ticks(lo: f64, hi: f64, target: usize) -> (f64, f64, f64, Vec<f64>) {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.05 };
        (lo - pad, hi + pad)
    };
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let start = (lo / step).floor() * step;
    let end = (hi / step).ceil() * step;
    let count = ((end - start) / step).round() as usize;
    let values = (0..=count).map(|i| start + i as f64 * step).collect();
    (start, end, step, values)
}

/// A tick value with as many decimals as its step needs.
pub fn tick_label(x: f64, step: f64) -> String {
    let decimals = (0..6)
        .find(|&d| {
            let scaled = step * 10f64.powi(d);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.abs().max(1.0)
        })
        .unwrap_or(6) as usize;
    super::text::num(x, decimals)
}

/// An SVG document being written.
pub struct Svg {
    out: String,
}

impl Svg {
    /// Open an `<svg>` of `width` × `height` px with an accessible title.
    pub fn new(width: f64, height: f64, title: &str) -> Svg {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>",
            w = width.round(),
            h = height.round(),
            t = html(title)
        );
        Svg { out }
    }

    /// Styles for the classes this document uses, for an SVG shown outside the HTML report
    /// (whose stylesheet styles its charts); `css` is the caller's, never foreign text.
    pub fn style(&mut self, css: &str) {
        let _ = writeln!(self.out, "<style>{css}</style>");
    }

    /// Raw markup this module or its caller built (never foreign text).
    pub fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }

    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, class: &str) {
        let _ = writeln!(
            self.out,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" class=\"{class}\"/>"
        );
    }

    /// A line with an explicit stroke colour.
    pub fn line_color(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, class: &str, color: &str) {
        let _ = writeln!(
            self.out,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" class=\"{class}\" stroke=\"{color}\"/>"
        );
    }

    /// An unfilled line through `points`, in `stroke`.
    pub fn polyline(&mut self, points: &[(f64, f64)], class: &str, stroke: &str) {
        let points: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            self.out,
            "<polyline points=\"{}\" class=\"{class}\" stroke=\"{stroke}\" fill=\"none\"/>",
            points.join(" ")
        );
    }

    /// A rectangle; `tip` (escaped) shows on hover.
    #[allow(clippy::too_many_arguments)]
    pub fn rect(
        &mut self,
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        class: &str,
        fill: &str,
        tip: Option<&str>,
    ) {
        let _ = write!(
            self.out,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" class=\"{class}\" fill=\"{fill}\"",
            w.max(0.5)
        );
        self.close_with_tip("rect", tip);
    }

    /// A circle; `tip` (escaped) shows on hover.
    pub fn circle(&mut self, cx: f64, cy: f64, r: f64, class: &str, fill: &str, tip: Option<&str>) {
        let _ = write!(
            self.out,
            "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"{r}\" class=\"{class}\" fill=\"{fill}\""
        );
        self.close_with_tip("circle", tip);
    }

    /// A path from `d` (numbers and commands only); `tip` (escaped) shows on hover.
    pub fn path(&mut self, d: &str, class: &str, stroke: &str, tip: Option<&str>) {
        let _ = write!(
            self.out,
            "<path d=\"{d}\" class=\"{class}\" stroke=\"{stroke}\""
        );
        self.close_with_tip("path", tip);
    }

    fn close_with_tip(&mut self, element: &str, tip: Option<&str>) {
        match tip {
            Some(t) => {
                let _ = writeln!(self.out, "><title>{}</title></{element}>", html(t));
            }
            None => self.out.push_str("/>\n"),
        }
    }

    /// Text (escaped) at `x`, `y`; `anchor` is start, middle or end.
    pub fn text(&mut self, x: f64, y: f64, anchor: &str, class: &str, s: &str) {
        let _ = writeln!(
            self.out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" class=\"{class}\">{}</text>",
            html(s)
        );
    }

    /// Text (escaped) in `fill`, e.g. a legend entry in its series' colour.
    pub fn text_color(&mut self, x: f64, y: f64, anchor: &str, class: &str, fill: &str, s: &str) {
        let _ = writeln!(
            self.out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" class=\"{class}\" fill=\"{fill}\">{}</text>",
            html(s)
        );
    }

    /// Text with a hover tip, both escaped.
    pub fn text_tip(&mut self, x: f64, y: f64, anchor: &str, class: &str, s: &str, tip: &str) {
        let _ = writeln!(
            self.out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" class=\"{class}\"><title>{}</title>{}</text>",
            html(tip),
            html(s)
        );
    }

    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

/// Colour of the i-th level (backends), readable on white and distinct for colour-blind
/// readers (Okabe-Ito order).
pub fn color(i: usize) -> &'static str {
    const PALETTE: [&str; 8] = [
        "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#7f7f7f", "#000000",
    ];
    PALETTE[i % PALETTE.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let (lo, hi, step, v) = ticks(95.7, 99.9, 5);
        assert!(lo <= 95.7 && hi >= 99.9);
        assert_eq!(step, 1.0);
        assert_eq!(v.first(), Some(&95.0));
        assert_eq!(v.last(), Some(&100.0));
        let (_, _, step, _) = ticks(0.0, 0.37, 4);
        assert_eq!(step, 0.1);
        assert_eq!(tick_label(0.25, 0.25), "0.25");
        assert_eq!(tick_label(0.2, 0.1), "0.2");
        assert_eq!(tick_label(1500.0, 500.0), "1500");
        // Degenerate ranges still give an axis.
        let (lo, hi, _, v) = ticks(3.0, 3.0, 5);
        assert!(lo < 3.0 && hi > 3.0 && v.len() > 1);
    }

    #[test]
    fn text_is_escaped() {
        let mut s = Svg::new(10.0, 10.0, "t<");
        s.text(0.0, 0.0, "start", "c", "</svg><script>");
        let out = s.finish();
        assert!(out.contains("&lt;/svg&gt;&lt;script&gt;"));
        assert_eq!(out.matches("</svg>").count(), 1);
        let mut s = Svg::new(10.0, 10.0, "t");
        s.text_color(0.0, 0.0, "start", "c", "#000", "a&b");
        assert!(s.finish().contains(">a&amp;b</text>"));
    }

    #[test]
    fn a_polyline_is_never_filled() {
        let mut s = Svg::new(10.0, 10.0, "t");
        s.polyline(&[(1.0, 2.0), (3.0, 4.0)], "series", "#123456");
        s.polyline(&[], "series", "#123456");
        let out = s.finish();
        assert!(
            out.contains("<polyline points=\"1.0,2.0 3.0,4.0\" class=\"series\" stroke=\"#123456\" fill=\"none\"/>"),
            "{out}"
        );
        assert!(out.contains("points=\"\""), "{out}");
    }
}
