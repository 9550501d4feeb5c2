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
    /// trust cases (unknown CA, expired, not yet valid, wrong host, self-signed, rogue and expired clients);
    /// with --devices N, N device certificates too.
    Certs(CertsArgs),
    /// Check a scenario file without running it.
    Validate {
        /// The scenario YAML file.
        scenario: PathBuf,
        /// Set a scenario variable for `${KEY}` (as `run -e`). Repeatable.
        #[arg(short = 'e', long = "var", value_name = "KEY=VALUE", value_parser = scenario::vars::parse_var)]
        vars: Vec<(String, String)>,
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
    /// verify the server's name, send one telemetry POST (with --cert/--key, presenting that client certificate).
    /// Exit 0 connected, 1 the handshake failed (refused the server, or the server refused it), 2 could not try.
    Device {
        /// The CA certificate file the device trusts (PEM or DER).
        ca: PathBuf,
        /// The server's host name (verified against its certificate).
        host: String,
        /// The server's DTLS port.
        port: u16,
        /// Present this client certificate (PEM or DER; chain leaf first) when the server asks for one.
        #[arg(long, value_name = "FILE", requires = "key")]
        cert: Option<PathBuf>,
        /// The client certificate's private key.
        #[arg(long, value_name = "FILE", requires = "cert")]
        key: Option<PathBuf>,
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
    /// The scenario YAML file. Without one, the built-in telemetry scenario runs (ad-hoc mode: give at
    /// least --target; see --print-scenario).
    pub scenario: Option<PathBuf>,
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
    // Kept last: its help heading applies to it alone.
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

/// What `run` may change in a scenario (or in the built-in one) from the command line; each flag can also be
/// given by its environment variable. Applied before validation: a bad value is an error naming the flag (or
/// the variable), exit 2, before any load.
#[derive(Debug, Default, Args)]
#[command(
    next_help_heading = "Scenario overrides (each also from its COAP_HARNESS_* environment variable)"
)]
pub struct OverrideArgs {
    /// The target: `embedded`, coap://host[:port] or coaps://host[:port].
    #[arg(long, env = "COAP_HARNESS_TARGET", value_name = "URL")]
    pub target: Option<String>,
    /// The CA certificate (PEM or DER) that the server's certificate must chain to (`dtls.ca`).
    #[arg(
        long,
        env = "COAP_HARNESS_CA",
        value_name = "FILE",
        conflicts_with = "insecure"
    )]
    pub ca: Option<PathBuf>,
    /// Do not verify the server (`dtls.ca: none`): the report flags the run insecure.
    #[arg(long, env = "COAP_HARNESS_INSECURE")]
    pub insecure: bool,
    /// Client certificate for two-way DTLS (`dtls.client_cert`; PEM or DER, leaf first).
    #[arg(long, env = "COAP_HARNESS_CLIENT_CERT", value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// Its private key (`dtls.client_key`).
    #[arg(
        long,
        env = "COAP_HARNESS_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
    /// DTLS pre-shared key identity (`dtls.psk_identity`).
    #[arg(
        long,
        env = "COAP_HARNESS_PSK_IDENTITY",
        value_name = "ID",
        requires = "psk_key"
    )]
    pub psk_identity: Option<String>,
    /// The pre-shared key: text, or `hex:0a1b...` (`dtls.psk_key`).
    #[arg(
        long,
        env = "COAP_HARNESS_PSK_KEY",
        value_name = "KEY",
        requires = "psk_identity",
        hide_env_values = true
    )]
    pub psk_key: Option<String>,
    /// Device access token: a pattern such as `dev-{index:05}`, or one literal token (for one device).
    #[arg(
        long,
        env = "COAP_HARNESS_TOKEN",
        conflicts_with = "token_file",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// File of access tokens, one per line, or CSV with the header `token,psk_identity,psk_key,cert,key`.
    #[arg(long, env = "COAP_HARNESS_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Total requests per second of the steady phase (the longest phase that does not ramp), e.g. 200 or 10k/s.
    #[arg(long, env = "COAP_HARNESS_RATE", value_parser = scenario::raw::parse_rate)]
    pub rate: Option<f64>,
    /// Number of devices (phase device counts above it are lowered to it).
    #[arg(long, env = "COAP_HARNESS_DEVICES")]
    pub devices: Option<u32>,
    /// Duration of the steady phase (the longest phase that does not ramp), e.g. 30s, 2m; other phases keep theirs.
    #[arg(long, env = "COAP_HARNESS_DURATION", value_parser = scenario::raw::parse_duration, conflicts_with = "total_duration")]
    pub duration: Option<Duration>,
    /// Scale every phase so that together they last this long (e.g. 30s).
    #[arg(long, env = "COAP_HARNESS_TOTAL_DURATION", value_parser = scenario::raw::parse_duration)]
    pub total_duration: Option<Duration>,
    /// Seed for every random choice.
    #[arg(long, env = "COAP_HARNESS_SEED")]
    pub seed: Option<u64>,
    /// Set a scenario variable: `${KEY}` in the scenario's values becomes VALUE (`${ENV:NAME}` reads the
    /// environment variable NAME). Repeatable.
    #[arg(short = 'e', long = "var", value_name = "KEY=VALUE", value_parser = scenario::vars::parse_var)]
    pub vars: Vec<(String, String)>,
    /// Print the effective scenario (the file or the built-in one, with variables and overrides applied) as
    /// YAML and exit without running. The printed scenario validates and runs as the same plan (paths the
    /// file gave relative to its folder stay relative: save it next to it).
    #[arg(long)]
    pub print_scenario: bool,
    /// The flags whose value came from their environment variable (set by [`Cli::parse_args`]).
    #[arg(skip)]
    pub from_env: Vec<&'static str>,
}

impl OverrideArgs {
    /// Each override's argument id and flag.
    pub const FLAGS: &'static [(&'static str, &'static str)] = &[
        ("target", "--target"),
        ("ca", "--ca"),
        ("insecure", "--insecure"),
        ("client_cert", "--client-cert"),
        ("client_key", "--client-key"),
        ("psk_identity", "--psk-identity"),
        ("psk_key", "--psk-key"),
        ("token", "--token"),
        ("token_file", "--token-file"),
        ("rate", "--rate"),
        ("devices", "--devices"),
        ("duration", "--duration"),
        ("total_duration", "--total-duration"),
        ("seed", "--seed"),
    ];
}

impl Cli {
    /// Parses the process's arguments (exiting on bad ones, as clap does), noting which overrides were read
    /// from their environment variable so that errors can name the variable.
    pub fn parse_args() -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if let (Command::Run(run), Some(("run", m))) = (&mut cli.command, matches.subcommand()) {
            run.overrides.from_env = OverrideArgs::FLAGS
                .iter()
                .filter(|(id, _)| {
                    m.value_source(id) == Some(clap::parser::ValueSource::EnvVariable)
                })
                .map(|(_, flag)| *flag)
                .collect();
        }
        cli
    }
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
    /// Also write N device certificates signed by a device CA (ThingsBoard X.509 devices): `devices/` (what
    /// `serve --device-certs` registers), `device-ca.pem`, an unregistered and an expired device, and
    /// `devices.csv` (columns token,psk_identity,psk_key,cert,key; row i is device i).
    #[arg(long, value_name = "N")]
    pub devices: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// UDP address to serve plain CoAP on.
    #[arg(long, default_value = "127.0.0.1:5683")]
    pub coap: SocketAddr,
    /// Also serve CoAP over DTLS on this address (needs --cert and --key, or PSK identities from a --tokens
    /// CSV file: the listener then speaks PSK).
    #[arg(long)]
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
    /// Connection ID (RFC 9146) on --coaps: ask each client that offers the extension for an ID of this many
    /// bytes (ThingsBoard's default is 8); its session is then found by that ID and follows the client to a
    /// new address (NAT rebinding). Default: none.
    #[arg(long, requires = "coaps", value_parser = clap::value_parser!(u8).range(1..))]
    pub connection_id_length: Option<u8>,
    /// File of accepted access tokens, one per line, or CSV with the header `token,psk_identity,psk_key,cert,key`
    /// (its tokens accepted, its PSK identities served on --coaps).
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
