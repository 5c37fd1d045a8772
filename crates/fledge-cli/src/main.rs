//! The `fledge` command: parses arguments, dispatches, and turns errors into exit codes in
//! one place.
//!
//! Exit codes: 0 success (a deployment promoted); 1 a deployment rolled back or aborted;
//! 2 invalid input; 3 could not complete (the platform failed, or the alias was changed by
//! someone else).

mod args;
mod deploy;
mod deployment_file;
mod local;
mod plan;
mod quickstart;
mod remote;
mod render;
mod serve;
mod simulate;
mod svg;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// An error with the exit code it stands for.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    /// Bad input: exit code 2.
    pub fn invalid(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: 2,
            error: error.into(),
        }
    }
}

/// For the long-running commands (`local`, `serve`): logs to stderr (FLEDGE_LOG sets the
/// filter, `info` by default) and a multi-threaded runtime.
pub fn service_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLEDGE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Runtime::new().map_err(|e| Failure {
        code: 3,
        error: anyhow::anyhow!("could not start the async runtime: {e}"),
    })
}

/// Runs the sample function in this process (the packages quickstart makes exec this).
fn sample_function() -> Result<ExitCode, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            code: 3,
            error: e.into(),
        })?;
    runtime
        .block_on(fledge_sample::run())
        .map(|()| ExitCode::SUCCESS)
        .map_err(|e| Failure {
            code: 3,
            error: anyhow::anyhow!("{e}"),
        })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => plan::run(args),
        Command::Local(args) => local::run(args),
        Command::Deploy(args) => deploy::run(*args),
        Command::Quickstart(args) => quickstart::run(args),
        Command::Simulate(args) => simulate::run(*args),
        Command::SampleFunction => sample_function(),
        Command::Serve(args) => serve::run(args),
        Command::Submit(args) => remote::submit(args),
        Command::Status(args) => remote::status(args),
        Command::List(args) => remote::list(args),
        Command::Pause(args) => remote::pause(args),
        Command::Resume(args) => remote::resume(args),
        Command::Promote(args) => remote::promote(args),
        Command::Abort(args) => remote::abort(args),
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}
