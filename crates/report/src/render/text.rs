//! Escaping for each output format, and number formatting shared by the renderers.

use crate::analysis::MetricStats;
use crate::stats::BootstrapCi;

/// Escape for HTML text and attribute values (quoted with either quote character).
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escape for a Markdown table cell or inline text: kept on one line, and unable to open an
/// HTML tag, an entity, a link, code or emphasis. Harmless characters stay as they are, so
/// the raw file reads well ("p < 0.001", "http_status").
pub fn md(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &ch) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
        match ch {
            '<' if next.is_some_and(|n| n.is_alphabetic() || "/!?".contains(n)) => {
                out.push_str("&lt;")
            }
            '&' if next.is_some_and(|n| n.is_alphanumeric() || n == '#') => out.push_str("&amp;"),
            '\r' | '\n' | '\t' => out.push(' '),
            '_' if word(prev) && word(next) => out.push('_'),
            '\\' | '|' | '`' | '*' | '_' | '[' | ']' => {
                out.push('\\');
                out.push(ch);
            }
            c => out.push(c),
        }
    }
    out
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote, CR or LF; quotes doubled.
pub fn csv(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The serde name of a unit variant (`sequential`, `http_status`), else its Debug form.
pub fn serde_name<T: serde::Serialize + std::fmt::Debug>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| j.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{v:?}"))
}

/// `x` with `decimals` places; "–" for a non-finite value, and no "-0.0".
pub fn num(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return "–".to_owned();
    }
    let s = format!("{x:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_owned()
    } else {
        s
    }
}

/// Like [`num`], with an explicit sign ("+1.2", "−0.4").
pub fn signed(x: f64, decimals: usize) -> String {
    let s = num(x, decimals);
    match s.strip_prefix('-') {
        Some(rest) => format!("−{rest}"),
        None if s.chars().any(|c| c.is_ascii_digit() && c != '0') => format!("+{s}"),
        None => s,
    }
}

/// An optional number, "–" when absent.
pub fn opt(x: Option<f64>, decimals: usize) -> String {
    x.map_or_else(|| "–".to_owned(), |x| num(x, decimals))
}

/// A p-value: three decimals, or "< 0.001".
pub fn p_value(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".to_owned()
    } else {
        format!("{p:.3}")
    }
}

/// "p = 0.012" or "p < 0.001".
pub fn p_eq(p: f64) -> String {
    let s = p_value(p);
    if s.starts_with('<') {
        format!("p {s}")
    } else {
        format!("p = {s}")
    }
}

/// "[lo, hi]" with `decimals` places.
pub fn ci(ci: &BootstrapCi, decimals: usize) -> String {
    format!("[{}, {}]", num(ci.lo, decimals), num(ci.hi, decimals))
}

/// "[+lo, +hi]" for a difference.
pub fn ci_signed(ci: &BootstrapCi, decimals: usize) -> String {
    format!("[{}, {}]", signed(ci.lo, decimals), signed(ci.hi, decimals))
}

/// A metric's statistics in one cell: "mean ± sd \[CI\] min–max", or what is missing and why.
pub fn stats_cell(m: &MetricStats) -> String {
    let (main, detail) = stats_parts(m);
    if detail.is_empty() {
        main
    } else {
        format!("{main} {detail}")
    }
}

/// [`stats_cell`] in two parts: "mean ± sd", then "\[CI\] min–max" and any caveat.
pub fn stats_parts(m: &MetricStats) -> (String, String) {
    let d = m.metric.decimals();
    let Some(s) = m.summary else {
        return ("–".to_owned(), String::new());
    };
    let (main, mut detail) = match (s.std, m.ci) {
        (Some(sd), Some(c)) => (
            format!("{} ± {}", num(s.mean, d), num(sd, d)),
            format!("{} {}–{}", ci(&c, d), num(s.min, d), num(s.max, d)),
        ),
        (Some(sd), None) => (
            format!("{} ± {}", num(s.mean, d), num(sd, d)),
            format!("(no CI: n = {}) {}–{}", s.n, num(s.min, d), num(s.max, d)),
        ),
        (None, _) => (num(s.mean, d), "(n = 1: n too small for sd, CI)".to_owned()),
    };
    if m.estimated_runs > 0 {
        detail.push_str(&format!(
            " (estimated in {} of {} runs)",
            m.estimated_runs, s.n
        ));
    }
    (main, detail)
}

/// "mean ± sd" only, or the mean alone with n = 1.
pub fn mean_sd(m: &MetricStats) -> String {
    let d = m.metric.decimals();
    match m.summary {
        None => "–".to_owned(),
        Some(s) => match s.std {
            Some(sd) => format!("{} ± {}", num(s.mean, d), num(sd, d)),
            None => num(s.mean, d),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_markup_and_both_quotes() {
        assert_eq!(
            html(r#"<script>alert("x")</script></svg>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;/svg&gt;&amp;&#39;"
        );
    }

    #[test]
    fn md_keeps_tables_intact() {
        assert_eq!(md("a|b\nc <b>_x_"), r"a\|b c &lt;b>\_x\_");
        assert_eq!(
            md("p < 0.001, http_status, a&b &amp"),
            "p < 0.001, http_status, a&amp;b &amp;amp"
        );
        assert_eq!(
            md("[x](javascript:1) `c` *e*"),
            r"\[x\](javascript:1) \`c\` \*e\*"
        );
    }

    #[test]
    fn csv_quotes_per_rfc_4180() {
        assert_eq!(csv("plain"), "plain");
        assert_eq!(csv("a,b"), "\"a,b\"");
        assert_eq!(csv("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv("cr\r"), "\"cr\r\"");
    }

    #[test]
    fn numbers_have_no_negative_zero_and_signs_are_explicit() {
        assert_eq!(num(-0.0001, 2), "0.00");
        assert_eq!(num(f64::NAN, 2), "–");
        assert_eq!(signed(1.25, 1), "+1.2");
        assert_eq!(signed(-3.0, 1), "−3.0");
        assert_eq!(signed(0.0, 1), "0.0");
        assert_eq!(p_eq(0.0001), "p < 0.001");
        assert_eq!(p_eq(0.0456), "p = 0.046");
    }
}
