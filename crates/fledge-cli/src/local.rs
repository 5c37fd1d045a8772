//! `fledge local`: the local platform in the foreground until Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use fledge_core::time::parse_duration;
use fledge_local::{Platform, PlatformConfig};

use crate::Failure;
use crate::args::LocalArgs;

pub fn run(args: LocalArgs) -> Result<ExitCode, Failure> {
    let addr: SocketAddr = args
        .addr
        .parse()
        .with_context(|| {
            format!(
                "--addr '{}' is not an address; write HOST:PORT, for example 127.0.0.1:9001",
                args.addr
            )
        })
        .map_err(Failure::invalid)?;
    let idle_timeout = parse_duration(&args.idle_timeout)
        .map_err(|e| Failure::invalid(anyhow::anyhow!("--idle-timeout: {e}")))?;
    let mut config = PlatformConfig::new(&args.data_dir);
    config.concurrency_limit = args.concurrency;
    config.idle_timeout = idle_timeout;
    config.python = args.python;
    config.node = args.node;
    config.async_retry_delays = args
        .async_retry_delays
        .split(',')
        .map(|d| parse_duration(d.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::invalid(anyhow::anyhow!("--async-retry-delays: {e}")))?;
    if config.async_retry_delays.len() != 2 {
        return Err(Failure::invalid(anyhow::anyhow!(
            "--async-retry-delays '{}': give two durations, the waits before the first and the second retry (Lambda's: 1m,2m)",
            args.async_retry_delays
        )));
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    let runtime = crate::service_runtime()?;
    runtime.block_on(async move {
        let running = Platform::start(config, addr)
            .await
            .with_context(|| {
                format!(
                    "could not serve on {addr} with data in {}",
                    args.data_dir.display()
                )
            })
            .map_err(|e| Failure { code: 3, error: e })?;
        eprintln!(
            "fledge local: serving the Lambda and CloudWatch APIs on {}",
            running.endpoint()
        );
        eprintln!("  data: {}", args.data_dir.display());
        eprintln!(
            "  try:  aws lambda list-functions --endpoint-url {}",
            running.endpoint()
        );
        // Ctrl-C or a service manager's SIGTERM: stop cleanly, keeping the last metrics.
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("fledge local: stopping (function processes are stopped; the data stays)");
        running.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}
