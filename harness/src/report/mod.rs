//! Reports: one [`Report`] value, one renderer per format, each in its own file.

pub mod compare;
pub mod junit;
pub mod markdown;
pub mod model;
pub mod terminal;

pub use model::{Check, Report};

use std::path::{Path, PathBuf};

/// Writes every file format into `dir` (created if needed) and returns the paths written.
pub fn write_all(report: &Report, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let json = dir.join("report.json");
    let mut text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(&json, text)?;
    let md = dir.join("summary.md");
    std::fs::write(&md, markdown::render(report))?;
    let junit = dir.join("junit.xml");
    std::fs::write(&junit, junit::render(report))?;
    Ok(vec![json, md, junit])
}
