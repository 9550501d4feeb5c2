//! report.html: the run for people, in one self-contained file (inline CSS and SVG charts, nothing fetched),
//! so it opens from a CI artifact on an offline laptop.

pub use super::escape::escape;
use super::model::{human_us, Latency, Report, RequestStats};
use super::svg::{self, Bar, LineChart, Series, Unit};
use crate::metrics::Outcome;
use crate::report::verdict::{self, Verdict};
use crate::trust::TrustVerdict;
use std::fmt::Write;

pub(super) const CSS: &str = "\
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:1em 2em;color:#1d1d1f;overflow-wrap:break-word;}\
h1{font-size:1.5em;margin:.4em 0;overflow-wrap:anywhere;}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em;}\
.scroll{overflow-x:auto;max-width:100%;}\
table{border-collapse:collapse;margin:.5em 0;font-size:.9em;}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top;}\
th{background:#f3f3f3;}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap;}\
.insecure{background:#c00;color:#fff;font-weight:bold;font-size:1.15em;padding:1em;border:4px solid #700;margin:.5em 0;}\
.verdict{display:inline-block;font-weight:bold;font-size:1.3em;padding:.2em .8em;border-radius:4px;color:#fff;}\
.passed{background:#1a7f37;}.failed{background:#c00;}.fault{background:#8a4b00;}\
.pass{color:#1a7f37;font-weight:bold;}.fail{color:#c00;font-weight:bold;}.skip{color:#777;font-weight:bold;}\
.warning{background:#fff4ce;border-left:4px solid #d4a000;padding:.4em .8em;margin:.3em 0;}\
.note{color:#555;font-size:.9em;}\
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(9.5em,1fr));gap:.6em;margin:.8em 0;}\
.tile{border:1px solid #ddd;border-radius:6px;padding:.5em .7em;background:#fafafa;}\
.tile .tv{display:block;font-size:1.35em;font-weight:bold;font-variant-numeric:tabular-nums;white-space:nowrap;}\
.tile .tk{display:block;color:#555;font-size:.85em;}\
.tile.passed{background:#1a7f37;}.tile.failed{background:#c00;}.tile.fault{background:#8a4b00;}\
.tile.passed,.tile.failed,.tile.fault{color:#fff;border-color:transparent;}.tile.passed .tk,.tile.failed .tk,.tile.fault .tk{color:#fff;}\
.tile.bad .tv{color:#c00;}\
svg.chart{display:block;margin:.6em 0;width:100%;max-width:980px;height:auto;background:#fff;}\
code{background:#f3f3f3;padding:0 .2em;}\
@media print{body{max-width:none;padding:0;font-size:10pt;}.scroll{overflow:visible;}table{font-size:8pt;}\
th,td{overflow-wrap:anywhere;}svg.chart{max-width:100%;}svg.chart,.tiles,.tile,tr,.warning,.insecure{break-inside:avoid;}\
h2{break-after:avoid;}*{-webkit-print-color-adjust:exact;print-color-adjust:exact;}}";

pub fn render(r: &Report) -> String {
    let mut s = String::with_capacity(64 * 1024);
    let verdict = verdict::of(r);
    let (word, class, reason) = match &verdict {
        Verdict::Passed => ("PASSED", "passed", None),
        Verdict::Failed(why) => ("FAILED", "failed", Some(why.as_str())),
        Verdict::Fault(why) => ("FAULT", "fault", Some(why.as_str())),
    };
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>coap-harness: {} — {word}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        escape(&r.scenario.name)
    );
    if r.security.insecure {
        s.push_str(
            "<div class=\"insecure\" id=\"insecure-banner\" role=\"alert\">INSECURE RUN: DTLS certificate \
             verification was disabled. The sessions were encrypted, but nothing proved the server's identity: \
             these figures may come from any peer that answered.</div>\n",
        );
    }
    let _ = writeln!(s, "<h1>coap-harness: {}</h1>", escape(&r.scenario.name));
    tiles(&mut s, r, word, class);
    if let Some(why) = reason {
        let _ = writeln!(
            s,
            "<p id=\"verdict-reason\"><b>{word}</b>: {}</p>",
            escape(why)
        );
    }
    if matches!(verdict, Verdict::Fault(_)) {
        s.push_str(
            "<p class=\"note\">FAULT: the harness could not measure the target (exit code 2).</p>\n",
        );
    }
    if r.interrupted {
        s.push_str(
            "<div class=\"warning\"><b>Interrupted</b>: the figures cover the run until it was stopped.</div>\n",
        );
    }
    // The insecure banner already says it.
    for w in r
        .warnings
        .iter()
        .filter(|w| !(r.security.insecure && w.starts_with("INSECURE")))
    {
        let _ = writeln!(
            s,
            "<div class=\"warning\"><b>Warning</b>: {}</div>",
            escape(w)
        );
    }

    metadata(&mut s, r);
    if r.no_load() {
        // Trust (and conformance) cases only: lead with them; there is no latency to chart.
        trust_cases(&mut s, r);
        super::device_trust::html(&mut s, r);
        conformance(&mut s, r);
    } else {
        phases(&mut s, r);
        percentiles(&mut s, r);
        timeseries(&mut s, r);
        outcomes(&mut s, r);
        handshakes(&mut s, r);
        trust_cases(&mut s, r);
        super::device_trust::html(&mut s, r);
        conformance(&mut s, r);
    }
    checks(&mut s, r);
    machine(&mut s, r);

    let _ = writeln!(
        s,
        "<p class=\"note\">Generated by coap-harness {} (report schema {}).</p>\n</body>\n</html>",
        escape(&r.harness_version),
        r.schema_version
    );
    scrolling_tables(&s)
}

/// Every table inside a box that scrolls sideways, so a wide table scrolls on a narrow screen instead of
/// widening (or clipping) the page. User text is escaped, so every `<table` here is markup.
pub(super) fn scrolling_tables(page: &str) -> String {
    page.replace("<table", "<div class=\"scroll\"><table")
        .replace("</table>", "</table></div>")
}

/// `n` of `of` as a percentage for a tile, with the decimals it takes not to round 99.996% up to 100% (or
/// 0.004% down to 0%).
fn percent(n: u64, of: u64) -> String {
    if of == 0 {
        return super::model::NO_SAMPLE.into();
    }
    if n == of || n == 0 {
        return format!("{}%", if n == 0 { 0 } else { 100 });
    }
    let p = n as f64 * 100.0 / of as f64;
    let shown = (1..=4)
        .map(|d| format!("{p:.d$}"))
        .find(|t| t.parse::<f64>().is_ok_and(|v| v > 0.0 && v < 100.0))
        .unwrap_or_else(|| if p < 50.0 { "<0.0001" } else { ">99.9999" }.into());
    format!("{shown}%")
}

/// One headline tile: `key` for machines (`data-tile`), the value, and what it is for people.
fn tile(s: &mut String, key: &str, value: &str, label: &str, class: &str) {
    let _ = write!(
        s,
        "<div class=\"tile{}{class}\" data-tile=\"{key}\"><span class=\"tv\">{}</span><span class=\"tk\">{}</span></div>",
        if class.is_empty() { "" } else { " " },
        escape(value),
        escape(label)
    );
}

/// The headline, before any table: what a reader checks first (Gatling's global figures).
fn tiles(s: &mut String, r: &Report, word: &str, class: &str) {
    let _ = write!(
        s,
        "<div class=\"tiles\" id=\"tiles\"><div class=\"tile {class}\" data-tile=\"verdict\">\
         <span class=\"tv\" id=\"verdict\">{word}</span><span class=\"tk\">verdict</span></div>"
    );
    if r.no_load() {
        // Only the kinds of case the run had, each as passed of run.
        let ran = |c: &&super::model::ConformanceResult| c.skipped.is_none();
        let kinds = [
            (
                "trust-cases",
                "trust cases as expected",
                r.trust_cases.iter().filter(|c| c.passed).count(),
                r.trust_cases.len(),
            ),
            (
                "conformance",
                "conformance cases passed",
                r.conformance
                    .iter()
                    .filter(ran)
                    .filter(|c| c.passed)
                    .count(),
                r.conformance.iter().filter(ran).count(),
            ),
            (
                "device-trust",
                "device trust cases as expected",
                r.device_trust.iter().filter(|c| c.passed).count(),
                r.device_trust.len(),
            ),
        ];
        for (key, label, passed, of) in kinds.into_iter().filter(|k| k.3 > 0) {
            tile(
                s,
                key,
                &format!("{passed}/{of}"),
                label,
                if passed < of { "bad" } else { "" },
            );
        }
    } else {
        let t = &r.total;
        let l = &t.latency;
        let errors = t.outcomes.failures();
        tile(s, "requests", &t.sent.to_string(), "requests", "");
        tile(s, "ok", &percent(t.outcomes.ok, t.sent), "ok", "");
        tile(
            s,
            "throughput",
            &format!("{:.1}/s", t.throughput_rps),
            "requests per second",
            "",
        );
        tile(s, "p50", &l.show(l.p50_us), "p50 latency", "");
        tile(s, "p99", &l.show(l.p99_us), "p99 latency", "");
        tile(s, "p999", &l.show(l.p999_us), "p99.9 latency", "");
        match &r.handshakes {
            Some(h) => tile(
                s,
                "handshakes",
                &format!("{}/{}", h.ok, h.attempted),
                "DTLS handshakes ok",
                if h.failed > 0 { "bad" } else { "" },
            ),
            None => tile(s, "handshakes", "–", "no DTLS handshakes", ""),
        }
        tile(
            s,
            "errors",
            &errors.to_string(),
            &format!("errors ({} of requests)", percent(errors, t.sent)),
            if errors > 0 { "bad" } else { "" },
        );
    }
    let failed = r.checks.iter().filter(|c| !c.passed).count();
    tile(
        s,
        "checks",
        &format!("{}/{}", r.checks.len() - failed, r.checks.len()),
        "checks passed",
        if failed > 0 { "bad" } else { "" },
    );
    s.push_str("</div>\n");
}

/// The generator and the machine it ran on: context for the figures, after them.
fn machine(s: &mut String, r: &Report) {
    if r.machine.is_none() && r.generator.is_none() {
        return;
    }
    s.push_str("<h2>Generator and machine</h2>\n<table id=\"machine\">\n");
    if let Some(m) = &r.machine {
        kv(s, "host", &escape(&m.hostname));
        kv(s, "OS", &escape(&m.os));
        if let Some(cpu) = &m.cpu {
            kv(s, "CPU", &escape(cpu));
        }
        kv(s, "cores", &m.cores.to_string());
        if let Some(mib) = m.memory_mib {
            kv(s, "memory", &format!("{:.1} GiB", mib as f64 / 1024.0));
        }
    }
    if let Some(g) = &r.generator {
        kv(
            s,
            "generator CPU",
            &format!(
                "{:.2} of {} cores busy on average, {:.2} in the busiest second{}",
                g.cpu_busy_mean,
                g.cores,
                g.cpu_busy_peak,
                if g.includes_embedded_server {
                    " (embedded server included)"
                } else {
                    ""
                }
            ),
        );
        kv(
            s,
            "CPU time",
            &format!("{:.1} s user, {:.1} s system", g.cpu_user_s, g.cpu_system_s),
        );
        kv(
            s,
            "peak resident memory",
            &format!("{} MB", g.max_rss_kib / 1024),
        );
        if let Some(u) = &g.kernel_udp {
            kv(
                s,
                "host UDP drops",
                &format!(
                    "{} receive-buffer, {} send-buffer ({} datagrams in, {} in errors)",
                    u.rcvbuf_errors, u.sndbuf_errors, u.in_datagrams, u.in_errors
                ),
            );
        }
    }
    s.push_str("</table>\n");
}

fn kv(s: &mut String, key: &str, value: &str) {
    let _ = writeln!(s, "<tr><th>{}</th><td>{}</td></tr>", escape(key), value);
}

fn metadata(s: &mut String, r: &Report) {
    s.push_str("<h2>Run</h2>\n<table id=\"metadata\">\n");
    let sc = &r.scenario;
    let file = sc
        .file
        .as_deref()
        .map(|f| format!(" (<code>{}</code>)", escape(f)))
        .unwrap_or_default();
    kv(s, "scenario", &format!("{}{file}", escape(&sc.name)));
    kv(
        s,
        "request",
        &format!("<code>{}</code>", escape(&sc.request)),
    );
    kv(s, "seed", &sc.seed.to_string());
    kv(
        s,
        "target",
        &format!(
            "<code>{}</code> at {} over {}",
            escape(&r.target.url),
            escape(&r.target.address),
            escape(&r.target.transport)
        ),
    );
    let sec = &r.security;
    let mut security = escape(&sec.describe());
    if sec.insecure {
        security.push_str(" <b class=\"fail\">(INSECURE)</b>");
    }
    kv(s, "security", &security);
    if let Some(ca) = &sec.ca {
        kv(s, "CA", &escape(ca));
    }
    if let Some(name) = &sec.server_name {
        kv(s, "server name", &escape(name));
    }
    if let Some(cert) = &sec.client_cert {
        kv(s, "client certificate", &escape(cert));
    }
    if !sec.cipher_suites.is_empty() {
        kv(s, "cipher suites", &escape(&sec.cipher_suites.join(", ")));
    }
    let d = &r.devices;
    let mut devices = format!("{} ({} started, {} failed)", d.count, d.started, d.failed);
    if let Some(f) = &d.first_failure {
        let _ = write!(devices, "; first failure: {}", escape(f));
    }
    if r.no_load() {
        kv(s, "load", &format!("none: {}", escape(&r.cases_run())));
        kv(s, "started", &escape(&r.started_at));
    } else {
        kv(s, "devices", &devices);
        kv(s, "started", &escape(&r.started_at));
        kv(s, "duration", &format!("{:.1} s", r.duration_s));
    }
    kv(s, "harness version", &escape(&r.harness_version));
    kv(
        s,
        "interrupted",
        if r.interrupted {
            "<b class=\"fail\">yes</b>"
        } else {
            "no"
        },
    );
    let warnings = if r.warnings.is_empty() {
        "none".to_string()
    } else {
        r.warnings
            .iter()
            .map(|w| escape(w))
            .collect::<Vec<_>>()
            .join("<br>")
    };
    kv(s, "warnings", &warnings);
    let p = &r.protocol;
    if p.malformed_datagrams + p.unmatched + p.duplicates > 0 {
        let mut text = format!(
            "{} malformed, {} unmatched, {} duplicate",
            p.malformed_datagrams, p.unmatched, p.duplicates
        );
        if let Some(first) = &p.first_malformed {
            let _ = write!(text, " (first malformed: {})", escape(first));
        }
        kv(s, "protocol", &text);
    }
    s.push_str("</table>\n");
}

fn phases(s: &mut String, r: &Report) {
    s.push_str(
        "<h2>Requests by phase</h2>\n<table id=\"phases\">\n<tr><th>phase</th><th>start</th><th>duration</th>\
         <th>pacing</th><th>devices</th><th>sent</th><th>ok</th><th>errors</th><th>req/s</th><th>p50</th>\
         <th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>retrans</th></tr>\n",
    );
    for p in &r.phases {
        phase_row(
            s,
            &escape(&p.name),
            &format!("{:.1} s", p.start_s),
            &format!("{:.1} s", p.duration_s),
            &escape(&p.pacing),
            p.devices,
            &p.requests,
        );
    }
    phase_row(
        s,
        "<b>total</b>",
        "",
        &format!("{:.1} s", r.duration_s),
        "",
        r.devices.started,
        &r.total,
    );
    s.push_str("</table>\n");
    let _ = writeln!(
        s,
        "<p class=\"note\">Latency runs from each request's intended send time, so a stalled server cannot hide \
         behind the generator's backlog (coordinated omission). Measured from the actual send instead: p50 {}, \
         p99 {}. Requests left on average {} (p99 {}) after their scheduled time.</p>",
        human_us(r.total.latency_uncorrected.p50_us),
        human_us(r.total.latency_uncorrected.p99_us),
        human_us(r.total.send_lag.mean_us as u64),
        human_us(r.total.send_lag.p99_us),
    );
}

fn phase_row(
    s: &mut String,
    name: &str,
    start: &str,
    duration: &str,
    pacing: &str,
    devices: u32,
    q: &RequestStats,
) {
    let cells: String = q
        .row_cells()
        .iter()
        .map(|c| format!("<td class=\"num\">{c}</td>"))
        .collect();
    let _ = writeln!(
        s,
        "<tr data-phase><td>{name}</td><td class=\"num\">{start}</td><td class=\"num\">{duration}</td>\
         <td>{pacing}</td><td class=\"num\">{devices}</td>{cells}</tr>"
    );
}

/// The highest percentile plotted: 1/(1-p) is infinite at p = 1, so the maximum is drawn at 99.999%.
const MAX_QUANTILE: f64 = 0.99999;

/// The x position of a quantile on the 1/(1-p) log axis.
fn quantile_x(q: f64) -> f64 {
    (1.0 / (1.0 - q.min(MAX_QUANTILE))).log10()
}

/// A latency distribution as (x on the 1/(1-p) log axis, latency in µs) points, one per quantile step.
pub fn percentile_points(l: &Latency) -> Vec<(f64, f64)> {
    let Ok(h) = l.histogram() else {
        return Vec::new();
    };
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(5)
        .map(|v| {
            (
                quantile_x(v.quantile_iterated_to()),
                v.value_iterated_to() as f64,
            )
        })
        .collect()
}

pub(super) fn us_label(v: f64) -> String {
    human_us(v.round() as u64)
}

/// The percentile at `x` on the 1/(1-p) log axis: `p99.9`.
pub(super) fn percentile_label(x: f64) -> String {
    let q = (1.0 - 10f64.powf(-x)) * 100.0;
    let t = format!("{q:.4}");
    format!("p{}", t.trim_end_matches('0').trim_end_matches('.'))
}

pub(super) fn seconds_label(v: f64) -> String {
    let t = format!("{v:.1}");
    format!("{}s", t.trim_end_matches(".0"))
}

/// A percentile spectrum: curves from [`percentile_points`] on the 1/(1-p) log axis, ticked at 50%, 90%,
/// 99%... up to the furthest point (99.99% at least).
pub(super) fn spectrum_chart(id: &'static str, title: &str, series: Vec<Series>) -> LineChart {
    let x_max = series
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.0))
        .fold(4.0f64, f64::max);
    let ticks = [
        (0.5, "50%"),
        (0.9, "90%"),
        (0.99, "99%"),
        (0.999, "99.9%"),
        (0.9999, "99.99%"),
        (0.99999, "99.999%"),
    ]
    .iter()
    .map(|(q, l)| (quantile_x(*q), l.to_string()))
    .filter(|(x, _)| *x <= x_max + 1e-9)
    .collect();
    LineChart {
        id,
        title: title.into(),
        x_label: "percentile (log scale of 1/(1-p))".into(),
        y_label: "latency".into(),
        x_range: (0.0, x_max),
        x_ticks: Some(ticks),
        x_format: percentile_label,
        y_unit: Unit::Micros,
        series,
        markers: Vec::new(),
    }
}

fn percentiles(s: &mut String, r: &Report) {
    let mut series = Vec::new();
    let corrected = percentile_points(&r.total.latency);
    if !corrected.is_empty() {
        series.push(Series {
            key: "corrected".into(),
            label: "from intended send".into(),
            color: "#0b62c4",
            dashed: false,
            points: corrected,
        });
    }
    let uncorrected = percentile_points(&r.total.latency_uncorrected);
    if !uncorrected.is_empty() {
        series.push(Series {
            key: "uncorrected".into(),
            label: "from actual send".into(),
            color: "#e07000",
            dashed: true,
            points: uncorrected,
        });
    }
    if let Some(h) = &r.handshakes {
        let points = percentile_points(&h.latency);
        if !points.is_empty() {
            series.push(Series {
                key: "handshake".into(),
                label: "DTLS handshake".into(),
                color: "#7a3db8",
                dashed: false,
                points,
            });
        }
    }
    if series.is_empty() {
        s.push_str(
            "<h2>Latency percentile spectrum</h2>\n<p class=\"note\" data-empty=\"percentiles\">No request \
             completed, so there is no latency to draw.</p>\n",
        );
        return;
    }
    let chart = spectrum_chart("percentiles", "Latency by percentile", series);
    s.push_str("<h2>Latency percentile spectrum</h2>\n");
    s.push_str(&chart.render());
    s.push('\n');
    let l = &r.total.latency;
    let _ = writeln!(
        s,
        "<p class=\"note\">From intended send: p50 {}, p90 {}, p99 {}, p99.9 {}, max {} ({} samples).</p>",
        human_us(l.p50_us),
        human_us(l.p90_us),
        human_us(l.p99_us),
        human_us(l.p999_us),
        human_us(l.max_us),
        l.count
    );
    send_lag(s, r);
}

/// How late requests left versus their schedule, as a spectrum: the generator's own error, which the
/// corrected latency above includes.
fn send_lag(s: &mut String, r: &Report) {
    let points = percentile_points(&r.total.send_lag);
    if points.is_empty() {
        return;
    }
    let chart = spectrum_chart(
        "send-lag",
        "Send lag by percentile (actual send minus intended send)",
        vec![Series {
            key: "send-lag".into(),
            label: "send lag".into(),
            color: "#8a4b00",
            dashed: false,
            points,
        }],
    );
    s.push_str(&chart.render());
    s.push('\n');
    let lag = &r.total.send_lag;
    let _ = writeln!(
        s,
        "<p class=\"note\">Send lag p50 {}, p99 {}, max {}: the generator's scheduling error, part of every \
         latency measured from the intended send.</p>",
        human_us(lag.p50_us),
        human_us(lag.p99_us),
        human_us(lag.max_us)
    );
}

fn timeseries(s: &mut String, r: &Report) {
    if r.timeseries.is_empty() {
        s.push_str(
            "<h2>Over time</h2>\n<p class=\"note\" data-empty=\"over-time\">No second of the load completed, so \
             there is nothing to draw over time: the totals above are the whole run.</p>\n",
        );
        return;
    }
    let last_t = r.timeseries.iter().map(|p| p.t).max().unwrap_or(0) as f64;
    let phase_end = r
        .phases
        .iter()
        .map(|p| p.start_s + p.duration_s)
        .fold(0.0f64, f64::max);
    let x_max = (last_t + 1.0).max(phase_end).max(1.0);
    let markers: Vec<(f64, String)> = r
        .phases
        .iter()
        .map(|p| (p.start_s, p.name.clone()))
        .collect();
    let pts = |f: fn(&super::model::SeriesPoint) -> u64| -> Vec<(f64, f64)> {
        r.timeseries
            .iter()
            // Second `t` covers [t, t+1): drawn at its middle.
            .map(|p| (p.t as f64 + 0.5, f(p) as f64))
            .collect()
    };
    let throughput = LineChart {
        id: "throughput",
        title: "Requests and errors per second".into(),
        x_label: "time into the run (one point per second)".into(),
        y_label: "per second".into(),
        x_range: (0.0, x_max),
        x_ticks: None,
        x_format: seconds_label,
        y_unit: Unit::Count,
        series: vec![
            Series {
                key: "requests".into(),
                label: "requests/s".into(),
                color: "#0b62c4",
                dashed: false,
                points: pts(|p| p.requests),
            },
            Series {
                key: "errors".into(),
                label: "errors/s".into(),
                color: "#c00",
                dashed: false,
                points: pts(|p| p.errors),
            },
        ],
        markers: markers.clone(),
    };
    let latency = LineChart {
        id: "latency-over-time",
        title: "Latency per second".into(),
        x_label: "time into the run".into(),
        y_label: "latency".into(),
        x_range: (0.0, x_max),
        x_ticks: None,
        x_format: seconds_label,
        y_unit: Unit::Micros,
        series: vec![
            Series {
                key: "p50".into(),
                label: "p50".into(),
                color: "#0b62c4",
                dashed: false,
                points: pts(|p| p.p50_us),
            },
            Series {
                key: "p99".into(),
                label: "p99".into(),
                color: "#e07000",
                dashed: false,
                points: pts(|p| p.p99_us),
            },
        ],
        markers,
    };
    s.push_str("<h2>Over time</h2>\n");
    if let [p] = &r.timeseries[..] {
        let _ = writeln!(
            s,
            "<p class=\"note\" data-short-run>One second of data: each curve is a single point ({} requests, \
             {} errors, p50 {}, p99 {} in second {}).</p>",
            p.requests,
            p.errors,
            human_us(p.p50_us),
            human_us(p.p99_us),
            p.t
        );
    }
    s.push_str(&throughput.render());
    s.push('\n');
    s.push_str(&latency.render());
    s.push('\n');
    let markers: Vec<(f64, String)> = r
        .phases
        .iter()
        .map(|p| (p.start_s, p.name.clone()))
        .collect();
    errors_by_kind(s, r, x_max, &markers);
    devices_over_time(s, r, x_max, &markers);
    send_lag_over_time(s, r, x_max, &markers);
    cpu(s, r, x_max);
}

/// A chart over the run's seconds: one point per second at its middle.
fn over_time(
    id: &'static str,
    title: &str,
    y_label: &str,
    y_unit: Unit,
    x_max: f64,
    markers: &[(f64, String)],
    series: Vec<Series>,
) -> String {
    LineChart {
        id,
        title: title.into(),
        x_label: "time into the run (one point per second)".into(),
        y_label: y_label.into(),
        x_range: (0.0, x_max),
        x_ticks: None,
        x_format: seconds_label,
        y_unit,
        series,
        markers: markers.to_vec(),
    }
    .render()
}

/// The colour of an error kind's curve.
fn kind_color(key: &str) -> &'static str {
    match key {
        "timeout" => "#c00",
        "response_timeout" => "#e07000",
        "reset" => "#7a3db8",
        "coap_4xx" => "#d4a000",
        "coap_5xx" => "#8a4b00",
        "session_closed" => "#0b62c4",
        "unreachable" => "#555",
        "malformed" => "#b0307a",
        "send_failed" => "#2a7f7f",
        _ => "#888",
    }
}

/// Failed requests per second by kind (timeouts, resets, 4.xx, 5.xx, closed DTLS sessions...), with failed
/// DTLS handshakes per second when the run had any. Kinds that never happened are left out; a run without
/// errors draws its zero line and says so. Reports of older versions (no kinds recorded) draw the errors
/// without kinds.
fn errors_by_kind(s: &mut String, r: &Report, x_max: f64, markers: &[(f64, String)]) {
    use super::model::ErrorKinds;
    let mid = |t: u64| t as f64 + 0.5;
    let recorded = r.timeseries.iter().any(|p| p.errors_by_kind.is_some());
    let mut series: Vec<Series> = Vec::new();
    if recorded {
        for (key, label) in ErrorKinds::KINDS {
            let points: Vec<(f64, f64)> = r
                .timeseries
                .iter()
                .map(|p| {
                    let n = p.errors_by_kind.as_ref().map_or(0, |k| k.get(key));
                    (mid(p.t), n as f64)
                })
                .collect();
            if points.iter().any(|p| p.1 > 0.0) {
                series.push(Series {
                    key: format!("errors:{key}"),
                    label: format!("{label}/s"),
                    color: kind_color(key),
                    dashed: false,
                    points,
                });
            }
        }
    }
    let handshake_failures = r.handshakes.as_ref().filter(|h| h.failed > 0).map(|h| {
        r.timeseries
            .iter()
            .map(|p| {
                let n = h
                    .per_second
                    .iter()
                    .find(|q| q.t == p.t)
                    .map_or(0, |q| q.failed);
                (mid(p.t), n as f64)
            })
            .collect::<Vec<_>>()
    });
    let kinds_drawn = series.len();
    if let Some(points) = handshake_failures {
        series.push(Series {
            key: "errors:handshake_failed".into(),
            label: "failed handshakes/s".into(),
            color: "#111",
            dashed: true,
            points,
        });
    }
    let total_errors: u64 = r.timeseries.iter().map(|p| p.errors).sum();
    let note = if !recorded {
        series.insert(
            0,
            Series {
                key: "errors:all".into(),
                label: "errors/s".into(),
                color: "#c00",
                dashed: false,
                points: r
                    .timeseries
                    .iter()
                    .map(|p| (mid(p.t), p.errors as f64))
                    .collect(),
            },
        );
        Some("This report was written by an older version that did not record errors by kind: all errors are drawn together.".to_string())
    } else if kinds_drawn == 0 && total_errors == 0 {
        series.insert(
            0,
            Series {
                key: "errors:all".into(),
                label: "errors/s".into(),
                color: "#c00",
                dashed: false,
                points: r.timeseries.iter().map(|p| (mid(p.t), 0.0)).collect(),
            },
        );
        Some("No request failed in any second.".to_string())
    } else {
        None
    };
    s.push_str(&over_time(
        "errors-by-kind",
        "Errors per second by kind",
        "per second",
        Unit::Count,
        x_max,
        markers,
        series,
    ));
    s.push('\n');
    if let Some(note) = note {
        let _ = writeln!(
            s,
            "<p class=\"note\" data-note=\"errors-by-kind\">{}</p>",
            escape(&note)
        );
    }
}

/// Active devices (an open socket) and established DTLS sessions as each second ended.
fn devices_over_time(s: &mut String, r: &Report, x_max: f64, markers: &[(f64, String)]) {
    let mid = |t: u64| t as f64 + 0.5;
    if r.timeseries.iter().all(|p| p.active_devices.is_none()) {
        s.push_str(
            "<p class=\"note\" data-empty=\"devices-over-time\">Active devices and DTLS sessions per second were \
             not recorded in this report (an older version).</p>\n",
        );
        return;
    }
    let mut series = vec![Series {
        key: "active-devices".into(),
        label: "active devices".into(),
        color: "#0b62c4",
        dashed: false,
        points: r
            .timeseries
            .iter()
            .map(|p| (mid(p.t), p.active_devices.unwrap_or(0) as f64))
            .collect(),
    }];
    let dtls = r.security.transport == "dtls"
        || r.handshakes.is_some()
        || r.timeseries
            .iter()
            .any(|p| p.dtls_sessions.unwrap_or(0) > 0);
    if dtls {
        series.push(Series {
            key: "dtls-sessions".into(),
            label: "DTLS sessions".into(),
            color: "#7a3db8",
            dashed: true,
            points: r
                .timeseries
                .iter()
                .map(|p| (mid(p.t), p.dtls_sessions.unwrap_or(0) as f64))
                .collect(),
        });
    }
    s.push_str(&over_time(
        "devices-over-time",
        if dtls {
            "Active devices and DTLS sessions"
        } else {
            "Active devices"
        },
        "devices",
        Unit::Count,
        x_max,
        markers,
        series,
    ));
    s.push('\n');
}

/// Send lag p50 and p99 of the requests that ended in each second: when the generator fell behind.
fn send_lag_over_time(s: &mut String, r: &Report, x_max: f64, markers: &[(f64, String)]) {
    let mid = |t: u64| t as f64 + 0.5;
    let lagged: Vec<(f64, u64, u64)> = r
        .timeseries
        .iter()
        .filter_map(|p| Some((mid(p.t), p.send_lag_p50_us?, p.send_lag_p99_us?)))
        .collect();
    if lagged.is_empty() {
        let why = if r.timeseries.iter().any(|p| p.errors_by_kind.is_some()) {
            "no request ended in any second"
        } else {
            "not recorded in this report (an older version)"
        };
        let _ = writeln!(
            s,
            "<p class=\"note\" data-empty=\"send-lag-over-time\">Send lag per second: {why}.</p>"
        );
        return;
    }
    let series = vec![
        Series {
            key: "send-lag-p50".into(),
            label: "send lag p50".into(),
            color: "#8a4b00",
            dashed: false,
            points: lagged.iter().map(|(x, p50, _)| (*x, *p50 as f64)).collect(),
        },
        Series {
            key: "send-lag-p99".into(),
            label: "send lag p99".into(),
            color: "#e07000",
            dashed: true,
            points: lagged.iter().map(|(x, _, p99)| (*x, *p99 as f64)).collect(),
        },
    ];
    s.push_str(&over_time(
        "send-lag-over-time",
        "Send lag per second (actual minus intended send)",
        "send lag",
        Unit::Micros,
        x_max,
        markers,
        series,
    ));
    s.push('\n');
}

/// The generator's CPU, one figure per second of the load phases.
fn cpu(s: &mut String, r: &Report, x_max: f64) {
    let Some(g) = r
        .generator
        .as_ref()
        .filter(|g| !g.cpu_busy_series.is_empty())
    else {
        return;
    };
    let chart = LineChart {
        id: "cpu",
        title: format!(
            "Generator CPU, cores busy of {}{}",
            g.cores,
            if g.includes_embedded_server {
                " (embedded server included)"
            } else {
                ""
            }
        ),
        x_label: "time into the run".into(),
        y_label: "cores busy".into(),
        x_range: (0.0, x_max.max(g.cpu_busy_series.len() as f64)),
        x_ticks: None,
        x_format: seconds_label,
        y_unit: Unit::Cores,
        series: vec![Series {
            key: "cpu".into(),
            label: "cores busy".into(),
            color: "#555",
            dashed: false,
            points: g
                .cpu_busy_series
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64 + 0.5, *v))
                .collect(),
        }],
        markers: r
            .phases
            .iter()
            .map(|p| (p.start_s, p.name.clone()))
            .collect(),
    };
    s.push_str(&chart.render());
    s.push('\n');
}

fn outcomes(s: &mut String, r: &Report) {
    let mut bars: Vec<Bar> = Outcome::ALL
        .iter()
        .filter(|o| r.total.outcomes.get(**o) > 0)
        .map(|o| Bar {
            key: format!("outcome:{}", o.name()),
            label: o.name().to_string(),
            value: r.total.outcomes.get(*o),
            color: if *o == Outcome::Ok { "#1a7f37" } else { "#c00" },
        })
        .collect();
    bars.extend(r.total.codes.iter().map(|(code, n)| Bar {
        key: format!("code:{code}"),
        label: format!("code {code}"),
        value: *n,
        color: if code.starts_with('2') {
            "#4c9f70"
        } else {
            "#d9534f"
        },
    }));
    if let Some(h) = &r.handshakes {
        bars.extend(
            h.verdicts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(v, n)| Bar {
                    key: format!("handshake:{v}"),
                    label: format!("handshake {v}"),
                    value: *n,
                    color: match v {
                        TrustVerdict::Ok => "#7a3db8",
                        TrustVerdict::OkInsecure => "#c00",
                        _ => "#8a4b00",
                    },
                }),
        );
    }
    if bars.is_empty() {
        return;
    }
    s.push_str("<h2>Outcomes</h2>\n");
    s.push_str(&svg::bar_chart(
        "outcomes",
        "Outcomes, response codes and handshake verdicts",
        &bars,
    ));
    s.push('\n');
}

fn handshakes(s: &mut String, r: &Report) {
    let Some(h) = &r.handshakes else {
        return;
    };
    let _ = writeln!(
        s,
        "<h2>DTLS handshakes</h2>\n<p id=\"handshakes\">{}. Handshake time p50 {}, p90 {}, p99 {}, max {}.{}</p>",
        h.counts(escape),
        human_us(h.latency.p50_us),
        human_us(h.latency.p90_us),
        human_us(h.latency.p99_us),
        human_us(h.latency.max_us),
        h.first_failure
            .as_deref()
            .map(|f| format!(" First failure: {}", escape(f)))
            .unwrap_or_default()
    );
    if let Some(rate) = h.rate_summary() {
        let _ = writeln!(
            s,
            "<p id=\"handshake-rate\">Handshake rate: {}.</p>",
            escape(&rate)
        );
    }
    if h.per_second.is_empty() {
        return;
    }
    // Every second up to the last handshake, zeros included, so quiet seconds show as such.
    let last = h.per_second.iter().map(|p| p.t).max().unwrap_or(0);
    let at = |t: u64| h.per_second.iter().find(|p| p.t == t);
    let by_verdict = h.per_second.iter().any(|p| !p.verdicts.is_empty());
    let series: Vec<Series> = if by_verdict {
        let names: std::collections::BTreeSet<&String> = h
            .per_second
            .iter()
            .flat_map(|p| p.verdicts.keys())
            .collect();
        // `ok` first, then the failures in name order.
        let mut names: Vec<&String> = names.into_iter().collect();
        names.sort_by_key(|n| {
            (
                n.as_str() != "ok",
                n.as_str() != "ok_insecure",
                n.to_string(),
            )
        });
        const FAILURE_COLORS: [&str; 6] =
            ["#c00", "#e07000", "#8a4b00", "#d4a000", "#b0307a", "#555"];
        names
            .into_iter()
            .enumerate()
            .map(|(i, name)| Series {
                key: format!("handshakes:{name}"),
                label: format!("{name}/s"),
                color: match name.as_str() {
                    "ok" => "#1a7f37",
                    "ok_insecure" => "#7a3db8",
                    _ => FAILURE_COLORS[i % FAILURE_COLORS.len()],
                },
                dashed: name != "ok",
                points: (0..=last)
                    .map(|t| {
                        let n = at(t).and_then(|p| p.verdicts.get(name)).copied();
                        (t as f64 + 0.5, n.unwrap_or(0) as f64)
                    })
                    .collect(),
            })
            .collect()
    } else {
        let pts = |f: fn(&super::model::HandshakePoint) -> u64| -> Vec<(f64, f64)> {
            (0..=last)
                .map(|t| (t as f64 + 0.5, at(t).map_or(0, f) as f64))
                .collect()
        };
        vec![
            Series {
                key: "handshakes-ok".into(),
                label: "completed/s".into(),
                color: "#1a7f37",
                dashed: false,
                points: pts(|p| p.ok),
            },
            Series {
                key: "handshakes-failed".into(),
                label: "failed/s".into(),
                color: "#c00",
                dashed: true,
                points: pts(|p| p.failed),
            },
        ]
    };
    let chart = LineChart {
        id: "handshakes-over-time",
        title: if by_verdict {
            "DTLS handshakes per second by verdict".into()
        } else {
            "DTLS handshakes per second".into()
        },
        x_label: "time into the run (one point per second)".into(),
        y_label: "per second".into(),
        x_range: (0.0, (last + 1) as f64),
        x_ticks: None,
        x_format: seconds_label,
        y_unit: svg::Unit::Count,
        series,
        markers: r
            .phases
            .iter()
            .map(|p| (p.start_s, p.name.clone()))
            .collect(),
    };
    s.push_str(&chart.render());
    s.push('\n');
}

fn result_cell(passed: bool) -> &'static str {
    if passed {
        "<td class=\"pass\">pass</td>"
    } else {
        "<td class=\"fail\">FAIL</td>"
    }
}

fn checks(s: &mut String, r: &Report) {
    s.push_str("<h2>Checks</h2>\n");
    if r.checks.is_empty() {
        s.push_str("<p class=\"note\">This run had no checks.</p>\n");
        return;
    }
    let failed = r.checks.iter().filter(|c| !c.passed).count();
    let _ = writeln!(
        s,
        "<p>{} check{}, {} failed.</p>\n<table id=\"checks\">\n<tr><th>check</th><th>result</th><th>expected</th>\
         <th>observed</th></tr>",
        r.checks.len(),
        if r.checks.len() == 1 { "" } else { "s" },
        failed
    );
    for c in &r.checks {
        let _ = writeln!(
            s,
            "<tr data-check><td>{}</td>{}<td>{}</td><td>{}</td></tr>",
            escape(&c.name),
            result_cell(c.passed),
            escape(&c.expected),
            escape(&c.observed)
        );
    }
    s.push_str("</table>\n");
}

/// The colour of a trust case's bar: opened (green), opened without verification (red), refused (amber).
fn trust_color(verdict: TrustVerdict) -> &'static str {
    match verdict {
        TrustVerdict::Ok => "#1a7f37",
        TrustVerdict::OkInsecure => "#c00",
        _ => "#d4a000",
    }
}

/// One bar per trust case: how long its handshake took to open or to fail. A run of trust cases alone has no
/// request load, so this (with the table) is its chart.
fn trust_chart(s: &mut String, r: &Report) {
    let bars: Vec<Bar> = r
        .trust_cases
        .iter()
        .map(|c| Bar {
            key: format!("trust:{}", c.name),
            label: c.name.clone(),
            value: c.handshake_us,
            color: trust_color(c.verdict),
        })
        .collect();
    s.push_str(&svg::bar_chart_with(
        "trust-handshakes",
        "DTLS handshake time per trust case",
        "time to open or fail the handshake",
        Unit::Micros,
        &bars,
    ));
    let opened = r
        .trust_cases
        .iter()
        .filter(|c| matches!(c.verdict, TrustVerdict::Ok | TrustVerdict::OkInsecure))
        .count();
    let mut times: Vec<u64> = r.trust_cases.iter().map(|c| c.handshake_us).collect();
    times.sort_unstable();
    let _ = writeln!(
        s,
        "\n<p class=\"note\" id=\"trust-summary\">{} handshakes: {opened} opened, {} refused; median {}, \
         slowest {}. Green: opened with the certificate verified; red: opened with verification disabled; \
         amber: refused (the verdict is in the table).</p>",
        times.len(),
        times.len() - opened,
        human_us(times[times.len() / 2]),
        human_us(*times.last().unwrap_or(&0)),
    );
}

fn trust_cases(s: &mut String, r: &Report) {
    if r.trust_cases.is_empty() {
        return;
    }
    s.push_str("<h2>Trust cases</h2>\n");
    trust_chart(s, r);
    s.push_str(
        "<table id=\"trust-cases\">\n<tr><th>case</th><th>result</th><th>verdict</th>\
         <th>expected</th><th>observed</th><th>refused by</th><th>DTLS layer</th><th>CoAP layer</th>\
         <th>handshake</th><th>detail</th></tr>\n",
    );
    for c in &r.trust_cases {
        let mut detail = c.detail.as_deref().map(escape).unwrap_or_default();
        if let Some(saw) = &c.server_saw {
            if !detail.is_empty() {
                detail.push_str("<br>");
            }
            let _ = write!(detail, "server saw: {}", escape(saw));
        }
        let _ = writeln!(
            s,
            "<tr data-trust-case><td>{}</td>{}<td><code>{}</code>{}</td><td>{}</td><td>{}</td>\
             <td data-refused-by><code>{}</code></td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            escape(&c.name),
            result_cell(c.passed),
            escape(c.verdict.name()),
            if c.insecure {
                " <b class=\"fail\">verification disabled</b>"
            } else {
                ""
            },
            escape(&c.expected),
            escape(&c.observed),
            c.refused_by,
            escape(&c.handshake_layer()),
            escape(&c.coap_layer()),
            human_us(c.handshake_us),
            detail
        );
    }
    s.push_str("</table>\n");
}

fn conformance(s: &mut String, r: &Report) {
    if r.conformance.is_empty() {
        return;
    }
    s.push_str(
        "<h2>Conformance</h2>\n<table id=\"conformance\">\n<tr><th>case</th><th>result</th><th>code</th>\
         <th>expected</th><th>observed</th><th>notifications</th></tr>\n",
    );
    for c in &r.conformance {
        let result = match (&c.skipped, c.passed) {
            (Some(why), _) => format!("<td class=\"skip\" title=\"{}\">skip</td>", escape(why)),
            (None, p) => result_cell(p).to_string(),
        };
        let _ = writeln!(
            s,
            "<tr data-conformance-case><td>{}</td>{result}<td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            escape(&c.name),
            escape(c.code.as_deref().unwrap_or("-")),
            escape(&c.expected),
            escape(&c.observed),
            c.notifications
        );
    }
    s.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_percentages_never_round_to_all_or_nothing() {
        assert_eq!(percent(5, 5), "100%");
        assert_eq!(percent(0, 5), "0%");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(9_999, 10_000), "99.99%");
        assert_eq!(percent(99_996, 100_000), "99.996%");
        assert_eq!(percent(1, 1_000_000), "0.0001%");
        assert_eq!(percent(1, 100_000_000), "<0.0001%");
        assert_eq!(percent(99_999_999, 100_000_000), ">99.9999%");
        assert_eq!(percent(0, 0), "–");
    }

    #[test]
    fn percentile_axis_puts_nines_one_decade_apart() {
        assert!((quantile_x(0.9) - 1.0).abs() < 1e-9);
        assert!((quantile_x(0.99) - 2.0).abs() < 1e-9);
        assert!((quantile_x(1.0) - 5.0).abs() < 1e-6);
    }
}
