//! `fledge simulate`: many deployments in the core's simulator, with confidence intervals.

use std::process::ExitCode;

use anyhow::anyhow;
use fledge_core::judge::{Analysis, JudgeConfig};
use fledge_core::rollout::{CheckPolicy, DeploymentSpec, Hooks, InconclusivePolicy, RetryPolicy};
use fledge_core::schedule::Strategy;
use fledge_core::sim::{Batch, LatencyModel, SimConfig, Spread, VersionModel, batch};
use fledge_core::time::parse_duration;
use serde_json::json;

use crate::Failure;
use crate::args::{ScheduleSource, SimulateArgs};

fn invalid(message: String) -> Failure {
    Failure::invalid(anyhow!(message))
}

fn share(flag: &str, v: f64) -> Result<f64, Failure> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(invalid(format!(
            "--{flag} {v} must be between 0 and 1 (a share, not a percentage)"
        )))
    }
}

fn latency(flag: &str, text: Option<&str>) -> Result<Option<LatencyModel>, Failure> {
    let Some(text) = text else { return Ok(None) };
    let parsed = text
        .split_once(',')
        .and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)));
    match parsed {
        Some((p50, p99)) if p50 > 0.0 && p99 >= p50 => Ok(Some(LatencyModel {
            p50_ms: p50,
            p99_ms: p99,
        })),
        _ => Err(invalid(format!(
            "--{flag} '{text}': write P50,P99 in milliseconds with P99 ≥ P50, for example 20,60"
        ))),
    }
}

pub fn run(a: SimulateArgs) -> Result<ExitCode, Failure> {
    let source = ScheduleSource {
        strategy: a.strategy.clone(),
        preset: a.preset.clone(),
        input: a.input.clone(),
    };
    let resolved = if source.strategy.is_none() && source.preset.is_none() && source.input.is_none()
    {
        let strategy: Strategy = "linear:10x2m".parse().expect("a strategy");
        crate::plan::Resolved {
            label: strategy.to_string(),
            schedule: strategy.schedule().expect("a schedule"),
        }
    } else {
        crate::plan::resolve(&source, None)?
    };
    let schedule = match &a.bake {
        Some(b) => resolved
            .schedule
            .with_bake(parse_duration(b).map_err(|e| invalid(format!("--bake: {e}")))?),
        None => resolved.schedule,
    };
    let analysis = match a.analysis.as_str() {
        "fledge" => Analysis::Fledge(JudgeConfig {
            min_requests: a.min_requests,
            max_error_rate: a.max_error_rate,
            max_p99_ms: a.max_p99_ms,
            ..JudgeConfig::default()
        }),
        "seed" => Analysis::Seed,
        other => {
            return Err(invalid(format!(
                "--analysis '{other}' is not known; use fledge or seed"
            )));
        }
    };
    let on_inconclusive = match a.on_inconclusive.as_str() {
        "rollback" => InconclusivePolicy::RollBack,
        "proceed" => InconclusivePolicy::Proceed,
        other => {
            return Err(invalid(format!(
                "--on-inconclusive '{other}' is not known; use rollback or proceed"
            )));
        }
    };
    let interval =
        parse_duration(&a.check_interval).map_err(|e| invalid(format!("--check-interval: {e}")))?;
    if interval.is_zero() {
        return Err(invalid("--check-interval must be above zero".into()));
    }
    if !(a.rate >= 0.0 && a.rate <= 1_000_000.0) {
        return Err(invalid(format!(
            "--rate {} must be between 0 and 1000000 requests a second",
            a.rate
        )));
    }
    if a.runs == 0 || a.runs > 100_000 {
        return Err(invalid(format!(
            "--runs {} must be between 1 and 100000",
            a.runs
        )));
    }
    let spec = DeploymentSpec {
        function: "simulated".into(),
        alias: "live".parse().expect("an alias"),
        target: 2,
        schedule,
        analysis,
        checks: CheckPolicy {
            interval,
            max_extension: parse_duration(&a.max_extension)
                .map_err(|e| invalid(format!("--max-extension: {e}")))?,
            on_inconclusive,
        },
        hooks: Hooks::default(),
        retry: RetryPolicy::default(),
    };
    let baseline = VersionModel {
        error_rate: share("baseline-errors", a.baseline_errors)?,
        latency: latency("baseline-latency", a.baseline_latency.as_deref())?,
    };
    let canary = VersionModel {
        error_rate: share("canary-errors", a.canary_errors)?,
        latency: latency("canary-latency", a.canary_latency.as_deref())?,
    };
    let config = SimConfig::new(spec, a.rate, baseline, canary, a.seed);
    let report = batch(&config, a.runs);
    let title = format!(
        "{} runs of {} ({} analysis) at {} req/s; baseline {} errors, canary {} errors",
        a.runs,
        resolved.label,
        a.analysis,
        a.rate,
        pct(a.baseline_errors),
        pct(a.canary_errors)
    );
    if let Some(path) = &a.svg {
        std::fs::write(path, crate::svg::render(&title, &report)).map_err(|e| Failure {
            code: 3,
            error: anyhow!("could not write {}: {e}", path.display()),
        })?;
    }
    if a.json {
        let out = json!({
            "scenario": {
                "schedule": resolved.label,
                "analysis": a.analysis,
                "rate": a.rate,
                "baseline_errors": a.baseline_errors,
                "canary_errors": a.canary_errors,
                "check_interval_secs": interval.as_secs_f64(),
                "runs": a.runs,
                "seed": a.seed,
            },
            "report": report,
        });
        println!("{out}");
    } else {
        print_report(&resolved.label, &a, &report);
    }
    Ok(ExitCode::SUCCESS)
}

fn pct(p: f64) -> String {
    format!("{:.1}%", p * 100.0)
}

fn spread(label: &str, unit: &str, s: &Spread) {
    println!(
        "  {label}: mean {:.1}{unit} (95% CI {:.1}–{:.1}), p50 {:.0}{unit}, p95 {:.0}{unit}, max {:.0}{unit}",
        s.mean, s.mean_ci95.0, s.mean_ci95.1, s.p50, s.p95, s.max
    );
}

fn print_report(schedule: &str, a: &SimulateArgs, r: &Batch) {
    println!(
        "Simulated {} deployments of {schedule} with the {} analysis at {} requests/s; baseline {} errors, canary {} errors.",
        r.runs,
        a.analysis,
        a.rate,
        pct(a.baseline_errors),
        pct(a.canary_errors)
    );
    for (word, s) in [("promoted", r.promoted), ("rolled back", r.rolled_back)] {
        println!(
            "  {word:<11} {:>6} of {}  ({}, 95% CI {}–{})",
            s.count,
            r.runs,
            pct(s.probability),
            pct(s.ci95.0),
            pct(s.ci95.1)
        );
    }
    if r.other > 0 {
        println!(
            "  other        {:>6} of {} (aborted, failed, or not finished)",
            r.other, r.runs
        );
    }
    if let Some(s) = &r.time_to_promote_secs {
        spread("time to promote", " s", s);
    }
    if let Some(s) = &r.time_to_rollback_secs {
        spread("time to roll back", " s", s);
    }
    spread(
        "failed requests served by the canary",
        "",
        &r.canary_failures,
    );
    spread("requests served by the canary", "", &r.canary_requests);
}
