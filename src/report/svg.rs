//! Inline SVG charts: horizontal bars and a time series. Plain markup, no
//! script: the page must render from the file alone, under a policy that
//! forbids every fetch.

use std::fmt::Write;

use super::escape;

/// One bar: its label and value.
pub struct Bar {
    pub label: String,
    pub value: f64,
    /// Shown after the bar (e.g. "1,234 pkts, 56 KB").
    pub note: String,
}

const WIDTH: f64 = 720.0;
const LABEL: f64 = 230.0;
const ROW: f64 = 22.0;

/// A horizontal bar chart; `class` names it for tests and styles.
pub fn bar_chart(class: &str, title: &str, bars: &[Bar]) -> String {
    let height = ROW * bars.len() as f64 + 8.0;
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let span = WIDTH - LABEL - 190.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart {class}" role="img" aria-label="{t}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = escape(title)
    );
    for (i, b) in bars.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let w = if max > 0.0 {
            (b.value / max * span).max(1.0)
        } else {
            1.0
        };
        let _ = write!(
            s,
            r#"<g><title>{label}: {note}</title><text x="{lx}" y="{ty}" text-anchor="end" class="label">{short}</text><rect class="bar" x="{LABEL}" y="{y}" width="{w:.1}" height="{h}"/><text x="{nx:.1}" y="{ty}" class="value">{note}</text></g>"#,
            label = escape(&b.label),
            note = escape(&b.note),
            short = escape(&shorten(&b.label, 34)),
            lx = LABEL - 6.0,
            ty = y + 15.0,
            h = ROW - 6.0,
            nx = LABEL + w + 6.0,
        );
    }
    s.push_str("</svg>");
    s
}

/// A time series as an area chart: `values[i]` at `start + i * step`
/// seconds; axes labelled with the extremes.
pub fn timeline_chart(
    class: &str,
    title: &str,
    values: &[f64],
    step_seconds: f64,
    y_unit: &str,
) -> String {
    let (w, h, left, bottom, top) = (WIDTH, 220.0, 60.0, 28.0, 10.0);
    let plot_w = w - left - 10.0;
    let plot_h = h - bottom - top;
    let max = values.iter().copied().fold(0.0, f64::max);
    let n = values.len().max(1);
    let x = |i: usize| left + plot_w * i as f64 / n as f64;
    let y = |v: f64| {
        if max > 0.0 {
            top + plot_h * (1.0 - v / max)
        } else {
            top + plot_h
        }
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart {class}" role="img" aria-label="{t}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = escape(title)
    );
    // Steps: each bucket is flat over its width.
    let mut path = format!("M{:.1},{:.1}", x(0), top + plot_h);
    for (i, v) in values.iter().enumerate() {
        let _ = write!(
            path,
            " L{:.1},{:.1} L{:.1},{:.1}",
            x(i),
            y(*v),
            x(i + 1),
            y(*v)
        );
    }
    let _ = write!(path, " L{:.1},{:.1} Z", x(n), top + plot_h);
    let _ = write!(
        s,
        r#"<path class="area" d="{path}"/><line class="axis" x1="{left}" y1="{b}" x2="{r}" y2="{b}"/><line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{b}"/>"#,
        b = top + plot_h,
        r = left + plot_w,
    );
    let _ = write!(
        s,
        r#"<text class="label" x="{lx}" y="{ty}" text-anchor="end">{max}</text><text class="label" x="{lx}" y="{by}" text-anchor="end">0</text><text class="label" x="{left}" y="{xy}">0 s</text><text class="label" x="{r}" y="{xy}" text-anchor="end">{end} s</text><text class="label" x="{mid}" y="{xy}" text-anchor="middle">{unit}, {step} s buckets</text>"#,
        lx = left - 4.0,
        ty = top + 10.0,
        by = top + plot_h,
        xy = h - 8.0,
        r = left + plot_w,
        mid = left + plot_w / 2.0,
        max = escape(&human(max)),
        end = human(step_seconds * values.len() as f64),
        unit = escape(y_unit),
        step = step_seconds,
    );
    s.push_str("</svg>");
    s
}

/// `1234567.0` → `1.23M`; small numbers as they are.
pub fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let head: String = s.chars().take(max - 1).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_escape_labels() {
        let svg = bar_chart(
            "c",
            "t",
            &[
                Bar {
                    label: "<a>".into(),
                    value: 10.0,
                    note: "10".into(),
                },
                Bar {
                    label: "b".into(),
                    value: 5.0,
                    note: "5".into(),
                },
            ],
        );
        assert!(svg.contains("&lt;a&gt;") && !svg.contains("<a>"));
        assert!(svg.contains(r#"width="300.0""#) && svg.contains(r#"width="150.0""#));
    }

    #[test]
    fn an_empty_timeline_still_draws_its_axes() {
        let svg = timeline_chart("t", "x", &[], 1.0, "packets/s");
        assert!(svg.contains("class=\"axis\"") && svg.ends_with("</svg>"));
        assert_eq!(human(1_234_567.0), "1.23M");
        assert_eq!(human(12.0), "12");
    }
}
