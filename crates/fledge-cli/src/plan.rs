//! `fledge plan`: a schedule and its totals, for people or for scripts.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use fledge_core::lambda::percent;
use fledge_core::schedule::{Schedule, SeedInput, Strategy};
use fledge_core::time::{duration_millis, format_duration, parse_duration};

use crate::Failure;
use crate::args::{PlanArgs, ScheduleSource};

/// A schedule and what it was made from.
pub struct Resolved {
    pub label: String,
    pub schedule: Schedule,
}

/// Reads the one schedule source given.
pub fn resolve(source: &ScheduleSource, bake: Option<&str>) -> Result<Resolved, Failure> {
    let (label, schedule) = if let Some(text) = &source.strategy {
        let strategy: Strategy = text.parse().map_err(Failure::invalid)?;
        (
            strategy.to_string(),
            strategy.schedule().map_err(Failure::invalid)?,
        )
    } else if let Some(name) = &source.preset {
        let strategy = Strategy::preset(name).map_err(Failure::invalid)?;
        (name.clone(), strategy.schedule().map_err(Failure::invalid)?)
    } else if let Some(input) = &source.input {
        let text = match input.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("could not read the input file '{path}'"))
                .map_err(Failure::invalid)?,
            None => input.clone(),
        };
        let seed = SeedInput::parse(&text).map_err(Failure::invalid)?;
        (
            format!("seed input ({})", seed.strategy),
            seed.schedule().map_err(Failure::invalid)?,
        )
    } else {
        unreachable!("clap requires one source")
    };
    let schedule = match bake {
        Some(text) => schedule.with_bake(
            parse_duration(text).map_err(|e| Failure::invalid(anyhow::anyhow!("--bake: {e}")))?,
        ),
        None => schedule,
    };
    Ok(Resolved { label, schedule })
}

pub fn run(args: PlanArgs) -> Result<ExitCode, Failure> {
    let resolved = resolve(&args.source, args.bake.as_deref())?;
    let schedule = &resolved.schedule;
    if args.json {
        println!("{}", to_json(&resolved));
        return Ok(ExitCode::SUCCESS);
    }
    println!("Schedule: {}  ({} steps)", resolved.label, schedule.len());
    println!("{:>4}  {:>9}  {:<16} starts at", "step", "weight", "hold");
    for line in schedule.describe() {
        println!("{line}");
    }
    println!();
    println!(
        "Full promotion after: {} (if every step passes when its hold ends)",
        format_duration(schedule.total())
    );
    println!(
        "Longest a failing canary keeps traffic if health is checked only when a hold ends (the original's way): {} at {}",
        format_duration(schedule.exposure_with_end_of_step_checks()),
        percent(schedule.steps()[0].weight)
    );
    println!("fledge checks continuously and rolls back at the first failing check.");
    Ok(ExitCode::SUCCESS)
}

/// Whole seconds as an integer, anything finer as a fraction.
fn secs(d: Duration) -> Value {
    let ms = duration_millis(d);
    if ms.is_multiple_of(1000) {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

fn to_json(resolved: &Resolved) -> Value {
    let schedule = &resolved.schedule;
    let steps: Vec<Value> = schedule
        .steps()
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"weight": s.weight, "hold_secs": secs(s.hold), "starts_at_secs": secs(schedule.starts_at(i))}))
        .collect();
    json!({
        "source": resolved.label,
        "steps": steps,
        "total_secs": secs(schedule.total()),
        "end_of_step_exposure_secs": secs(schedule.exposure_with_end_of_step_checks()),
    })
}
