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
    /// Run the local Lambda-compatible platform: real functions as local processes,
    /// weighted aliases, per-version metrics, and a CloudWatch-compatible endpoint.
    Local(LocalArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Point the AWS CLI or an SDK at it with --endpoint-url http://ADDR (any credentials, region us-east-1).\n\
Admin endpoints: PUT /_fledge/routing/{function}/{alias} ({\"mode\":\"exact\"} or {\"mode\":\"sticky\",\"key\":{\"header\":\"x-user-id\"}}),\n\
POST|GET|DELETE /_fledge/faults ({\"operation\":\"UpdateAlias\",\"status\":429,\"count\":3})."
)]
pub struct LocalArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub addr: String,
    /// Where functions, versions, aliases, code and alarms persist.
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
