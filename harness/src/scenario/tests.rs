use super::*;
use crate::scenario::plan::CertRef;
use std::time::Duration;

const GOOD: &str = r#"
name: t
target: embedded
devices:
  count: 100
  token: "dev-{index:05}"
request:
  type: non
  payload: '{"n":{{counter}}}'
coap:
  ack_timeout: 500ms
phases:
  - name: ramp
    duration: 2s
    ramp: linear
    interval: 1s
  - name: steady
    duration: 10s
    rate: 200/s
"#;

fn parse_str(text: &str) -> Result<RunPlan, ScenarioError> {
    parse(
        text,
        Path::new("s.yaml"),
        Path::new("."),
        "s",
        &Overrides::default(),
    )
}

#[test]
fn parses_a_good_scenario() {
    let plan = parse_str(GOOD).unwrap();
    assert_eq!(plan.name, "t");
    assert_eq!(plan.devices.count, 100);
    assert_eq!(plan.phases.len(), 2);
    assert_eq!(plan.phases[0].devices_from, 0);
    assert_eq!(plan.phases[1].devices_from, 100);
    assert_eq!(plan.phases[1].start, Duration::from_secs(2));
    assert_eq!(plan.phases[1].interval(), Some(Duration::from_millis(500)));
    assert_eq!(plan.transmission.ack_timeout, Duration::from_millis(500));
    assert_eq!(plan.request.operation, "telemetry");
    assert_eq!(plan.total_duration(), Duration::from_secs(12));
    assert_eq!(
        plan.device_windows(50),
        vec![(Duration::from_secs(1), Duration::from_secs(12))]
    );
}

#[test]
fn overrides_apply_before_validation() {
    let o = Overrides {
        target: Some("coap://127.0.0.1:7000".into()),
        devices: Some(3),
        duration: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let plan = parse(GOOD, Path::new("s.yaml"), Path::new("."), "s", &o).unwrap();
    assert_eq!(plan.devices.count, 3);
    assert_eq!(plan.total_duration(), Duration::from_secs(3));
    assert!(matches!(plan.target, Target::Remote { addr, .. } if addr.port() == 7000));
    let o = Overrides {
        devices: Some(0),
        ..Default::default()
    };
    assert!(parse(GOOD, Path::new("s.yaml"), Path::new("."), "s", &o).is_err());
}

fn err(text: &str) -> String {
    parse_str(text).unwrap_err().to_string()
}

#[test]
fn rejects_unknown_field_with_location() {
    let e = err(&GOOD.replace("  count: 100", "  count: 100\n  cuont: 5"));
    assert!(
        e.starts_with("s.yaml:6:3: devices: unknown field `cuont`"),
        "{e}"
    );
}

#[test]
fn rejects_malformed_yaml_with_location() {
    let e = err("target: embedded\ndevices: [count: 1\n");
    assert!(e.starts_with("s.yaml:"), "{e}");
    assert!(e.chars().filter(|c| *c == ':').count() >= 3, "{e}");
}

#[test]
fn rejects_zero_devices_naming_the_field() {
    let e = err(&GOOD.replace("count: 100", "count: 0"));
    assert_eq!(e, "s.yaml:5:3: devices.count: must be at least 1 (got 0)");
}

#[test]
fn rejects_bad_values_by_field() {
    for (from, to, want) in [
        (
            "duration: 2s",
            "duration: 2 parsecs",
            "s.yaml:14:5: phases[0].duration: `2 parsecs` is not a duration",
        ),
        (
            "rate: 200/s",
            "rate: lots",
            "s.yaml:19:5: phases[1].rate: `lots` is not a rate",
        ),
        (
            "type: non",
            "type: maybe",
            "s.yaml:8:3: request.type: `maybe` is not a request type",
        ),
        (
            "\"dev-{index:05}\"",
            "fixed",
            "s.yaml:6:3: devices.token: token pattern `fixed` has no {index}",
        ),
        (
            "interval: 1s",
            "interval: 1s\n    rate: 5/s",
            "s.yaml:13:3: phases[0]: give only one of",
        ),
        (
            "target: embedded",
            "target: http://x",
            "s.yaml:3:1: target: `http://x`: unknown scheme",
        ),
        (
            "ack_timeout: 500ms",
            "ack_random_factor: 0.5",
            "s.yaml:11:3: coap.ack_random_factor: 0.5 is outside",
        ),
        (
            "{{counter}}",
            "{{nope}}",
            "s.yaml:9:3: request.payload: unknown payload field",
        ),
    ] {
        let e = err(&GOOD.replace(from, to));
        assert!(e.starts_with(want), "for {to}:\n got  {e}\n want {want}");
    }
}

#[test]
fn rejects_missing_pacing_and_excess_devices() {
    let e = err(&GOOD.replace("    interval: 1s\n", ""));
    assert!(e.contains("phases[0]: needs one of"), "{e}");
    let e = err(&GOOD.replace("ramp: linear", "devices: 101"));
    assert!(
        e.contains("phases[0].devices: 101 is more than devices.count (100)"),
        "{e}"
    );
}

#[test]
fn token_file_is_read_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens.txt"), "# ours\na\nb\n\nc\n").unwrap();
    let text = GOOD
        .replace("count: 100", "count: 3")
        .replace("token: \"dev-{index:05}\"", "token_file: tokens.txt");
    let plan = parse(
        &text,
        Path::new("s.yaml"),
        dir.path(),
        "s",
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(plan.devices.tokens.token(2), "c");
    let e = parse(
        &text.replace("count: 3", "count: 4"),
        Path::new("s.yaml"),
        dir.path(),
        "s",
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("holds 3 tokens but devices.count is 4"), "{e}");
    let e = parse(
        &text.replace("tokens.txt", "missing.txt"),
        Path::new("s.yaml"),
        dir.path(),
        "s",
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("devices.token_file: cannot read") && e.contains("missing.txt"),
        "{e}"
    );
}

#[test]
fn connect_rate_delays_each_device_to_its_turn() {
    // 100 devices at 25/s: device 50 may connect at 2 s, after the linear ramp (1 s) would start it.
    let text = GOOD.replace(
        "  token: \"dev-{index:05}\"\n",
        "  token: \"dev-{index:05}\"\n  connect_rate: 25/s\n",
    );
    let plan = parse_str(&text).unwrap();
    assert_eq!(plan.connect_turn(50), Duration::from_secs(2));
    assert_eq!(
        plan.device_windows(50),
        vec![(Duration::from_secs(2), Duration::from_secs(12))]
    );
    // Device 10's turn (0.4 s) comes before the ramp reaches it (0.2 s): the later of the two.
    assert_eq!(
        plan.device_windows(10),
        vec![(Duration::from_millis(400), Duration::from_secs(12))]
    );
    // The pacer, and so the planned request count, follow the delayed window.
    assert_eq!(
        plan.device_windows(99)[0].0,
        Duration::from_secs_f64(99.0 / 25.0)
    );
}

#[test]
fn connect_rate_too_slow_for_the_phases_is_refused() {
    let text = GOOD.replace(
        "  token: \"dev-{index:05}\"\n",
        "  token: \"dev-{index:05}\"\n  connect_rate: 5/s\n",
    );
    let err = parse_str(&text).unwrap_err().to_string();
    assert!(err.contains("devices.connect_rate"), "{err}");
    assert!(err.contains("after the phases end"), "{err}");
    let err = parse_str(&GOOD.replace(
        "  token: \"dev-{index:05}\"\n",
        "  token: \"dev-{index:05}\"\n  connect_rate: 0/s\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("connect_rate") && err.contains("positive"),
        "{err}"
    );
}

const X509: &str = r#"
target: embedded
pki: generate
devices:
  count: 2
dtls:
  ca: pki:ca
  client_cert: "{pki}/devices/device-{index}.pem"
embedded:
  server:
    client_auth: thingsboard
    device_certs: "{pki}/devices"
trust_cases:
  - name: registered
    client: { client_cert: "{pki}/devices/device-0.pem" }
    path: /api/v1/telemetry
    expect: { handshake: ok, code: "2.01" }
  - name: expired
    client: { client_cert: "{pki}/devices/device-expired.pem" }
    expect: { handshake: fail, alert: bad_certificate }
"#;

#[test]
fn x509_devices_per_device_certificates_case_paths_and_alerts() {
    let plan = parse_str(X509).unwrap();
    let (cert, key) = plan
        .dtls
        .as_ref()
        .unwrap()
        .client
        .client_cert
        .clone()
        .unwrap();
    assert_eq!(
        cert.for_device(7),
        CertRef::PkiFile("devices/device-7.pem".into())
    );
    assert_eq!(
        key.for_device(7),
        CertRef::PkiFile("devices/device-7.key".into())
    );
    let server = &plan.dtls.as_ref().unwrap().server;
    assert_eq!(
        server.device_certs,
        Some(CertRef::PkiFile("devices".into()))
    );
    let case = &plan.trust_cases[0];
    assert_eq!(
        case.path,
        Some(vec![
            Some("api".to_string()),
            Some("v1".to_string()),
            Some("telemetry".to_string())
        ])
    );
    assert_eq!(plan.trust_cases[1].path, None);
    assert_eq!(
        plan.trust_cases[1].expect.alert.as_deref(),
        Some("bad_certificate")
    );
    // Inherited by the cases; a case that leaves thingsboard mode leaves the registered devices behind.
    assert_eq!(case.server.device_certs, server.device_certs);
}

#[test]
fn rejects_bad_x509_values_with_their_location() {
    for (from, to, want) in [
        (
            "    path: /api/v1/telemetry",
            "    path: api/v1/telemetry",
            "s.yaml:16:5: trust_cases[0].path: `api/v1/telemetry` must start with /",
        ),
        (
            "    path: /api/v1/telemetry",
            "    path: /api/v1/{device}/telemetry",
            "s.yaml:16:5: trust_cases[0].path: segment `{device}`: only a whole `{token}` segment is replaced",
        ),
        (
            "{pki}/devices/device-0.pem\" }",
            "{pki}/devices/device-{index}.pem\" }",
            "s.yaml:15:5: trust_cases[0].client.client_cert: `{pki}/devices/device-{index}.pem`: {index} stands for the device",
        ),
        (
            "expect: { handshake: fail, alert: bad_certificate }",
            "expect: { handshake: ok, alert: bad_certificate }",
            "s.yaml:20:5: trust_cases[1].expect.alert: an alert ends a refused handshake",
        ),
        (
            "expect: { handshake: fail, alert: bad_certificate }",
            "expect: { handshake: fail, alert: Bad-Cert }",
            "s.yaml:20:5: trust_cases[1].expect.alert: `Bad-Cert`: expected a TLS alert name",
        ),
        (
            "    client_auth: thingsboard",
            "    client_auth: want",
            "s.yaml:12:5: embedded.server.device_certs: registered device certificates need `client_auth: thingsboard`",
        ),
        (
            "    device_certs: \"{pki}/devices\"",
            "    device_certs: \"{pki}/../devices\"",
            "s.yaml:12:5: embedded.server.device_certs: `{pki}/../devices`: a path inside the PKI folder cannot leave it",
        ),
        (
            "client_cert: \"{pki}/devices/device-{index}.pem\"",
            "client_cert: \"{pki}/devices/device-{index}.pem\"\n  client_key: \"{pki}/devices/device-0.key\"",
            "s.yaml:9:3: dtls.client_key: each device has its own certificate ({index}), so its key path needs {index} too",
        ),
        (
            "pki: generate\n",
            "",
            "s.yaml: pki: pki:ca is used, so the scenario needs",
        ),
        (
            "pki: generate\n",
            "pki: generate\nrequest: { path: /api/v1/telemetry }\n",
            "",
        ),
    ] {
        assert!(X509.contains(from), "{from}");
        if want.is_empty() {
            assert!(parse_str(&X509.replace(from, to)).is_ok());
            continue;
        }
        let e = err(&X509.replace(from, to));
        assert!(e.starts_with(want), "{to}:\n  got  {e}\n  want {want}");
    }
}

#[test]
fn rehandshake_every_takes_requests_or_a_duration() {
    use super::dtls::{parse_churn, Churn};
    assert_eq!(parse_churn("100"), Ok(Churn::Requests(100)));
    assert_eq!(parse_churn("1 request"), Ok(Churn::Requests(1)));
    assert_eq!(parse_churn(" 25 requests "), Ok(Churn::Requests(25)));
    assert_eq!(
        parse_churn("30s"),
        Ok(Churn::After(Duration::from_secs(30)))
    );
    assert!(parse_churn("0").unwrap_err().contains("at least 1"));
    assert!(parse_churn("0s").unwrap_err().contains("more than 0"));
    assert!(parse_churn("often").unwrap_err().contains("neither"));
    let dtls = |line: &str| {
        GOOD.replace(
            "coap:\n",
            &format!("pki: generate\ndtls:\n  ca: pki:ca\n  {line}\ncoap:\n"),
        )
    };
    let churn = |text: &str| {
        parse_str(text)
            .unwrap()
            .dtls
            .unwrap()
            .client
            .rehandshake_every
    };
    assert_eq!(
        churn(&dtls("rehandshake_every: 10")),
        Some(Churn::Requests(10))
    );
    assert_eq!(
        churn(&dtls("rehandshake_every: 2m")),
        Some(Churn::After(Duration::from_secs(120)))
    );
    assert_eq!(churn(&dtls("handshake_timeout: 5s")), None);
    let err = parse_str(&dtls("rehandshake_every: 0 requests"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dtls.rehandshake_every") || err.contains("rehandshake_every"),
        "{err}"
    );
    // A trust case cannot churn: it opens one session.
    let text = dtls("handshake_timeout: 5s")
        + "trust_cases:\n  - name: c\n    client: { rehandshake_every: 5 }\n    expect: { handshake: ok }\n";
    let err = parse_str(&text).unwrap_err().to_string();
    assert!(err.contains("load devices only"), "{err}");
}

#[test]
fn resume_is_all_none_or_a_share_of_the_devices() {
    use super::dtls::Resume;
    assert_eq!(Resume::parse("all"), Ok(Resume::All));
    assert_eq!(Resume::parse(" None "), Ok(Resume::None));
    assert_eq!(Resume::parse("25%"), Ok(Resume::Percent(25)));
    assert_eq!(Resume::parse("100 %"), Ok(Resume::Percent(100)));
    for bad in ["101%", "-1%", "half", "50", ""] {
        assert!(Resume::parse(bad).is_err(), "{bad}");
    }
    let picked = |r: Resume| (0..100).filter(|i| r.device_resumes(*i)).count();
    assert_eq!(picked(Resume::All), 100);
    assert_eq!(picked(Resume::None), 0);
    assert_eq!(picked(Resume::Percent(0)), 0);
    assert_eq!(picked(Resume::Percent(30)), 30);
    // Spread out: 50% is every other device, not the first half.
    assert!(!Resume::Percent(50).device_resumes(0) && Resume::Percent(50).device_resumes(1));
    assert!(!Resume::Percent(50).device_resumes(2) && Resume::Percent(50).device_resumes(3));

    let dtls = |line: &str| {
        GOOD.replace(
            "coap:\n",
            &format!("pki: generate\ndtls:\n  ca: pki:ca\n  {line}\ncoap:\n"),
        )
    };
    let resume = |text: &str| parse_str(text).unwrap().dtls.unwrap().client.resume;
    assert_eq!(resume(&dtls("resume: all")), Resume::All);
    assert_eq!(resume(&dtls("resume: 10%")), Resume::Percent(10));
    assert_eq!(resume(&dtls("handshake_timeout: 5s")), Resume::None);
    // A bad value names the field and where it is.
    let err = parse_str(&dtls("resume: sometimes"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dtls.resume") && err.contains("sometimes"),
        "{err}"
    );
    // file:line:column of the value.
    let at: Vec<&str> = err.splitn(4, ':').collect();
    assert!(
        at[1].parse::<u32>().is_ok() && at[2].parse::<u32>().is_ok(),
        "{err}"
    );
    let text = dtls("handshake_timeout: 5s")
        + "trust_cases:\n  - name: c\n    client: { resume: all }\n    expect: { handshake: ok }\n";
    let err = parse_str(&text).unwrap_err().to_string();
    assert!(err.contains("load devices only"), "{err}");
}

#[test]
fn connection_id_is_a_length_on_devices_and_on_the_embedded_server() {
    let with = |client: &str, server: &str| {
        GOOD.replace(
            "coap:\n",
            &format!(
                "pki: generate\nembedded:\n  server:\n    {server}\ndtls:\n  ca: pki:ca\n  {client}\ncoap:\n"
            ),
        )
    };
    let plan = parse_str(&with(
        "connection_id: { length: 8 }",
        "connection_id: { length: 4 }",
    ))
    .unwrap();
    let d = plan.dtls.unwrap();
    assert_eq!(
        (d.client.connection_id, d.server.connection_id),
        (Some(8), Some(4))
    );
    // 0 on a device: "send me none, I send yours"; off by default.
    let plan = parse_str(&with("connection_id: { length: 0 }", "client_auth: none")).unwrap();
    let d = plan.dtls.unwrap();
    assert_eq!(
        (d.client.connection_id, d.server.connection_id),
        (Some(0), None)
    );
    // Refused with the file, line and column of the bad value.
    let e = err(&with("connection_id: { length: 256 }", "client_auth: none"));
    assert!(
        e.starts_with("s.yaml:")
            && e.contains("dtls.connection_id.length: 256: a connection ID is 0 to 255 bytes"),
        "{e}"
    );
    let e = err(&with(
        "handshake_timeout: 5s",
        "connection_id: { length: 0 }",
    ));
    assert!(
        e.contains("embedded.server.connection_id.length: 0: a connection ID is 1 to 255 bytes"),
        "{e}"
    );
    let e = err(&with("connection_id: { lenght: 8 }", "client_auth: none"));
    assert!(e.contains("unknown field `lenght`"), "{e}");
}

#[test]
fn embedded_restart_is_a_time_and_a_downtime() {
    let with = |lines: &str| GOOD.replace("devices:\n", &format!("embedded:\n{lines}devices:\n"));
    let restart = |text: &str| match parse_str(text).unwrap().target {
        Target::Embedded { restart, .. } => restart,
        other => panic!("{other:?}"),
    };
    assert_eq!(restart(GOOD), None);
    assert_eq!(
        restart(&with("  restart_at: 5s\n")),
        Some((Duration::from_secs(5), Duration::ZERO))
    );
    assert_eq!(
        restart(&with("  restart_at: 5s\n  restart_down: 1500ms\n")),
        Some((Duration::from_secs(5), Duration::from_millis(1500)))
    );
    let err = parse_str(&with("  restart_down: 1s\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("restart_down needs embedded.restart_at"),
        "{err}"
    );
}
