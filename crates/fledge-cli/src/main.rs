//! The `fledge` command: parses arguments, dispatches, and turns errors into exit codes in
//! one place.
//!
//! Exit codes: 0 success (a deployment promoted); 1 a deployment rolled back or aborted;
//! 2 invalid input; 3 could not complete (the platform failed, or the alias was changed by
//! someone else).

mod args;
mod local;
mod plan;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => plan::run(args),
        Command::Local(args) => local::run(args),
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}
