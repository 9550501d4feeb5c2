//! report.html in a real browser: a real run's page rendered by headless Chromium to a PNG, decoded, and held
//! to be the size asked for and not blank (a blank page through the same check is the control that the check
//! can fail); and laid out at 1280 and 800 px, where a probe reads what the page shows (the headline tiles and
//! their figures, the percentile axis, whether anything runs off the side) and a printed PDF comes out.

use crate::common;

use coap_harness::report::model::human_us;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUN: &str =
    "target: embedded\ndevices:\n  count: 10\nphases:\n  - name: warm\n    duration: 1s\n    \
     interval: 100ms\n  - name: steady\n    duration: 1s\n    interval: 50ms\n";

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 1400;

/// A hung browser fails the test instead of blocking CI.
const BROWSER_LIMIT: Duration = Duration::from_secs(90);

/// Renders `page` with headless Chromium into `png`, `WIDTH` x `HEIGHT`, with its own profile folder.
fn screenshot(page: &Path, png: &Path) {
    chromium(page, WIDTH, &[format!("--screenshot={}", png.display())]);
    assert!(png.exists(), "chromium wrote no screenshot");
}

/// Runs headless Chromium on `page` in a window `width` px wide with `extra` arguments; returns its stdout.
fn chromium(page: &Path, width: u32, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},{HEIGHT}"))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + BROWSER_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {BROWSER_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "chromium failed ({status}): {err}");
    std::fs::read_to_string(out.path()).unwrap()
}

/// What the decoded screenshot looks like.
struct Picture {
    width: u32,
    height: u32,
    /// Distinct RGB colours.
    colors: usize,
    /// Pixels that are not (near) white, as a fraction.
    inked: f64,
}

fn look(png_file: &Path) -> Picture {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_file).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let mut colors = std::collections::HashSet::new();
    let mut inked = 0usize;
    for px in bytes.chunks_exact(channels) {
        colors.insert((px[0], px[1], px[2]));
        if px[..3].iter().any(|c| *c < 240) {
            inked += 1;
        }
    }
    Picture {
        width: info.width,
        height: info.height,
        colors: colors.len(),
        inked: inked as f64 / (info.width as f64 * info.height as f64),
    }
}

/// Not blank: many colours (charts, text anti-aliasing, the verdict badge) and a fair share of ink.
fn not_blank(p: &Picture) -> bool {
    p.colors >= 64 && p.inked >= 0.02
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_html_renders_to_a_picture_in_chromium() {
    if !common::require("chromium") {
        return;
    }
    let r = common::run(common::plan(RUN)).await.report;
    assert!(r.total.latency.count > 0 && !r.timeseries.is_empty());
    let dir = tempfile::tempdir().unwrap();
    coap_harness::report::write_all(&r, dir.path()).unwrap();

    let shot = dir.path().join("report.png");
    screenshot(&dir.path().join("report.html"), &shot);
    let p = look(&shot);
    eprintln!(
        "report.png: {}x{}, {} colours, {:.1}% inked",
        p.width,
        p.height,
        p.colors,
        p.inked * 100.0
    );
    assert_eq!((p.width, p.height), (WIDTH, HEIGHT));
    assert!(not_blank(&p), "the report renders blank");

    // The control: an empty page through the same browser and the same check is blank.
    let empty = dir.path().join("empty.html");
    std::fs::write(&empty, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let blank = dir.path().join("empty.png");
    screenshot(&empty, &blank);
    let b = look(&blank);
    assert_eq!((b.width, b.height), (WIDTH, HEIGHT));
    assert!(!not_blank(&b), "an empty page passes as not blank");
}

/// Reads the page as laid out: appended to a copy of report.html, it writes what it measured into an
/// attribute of `<body>`, which `--dump-dom` prints. (report.html itself has no script.)
const PROBE: &str = r#"<script>
(function () {
  var d = document.documentElement, top = function (q) {
    var e = document.querySelector(q); return e ? e.getBoundingClientRect().top : null; };
  var o = { scrollWidth: d.scrollWidth, clientWidth: d.clientWidth, innerWidth: window.innerWidth,
    tiles: {}, tilesBottom: 0, firstChartTop: top('svg.chart'), phasesTop: top('#phases'),
    machineTop: top('#machine'), xTicks: [], yTicks: [], tablesNotScrolling: [], offside: [] };
  document.querySelectorAll('[data-tile]').forEach(function (t) {
    o.tiles[t.dataset.tile] = t.querySelector('.tv').textContent;
    o.tilesBottom = Math.max(o.tilesBottom, t.getBoundingClientRect().bottom); });
  document.querySelectorAll('svg[data-chart=percentiles] [data-tick=x]').forEach(function (t) {
    o.xTicks.push(t.textContent); });
  document.querySelectorAll('svg[data-chart=percentiles] [data-tick=y]').forEach(function (t) {
    o.yTicks.push(t.textContent); });
  document.querySelectorAll('table').forEach(function (t) {
    var p = t.parentElement;
    if (!p.classList.contains('scroll') || getComputedStyle(p).overflowX !== 'auto')
      o.tablesNotScrolling.push(t.id); });
  document.querySelectorAll('body *').forEach(function (e) {
    if (e.closest('.scroll') || e.tagName === 'SCRIPT') return;
    var r = e.getBoundingClientRect();
    if (r.width > 0 && r.right > d.clientWidth + 0.5) o.offside.push(e.tagName + '#' + e.id + '.' + e.className); });
  o.charts = {};
  document.querySelectorAll('svg[data-chart]').forEach(function (c) {
    var r = c.getBoundingClientRect(), titles = [], series = [];
    c.querySelectorAll('[data-hover] title').forEach(function (t) { titles.push(t.textContent); });
    c.querySelectorAll('polyline[data-series]').forEach(function (p) { series.push(p.dataset.series); });
    o.charts[c.dataset.chart] = { width: r.width, height: r.height, right: r.right, titles: titles,
      series: series, visible: getComputedStyle(c).display !== 'none' && getComputedStyle(c).visibility !== 'hidden' };
  });
  document.body.setAttribute('data-probe', JSON.stringify(o));
})();
</script>"#;

/// What the probe measured, with the page laid out `width` px wide.
fn probe(page_html: &str, width: u32, dir: &Path, name: &str) -> serde_json::Value {
    let file = dir.join(format!("{name}-{width}.html"));
    std::fs::write(
        &file,
        page_html.replace("</body>", &format!("{PROBE}</body>")),
    )
    .unwrap();
    let dom = chromium(&file, width, &["--dump-dom".to_string()]);
    let start = dom.find("data-probe=\"").expect("the probe ran") + "data-probe=\"".len();
    let end = start + dom[start..].find('"').unwrap();
    let json = dom[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("probe output {json}: {e}"))
}

fn num(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The charts over time drawn from report.json's per-second series (errors by kind, active devices, send
/// lag) are on the page, laid out within the window, and their hover titles carry the second's values as
/// report.json has them.
fn over_time_charts(p: &serde_json::Value, r: &coap_harness::report::Report, width: u32) {
    let chart = |id: &str| {
        let c = &p["charts"][id];
        assert!(c.is_object(), "chart {id} at {width} px: {}", p["charts"]);
        assert_eq!(c["visible"], serde_json::json!(true), "{id}");
        assert!(
            num(&c["width"]) > 300.0 && num(&c["height"]) > 100.0,
            "{id} drawn: {c}"
        );
        assert!(
            num(&c["right"]) <= width as f64,
            "{id} inside the window: {c}"
        );
        let titles: Vec<String> = c["titles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        titles
    };
    let series = |id: &str| p["charts"][id]["series"].clone();
    // A run without errors draws its zero line, one value a second.
    let errors = chart("errors-by-kind");
    assert_eq!(errors.len(), r.timeseries.len(), "one hover title a second");
    assert_eq!(series("errors-by-kind"), serde_json::json!(["errors:all"]));
    for (title, point) in errors.iter().zip(&r.timeseries) {
        assert_eq!(title, &format!("{}.5s: errors/s 0", point.t));
    }
    let devices = chart("devices-over-time");
    assert_eq!(
        devices.len(),
        r.timeseries.len(),
        "one hover title a second"
    );
    assert_eq!(
        series("devices-over-time"),
        serde_json::json!(["active-devices"])
    );
    for (title, point) in devices.iter().zip(&r.timeseries) {
        let n = point.active_devices.expect("recorded");
        assert_eq!(title, &format!("{}.5s: active devices {n}", point.t));
    }
    assert!(
        r.timeseries.iter().any(|p| p.active_devices == Some(10)),
        "every device active in some second: {:?}",
        r.timeseries
    );
    let lag = chart("send-lag-over-time");
    assert_eq!(
        series("send-lag-over-time"),
        serde_json::json!(["send-lag-p50", "send-lag-p99"])
    );
    // Seconds in which requests ended (a silent last second has no send lag).
    let lagged: Vec<_> = r
        .timeseries
        .iter()
        .filter(|p| p.send_lag_p50_us.is_some())
        .collect();
    assert!(
        !lagged.is_empty()
            && lagged.len() == r.timeseries.iter().filter(|p| p.requests > 0).count()
    );
    assert_eq!(lag.len(), lagged.len());
    for (title, point) in lag.iter().zip(lagged) {
        assert_eq!(
            title,
            &format!(
                "{}.5s: send lag p50 {}, send lag p99 {}",
                point.t,
                human_us(point.send_lag_p50_us.unwrap()),
                human_us(point.send_lag_p99_us.unwrap())
            )
        );
    }
}

/// The page a performance engineer opens: tiles with the run's figures first, charts next, the machine last;
/// the percentile axis in nines; nothing wider than an 800 px window (wide tables scroll in their box); and it
/// prints. Each figure is held against report.json as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_html_reads_at_1280_and_800_px_and_prints() {
    if !common::require("chromium") {
        return;
    }
    let out = common::run(common::plan(RUN)).await.report;
    let dir = tempfile::tempdir().unwrap();
    coap_harness::report::write_all(&out, dir.path()).unwrap();
    let r: coap_harness::report::Report =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert!(r.total.latency.count > 0 && !r.phases.is_empty());
    let page = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(page.contains("@media print"));

    let l = &r.total.latency;
    let expected_tiles = [
        ("verdict", "PASSED".to_string()),
        ("requests", r.total.sent.to_string()),
        ("ok", "100%".to_string()),
        ("throughput", format!("{:.1}/s", r.total.throughput_rps)),
        ("p50", human_us(l.p50_us)),
        ("p99", human_us(l.p99_us)),
        ("p999", human_us(l.p999_us)),
        ("handshakes", "–".to_string()),
        ("errors", r.total.outcomes.failures().to_string()),
        ("checks", format!("{0}/{0}", r.checks.len())),
    ];
    assert!(r.checks.iter().all(|c| c.passed) && r.total.outcomes.ok == r.total.sent);

    for width in [1280, 800] {
        let p = probe(&page, width, dir.path(), "report");
        eprintln!("at {width} px: {p}");
        assert_eq!(num(&p["innerWidth"]), width as f64, "window width");
        // Nothing runs off the side: the page is no wider than the window.
        assert!(
            num(&p["scrollWidth"]) <= num(&p["clientWidth"]),
            "page wider than {width} px: {p}"
        );
        assert_eq!(
            p["offside"],
            serde_json::json!([]),
            "elements past the right edge"
        );
        assert_eq!(p["tablesNotScrolling"], serde_json::json!([]));
        for (key, value) in &expected_tiles {
            assert_eq!(p["tiles"][key].as_str(), Some(value.as_str()), "tile {key}");
        }
        // Tiles first, then charts and tables, the machine last; all tiles in the first screen.
        let tiles_bottom = num(&p["tilesBottom"]);
        assert!(
            tiles_bottom < HEIGHT as f64,
            "tiles below the fold: {tiles_bottom}"
        );
        assert!(tiles_bottom <= num(&p["phasesTop"]));
        assert!(tiles_bottom <= num(&p["firstChartTop"]));
        assert!(num(&p["phasesTop"]) < num(&p["machineTop"]));
        assert!(num(&p["firstChartTop"]) < num(&p["machineTop"]));
        // The HdrHistogram axis, and one unit on the latency axis.
        let x: Vec<&str> = p["xTicks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        for tick in ["50%", "90%", "99%", "99.9%", "99.99%"] {
            assert!(x.contains(&tick), "percentile tick {tick} in {x:?}");
        }
        let units: std::collections::BTreeSet<String> = p["yTicks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                t.as_str()
                    .unwrap()
                    .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
                    .to_string()
            })
            .collect();
        assert_eq!(units.len(), 1, "latency axis in one unit: {}", p["yTicks"]);
        over_time_charts(&p, &r, width);
    }

    // The control: without the scrolling boxes, the phase table widens the page past 800 px, so the check
    // above can fail.
    let unboxed = page.replace(".scroll{overflow-x:auto;max-width:100%;}", "");
    assert_ne!(unboxed, page);
    let c = probe(&unboxed, 800, dir.path(), "control");
    assert!(
        num(&c["scrollWidth"]) > num(&c["clientWidth"]),
        "the control fits in 800 px: {c}"
    );

    // It prints: a PDF of more than one page.
    let pdf = dir.path().join("report.pdf");
    chromium(
        &dir.path().join("report.html"),
        800,
        &[
            format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer".to_string(),
        ],
    );
    let bytes = std::fs::read(&pdf).expect("chromium printed a PDF");
    assert!(bytes.starts_with(b"%PDF-"));
    let text = String::from_utf8_lossy(&bytes);
    let pages = text.matches("/Type /Page").count() - text.matches("/Type /Pages").count();
    eprintln!("report.pdf: {} bytes, {pages} pages", bytes.len());
    assert!(pages >= 2, "printed {pages} pages");
}
