//! The comparison page (`report --compare A.json B.json ...`): several runs drawn over each other in one
//! self-contained HTML file, for a before/after view. Request percentile spectra (corrected), requests/s and
//! p99 over time aligned on seconds since each run's start, and the headline figures side by side with their
//! ratio to the first run. Judging a regression is `compare`'s job; this page only shows.

use super::escape::escape;
use super::html::{percentile_points, seconds_label, spectrum_chart, us_label, CSS};
use super::model::Report;
use super::svg::{self, LineChart, Series};
use std::fmt::Write;
use std::path::Path;

/// One run on the page: `name` says where it came from (see [`run_name`]).
pub struct Run<'a> {
    pub name: String,
    pub report: &'a Report,
}

/// One colour per run, in order; past the eighth, the colours repeat with dashed lines.
pub const PALETTE: [&str; 8] = [
    "#0b62c4", "#e07000", "#1a7f37", "#c00", "#7a3db8", "#8a4b00", "#d6336c", "#0f8b8d",
];

/// A ratio to the first run worse than this (10%, `compare`'s default bound) is shown in red.
const WORSE: f64 = 0.10;

/// The name of the run in `file`: its stem, or its folder's name for a report folder's `report.json`
/// (`reports/smoke-20261125T2120Z/report.json` is `smoke-20261125T2120Z`).
pub fn run_name(file: &Path) -> String {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let folder = file
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned());
    match folder {
        Some(folder) if stem == "report" && !folder.is_empty() => folder,
        _ => stem,
    }
}

impl Run<'_> {
    /// The legend entry: number, name, scenario and start time.
    pub fn label(&self, index: usize) -> String {
        format!(
            "{}. {} ({}, {})",
            index + 1,
            self.name,
            self.report.scenario.name,
            self.report.started_at
        )
    }
}

fn color(index: usize) -> (&'static str, bool) {
    (PALETTE[index % PALETTE.len()], index >= PALETTE.len())
}

/// Which way a figure is better, to colour its ratio.
#[derive(Clone, Copy)]
enum Better {
    Lower,
    Higher,
    Neither,
}

/// One row of the headline table: how to read the figure from a report and how to write it.
struct Figure {
    key: &'static str,
    label: &'static str,
    better: Better,
    value: fn(&Report) -> Option<f64>,
    show: fn(f64) -> String,
}

fn latency(v: u64, count: u64) -> Option<f64> {
    (count > 0).then_some(v as f64)
}

fn count(v: f64) -> String {
    format!("{}", v.round() as u64)
}

const FIGURES: &[Figure] = &[
    Figure {
        key: "sent",
        label: "requests sent",
        better: Better::Neither,
        value: |r| Some(r.total.sent as f64),
        show: count,
    },
    Figure {
        key: "throughput",
        label: "throughput (req/s)",
        better: Better::Higher,
        value: |r| Some(r.total.throughput_rps),
        show: |v| format!("{v:.1}"),
    },
    Figure {
        key: "error_rate",
        label: "error rate",
        better: Better::Lower,
        value: |r| Some(r.total.error_rate),
        show: |v| format!("{:.2}%", v * 100.0),
    },
    Figure {
        key: "p50",
        label: "p50 latency",
        better: Better::Lower,
        value: |r| latency(r.total.latency.p50_us, r.total.latency.count),
        show: us_label,
    },
    Figure {
        key: "p90",
        label: "p90 latency",
        better: Better::Lower,
        value: |r| latency(r.total.latency.p90_us, r.total.latency.count),
        show: us_label,
    },
    Figure {
        key: "p99",
        label: "p99 latency",
        better: Better::Lower,
        value: |r| latency(r.total.latency.p99_us, r.total.latency.count),
        show: us_label,
    },
    Figure {
        key: "p999",
        label: "p99.9 latency",
        better: Better::Lower,
        value: |r| latency(r.total.latency.p999_us, r.total.latency.count),
        show: us_label,
    },
    Figure {
        key: "max",
        label: "max latency",
        better: Better::Lower,
        value: |r| latency(r.total.latency.max_us, r.total.latency.count),
        show: us_label,
    },
    Figure {
        key: "handshake_p99",
        label: "DTLS handshake p99",
        better: Better::Lower,
        value: |r| {
            let h = r.handshakes.as_ref()?;
            latency(h.latency.p99_us, h.latency.count)
        },
        show: us_label,
    },
    Figure {
        key: "retransmissions",
        label: "retransmissions",
        better: Better::Lower,
        value: |r| Some(r.total.retransmissions as f64),
        show: count,
    },
    Figure {
        key: "devices",
        label: "devices started",
        better: Better::Neither,
        value: |r| Some(r.devices.started as f64),
        show: count,
    },
    Figure {
        key: "duration",
        label: "duration (s)",
        better: Better::Neither,
        value: |r| Some(r.duration_s),
        show: |v| format!("{v:.1}"),
    },
];

/// The page comparing `runs` (the first is the reference for the ratios).
pub fn render(runs: &[Run]) -> String {
    let mut s = String::with_capacity(64 * 1024);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>coap-harness: comparing {} runs</title>\n<style>{CSS}\
         .swatch{{display:inline-block;width:1.4em;height:.5em;vertical-align:middle;}}\
         .ratio{{color:#555;font-size:.85em;}}.ratio.worse{{color:#c00;font-weight:bold;}}</style>\n</head>\n<body>\n",
        runs.len()
    );
    let insecure: Vec<String> = runs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.report.security.insecure)
        .map(|(i, r)| format!("{}. {}", i + 1, escape(&r.name)))
        .collect();
    if !insecure.is_empty() {
        let _ = writeln!(
            s,
            "<div class=\"insecure\" id=\"insecure-banner\" role=\"alert\">INSECURE RUNS: DTLS certificate \
             verification was disabled in {}. Nothing proved the server's identity in those runs.</div>",
            insecure.join(", ")
        );
    }
    let _ = writeln!(s, "<h1>coap-harness: comparing {} runs</h1>", runs.len());
    runs_table(&mut s, runs);
    spectra(&mut s, runs);
    over_time(&mut s, runs);
    figures(&mut s, runs);
    let _ = writeln!(
        s,
        "<p class=\"note\">Generated by coap-harness {}.</p>\n</body>\n</html>",
        env!("CARGO_PKG_VERSION")
    );
    super::html::scrolling_tables(&s)
}

fn runs_table(s: &mut String, runs: &[Run]) {
    s.push_str(
        "<table id=\"runs\">\n<tr><th></th><th>run</th><th>scenario</th><th>started</th><th>target</th>\
         <th>security</th><th>devices</th><th>duration</th><th>verdict</th></tr>\n",
    );
    for (i, run) in runs.iter().enumerate() {
        let r = run.report;
        let (c, _) = color(i);
        let verdict = match crate::report::verdict::of(r) {
            crate::report::verdict::Verdict::Passed => "<span class=\"pass\">PASSED</span>",
            crate::report::verdict::Verdict::Failed(_) => "<span class=\"fail\">FAILED</span>",
            crate::report::verdict::Verdict::Fault(_) => "<span class=\"fail\">FAULT</span>",
        };
        let _ = writeln!(
            s,
            "<tr data-run=\"{i}\"><td><span class=\"swatch\" style=\"background:{c}\"></span></td>\
             <td>{}. {}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{:.1} s</td><td>{verdict}</td></tr>",
            i + 1,
            escape(&run.name),
            escape(&r.scenario.name),
            escape(&r.started_at),
            escape(&r.target.url),
            escape(&r.security.transport),
            if r.security.insecure {
                " <b class=\"fail\">(INSECURE)</b>"
            } else {
                ""
            },
            r.devices.started,
            r.duration_s
        );
    }
    s.push_str("</table>\n");
}

fn spectra(s: &mut String, runs: &[Run]) {
    let series: Vec<Series> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, run)| {
            let points = percentile_points(&run.report.total.latency);
            let (color, dashed) = color(i);
            (!points.is_empty()).then(|| Series {
                key: format!("run-{i}"),
                label: run.label(i),
                color,
                dashed,
                points,
            })
        })
        .collect();
    if series.is_empty() {
        s.push_str("<p class=\"note\">No run has request latency samples to draw.</p>\n");
        return;
    }
    s.push_str("<h2>Request latency percentile spectrum</h2>\n");
    let chart = spectrum_chart(
        "compare-percentiles",
        "Request latency by percentile, from intended send",
        series,
    );
    s.push_str(&chart.render());
    s.push('\n');
}

/// One chart over time, a curve per run that has a time series.
fn time_chart(
    runs: &[Run],
    id: &'static str,
    title: &str,
    y_label: &str,
    y_unit: svg::Unit,
    value: fn(&super::model::SeriesPoint) -> u64,
) -> LineChart {
    let x_max = runs
        .iter()
        .filter_map(|r| r.report.timeseries.iter().map(|p| p.t).max())
        .max()
        .map_or(1.0, |t| t as f64 + 1.0);
    let series = runs
        .iter()
        .enumerate()
        .filter(|(_, run)| !run.report.timeseries.is_empty())
        .map(|(i, run)| {
            let (color, dashed) = color(i);
            Series {
                key: format!("run-{i}"),
                label: run.label(i),
                color,
                dashed,
                // Second `t` covers [t, t+1): drawn at its middle, as on a run's own page.
                points: run
                    .report
                    .timeseries
                    .iter()
                    .map(|p| (p.t as f64 + 0.5, value(p) as f64))
                    .collect(),
            }
        })
        .collect();
    LineChart {
        id,
        title: title.into(),
        x_label: "seconds since the run started".into(),
        y_label: y_label.into(),
        x_range: (0.0, x_max),
        x_ticks: None,
        x_format: seconds_label,
        y_unit,
        series,
        markers: Vec::new(),
    }
}

fn over_time(s: &mut String, runs: &[Run]) {
    if runs.iter().all(|r| r.report.timeseries.is_empty()) {
        return;
    }
    s.push_str("<h2>Over time</h2>\n");
    let throughput = time_chart(
        runs,
        "compare-throughput",
        "Requests per second",
        "requests/s",
        svg::Unit::Count,
        |p| p.requests,
    );
    s.push_str(&throughput.render());
    s.push('\n');
    let p99 = time_chart(
        runs,
        "compare-p99",
        "p99 latency per second",
        "latency",
        svg::Unit::Micros,
        |p| p.p99_us,
    );
    s.push_str(&p99.render());
    s.push('\n');
}

/// `×1.23`, red when worse than the first run by more than [`WORSE`].
fn ratio_cell(figure: &Figure, base: Option<f64>, value: Option<f64>) -> String {
    let (Some(base), Some(value)) = (base, value) else {
        return String::new();
    };
    if base == 0.0 {
        return if value == 0.0 {
            " <span class=\"ratio\">×1.00</span>".into()
        } else {
            " <span class=\"ratio\">(first run 0)</span>".into()
        };
    }
    let ratio = value / base;
    let worse = match figure.better {
        Better::Lower => ratio > 1.0 + WORSE,
        Better::Higher => ratio < 1.0 - WORSE,
        Better::Neither => false,
    };
    format!(
        " <span class=\"ratio{}\" data-ratio=\"{ratio:.4}\">×{ratio:.2}</span>",
        if worse { " worse" } else { "" }
    )
}

fn figures(s: &mut String, runs: &[Run]) {
    s.push_str("<h2>Headline figures</h2>\n<table id=\"figures\">\n<tr><th>figure</th>");
    for (i, run) in runs.iter().enumerate() {
        let _ = write!(s, "<th>{}. {}</th>", i + 1, escape(&run.name));
    }
    s.push_str("</tr>\n");
    for figure in FIGURES {
        let values: Vec<Option<f64>> = runs.iter().map(|r| (figure.value)(r.report)).collect();
        if values.iter().all(Option::is_none) {
            continue;
        }
        let _ = write!(
            s,
            "<tr data-figure=\"{}\"><th>{}</th>",
            figure.key, figure.label
        );
        for (i, v) in values.iter().enumerate() {
            let shown = v.map_or_else(|| "–".to_string(), figure.show);
            let ratio = if i == 0 {
                String::new()
            } else {
                ratio_cell(figure, values[0], *v)
            };
            let _ = write!(s, "<td class=\"num\" data-run=\"{i}\">{shown}{ratio}</td>");
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
    let _ = writeln!(
        s,
        "<p class=\"note\">Latency runs from each request's intended send time. Ratios are to run 1; red when \
         worse by more than {:.0}% (<code>coap-harness compare</code> judges a regression against a bound).</p>",
        WORSE * 100.0,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_folder_is_named_after_the_folder() {
        assert_eq!(
            run_name(Path::new("reports/smoke-20261125T2120Z/report.json")),
            "smoke-20261125T2120Z"
        );
        assert_eq!(run_name(Path::new("/tmp/before.json")), "before");
        assert_eq!(run_name(Path::new("report.json")), "report");
    }
}
