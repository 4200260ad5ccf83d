//! Minimal SVG line charts for the benchmark report: linear axes from zero or logarithmic ones
//! by powers of ten, ticks, one polyline and legend entry per series. No dependency; the files
//! open in any browser.

use std::fmt::Write;

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One axis of a chart: its label, and whether it is logarithmic (for figures spanning several
/// powers of ten, such as a latency from 1 ms to 1 s, or loads from 2,000 to 2,000,000 a second).
pub struct Axis<'a> {
    pub label: &'a str,
    pub log: bool,
    /// A value marked across the plot with a dashed line and its own label (a target or a
    /// bound, such as a p99 of 5 ms).
    pub mark: Option<(f64, &'a str)>,
}

impl<'a> Axis<'a> {
    pub fn linear(label: &'a str) -> Axis<'a> {
        Axis {
            label,
            log: false,
            mark: None,
        }
    }

    pub fn log(label: &'a str) -> Axis<'a> {
        Axis {
            label,
            log: true,
            mark: None,
        }
    }

    pub fn marked(self, value: f64, label: &'a str) -> Axis<'a> {
        Axis {
            mark: Some((value, label)),
            ..self
        }
    }
}

/// Where an axis's values fall: `position` maps a value to 0..=1 along the axis, `ticks` are the
/// values labelled.
struct Scale {
    log: bool,
    low: f64,
    high: f64,
}

impl Scale {
    /// A linear scale from zero to a nice ceiling over `values`, or a logarithmic one over the
    /// powers of ten around its positive values.
    fn over(values: impl Iterator<Item = f64> + Clone, log: bool) -> Scale {
        if !log {
            let high = nice_ceiling(values.fold(0.0, f64::max));
            return Scale {
                log,
                low: 0.0,
                high,
            };
        }
        let positive = values.filter(|value| *value > 0.0);
        let min = positive.clone().fold(f64::MAX, f64::min);
        let max = positive.fold(0.0, f64::max);
        if max == 0.0 {
            return Scale {
                log,
                low: 1.0,
                high: 10.0,
            };
        }
        let low = 10f64.powf(min.log10().floor());
        let high = 10f64.powf(max.log10().ceil()).max(low * 10.0);
        Scale { log, low, high }
    }

    /// Whether `value` can be drawn (a logarithmic axis has no place for zero or less).
    fn shows(&self, value: f64) -> bool {
        !self.log || value > 0.0
    }

    fn position(&self, value: f64) -> f64 {
        match self.log {
            true => (value.log10() - self.low.log10()) / (self.high.log10() - self.low.log10()),
            false => value / self.high,
        }
    }

    fn ticks(&self) -> Vec<f64> {
        match self.log {
            true => {
                let (from, to) = (self.low.log10().round(), self.high.log10().round());
                (from as i32..=to as i32)
                    .map(|power| 10f64.powi(power))
                    .collect()
            }
            false => (0..=5)
                .map(|tick| f64::from(tick) / 5.0 * self.high)
                .collect(),
        }
    }
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

pub fn line_chart(title: &str, x_axis: Axis, y_axis: Axis, series: &[Series]) -> String {
    let (width, height) = (720.0, 420.0);
    let (left, right, top, bottom) = (80.0, 180.0, 50.0, 60.0);
    let plot_width = width - left - right;
    let plot_height = height - top - bottom;
    // A mark widens its axis as a point would, so it is always inside the plot.
    let all = series.iter().flat_map(|s| s.points.iter());
    let x_values = all.clone().map(|p| p.0).chain(x_axis.mark.map(|m| m.0));
    let y_values = all.map(|p| p.1).chain(y_axis.mark.map(|m| m.0));
    let x_scale = Scale::over(x_values, x_axis.log);
    let y_scale = Scale::over(y_values, y_axis.log);
    let x_of = |x: f64| left + x_scale.position(x) * plot_width;
    let y_of = |y: f64| top + plot_height - y_scale.position(y) * plot_height;
    let (x_label, y_label) = (x_axis.label, y_axis.label);
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
    for tick in y_scale.ticks() {
        let y = y_of(tick);
        let _ = write!(
            svg,
            r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            left + plot_width,
            left - 6.0,
            y + 4.0,
            format_number(tick)
        );
    }
    for tick in x_scale.ticks() {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            x_of(tick),
            top + plot_height + 18.0,
            format_number(tick)
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
    if let Some((value, label)) = x_axis.mark.filter(|mark| x_scale.shows(mark.0)) {
        let x = x_of(value);
        let _ = write!(
            svg,
            r##"<line x1="{x}" y1="{top}" x2="{x}" y2="{}" stroke="#555" stroke-dasharray="6 4"/><text x="{}" y="{}" fill="#555">{label}</text>"##,
            top + plot_height,
            x + 4.0,
            top + 12.0
        );
    }
    if let Some((value, label)) = y_axis.mark.filter(|mark| y_scale.shows(mark.0)) {
        let y = y_of(value);
        let _ = write!(
            svg,
            r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#555" stroke-dasharray="6 4"/><text x="{}" y="{}" fill="#555">{label}</text>"##,
            left + plot_width,
            left + 4.0,
            y - 4.0
        );
    }
    for (index, line) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let shown: Vec<(f64, f64)> = line
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x_scale.shows(*x) && y_scale.shows(*y))
            .collect();
        let points: Vec<String> = shown
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", x_of(*x), y_of(*y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        for (x, y) in &shown {
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
    } else if value >= 0.1 {
        format!("{value:.1}")
    } else {
        format!("{value}")
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
            Axis::linear("x"),
            Axis::linear("y"),
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

    #[test]
    fn a_logarithmic_axis_spans_the_powers_of_ten_around_its_values() {
        let scale = Scale::over([0.0, 1.5, 85.0].into_iter(), true);
        assert_eq!((scale.low, scale.high), (1.0, 100.0));
        assert_eq!(scale.ticks(), vec![1.0, 10.0, 100.0]);
        assert_eq!(scale.position(10.0), 0.5);
        assert!(!scale.shows(0.0) && scale.shows(0.2));
        // Values within one power of ten still get a decade to lie in.
        let narrow = Scale::over([2.0, 3.0].into_iter(), true);
        assert_eq!((narrow.low, narrow.high), (1.0, 10.0));
        assert_eq!(format_number(0.01), "0.01");
        // A point at zero is left off a logarithmic chart rather than drawn at minus infinity.
        let svg = line_chart(
            "t",
            Axis::log("x"),
            Axis::log("y"),
            &[Series {
                name: "a".into(),
                points: vec![(1_000.0, 0.0), (2_000.0, 1.5), (20_000.0, 40.0)],
            }],
        );
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn a_mark_is_drawn_across_the_plot_and_widens_its_axis() {
        let points = vec![(1.0, 1.0), (2.0, 2.0)];
        let svg = line_chart(
            "t",
            Axis::linear("x"),
            Axis::log("y").marked(200.0, "bound 200 ms"),
            &[Series {
                name: "a".into(),
                points,
            }],
        );
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
        assert!(svg.contains(">bound 200 ms</text>"));
        // The axis reaches the mark (ticks 1, 10, 100, 1k), not only the points' 2.
        assert!(svg.contains(">1k</text>"));
    }
}
