//! Reports: one [`Report`] value, one renderer per format, each in its own file.

pub mod compare;
pub mod device_trust;
pub mod escape;
pub mod hdr;
pub mod html;
pub mod html_compare;
pub mod junit;
pub mod lag;
pub mod markdown;
pub mod model;
pub mod recovery;
pub mod schema;
pub mod svg;
pub mod terminal;
pub mod thresholds;
pub mod verdict;

pub use model::{Check, Report};

use std::path::{Path, PathBuf};

/// Writes every file format into `dir` (created if needed) and returns the paths written. A run without load
/// phases (trust or conformance cases only) measured no request latency: it gets no `latency.hgrm` or
/// `latency.hlog`, rather than empty ones.
pub fn write_all(report: &Report, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let report = &verdict::stamped(report);
    let json = dir.join("report.json");
    let mut text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(&json, text)?;
    let md = dir.join("summary.md");
    std::fs::write(&md, markdown::render(report))?;
    let junit = dir.join("junit.xml");
    std::fs::write(&junit, junit::render(report))?;
    let mut written = vec![json, md, junit];
    if !report.phases.is_empty() {
        let hgrm = dir.join("latency.hgrm");
        std::fs::write(
            &hgrm,
            hdr::render_hgrm(report).map_err(std::io::Error::other)?,
        )?;
        let hlog = dir.join("latency.hlog");
        std::fs::write(
            &hlog,
            hdr::render_hlog(report).map_err(std::io::Error::other)?,
        )?;
        written.extend([hgrm, hlog]);
    }
    let html = dir.join("report.html");
    std::fs::write(&html, html::render(report))?;
    written.push(html);
    Ok(written)
}
