//! `fledge serve`: the durable server, wired with the same plan resolution as `fledge deploy`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use clap::Parser;
use fledge_engine::notify::Sink;
use fledge_server::{CreateRequest, Resolved, Resolver, ServerConfig};
use serde_json::Value;

use crate::Failure;
use crate::args::{Cli, Command, DeployArgs, ServeArgs};
use crate::deploy::{Target, resolve};

fn blank_deploy_args() -> DeployArgs {
    match Cli::try_parse_from(["fledge", "deploy"]).map(|c| c.command) {
        Ok(Command::Deploy(a)) => *a,
        _ => unreachable!("`fledge deploy` alone parses"),
    }
}

pub fn parse_sinks(texts: &[String]) -> Result<Vec<Sink>, String> {
    texts.iter().map(|t| Sink::parse(t)).collect()
}

/// Resolves a create request exactly as `fledge deploy --file` would, with the server's
/// endpoint and region as defaults.
pub fn resolver(endpoint_url: Option<String>, region: Option<String>) -> Resolver {
    Arc::new(move |request: &CreateRequest| {
        let message = |f: Failure| format!("{:#}", f.error);
        let mut a = blank_deploy_args();
        if let Some(text) = &request.file {
            crate::deployment_file::parse(text, "in the request")
                .and_then(|file| file.fill(&mut a))
                .map_err(message)?;
        }
        if let Some(seed) = &request.seed {
            a.input = Some(match seed {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            if a.strategy.is_some() || a.preset.is_some() {
                return Err(
                    "give the schedule once: the seed input has steps and interval, and the file has a strategy or preset"
                        .into(),
                );
            }
        }
        if a.endpoint_url.is_none() {
            a.endpoint_url.clone_from(&endpoint_url);
        }
        if a.region.is_none() {
            a.region.clone_from(&region);
        }
        let plan = resolve(a).map_err(message)?;
        let sinks = parse_sinks(&plan.notify)?;
        let (target, publish) = match plan.target {
            Target::Version(v) => (v, false),
            Target::Publish => (0, true),
        };
        Ok(Resolved {
            spec: plan.spec(target),
            publish,
            checks: plan.evidence,
            endpoint_url: plan.endpoint_url,
            region: plan.region,
            sinks,
        })
    })
}

/// 32 hex digits from the system's random source.
fn generate_token() -> Result<String, Failure> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("could not read /dev/urandom to make a token; give --token or FLEDGE_TOKEN")
        .map_err(|e| Failure { code: 3, error: e })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn run(args: ServeArgs) -> Result<ExitCode, Failure> {
    let addr: SocketAddr = args
        .addr
        .parse()
        .with_context(|| {
            format!(
                "--addr '{}' is not an address; write HOST:PORT, for example 127.0.0.1:8080",
                args.addr
            )
        })
        .map_err(Failure::invalid)?;
    let sinks =
        parse_sinks(&args.notify).map_err(|e| Failure::invalid(anyhow!("--notify: {e}")))?;
    let (token, generated) = match args.token.filter(|t| !t.is_empty()) {
        Some(t) => (t, false),
        None => (generate_token()?, true),
    };
    let runtime = crate::service_runtime()?;
    let db = args.db.clone();
    runtime.block_on(async move {
        let config = ServerConfig {
            addr,
            db: args.db,
            token: token.clone(),
            sinks,
            notify_attempts: args.notify_retries.saturating_add(1),
            sns_endpoint: args.endpoint_url.clone(),
            resolver: resolver(args.endpoint_url, args.region),
        };
        let server = fledge_server::start(config)
            .await
            .map_err(|e| Failure {
                code: 3,
                error: anyhow!("fledge serve could not start: {e}"),
            })?;
        let url = format!("http://{}", server.addr);
        eprintln!("fledge serve: listening on {url} (state in {})", db.display());
        eprintln!("  resumed {} unfinished deployment(s)", server.recovered);
        if generated {
            eprintln!("  token: {token}   (generated; pass --token or FLEDGE_TOKEN to keep one)");
        }
        eprintln!("  dashboard: {url}/#token={token}");
        eprintln!("  try: FLEDGE_SERVER={url} FLEDGE_TOKEN=… fledge submit examples/deployment.yaml");
        let manager = server.manager.clone();
        tokio::select! {
            result = server.wait() => result.map_err(|e| Failure { code: 3, error: anyhow!("the server stopped: {e}") })?,
            _ = tokio::signal::ctrl_c() => {
                let active = manager.running();
                eprintln!("fledge serve: stopping. {active} active deployment(s) stay where they are and resume when fledge serve starts again with --db {}", db.display());
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
