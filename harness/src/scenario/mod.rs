//! Scenarios: YAML in, a validated [`RunPlan`] out, before any socket opens. Two stages, as in ripgrep's
//! low/high args: `raw` mirrors the file (unknown fields rejected), `validate` checks rules across fields.
//! Every error names the file, line, column and field.

pub mod builtin;
pub mod checks;
pub mod conformance;
pub mod credentials;
pub mod depth;
pub mod device_trust;
pub mod dtls;
pub mod faults;
pub mod locate;
pub mod overrides;
pub mod plan;
pub mod raw;
pub mod shard;
pub mod size;
pub mod template;
pub mod validate;
pub mod vars;

pub use overrides::Overrides;
pub use plan::{Pacing, Phase, RunPlan, Target};

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a scenario cannot be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file could not be read.
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The YAML does not parse into a scenario (syntax, unknown field, wrong type, bad value).
    Parse {
        file: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// A rule across fields is broken.
    Invalid {
        file: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        field: String,
        message: String,
    },
    /// A command-line flag (or its `COAP_HARNESS_*` environment variable, then named instead) does not fit
    /// the scenario or the clock.
    Flag { flag: String, message: String },
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |f: &mut fmt::Formatter<'_>,
                  file: &Path,
                  line: &Option<usize>,
                  col: &Option<usize>|
         -> fmt::Result {
            write!(f, "{}", file.display())?;
            if let Some(l) = line {
                write!(f, ":{l}")?;
                if let Some(c) = col {
                    write!(f, ":{c}")?;
                }
            }
            Ok(())
        };
        match self {
            ScenarioError::Read { file, source } => {
                write!(f, "cannot read scenario {}: {source}", file.display())
            }
            ScenarioError::Parse {
                file,
                line,
                column,
                message,
            } => {
                at(f, file, line, column)?;
                write!(f, ": {message}")
            }
            ScenarioError::Invalid {
                file,
                line,
                column,
                field,
                message,
            } => {
                at(f, file, line, column)?;
                write!(f, ": {field}: {message}")
            }
            ScenarioError::Flag { flag, message } => write!(f, "{flag}: {message}"),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// Reads, parses and validates a scenario file.
pub fn load(file: &Path, overrides: &Overrides) -> Result<RunPlan, ScenarioError> {
    let text = std::fs::read_to_string(file).map_err(|source| ScenarioError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario".into());
    let base = file.parent().unwrap_or(Path::new("."));
    let mut plan = parse(&text, file, base, &stem, overrides)?;
    plan.source = Some(file.to_path_buf());
    Ok(plan)
}

/// Parses and validates scenario text; `file` is only used to name it in errors. `-e` variables and
/// `${ENV:NAME}` are substituted first, then the overrides applied before validation.
pub fn parse(
    text: &str,
    file: &Path,
    base: &Path,
    default_name: &str,
    overrides: &Overrides,
) -> Result<RunPlan, ScenarioError> {
    // A UTF-8 byte-order mark (some Windows editors write one) is not part of the YAML.
    let written = text.strip_prefix('\u{feff}').unwrap_or(text);
    let sub = vars::substitute(written, &overrides.vars, &|name| std::env::var(name).ok())
        .map_err(|e| ScenarioError::Parse {
            file: file.to_path_buf(),
            line: Some(e.line),
            column: Some(e.column),
            message: e.message,
        })?;
    let text = sub.text.as_str();
    // Where an error on a line holding a substituted value is, in the file as written, and which variable
    // gave the value.
    let place = |line: Option<usize>, column: Option<usize>, message: String| {
        let Some(l) = line else {
            return (line, column, message);
        };
        let column = column.map(|c| sub.original_column(l, c));
        let message = match column.and_then(|c| sub.at(l, c)).or_else(|| sub.on_line(l)) {
            Some(s) => format!("{message} (the value came from {})", s.origin),
            None => message,
        };
        (line, column, message)
    };
    depth::check(text).map_err(|d| {
        let (line, column, message) = place(Some(d.line), Some(d.column), d.message);
        ScenarioError::Parse {
            file: file.to_path_buf(),
            line,
            column,
            message,
        }
    })?;
    let mut raw: raw::RawScenario = serde_yaml::from_str(text).map_err(|e| {
        let loc = e.location();
        // serde_yaml appends " at line L column C"; we print the location up front instead.
        let mut message = e.to_string();
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        let mut line = loc.as_ref().map(|l| l.line());
        let mut column = loc.as_ref().map(|l| l.column());
        if let Some((l, c, m)) = line.and_then(|l| pin_value(text, l, &message)) {
            (line, column, message) = (Some(l), Some(c), m);
        }
        let (line, column, message) = place(line, column, message);
        ScenarioError::Parse {
            file: file.to_path_buf(),
            line,
            column,
            message,
        }
    })?;
    overrides::apply(&mut raw, overrides).map_err(|(flag, message)| ScenarioError::Flag {
        flag: overrides.name(flag),
        message,
    })?;
    let steady = overrides::steady_phase(&raw.phases);
    let plan = validate::validate(raw, base, default_name).map_err(|inv| {
        let field = locate::render(&inv.path);
        if let Some(flag) = overrides::blame(&inv.path, steady, overrides) {
            return ScenarioError::Flag {
                flag: overrides.name(flag),
                message: format!("{field}: {}", inv.message),
            };
        }
        let at = locate::locate(text, &inv.path);
        let (line, column, message) = place(at.map(|a| a.0), at.map(|a| a.1), inv.message);
        ScenarioError::Invalid {
            file: file.to_path_buf(),
            line,
            column,
            field,
            message,
        }
    })?;
    flags(plan, written, overrides)
}

/// Applies `--shard` and `--start-at` to a validated plan.
fn flags(mut plan: RunPlan, text: &str, o: &Overrides) -> Result<RunPlan, ScenarioError> {
    if let Some(at) = o.start_at {
        shard::check_start_at(at, std::time::SystemTime::now()).map_err(|message| {
            ScenarioError::Flag {
                flag: o.name("--start-at"),
                message,
            }
        })?;
        plan.start_at = Some(at);
    }
    if let Some(s) = o.shard {
        plan = shard::split(plan, s, shard::scenario_hash(text, o)).map_err(|message| {
            ScenarioError::Flag {
                flag: o.name("--shard"),
                message,
            }
        })?;
    }
    Ok(plan)
}

/// A bad value of a top-level key (`drain: soon`) comes from serde_yaml without a path, at line 1: find
/// the top-level key holding the quoted value and name it.
fn pin_top_level(text: &str, message: &str) -> Option<(usize, usize, String)> {
    let value = message.split('`').nth(1)?;
    text.lines().enumerate().find_map(|(n, line)| {
        let (key, val) = line.split_once(':')?;
        let top = !key.is_empty() && !key.starts_with([' ', '\t', '-', '#']);
        (top && val.trim().trim_matches(['"', '\'']) == value)
            .then(|| (n + 1, 1, format!("{}: {message}", key.trim())))
    })
}

/// serde_yaml reports a bad value from a custom parser at the enclosing mapping (`phases[0]: `x` is not a
/// duration`). Our parsers quote the value first, so find the line at or after `from_line` that holds it and
/// name its key: `phases[0].duration`, with that line and column.
fn pin_value(text: &str, from_line: usize, message: &str) -> Option<(usize, usize, String)> {
    if message.starts_with('`') {
        return pin_top_level(text, message);
    }
    let (path, rest) = message.split_once(": ")?;
    let value = rest.split('`').nth(1)?;
    if path.contains(' ') || value.is_empty() {
        return None;
    }
    for (n, line) in text.lines().enumerate().skip(from_line.saturating_sub(1)) {
        let content = line.trim_start().trim_start_matches("- ");
        let Some((key, val)) = content.split_once(':') else {
            continue;
        };
        if val.trim().trim_matches(['"', '\'']) == value {
            let column = line.len() - content.len() + 1;
            return Some((n + 1, column, format!("{path}.{}: {rest}", key.trim())));
        }
    }
    None
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
