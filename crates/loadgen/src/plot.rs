//! Minimal SVG line charts for the benchmark report: axes from zero, ticks, one polyline and
//! legend entry per series. No dependency; the files open in any browser.

use std::fmt::Write;

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten, at least `max`.
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * magnitude)
        .find(|bound| *bound >= max)
        .unwrap_or(10.0 * magnitude)
}

pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let (width, height) = (720.0, 420.0);
    let (left, right, top, bottom) = (80.0, 180.0, 50.0, 60.0);
    let plot_width = width - left - right;
    let plot_height = height - top - bottom;
    let all = series.iter().flat_map(|s| s.points.iter());
    let x_max = nice_ceiling(all.clone().map(|p| p.0).fold(0.0, f64::max));
    let y_max = nice_ceiling(all.map(|p| p.1).fold(0.0, f64::max));
    let x_of = |x: f64| left + x / x_max * plot_width;
    let y_of = |y: f64| top + plot_height - y / y_max * plot_height;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<rect width="{width}" height="{height}" fill="white"/>"#
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="25" font-size="15" text-anchor="middle">{title}</text>"#,
        left + plot_width / 2.0
    );
    for tick in 0..=5 {
        let fraction = f64::from(tick) / 5.0;
        let (x, y) = (
            left + fraction * plot_width,
            top + plot_height - fraction * plot_height,
        );
        let _ = write!(
            svg,
            r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            left + plot_width,
            left - 6.0,
            y + 4.0,
            format_number(fraction * y_max)
        );
        let _ = write!(
            svg,
            r#"<text x="{x}" y="{}" text-anchor="middle">{}</text>"#,
            top + plot_height + 18.0,
            format_number(fraction * x_max)
        );
    }
    let _ = write!(
        svg,
        r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="black"/><line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
        top + plot_height,
        top + plot_height,
        left + plot_width,
        top + plot_height
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{x_label}</text>"#,
        left + plot_width / 2.0,
        height - 15.0
    );
    let _ = write!(
        svg,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{y_label}</text>"#,
        top + plot_height / 2.0,
        top + plot_height / 2.0
    );
    for (index, line) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let points: Vec<String> = line
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", x_of(*x), y_of(*y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        for (x, y) in &line.points {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                x_of(*x),
                y_of(*y)
            );
        }
        let legend_y = top + 10.0 + index as f64 * 20.0;
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}">{}</text>"#,
            left + plot_width + 15.0,
            legend_y - 10.0,
            left + plot_width + 32.0,
            legend_y,
            line.name
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn format_number(value: f64) -> String {
    // One decimal where it is needed: 1.6k, not 2k; 1.2M, not 1200k.
    let scaled = |value: f64, unit: &str| match value.fract().abs() < 1e-9 {
        true => format!("{value:.0}{unit}"),
        false => format!("{value:.1}{unit}"),
    };
    if value >= 1_000_000.0 {
        scaled(value / 1_000_000.0, "M")
    } else if value >= 1000.0 {
        scaled(value / 1000.0, "k")
    } else if value >= 10.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_every_series_and_nice_axes() {
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(13.0), 20.0);
        assert_eq!(nice_ceiling(4_100.0), 5_000.0);
        assert_eq!(format_number(1_600.0), "1.6k");
        assert_eq!(format_number(400_000.0), "400k");
        assert_eq!(format_number(1_200_000.0), "1.2M");
        assert_eq!(format_number(2.5), "2.5");
        let svg = line_chart(
            "t",
            "x",
            "y",
            &[
                Series {
                    name: "a".into(),
                    points: vec![(1.0, 2.0), (2.0, 3.0)],
                },
                Series {
                    name: "b".into(),
                    points: vec![(1.0, 1.0)],
                },
            ],
        );
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">a</text>") && svg.contains(">b</text>"));
    }
}
