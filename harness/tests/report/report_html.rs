//! report.html: real runs rendered, each inline SVG parsed back as XML, and the charts and tables held against
//! the report they came from. The page must be self-contained (nothing fetched) and escape user text.

use coap_harness::app::{self as engine, RunOutput};
use coap_harness::report::{html, Report};
use roxmltree::{Document, Node};
use std::path::Path;
use std::sync::Arc;

const TWO_PHASES: &str = "target: embedded\ndevices:\n  count: 20\nphases:\n  - name: a\n    duration: 2s\n    \
     interval: 100ms\n  - name: \"b <script>alert('x')</script>\"\n    duration: 1s\n    interval: 50ms\n";

const DTLS_INSECURE: &str =
    "target: embedded\npki: generate\ndevices:\n  count: 10\ndtls:\n  ca: none\nphases:\n  \
     - duration: 1s\n    interval: 200ms\n";

async fn run_text(text: &str) -> RunOutput {
    let plan = coap_harness::scenario::parse(
        text,
        Path::new("t.yaml"),
        Path::new("."),
        "t",
        &Default::default(),
    )
    .unwrap_or_else(|e| panic!("scenario invalid: {e}"));
    engine::run(Arc::new(plan), Default::default())
        .await
        .expect("run starts")
}

/// Every `<svg ...>...</svg>` fragment of the page.
fn svg_fragments(page: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = page;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..].find("</svg>").expect("unclosed <svg>") + start + "</svg>".len();
        out.push(&rest[start..end]);
        rest = &rest[end..];
    }
    out
}

/// The chart with `data-chart="id"`, as its SVG text (None when absent).
fn chart<'p>(page: &'p str, id: &str) -> Option<&'p str> {
    let attr = format!("data-chart=\"{id}\"");
    let found: Vec<&str> = svg_fragments(page)
        .into_iter()
        .filter(|f| f[..f.find('>').unwrap()].contains(&attr))
        .collect();
    assert!(found.len() <= 1, "chart {id} appears {} times", found.len());
    found.first().copied()
}

fn parse(fragment: &str) -> Document<'_> {
    Document::parse(fragment)
        .unwrap_or_else(|e| panic!("SVG is not well-formed XML: {e}\n{fragment}"))
}

fn series<'a, 'i>(doc: &'a Document<'i>, key: &str) -> Option<Node<'a, 'i>> {
    doc.descendants()
        .find(|n| n.has_tag_name("polyline") && n.attribute("data-series") == Some(key))
}

fn point_count(doc: &Document, key: &str) -> usize {
    let line = series(doc, key).unwrap_or_else(|| panic!("no series {key}"));
    let points = line.attribute("points").unwrap();
    for p in points.split_whitespace() {
        let (x, y) = p.split_once(',').unwrap();
        assert!(x.parse::<f64>().unwrap().is_finite() && y.parse::<f64>().unwrap().is_finite());
    }
    points.split_whitespace().count()
}

fn markers(doc: &Document) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.attribute("data-marker") == Some("phase"))
        .map(|g| {
            g.descendants()
                .filter(|n| n.is_text())
                .map(|n| n.text().unwrap())
                .collect()
        })
        .collect()
}

/// The bars of a bar chart: (`data-bar`, `data-value`) in drawing order.
fn bars_of(doc: &Document) -> Vec<(String, u64)> {
    doc.descendants()
        .filter_map(|n| {
            Some((
                n.attribute("data-bar")?.to_string(),
                n.attribute("data-value")?.parse().unwrap(),
            ))
        })
        .collect()
}

/// The tooltips of a chart's hover targets.
fn hover_titles(doc: &Document) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.attribute("data-hover").is_some())
        .flat_map(|g| g.descendants().filter(|n| n.has_tag_name("title")))
        .map(|t| t.text().unwrap_or("").to_string())
        .collect()
}

/// The value a headline tile shows.
fn tile(page: &str, key: &str) -> String {
    let at = page
        .find(&format!("data-tile=\"{key}\""))
        .unwrap_or_else(|| panic!("no tile {key}"));
    let v = at + page[at..].find("class=\"tv\"").unwrap();
    let start = v + page[v..].find('>').unwrap() + 1;
    let end = start + page[start..].find('<').unwrap();
    page[start..end].to_string()
}

fn count(page: &str, needle: &str) -> usize {
    page.matches(needle).count()
}

/// Checks that hold for every page: self-contained, well-formed charts, one row per check, the banner exactly
/// when the run was insecure, the charts present with this run's data.
fn common_checks(page: &str, r: &Report) {
    assert!(page.starts_with("<!DOCTYPE html>"));
    // Nothing external: the only URL is the SVG namespace.
    let no_ns = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for bad in [
        "http://", "https://", "src=", "<script", "<link", "@import", "url(",
    ] {
        assert!(!no_ns.contains(bad), "page contains {bad}");
    }
    let fragments = svg_fragments(page);
    // A run without load still charts its trust cases; only a run with neither has no chart.
    assert_eq!(
        fragments.is_empty(),
        r.phases.is_empty() && r.trust_cases.is_empty()
    );
    for f in &fragments {
        parse(f);
    }

    assert_eq!(
        page.contains("id=\"insecure-banner\""),
        r.security.insecure,
        "banner iff insecure"
    );
    assert_eq!(page.contains("INSECURE RUN"), r.security.insecure);
    if r.security.insecure {
        // At the very top of the body.
        let body = page.find("<body>").unwrap();
        assert!(page[body..]
            .trim_start_matches("<body>")
            .trim_start()
            .starts_with("<div class=\"insecure\""));
    }
    let word = match coap_harness::verdict::of(r) {
        coap_harness::verdict::Verdict::Passed => "PASSED",
        coap_harness::verdict::Verdict::Failed(_) => "FAILED",
        coap_harness::verdict::Verdict::Fault(_) => "FAULT",
    };
    assert!(
        page.contains(&format!("id=\"verdict\">{word}<")),
        "verdict {word}"
    );

    assert_eq!(count(page, "<tr data-check>"), r.checks.len());
    assert_eq!(count(page, "<tr data-trust-case>"), r.trust_cases.len());
    assert_eq!(
        count(page, "<tr data-conformance-case>"),
        r.conformance.len()
    );
    if !r.phases.is_empty() {
        assert_eq!(count(page, "<tr data-phase>"), r.phases.len() + 1);
    }
    if r.phases.is_empty() {
        // No load ran: no duration to show, and the trust table leads.
        assert!(page.contains("<th>load</th>"));
    } else {
        assert!(page.contains(&format!("{:.1} s", r.duration_s)));
    }
    assert!(page.contains(&html::escape(&r.harness_version)));

    if r.total.latency.count > 0 {
        let svg = chart(page, "percentiles").expect("percentile chart");
        let doc = parse(svg);
        let corrected = point_count(&doc, "corrected");
        let expected = html::percentile_points(&r.total.latency).len();
        assert!(corrected >= 2);
        assert_eq!(corrected, expected);
        assert!(point_count(&doc, "uncorrected") >= 2);
        for tick in ["50%", "90%", "99%", "99.9%", "99.99%"] {
            assert!(
                doc.descendants().any(|n| n.text() == Some(tick)),
                "percentile tick {tick}"
            );
        }
        let hs = r.handshakes.as_ref().is_some_and(|h| h.latency.count > 0);
        assert_eq!(
            series(&doc, "handshake").is_some(),
            hs,
            "handshake curve iff handshakes"
        );
    }

    // Headline tiles first, with this run's figures; the machine table after the checks.
    let tiles = page.find("id=\"tiles\"").expect("tiles");
    assert!(tiles < page.find("id=\"metadata\"").unwrap());
    assert!(tiles < page.find("<svg").unwrap_or(usize::MAX));
    assert!(page.contains(&format!(
        "data-tile=\"verdict\"><span class=\"tv\" id=\"verdict\">{word}<"
    )));
    let passed = r.checks.iter().filter(|c| c.passed).count();
    assert!(tile(page, "checks") == format!("{passed}/{}", r.checks.len()));
    if r.phases.is_empty() {
        assert!(page.contains("data-tile=\"trust-cases\""));
    } else {
        assert_eq!(tile(page, "requests"), r.total.sent.to_string());
        assert_eq!(
            tile(page, "errors"),
            r.total.outcomes.failures().to_string()
        );
        assert_eq!(
            tile(page, "p99"),
            r.total.latency.show(r.total.latency.p99_us)
        );
    }
    if r.machine.is_some() {
        let machine = page.find("<table id=\"machine\"").expect("machine table");
        assert!(page.find("<h2>Checks</h2>").unwrap() < machine);
    }
    // Every table scrolls in its own box.
    assert_eq!(
        count(page, "<table"),
        count(page, "<div class=\"scroll\"><table")
    );

    if let Some(svg) = chart(page, "percentiles") {
        // Every drawn point has a hover title giving its value and percentile: one per point, or one per
        // percentile listing every curve when the curves share their percentiles.
        let doc = parse(svg);
        let curves: Vec<usize> = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .map(|n| n.attribute("points").unwrap().split_whitespace().count())
            .collect();
        let titles = hover_titles(&doc);
        let shared = curves.iter().all(|n| *n == curves[0]) && titles.len() == curves[0];
        assert!(
            shared || titles.len() == curves.iter().sum::<usize>(),
            "{} hover titles for curves of {curves:?} points",
            titles.len()
        );
        assert!(
            titles
                .iter()
                .any(|t| t.starts_with("p50: from intended send ")
                    || t.starts_with("from intended send: ") && t.ends_with(" at p50")),
            "a hover title at p50: {titles:?}"
        );
    }
    if let Some(g) = r
        .generator
        .as_ref()
        .filter(|g| !g.cpu_busy_series.is_empty())
    {
        let doc = parse(chart(page, "cpu").expect("generator CPU chart"));
        assert_eq!(point_count(&doc, "cpu"), g.cpu_busy_series.len());
    }

    if !r.timeseries.is_empty() {
        let doc = parse(chart(page, "throughput").expect("throughput chart"));
        // Hovering a second shows its figures.
        let titles = hover_titles(&doc);
        assert_eq!(titles.len(), r.timeseries.len());
        for (t, p) in titles.iter().zip(&r.timeseries) {
            assert!(
                t.ends_with(&format!(
                    ": requests/s {}, errors/s {}",
                    p.requests, p.errors
                )),
                "hover title {t}"
            );
        }
        assert_eq!(point_count(&doc, "requests"), r.timeseries.len());
        assert_eq!(point_count(&doc, "errors"), r.timeseries.len());
        let names: Vec<String> = r.phases.iter().map(|p| p.name.clone()).collect();
        assert_eq!(markers(&doc), names);
        let doc = parse(chart(page, "latency-over-time").expect("latency chart"));
        assert_eq!(point_count(&doc, "p50"), r.timeseries.len());
        assert_eq!(point_count(&doc, "p99"), r.timeseries.len());
        assert_eq!(markers(&doc).len(), r.phases.len());
    } else {
        assert!(chart(page, "throughput").is_none());
    }

    // Trust cases: one bar per case, in order, with its handshake time.
    match chart(page, "trust-handshakes") {
        Some(svg) => {
            let drawn = bars_of(&parse(svg));
            let cases: Vec<(String, u64)> = r
                .trust_cases
                .iter()
                .map(|c| (format!("trust:{}", c.name), c.handshake_us))
                .collect();
            assert_eq!(drawn, cases);
        }
        None => assert!(r.trust_cases.is_empty()),
    }

    // Outcomes: every non-zero class, every code, every handshake verdict, with its count.
    let mut bars: Vec<(String, u64)> = coap_harness::metrics::Outcome::ALL
        .iter()
        .filter(|o| r.total.outcomes.get(**o) > 0)
        .map(|o| (format!("outcome:{}", o.name()), r.total.outcomes.get(*o)))
        .collect();
    bars.extend(r.total.codes.iter().map(|(c, n)| (format!("code:{c}"), *n)));
    if let Some(h) = &r.handshakes {
        bars.extend(
            h.verdicts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(v, n)| (format!("handshake:{v}"), *n)),
        );
    }
    match chart(page, "outcomes") {
        Some(svg) => assert_eq!(bars_of(&parse(svg)), bars),
        None => assert!(bars.is_empty()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phase_run_renders_its_charts_and_escapes_names() {
    let out = run_text(TWO_PHASES).await;
    let r = &out.report;
    assert!(!r.security.insecure);
    assert_eq!(r.phases.len(), 2);
    assert!(!r.timeseries.is_empty());
    assert!(r.handshakes.is_none());
    let page = html::render(r);
    common_checks(&page, r);

    // The phase name from YAML is text, never markup: escaped in the table and in the SVG labels.
    assert!(!page.contains("<script"));
    assert!(page.contains("b &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    let doc = parse(chart(&page, "throughput").unwrap());
    assert_eq!(markers(&doc)[1], "b <script>alert('x')</script>");

    // write_all writes it next to the other formats.
    let dir = tempfile::tempdir().unwrap();
    let paths = coap_harness::report::write_all(r, dir.path()).unwrap();
    let file = dir.path().join("report.html");
    assert!(paths.contains(&file));
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written, page);
    eprintln!(
        "report.html for the 3-second run: {} bytes, {} timeseries points",
        written.len(),
        r.timeseries.len()
    );
}

#[test]
fn trust_matrix_renders_its_cases_and_checks() {
    let r = &crate::trust_matrix::matrix().report;
    assert!(!r.trust_cases.is_empty());
    assert!(!r.checks.is_empty());
    let page = html::render(r);
    common_checks(&page, r);
    for c in &r.trust_cases {
        assert!(
            page.contains(&html::escape(&c.name)),
            "trust case {}",
            c.name
        );
    }
    // Trust cases alone: no request load, but the handshake chart (checked against the cases in
    // common_checks) and a summary of the handshakes, before the tables.
    assert!(r.phases.is_empty() && r.total.sent == 0);
    let svg = chart(&page, "trust-handshakes").expect("trust handshake chart");
    let doc = parse(svg);
    for c in &r.trust_cases {
        assert!(
            doc.descendants().any(|n| n.text() == Some(c.name.as_str())),
            "bar label {}",
            c.name
        );
    }
    let opened = r
        .trust_cases
        .iter()
        .filter(|c| c.verdict.name().starts_with("ok"))
        .count();
    assert!(opened > 0 && opened < r.trust_cases.len());
    assert!(page.contains(&format!(
        "{} handshakes: {opened} opened, {} refused",
        r.trust_cases.len(),
        r.trust_cases.len() - opened
    )));
    let at = |needle: &str| page.find(needle).unwrap_or_else(|| panic!("{needle}"));
    assert!(at("data-chart=\"trust-handshakes\"") < at("<table id=\"trust-cases\""));
}

/// `coap-harness report REPORT.json --html FILE` writes the same page as the run did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_command_re_renders_the_same_html() {
    let out = run_text(DTLS_INSECURE).await;
    let dir = tempfile::tempdir().unwrap();
    coap_harness::report::write_all(&out.report, dir.path()).unwrap();
    let again = dir.path().join("again.html");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .arg("report")
        .arg(dir.path().join("report.json"))
        .arg("--html")
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let original = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let rendered = std::fs::read_to_string(&again).unwrap();
    assert!(original.contains("data-chart=\"percentiles\""));
    assert!(rendered == original, "re-rendered report.html differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_dtls_fleet_shows_the_banner_and_handshake_curve() {
    let out = run_text(DTLS_INSECURE).await;
    let r = &out.report;
    assert!(r.security.insecure, "ca: none is an insecure run");
    let h = r.handshakes.as_ref().expect("DTLS run has handshakes");
    assert!(h.ok > 0);
    let page = html::render(r);
    common_checks(&page, r);
    let doc = parse(chart(&page, "percentiles").unwrap());
    assert!(point_count(&doc, "handshake") >= 2);
    assert_eq!(count(&page, "id=\"insecure-banner\""), 1);
}

/// A run cut short still draws something: one second of data is a marked point with a note saying so, no
/// completed second says there is nothing over time, and no latency sample says so instead of an empty chart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_and_empty_runs_say_what_they_have() {
    let out = run_text(
        "target: embedded\ndevices:\n  count: 5\nphases:\n  - duration: 1s\n    interval: 100ms\n",
    )
    .await;
    let r = &out.report;
    assert!(!r.timeseries.is_empty() && r.total.latency.count > 0);

    // As report.json reads after a run stopped in its first second.
    let mut one = r.clone();
    one.timeseries.truncate(1);
    if let Some(g) = one.generator.as_mut() {
        g.cpu_busy_series.truncate(1);
    }
    let page = html::render(&one);
    let p = &one.timeseries[0];
    assert!(page.contains(&format!(
        "<p class=\"note\" data-short-run>One second of data: each curve is a single point ({} requests, {} errors",
        p.requests, p.errors
    )));
    let doc = parse(chart(&page, "throughput").unwrap());
    assert_eq!(point_count(&doc, "requests"), 1);
    for key in ["requests", "errors"] {
        assert!(
            doc.descendants()
                .any(|n| n.has_tag_name("circle") && n.attribute("data-single") == Some(key)),
            "a marked point for {key}"
        );
    }
    assert_eq!(hover_titles(&doc).len(), 1);
    if one
        .generator
        .as_ref()
        .is_some_and(|g| !g.cpu_busy_series.is_empty())
    {
        let doc = parse(chart(&page, "cpu").unwrap());
        assert!(doc
            .descendants()
            .any(|n| n.attribute("data-single") == Some("cpu")));
    }

    // The newer charts over time mark their lone point too.
    for (id, key) in [
        ("errors-by-kind", "errors:all"),
        ("devices-over-time", "active-devices"),
        ("send-lag-over-time", "send-lag-p50"),
    ] {
        let doc = parse(chart(&page, id).unwrap_or_else(|| panic!("{id} chart")));
        assert!(
            doc.descendants()
                .any(|n| n.attribute("data-single") == Some(key)),
            "a marked point for {key} in {id}"
        );
        assert_eq!(hover_titles(&doc).len(), 1, "{id}");
    }

    // No second completed.
    let mut none = r.clone();
    none.timeseries.clear();
    let page = html::render(&none);
    assert!(chart(&page, "throughput").is_none());
    assert!(page.contains("data-empty=\"over-time\""));

    // No request completed.
    let empty = coap_harness::report::model::Latency::from_histogram(
        &hdrhistogram::Histogram::<u64>::new(3).unwrap(),
    );
    let mut silent = none.clone();
    silent.total.latency = empty.clone();
    silent.total.latency_uncorrected = empty.clone();
    silent.total.send_lag = empty;
    let page = html::render(&silent);
    assert!(chart(&page, "percentiles").is_none());
    assert!(chart(&page, "send-lag").is_none());
    assert!(page.contains("data-empty=\"percentiles\""));
    assert_eq!(tile(&page, "p99"), "–");
}

/// The per-second series added later (errors by kind, send lag, active devices and DTLS sessions, handshakes
/// by verdict) are charted from report.json; a report written before them still re-renders with `report`
/// saying what it lacks instead of drawing zeros.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_series_are_charted_and_older_reports_still_render() {
    let out = run_text(DTLS_INSECURE).await;
    let r = &out.report;
    assert!(!r.timeseries.is_empty());
    let page = html::render(r);
    common_checks(&page, r);
    // Devices and sessions, one hover title a second with the values report.json has.
    let doc = parse(chart(&page, "devices-over-time").expect("devices chart"));
    assert!(series(&doc, "active-devices").is_some() && series(&doc, "dtls-sessions").is_some());
    let titles = hover_titles(&doc);
    assert_eq!(titles.len(), r.timeseries.len());
    for (title, p) in titles.iter().zip(&r.timeseries) {
        assert_eq!(
            title,
            &format!(
                "{}.5s: active devices {}, DTLS sessions {}",
                p.t,
                p.active_devices.unwrap(),
                p.dtls_sessions.unwrap()
            )
        );
    }
    let sessions = r.timeseries.iter().filter_map(|p| p.dtls_sessions).max();
    assert!(matches!(sessions, Some(1..=10)), "{:?}", r.timeseries);
    // Handshakes by verdict: `ca: none` opens every session unverified.
    let h = r.handshakes.as_ref().unwrap();
    let verdicts: u64 = h.per_second.iter().flat_map(|p| p.verdicts.values()).sum();
    assert_eq!(verdicts, h.attempted);
    let doc = parse(chart(&page, "handshakes-over-time").expect("handshake chart"));
    assert!(series(&doc, "handshakes:ok_insecure").is_some());
    assert!(series(&doc, "handshakes-ok").is_none());
    // No request failed: the error chart draws its zero line and says so.
    let doc = parse(chart(&page, "errors-by-kind").expect("error chart"));
    assert!(series(&doc, "errors:all").is_some());
    assert!(page.contains("No request failed in any second."));
    assert!(chart(&page, "send-lag-over-time").is_some());

    // The same report as an older version wrote it, re-rendered by `coap-harness report DIR`.
    let mut old: serde_json::Value = serde_json::to_value(r).unwrap();
    for p in old["timeseries"].as_array_mut().unwrap() {
        let p = p.as_object_mut().unwrap();
        for key in [
            "errors_by_kind",
            "send_lag_p50_us",
            "send_lag_p99_us",
            "active_devices",
            "dtls_sessions",
        ] {
            assert!(
                p.remove(key).is_some() || key == "send_lag_p50_us" || key == "send_lag_p99_us"
            );
        }
    }
    for p in old["handshakes"]["per_second"].as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("verdicts").unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("report.json"),
        serde_json::to_string_pretty(&old).unwrap(),
    )
    .unwrap();
    let again = dir.path().join("again");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .arg("report")
        .arg(dir.path().join("report.json"))
        .arg("--out")
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let page = std::fs::read_to_string(again.join("report.html")).unwrap();
    let back: Report =
        serde_json::from_str(&std::fs::read_to_string(again.join("report.json")).unwrap()).unwrap();
    common_checks(&page, &back);
    assert!(back.timeseries.iter().all(|p| p.errors_by_kind.is_none()));
    let doc = parse(chart(&page, "errors-by-kind").expect("error chart"));
    assert!(series(&doc, "errors:all").is_some());
    assert!(page.contains("did not record errors by kind"));
    assert!(chart(&page, "devices-over-time").is_none());
    assert!(page.contains("data-empty=\"devices-over-time\""));
    assert!(chart(&page, "send-lag-over-time").is_none());
    assert!(page.contains("data-empty=\"send-lag-over-time\""));
    let doc = parse(chart(&page, "handshakes-over-time").expect("handshake chart"));
    assert!(series(&doc, "handshakes-ok").is_some());
}

/// A target where nothing listens: every request fails as `unreachable`, and the error chart draws that kind,
/// second by second, with the counts report.json has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_charted_by_kind() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run_text(&format!(
        "target: coap://127.0.0.1:{port}\ndevices:\n  count: 3\nphases:\n  - duration: 2s\n    interval: 200ms\n"
    ))
    .await;
    let r = &out.report;
    let kinds: Vec<_> = r
        .timeseries
        .iter()
        .map(|p| p.errors_by_kind.expect("recorded"))
        .collect();
    let unreachable: u64 = kinds.iter().map(|k| k.unreachable).sum();
    assert!(unreachable > 0, "{:?}", r.total.outcomes);
    assert_eq!(
        kinds.iter().map(|k| k.total()).sum::<u64>(),
        r.timeseries.iter().map(|p| p.errors).sum::<u64>(),
        "every error has its kind"
    );
    let page = html::render(r);
    let doc = parse(chart(&page, "errors-by-kind").expect("error chart"));
    assert!(series(&doc, "errors:unreachable").is_some());
    assert!(series(&doc, "errors:all").is_none());
    assert!(series(&doc, "errors:timeout").is_some() == kinds.iter().any(|k| k.timeout > 0));
    for (title, (p, k)) in hover_titles(&doc)
        .iter()
        .zip(r.timeseries.iter().zip(&kinds))
    {
        assert!(
            title.starts_with(&format!("{}.5s: ", p.t))
                && title.contains(&format!("unreachable/s {}", k.unreachable)),
            "{title}"
        );
    }
}
