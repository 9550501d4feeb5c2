//! Scenarios: YAML in, a validated [`RunPlan`] out, before any socket opens. Two stages, as in ripgrep's
//! low/high args: `raw` mirrors the file (unknown fields rejected), `validate` checks rules across fields.
//! Every error names the file, line, column and field.

pub mod checks;
pub mod conformance;
pub mod depth;
pub mod device_trust;
pub mod dtls;
pub mod faults;
pub mod locate;
pub mod plan;
pub mod raw;
pub mod shard;
pub mod size;
pub mod template;
pub mod validate;

pub use plan::{Pacing, Phase, RunPlan, Target};

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Command-line overrides applied to the file before validation, so they are validated too.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Replaces `target`.
    pub target: Option<String>,
    /// Replaces `devices.count` (phase device counts above it are capped to it).
    pub devices: Option<u32>,
    /// Replaces the last phase's duration.
    pub duration: Option<Duration>,
    /// Run only this shard of the scenario (`--shard K/N`).
    pub shard: Option<shard::Shard>,
    /// Begin the load phases at this time (`--start-at`).
    pub start_at: Option<std::time::SystemTime>,
}

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
    /// A command-line flag (`--shard`, `--start-at`) does not fit the scenario or the clock.
    Flag { flag: &'static str, message: String },
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

/// Parses and validates scenario text; `file` is only used to name it in errors.
pub fn parse(
    text: &str,
    file: &Path,
    base: &Path,
    default_name: &str,
    overrides: &Overrides,
) -> Result<RunPlan, ScenarioError> {
    // A UTF-8 byte-order mark (some Windows editors write one) is not part of the YAML.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    depth::check(text).map_err(|d| ScenarioError::Parse {
        file: file.to_path_buf(),
        line: Some(d.line),
        column: Some(d.column),
        message: d.message,
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
        ScenarioError::Parse {
            file: file.to_path_buf(),
            line,
            column,
            message,
        }
    })?;
    apply(&mut raw, overrides);
    let plan = validate::validate(raw, base, default_name).map_err(|inv| {
        let field = locate::render(&inv.path);
        if let Some(flag) = blame_flag(&inv.path, overrides) {
            return ScenarioError::Flag {
                flag,
                message: format!("{field}: {}", inv.message),
            };
        }
        let at = locate::locate(text, &inv.path);
        ScenarioError::Invalid {
            file: file.to_path_buf(),
            line: at.map(|a| a.0),
            column: at.map(|a| a.1),
            field,
            message: inv.message,
        }
    })?;
    flags(plan, text, overrides)
}

/// Applies `--shard` and `--start-at` to a validated plan.
fn flags(mut plan: RunPlan, text: &str, o: &Overrides) -> Result<RunPlan, ScenarioError> {
    if let Some(at) = o.start_at {
        shard::check_start_at(at, std::time::SystemTime::now()).map_err(|message| {
            ScenarioError::Flag {
                flag: "--start-at",
                message,
            }
        })?;
        plan.start_at = Some(at);
    }
    if let Some(s) = o.shard {
        plan = shard::split(plan, s, shard::scenario_hash(text, o)).map_err(|message| {
            ScenarioError::Flag {
                flag: "--shard",
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

/// The command-line flag whose value a broken rule came from, if any: the error names the flag, not a line
/// of the file that the flag overrode.
fn blame_flag(path: &[locate::Step], o: &Overrides) -> Option<&'static str> {
    use locate::Step;
    let first = match path.first() {
        Some(Step::Key(k)) => k.as_str(),
        _ => return None,
    };
    let second = match path.get(1) {
        Some(Step::Key(k)) => Some(k.as_str()),
        _ => None,
    };
    let last = path.last();
    match first {
        "target" if o.target.is_some() => Some("--target"),
        "devices" if o.devices.is_some() && second == Some("count") => Some("--devices"),
        "phases"
            if o.duration.is_some() && matches!(last, Some(Step::Key(k)) if k == "duration") =>
        {
            Some("--duration")
        }
        "phases"
            if o.devices.is_some()
                && matches!(last, Some(Step::Key(k)) if k == "rate" || k == "devices") =>
        {
            Some("--devices")
        }
        _ => None,
    }
}

fn apply(raw: &mut raw::RawScenario, o: &Overrides) {
    if let Some(t) = &o.target {
        raw.target = t.clone();
    }
    if let Some(n) = o.devices {
        raw.devices.count = n;
        for p in &mut raw.phases {
            p.devices = p.devices.map(|d| d.min(n));
        }
    }
    if let (Some(d), Some(last)) = (o.duration, raw.phases.last_mut()) {
        last.duration = d;
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
