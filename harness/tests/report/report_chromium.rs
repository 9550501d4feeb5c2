//! report.html in a real browser: a real run's page rendered by headless Chromium to a PNG, decoded, and held
//! to be the size asked for and not blank. A blank page through the same check is the control that the check
//! can fail.

use crate::common;

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
    let profile = tempfile::tempdir().unwrap();
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
        .arg(format!("--window-size={WIDTH},{HEIGHT}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
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
    assert!(png.exists(), "chromium wrote no screenshot: {err}");
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
