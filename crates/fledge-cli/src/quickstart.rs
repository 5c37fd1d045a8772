//! `fledge quickstart`: the whole story on the embedded local platform, in about a minute.
//!
//! 1. Start fledge local in-process, create `orders` from the sample function, publish
//!    version 1 (0.1% errors) behind the alias `live`.
//! 2. Send steady user traffic to `orders:live`, counting what each version serves.
//! 3. Deploy a healthy version 2: promoted.
//! 4. Deploy version 3 with 5% errors: rolled back within seconds; report what it cost.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};
use fledge_aws::Aws;
use fledge_core::judge::{Analysis, JudgeConfig};
use fledge_core::lambda::Version;
use fledge_core::rollout::{CheckPolicy, Hooks, InconclusivePolicy, Outcome};
use fledge_core::schedule::Strategy;
use fledge_engine::CheckConfig;
use fledge_local::{Platform, PlatformConfig};

use crate::Failure;
use crate::args::QuickstartArgs;
use crate::deploy::{Plan, Target, execute};
use crate::render::Renderer;

const FUNCTION: &str = "orders";

/// What the simulated users saw, by version.
#[derive(Default)]
struct Served {
    ok: u64,
    failed: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

fn fail(e: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 3,
        error: e.into(),
    }
}

/// A package whose `bootstrap` runs this very binary as the sample function.
fn package() -> anyhow::Result<Vec<u8>> {
    let exe = std::env::current_exe().context("could not find the fledge binary")?;
    let script = format!(
        "#!/bin/sh\nexec '{}' sample-function\n",
        exe.display().to_string().replace('\'', "'\\''")
    );
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut out);
    w.start_file(
        "bootstrap",
        zip::write::SimpleFileOptions::default().unix_permissions(0o755),
    )?;
    w.write_all(script.as_bytes())?;
    w.finish()?;
    Ok(out.into_inner())
}

fn env(pairs: &[(&str, &str)]) -> Environment {
    Environment::builder()
        .set_variables(Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
        .build()
}

pub fn run(args: QuickstartArgs) -> Result<ExitCode, Failure> {
    let runtime = tokio::runtime::Runtime::new().map_err(fail)?;
    runtime.block_on(story(args))
}

async fn story(args: QuickstartArgs) -> Result<ExitCode, Failure> {
    let started = Instant::now();
    let temp = args.data_dir.is_none();
    let dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("fledge-quickstart-{}", std::process::id()))
    });
    let platform = Platform::start(
        PlatformConfig::new(&dir),
        "127.0.0.1:0".parse().expect("an address"),
    )
    .await
    .map_err(fail)?;
    let endpoint = platform.endpoint();
    println!(
        "fledge quickstart: a canary release, start to finish, on fledge's embedded Lambda-compatible platform ({endpoint}).\n"
    );
    let aws = Aws::connect(Some(&endpoint), None).await;

    println!(
        "1. Creating the function `{FUNCTION}` (version 1: 0.1% of requests fail, as a real service might) behind the alias `live`."
    );
    aws.lambda
        .create_function()
        .function_name(FUNCTION)
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .role("arn:aws:iam::123456789012:role/quickstart")
        .timeout(5)
        .environment(env(&[
            ("SAMPLE_ERROR_RATE", "0.001"),
            ("SAMPLE_LATENCY_MS", "2"),
        ]))
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(package().map_err(fail)?))
                .build(),
        )
        .publish(true)
        .send()
        .await
        .map_err(|e| fail(anyhow!("could not create the function: {e}")))?;
    aws.lambda
        .create_alias()
        .function_name(FUNCTION)
        .name("live")
        .function_version("1")
        .send()
        .await
        .map_err(|e| fail(anyhow!("could not create the alias: {e}")))?;

    println!(
        "2. Sending {} requests/s of user traffic to {FUNCTION}:live.\n",
        args.rate
    );
    let served: Arc<Mutex<HashMap<u64, Served>>> = Arc::default();
    let traffic = tokio::spawn(traffic(aws.clone(), args.rate, served.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;

    println!(
        "3. Releasing version 2 (healthy: the same 0.1% error rate) in four steps of 5 s, checked every second."
    );
    let v2 = release(
        &aws,
        &[
            ("SAMPLE_ERROR_RATE", "0.001"),
            ("SAMPLE_LATENCY_MS", "2"),
            ("RELEASE", "2"),
        ],
    )
    .await?;
    println!();
    println!("4. Releasing version 3, which fails 5% of its requests.");
    let v3 = release(
        &aws,
        &[
            ("SAMPLE_ERROR_RATE", "0.05"),
            ("SAMPLE_LATENCY_MS", "2"),
            ("RELEASE", "3"),
        ],
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    traffic.abort();

    let (v2_counts, (v3_total, v3_failed), exposure) = {
        let served = served.lock().expect("traffic lock");
        let count = |v: u64| {
            served
                .get(&v)
                .map_or((0, 0), |s| (s.ok + s.failed, s.failed))
        };
        let exposure = served
            .get(&3)
            .and_then(|s| Some(s.last?.duration_since(s.first?)))
            .unwrap_or_default();
        (count(2), count(3), exposure)
    };
    println!("\nWhat happened:");
    println!(
        "  version 2: {:<12} ({} user requests served, {} failed)",
        outcome_word(v2.outcome),
        v2_counts.0,
        v2_counts.1
    );
    println!(
        "  version 3: {:<12} ({v3_total} user requests served, {v3_failed} failed, over {:.1} s of exposure)",
        outcome_word(v3.outcome),
        exposure.as_secs_f64()
    );
    println!("             reason: {}", v3.reason);
    let alias = aws
        .get_alias(FUNCTION, "live")
        .await
        .map(|(r, _)| r.to_string())
        .unwrap_or_else(|e| e.message);
    println!("  the alias `live` now serves: {alias}");
    // The original's default at the same traffic: 10 steps of 120 s, checked as each wait
    // ends, failing on any error of the new version in the last minute.
    let first_check_requests = 0.1 * args.rate * 120.0;
    let healthy_errors_per_minute: f64 = (1..=10)
        .map(|i| args.rate * 60.0 * (f64::from(i) / 10.0) * 0.001)
        .sum();
    let healthy_rolled_back = 1.0 - (-healthy_errors_per_minute).exp();
    println!(
        "\nAt the same traffic, the original recipe (10 steps of 120 s, checked only as each wait ends, failing on\n\
         any error in the last minute) would have let version 3 serve about {first_check_requests:.0} requests (about {:.0} failed)\n\
         before its first check, and would have rolled back the healthy version 2 with probability {:.4}:\n\
         a 0.1% error rate almost surely shows one error in some minute. fledge compared each new version with\n\
         the one in service every second: version 2 went out, version 3 cost {v3_failed} failed requests.",
        first_check_requests * 0.05,
        healthy_rolled_back
    );
    println!(
        "\nDone in {:.0} s. Next: `fledge plan --help`, `fledge deploy --help`, `fledge local --help`, `fledge serve --help`.",
        started.elapsed().as_secs_f64()
    );
    platform.stop().await;
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let as_expected = v2.outcome == Outcome::Promoted && v3.outcome == Outcome::RolledBack;
    Ok(if as_expected {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Promoted => "promoted",
        Outcome::RolledBack => "rolled back",
        Outcome::Aborted => "aborted",
        Outcome::Failed => "failed",
    }
}

/// Configures `$LATEST`, publishes it, and deploys it with fledge's defaults.
async fn release(aws: &Aws, vars: &[(&str, &str)]) -> Result<fledge_engine::Summary, Failure> {
    aws.lambda
        .update_function_configuration()
        .function_name(FUNCTION)
        .environment(env(vars))
        .send()
        .await
        .map_err(|e| fail(anyhow!("could not configure the new version: {e}")))?;
    let plan = Plan {
        function: FUNCTION.into(),
        alias: "live".parse().expect("an alias name"),
        target: Target::Publish,
        schedule: "linear:4x5s"
            .parse::<Strategy>()
            .expect("a strategy")
            .schedule()
            .expect("a schedule"),
        analysis: Analysis::Fledge(JudgeConfig {
            min_requests: 30,
            ..JudgeConfig::default()
        }),
        checks: CheckPolicy {
            interval: Duration::from_secs(1),
            max_extension: Duration::from_secs(20),
            on_inconclusive: InconclusivePolicy::RollBack,
        },
        hooks: Hooks::default(),
        evidence: CheckConfig {
            metrics_period: 1,
            baseline_lookback: Duration::from_secs(60),
            ..CheckConfig::default()
        },
        endpoint_url: aws.endpoint.clone(),
        region: None,
        json: false,
        notify: Vec::new(),
        notify_attempts: 1,
    };
    let mut renderer = Renderer::new(false);
    let summary = execute(aws, plan, &mut renderer, false).await?;
    renderer.finish(&summary);
    Ok(summary)
}

/// Invokes the alias at `rate` per second, counting what each version served.
async fn traffic(aws: Aws, rate: f64, served: Arc<Mutex<HashMap<u64, Served>>>) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let (aws, served) = (aws.clone(), served.clone());
        tokio::spawn(async move {
            let Ok(answer) = aws
                .invoke(&format!("{FUNCTION}:live"), b"{\"order\":1}")
                .await
            else {
                return;
            };
            let Some(Version::Number(v)) = answer.executed_version else {
                return;
            };
            let now = Instant::now();
            let mut served = served.lock().expect("traffic lock");
            let s = served.entry(v).or_default();
            s.first.get_or_insert(now);
            s.last = Some(now);
            if answer.function_error.is_some() {
                s.failed += 1;
            } else {
                s.ok += 1;
            }
        });
    }
}
