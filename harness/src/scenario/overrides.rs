//! Command-line overrides (`run --target --ca --token --rate ...`, each also read from its `COAP_HARNESS_*`
//! environment variable): applied to the raw scenario before validation, so an overridden value passes the
//! same checks as one written in the file, and an error it causes names the flag (or the environment variable)
//! instead of a line of the file.
//!
//! What each changes:
//! - `--target`, `--seed`: the scenario's `target` and `seed`.
//! - `--ca FILE` / `--insecure` (`ca: none`), `--client-cert/--client-key`, `--psk-identity/--psk-key`: the
//!   `dtls:` section's fields, creating the section when the target is `coaps://` and the scenario has none.
//!   PSK flags without `--ca` drop the scenario's CA (a PSK session has no certificate to verify).
//! - `--token` (a pattern with `{index}`, or one literal token for one device) and `--token-file` replace
//!   `devices.token` / `devices.token_file`, whichever the scenario used. With a `coaps://` `--target` and no
//!   `dtls:` section, `--token-file` alone may say how devices authenticate (a CSV file's per-device PSKs).
//! - `--devices N`: `devices.count`; phase device counts above N are lowered to N.
//! - `--rate R` and `--duration D`: the steady phase's pacing (`rate: R`, the total requests per second across
//!   its devices) and duration. The steady phase is the longest phase that does not ramp (the first of equal
//!   ones), or the longest phase when every phase ramps ([`steady_phase`]); other phases keep theirs.
//! - `--total-duration T`: every phase's duration scaled by the same factor so that they add up to T.

use super::locate::Step;
use super::raw::{Ramp, RawPhase, RawScenario, RawToken};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Command-line overrides applied to the file before validation, so they are validated too.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Replaces `target`.
    pub target: Option<String>,
    /// Replaces `dtls.ca` (a file, or `pki:ROLE`).
    pub ca: Option<PathBuf>,
    /// `dtls.ca: none`: the server is not verified (the run is flagged insecure).
    pub insecure: bool,
    /// Replaces `dtls.client_cert` (and with `client_key`, its key).
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Replace `dtls.psk_identity` and `dtls.psk_key` (text, or `hex:...`).
    pub psk_identity: Option<String>,
    pub psk_key: Option<String>,
    /// Replaces `devices.token` (and drops `token_file`): a pattern, or one literal token.
    pub token: Option<String>,
    /// Replaces `devices.token_file` (and drops `token`).
    pub token_file: Option<PathBuf>,
    /// The steady phase's total requests per second.
    pub rate: Option<f64>,
    /// Replaces `devices.count` (phase device counts above it are capped to it).
    pub devices: Option<u32>,
    /// Replaces the steady phase's duration.
    pub duration: Option<Duration>,
    /// Scales every phase so that they last this long together.
    pub total_duration: Option<Duration>,
    /// Replaces `seed`.
    pub seed: Option<u64>,
    /// `-e KEY=VALUE`: substituted for `${KEY}` in the scenario's text.
    pub vars: Vec<(String, String)>,
    /// Run only this shard of the scenario (`--shard K/N`).
    pub shard: Option<super::shard::Shard>,
    /// Begin the load phases at this time (`--start-at`).
    pub start_at: Option<std::time::SystemTime>,
    /// The flags (`--rate`) whose value was read from their environment variable (`COAP_HARNESS_RATE`).
    pub from_env: Vec<&'static str>,
}

/// The environment variable a flag can also be given by: `--psk-key` is `COAP_HARNESS_PSK_KEY`.
pub fn env_name(flag: &str) -> String {
    format!(
        "COAP_HARNESS_{}",
        flag.trim_start_matches('-')
            .replace('-', "_")
            .to_uppercase()
    )
}

impl Overrides {
    /// How errors name a flag's value: the flag, or the environment variable it came from.
    pub fn name(&self, flag: &'static str) -> String {
        if self.from_env.contains(&flag) {
            env_name(flag)
        } else {
            flag.to_string()
        }
    }

    fn dtls_flag(&self) -> Option<&'static str> {
        [
            (self.ca.is_some(), "--ca"),
            (self.insecure, "--insecure"),
            (self.client_cert.is_some(), "--client-cert"),
            (self.client_key.is_some(), "--client-key"),
            (self.psk_identity.is_some(), "--psk-identity"),
            (self.psk_key.is_some(), "--psk-key"),
        ]
        .into_iter()
        .find_map(|(set, flag)| set.then_some(flag))
    }

    /// What the overrides change, for the shard fingerprint (`--shard` runs must agree on it). The PSK key is
    /// left out: a secret has no place in a hash that goes into reports.
    pub fn fingerprint(&self) -> String {
        let mut out = String::new();
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push_str(&format!("\n--{k}={v}"));
            }
        };
        add("target", self.target.clone());
        add("ca", self.ca.as_ref().map(|p| p.display().to_string()));
        add("insecure", self.insecure.then(String::new));
        add(
            "client-cert",
            self.client_cert.as_ref().map(|p| p.display().to_string()),
        );
        add(
            "client-key",
            self.client_key.as_ref().map(|p| p.display().to_string()),
        );
        add("psk-identity", self.psk_identity.clone());
        add("token", self.token.clone());
        add(
            "token-file",
            self.token_file.as_ref().map(|p| p.display().to_string()),
        );
        add("rate", self.rate.map(|r| r.to_string()));
        add("devices", self.devices.map(|d| d.to_string()));
        add(
            "duration",
            self.duration.map(|d| format!("{}ms", d.as_millis())),
        );
        add(
            "total-duration",
            self.total_duration.map(|d| format!("{}ms", d.as_millis())),
        );
        add("seed", self.seed.map(|s| s.to_string()));
        for (k, v) in &self.vars {
            add("e", Some(format!("{k}={v}")));
        }
        out
    }
}

/// The phase `--rate` and `--duration` change: the longest phase that does not ramp (the first of equal
/// ones), or the longest phase when every phase ramps; `None` without phases.
pub fn steady_phase(phases: &[RawPhase]) -> Option<usize> {
    let longest = |instant_only: bool| {
        phases
            .iter()
            .enumerate()
            .filter(|(_, p)| !instant_only || p.ramp == Ramp::Instant)
            .fold(None::<(usize, Duration)>, |best, (i, p)| match best {
                Some((_, d)) if d >= p.duration => best,
                _ => Some((i, p.duration)),
            })
            .map(|(i, _)| i)
    };
    longest(true).or_else(|| longest(false))
}

/// A path on the command line is relative to the working folder (a scenario's paths are relative to its file).
fn from_cwd(p: &Path) -> String {
    if p.to_string_lossy().starts_with("pki:") {
        return p.display().to_string();
    }
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// Applies the overrides to the scenario as parsed. An override that cannot apply at all is an error naming
/// its flag; everything else is left to `validate`, whose errors [`blame`] attributes.
pub(super) fn apply(raw: &mut RawScenario, o: &Overrides) -> Result<(), (&'static str, String)> {
    if let Some(t) = &o.target {
        raw.target = t.clone();
    }
    if let Some(s) = o.seed {
        raw.seed = Some(s);
    }
    if let Some(t) = &o.token {
        raw.devices.token = Some(RawToken::parse(t).map_err(|e| ("--token", e.to_string()))?);
        raw.devices.token_file = None;
    }
    if let Some(f) = &o.token_file {
        raw.devices.token_file = Some(PathBuf::from(from_cwd(f)));
        raw.devices.token = None;
    }
    if let Some(n) = o.devices {
        raw.devices.count = n;
        for p in &mut raw.phases {
            p.devices = p.devices.map(|d| d.min(n));
        }
    }
    dtls(raw, o)?;
    let steady = steady_phase(&raw.phases);
    for (set, flag) in [
        (o.rate.is_some(), "--rate"),
        (o.duration.is_some(), "--duration"),
        (o.total_duration.is_some(), "--total-duration"),
    ] {
        if set && steady.is_none() {
            return Err((
                flag,
                "the scenario has no load phases (only trust or conformance cases)".into(),
            ));
        }
    }
    if let Some(i) = steady {
        let p = &mut raw.phases[i];
        if let Some(r) = o.rate {
            p.rate = Some(r);
            p.interval = None;
            p.think = None;
        }
        if let Some(d) = o.duration {
            p.duration = d;
        }
    }
    if let Some(total) = o.total_duration {
        scale(&mut raw.phases, total);
    }
    Ok(())
}

/// Scales the phases' durations so that they add up to `total` exactly (the last takes the rounding).
fn scale(phases: &mut [RawPhase], total: Duration) {
    let sum: Duration = phases.iter().map(|p| p.duration).sum();
    if sum.is_zero() {
        return;
    }
    let factor = total.as_secs_f64() / sum.as_secs_f64();
    let mut used = Duration::ZERO;
    let last = phases.len() - 1;
    for (i, p) in phases.iter_mut().enumerate() {
        p.duration = if i == last {
            total.saturating_sub(used)
        } else {
            // Whole milliseconds, so the printed scenario says what runs.
            Duration::from_millis((p.duration.as_secs_f64() * factor * 1000.0).round() as u64)
        };
        used += p.duration;
    }
}

fn dtls(raw: &mut RawScenario, o: &Overrides) -> Result<(), (&'static str, String)> {
    let coaps = raw.target.starts_with("coaps://");
    let Some(flag) = o.dtls_flag() else {
        if coaps && raw.dtls.is_none() && o.target.is_some() && o.token_file.is_some() {
            // The token file may give every device its own PSK; `validate` says what is missing if not.
            raw.dtls = Some(Default::default());
        } else if coaps && raw.dtls.is_none() && o.target.is_some() {
            return Err((
                "--target",
                format!(
                    "`{}` is CoAP over DTLS: say how to trust the server with --ca FILE (the CA that signed its \
                     certificate), --psk-identity and --psk-key, or --insecure (no verification; the report says so)",
                    raw.target
                ),
            ));
        }
        return Ok(());
    };
    if raw.dtls.is_none() {
        if !coaps {
            return Err((
                flag,
                format!(
                    "the target `{}` is not CoAP over DTLS: DTLS settings need a coaps:// target (or a scenario \
                     with a dtls: section)",
                    raw.target
                ),
            ));
        }
        raw.dtls = Some(Default::default());
    }
    let d = raw.dtls.as_mut().expect("set above");
    let psk = o.psk_identity.is_some() || o.psk_key.is_some();
    if psk && o.ca.is_none() && !o.insecure {
        d.ca = None;
    }
    if let Some(ca) = &o.ca {
        d.ca = Some(from_cwd(ca));
    }
    if o.insecure {
        d.ca = Some("none".into());
    }
    if let Some(c) = &o.client_cert {
        d.client_cert = Some(from_cwd(c));
        d.client_key = None;
    }
    if let Some(k) = &o.client_key {
        d.client_key = Some(from_cwd(k));
    }
    if let Some(id) = &o.psk_identity {
        d.psk_identity = Some(id.clone());
    }
    if let Some(k) = &o.psk_key {
        d.psk_key = Some(k.clone());
    }
    Ok(())
}

/// The flag whose value broke the rule at `path`, if a flag set it: the error names the flag, not a line of
/// the file that the flag overrode.
pub(super) fn blame(path: &[Step], steady: Option<usize>, o: &Overrides) -> Option<&'static str> {
    let key = |i: usize| match path.get(i) {
        Some(Step::Key(k)) => Some(k.as_str()),
        _ => None,
    };
    let index = match path.get(1) {
        Some(Step::Index(i)) => Some(*i),
        _ => None,
    };
    let last = match path.last() {
        Some(Step::Key(k)) => Some(k.as_str()),
        _ => None,
    };
    let first_set = |flags: &[(bool, &'static str)]| flags.iter().find(|f| f.0).map(|f| f.1);
    match (key(0)?, key(1)) {
        ("target", _) => first_set(&[(o.target.is_some(), "--target")]),
        ("seed", _) => first_set(&[(o.seed.is_some(), "--seed")]),
        ("devices", Some("count")) => first_set(&[(o.devices.is_some(), "--devices")]),
        ("devices", Some("token")) => first_set(&[
            (o.token.is_some(), "--token"),
            (o.devices.is_some(), "--devices"),
        ]),
        ("devices", Some("token_file")) => first_set(&[
            (o.token_file.is_some(), "--token-file"),
            (o.devices.is_some(), "--devices"),
        ]),
        ("devices", Some("connect_rate")) => first_set(&[
            (o.total_duration.is_some(), "--total-duration"),
            (o.duration.is_some(), "--duration"),
            (o.devices.is_some(), "--devices"),
        ]),
        ("dtls", Some("ca")) => first_set(&[
            (o.ca.is_some(), "--ca"),
            (o.insecure, "--insecure"),
            (o.psk_identity.is_some(), "--psk-identity"),
            (o.token_file.is_some(), "--token-file"),
            (o.target.is_some(), "--target"),
        ]),
        ("dtls", Some("client_cert")) => first_set(&[(o.client_cert.is_some(), "--client-cert")]),
        ("dtls", Some("client_key")) => first_set(&[
            (o.client_key.is_some(), "--client-key"),
            (o.client_cert.is_some(), "--client-cert"),
        ]),
        ("dtls", Some("psk_identity" | "psk_key")) => first_set(&[
            (
                o.psk_identity.is_some() && key(1) == Some("psk_identity"),
                "--psk-identity",
            ),
            (
                o.psk_key.is_some() && key(1) == Some("psk_key"),
                "--psk-key",
            ),
            (o.psk_identity.is_some(), "--psk-identity"),
            (o.psk_key.is_some(), "--psk-key"),
        ]),
        ("phases", _) => {
            let steady_here = index.is_some() && index == steady;
            match last {
                Some("duration") => first_set(&[
                    (o.total_duration.is_some(), "--total-duration"),
                    (o.duration.is_some() && steady_here, "--duration"),
                ]),
                Some("rate") => first_set(&[
                    (o.rate.is_some() && steady_here, "--rate"),
                    (o.devices.is_some(), "--devices"),
                ]),
                Some("devices") => first_set(&[(o.devices.is_some(), "--devices")]),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(secs: u64, ramp: Ramp) -> RawPhase {
        RawPhase {
            name: None,
            duration: Duration::from_secs(secs),
            devices: None,
            ramp,
            interval: Some(Duration::from_secs(1)),
            rate: None,
            think: None,
            thresholds: Vec::new(),
        }
    }

    #[test]
    fn the_steady_phase_is_the_longest_that_does_not_ramp() {
        use Ramp::{Instant, Linear};
        assert_eq!(steady_phase(&[]), None);
        let ramp_steady_down = [phase(30, Linear), phase(120, Instant), phase(10, Linear)];
        assert_eq!(steady_phase(&ramp_steady_down), Some(1));
        let ties = [phase(10, Instant), phase(60, Linear), phase(10, Instant)];
        assert_eq!(steady_phase(&ties), Some(0));
        let all_ramps = [phase(10, Linear), phase(20, Linear)];
        assert_eq!(steady_phase(&all_ramps), Some(1));
    }

    #[test]
    fn total_duration_scales_every_phase_to_the_exact_total() {
        let mut phases = [
            phase(30, Ramp::Linear),
            phase(120, Ramp::Instant),
            phase(10, Ramp::Linear),
        ];
        scale(&mut phases, Duration::from_secs(16));
        let got: Vec<_> = phases.iter().map(|p| p.duration.as_millis()).collect();
        assert_eq!(got, [3000, 12000, 1000]);
        scale(&mut phases, Duration::from_millis(1000));
        let sum: Duration = phases.iter().map(|p| p.duration).sum();
        assert_eq!(sum, Duration::from_millis(1000));
    }

    #[test]
    fn env_names_follow_the_flags() {
        assert_eq!(env_name("--psk-key"), "COAP_HARNESS_PSK_KEY");
        assert_eq!(env_name("--target"), "COAP_HARNESS_TARGET");
        let o = Overrides {
            from_env: vec!["--rate"],
            ..Default::default()
        };
        assert_eq!(o.name("--rate"), "COAP_HARNESS_RATE");
        assert_eq!(o.name("--devices"), "--devices");
    }
}
