//! Ad-hoc mode and `--print-scenario`. `run --target coaps://HOST --ca ca.pem --token T --devices 10 --rate 20
//! --duration 30s` with no scenario file runs [`TELEMETRY`], a built-in telemetry scenario, with the flags
//! applied as overrides; `--print-scenario` prints the effective scenario (a file's or the built-in one, with
//! `-e` variables and overrides applied) as YAML that validates and runs as the same plan. Values that came
//! from the environment (`${ENV:NAME}` in the file, `--token`/`--psk-key` from `COAP_HARNESS_*`) are printed as
//! `${ENV:NAME}` references, not as their secret values.

use super::overrides::{self, Overrides};
use super::raw::{RawScenario, RawToken};
use super::{parse, RunPlan, ScenarioError};
use serde_yaml::{Mapping, Value};
use std::path::Path;

/// What errors and reports call the built-in scenario.
pub const SOURCE: &str = "<built-in telemetry scenario>";

/// The built-in scenario: a fleet posting ThingsBoard telemetry at a steady total rate, each response expected
/// to be 2.01 Created. Its target is the embedded server until `--target` says otherwise.
pub const TELEMETRY: &str = r#"# coap-harness built-in telemetry scenario (ad-hoc mode: `coap-harness run --target ...`)
name: adhoc-telemetry
target: embedded
seed: 1
devices:
  count: 10
  token: "dev-{index:05}"
request:
  method: POST
  path: /api/v1/{token}/telemetry
  type: con
  content_format: json
  payload: '{"temperature":{{random:15.0..30.0}},"humidity":{{random:30..70}},"seq":{{counter}}}'
coap:
  ack_timeout: 2s
  ack_random_factor: 1.5
  max_retransmit: 4
expect: { code: "2.01" }
phases:
  - name: steady
    duration: 30s
    rate: 10/s
drain: 5s
"#;

/// Validates the built-in scenario with the overrides.
pub fn load(o: &Overrides) -> Result<RunPlan, ScenarioError> {
    parse(TELEMETRY, Path::new(SOURCE), Path::new("."), "adhoc", o)
}

/// The effective scenario of `file` (or of the built-in one, `None`) as YAML. Fails as `run` would.
pub fn print(file: Option<&Path>, o: &Overrides) -> Result<String, ScenarioError> {
    let (text, plan) = match file {
        Some(f) => {
            let text = std::fs::read_to_string(f).map_err(|source| ScenarioError::Read {
                file: f.to_path_buf(),
                source,
            })?;
            let plan = super::load(f, o)?;
            (text, plan)
        }
        None => (TELEMETRY.to_string(), load(o)?),
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let invalid = |message: String| ScenarioError::Parse {
        file: file.map_or_else(|| SOURCE.into(), Path::to_path_buf),
        line: None,
        column: None,
        message,
    };
    // `-e` variables in; `${ENV:NAME}` kept as written (secrets stay out of the output).
    let keep_env = |name: &str| Some(format!("${{ENV:{name}}}"));
    let partly = super::vars::substitute(text, &o.vars, &keep_env)
        .map_err(|e| invalid(e.message))?
        .text;
    let full = super::vars::substitute(text, &o.vars, &|n| std::env::var(n).ok())
        .map_err(|e| invalid(e.message))?
        .text;
    let mut raw: RawScenario = serde_yaml::from_str(&full).map_err(|e| invalid(e.to_string()))?;
    overrides::apply(&mut raw, o).map_err(|(flag, message)| ScenarioError::Flag {
        flag: o.name(flag),
        message,
    })?;
    let mut doc: Value = serde_yaml::from_str(&partly).map_err(|e| invalid(e.to_string()))?;
    let top = doc
        .as_mapping_mut()
        .ok_or_else(|| invalid("the scenario is not a mapping".into()))?;
    write_back(top, &raw, o, &plan.name);
    let body = serde_yaml::to_string(&doc).map_err(|e| invalid(e.to_string()))?;
    let from = file.map_or_else(|| SOURCE.to_string(), |f| f.display().to_string());
    Ok(format!(
        "# effective scenario: {from} with the command line's variables and overrides applied\n{body}"
    ))
}

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

fn duration(d: std::time::Duration) -> Value {
    s(humantime::format_duration(d).to_string())
}

fn set_or_remove(m: &mut Mapping, key: &str, v: Option<Value>) {
    match v {
        Some(v) => {
            m.insert(s(key), v);
        }
        None => {
            m.remove(key);
        }
    }
}

fn child<'a>(m: &'a mut Mapping, key: &str) -> &'a mut Mapping {
    if !m.get(key).is_some_and(Value::is_mapping) {
        m.insert(s(key), Value::Mapping(Mapping::new()));
    }
    m.get_mut(key)
        .and_then(Value::as_mapping_mut)
        .expect("inserted above")
}

/// Copies into the document the fields the overrides changed, from the scenario they were applied to.
fn write_back(top: &mut Mapping, raw: &RawScenario, o: &Overrides, name: &str) {
    // A file's default name is its stem: say it, so the printed scenario keeps it under any file name.
    top.insert(s("name"), s(name));
    if o.target.is_some() {
        top.insert(s("target"), s(raw.target.clone()));
    }
    if let Some(seed) = raw.seed.filter(|_| o.seed.is_some()) {
        top.insert(s("seed"), Value::Number(seed.into()));
    }
    let env_ref = |flag: &'static str| {
        o.from_env
            .contains(&flag)
            .then(|| s(format!("${{ENV:{}}}", overrides::env_name(flag))))
    };
    if o.token.is_some() || o.token_file.is_some() || o.devices.is_some() {
        let d = child(top, "devices");
        d.insert(s("count"), Value::Number(raw.devices.count.into()));
        if o.token.is_some() || o.token_file.is_some() {
            let token = raw.devices.token.as_ref().map(|t| match t {
                RawToken::Pattern(p) => s(p.to_string()),
                RawToken::Literal(l) => env_ref("--token").unwrap_or_else(|| s(l.clone())),
            });
            set_or_remove(d, "token", token);
            let file = raw.devices.token_file.as_ref();
            set_or_remove(d, "token_file", file.map(|f| s(f.display().to_string())));
        }
    }
    let dtls_flags = o.ca.is_some()
        || o.insecure
        || o.client_cert.is_some()
        || o.client_key.is_some()
        || o.psk_identity.is_some()
        || o.psk_key.is_some();
    if let (true, Some(rd)) = (dtls_flags, &raw.dtls) {
        let d = child(top, "dtls");
        set_or_remove(d, "ca", rd.ca.clone().map(s));
        set_or_remove(d, "client_cert", rd.client_cert.clone().map(s));
        set_or_remove(d, "client_key", rd.client_key.clone().map(s));
        set_or_remove(d, "psk_identity", rd.psk_identity.clone().map(s));
        let key = rd
            .psk_key
            .clone()
            .map(|k| env_ref("--psk-key").unwrap_or_else(|| s(k)));
        set_or_remove(d, "psk_key", key);
    }
    let phases_changed = o.rate.is_some()
        || o.duration.is_some()
        || o.total_duration.is_some()
        || o.devices.is_some();
    if let (true, Some(list)) = (
        phases_changed,
        top.get_mut("phases").and_then(Value::as_sequence_mut),
    ) {
        for (p, rp) in list.iter_mut().zip(&raw.phases) {
            let Some(p) = p.as_mapping_mut() else {
                continue;
            };
            p.insert(s("duration"), duration(rp.duration));
            set_or_remove(p, "devices", rp.devices.map(|n| Value::Number(n.into())));
            set_or_remove(p, "interval", rp.interval.map(duration));
            set_or_remove(p, "think", rp.think.map(duration));
            set_or_remove(p, "rate", rp.rate.map(|r| s(format!("{r}/s"))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The plan without the field that says where it came from.
    fn shape(p: &RunPlan) -> String {
        let mut p = p.clone();
        p.source = None;
        format!("{p:?}")
    }

    fn reparsed(yaml: &str) -> RunPlan {
        parse(
            yaml,
            Path::new("printed.yaml"),
            Path::new("."),
            "printed",
            &Overrides::default(),
        )
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    #[test]
    fn the_builtin_scenario_validates_and_prints_as_itself() {
        let plan = load(&Overrides::default()).unwrap();
        assert_eq!(plan.name, "adhoc-telemetry");
        assert_eq!(plan.phases.len(), 1);
        assert_eq!(plan.phases[0].pacing, crate::scenario::Pacing::Rate(10.0));
        let yaml = print(None, &Overrides::default()).unwrap();
        assert_eq!(shape(&reparsed(&yaml)), shape(&plan));
    }

    #[test]
    fn printed_overrides_run_as_the_same_plan() {
        let o = Overrides {
            token: Some("A1b2C3".into()),
            devices: Some(1),
            rate: Some(20.0),
            duration: Some(Duration::from_millis(1500)),
            seed: Some(9),
            ..Default::default()
        };
        let plan = load(&o).unwrap();
        assert_eq!(plan.devices.token(0), "A1b2C3");
        assert_eq!(plan.seed, 9);
        assert_eq!(plan.phases[0].duration, Duration::from_millis(1500));
        let yaml = print(None, &o).unwrap();
        assert!(yaml.contains("A1b2C3"), "{yaml}");
        assert_eq!(shape(&reparsed(&yaml)), shape(&plan));

        // A token from COAP_HARNESS_TOKEN is printed as a reference to it, not as its value.
        let from_env = Overrides {
            from_env: vec!["--token"],
            ..o.clone()
        };
        let yaml = print(None, &from_env).unwrap();
        assert!(!yaml.contains("A1b2C3"), "{yaml}");
        assert!(yaml.contains("${ENV:COAP_HARNESS_TOKEN}"), "{yaml}");
    }

    #[test]
    fn a_multi_phase_file_prints_with_its_phases_scaled() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("three.yaml");
        std::fs::write(
            &file,
            "target: embedded\ndevices: { count: 4 }\nphases:\n  - { duration: 2s, ramp: linear, interval: 1s }\n  - { duration: 8s, interval: 1s }\n  - { duration: 2s, ramp: linear, devices: 0, interval: 1s }\n",
        )
        .unwrap();
        let o = Overrides {
            total_duration: Some(Duration::from_secs(3)),
            rate: Some(8.0),
            ..Default::default()
        };
        let plan = super::super::load(&file, &o).unwrap();
        let durations: Vec<_> = plan.phases.iter().map(|p| p.duration.as_millis()).collect();
        assert_eq!(durations, [500, 2000, 500]);
        assert_eq!(plan.phases[1].pacing, crate::scenario::Pacing::Rate(8.0));
        let yaml = print(Some(&file), &o).unwrap();
        let again = reparsed(&yaml);
        assert_eq!(again.name, "three");
        assert_eq!(shape(&again), shape(&plan));
    }
}
