//! The command line: clap types only (`run`, `serve`, `certs`, `validate`, `compare`, `report`, `merge`).
//! `app::execute` runs a parsed [`Cli`]; each command returns its exit code.

use crate::client_auth::ClientAuth;
use crate::{report, scenario};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Load-testing and conformance harness for CoAP and CoAP-over-DTLS IoT servers (ThingsBoard device API).
///
/// Exit codes: 0 every check held, 1 a check failed, 2 the harness could not run (bad input, bad
/// configuration, unreachable or garbling target).
#[derive(Debug, Parser)]
#[command(name = "coap-harness", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario and write its report.
    Run(RunArgs),
    /// Serve the ThingsBoard CoAP device API (the embedded target) until Ctrl-C.
    Serve(ServeArgs),
    /// Generate the test PKI: a root CA, server and client certificates, and the negative material for
    /// trust cases (unknown CA, expired, not yet valid, wrong host, self-signed, rogue and expired clients).
    Certs(CertsArgs),
    /// Check a scenario file without running it.
    Validate {
        /// The scenario YAML file.
        scenario: PathBuf,
    },
    /// Compare a run's report.json with a baseline's and print a Markdown table; exit 1 when a figure
    /// regressed past the bound, 2 when a file is not a readable report.
    Compare(CompareArgs),
    /// Render a report.json again: every report file into --out, or single files with --html / --md / --junit
    /// (with none of them, the Markdown summary goes to stdout); or, with --compare A.json B.json..., one HTML
    /// page drawing the runs over each other. Exit 2 when a file is not a report.
    Report(ReportArgs),
    /// Merge shard reports (`run --shard K/N`) into one report, as if one process had run the scenario:
    /// histograms added exactly, counters summed, time series aligned by wall-clock second, thresholds and
    /// expectations judged again. Exit as `run` does; 2 when the reports do not belong together (different
    /// scenarios, a shard missing or given twice, different N, a report that is not a shard's).
    Merge(MergeArgs),
    /// Act as a well-behaved device for `device_trust:` runs: connect over DTLS trusting only the CA file,
    /// verify the server's name, send one telemetry POST. Exit 0 connected, 1 refused the server, 2 could not try.
    Device {
        /// The CA certificate file the device trusts (PEM or DER).
        ca: PathBuf,
        /// The server's host name (verified against its certificate).
        host: String,
        /// The server's DTLS port.
        port: u16,
    },
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Shard report.json files, or folders whose subfolders hold them (e.g. results/shard-0/report.json).
    #[arg(required = true, value_name = "REPORT")]
    pub reports: Vec<PathBuf>,
    /// Write the merged report files here.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Merge even when shards are missing; the result is marked partial (and its verdict fails).
    #[arg(long)]
    pub allow_partial: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The report.json to render.
    #[arg(required_unless_present = "compare", conflicts_with = "compare")]
    pub report: Option<PathBuf>,
    /// Draw these runs (report.json files, the first the reference) over each other in one HTML page:
    /// into --html FILE and/or --out DIR as compare.html; with neither, to stdout.
    #[arg(long, value_name = "REPORT", num_args = 2.., conflicts_with_all = ["md", "junit"])]
    pub compare: Option<Vec<PathBuf>>,
    /// Write report.html here (with --compare: the comparison page).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write the Markdown summary here.
    #[arg(long, value_name = "FILE")]
    pub md: Option<PathBuf>,
    /// Write the JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write every report file (as `run` does) into this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario YAML file.
    pub scenario: PathBuf,
    /// Replace the scenario's target (`embedded` or coap://host:port).
    #[arg(long)]
    pub target: Option<String>,
    /// Replace the number of devices.
    #[arg(long)]
    pub devices: Option<u32>,
    /// Replace the last phase's duration (e.g. 30s, 2m).
    #[arg(long, value_parser = scenario::raw::parse_duration)]
    pub duration: Option<Duration>,
    /// Report folder (default: a new reports/<scenario>-<UTC timestamp>/, with -2, -3... when two runs start
    /// in the same second). Checked writable before any load; one that already holds a report is refused
    /// unless --force.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite the report already in --out.
    #[arg(long)]
    pub force: bool,
    /// No live progress.
    #[arg(long, short)]
    pub quiet: bool,
    /// Also write the JUnit XML here (it is always in the report folder as junit.xml).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Run only shard K of N, K 0-based (0 <= K < N, a Kubernetes JOB_COMPLETION_INDEX): the scenario's
    /// devices K, K+N, K+2N, ..., total rates divided in proportion, its own seed. Thresholds are judged by
    /// `merge`; the shard exits 0 once its report is written (2 when it could not measure).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<scenario::shard::Shard>,
    /// Begin the first phase at this time, RFC 3339 UTC (e.g. 2026-11-25T21:30:00Z), so shards on many
    /// machines start together. At most 5s in the past and 24h ahead.
    #[arg(long, value_name = "TIME", value_parser = scenario::shard::parse_start_at)]
    pub start_at: Option<std::time::SystemTime>,
    /// Print the final report (report.json's content) as JSON on stdout, for scripts; the terminal summary
    /// and the files written go to stderr, so stdout holds the JSON alone.
    #[arg(long)]
    pub json: bool,
    /// Serve live metrics (OpenMetrics / Prometheus text) at http://ADDR/metrics while the run lasts, e.g.
    /// 127.0.0.1:9464 (port 0: any free port; the address is printed on stderr).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline report.json.
    pub baseline: PathBuf,
    /// The report.json to judge against it.
    pub current: PathBuf,
    /// How much worse a figure may get before it counts as a regression: `10%` or the fraction `0.1`.
    #[arg(long, default_value = "10%", value_parser = report::compare::parse_bound)]
    pub max_regression: f64,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Folder to write into.
    #[arg(long, default_value = "certs")]
    pub out: PathBuf,
    /// Extra names or addresses for the server certificates (besides localhost, 127.0.0.1, ::1).
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Regenerate even if a complete set exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// UDP address to serve plain CoAP on.
    #[arg(long, default_value = "127.0.0.1:5683")]
    pub coap: SocketAddr,
    /// Also serve CoAP over DTLS on this address (needs --cert and --key).
    #[arg(long, requires_all = ["cert", "key"])]
    pub coaps: Option<SocketAddr>,
    /// Server certificate (PEM, leaf first) for --coaps.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Its private key (PKCS#8 PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// CA that client certificates must chain to.
    #[arg(long)]
    pub client_ca: Option<PathBuf>,
    /// Ask for client certificates: none, want, or require (require needs --client-ca).
    #[arg(long, value_enum, default_value = "none")]
    pub client_auth: ClientAuth,
    /// Registered device certificates (ThingsBoard's X.509 credentials) for --client-auth thingsboard: a PEM
    /// file (each certificate a device, named by the file's stem, `-N` appended when it holds several) or a
    /// folder of them (`*.pem`, `*.crt`). Their sessions post on `/api/v1/{feature}`; others get 4.01 there.
    #[arg(long, requires = "coaps")]
    pub device_certs: Option<PathBuf>,
    /// File of accepted access tokens, one per line.
    #[arg(long, conflicts_with_all = ["any_token", "token_pattern"])]
    pub tokens: Option<PathBuf>,
    /// Accept every access token.
    #[arg(long, conflicts_with = "token_pattern")]
    pub any_token: bool,
    /// Accept the tokens this pattern gives for indexes below --token-count.
    #[arg(long, default_value = "dev-{index:05}")]
    pub token_pattern: String,
    /// How many pattern tokens are devices.
    #[arg(long, default_value_t = 1000)]
    pub token_count: u64,
    /// Answer CON requests with an empty ACK and the response this much later (ThingsBoard when slow).
    #[arg(long, value_parser = scenario::raw::parse_duration)]
    pub response_delay: Option<Duration>,
    /// Serve the server's live metrics (OpenMetrics / Prometheus text) at http://ADDR/metrics, e.g.
    /// 127.0.0.1:9465 (port 0: any free port; the address is printed).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

/// `--client-auth none|want|require`: the one [`ClientAuth`] enum, its values named without help text.
impl clap::ValueEnum for ClientAuth {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            ClientAuth::None,
            ClientAuth::Want,
            ClientAuth::Require,
            ClientAuth::Thingsboard,
        ]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            ClientAuth::None => "none",
            ClientAuth::Want => "want",
            ClientAuth::Require => "require",
            ClientAuth::Thingsboard => "thingsboard",
        }))
    }
}
