//! The CI-gate behaviour of issue #13 in one test binary (one link instead of six): the default health
//! check, one verdict in every output, the report folder checked before the load, bounded planning, figures of
//! a run stopped early, and text that used to mislead.

#[path = "../common/mod.rs"]
mod common;

mod health;
mod misleading_text;
mod out_folder;
mod planning;
mod stopped_early;
mod verdicts;
