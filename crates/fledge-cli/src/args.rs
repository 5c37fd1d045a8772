//! Command-line arguments, as close to the flags as possible; `resolve` turns them into
//! checked values.

use clap::{Args, Parser, Subcommand};

use fledge_core::schedule::STRATEGY_SYNTAX;

#[derive(Debug, Parser)]
#[command(
    name = "fledge",
    version,
    about = "Canary deployments for AWS Lambda aliases: shift traffic step by step, watch health, roll back on evidence.",
    after_help = "Exit codes: 0 promoted (or success), 1 rolled back or aborted, 2 invalid input, 3 could not complete."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a schedule: every step's weight and hold, and the totals.
    Plan(PlanArgs),
    /// Move an alias to a new version step by step, watching health; roll back on evidence.
    Deploy(Box<DeployArgs>),
    /// The whole story on the embedded local platform: a healthy release promoted, a faulty
    /// one rolled back within seconds.
    Quickstart(QuickstartArgs),
    /// Run fledge's sample Lambda function (the `bootstrap` of quickstart's packages).
    #[command(hide = true)]
    SampleFunction,
    /// Run many deployments in the simulator (virtual time, seeded) and report how often a
    /// canary is promoted or rolled back, how fast, and how many failed requests it served.
    Simulate(Box<SimulateArgs>),
    /// Run the local Lambda-compatible platform: real functions as local processes,
    /// weighted aliases, per-version metrics, and a CloudWatch-compatible endpoint.
    Local(LocalArgs),
    /// Run many deployments durably in the background, with an HTTP API, notifications,
    /// Prometheus metrics and a dashboard.
    Serve(ServeArgs),
    /// Send a deployment file (or the original's JSON input) to a fledge server.
    Submit(SubmitArgs),
    /// Show a server-side deployment; --watch follows it to its end.
    Status(StatusArgs),
    /// List a server's deployments.
    List(ListArgs),
    /// Pause a server-side deployment: the hold clock stops; health is still watched.
    Pause(ActionArgs),
    /// Resume a paused server-side deployment.
    Resume(ActionArgs),
    /// End a server-side deployment's current step now (--fully: all traffic now).
    Promote(PromoteArgs),
    /// Put the original version back and stop a server-side deployment.
    Abort(ActionArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "The API is under /v1 (GET /v1/openapi.json describes it); every /v1 request needs `Authorization: Bearer TOKEN`.\n\
The dashboard is at http://ADDR/ (open the URL printed at start, which carries the token); Prometheus metrics at /metrics.\n\
State lives in the SQLite database: stop or kill the server at any time, and start it again with the same --db to resume every deployment."
)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// The SQLite database that holds every deployment.
    #[arg(long, default_value = "fledge.db")]
    pub db: std::path::PathBuf,
    /// The endpoint deployments use when their file names none (fledge local, say).
    #[arg(long, env = "FLEDGE_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// The AWS region deployments use when their file names none.
    #[arg(long)]
    pub region: Option<String>,
    /// The bearer token clients must send; generated and printed when absent.
    #[arg(long, env = "FLEDGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Notify about every deployment here: webhook:URL, command:CMD or sns:TOPIC_ARN
    /// (repeatable).
    #[arg(long, value_name = "SINK")]
    pub notify: Vec<String>,
    /// Retries of a failed notification (1 s, 2 s, 4 s, … apart) before it is recorded as
    /// failed.
    #[arg(long, default_value_t = 4)]
    pub notify_retries: u32,
}

/// How to reach a fledge server.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The server's URL.
    #[arg(long, env = "FLEDGE_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// The server's bearer token.
    #[arg(long, env = "FLEDGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes with --watch: 0 promoted; 1 rolled back or aborted; 2 invalid input; 3 could not complete.\n\
Without --watch: 0 once the server has the deployment."
)]
pub struct SubmitArgs {
    /// A deployment file (YAML, see examples/deployment.yaml), or the original's JSON input.
    pub file: std::path::PathBuf,
    /// A name for the deployment: submitting the same name and file again is harmless.
    #[arg(long)]
    pub name: Option<String>,
    /// Follow the deployment to its end; the exit code says how it ended.
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes with --watch: 0 promoted; 1 rolled back or aborted; 3 failed (fledge could not act), or the server could not be asked.\n\
Without --watch: 0 when the deployment was found."
)]
pub struct StatusArgs {
    /// The deployment's id (dep-…).
    pub id: String,
    /// Follow the deployment's events to its end; the exit code says how it ended.
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// active, finished, or a phase or outcome (shifting, promoted, rolled_back, aborted, …).
    #[arg(long)]
    pub state: Option<String>,
    /// Only this function's deployments.
    #[arg(long)]
    pub function: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct ActionArgs {
    /// The deployment's id (dep-…).
    pub id: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The deployment's id (dep-…).
    pub id: String,
    /// Move all traffic to the new version now and finish.
    #[arg(long)]
    pub fully: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Point the AWS CLI or an SDK at it with --endpoint-url http://ADDR (any credentials, region us-east-1).\n\
Admin endpoints: PUT /_fledge/routing/{function}/{alias} ({\"mode\":\"exact\"} or {\"mode\":\"sticky\",\"key\":{\"header\":\"x-user-id\"}}),\n\
POST|GET|DELETE /_fledge/faults ({\"operation\":\"UpdateAlias\",\"status\":429,\"count\":3}),\n\
GET /_fledge/sns/messages (what SNS topics took, and how each delivery went).\n\
Function URLs (aws lambda create-function-url-config) are served at http://ADDR/_fledge/url/ID/."
)]
pub struct LocalArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub addr: String,
    /// Where functions, versions, aliases, tags, policies, function URLs, code, metrics (the
    /// last 3 hours), alarms, SNS topics and subscriptions, and queued asynchronous events
    /// persist; each function process's /tmp is under it while the process runs.
    #[arg(long, default_value = ".fledge/local")]
    pub data_dir: std::path::PathBuf,
    /// Seed for alias routing and fault injection (repeatable runs).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Concurrent invocations per function without reserved concurrency.
    #[arg(long, default_value_t = 64)]
    pub concurrency: u32,
    /// Stop warm function processes idle this long (e.g. 5m).
    #[arg(long, default_value = "5m")]
    pub idle_timeout: String,
    /// The waits before the two retries of an asynchronous event whose function failed
    /// (Lambda's are 1m,2m); shorter ones make a rehearsal quicker.
    #[arg(long, default_value = "1m,2m", value_name = "FIRST,SECOND")]
    pub async_retry_delays: String,
    /// The Python interpreter that runs python3.x functions; it needs AWS's runtime client
    /// (`pip install awslambdaric`). By default python3.x, then python3, from PATH.
    #[arg(long, env = "FLEDGE_PYTHON", value_name = "PATH")]
    pub python: Option<std::path::PathBuf>,
    /// The Node.js (18 or later) that runs nodejsN.x functions; by default `node` from PATH.
    #[arg(long, env = "FLEDGE_NODE", value_name = "PATH")]
    pub node: Option<std::path::PathBuf>,
}

/// Where a schedule comes from: exactly one of these.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ScheduleSource {
    /// A strategy in the compact syntax (see below).
    #[arg(long, value_name = "STRATEGY")]
    pub strategy: Option<String>,
    /// A CodeDeploy preset: Canary10Percent5Minutes, Linear10PercentEvery1Minute, AllAtOnce,
    /// … or the same with the prefix CodeDeployDefault.Lambda.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// The original's JSON input ('{"function-name":…,"steps":10,"interval":120,…}'), or
    /// @FILE to read it from a file.
    #[arg(long, value_name = "JSON")]
    pub input: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = format!("Strategies:\n{STRATEGY_SYNTAX}"))]
pub struct PlanArgs {
    #[command(flatten)]
    pub source: ScheduleSource,
    /// Hold 100% this much longer before finalizing (for example 10m).
    #[arg(long, value_name = "DURATION")]
    pub bake: Option<String>,
    /// Print JSON: {"steps":[{"weight":0.1,"hold_secs":60},…],"total_secs":…}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = format!("Strategies:\n{STRATEGY_SYNTAX}\n\n\
Exit codes: 0 promoted; 1 rolled back or aborted; 2 invalid input; 3 could not complete (the API failed, or the alias was changed by someone else).\n\
Ctrl-C rolls back before exiting; a second Ctrl-C exits at once and says what state the alias is left in."))]
pub struct DeployArgs {
    /// A deployment file (YAML) saying any of what these flags say; flags given as well win.
    /// See examples/deployment.yaml.
    #[arg(long, value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    /// The function (name or ARN). Not needed with --input.
    #[arg(long)]
    pub function: Option<String>,
    /// The alias to move. Not needed with --input.
    #[arg(long)]
    pub alias: Option<String>,
    /// The version to release.
    #[arg(long, conflicts_with = "publish")]
    pub version: Option<String>,
    /// Publish $LATEST and release that version.
    #[arg(long)]
    pub publish: bool,
    /// A strategy in the compact syntax (default: canary:10%/5m).
    #[arg(long, conflicts_with_all = ["preset", "input"])]
    pub strategy: Option<String>,
    /// A CodeDeploy preset, e.g. Canary10Percent5Minutes.
    #[arg(long, conflicts_with = "input")]
    pub preset: Option<String>,
    /// The original's JSON input (function, alias, version, steps, interval), or @FILE.
    #[arg(long)]
    pub input: Option<String>,
    /// Hold 100% this much longer before finalizing.
    #[arg(long, value_name = "DURATION")]
    pub bake: Option<String>,
    /// Talk to this Lambda-compatible endpoint (fledge local, for example) instead of AWS.
    #[arg(long, env = "FLEDGE_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// The AWS region (default: the standard configuration chain).
    #[arg(long)]
    pub region: Option<String>,
    /// One JSON event per line, then a summary.
    #[arg(long)]
    pub json: bool,
    /// How often health is checked [default: 1s].
    #[arg(long, value_name = "DURATION")]
    pub check_interval: Option<String>,
    /// `fledge` (default) or `seed` (the original's check: any error in the last minute fails).
    #[arg(long)]
    pub analysis: Option<String>,
    /// Canary requests a step needs before it can pass [default: 50].
    #[arg(long)]
    pub min_requests: Option<u64>,
    /// An error rate (0..1) the canary must never exceed.
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// A p99 latency (ms) the canary must never exceed.
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// What to do when a step stays inconclusive: rollback (default) or proceed.
    #[arg(long)]
    pub on_inconclusive: Option<String>,
    /// How much longer a step may be held while its evidence is inconclusive [default: 10m].
    #[arg(long, value_name = "DURATION")]
    pub max_extension: Option<String>,
    /// Invoke the alias this many times a second and judge the answers [default: 0, no probe].
    #[arg(long)]
    pub probe_rate: Option<f64>,
    /// The probe's payload (JSON) [default: {}].
    #[arg(long)]
    pub probe_payload: Option<String>,
    /// The probe's answers must contain this JSON (objects by subset).
    #[arg(long, value_name = "JSON")]
    pub expect: Option<String>,
    /// The probe's answers must have this value at a JSON pointer: /status=\"ok\".
    #[arg(long, value_name = "POINTER=JSON", conflicts_with = "expect")]
    pub expect_path: Option<String>,
    /// Invoke the new version directly this many times before shifting any traffic.
    #[arg(long)]
    pub smoke: Option<u32>,
    /// Do not read CloudWatch metrics (rely on the probe and alarms).
    #[arg(long)]
    pub no_metrics: bool,
    /// Metric period in seconds (default: 1 with --endpoint-url, for fledge local; 60 on AWS).
    #[arg(long)]
    pub metrics_period: Option<i32>,
    /// A URL that must answer 2xx at every check, or the deployment fails (repeatable).
    #[arg(long = "http-check", value_name = "URL")]
    pub http_checks: Vec<String>,
    /// A shell command that must exit 0 at every check, or the deployment fails
    /// (repeatable). It sees FLEDGE_FUNCTION, FLEDGE_ALIAS, FLEDGE_CANARY_VERSION and
    /// FLEDGE_BASELINE_VERSION.
    #[arg(long = "command-check", value_name = "COMMAND")]
    pub command_checks: Vec<String>,
    /// A share of invocations (0..1) the canary may not see throttled.
    #[arg(long)]
    pub max_throttle_rate: Option<f64>,
    /// A CloudWatch alarm that fails the deployment when in ALARM (repeatable).
    #[arg(long = "alarm", value_name = "NAME")]
    pub alarms: Vec<String>,
    /// A function invoked before any traffic shifts; an error or {"status":"Failed"} stops.
    #[arg(long)]
    pub pre_traffic_hook: Option<String>,
    /// A function invoked once all traffic is on the new version; a failure rolls back.
    #[arg(long)]
    pub post_traffic_hook: Option<String>,
    /// Tell this deployment's notable events (started, each step, rollback, the end) to
    /// webhook:URL, command:CMD or sns:TOPIC_ARN (repeatable).
    #[arg(long, value_name = "SINK")]
    pub notify: Vec<String>,
    /// Retries of a failed notification (1 s, 2 s, 4 s, … apart) before it is reported as
    /// not delivered.
    #[arg(long, default_value_t = 4)]
    pub notify_retries: u32,
}

#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Keep the platform's data here instead of a temporary directory.
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
    /// Requests per second of simulated user traffic.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
}

#[derive(Debug, Args)]
#[command(after_help = format!("Strategies:\n{STRATEGY_SYNTAX}\n\nExample (the original's default, a crashing canary):\n  fledge simulate --analysis seed --canary-errors 1"))]
pub struct SimulateArgs {
    /// A strategy in the compact syntax [default: linear:10x2m, the original's example].
    #[arg(long, conflicts_with_all = ["preset", "input"])]
    pub strategy: Option<String>,
    /// A CodeDeploy preset, e.g. Canary10Percent5Minutes.
    #[arg(long, conflicts_with = "input")]
    pub preset: Option<String>,
    /// The original's JSON input, or @FILE.
    #[arg(long)]
    pub input: Option<String>,
    /// Hold 100% this much longer before finalizing.
    #[arg(long, value_name = "DURATION")]
    pub bake: Option<String>,
    /// `fledge` (default) or `seed` (the original's check: any error in the last minute, only
    /// as each hold ends; no data passes).
    #[arg(long, default_value = "fledge")]
    pub analysis: String,
    /// Requests per second on the alias (Poisson arrivals).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// The baseline's error rate (0..1).
    #[arg(long, default_value_t = 0.001)]
    pub baseline_errors: f64,
    /// The canary's error rate (0..1).
    #[arg(long, default_value_t = 0.001)]
    pub canary_errors: f64,
    /// The baseline's latency as P50,P99 in ms (log-normal), e.g. 20,60.
    #[arg(long, value_name = "P50,P99")]
    pub baseline_latency: Option<String>,
    /// The canary's latency as P50,P99 in ms, e.g. 25,260.
    #[arg(long, value_name = "P50,P99")]
    pub canary_latency: Option<String>,
    /// How often fledge's analysis checks.
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub check_interval: String,
    /// Canary requests a step needs before it can pass.
    #[arg(long, default_value_t = 50)]
    pub min_requests: u64,
    /// An error rate the canary must never exceed.
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// A p99 latency (ms) the canary must never exceed.
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// rollback (default) or proceed, when a step stays inconclusive.
    #[arg(long, default_value = "rollback")]
    pub on_inconclusive: String,
    /// How much longer a step may wait for evidence.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub max_extension: String,
    /// How many deployments to simulate.
    #[arg(long, default_value_t = 100)]
    pub runs: u64,
    /// The first seed; run i uses seed + i.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also draw the report as an SVG picture in FILE: a typical run's weight and failed
    /// requests over time, and the distributions over all runs.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,
}
