//! `coap-harness merge`: shard reports in (`run --shard K/N`), one report out, as if one process had run the
//! whole scenario. This module checks that the reports belong together ([`MergeError`]); `sum` adds them up
//! (histograms exactly, counters summed, time series aligned by wall-clock second); `judge` judges the
//! scenario's thresholds and expectations again on the sum. The result renders like any run's report.

pub mod judge;
pub mod sum;

use crate::report::compare::{read_report, ReadError};
use crate::report::model::MergeInfo;
use crate::report::{Check, Report};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why shard reports cannot be merged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// No report was given, or the folders given hold none.
    #[error(
        "no shard reports to merge (give report.json files, or folders whose subfolders hold them)"
    )]
    Empty,
    /// A file is not a readable report.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A folder given could not be listed.
    #[error("cannot list {}: {source}", dir.display())]
    ListDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// A report is not a shard's: a whole run (made without `--shard`) or a merged report.
    #[error("{}: not a shard report (it was not made with run --shard K/N)", file.display())]
    NotAShard { file: PathBuf },
    /// Shards of different scenarios, or of one scenario run with different overrides.
    #[error(
        "{}: scenario hash {found} differs from {expected} in {}: these are shards of different scenarios",
        file.display(), first.display()
    )]
    ScenarioMismatch {
        file: PathBuf,
        found: String,
        first: PathBuf,
        expected: String,
    },
    /// Shards that split the scenario into different numbers of parts.
    #[error("{}: shard of {found}, but {} is a shard of {expected}", file.display(), first.display())]
    CountMismatch {
        file: PathBuf,
        found: u32,
        first: PathBuf,
        expected: u32,
    },
    /// Two reports of the same shard.
    #[error("shard {index} given twice: {} and {}", first.display(), second.display())]
    Duplicate {
        index: u32,
        first: PathBuf,
        second: PathBuf,
    },
    /// Shards are missing and `--allow-partial` was not given.
    #[error(
        "missing shard{} {} of {count} (--allow-partial merges the rest and marks the result partial)",
        if missing.len() == 1 { "" } else { "s" },
        list(missing)
    )]
    Missing { missing: Vec<u32>, count: u32 },
    /// Reports with the same scenario hash that still do not fit together (different phases, a histogram
    /// that does not decode or add).
    #[error("{}: {message}", file.display())]
    Inconsistent { file: PathBuf, message: String },
}

fn list(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// The report files named by `paths`: a file as given; a folder stands for every `*/report.json` in it (the
/// layout `run --out DIR/shard-K` leaves), except in `out`.
pub fn inputs(paths: &[PathBuf], out: &Path) -> Result<Vec<PathBuf>, MergeError> {
    let skip = out.canonicalize().ok();
    let mut files = Vec::new();
    for p in paths {
        if !p.is_dir() {
            files.push(p.clone());
            continue;
        }
        let list = |source| MergeError::ListDir {
            dir: p.clone(),
            source,
        };
        let mut found: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(list)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|d| d.is_dir() && d.canonicalize().ok() != skip)
            .map(|d| d.join("report.json"))
            .filter(|f| f.is_file())
            .collect();
        found.sort();
        files.extend(found);
    }
    if files.is_empty() {
        return Err(MergeError::Empty);
    }
    Ok(files)
}

/// Reads the files and merges them.
pub fn merge_files(files: &[PathBuf], allow_partial: bool) -> Result<Report, MergeError> {
    let reports = files
        .iter()
        .map(|f| Ok((f.clone(), read_report(f)?)))
        .collect::<Result<Vec<_>, ReadError>>()?;
    merge(reports, allow_partial)
}

/// Merges shard reports, each with the file it came from (for errors).
pub fn merge(reports: Vec<(PathBuf, Report)>, allow_partial: bool) -> Result<Report, MergeError> {
    let Some((first_file, first)) = reports.first() else {
        return Err(MergeError::Empty);
    };
    let Some(head) = first.shard.clone() else {
        return Err(MergeError::NotAShard {
            file: first_file.clone(),
        });
    };
    let mut by_index: BTreeMap<u32, (&PathBuf, &Report)> = BTreeMap::new();
    for (file, r) in &reports {
        let Some(s) = &r.shard else {
            return Err(MergeError::NotAShard { file: file.clone() });
        };
        if s.scenario_sha256 != head.scenario_sha256 {
            return Err(MergeError::ScenarioMismatch {
                file: file.clone(),
                found: s.scenario_sha256.clone(),
                first: first_file.clone(),
                expected: head.scenario_sha256.clone(),
            });
        }
        if s.count != head.count {
            return Err(MergeError::CountMismatch {
                file: file.clone(),
                found: s.count,
                first: first_file.clone(),
                expected: head.count,
            });
        }
        if let Some((earlier, _)) = by_index.insert(s.index, (file, r)) {
            return Err(MergeError::Duplicate {
                index: s.index,
                first: earlier.clone(),
                second: file.clone(),
            });
        }
    }
    let missing: Vec<u32> = (0..head.count)
        .filter(|i| !by_index.contains_key(i))
        .collect();
    if !missing.is_empty() && !allow_partial {
        return Err(MergeError::Missing {
            missing,
            count: head.count,
        });
    }
    let shards: Vec<&Report> = by_index.values().map(|(_, r)| *r).collect();
    for (file, r) in by_index.values() {
        if let Err(message) = sum::same_shape(first, r) {
            return Err(MergeError::Inconsistent {
                file: (*file).clone(),
                message,
            });
        }
    }
    let mut merged = sum::add_up(&shards).map_err(|(i, message)| MergeError::Inconsistent {
        file: by_index
            .values()
            .nth(i)
            .map(|(f, _)| (*f).clone())
            .unwrap_or_default(),
        message,
    })?;
    merged.scenario.seed = head.scenario_seed;
    merged.partial = !missing.is_empty();
    merged.merged = Some(MergeInfo {
        count: head.count,
        shards: by_index.keys().copied().collect(),
        missing: missing.clone(),
        scenario_sha256: head.scenario_sha256.clone(),
    });
    merged.checks.extend(judge::checks(&merged, &head.checks));
    if merged.partial {
        let text = format!(
            "PARTIAL: {} of {} shards merged (missing {}): the figures and checks cover only part of the scenario's devices",
            shards.len(),
            head.count,
            list(&missing)
        );
        merged.warnings.insert(0, text);
        merged.checks.push(Check {
            name: "every shard merged".into(),
            passed: false,
            expected: format!("{} shards", head.count),
            observed: format!("{} (missing {})", shards.len(), list(&missing)),
        });
    }
    Ok(merged)
}
