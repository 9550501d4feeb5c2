//! Sharded runs and their merge, end to end: four shard processes (the binary, started together with
//! --start-at) and one whole run of the same scenario against one embedded server; the merge adds up to the
//! shards exactly, judges thresholds on the sum, and refuses reports that do not belong together.

use crate::common;

use coap_harness::report::Report;
use coap_harness::scenario::shard::Shard;
use coap_harness::scenario::{self, Overrides};
use coap_harness::server::{self, ServerConfig, TokenPolicy};
use coap_harness::token::TokenPattern;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

const DEVICES: u32 = 40;
const SHARDS: u32 = 4;

/// Ramp then steady: a linear ramp and a total rate, both split by the shards. The thresholds hold for the
/// whole (about 160/s over the run, 200/s steady) and fail for any one shard (a quarter of that).
fn scenario(port: u16) -> String {
    format!(
        r#"name: sharded
target: coap://127.0.0.1:{port}
seed: 42
devices:
  count: {DEVICES}
expect:
  code: "2.01"
drain: 500ms
phases:
  - name: ramp
    duration: 1s
    ramp: linear
    interval: 200ms
  - name: steady
    duration: 1500ms
    rate: 200/s
    thresholds: ["throughput >= 150/s"]
thresholds:
  - "throughput >= 120/s"
  - "throughput < 100/s"
"#
    )
}

fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coap-harness"))
        .args(args)
        .output()
        .expect("run coap-harness")
}

fn read(dir: &Path) -> Report {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report.json written");
    serde_json::from_str(&text).expect("a report")
}

fn check<'a>(r: &'a Report, name: &str) -> &'a coap_harness::report::Check {
    r.checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {:#?}", r.checks))
}

/// Shard and merged reports keep to the checked-in schema.
fn assert_valid(file: &Path) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let instance: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
}

fn one_line_error(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "exit 2: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

#[test]
fn shard_plans_partition_the_devices_and_the_rate() {
    let text = scenario(5683);
    let parse = |text: &str, shard| {
        scenario::parse(
            text,
            Path::new("s.yaml"),
            Path::new("."),
            "s",
            &Overrides {
                shard,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let text = text.replace("  count: 40\n", "  count: 40\n  connect_rate: 100/s\n");
    let whole = parse(&text, None);
    let mut tokens = Vec::new();
    let mut rate = 0.0;
    let mut connect_rate = 0.0;
    let mut seeds = BTreeSet::new();
    for index in 0..SHARDS {
        let p = parse(
            &text,
            Some(Shard {
                index,
                count: SHARDS,
            }),
        );
        tokens.extend((0..p.devices.count).map(|j| p.devices.token(j)));
        let scenario::Pacing::Rate(r) = p.phases[1].pacing else {
            panic!("rate stays a rate")
        };
        rate += r;
        connect_rate += p.devices.connect_rate.unwrap();
        assert_eq!(p.phases[1].interval(), whole.phases[1].interval());
        assert_eq!(p.total_duration(), whole.total_duration());
        seeds.insert(p.seed);
        let s = p.shard.as_ref().unwrap();
        assert_eq!(s.scenario_seed, 42);
        let again = parse(
            &text,
            Some(Shard {
                index,
                count: SHARDS,
            }),
        );
        assert_eq!(again.shard.unwrap().scenario_sha256, s.scenario_sha256);
        let other = parse(
            &text.replace("seed: 42", "seed: 43"),
            Some(Shard {
                index,
                count: SHARDS,
            }),
        );
        assert_ne!(other.shard.unwrap().scenario_sha256, s.scenario_sha256);
    }
    let all: Vec<String> = (0..DEVICES).map(|j| whole.devices.token(j)).collect();
    let set: BTreeSet<&String> = tokens.iter().collect();
    assert_eq!(tokens.len(), all.len(), "no device in two shards");
    assert_eq!(set, all.iter().collect(), "every device in a shard");
    assert!(
        (rate - 200.0).abs() < 1e-9,
        "rates add up to the total: {rate}"
    );
    assert_eq!(seeds.len(), SHARDS as usize, "a seed per shard");
    assert!((connect_rate - 100.0).abs() < 1e-9, "{connect_rate}");
}

#[test]
fn shards_merge_into_the_whole_and_are_judged_on_the_sum() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt
        .block_on(server::start(ServerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            tokens: TokenPolicy::Pattern {
                pattern: TokenPattern::parse("dev-{index:05}").unwrap(),
                count: u64::from(DEVICES),
            },
            response_delay: None,
            plain: true,
            dtls: None,
        }))
        .expect("server starts");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sharded.yaml");
    std::fs::write(&file, scenario(srv.local_addr().port())).unwrap();
    let file = file.to_str().unwrap().to_string();

    // All shards begin together, as the Kubernetes Job's pods do.
    let start =
        humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(2)).to_string();
    let shard_dir = |k: u32| dir.path().join("results").join(format!("shard-{k}"));
    let children: Vec<_> = (0..SHARDS)
        .map(|k| {
            Command::new(env!("CARGO_BIN_EXE_coap-harness"))
                .args(["run", &file, "--quiet", "--start-at", &start])
                .arg(format!("--shard={k}/{SHARDS}"))
                .arg("--out")
                .arg(shard_dir(k))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a shard")
        })
        .collect();
    for (k, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        // A shard's verdict belongs to the merge: it exits 0 once it has measured.
        assert_eq!(
            o.status.code(),
            Some(0),
            "shard {k}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let shards: Vec<Report> = (0..SHARDS).map(|k| read(&shard_dir(k))).collect();

    // The server saw exactly the scenario's devices, each from one shard.
    let seen: BTreeSet<String> = srv.devices().into_iter().map(|d| d.token).collect();
    let want: BTreeSet<String> = (0..DEVICES).map(|i| format!("dev-{i:05}")).collect();
    assert_eq!(seen, want);
    let server_messages: u64 = srv.devices().iter().map(|d| d.messages).sum();

    for (k, s) in shards.iter().enumerate() {
        let info = s.shard.as_ref().expect("a shard report says which shard");
        assert_eq!((info.index, info.count), (k as u32, SHARDS));
        assert_eq!(info.scenario_devices, DEVICES);
        assert_eq!(s.devices.count, DEVICES / SHARDS);
        assert!(
            !s.checks.iter().any(|c| c.name.starts_with("threshold")),
            "shards leave thresholds to the merge"
        );
        assert_eq!(info.checks.thresholds.len(), 2);
        assert!(s.load_started_at_ms.is_some());
    }
    let starts: Vec<u64> = shards.iter().filter_map(|s| s.load_started_at_ms).collect();
    let spread = starts.iter().max().unwrap() - starts.iter().min().unwrap();
    assert!(
        spread < 200,
        "--start-at aligned the shards within {spread} ms"
    );

    let merged_dir = dir.path().join("merged");
    let o = harness(&[
        "merge",
        dir.path().join("results").to_str().unwrap(),
        "--out",
        merged_dir.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "a threshold fails: {stderr}");
    let m = read(&merged_dir);
    for f in ["summary.md", "junit.xml", "report.html", "latency.hgrm"] {
        assert!(merged_dir.join(f).is_file(), "{f}");
    }
    common::assert_accounted(&m);
    assert_valid(&merged_dir.join("report.json"));
    assert_valid(&shard_dir(0).join("report.json"));

    // Counters are the sums.
    let sum = |f: &dyn Fn(&Report) -> u64| shards.iter().map(f).sum::<u64>();
    assert_eq!(m.total.sent, sum(&|r| r.total.sent));
    assert_eq!(m.total.outcomes.ok, sum(&|r| r.total.outcomes.ok));
    assert_eq!(m.total.outcomes.total(), sum(&|r| r.total.outcomes.total()));
    assert_eq!(m.total.retransmissions, sum(&|r| r.total.retransmissions));
    assert_eq!(
        m.total.codes.get("2.01").copied(),
        Some(sum(&|r| r.total.codes.get("2.01").copied().unwrap_or(0)))
    );
    for (i, p) in m.phases.iter().enumerate() {
        assert_eq!(p.requests.sent, sum(&|r| r.phases[i].requests.sent));
        assert_eq!(
            u64::from(p.devices),
            sum(&|r| u64::from(r.phases[i].devices))
        );
    }
    assert_eq!(u64::from(m.devices.count), u64::from(DEVICES));
    assert_eq!(u64::from(m.devices.started), u64::from(DEVICES));
    assert!(m.total.outcomes.ok <= server_messages && server_messages <= m.total.sent);
    assert_eq!(m.total.outcomes.ok, m.total.sent, "{:?}", m.total.outcomes);

    // Percentiles are those of the shards' histograms added by hand.
    let mut by_hand = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    for s in &shards {
        by_hand.add(s.total.latency.histogram().unwrap()).unwrap();
    }
    let l = &m.total.latency;
    assert_eq!(l.count, by_hand.len());
    assert_eq!(l.count, m.total.sent);
    for (got, q) in [
        (l.p50_us, 0.5),
        (l.p90_us, 0.9),
        (l.p99_us, 0.99),
        (l.p999_us, 0.999),
    ] {
        assert_eq!(got, by_hand.value_at_quantile(q), "p{q}");
    }
    assert_eq!((l.min_us, l.max_us), (by_hand.min(), by_hand.max()));

    // Thresholds are judged on the merged figures: each shard alone would have judged them the other way.
    let passed = |name: &str| check(&m, name).passed;
    assert!(
        passed("threshold (run): throughput >= 120/s"),
        "{:#?}",
        m.checks
    );
    assert!(!passed("threshold (run): throughput < 100/s"));
    assert!(passed("threshold (phase steady): throughput >= 150/s"));
    assert!(passed("expect response code 2.01"), "{:#?}", m.checks);
    for s in &shards {
        assert!(
            s.total.throughput_rps < 100.0,
            "a shard is a quarter of the load"
        );
    }
    let info = m.merged.as_ref().expect("a merged report says so");
    assert_eq!(info.shards, vec![0, 1, 2, 3]);
    assert!(!m.partial && m.shard.is_none());
    let series: u64 = m.timeseries.iter().map(|p| p.requests).sum();
    assert_eq!(series, m.total.sent);
    per_second_intervals_survive(&shards, &m, &merged_dir);

    // The whole scenario in one process does about the same work.
    let whole_dir = dir.path().join("whole");
    let o = harness(&[
        "run",
        &file,
        "--quiet",
        "--out",
        whole_dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "the < 100/s threshold fails");
    let w = read(&whole_dir);
    assert!(w.shard.is_none());
    assert_eq!(w.devices.started, m.devices.started);
    let ratio = m.total.sent as f64 / w.total.sent as f64;
    assert!(
        (0.9..1.1).contains(&ratio),
        "merged {} vs whole {}",
        m.total.sent,
        w.total.sent
    );
    let names = |r: &Report| r.checks.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&m),
        names(&w),
        "the merge judges what a whole run judges"
    );
    assert_eq!(
        check(&w, "threshold (run): throughput >= 120/s").passed,
        passed("threshold (run): throughput >= 120/s")
    );

    refusals(dir.path(), &shards, &shard_dir, &whole_dir);
    rt.block_on(srv.shutdown());
}

/// The shards' per-second latency histograms are added second by second (aligned as the series are): the
/// merged latency.hlog has one untagged interval per merged second, each holding what the shards' seconds
/// held, and the merged series' p99 is that of the added histogram.
fn per_second_intervals_survive(shards: &[Report], m: &Report, merged_dir: &Path) {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    let decode = |b64: &str| -> hdrhistogram::Histogram<u64> {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        Deserializer::new()
            .deserialize(&mut raw.as_slice())
            .unwrap()
    };
    for s in shards {
        assert_eq!(s.latency_per_second.len(), s.timeseries.len());
    }
    assert_eq!(
        m.latency_per_second.len(),
        m.timeseries.len(),
        "one merged histogram per merged second"
    );
    let shard_count: u64 = shards
        .iter()
        .flat_map(|s| s.latency_per_second.iter())
        .map(|h| decode(h).len())
        .sum();
    let merged: Vec<_> = m.latency_per_second.iter().map(|h| decode(h)).collect();
    let merged_count: u64 = merged.iter().map(|h| h.len()).sum();
    assert!(shard_count > 0);
    assert_eq!(merged_count, shard_count, "every second's latencies kept");
    // By hand: each shard's second t goes to merged second t + its offset (rounded to a second).
    let base = shards
        .iter()
        .filter_map(|s| s.load_started_at_ms)
        .min()
        .unwrap();
    let mut by_hand: std::collections::BTreeMap<u64, hdrhistogram::Histogram<u64>> =
        std::collections::BTreeMap::new();
    for s in shards {
        let shift = (s.load_started_at_ms.unwrap() - base + 500) / 1000;
        for (p, h) in s.timeseries.iter().zip(&s.latency_per_second) {
            let h = decode(h);
            by_hand
                .entry(p.t + shift)
                .or_insert_with(|| {
                    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2).unwrap()
                })
                .add(&h)
                .unwrap();
        }
    }
    for (p, h) in m.timeseries.iter().zip(&merged) {
        let want = &by_hand[&p.t];
        assert_eq!(h.len(), want.len(), "second {}", p.t);
        if !want.is_empty() {
            assert_eq!(p.p99_us, want.value_at_quantile(0.99), "second {}", p.t);
        }
    }
    // latency.hlog: the untagged (per-second) intervals are back, one per merged second.
    let log =
        std::fs::read(merged_dir.join("latency.hlog")).expect("the merge writes latency.hlog");
    let untagged: Vec<u64> = IntervalLogIterator::new(&log)
        .filter_map(|e| match e.expect("a well-formed interval log") {
            LogEntry::Interval(i) if i.tag().is_none() => Some(i.start_timestamp().as_secs()),
            _ => None,
        })
        .collect();
    let seconds: Vec<u64> = m.timeseries.iter().map(|p| p.t).collect();
    assert_eq!(untagged, seconds);
    eprintln!(
        "merged {} seconds of per-second histograms ({merged_count} latencies) from {} shards",
        seconds.len(),
        shards.len()
    );
}

/// What merge refuses, each with its one-line error and exit 2.
fn refusals(dir: &Path, shards: &[Report], shard_dir: &dyn Fn(u32) -> PathBuf, whole: &Path) {
    let report = |k: u32| shard_dir(k).join("report.json").display().to_string();
    let out = dir.join("refused").display().to_string();
    let merge = |files: &[String], extra: &[&str]| {
        let mut args = vec!["merge".to_string()];
        args.extend(files.iter().cloned());
        args.extend(["--out".into(), out.clone()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        harness(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let all: Vec<String> = (0..SHARDS).map(report).collect();

    let mut three = all.clone();
    three.remove(2);
    let e = one_line_error(&merge(&three, &[]));
    assert!(e.contains("missing shard 2 of 4"), "{e}");

    let mut twice = all.clone();
    twice.push(report(1));
    let e = one_line_error(&merge(&twice, &[]));
    assert!(e.contains("shard 1 given twice"), "{e}");

    let e = one_line_error(&merge(
        &[report(0), whole.join("report.json").display().to_string()],
        &[],
    ));
    assert!(e.contains("not a shard report"), "{e}");

    let edited = |name: &str, edit: &dyn Fn(&mut Report)| {
        let mut r = shards[3].clone();
        edit(&mut r);
        let p = dir.join(name);
        std::fs::write(&p, serde_json::to_string(&r).unwrap()).unwrap();
        p.display().to_string()
    };
    let other = edited("other.json", &|r| {
        r.shard.as_mut().unwrap().scenario_sha256 = "0".repeat(64)
    });
    let mut mixed = all[..3].to_vec();
    mixed.push(other);
    let e = one_line_error(&merge(&mixed, &[]));
    assert!(e.contains("shards of different scenarios"), "{e}");

    let five = edited("five.json", &|r| r.shard.as_mut().unwrap().count = 5);
    let mut mixed = all[..3].to_vec();
    mixed.push(five);
    let e = one_line_error(&merge(&mixed, &[]));
    assert!(e.contains("shard of 5"), "{e}");

    // --allow-partial merges what there is, says so everywhere, and does not pass.
    let o = merge(&three, &["--allow-partial"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("PARTIAL"));
    let dir = Path::new(&out);
    let r = read(dir);
    assert!(r.partial);
    assert_eq!(r.merged.as_ref().unwrap().missing, vec![2]);
    assert!(!check(&r, "every shard merged").passed);
    for f in ["summary.md", "junit.xml", "report.html"] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(text.contains("PARTIAL: 3 of 4 shards merged"), "{f}");
    }
}

#[test]
fn run_refuses_shard_and_start_flags_that_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(&file, scenario(common::free_udp_port())).unwrap();
    let file = file.to_str().unwrap();
    let embedded = dir.path().join("e.yaml");
    std::fs::write(
        &embedded,
        scenario(5683).replace("coap://127.0.0.1:5683", "embedded"),
    )
    .unwrap();
    let past =
        humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(60)).to_string();
    let far = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(25 * 3600))
        .to_string();
    for (args, want) in [
        (vec!["--start-at", past.as_str()], "--start-at: "),
        (vec!["--start-at", far.as_str()], "more than 24h ahead"),
        (vec!["--shard", "0/41"], "--shard: 41 shards for 40 devices"),
        (
            vec!["--shard", "0/2", "--target", "embedded"],
            "one shared target",
        ),
    ] {
        let mut all = vec!["run", file, "--quiet"];
        all.extend(args);
        let e = one_line_error(&harness(&all));
        assert!(e.contains(want), "{e}");
        assert!(e.contains("error: "), "{e}");
    }
    let e = one_line_error(&harness(&[
        "run",
        embedded.to_str().unwrap(),
        "--shard=1/2",
    ]));
    assert!(e.contains("one shared target"), "{e}");
    // clap rejects what does not parse, also with exit 2.
    for bad in [["--shard", "4/4"], ["--start-at", "tomorrow"]] {
        let o = harness(&["run", file, bad[0], bad[1]]);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("is not"));
    }
}
