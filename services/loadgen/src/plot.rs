//! The latency-distribution plot, as a small hand-written SVG.
//!
//! The x axis is the percentile on the HdrHistogram scale, `log10(1 / (1 - p))`, so that
//! 90 %, 99 %, 99.9 % and 99.99 % are evenly spaced: the tail is what a latency target is
//! about, and a linear axis squeezes it into the last pixel. A plotting crate would bring
//! in far more than these hundred lines.

use std::fmt::Write;

/// One line on the plot.
pub struct Series<'a> {
    pub label: &'a str,
    pub colour: &'a str,
    /// `(percentile 0–100, latency ms)`, in increasing percentile order.
    pub points: &'a [(f64, f64)],
}

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
/// The axis ends at 99.999 % unless the data needs less.
const MAX_NINES: f64 = 5.0;

/// `log10(1 / (1 - p))`, capped at [`MAX_NINES`] (p = 100 % is infinitely far right).
fn nines(percentile: f64) -> f64 {
    let rest = 1.0 - percentile / 100.0;
    if rest <= 10f64.powf(-MAX_NINES) {
        MAX_NINES
    } else {
        -rest.log10()
    }
}

/// A round upper bound for the y axis: 1, 2 or 5 times a power of ten.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|bound| *bound >= value)
        .unwrap_or(10.0 * magnitude)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The SVG document for `series` under `title`. An empty series draws axes only.
pub fn latency_svg(title: &str, series: &[Series<'_>]) -> String {
    let all = series.iter().flat_map(|s| s.points.iter());
    let max_ms = nice_ceiling(all.clone().map(|p| p.1).fold(0.0, f64::max));
    // Enough decades to show the highest finite percentile, at least 99.9 %.
    let x_nines = all.map(|p| nines(p.0)).fold(3.0f64, f64::max).ceil().min(MAX_NINES);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |percentile: f64| LEFT + nines(percentile).min(x_nines) / x_nines * plot_w;
    let y = |ms: f64| TOP + plot_h - (ms / max_ms).min(1.0) * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );

    // Horizontal grid and latency labels.
    for i in 0..=5 {
        let ms = max_ms * f64::from(i) / 5.0;
        let yy = y(ms);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            yy + 4.0,
            format_ms(ms)
        );
    }
    // Vertical grid at 0 %, 90 %, 99 %, ...
    for decade in 0..=(x_nines as u32) {
        let percentile = 100.0 - 100.0 * 10f64.powi(-(decade as i32));
        let xx = x(percentile);
        let label = match decade {
            0 => "0%".to_owned(),
            _ => format!("{}%", trim_percent(percentile)),
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#ddd"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 18.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 14.0
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">latency (ms)</text>"#,
        TOP + plot_h / 2.0
    );
    let _ = writeln!(
        svg,
        r#"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
    );

    for (i, s) in series.iter().enumerate() {
        if !s.points.is_empty() {
            let path: Vec<String> = s
                .points
                .iter()
                .map(|(p, ms)| format!("{:.1},{:.1}", x(*p), y(*ms)))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
                escape(s.colour),
                path.join(" ")
            );
        }
        let ly = TOP + 16.0 + 18.0 * i as f64;
        let lx = LEFT + 12.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 24.0,
            escape(s.colour),
            lx + 30.0,
            ly + 4.0,
            escape(s.label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn format_ms(ms: f64) -> String {
    if ms >= 10.0 || ms == 0.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn trim_percent(p: f64) -> String {
    let s = format!("{p:.5}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percentile_axis_spaces_the_nines_evenly() {
        assert!((nines(0.0) - 0.0).abs() < 1e-9);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-6);
        assert_eq!(nines(100.0), MAX_NINES);
    }

    #[test]
    fn the_latency_axis_ends_on_a_round_number() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(0.03), 0.05);
    }

    #[test]
    fn the_svg_has_a_line_per_series_and_escapes_text() {
        let points = [(0.0, 1.0), (50.0, 2.0), (99.0, 5.0), (100.0, 9.0)];
        let svg = latency_svg(
            "a <b> & c",
            &[
                Series {
                    label: "delivery",
                    colour: "#1f77b4",
                    points: &points,
                },
                Series {
                    label: "ack",
                    colour: "#ff7f0e",
                    points: &[],
                },
            ],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 1, "an empty series has no line");
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert!(svg.contains(">99.9%<") && svg.contains(">delivery<") && svg.contains(">ack<"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }
}
