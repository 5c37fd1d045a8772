//! Regenerates BENCHMARKS.md's comparison of fledge with the original and with CodeDeploy,
//! and checks the simulator against real deployments on fledge local:
//!
//! ```text
//! cargo bench -p fledge-sample --bench compare          # COMPARE_RUNS=200 by default
//! ```
//!
//! For 10 and 100 requests/s, and canaries that crash, have 5% errors, are 200 ms slower at
//! p99, or are healthy (baseline 0.1% errors, canary the same), it simulates RUNS deployments
//! (default 200) under:
//! - the original: linear 10 × 120 s, checking as each wait ends for any error in the last
//!   minute (no data passes);
//! - CodeDeploy's Canary10Percent5Minutes with a one-minute `Errors ≥ 1` alarm on the new
//!   version, read once a minute;
//! - fledge's default: Canary10Percent5Minutes with fledge's analysis, checked every second.
//!
//! It prints a Markdown table, then runs time-compressed versions of the scenarios for real
//! (fledge local, the sample function as real processes, 100 requests/s of user traffic,
//! `fledge deploy`'s engine) and compares them with the simulation of the same scenarios.

use std::time::Duration;

use fledge_core::judge::Analysis;
use fledge_core::rollout::{CheckPolicy, DeploymentSpec, Hooks, RetryPolicy};
use fledge_core::schedule::Strategy;
use fledge_core::sim::{LatencyModel, SimConfig, VersionModel, batch};

struct System {
    name: &'static str,
    strategy: &'static str,
    analysis: Analysis,
    check_every: Duration,
}

fn main() {
    let runs: u64 = std::env::var("COMPARE_RUNS")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    table(runs);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(reality::check());
}

fn table(runs: u64) {
    let systems = [
        System {
            name: "original (linear 10×120 s, end-of-step check)",
            strategy: "linear:10x2m",
            analysis: Analysis::Seed,
            check_every: Duration::from_secs(120),
        },
        System {
            name: "CodeDeploy Canary10Percent5Minutes + 1-min Errors ≥ 1 alarm",
            strategy: "time-based-canary:10/5",
            analysis: Analysis::Alarm { threshold: 1.0 },
            check_every: Duration::from_secs(60),
        },
        System {
            name: "fledge default (Canary10Percent5Minutes, fledge analysis)",
            strategy: "time-based-canary:10/5",
            analysis: Analysis::default(),
            check_every: Duration::from_secs(1),
        },
    ];
    let healthy_latency = LatencyModel {
        p50_ms: 20.0,
        p99_ms: 60.0,
    };
    let canaries: [(&str, VersionModel); 4] = [
        (
            "crashes (100% errors)",
            VersionModel {
                error_rate: 1.0,
                latency: Some(healthy_latency),
            },
        ),
        (
            "5% errors",
            VersionModel {
                error_rate: 0.05,
                latency: Some(healthy_latency),
            },
        ),
        (
            "+200 ms p99",
            VersionModel {
                error_rate: 0.001,
                latency: Some(LatencyModel {
                    p50_ms: 20.0,
                    p99_ms: 260.0,
                }),
            },
        ),
        (
            "healthy (0.1% errors)",
            VersionModel {
                error_rate: 0.001,
                latency: Some(healthy_latency),
            },
        ),
    ];
    let baseline = VersionModel {
        error_rate: 0.001,
        latency: Some(healthy_latency),
    };
    println!(
        "| req/s | canary | system | rolled back | failed requests (mean, p95) | time to rollback (mean) | time to promote (mean) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for rate in [10.0, 100.0] {
        for (label, canary) in &canaries {
            for system in &systems {
                let spec = DeploymentSpec {
                    function: "f".into(),
                    alias: "live".parse().expect("alias"),
                    target: 2,
                    schedule: system
                        .strategy
                        .parse::<Strategy>()
                        .expect("strategy")
                        .schedule()
                        .expect("schedule"),
                    analysis: system.analysis.clone(),
                    checks: CheckPolicy {
                        interval: system.check_every,
                        ..CheckPolicy::default()
                    },
                    hooks: Hooks::default(),
                    retry: RetryPolicy::default(),
                };
                let config = SimConfig::new(spec, rate, baseline.clone(), canary.clone(), 1);
                let r = batch(&config, runs);
                let secs = |s: Option<fledge_core::sim::Spread>| {
                    s.map_or("–".to_string(), |s| format!("{:.0} s", s.mean))
                };
                println!(
                    "| {rate} | {label} | {} | {:.1}% | {:.1} ({:.0}) | {} | {} |",
                    system.name,
                    r.rolled_back.probability * 100.0,
                    r.canary_failures.mean,
                    r.canary_failures.p95,
                    secs(r.time_to_rollback_secs),
                    secs(r.time_to_promote_secs),
                );
            }
        }
    }
    println!();
    println!("{runs} runs per row, seeds 1..={runs}; baseline 0.1% errors, p50 20 ms / p99 60 ms.");
}

/// The simulator against reality: the same scenario simulated and run for real.
mod reality {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use aws_sdk_lambda::primitives::Blob;
    use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};
    use fledge_aws::Aws;
    use fledge_core::judge::Analysis;
    use fledge_core::lambda::Version;
    use fledge_core::rollout::{CheckPolicy, DeploymentSpec, Hooks, Outcome, RetryPolicy};
    use fledge_core::schedule::Strategy;
    use fledge_core::sim::{SimConfig, VersionModel, batch};
    use fledge_engine::CheckConfig;
    use fledge_local::{Platform, PlatformConfig};

    const RATE: f64 = 100.0;
    const STRATEGY: &str = "canary:10%/20s";
    const REAL_RUNS: usize = 3;

    fn spec(function: &str) -> DeploymentSpec {
        DeploymentSpec {
            function: function.into(),
            alias: "live".parse().expect("alias"),
            target: 2,
            schedule: STRATEGY
                .parse::<Strategy>()
                .expect("strategy")
                .schedule()
                .expect("schedule"),
            analysis: Analysis::default(),
            checks: CheckPolicy {
                interval: Duration::from_secs(1),
                max_extension: Duration::from_secs(20),
                ..CheckPolicy::default()
            },
            hooks: Hooks::default(),
            retry: RetryPolicy::default(),
        }
    }

    fn package() -> Vec<u8> {
        let binary =
            std::fs::read(env!("CARGO_BIN_EXE_fledge-sample")).expect("the sample function");
        let mut out = std::io::Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut out);
        w.start_file(
            "bootstrap",
            zip::write::SimpleFileOptions::default().unix_permissions(0o755),
        )
        .expect("zip");
        w.write_all(&binary).expect("zip");
        w.finish().expect("zip");
        out.into_inner()
    }

    fn env(pairs: &[(&str, String)]) -> Environment {
        Environment::builder()
            .set_variables(Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            ))
            .build()
    }

    /// One real deployment: answers (outcome, failed requests the canary served, seconds).
    async fn real_run(
        aws: &Aws,
        function: &str,
        canary_errors: f64,
    ) -> (Option<Outcome>, u64, f64) {
        aws.lambda
            .create_function()
            .function_name(function)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role("arn:aws:iam::123456789012:role/bench")
            .environment(env(&[("SAMPLE_ERROR_RATE", "0.001".into())]))
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(package()))
                    .build(),
            )
            .publish(true)
            .send()
            .await
            .expect("create");
        aws.lambda
            .create_alias()
            .function_name(function)
            .name("live")
            .function_version("1")
            .send()
            .await
            .expect("alias");
        aws.lambda
            .update_function_configuration()
            .function_name(function)
            .environment(env(&[
                ("SAMPLE_ERROR_RATE", canary_errors.to_string()),
                ("RELEASE", "2".into()),
            ]))
            .send()
            .await
            .expect("configure");
        aws.lambda
            .publish_version()
            .function_name(function)
            .send()
            .await
            .expect("publish");
        let failed: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
        let traffic = {
            let (aws, failed, qualified) =
                (aws.clone(), failed.clone(), format!("{function}:live"));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE));
                loop {
                    tick.tick().await;
                    let (aws, failed, qualified) = (aws.clone(), failed.clone(), qualified.clone());
                    tokio::spawn(async move {
                        if let Ok(answer) = aws.invoke(&qualified, b"{}").await
                            && let (Some(Version::Number(v)), Some(_)) =
                                (answer.executed_version, answer.function_error)
                        {
                            *failed.lock().expect("lock").entry(v).or_default() += 1;
                        }
                    });
                }
            })
        };
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (out, mut progress) = tokio::sync::mpsc::unbounded_channel();
        let (_control, control_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move { while progress.recv().await.is_some() {} });
        let checks = CheckConfig {
            metrics_period: 1,
            baseline_lookback: Duration::from_secs(60),
            ..CheckConfig::default()
        };
        let summary = fledge_engine::run(
            aws.clone(),
            format!("{function}-real"),
            spec(function),
            checks,
            out,
            control_rx,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        traffic.abort();
        let failures = failed.lock().expect("lock").get(&2).copied().unwrap_or(0);
        (Some(summary.outcome), failures, summary.duration_secs)
    }

    pub async fn check() {
        let dir = std::env::temp_dir().join(format!("fledge-compare-{}", std::process::id()));
        let platform = Platform::start(
            PlatformConfig::new(&dir),
            "127.0.0.1:0".parse().expect("addr"),
        )
        .await
        .expect("platform");
        let aws = Aws::connect(Some(&platform.endpoint()), None).await;
        println!();
        println!(
            "### The simulator against fledge local ({STRATEGY}, {RATE} requests/s, baseline 0.1% errors, checks every second)"
        );
        println!();
        println!(
            "| canary | simulated (200 runs): outcome, failed p1–p99 (mean) | real runs: outcome, failed, seconds | agree |"
        );
        println!("|---|---|---|---|");
        for (label, canary_errors) in [
            ("crashes (100% errors)", 1.0),
            ("5% errors", 0.05),
            ("healthy (0.1% errors)", 0.001),
        ] {
            let config = SimConfig::new(
                spec("sim"),
                RATE,
                VersionModel::with_errors(0.001),
                VersionModel::with_errors(canary_errors),
                1,
            );
            let sim = batch(&config, 200);
            let mut sorted = sim.failures_by_run.clone();
            sorted.sort_unstable();
            let (p1, p99) = (sorted[sorted.len() / 100], sorted[sorted.len() * 99 / 100]);
            let sim_outcome = if sim.rolled_back.probability >= 0.5 {
                Outcome::RolledBack
            } else {
                Outcome::Promoted
            };
            let mut real = Vec::new();
            for i in 0..REAL_RUNS {
                let function = format!("f{}{i}", (canary_errors * 1000.0) as u64);
                real.push(real_run(&aws, &function, canary_errors).await);
            }
            // The real pipeline adds delay the simulator leaves out (a metrics read, a check
            // interval, an alias write): allow half as much again, plus three requests.
            let (low, high) = ((p1 as f64 / 1.5 - 3.0).max(0.0), p99 as f64 * 1.5 + 3.0);
            let agree = real.iter().all(|(o, f, _)| {
                *o == Some(sim_outcome) && (*f as f64) >= low && (*f as f64) <= high
            });
            let shown: Vec<String> = real
                .iter()
                .map(|(o, f, s)| {
                    format!(
                        "{} {f} in {s:.0} s",
                        o.map_or("?".into(), |o| o.to_string())
                    )
                })
                .collect();
            println!(
                "| {label} | {sim_outcome} {:.0}%, {p1}–{p99} ({:.1}) | {} | {} (bounds {low:.0}–{high:.0}) |",
                sim.rolled_back.probability.max(sim.promoted.probability) * 100.0,
                sim.canary_failures.mean,
                shown.join("; "),
                if agree { "yes" } else { "NO" }
            );
        }
        platform.stop().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
