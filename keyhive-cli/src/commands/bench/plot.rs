//! Scaling curves as hand-written SVG: log-log axes, one polyline per series, a legend. No
//! plotting crate: the figures are a few dozen points.

use std::fmt::Write as _;

/// One curve: a label and its points `(x, y)`, both positive.
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Points in ascending `x`.
    pub points: Vec<(f64, f64)>,
}

/// A chart: title, axis names and curves.
pub struct Chart<'a> {
    /// Drawn at the top.
    pub title: &'a str,
    /// Under the x axis.
    pub x_label: &'a str,
    /// Beside the y axis.
    pub y_label: &'a str,
    /// The curves (series without a positive point are left out).
    pub series: &'a [Series],
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 250.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// The decades `[lo, hi]` (powers of ten) that cover every positive value.
fn decades(values: impl Iterator<Item = f64>) -> Option<(i32, i32)> {
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return None;
    }
    let lo = lo.log10().floor() as i32;
    let hi = (hi.log10().ceil() as i32).max(lo + 1);
    Some((lo, hi))
}

/// `10^e` as axis text: 1, 10, 100, 1k, 10k, 100k, 1M, or 0.1, 0.01.
fn decade_label(e: i32) -> String {
    match e {
        e if e < 0 => format!("{}", 10f64.powi(e)),
        0..=2 => format!("{}", 10i64.pow(e as u32)),
        3..=5 => format!("{}k", 10i64.pow(e as u32 - 3)),
        _ => format!("{}M", 10i64.pow(e as u32 - 6)),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders `chart` as a standalone SVG document, or `None` if no series has a positive point.
pub fn svg(chart: &Chart<'_>) -> Option<String> {
    let points = || {
        chart
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| *x > 0.0 && *y > 0.0 && y.is_finite())
    };
    let (x_lo, x_hi) = decades(points().map(|(x, _)| *x))?;
    let (y_lo, y_hi) = decades(points().map(|(_, y)| *y))?;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of = |x: f64| LEFT + (x.log10() - f64::from(x_lo)) / f64::from(x_hi - x_lo) * plot_w;
    let y_of =
        |y: f64| TOP + plot_h - (y.log10() - f64::from(y_lo)) / f64::from(y_hi - y_lo) * plot_h;

    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(out, r##"<rect width="100%" height="100%" fill="white"/>"##);
    let _ = writeln!(
        out,
        r##"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"##,
        LEFT + plot_w / 2.0,
        escape(chart.title)
    );
    for e in x_lo..=x_hi {
        let x = x_of(10f64.powi(e));
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 16.0,
            decade_label(e)
        );
    }
    for e in y_lo..=y_hi {
        let y = y_of(10f64.powi(e));
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            decade_label(e)
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
        LEFT + plot_w / 2.0,
        HEIGHT - 15.0,
        escape(chart.x_label)
    );
    let _ = writeln!(
        out,
        r##"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"##,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(chart.y_label)
    );
    let mut drawn = 0usize;
    for series in chart.series {
        let pts: Vec<String> = series
            .points
            .iter()
            .filter(|(x, y)| *x > 0.0 && *y > 0.0 && y.is_finite())
            .map(|(x, y)| format!("{:.1},{:.1}", x_of(*x), y_of(*y)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let colour = COLOURS[drawn % COLOURS.len()];
        let _ = writeln!(
            out,
            r##"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"##,
            pts.join(" ")
        );
        for p in &pts {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                out,
                r##"<circle cx="{x}" cy="{y}" r="2.5" fill="{colour}"/>"##
            );
        }
        let ly = TOP + 10.0 + drawn as f64 * 18.0;
        let lx = LEFT + plot_w + 12.0;
        let _ = writeln!(
            out,
            r##"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"##,
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            escape(&series.label)
        );
        drawn += 1;
    }
    let _ = writeln!(out, "</svg>");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: &[Series]) -> Option<String> {
        svg(&Chart {
            title: "t <1>",
            x_label: "N",
            y_label: "us",
            series,
        })
    }

    #[test]
    fn one_polyline_per_series_with_every_positive_point() {
        let series = [
            Series {
                label: "a".into(),
                points: vec![(10.0, 1.0), (100.0, 10.0), (1000.0, 100.0)],
            },
            Series {
                label: "b".into(),
                points: vec![(10.0, 5.0), (1000.0, 0.0)],
            },
        ];
        let out = chart(&series).expect("a chart");
        assert!(out.starts_with("<svg") && out.trim_end().ends_with("</svg>"));
        assert_eq!(out.matches("<polyline").count(), 2);
        assert_eq!(
            out.matches("<circle").count(),
            4,
            "the zero point is left out"
        );
        assert!(out.contains("t &lt;1&gt;"), "text is escaped");
    }

    #[test]
    fn log_axes_put_equal_ratios_at_equal_distances() {
        let series = [Series {
            label: "a".into(),
            points: vec![(10.0, 1.0), (100.0, 10.0), (1000.0, 100.0)],
        }];
        let out = chart(&series).expect("a chart");
        let line = out
            .lines()
            .find(|l| l.starts_with("<polyline"))
            .expect("a polyline");
        let pts: Vec<(f64, f64)> = line
            .split("points=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("points")
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').expect("x,y");
                (x.parse().expect("x"), y.parse().expect("y"))
            })
            .collect();
        assert_eq!(pts.len(), 3);
        let (dx1, dx2) = (pts[1].0 - pts[0].0, pts[2].0 - pts[1].0);
        let (dy1, dy2) = (pts[1].1 - pts[0].1, pts[2].1 - pts[1].1);
        assert!((dx1 - dx2).abs() < 0.2 && (dy1 - dy2).abs() < 0.2);
        assert!(dx1 > 0.0 && dy1 < 0.0, "x grows rightwards, y upwards");
    }

    #[test]
    fn nothing_positive_is_no_chart() {
        let series = [Series {
            label: "a".into(),
            points: vec![(10.0, 0.0)],
        }];
        assert!(chart(&series).is_none());
        assert_eq!(decade_label(4), "10k");
        assert_eq!(decade_label(0), "1");
    }
}
