//! Regenerates BENCHMARKS.md's comparison of fledge with the original and with CodeDeploy:
//!
//! ```text
//! cargo run --release -p fledge-core --example compare [RUNS]
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
//! It prints a Markdown table.

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
    let runs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
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
