//! Reports in one test binary (one link instead of seven): the files a run writes and the commands that read
//! them back, from real runs. The trust matrix runs once for all of them (`trust_matrix`).
//! - report.json, its JSON Schema, latency.hgrm/.hlog and the `report` command (`report_formats`);
//! - report.html (`report_html`), in a real browser (`report_chromium`), and `report --compare`
//!   (`report_compare_html`); junit.xml (`junit`); `compare` (`compare`); sharded runs and `merge`
//!   (`shard_merge`); the send-lag warning, per-second hlog, `--json` and live `--metrics` (`observability`).

#[path = "../common/mod.rs"]
mod common;

mod compare;
mod junit;
mod observability;
mod report_chromium;
mod report_compare_html;
mod report_formats;
mod report_html;
mod shard_merge;
mod trust_matrix;
