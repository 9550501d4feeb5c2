//! Hand-written inline SVG charts for report.html: a line chart and a horizontal bar chart, with axes and tick
//! labels. No scripts, no external references: the markup is well-formed XML that opens anywhere offline.

use super::escape::escape;
use std::fmt::Write;

const WIDTH: f64 = 820.0;
const HEIGHT: f64 = 320.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;

/// One curve: `key` names it for machines (`data-series`), `label` for people (the legend).
pub struct Series {
    pub key: String,
    pub label: String,
    pub color: &'static str,
    /// Dashed, to tell a secondary curve apart without colour.
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// A line chart. Points are in data units; `x_ticks`, when given, replaces the computed linear ticks (the
/// percentile chart passes its log-scale ticks).
pub struct LineChart {
    /// `data-chart` value.
    pub id: &'static str,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_range: (f64, f64),
    pub x_ticks: Option<Vec<(f64, String)>>,
    /// Writes an x position for people (hover titles, computed ticks).
    pub x_format: fn(f64) -> String,
    /// The y axis's unit: every tick label of the axis is written in the same one.
    pub y_unit: Unit,
    pub series: Vec<Series>,
    /// Vertical lines at an x position, labelled (phase boundaries).
    pub markers: Vec<(f64, String)>,
}

/// What a y axis counts. Tick labels of one axis share one unit and precision (`0ms 0.5ms 1ms 1.5ms`, never
/// `500µs 1.00ms`); hover titles give each value in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Plain counts or rates, scaled to k or M by the axis's top.
    Count,
    /// Microseconds, scaled to µs, ms or s by the axis's top.
    Micros,
    /// Cores busy (CPU seconds per wall second).
    Cores,
}

impl Unit {
    /// The labels of `ticks` (ascending, the last the axis's top), all in the unit the top calls for.
    pub fn tick_labels(self, ticks: &[f64]) -> Vec<String> {
        let top = ticks.iter().copied().fold(0.0f64, f64::max);
        let (scale, suffix) = match self {
            Unit::Micros if top >= 1e6 => (1e6, "s"),
            Unit::Micros if top >= 1e3 => (1e3, "ms"),
            Unit::Micros => (1.0, "µs"),
            Unit::Count if top >= 1e6 => (1e6, "M"),
            Unit::Count if top >= 1e4 => (1e3, "k"),
            Unit::Count | Unit::Cores => (1.0, ""),
        };
        // The fewest decimals that write every tick exactly (0.5 needs one, 0.25 two).
        let decimals = (0..=3)
            .find(|d| {
                ticks.iter().all(|t| {
                    let v = t / scale;
                    let shown: f64 = format!("{v:.d$}", d = *d).parse().unwrap_or(f64::NAN);
                    (shown - v).abs() <= 1e-9 * v.abs().max(1.0)
                })
            })
            .unwrap_or(3);
        ticks
            .iter()
            .map(|t| format!("{:.d$}{suffix}", t / scale, d = decimals))
            .collect()
    }

    /// One value in full, for a hover title.
    pub fn value(self, v: f64) -> String {
        match self {
            Unit::Micros => crate::checks::human_us(v.max(0.0).round() as u64),
            Unit::Count if v.fract().abs() < 1e-9 => format!("{v:.0}"),
            Unit::Count => format!("{v:.1}"),
            Unit::Cores => format!("{v:.2} cores"),
        }
    }
}

/// Ticks at 1, 2 or 5 times a power of ten, about `n` of them, covering `0..=max`; returns the ticks and the
/// top of the axis (the last tick).
pub fn nice_ticks(max: f64, n: usize) -> (Vec<f64>, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let count = (max / step).ceil() as usize;
    let ticks: Vec<f64> = (0..=count).map(|i| i as f64 * step).collect();
    let top = *ticks.last().unwrap_or(&max);
    (ticks, top)
}

fn fmt(v: f64) -> String {
    format!("{:.1}", v)
}

/// Legend entries longer than this go in rows under the plot instead of the column at its right.
const LEGEND_SIDE_CHARS: usize = 22;
const LEGEND_ROW: f64 = 18.0;
/// At most this many hover columns on a chart over time (one per second up to 12 minutes).
const MAX_HOVER_COLUMNS: usize = 720;

impl LineChart {
    /// Whether the legend goes under the plot (long labels, such as run names in a comparison).
    fn legend_below(&self) -> bool {
        self.series
            .iter()
            .any(|s| s.label.chars().count() > LEGEND_SIDE_CHARS)
    }

    pub fn render(&self) -> String {
        let below = self.legend_below();
        let plot_w = WIDTH - LEFT - if below { 24.0 } else { RIGHT };
        let plot_h = HEIGHT - TOP - BOTTOM;
        let height = if below {
            HEIGHT + 8.0 + LEGEND_ROW * self.series.len() as f64
        } else {
            HEIGHT
        };
        let (x0, x1) = if self.x_range.1 > self.x_range.0 {
            self.x_range
        } else {
            (self.x_range.0, self.x_range.0 + 1.0)
        };
        let y_max = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max);
        // Headroom, so a flat curve at its maximum (a steady rate) is not drawn on the frame.
        let (y_ticks, y_top) = nice_ticks(y_max * 1.08, 5);
        let sx = |x: f64| LEFT + (x.clamp(x0, x1) - x0) / (x1 - x0) * plot_w;
        let sy = |y: f64| TOP + plot_h - (y.max(0.0) / y_top) * plot_h;

        let mut s = String::new();
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" data-chart=\"{}\" viewBox=\"0 0 {WIDTH} {h}\" \
             width=\"{WIDTH}\" height=\"{h}\" role=\"img\" font-family=\"sans-serif\" aria-label=\"{}\" class=\"chart\">",
            self.id,
            escape(&self.title),
            h = fmt(height),
        );
        let _ = write!(s, "<title>{}</title>", escape(&self.title));
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"20\" font-size=\"14\" font-weight=\"bold\" fill=\"#111\">{}</text>",
            fmt(LEFT),
            escape(&self.title)
        );
        // Grid and y ticks.
        for (t, label) in y_ticks.iter().zip(self.y_unit.tick_labels(&y_ticks)) {
            let y = sy(*t);
            let _ = write!(
                s,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#e5e5e5\"/>\
                 <text data-tick=\"y\" x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#333\" text-anchor=\"end\">{}</text>",
                fmt(LEFT),
                fmt(y),
                fmt(LEFT + plot_w),
                fmt(y),
                fmt(LEFT - 6.0),
                fmt(y + 4.0),
                escape(&label)
            );
        }
        // X ticks.
        let x_ticks: Vec<(f64, String)> = match &self.x_ticks {
            Some(t) => t.clone(),
            None => {
                let (ticks, _) = nice_ticks(x1 - x0, 8);
                ticks
                    .into_iter()
                    .map(|t| t + x0)
                    .filter(|t| *t <= x1 + 1e-9)
                    .map(|t| (t, (self.x_format)(t)))
                    .collect()
            }
        };
        for (t, label) in x_ticks.iter().filter(|(t, _)| *t >= x0 && *t <= x1 + 1e-9) {
            x_tick(&mut s, sx(*t), plot_h, label);
        }
        // Axes and their labels.
        let _ = write!(
            s,
            "<line x1=\"{l}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#333\"/>\
             <line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{b}\" stroke=\"#333\"/>\
             <text x=\"{cx}\" y=\"{xl}\" font-size=\"12\" fill=\"#333\" text-anchor=\"middle\">{}</text>\
             <text x=\"14\" y=\"{cy}\" font-size=\"12\" fill=\"#333\" text-anchor=\"middle\" transform=\"rotate(-90 14 {cy})\">{}</text>",
            escape(&self.x_label),
            escape(&self.y_label),
            l = fmt(LEFT),
            r = fmt(LEFT + plot_w),
            t = fmt(TOP),
            b = fmt(TOP + plot_h),
            cx = fmt(LEFT + plot_w / 2.0),
            xl = fmt(HEIGHT - 8.0),
            cy = fmt(TOP + plot_h / 2.0),
        );
        // Phase boundaries.
        for (x, label) in &self.markers {
            let px = sx(*x);
            let _ = write!(
                s,
                "<g data-marker=\"phase\"><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\" stroke-dasharray=\"3 3\"/>\
                 <text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#555\">{}</text></g>",
                fmt(px),
                fmt(TOP),
                fmt(px),
                fmt(TOP + plot_h),
                fmt(px + 3.0),
                fmt(TOP + 10.0),
                escape(label)
            );
        }
        // Curves and the legend.
        for (i, series) in self.series.iter().enumerate() {
            let points: Vec<String> = series
                .points
                .iter()
                .map(|(x, y)| format!("{},{}", fmt(sx(*x)), fmt(sy(*y))))
                .collect();
            let _ = write!(
                s,
                "<polyline data-series=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>",
                escape(&series.key),
                series.color,
                if series.dashed {
                    " stroke-dasharray=\"6 4\""
                } else {
                    ""
                },
                points.join(" ")
            );
            // A lone point draws no line: mark it, so a one-second run still shows its value.
            if let [(x, y)] = series.points[..] {
                let _ = write!(
                    s,
                    "<circle data-single=\"{}\" cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"{}\"/>",
                    escape(&series.key),
                    fmt(sx(x)),
                    fmt(sy(y)),
                    series.color
                );
            }
            let (lx, ly) = if below {
                (LEFT, HEIGHT + 4.0 + i as f64 * LEGEND_ROW)
            } else {
                (LEFT + plot_w + 12.0, TOP + 8.0 + i as f64 * LEGEND_ROW)
            };
            let _ = write!(
                s,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"{}/>\
                 <text data-legend=\"{}\" x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"#111\">{}</text>",
                fmt(lx),
                fmt(ly),
                fmt(lx + 20.0),
                fmt(ly),
                series.color,
                if series.dashed {
                    " stroke-dasharray=\"6 4\""
                } else {
                    ""
                },
                escape(&series.key),
                fmt(lx + 26.0),
                fmt(ly + 4.0),
                escape(&series.label)
            );
        }
        self.hover(&mut s, &sx, &sy, plot_h);
        s.push_str("</svg>");
        s
    }

    /// Hover targets carrying `<title>` tooltips (no script needed). When every curve shares its x positions
    /// (one point per second), one invisible column per position lists every curve's value there; otherwise
    /// (percentile curves) one invisible dot per point.
    fn hover(&self, s: &mut String, sx: &dyn Fn(f64) -> f64, sy: &dyn Fn(f64) -> f64, plot_h: f64) {
        let Some(first) = self.series.first() else {
            return;
        };
        s.push_str("<g data-hover=\"\">");
        let shared = self.series.iter().all(|c| {
            c.points.len() == first.points.len()
                && c.points.iter().zip(&first.points).all(|(a, b)| a.0 == b.0)
        });
        if shared {
            // A long run (hours) gets one column every few seconds, so the page stays small.
            let step = first.points.len().div_ceil(MAX_HOVER_COLUMNS).max(1);
            let shown: Vec<usize> = (0..first.points.len()).step_by(step).collect();
            let xs: Vec<f64> = shown.iter().map(|i| sx(first.points[*i].0)).collect();
            for (k, i) in shown.iter().enumerate() {
                let left = if k == 0 {
                    LEFT
                } else {
                    (xs[k - 1] + xs[k]) / 2.0
                };
                let right = xs
                    .get(k + 1)
                    .map_or(xs[k] + (xs[k] - left).max(4.0), |n| (xs[k] + n) / 2.0);
                let values: Vec<String> = self
                    .series
                    .iter()
                    .map(|c| format!("{} {}", c.label, self.y_unit.value(c.points[*i].1)))
                    .collect();
                let _ = write!(
                    s,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#000\" fill-opacity=\"0\">\
                     <title>{}: {}</title></rect>",
                    fmt(left),
                    fmt(TOP),
                    fmt((right - left).max(1.0)),
                    fmt(plot_h),
                    escape(&(self.x_format)(first.points[*i].0)),
                    escape(&values.join(", "))
                );
            }
        } else {
            for c in &self.series {
                for (x, y) in &c.points {
                    let _ = write!(
                        s,
                        "<circle cx=\"{}\" cy=\"{}\" r=\"5\" fill=\"{}\" fill-opacity=\"0\">\
                         <title>{}: {} at {}</title></circle>",
                        fmt(sx(*x)),
                        fmt(sy(*y)),
                        c.color,
                        escape(&c.label),
                        escape(&self.y_unit.value(*y)),
                        escape(&(self.x_format)(*x))
                    );
                }
            }
        }
        s.push_str("</g>");
    }
}

/// One bar: `key` for machines (`data-bar`), `label` for people.
pub struct Bar {
    pub key: String,
    pub label: String,
    pub value: u64,
    pub color: &'static str,
}

/// A horizontal bar chart of counts, one row per bar, the count printed after each bar.
pub fn bar_chart(id: &'static str, title: &str, bars: &[Bar]) -> String {
    bar_chart_with(id, title, "count", Unit::Count, bars)
}

/// A horizontal bar chart whose values are in another unit (µs...): `axis` names it, `unit` writes the ticks
/// (all in one unit) and the value after each bar.
pub fn bar_chart_with(
    id: &'static str,
    title: &str,
    axis: &str,
    unit: Unit,
    bars: &[Bar],
) -> String {
    const ROW: f64 = 22.0;
    // Room for the longest label at about 6.2 px a character (11 px sans-serif).
    let longest = bars
        .iter()
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(0);
    let label_w = (longest as f64 * 6.2 + 16.0).clamp(160.0, 380.0);
    let plot_w = WIDTH - label_w - 90.0;
    let plot_h = ROW * bars.len().max(1) as f64;
    let height = TOP + plot_h + BOTTOM;
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0) as f64;
    let (ticks, top) = nice_ticks(max, 5);
    let sx = |v: f64| label_w + v / top * plot_w;

    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" data-chart=\"{id}\" viewBox=\"0 0 {WIDTH} {}\" width=\"{WIDTH}\" \
         height=\"{}\" role=\"img\" font-family=\"sans-serif\" aria-label=\"{}\" class=\"chart\"><title>{}</title>\
         <text x=\"{}\" y=\"20\" font-size=\"14\" font-weight=\"bold\" fill=\"#111\">{}</text>",
        fmt(height),
        fmt(height),
        escape(title),
        escape(title),
        fmt(LEFT),
        escape(title)
    );
    for (t, label) in ticks.iter().zip(unit.tick_labels(&ticks)) {
        x_tick(&mut s, sx(*t), plot_h, &label);
    }
    let _ = write!(
        s,
        "<line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{b}\" stroke=\"#333\"/>\
         <line x1=\"{l}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#333\"/>\
         <text x=\"{cx}\" y=\"{xl}\" font-size=\"12\" fill=\"#333\" text-anchor=\"middle\">{}</text>",
        escape(axis),
        l = fmt(label_w),
        t = fmt(TOP),
        b = fmt(TOP + plot_h),
        r = fmt(label_w + plot_w),
        cx = fmt(label_w + plot_w / 2.0),
        xl = fmt(height - 8.0),
    );
    for (i, b) in bars.iter().enumerate() {
        let y = TOP + i as f64 * ROW;
        let w = sx(b.value as f64) - label_w;
        let _ = write!(
            s,
            "<g data-bar=\"{}\" data-value=\"{}\"><title>{}: {}</title><text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#333\" text-anchor=\"end\">{}</text>\
             <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#333\">{}</text></g>",
            escape(&b.key),
            b.value,
            escape(&b.label),
            escape(&unit.value(b.value as f64)),
            fmt(label_w - 6.0),
            fmt(y + ROW * 0.65),
            escape(&b.label),
            fmt(label_w),
            fmt(y + 3.0),
            fmt(w.max(1.0)),
            fmt(ROW - 6.0),
            b.color,
            fmt(label_w + w.max(1.0) + 4.0),
            fmt(y + ROW * 0.65),
            escape(&unit.value(b.value as f64))
        );
    }
    s.push_str("</svg>");
    s
}

fn count_label(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{:.2}", v);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Axis label for a plain number (counts, rates).
pub fn number_label(v: f64) -> String {
    count_label(v)
}

/// A vertical grid line at `x` with its label under the plot.
fn x_tick(s: &mut String, x: f64, plot_h: f64, label: &str) {
    let _ = write!(
        s,
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#e5e5e5\"/>\
         <text data-tick=\"x\" x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#333\" text-anchor=\"middle\">{}</text>",
        fmt(x),
        fmt(TOP),
        fmt(x),
        fmt(TOP + plot_h),
        fmt(x),
        fmt(TOP + plot_h + 16.0),
        escape(label)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        let (t, top) = nice_ticks(93.0, 5);
        assert_eq!(t, vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(top, 100.0);
        let (t, top) = nice_ticks(0.0, 5);
        assert!(top > 0.0 && t.len() >= 2);
        assert_eq!(number_label(12_000.0), "12k");
        assert_eq!(number_label(2.5), "2.5");
    }

    #[test]
    fn an_axis_speaks_one_unit() {
        let (t, _) = nice_ticks(1_400.0, 5);
        assert_eq!(
            Unit::Micros.tick_labels(&t),
            ["0.0ms", "0.5ms", "1.0ms", "1.5ms"].map(String::from)
        );
        let (t, _) = nice_ticks(800.0, 5);
        assert_eq!(Unit::Micros.tick_labels(&t)[1], "200µs");
        let (t, _) = nice_ticks(2_500_000.0, 5);
        assert!(Unit::Micros
            .tick_labels(&t)
            .iter()
            .all(|l| l.ends_with('s') && !l.ends_with("ms")));
        let (t, _) = nice_ticks(12_000.0, 5);
        assert_eq!(
            Unit::Count.tick_labels(&t),
            ["0.0k", "2.5k", "5.0k", "7.5k", "10.0k", "12.5k"].map(String::from)
        );
        let (t, _) = nice_ticks(1.0, 4);
        assert_eq!(
            Unit::Cores.tick_labels(&t),
            ["0.00", "0.25", "0.50", "0.75", "1.00"].map(String::from)
        );
        assert_eq!(Unit::Micros.value(1_234.0), "1.23ms");
    }

    #[test]
    fn hover_columns_stay_bounded_on_long_runs() {
        let chart = |n: usize| LineChart {
            id: "t",
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x_range: (0.0, n as f64),
            x_ticks: None,
            x_format: |x| format!("{x}s"),
            y_unit: Unit::Count,
            series: vec![Series {
                key: "k".into(),
                label: "k".into(),
                color: "#000",
                dashed: false,
                points: (0..n).map(|i| (i as f64 + 0.5, i as f64)).collect(),
            }],
            markers: Vec::new(),
        };
        let titles = |n: usize| chart(n).render().matches("<rect ").count();
        assert_eq!(titles(1), 1);
        assert_eq!(titles(600), 600);
        assert_eq!(titles(MAX_HOVER_COLUMNS), MAX_HOVER_COLUMNS);
        assert_eq!(titles(3_600), 720);
        assert!(titles(86_400) <= MAX_HOVER_COLUMNS);
        // Every point is still drawn.
        let page = chart(3_600).render();
        let points = page.split("points=\"").nth(1).unwrap();
        assert_eq!(
            points[..points.find('"').unwrap()]
                .split_whitespace()
                .count(),
            3_600
        );
        assert!(page.contains("<title>3595.5s: k 3595</title>"));
    }
}
